"""The one place that wires the layers together: sources → store → debounce → translate →
xDS cache → gRPC, plus the CA, proxy authentication and the monitoring port."""

from __future__ import annotations

import asyncio
import logging
import random
import signal
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from controlplane import auth, xds
from controlplane.auth.ca_service import CsrLimits, add_certificate_service
from controlplane.auth.refusals import RefusalSummary
from controlplane.ca import CertificateAuthority, certificate_renewal_time, load_or_init_ca
from controlplane.server.ca_service_metrics import MeteredCertificateService
from controlplane.server.debounce import Debouncer
from controlplane.server.metrics import Metrics
from controlplane.server.monitoring import MonitoringInputs, MonitoringServer
from controlplane.server.observer import Observer
from controlplane.server.push import Pusher, PushReport, describe, merge_changes
from controlplane.server.settings import Settings
from controlplane.server.workload_certs import WorkloadCertificates
from controlplane.sources.folder import FolderSource
from controlplane.sources.jwks import JwksSource
from controlplane.store import ChangeSet, Store
from controlplane.translate import MeshConfig
from controlplane.xds.limits import peer_address

log = logging.getLogger("controlplane.runtime")


def mesh_config(settings: Settings) -> MeshConfig:
    mesh = MeshConfig(trust_domain=settings.trust_domain, domain_suffix=settings.domain_suffix)
    if settings.mesh_config_file is not None:  # ValidationError names the file and field
        from controlplane.model.mesh import apply_mesh_config
        from controlplane.sources.mesh_config import load_mesh_config

        mesh = apply_mesh_config(mesh, load_mesh_config(settings.mesh_config_file))
    return mesh


class _Callbacks(xds.XdsCallbacks):
    """What the xDS server tells the runtime about proxies."""

    def __init__(self, runtime: ControlPlane) -> None:
        self._rt = runtime

    def on_group_needed(self, group: str, info: xds.StreamInfo) -> None:
        self._rt._spawn(self._rt.pusher.translate_group(group))

    def on_stream_open(self, info: xds.StreamInfo) -> None:
        self._rt.observer.stream_opened(info)  # operator view (controlplane/observer.py)
        self._rt.metrics.xds_connected.labels("v3").inc()
        if isinstance(info.identity, auth.ProvenIdentity):
            self._rt.certificates.stream_opened(info.identity)

    def on_stream_closed(self, info: xds.StreamInfo) -> None:
        self._rt.observer.stream_closed(info)
        self._rt.metrics.xds_connected.labels("v3").dec()
        if isinstance(info.identity, auth.ProvenIdentity):
            self._rt.certificates.stream_closed(info.identity)
        if self._rt.cache.watcher_count(info.group) == 0:
            self._rt.pusher.forget(info.group)

    def on_nack(self, record: xds.NackRecord) -> None:
        self._rt.metrics.xds_rejects.labels(xds.types.short_name(record.type_url).lower()).inc()

    def on_refused(self, reason: str, peer: str) -> None:
        self._rt.xds_refusals.refused(reason, peer_address(peer))  # by host, not connection

    def on_push_queued(self, seconds: float) -> None:
        self._rt.metrics.proxy_queue_time.observe(seconds)


