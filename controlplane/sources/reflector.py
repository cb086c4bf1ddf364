"""List and watch one Kubernetes collection into the store, in a thread.

The loop that client-go calls a reflector: list (which gives a resourceVersion),
then watch from that resourceVersion with bookmarks, resuming from the last seen
resourceVersion when the connection drops (with jittered exponential backoff,
reset once the API answers again: capped at 30 s while it answers with errors, at
2 s while it cannot be reached, so the store catches up within seconds of its
return), and relisting when the server answers 410 Gone; the relist replaces this
collection's resources in the store, so objects deleted meanwhile are removed.

It uses the official ``kubernetes`` client for every request (authentication,
TLS, kubeconfig), asking for the raw JSON (``_preload_content=False``): objects
stay in their API form (camelCase, as ``kubectl get -o yaml`` shows) and skip the
client's slow model classes. Events are read with the client's own
``iter_resp_lines``; we do not use ``Watch.stream`` because it retries a 410
from the same stale resourceVersion and loses the resourceVersion of bookmarks
when asked not to deserialize.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from controlplane.model.base import Origin, Resource, ResourceKey
from controlplane.sources.diagnostics import Diagnostic
from controlplane.sources.parsing import parse_document
from controlplane.sources.yaml_loader import Document
from controlplane.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ApiResource:
    """A collection: kind, group/version ("v1", "discovery.k8s.io/v1") and plural."""

    kind: str
    api_version: str
    plural: str

    @property
    def path(self) -> str:
        if "/" not in self.api_version:
            return f"/api/{self.api_version}/{self.plural}"
        return f"/apis/{self.api_version}/{self.plural}"


def _name_of(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


class Gone(Exception):
    """The resourceVersion we watch from has expired (410): relist."""


# Built-in collections have typed list functions; everything else goes through
# CustomObjectsApi, whose /apis/{group}/{version}/{plural} path does not fit "v1".
_TYPED_LISTS: dict[tuple[str, str], tuple[type, str]] = {
    ("v1", "services"): (client.CoreV1Api, "list_service_for_all_namespaces"),
    ("v1", "pods"): (client.CoreV1Api, "list_pod_for_all_namespaces"),
    ("v1", "namespaces"): (client.CoreV1Api, "list_namespace"),
    ("v1", "secrets"): (client.CoreV1Api, "list_secret_for_all_namespaces"),
    ("v1", "configmaps"): (client.CoreV1Api, "list_config_map_for_all_namespaces"),
    ("v1", "endpoints"): (client.CoreV1Api, "list_endpoints_for_all_namespaces"),
    ("discovery.k8s.io/v1", "endpointslices"): (
        client.DiscoveryV1Api,
        "list_endpoint_slice_for_all_namespaces",
    ),
}


def list_function(api_client: client.ApiClient, resource: ApiResource) -> Callable[..., Any]:
    typed = _TYPED_LISTS.get((resource.api_version, resource.plural))
    if typed is not None:
        api_class, method = typed
        return getattr(api_class(api_client), method)  # type: ignore[no-any-return]
    group, version = resource.api_version.split("/", 1)
    custom = client.CustomObjectsApi(api_client)
    return lambda **kw: custom.list_cluster_custom_object(group, version, resource.plural, **kw)


class Backoff:
    """Exponential backoff with jitter, reset once the API answers again."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial, self.maximum, self.attempt = initial, maximum, 0

    def next_delay(self, maximum: float | None = None) -> float:
        cap = self.maximum if maximum is None else min(maximum, self.maximum)
        delay = min(cap, self.initial * (2 ** min(self.attempt, 32)))
        self.attempt += 1
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempt = 0


@dataclass(frozen=True)
class ReflectorOptions:
    watch_timeout_seconds: int = 300  # the server ends the watch; we resume (client-go: 5-10 min)
    backoff_initial: float = 0.5
    backoff_max: float = 30.0  # the API answers with errors: it is struggling (client-go: 30 s)
    # The API cannot be reached at all (refused, reset, timed out): retrying costs it nothing,
    # and a short cap means the store catches up within seconds of its return (a 60 s outage
    # with a 30 s cap left it stale for up to 30 s more).
    unreachable_backoff_max: float = 2.0
    missing_recheck_seconds: float = 60.0  # how often to look again for an absent CRD
    default_namespace: str = "default"


