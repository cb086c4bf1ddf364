"""Publish the trust bundle as the ``istio-ca-root-cert`` ConfigMap (key ``root-cert.pem``) in
every namespace, as istiod's namespace controller does; only while this replica leads.

Pods mount it to verify the control plane's certificate (and their peers'). The publisher
runs in its own thread: woken when leadership starts, when namespaces change and when the
root changes, and every ``resync_seconds`` it checks every namespace again (restoring a
ConfigMap someone edited or deleted). A write that conflicts is retried at the next round.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from kubernetes import client as k8s

log = logging.getLogger(__name__)

ROOT_CONFIGMAP = "istio-ca-root-cert"
ROOT_CERT_KEY = "root-cert.pem"
# Istio's inject.IgnoredNamespaces: no workloads of the mesh run there.
IGNORED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease",
                                "local-path-storage"})
DEFAULT_RESYNC_SECONDS = 60.0


class RootCertPublisher:
    def __init__(
        self,
        api_client: k8s.ApiClient,
        namespaces: Callable[[], Iterable[str]],
        root_pem: Callable[[], str],
        is_leader: Callable[[], bool],
        *,
        resync_seconds: float = DEFAULT_RESYNC_SECONDS,
    ) -> None:
        self._core = k8s.CoreV1Api(api_client)
        self._namespaces = namespaces
        self._root_pem = root_pem
        self._is_leader = is_leader
        self._resync = resync_seconds
        self._published: dict[str, str] = {}  # namespace -> root written there
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.writes = 0  # ConfigMaps created or replaced
        self.rounds = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="root-configmaps", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def wake(self, *_: object) -> None:
        """Look again soon (namespaces, the root or leadership changed)."""
        self._wake.set()

    def _run(self) -> None:
        full = True
        while not self._stop.is_set():
            if self._is_leader():
                self.publish(full=full)
            else:
                self._published.clear()  # a new term checks everything again
            self.rounds += 1
            self._wake.clear()
            woken = self._wake.wait(self._resync)
            full = not woken

    def publish(self, *, full: bool = True) -> None:
        """One round: every namespace not yet known to hold the current root (all with
        ``full``, reading each ConfigMap back)."""
        root = self._root_pem()
        for namespace in sorted(set(self._namespaces()) - IGNORED_NAMESPACES):
            if self._stop.is_set() or not self._is_leader():
                return
            if not full and self._published.get(namespace) == root:
                continue
            try:
                self._ensure(namespace, root)
                self._published[namespace] = root
            except k8s.ApiException as exc:
                if exc.status != 409:  # 409: changed under us, or just created: next round
                    log.warning("publishing %s in %s failed: HTTP %s", ROOT_CONFIGMAP,
                                namespace, exc.status)
            except Exception as exc:  # noqa: BLE001 (API unreachable: next round)
                log.warning("publishing %s in %s failed: %s", ROOT_CONFIGMAP, namespace,
                            type(exc).__name__)
                return

    def _ensure(self, namespace: str, root: str) -> None:
        body = k8s.V1ConfigMap(
            api_version="v1",
            kind="ConfigMap",
            metadata=k8s.V1ObjectMeta(name=ROOT_CONFIGMAP, namespace=namespace,
                                      labels={"istio.io/config": "true"}),
            data={ROOT_CERT_KEY: root},
        )
        try:
            current = self._core.read_namespaced_config_map(ROOT_CONFIGMAP, namespace)
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
            self._core.create_namespaced_config_map(namespace, body)
            self.writes += 1
            return
        if (current.data or {}).get(ROOT_CERT_KEY) == root:
            return
        assert body.metadata is not None
        body.metadata.resource_version = current.metadata.resource_version if current.metadata \
            else None
        self._core.replace_namespaced_config_map(ROOT_CONFIGMAP, namespace, body)
        self.writes += 1
