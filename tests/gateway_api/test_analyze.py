"""``analyze`` shows the Gateway API status conditions Istio would write, at the field concerned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from controlplane.analysis import analyze_paths

CONFIG = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: infra}
spec:
  gatewayClassName: istio
  listeners:
  - name: http
    port: 8080
    protocol: HTTP
    hostname: "*.example.com"
  - name: lower
    port: 8081
    protocol: http
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: elsewhere, namespace: apps}
spec:
  parentRefs:
  - name: web
    namespace: infra
  rules:
  - backendRefs: [{name: app, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: local, namespace: infra}
spec:
  parentRefs: [{name: web}]
  hostnames: [a.example.com]
  rules:
  - backendRefs:
    - {name: missing, port: 80}
    - {name: db, namespace: data, port: 80}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: good, namespace: infra}
spec: {ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: fine, namespace: infra}
spec:
  parentRefs: [{name: web, sectionName: http}]
  rules:
  - backendRefs: [{name: good, port: 80}]
"""


def test_analyze_reports_routes_attached_to_no_listener_and_unresolved_refs(tmp_path: Path) -> None:
    (tmp_path / "gw.yaml").write_text(CONFIG)
    report = analyze_paths([tmp_path])
    assert not report.errors
    found = {(d.key.name if d.key else "", d.path, d.message.split(":")[0]) for d in report.warnings}
    assert ("web", "spec.listeners[1]", "Accepted=False (UnsupportedProtocol)") in found
    assert ("web", "spec", "Accepted=True (ListenersNotValid)") in found
    assert ("elsewhere", "spec.parentRefs[0]", "Accepted=False (NotAllowedByListeners)") in found
    # both backends are wrong; Istio reports the last one (RefNotPermitted), as here
    assert ("local", "spec.rules", "ResolvedRefs=False (RefNotPermitted)") in found
    assert not [d for d in report.warnings if d.key is not None and d.key.name == "fine"]
    lines = {d.origin.line for d in report.warnings if d.path == "spec.listeners[1]"}
    assert lines == {12}  # the line of the listener in the file


def test_analyze_command_exit_code_stays_0_for_status_warnings(tmp_path: Path) -> None:
    (tmp_path / "gw.yaml").write_text(CONFIG)
    out = subprocess.run([sys.executable, "-m", "controlplane", "analyze", str(tmp_path)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "HTTPRoute apps/elsewhere: spec.parentRefs[0]: warning: Accepted=False (NotAllowedByListeners)" in out.stdout


POLICIES = """
apiVersion: v1
kind: Service
metadata: {name: secure, namespace: shop}
spec: {ports: [{name: https, port: 443}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: secure, namespace: shop}
spec:
  targetRefs:
  - {group: "", kind: Service, name: secure}
  - {group: "", kind: Service, name: secure, sectionName: grpc}
  validation:
    hostname: secure.example.com
    caCertificateRefs: [{group: "", kind: ConfigMap, name: missing}]
"""


def test_analyze_reports_a_backend_tls_policy_at_its_target_and_its_ca(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(POLICIES)
    found = {(d.path, d.message.split(":")[0]) for d in analyze_paths([tmp_path]).warnings}
    assert found == {
        ("spec.targetRefs[1]", "Accepted=False (TargetNotFound)"),
        ("spec.validation.caCertificateRefs[0]", "Accepted=False (NoValidCACertificate)"),
        ("spec.validation.caCertificateRefs[0]", "ResolvedRefs=False (InvalidCACertificateRef)"),
    }
