"""Write the Gateway API status Istio would write back to the objects, through the status
subresource, while this replica leads (as istiod's status controller).

The statuses come from the conversion (``PushContext.routing.gateway_api``), recomputed at
every push. The writer runs in its own thread, woken after a push: it sends a merge patch of
``status`` for each object whose status changed since it last wrote it, and none otherwise; a
route's entries for other controllers' parents are kept.
A condition keeps its ``lastTransitionTime`` while its status stays the same (the API's
convention). A failed write is tried again at the next round; an object that is gone (404)
is forgotten.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s

from controlplane.cluster.worker import DEFAULT_RESYNC_SECONDS, LeaderWorker
from controlplane.model.gateway_api import GROUP, X_GROUP
from controlplane.translate.gateway_api import ObjectStatus
from controlplane.translate.gateway_api.status import CONTROLLER_NAME, MESH_CONTROLLER

log = logging.getLogger(__name__)

# kind -> (version, plural); versions as the CRDs of Gateway API v1.x serve them
RESOURCES = {
    "GatewayClass": ("v1", "gatewayclasses"),
    "Gateway": ("v1", "gateways"),
    "ListenerSet": ("v1", "listenersets"),
    "HTTPRoute": ("v1", "httproutes"),
    "GRPCRoute": ("v1", "grpcroutes"),
    "TLSRoute": ("v1alpha2", "tlsroutes"),
    "TCPRoute": ("v1alpha2", "tcproutes"),
    "BackendTLSPolicy": ("v1", "backendtlspolicies"),
    "XBackendTrafficPolicy": ("v1alpha1", "xbackendtrafficpolicies"),
}
# kind -> its API group where it is not GROUP (the experimental kinds)
GROUPS = {"XBackendTrafficPolicy": X_GROUP}
# The controllers whose entries in a route's parents or a policy's ancestors we write.
OURS = frozenset({CONTROLLER_NAME, MESH_CONTROLLER})

Key = tuple[str, str, str]  # kind, namespace, name


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp(conditions: list[dict[str, Any]], previous: list[dict[str, Any]], now: str) -> None:
    """Give each condition a lastTransitionTime: the previous one when its status did not change."""
    before = {c["type"]: c for c in previous}
    for c in conditions:
        old = before.get(c["type"])
        c["lastTransitionTime"] = old["lastTransitionTime"] if old and old["status"] == c["status"] else now


def status_body(status: ObjectStatus, previous: dict[str, Any] | None, now: str) -> dict[str, Any]:
    """The ``status`` to write, with transition times carried over from ``previous``."""
    body = status.to_dict()
    previous = previous or {}
    if "conditions" in body:
        _stamp(body["conditions"], previous.get("conditions", []), now)  # type: ignore[arg-type]
    for name in ("listeners", "parents", "ancestors"):
        old_items = previous.get(name, [])
        items: list[dict[str, Any]] = body.get(name, [])  # type: ignore[assignment]
        for index, item in enumerate(items):
            old = old_items[index] if index < len(old_items) else {}
            _stamp(item["conditions"], old.get("conditions", []), now)
    return body


def _without_times(body: dict[str, Any] | None) -> Any:
    if isinstance(body, dict):
        return {k: _without_times(v) for k, v in body.items() if k != "lastTransitionTime"}
    if isinstance(body, list):
        return [_without_times(v) for v in body]
    return body


class GatewayStatusWriter(LeaderWorker):
    thread_name = "gateway-api-status"

    def __init__(
        self,
        api_client: k8s.ApiClient,
        statuses: Callable[[], Iterable[ObjectStatus]],
        is_leader: Callable[[], bool],
        *,
        served_versions: Callable[[], Mapping[str, str]] = dict,
        resync_seconds: float = DEFAULT_RESYNC_SECONDS,
    ) -> None:
        """``served_versions``: kind -> the version the API server serves it at (what the
        Kubernetes source found), else RESOURCES' default."""
        super().__init__(is_leader, resync_seconds=resync_seconds)
        self._api = k8s.CustomObjectsApi(api_client)
        self._served_versions = served_versions
        self._statuses = statuses
        self._written: dict[Key, dict[str, Any]] = {}

    def run_round(self, *, full: bool) -> None:
        self.write_changed()

    def forget(self) -> None:
        self._written.clear()  # a new term writes everything again

    def write_changed(self) -> None:
        """One round: patch every object whose status differs from what was written last."""
        now = _now()
        for status in self._statuses():
            if self.interrupted():
                return
            key = (status.kind, status.namespace, status.name)
            previous = self._written.get(key)
            body = status_body(status, previous, now)
            if previous is not None and _without_times(previous) == _without_times(body):
                continue
            try:
                self._patch(status, body)
            except k8s.ApiException as exc:
                if exc.status == 404:  # deleted meanwhile (or its CRD version is not served)
                    self._written.pop(key, None)
                    continue
                log.warning("status of %s: HTTP %s; retried later", status.ref, exc.status)
                continue
            except Exception as exc:  # noqa: BLE001 (API unreachable: next round)
                log.warning("status of %s: %s; retried later", status.ref, type(exc).__name__)
                return
            self._written[key] = body
            self.writes += 1

    def _patch(self, status: ObjectStatus, body: dict[str, Any]) -> None:
        version, plural = RESOURCES[status.kind]
        group = GROUPS.get(status.kind, GROUP)
        version = self._served_versions().get(status.kind, version)
        patch: dict[str, Any] = {"status": body}
        entries = next((name for name in ("parents", "ancestors") if name in body), None)
        if entries is not None:
            # A route may also be bound to other controllers' Gateways, a policy reported on by
            # them: their entries stay (a merge patch replaces the whole list), and the
            # resourceVersion read makes a concurrent write of theirs a 409 rather than lost.
            current: dict[str, Any] = self._api.get_namespaced_custom_object(  # type: ignore[assignment]
                group, version, status.namespace, plural, status.name
            )
            theirs = [p for p in (current.get("status") or {}).get(entries) or ()
                      if p.get("controllerName") not in OURS]
            patch = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                     "status": {**body, entries: [*body[entries], *theirs]}}
        if status.namespace:
            self._api.patch_namespaced_custom_object_status(
                group, version, status.namespace, plural, status.name, patch
            )
        else:
            self._api.patch_cluster_custom_object_status(group, version, plural, status.name, patch)
