from __future__ import annotations

from pathlib import Path

from controlplane.analysis import analyze_paths

CONSISTENT = """\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews, version: v1}}
  template:
    metadata: {labels: {app: reviews, version: v1}}
    spec: {containers: [{name: app, image: reviews}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: shop}
spec:
  hosts: ["*.example.com"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: ["reviews.example.org", api.example.com]
  gateways: [public, mesh]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
  tls:
  - match: [{sniHosts: [api.example.com]}]
    route:
    - destination: {host: api.example.com}
"""

BROKEN_REFERENCES = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: shop}
spec:
  hosts: [broken.example.org]
  gateways: [shop/missing-gateway]
  http:
  - route:
    - destination: {host: ratings}
      weight: 50
    - destination: {host: reviews.shop.svc.cluster.local, subset: v9}
      weight: 50
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-extra, namespace: shop}
spec:
  host: reviews.shop.svc.cluster.local
  subsets:
  - name: v2
    labels: {version: v2}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: unused, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
"""


def test_consistent_configuration_has_no_warnings(tmp_path: Path) -> None:
    (tmp_path / "shop.yaml").write_text(CONSISTENT)
    report = analyze_paths([tmp_path])
    assert report.diagnostics == (), "\n".join(map(str, report.diagnostics))


def test_broken_references_are_warnings_at_the_right_lines(tmp_path: Path) -> None:
    (tmp_path / "a-shop.yaml").write_text(CONSISTENT)
    broken = tmp_path / "b-broken.yaml"
    broken.write_text(BROKEN_REFERENCES)
    report = analyze_paths([tmp_path])
    assert report.errors == ()
    lines = [str(d).replace(str(broken), "b.yaml") for d in report.warnings]
    assert lines == [
        'b.yaml:6: VirtualService shop/broken: spec.gateways: warning: gateway "shop/missing-gateway" (shop/missing-gateway) is not defined',
        'b.yaml:9: VirtualService shop/broken: spec.http[0].route[0].destination.host: warning: host "ratings" (ratings.shop.svc.cluster.local) is not defined by any Service or ServiceEntry',
        'b.yaml:11: VirtualService shop/broken: spec.http[0].route[1].destination.subset: warning: subset "v9" is not defined by DestinationRule shop/reviews, shop/reviews-extra',
        'b.yaml:21: DestinationRule shop/reviews-extra: spec.subsets[0].labels: warning: subset "v2" (version=v2) selects no workload of service reviews',
        "b.yaml:25: Gateway shop/unused: metadata.name: warning: the Gateway is not referenced by any VirtualService",
    ]


def test_subsets_are_not_judged_without_the_services_workloads(tmp_path: Path) -> None:
    without_deployment = "---\n".join(d for d in CONSISTENT.split("---\n") if "Deployment" not in d)
    (tmp_path / "shop.yaml").write_text(without_deployment.replace("version: v1}", "version: v7}"))
    assert analyze_paths([tmp_path]).diagnostics == ()


def test_pods_and_workload_entries_count_as_workloads(tmp_path: Path) -> None:
    pods = """\
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v2-abc, namespace: shop, labels: {app: reviews, version: v2}}
spec: {containers: [{name: app, image: reviews}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-vm, namespace: shop}
spec: {address: 10.0.0.9, labels: {app: reviews, version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: more, namespace: shop}
spec:
  host: reviews
  subsets:
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
  - {name: v4, labels: {version: v4}}
"""
    (tmp_path / "shop.yaml").write_text(CONSISTENT + pods)
    messages = [d.message for d in analyze_paths([tmp_path]).warnings]
    assert messages == ['subset "v4" (version=v4) selects no workload of service reviews']