class Reflector:
    """Keeps the store's ``source_id`` resources equal to one collection (first of
    ``candidates`` the server has; e.g. EndpointSlices, else Endpoints)."""

    def __init__(
        self,
        store: Store,
        api_client: client.ApiClient,
        candidates: tuple[ApiResource, ...],
        source_id: str,
        *,
        optional: bool = False,
        options: ReflectorOptions = ReflectorOptions(),
        claim: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """``claim``: offered every object listed or watched (as the API serves it), takes
        those that are not input (the CA's own Secrets), returning True; a claimed object
        stays out of the store, or leaves it as if deleted."""
        self.store = store
        self.api_client = api_client
        self.candidates = candidates
        self.source_id = source_id
        self.optional = optional
        self.options = options
        self.claim = claim
        self.resource: ApiResource | None = None  # the candidate in use
        self.resource_version: str | None = None
        self.synced = threading.Event()  # set after the first complete list (or absence)
        self.missing = False
        self._errors: dict[ResourceKey | str, tuple[Diagnostic, ...]] = {}
        # What we put in the store, by (metadata.namespace, metadata.name).
        self._objects: dict[tuple[str, str], Resource] = {}
        self._stop = threading.Event()
        self._response: Any = None
        self._thread: threading.Thread | None = None
        self._backoff = Backoff(options.backoff_initial, options.backoff_max)
        self._failing_since: float | None = None  # monotonic time of the first failure
        self._failures = 0
        self._next_failure_log = 0.0

    # --- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"reflector-{self.source_id}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._interrupt()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for ds in list(self._errors.values()) for d in ds)

    # --- the loop --------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.resource is None and not self._discover():
                    self.synced.set()
                    self._stop.wait(self.options.missing_recheck_seconds)
                    continue
                if self.resource_version is None:
                    self._relist()
                self._watch()
                self._answered()  # the server ended the watch cleanly
            except Gone:
                log.info(
                    "%s: resourceVersion %s expired; relisting",
                    self.source_id,
                    self.resource_version,
                )
                self.resource_version = None
            except ApiException as exc:
                if exc.status == 410:
                    log.info("%s: resourceVersion expired (HTTP 410); relisting", self.source_id)
                    self.resource_version = None
                    continue
                if exc.status == 404:  # the CRD was removed under us: look for it again
                    self.resource = None
                self._wait_backoff(f"HTTP {exc.status} {exc.reason}")
            except Exception as exc:  # noqa: BLE001 - connection refused, reset, timeouts, bad JSON: retry
                if self._stop.is_set():
                    return
                unreachable = isinstance(exc, (urllib3.exceptions.HTTPError, OSError))
                self._wait_backoff(
                    f"{type(exc).__name__}: {exc}",
                    self.options.unreachable_backoff_max if unreachable else None,
                )

    def _wait_backoff(self, why: str, maximum: float | None = None) -> None:
        delay = self._backoff.next_delay(maximum)
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        self._failures += 1
        # The first failure, then one line a minute while it lasts: an outage of the API is
        # not a warning per retry per collection.
        level = logging.WARNING if now >= self._next_failure_log else logging.DEBUG
        if level == logging.WARNING:
            self._next_failure_log = now + 60.0
        log.log(level, "%s: %s; retrying in %.1fs", self.source_id, why, delay)
        self._stop.wait(delay)

    def _answered(self) -> None:
        """The API answered again: retry quickly the next time, and say it recovered."""
        self._backoff.reset()
        if self._failing_since is not None:
            log.info(
                "%s: the API answers again after %d failed attempts over %.1fs",
                self.source_id,
                self._failures,
                time.monotonic() - self._failing_since,
            )
        self._failing_since, self._failures, self._next_failure_log = None, 0, 0.0

    def _discover(self) -> bool:
        for candidate in self.candidates:
            try:
                body = self._list(candidate)
            except ApiException as exc:
                if exc.status == 404:
                    continue
                raise
            self.resource = candidate
            self._apply_list(body)
            if self.missing:
                log.info("%s: %s is now served", self.source_id, candidate.path)
            self.missing = False
            return True
        if not self.missing:
            level = logging.WARNING if self.optional else logging.ERROR
            paths = ", ".join(c.path for c in self.candidates)
            log.log(
                level,
                "%s: not served by this cluster (%s); CRD not installed? Looking again every %ss",
                self.source_id,
                paths,
                self.options.missing_recheck_seconds,
            )
        self.missing = True
        if self._objects:  # the CRD went away, and its objects with it
            self._objects, self._errors = {}, {}
            self.store.replace(self.source_id, ())
        self.resource_version = None
        return False

    def _list(self, resource: ApiResource) -> dict[str, Any]:
        response = list_function(self.api_client, resource)(
            _preload_content=False, _request_timeout=(10, 60)
        )
        try:
            return json.loads(response.data)  # type: ignore[no-any-return]
        finally:
            response.release_conn()

    def _relist(self) -> None:
        assert self.resource is not None
        self._apply_list(self._list(self.resource))

    def _apply_list(self, body: dict[str, Any]) -> None:
        """Make the store hold exactly this list (a relist deletes what vanished)."""
        assert self.resource is not None
        objects: dict[tuple[str, str], Resource] = {}
        errors: dict[ResourceKey | str, tuple[Diagnostic, ...]] = {}
        for item in body.get("items") or []:
            if not isinstance(item, dict) or self._claimed(item):
                continue
            resource, key, diagnostics = self._parse(item)
            name = _name_of(item)
            if diagnostics:
                errors[key or repr(name)] = diagnostics
            if resource is None and name in self._objects:
                resource = self._objects[name]  # keep the last valid version
            if resource is not None:
                objects[name] = resource
        self._objects = objects
        self._errors = errors
        self.store.replace(self.source_id, objects.values())
        self.resource_version = (
            str((body.get("metadata") or {}).get("resourceVersion") or "") or None
        )
        self.synced.set()
        self._answered()

    def _watch(self) -> None:
        assert self.resource is not None
        timeout = self.options.watch_timeout_seconds
        response = list_function(self.api_client, self.resource)(
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout,
            _preload_content=False,
            _request_timeout=(10, timeout + 30),
        )
        self._response = response
        try:
            if self._stop.is_set():
                return
            for line in iter_resp_lines(response):
                if line:
                    self._handle(json.loads(line))
                    if self._failing_since is not None or self._backoff.attempt:
                        self._answered()  # events flow (a watch cut at once does not count)
                if self._stop.is_set():
                    return
        finally:
            self._response = None
            response.close()
            response.release_conn()

    def _handle(self, event: dict[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise Gone()
            raise ApiException(
                status=code or 500, reason=f"{obj.get('reason')}: {obj.get('message')}"
            )
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind in ("ADDED", "MODIFIED") and self._claimed(obj):
            kind = "DELETED"  # never stored; and gone if it was stored before it was claimed
        if kind in ("ADDED", "MODIFIED"):
            resource, key, diagnostics = self._parse(obj)
            if diagnostics:
                self._errors[key or repr(_name_of(obj))] = diagnostics
            elif key is not None:
                self._errors.pop(key, None)
            if resource is not None:
                self._objects[_name_of(obj)] = resource
                self.store.apply(self.source_id, [resource])
        elif kind == "DELETED":
            gone = self._objects.pop(_name_of(obj), None)
            if gone is not None:
                self._errors.pop(gone.key, None)
                self.store.apply(self.source_id, deletes=[gone.key])
        if version:
            self.resource_version = str(version)

    def _claimed(self, obj: dict[str, Any]) -> bool:
        return self.claim is not None and self.claim(obj)

    def _parse(
        self, obj: dict[str, Any]
    ) -> tuple[Resource | None, ResourceKey | None, tuple[Diagnostic, ...]]:
        assert self.resource is not None
        obj.setdefault("kind", self.resource.kind)
        obj.setdefault("apiVersion", self.resource.api_version)
        parsed = parse_document(Document(obj, Origin()), self.options.default_namespace)
        for diagnostic in parsed.diagnostics:
            log.log(
                logging.ERROR if diagnostic.is_error else logging.WARNING,
                "%s: %s",
                self.source_id,
                diagnostic,
            )
        return parsed.resource, parsed.key, parsed.diagnostics

    def _interrupt(self) -> None:
        """Unblock a thread reading the watch (a blocked recv ignores close())."""
        response = self._response
        if response is None:
            return
        try:
            connection = getattr(response, "connection", None) or getattr(
                response, "_connection", None
            )
            sock = getattr(connection, "sock", None)
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except Exception:  # noqa: BLE001, S110 - best effort; the read times out anyway
            pass
