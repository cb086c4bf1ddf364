"""analyze on Gateways: credentialName without a readable Secret, conflicting servers, a
VirtualService bound to a missing Gateway."""

from __future__ import annotations

from pathlib import Path

from controlplane.analysis import analyze_paths

CONFIG = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: a, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [shop.example.com]
    tls: {mode: SIMPLE, credentialName: shop-cert}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: b, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [shop.example.com]
    tls: {mode: SIMPLE, credentialName: shop-cert}
---
apiVersion: v1
kind: Pod
metadata: {name: gw, namespace: istio-system, labels: {istio: ingressgateway}}
spec: {containers: [{name: istio-proxy, image: proxy}]}
---
apiVersion: v1
kind: Secret
metadata: {name: shop-cert, namespace: default}
type: Opaque
data: {cert: eA==, key: eA==}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: default}
spec:
  hosts: [shop.example.com]
  gateways: [a, b, missing]
  http: [{route: [{destination: {host: shop.example.com}}]}]
"""


def _messages(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "gateways.yaml"
    path.write_text(text)
    report = analyze_paths([path])
    return [f"{d.key.name if d.key else ''} {d.path}: {d.message}" for d in report.diagnostics]


def test_gateway_warnings(tmp_path: Path) -> None:
    found = _messages(tmp_path, CONFIG)
    assert any(m.startswith("a spec.servers[0].tls.credentialName: Secret \"shop-cert\" not found in namespace "
                            "istio-system") for m in found), found
    assert any(m.startswith("b spec.servers[0]: conflicts with another Gateway") and "claimed by default/a" in m
               for m in found), found
    assert any(m.startswith("shop spec.gateways:") and '"missing"' in m for m in found), found
    assert not any(m.startswith("a spec.servers[0]:") for m in found)  # the first Gateway wins


def test_secret_in_the_gateway_namespace_is_enough(tmp_path: Path) -> None:
    fixed = CONFIG.replace("metadata: {name: shop-cert, namespace: default}",
                           "metadata: {name: shop-cert, namespace: istio-system}")
    assert not any("credentialName" in m for m in _messages(tmp_path, fixed))
    # without the gateway's workloads in the input, a Secret of that name anywhere will do
    no_pod = CONFIG.replace("kind: Pod", "kind: LimitRange")
    assert not any("credentialName" in m for m in _messages(tmp_path, no_pod))


def test_a_ca_cert_credential_needs_its_secret_in_the_gateway_namespace(tmp_path: Path) -> None:
    mutual = CONFIG.replace("tls: {mode: SIMPLE, credentialName: shop-cert}",
                            "tls: {mode: MUTUAL, credentialName: shop-cert, caCertCredentialName: partners}", 1)
    mutual = mutual.replace("metadata: {name: shop-cert, namespace: default}",
                            "metadata: {name: shop-cert, namespace: istio-system}")
    found = [m for m in _messages(tmp_path, mutual) if "caCertCredentialName" in m]
    assert found == ['a spec.servers[0].tls.caCertCredentialName: Secret "partners" not found in namespace '
                     "istio-system of the gateway workloads (a gateway reads only its own namespace's Secrets)"]
    with_ca = mutual + """---
apiVersion: v1
kind: Secret
metadata: {name: partners-cacert, namespace: istio-system}
data: {ca.crt: eA==}
"""
    assert not any("caCertCredentialName" in m for m in _messages(tmp_path, with_ca))
