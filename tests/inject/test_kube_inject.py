"""``controlplane kube-inject -f FILE``: offline injection of YAML, as istioctl kube-inject."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from controlplane.capture.spec import spec_from_args
from tests.inject.corpus import CORPUS

DEPLOYMENT = """\
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {ports: [{port: 9080, name: http}], selector: {app: reviews}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  template:
    metadata:
      labels: {app: reviews, version: v1}
      annotations:
        traffic.sidecar.istio.io/excludeOutboundIPRanges: 10.0.0.0/8
        proxy.istio.io/config: '{"proxyMetadata": {"FOO": "bar"}}'
    spec:
      containers: [{name: reviews, image: reviews:v1}]
"""


def _run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controlplane", "kube-inject", *args],
                          input=stdin, capture_output=True, text=True, timeout=60, check=False)


def test_injects_deployments_and_passes_other_documents(tmp_path: Path) -> None:
    source = tmp_path / "app.yaml"
    source.write_text(DEPLOYMENT)
    result = _run("-f", str(source))
    assert result.returncode == 0, result.stderr
    service, deployment = list(yaml.safe_load_all(result.stdout))
    assert service == yaml.safe_load(DEPLOYMENT.split("---")[0])
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"]["security.istio.io/tlsMode"] == "istio"
    init = {c["name"]: c for c in template["spec"]["initContainers"]}
    capture = spec_from_args(init["istio-init"]["args"][2:])
    assert capture.exclude_outbound_ranges == ("10.0.0.0/8",)
    env = {e["name"]: e.get("value") for e in init["istio-proxy"]["env"]}
    assert env["FOO"] == "bar"
    assert env["ISTIO_META_OWNER"] == "kubernetes://apis/apps/v1/namespaces/shop/deployments/reviews-v1"
    assert init["istio-proxy"]["securityContext"]["runAsUser"] == 1337


def test_reads_stdin_and_injecting_twice_changes_nothing() -> None:
    once = _run("-f", "-", stdin=DEPLOYMENT)
    twice = _run("-f", "-", stdin=once.stdout)
    assert once.returncode == twice.returncode == 0
    assert list(yaml.safe_load_all(once.stdout)) == list(yaml.safe_load_all(twice.stdout))


def test_bad_annotation_names_file_object_and_annotation(tmp_path: Path) -> None:
    bad = CORPUS / "traffic-annotations-bad-includeinboundports.yaml"
    result = _run("-f", str(bad))
    assert result.returncode == 1
    assert str(bad) in result.stderr
    assert "Deployment default/traffic" in result.stderr
    assert "traffic.sidecar.istio.io/includeInboundPorts" in result.stderr
