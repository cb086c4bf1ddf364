"""The mutating webhook over real TLS (certificate from the control plane's CA), driven with
AdmissionReview requests built from the official kubernetes models, and the API server's
handling of its answer (tests/inject/admission.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes import client

from controlplane.ca import load_or_init_ca
from controlplane.capture.spec import spec_from_args
from controlplane.inject import InjectorSettings
from controlplane.inject import webhook as webhook_module
from controlplane.inject.webhook import WebhookServer, server_tls
from tests.inject.admission import FAIL, IGNORE, Refused, admit, call, pod

NAMESPACES = {
    "mesh": {"istio-injection": "enabled"},
    "plain": {},
    "off": {"istio-injection": "disabled"},
}


@pytest.fixture
async def webhook(tmp_path: Path) -> AsyncIterator[tuple[str, str, WebhookServer]]:
    ca = load_or_init_ca(tmp_path / "ca", "cluster.local")
    issued = ca.issue_server()
    server = WebhookServer(InjectorSettings(), lambda ns: NAMESPACES.get(ns))
    assert issued.private_key_pem is not None
    port = await server.start("127.0.0.1", 0, server_tls(issued.chain_pem, issued.private_key_pem.decode()))
    try:
        yield f"https://127.0.0.1:{port}/inject", ca.bundle.pem, server
    finally:
        await server.stop()


def _container(pod_dict: dict, name: str) -> dict:
    spec = pod_dict["spec"]
    return next(c for c in (spec.get("initContainers") or []) + spec["containers"] if c["name"] == name)


async def test_pod_in_labelled_namespace_is_injected(webhook) -> None:
    url, root, _ = webhook
    stored = await _admit(url, pod(annotations={"traffic.sidecar.istio.io/excludeOutboundPorts": "6379",
                                                "traffic.sidecar.istio.io/excludeInboundPorts": "9443"}),
                          "mesh", root, FAIL)
    meta = stored["metadata"]
    assert meta["labels"]["security.istio.io/tlsMode"] == "istio"
    assert meta["labels"]["service.istio.io/canonical-name"] == "reviews"
    assert meta["labels"]["service.istio.io/canonical-revision"] == "v1"
    status = json.loads(meta["annotations"]["sidecar.istio.io/status"])
    assert status["initContainers"] == ["istio-init", "istio-proxy"]
    proxy = _container(stored, "istio-proxy")
    assert proxy["securityContext"]["runAsUser"] == 1337
    env = {e["name"]: e.get("value") for e in proxy["env"]}
    assert env["ISTIO_META_WORKLOAD_NAME"] == "reviews-v1"  # the Deployment behind the ReplicaSet
    capture = spec_from_args(_container(stored, "istio-init")["args"][2:])
    assert capture.exclude_outbound_ports == ("6379",)
    assert capture.exclude_inbound_ports == ("15090", "15021", "9443", "15020")
    assert capture.proxy_uid == "1337"
    assert stored["spec"]["containers"][0]["name"] == "reviews"  # the app is untouched


async def test_a_gateway_pod_gets_the_gateway_template(webhook) -> None:
    """Istio's gateway chart: the pod declares istio-proxy alone and asks for the gateway template."""
    url, root, _ = webhook
    gateway = pod("ingress-abc", annotations={"inject.istio.io/templates": "gateway"})
    gateway.spec.containers = [client.V1Container(name="istio-proxy", image="auto")]
    gateway.spec.security_context = client.V1PodSecurityContext(
        sysctls=[client.V1Sysctl(name="net.core.somaxconn", value="1024")])
    stored = await _admit(url, gateway, "mesh", root, FAIL)
    assert "initContainers" not in stored["spec"]  # nothing captured
    assert "security.istio.io/tlsMode" not in stored["metadata"]["labels"]
    (proxy,) = stored["spec"]["containers"]
    args = proxy["args"]
    assert args[args.index("--kind") + 1] == "router" and proxy["image"] != "auto"
    assert stored["spec"]["securityContext"]["sysctls"] == [
        {"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}, {"name": "net.core.somaxconn", "value": "1024"}]


async def test_pods_not_selected_pass_unchanged(webhook) -> None:
    url, root, _ = webhook
    for namespace, p in (("plain", pod()), ("off", pod()), ("mesh", pod(labels={"sidecar.istio.io/inject": "false"})),
                         ("mesh", pod(host_network=True))):
        stored = await _admit(url, p, namespace, root, FAIL)
        assert "sidecar.istio.io/status" not in (stored["metadata"].get("annotations") or {})
        assert [c["name"] for c in stored["spec"]["containers"]] == ["reviews"]
    # Opt-in by pod label in a namespace without the label.
    stored = await _admit(url, pod(labels={"sidecar.istio.io/inject": "true"}), "plain", root, FAIL)
    assert "sidecar.istio.io/status" in stored["metadata"]["annotations"]


async def test_bad_annotation_is_refused_naming_it(webhook) -> None:
    url, root, _ = webhook
    with pytest.raises(Refused, match="traffic.sidecar.istio.io/excludeOutboundIPRanges"):
        await _admit(url, pod(annotations={"traffic.sidecar.istio.io/excludeOutboundIPRanges": "nonsense"}),
                     "mesh", root, IGNORE)


async def test_failure_leaves_the_pod_uninjected(webhook, monkeypatch: pytest.MonkeyPatch) -> None:
    url, root, server = webhook

    def broken(*args, **kwargs):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(webhook_module, "inject_template", broken)
    stored = await _admit(url, pod(), "mesh", root, IGNORE)
    assert stored["spec"]["containers"][0]["name"] == "reviews" and len(stored["spec"]["containers"]) == 1
    assert not stored["spec"].get("initContainers")
    assert "security.istio.io/tlsMode" not in stored["metadata"]["labels"]
    with pytest.raises(Refused, match="HTTP 500"):
        await _admit(url, pod(), "mesh", root, FAIL)
    assert server.failures == 2


async def test_not_an_admission_review_is_a_bad_request(webhook) -> None:
    url, root, _ = webhook
    status, body = await asyncio.to_thread(call, url, {"kind": "Pod"}, root)
    assert status == 400 and b"AdmissionReview" in body


async def _admit(*args):
    return await asyncio.to_thread(admit, *args)


def test_json_patch_is_all_or_nothing() -> None:
    from controlplane.inject.jsonpatch import PatchError, apply_patch

    document = {"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "app"}]}}
    patched = apply_patch(document, [{"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
                                     {"op": "add", "path": "/spec/containers/-", "value": {"name": "x"}}])
    assert patched["metadata"]["labels"] == {"a": "1", "b/c": "2"} and len(patched["spec"]["containers"]) == 2
    with pytest.raises(PatchError):
        apply_patch(document, [{"op": "add", "path": "/metadata/labels/b", "value": "2"},
                               {"op": "replace", "path": "/spec/nothing/here", "value": 1}])
    assert document == {"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "app"}]}}
