"""Publish the trust bundle as the ``istio-ca-root-cert`` ConfigMap (key ``root-cert.pem``) in
every namespace, as istiod's namespace controller does; only while this replica leads.

Pods mount it to verify the control plane's certificate (and their peers'). The publisher
runs in its own thread: woken when leadership starts, when namespaces change and when the
root changes, and every ``resync_seconds`` it checks every namespace again (restoring a
ConfigMap someone edited or deleted). A write that conflicts is retried at the next round.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from kubernetes import client as k8s

from controlplane.cluster.worker import DEFAULT_RESYNC_SECONDS, LeaderWorker

log = logging.getLogger(__name__)

ROOT_CONFIGMAP = "istio-ca-root-cert"
ROOT_CERT_KEY = "root-cert.pem"
# Istio's inject.IgnoredNamespaces: no workloads of the mesh run there.
IGNORED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease",
                                "local-path-storage"})


class RootCertPublisher(LeaderWorker):
    thread_name = "root-configmaps"

    def __init__(
        self,
        api_client: k8s.ApiClient,
        namespaces: Callable[[], Iterable[str]],
        root_pem: Callable[[], str],
        is_leader: Callable[[], bool],
        *,
        resync_seconds: float = DEFAULT_RESYNC_SECONDS,
    ) -> None:
        super().__init__(is_leader, resync_seconds=resync_seconds)
        self._core = k8s.CoreV1Api(api_client)
        self._namespaces = namespaces
        self._root_pem = root_pem
        self._published: dict[str, str] = {}  # namespace -> root written there

    def run_round(self, *, full: bool) -> None:
        self.publish(full=full)

    def forget(self) -> None:
        self._published.clear()  # a new term checks everything again

    def publish(self, *, full: bool = True) -> None:
        """One round: every namespace not yet known to hold the current root (all with
        ``full``, reading each ConfigMap back)."""
        root = self._root_pem()
        for namespace in sorted(set(self._namespaces()) - IGNORED_NAMESPACES):
            if self.interrupted():
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
