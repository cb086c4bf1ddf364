"""``analyze`` warns where Istio silently drops delegated routes: a missing delegate, one
with hosts, one not exported to the root's namespace, a delegate route outside the root's match."""

from __future__ import annotations

from pathlib import Path

from controlplane.analysis import analyze_paths

ROOT = """\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /v2}}]
    delegate: {name: reviews-v2, namespace: team}
  - match: [{uri: {prefix: /gone}}]
    delegate: {name: missing}
  - match: [{uri: {prefix: /hosts}}]
    delegate: {name: not-a-delegate, namespace: team}
  - match: [{uri: {prefix: /private}}]
    delegate: {name: private, namespace: team}
  - route:
    - destination: {host: reviews}
"""

DELEGATES = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-v2, namespace: team}
spec:
  http:
  - match: [{uri: {prefix: /v2/api}}]
    route:
    - destination: {host: reviews.shop.svc.cluster.local}
  - match: [{uri: {prefix: /v3}}]
    route:
    - destination: {host: reviews.shop.svc.cluster.local}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: not-a-delegate, namespace: team}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  http:
  - route:
    - destination: {host: reviews.shop.svc.cluster.local}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: private, namespace: team}
spec:
  exportTo: ["."]
  http:
  - route:
    - destination: {host: reviews.shop.svc.cluster.local}
"""


def test_dropped_delegations_are_warnings_at_the_right_lines(tmp_path: Path) -> None:
    (tmp_path / "a-root.yaml").write_text(ROOT)
    (tmp_path / "b-delegates.yaml").write_text(DELEGATES)
    report = analyze_paths([tmp_path])
    assert report.errors == ()
    lines = [str(d).replace(str(tmp_path) + "/", "") for d in report.warnings]
    assert lines == [
        "a-root.yaml:17: VirtualService shop/reviews: spec.http[1].delegate: warning: delegate VirtualService shop/missing not found: this route is ignored",
        "a-root.yaml:19: VirtualService shop/reviews: spec.http[2].delegate: warning: VirtualService team/not-a-delegate has hosts, so it is not a delegate: this route is ignored",
        "a-root.yaml:21: VirtualService shop/reviews: spec.http[3].delegate: warning: delegate VirtualService team/private is not exported to namespace shop: this route is ignored",
        "b-delegates.yaml:9: VirtualService team/reviews-v2: spec.http[1].match: warning: no match falls within the match of VirtualService shop/reviews spec.http[0], which delegates here: this route is ignored there",
    ]


def test_a_fitting_delegation_has_no_warnings(tmp_path: Path) -> None:
    (tmp_path / "root.yaml").write_text(ROOT.split("  - match: [{uri: {prefix: /gone}}]")[0] + "  - route:\n    - destination: {host: reviews}\n")
    (tmp_path / "delegate.yaml").write_text(DELEGATES.split("---")[0].replace("/v3", "/v2/other"))
    report = analyze_paths([tmp_path])
    assert report.diagnostics == (), "\n".join(map(str, report.diagnostics))
