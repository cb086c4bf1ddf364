"""Hosts compare case-insensitively (Istio lower-cases them where it compares: VirtualService
selection, DestinationRule lookup, Sidecar egress), through the one implementation in
``controlplane.model.hosts``."""

from __future__ import annotations

from typing import Any

from controlplane.translate import (
    CLUSTER_TYPE,
    ROUTE_TYPE,
    MeshConfig,
    Proxy,
    push_context,
    translate,
)
from tests.translate.support import load_documents, snapshot_of

FQDN = "reviews.default.svc.cluster.local"

CONFIG = """\
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: Reviews.Default.SVC.cluster.local
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets:
  - name: v1
    labels: {version: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [REVIEWS]
  http:
  - route:
    - destination: {host: Reviews, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
  egress:
  - hosts: ["./REVIEWS.default.svc.Cluster.Local"]
"""


def _translated() -> dict[str, list[Any]]:
    ctx = push_context(snapshot_of(load_documents(CONFIG)), MeshConfig())
    return translate(ctx, Proxy.make("sidecar", "default", labels={"app": "productpage"}))


def test_uppercase_hosts_match_a_lower_case_service() -> None:
    out = _translated()
    clusters = {c.name: c for c in out[CLUSTER_TYPE]}
    # Sidecar egress: the upper-case host imports reviews, and only reviews.
    assert f"outbound|9080||{FQDN}" in clusters
    assert not any("ratings" in name for name in clusters)
    # DestinationRule: its policy and subset apply to the lower-case service.
    assert f"outbound|9080|v1|{FQDN}" in clusters
    assert clusters[f"outbound|9080||{FQDN}"].lb_policy == clusters[f"outbound|9080||{FQDN}"].RANDOM
    # VirtualService: it routes the service's virtual host, to the DestinationRule's subset.
    vhosts = [v for rc in out[ROUTE_TYPE] for v in rc.virtual_hosts if v.name == f"{FQDN}:9080"]
    assert vhosts, "no virtual host for reviews"
    targets = {r.route.cluster for v in vhosts for r in v.routes}
    assert targets == {f"outbound|9080|v1|{FQDN}"}
