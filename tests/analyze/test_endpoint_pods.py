"""``analyze`` says when an EndpointSlice endpoint names a Pod the input does not hold: the
translator leaves such an endpoint out until the Pod exists (Istio's rule), which in a folder
of YAML would otherwise drop it silently."""

from __future__ import annotations

from pathlib import Path

from controlplane.analysis import analyze_paths

SLICE = """
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
- addresses: [10.0.0.1]
  targetRef: {kind: Pod, name: web-0}
- addresses: [10.0.0.2]
  targetRef: {kind: Pod, name: web-1, namespace: default}
- addresses: [10.0.0.3]
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: default, labels: {app: web}}
status: {podIP: 10.0.0.2}
"""


def test_an_endpoint_naming_a_missing_pod_is_reported_at_its_target_ref(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(SLICE)
    report = analyze_paths([tmp_path])
    found = [(d.path, d.origin.line) for d in report.warnings]
    assert found == [("endpoints[0].targetRef", 9)]
    assert "Pod default/web-0" in report.warnings[0].message
