"""What the API server does with a mutating webhook, for the local cluster: send the pod in an
AdmissionReview v1 over HTTPS (verifying the webhook's certificate against the mesh's root),
then store the patched pod, refuse it, or apply the webhook's ``failurePolicy`` when the call
fails (Ignore: created as it was sent; Fail: refused)."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
import uuid
from typing import Any

from controlplane.inject.jsonpatch import apply_patch


class Refused(Exception):
    pass


def review_for(pod: dict[str, Any], namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "object": pod,
        },
    }


def call(url: str, review: dict[str, Any], root_pem: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """POST over TLS, verifying the webhook's certificate (its SANs) against the root."""
    context = ssl.create_default_context(cadata=root_pem)
    request = urllib.request.Request(url, json.dumps(review).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def admit(url: str, pod: dict[str, Any], namespace: str, root_pem: str, *, failure_policy: str = "Fail",
          webhook_name: str = "sidecar-injector.istio.io") -> dict[str, Any]:
    """The pod as the API server would store it, or Refused."""
    review = review_for(pod, namespace)
    try:
        status, body = call(url, review, root_pem)
    except (OSError, ssl.SSLError):
        status, body = 0, b""
    if status != 200:
        if failure_policy == "Ignore":
            return review["request"]["object"]
        raise Refused(f"failed calling webhook {webhook_name}: HTTP {status}")
    response = json.loads(body)["response"]
    if response.get("uid") != review["request"]["uid"]:
        raise Refused(f"webhook {webhook_name} answered another request")
    if not response["allowed"]:
        raise Refused(response.get("status", {}).get("message", ""))
    if "patch" not in response:
        return review["request"]["object"]
    if response.get("patchType") != "JSONPatch":
        raise Refused(f"webhook {webhook_name}: patchType {response.get('patchType')!r}")
    return apply_patch(review["request"]["object"], json.loads(base64.b64decode(response["patch"])))
