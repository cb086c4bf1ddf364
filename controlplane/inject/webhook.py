"""The mutating admission webhook: AdmissionReview v1 in, a JSON patch out (Istio's
``/inject``). ``review()`` is pure; ``WebhookServer`` serves it over TLS with a certificate
from the control plane's CA.

A pod that needs no sidecar is allowed unchanged. A pod whose annotations cannot be honoured
is refused with a message naming the annotation (as Istio's injector refuses it). Any other
failure answers HTTP 500, so the API server applies the webhook's ``failurePolicy`` (Ignore:
the pod is created uninjected; Fail: it is refused): the patch is all of the injection or
nothing, never half of it."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from controlplane.httpd import HttpServer, Request, Response
from controlplane.inject.mutate import inject_template, json_patch
from controlplane.inject.params import InjectionError, InjectorSettings
from controlplane.inject.policy import injection_required, webhook_selects
from controlplane.inject.workload import workload_of_pod

log = logging.getLogger("controlplane.inject")

API_VERSION = "admission.k8s.io/v1"
INJECT_PATH = "/inject"
NamespaceLabels = Callable[[str], Mapping[str, str] | None]


class WebhookError(ValueError):
    """An AdmissionReview that is not one (answered 400)."""


def _response(uid: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": {"uid": uid, **fields}}


def review(body: Mapping[str, Any], settings: InjectorSettings, namespace_labels: NamespaceLabels | None = None) -> dict[str, Any]:
    """Answer one AdmissionReview. ``namespace_labels`` gives a namespace's labels (None when
    the namespace is not known: the API server's selectors are then trusted)."""
    request = body.get("request") if isinstance(body, Mapping) else None
    if not isinstance(request, Mapping) or body.get("apiVersion") != API_VERSION:
        raise WebhookError(f"expected an {API_VERSION} AdmissionReview with a request")
    uid = str(request.get("uid", ""))
    pod = request.get("object")
    kind = (request.get("kind") or {}).get("kind")
    if kind != "Pod" or not isinstance(pod, Mapping):
        return _response(uid, allowed=True)
    metadata = dict(pod.get("metadata") or {})
    spec = dict(pod.get("spec") or {})
    namespace = str(request.get("namespace") or metadata.get("namespace") or "default")
    name = str(metadata.get("name") or metadata.get("generateName") or "")
    # The webhook configuration's selectors again where the namespace is known: an API server
    # without them (or a stale configuration) must not get pods injected that Istio would skip.
    labels = namespace_labels(namespace) if namespace_labels is not None else None
    if labels is not None and not webhook_selects(labels, metadata.get("labels") or {}, settings.revision):
        return _response(uid, allowed=True)
    decision = injection_required(metadata, spec, namespace=namespace, policy=settings.policy)
    if not decision.inject:
        log.info("pod %s/%s not injected: %s", namespace, name, decision.reason)
        return _response(uid, allowed=True)
    try:
        injected = inject_template(metadata, spec, workload_of_pod(metadata, namespace), settings,
                                   f"Pod {namespace}/{name}: metadata")
    except InjectionError as error:
        return _response(uid, allowed=False, status={"code": 400, "reason": "BadRequest", "message": str(error)})
    patch = json_patch(metadata, spec, injected)
    return _response(
        uid, allowed=True, patchType="JSONPatch",
        patch=base64.b64encode(json.dumps(patch, separators=(",", ":")).encode()).decode(),
    )


def server_tls(cert_chain_pem: str, key_pem: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    load_certificate(context, cert_chain_pem, key_pem)
    return context


def load_certificate(context: ssl.SSLContext, cert_chain_pem: str, key_pem: str) -> None:
    """(Re)load the serving certificate: handshakes from now on use it, open ones are kept."""
    # ssl loads keys from files only: a private temporary directory, removed at once.
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert.write_text(cert_chain_pem)
        key.touch(mode=0o600)
        key.write_text(key_pem)
        context.load_cert_chain(cert, key)


class WebhookServer:
    """``POST /inject`` over TLS."""

    def __init__(self, settings: InjectorSettings, namespace_labels: NamespaceLabels | None = None) -> None:
        self.settings = settings
        self.namespace_labels = namespace_labels
        self.requests = 0
        self.failures = 0
        self._http = HttpServer(self._handle, max_body_bytes=8 * 1024 * 1024)

    async def start(self, host: str, port: int, tls: ssl.SSLContext) -> int:
        return await self._http.start(host, port, tls)

    async def stop(self) -> None:
        await self._http.stop()

    async def _handle(self, request: Request) -> Response:
        self.requests += 1
        if request.path.split("?")[0] != INJECT_PATH or request.method != "POST":
            return Response(404, f"POST {INJECT_PATH} only\n".encode())
        try:
            body = json.loads(request.body)
            answer = await asyncio.to_thread(review, body, self.settings, self.namespace_labels)
        except (ValueError, WebhookError) as error:
            return Response(400, f"{error}\n".encode()[:2000])
        except Exception:
            self.failures += 1
            log.exception("injection failed; the API server applies the webhook's failurePolicy")
            return Response(500, b"injection failed\n")
        return Response(200, json.dumps(answer).encode(), "application/json")