@dataclass
class ControlPlane:
    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        s = self.settings
        self.store = Store()
        self.cache = xds.SnapshotCache()
        self.ca: CertificateAuthority = load_or_init_ca(
            s.ca_dir, s.trust_domain, workload_ttl=timedelta(seconds=s.workload_cert_ttl_seconds)
        )
        self.authenticator = auth.build_authenticator(s.ca_dir, s.trust_domain)
        self.pusher = Pusher(self.cache, lambda: self.store.snapshot, mesh_config(s), on_push=self._pushed)
        self.certificates = WorkloadCertificates(
            lambda: self.ca, self.cache, on_issued=lambda identity: self.metrics.certs_issued.inc()
        )
        self.xds_server = xds.XdsServer(
            self.cache,
            group_of=self.pusher.group_of,
            authenticate=self._authenticate,
            callbacks=_Callbacks(self),
            limits=s.xds_limits,
        )
        self.xds_refusals = RefusalSummary(
            logging.getLogger("controlplane.xds"), "xDS streams",
            interval=s.refusal_log_interval_seconds,
        )
        # The authenticator as a function: _start_kubernetes replaces it (adding TokenReview).
        self.certificate_service = MeteredCertificateService(
            lambda: self.ca,
            lambda: self.authenticator,
            metrics=self.metrics,
            limits=CsrLimits.of(
                identity_rate=s.csr_per_identity_rate,
                identity_burst=s.csr_per_identity_burst,
                peer_rate=s.csr_per_peer_rate,
                peer_burst=s.csr_per_peer_burst,
                max_tracked=s.csr_rate_limit_max_tracked,
            ),
            refusals=RefusalSummary(
                logging.getLogger("controlplane.ca"),
                "certificate requests",
                interval=s.refusal_log_interval_seconds,
            ),
        )
        add_certificate_service(self.xds_server.grpc_server, self.certificate_service)
        self.observer = Observer(self.metrics, self.cache, self.xds_server.sync_statuses)
        self.folders = [FolderSource(self.store, path, source_id=f"folder:{path}") for path in s.config_dirs]
        self.jwks = JwksSource(
            self.store,
            refresh_interval=s.jwks_refresh_seconds,
            refresh_interval_on_failure=s.jwks_refresh_on_failure_seconds,
            timeout=s.jwks_fetch_timeout_seconds,
            max_bytes=s.jwks_max_bytes,
            max_targets=s.jwks_max_locations,
            on_fetch=self._jwks_fetched,
        )
        self.kubernetes: Any = None
        self.monitoring: MonitoringServer | None = None
        self.ready = asyncio.Event()
        self._debouncer: Debouncer[ChangeSet] = Debouncer(
            self._push_changes, merge_changes,
            quiet=s.debounce_after_seconds, max_delay=s.debounce_max_seconds,
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe = lambda: None
        self._unsubscribe_observer = lambda: None
        self.ports: dict[str, int] = {}

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        self._unsubscribe = self.store.subscribe(
            lambda changes: loop.call_soon_threadsafe(self._debouncer.submit, changes)
        )
        self._unsubscribe_observer = self.store.subscribe(self.observer.input_changed)
        for folder in self.folders:
            folder.load()  # reports its own problems
            folder.start()
        if s.kubernetes:
            self.kubernetes = self._start_kubernetes()
        # Keys for RequestAuthentication jwksUri before the first push (istiod fetches on its
        # first push too), then followed and refreshed in the background.
        await asyncio.to_thread(self.jwks.sync)
        self.jwks.start()
        self._debouncer.start()
        await self.pusher.push(None)
        self.ready.set()
        if s.xds_plaintext_port is not None:
            self.ports["xds"] = self.xds_server.add_port(s.listen_host, s.xds_plaintext_port)
        if s.xds_tls_port is not None:
            self.ports["xds-tls"] = self.xds_server.add_port(
                s.listen_host, s.xds_tls_port, self._server_credentials()
            )
        await self.xds_server.start()
        if s.monitoring_port is not None:
            self.monitoring = MonitoringServer(MonitoringInputs(
                registry=self.metrics.registry,
                refresh_metrics=self.refresh_metrics,
                ready=self.ready,
                snapshot=lambda: self.store.snapshot,
                config_errors=lambda: [str(e) for folder in self.folders for e in folder.errors],
                observer=self.observer,
                xds_server=self.xds_server,
                cache=self.cache,
                pusher=self.pusher,
            ))
            self.ports["monitoring"] = await self.monitoring.start(s.listen_host, s.monitoring_port)
        log.info("control plane ready: %s", ", ".join(f"{k} {v}" for k, v in sorted(self.ports.items())))

    async def stop(self) -> None:
        self._unsubscribe()
        self._unsubscribe_observer()
        self.observer.stop()
        for folder in self.folders:
            folder.stop()
        if self.kubernetes is not None:
            self.kubernetes.stop()
        await asyncio.to_thread(self.jwks.stop)
        await self._debouncer.stop()
        self.certificates.stop()
        self.certificate_service.refusals.stop()
        self.xds_refusals.stop()
        if self.monitoring is not None:
            await self.monitoring.stop()
        await self.xds_server.stop()
        for task in list(self._tasks):
            task.cancel()

    async def run_until_signalled(self) -> None:
        """Serve until SIGTERM or Ctrl-C, then shut down cleanly."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            await stop.wait()
            log.info("shutting down")
        finally:
            await self.stop()

    def refresh_metrics(self) -> None:
        """Copy the xDS server's plain counters into Prometheus before a scrape."""
        counters = self.xds_server.counters
        for type_name, count in counters.pushes_by_type.items():
            self.metrics.xds_pushes.labels(type_name.lower()).set(count)
        for reason, count in counters.refused_by_reason.items():
            self.metrics.xds_refused.labels(reason).set(count)
        self.metrics.xds_write_timeout.set(counters.slow_streams)
        self.metrics.config_errors.set(sum(len(f.errors) for f in self.folders))

    # --- internals ----------------------------------------------------------------------------

    def _start_kubernetes(self) -> Any:
        from controlplane.sources.kubernetes import KubernetesSource, api_client_from_config

        api_client = api_client_from_config(self.settings.kubeconfig)
        self.authenticator = auth.build_authenticator(
            self.settings.ca_dir, self.settings.trust_domain, api_client
        )
        source = KubernetesSource(self.store, api_client)
        source.start()
        source.wait_synced(timeout=30)
        for kind in source.missing:
            log.warning("%s: not served by the API server (CRD not installed); skipped", kind)
        return source

    def _server_credentials(self) -> grpc.ServerCredentials:
        """TLS for xDS with a server certificate from our CA, renewed when it nears expiry."""
        rng = random.SystemRandom()
        current: dict[str, Any] = {}

        def fresh() -> grpc.ServerCertificateConfiguration:
            issued = self.ca.issue_server()
            current["renew_at"] = certificate_renewal_time(issued.cert, rng)
            return grpc.ssl_server_certificate_configuration(
                [(issued.private_key_pem, issued.chain_pem.encode())]
            )

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            if datetime.now(timezone.utc) < current["renew_at"]:
                return None
            return fresh()

        return grpc.dynamic_ssl_server_credentials(fresh(), fetch, require_client_authentication=False)

    async def _authenticate(self, call: xds.CallInfo, node: Any) -> auth.ProvenIdentity | None:
        """A credential must prove what the node claims. Without one a proxy is served only on
        the plaintext development port (as Istio's 15010) or with ``xds_allow_anonymous``, and
        never given secrets; on the TLS port it gets nothing, as istiod refuses it."""
        if call.metadata_value("authorization") is None:
            if self.settings.xds_allow_anonymous or _plaintext(call):
                return None
            raise xds.Unauthenticated(
                "no credential: a proxy must prove its identity with a token "
                "(authorization: Bearer ...) to be served over TLS"
            )
        try:
            # Read as translate.parse_node reads it: the namespace checked is the one served.
            claim = auth.claim_from_node(node.id, MessageToDict(node.metadata))
            return await self.authenticator.authenticate(call.metadata, claim)
        except auth.PermissionDenied as error:
            raise xds.PermissionDenied(str(error)) from None
        except auth.AuthError as error:
            raise xds.Unauthenticated(str(error)) from None

    async def _push_changes(self, changes: ChangeSet, debounce_seconds: float) -> None:
        self.metrics.debounce_time.observe(debounce_seconds)
        if not changes:
            return
        self.observer.burst_flushed(debounce_seconds)
        await self.pusher.push(changes)

    def _pushed(self, report: PushReport) -> None:
        self.metrics.xds_push_time.labels("eds" if report.endpoints_only else "full").observe(report.seconds)
        self.observer.pushed(report)
        log.info("%s", describe(report))

    def _jwks_fetched(self, ok: bool) -> None:
        (self.metrics.jwks_fetch_success if ok else self.metrics.jwks_fetch_fail).inc()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _plaintext(call: xds.CallInfo) -> bool:
    """Whether the call came over the plaintext development port (gRPC's auth context says
    ``insecure``; TLS says ``ssl``)."""
    return call.auth_context.get("transport_security_type") == [b"insecure"]


def run(settings: Settings) -> None:
    async def main() -> None:
        # Built inside the loop: grpc.aio binds its server to the loop it is created on.
        await ControlPlane(settings).run_until_signalled()

    asyncio.run(main())
