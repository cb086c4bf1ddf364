"""The one place that wires the layers together: sources → store → debounce → translate →
xDS cache → gRPC, plus the CA, proxy authentication and the monitoring port."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import signal
import ssl
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from controlplane import auth, xds
from controlplane.auth.ca_service import CsrLimits, add_certificate_service
from controlplane.auth.refusals import RefusalSummary
from controlplane.ca import CertificateAuthority, certificate_renewal_time, load_or_init_ca
from controlplane.inject.webhook import WebhookServer
from controlplane.server.ca_service_metrics import MeteredCertificateService
from controlplane.server.debounce import Debouncer
from controlplane.server.heap import HeapTrimmer, trim_periodically
from controlplane.server.metrics import Metrics
from controlplane.server.monitoring import MonitoringInputs, MonitoringServer
from controlplane.server.observer import Observer
from controlplane.server.push import (
    Pusher,
    PushReport,
    awaits_pods,
    describe,
    endpoint_kinds_only,
    merge_changes,
)
from controlplane.server.settings import Settings
from controlplane.server.workload_certs import WorkloadCertificates
from controlplane.sources.folder import FolderSource
from controlplane.sources.jwks import JwksSource
from controlplane.sources.system_ca import load_system_ca_bundle
from controlplane.store import ChangeSet, Store
from controlplane.translate import MeshConfig
from controlplane.xds.limits import peer_address

log = logging.getLogger("controlplane.runtime")
FOLLOWING_EVENTS_SECONDS = 0.01  # see ControlPlane._settle_seconds


def mesh_config(settings: Settings) -> MeshConfig:
    mesh = MeshConfig(trust_domain=settings.trust_domain, domain_suffix=settings.domain_suffix)
    if settings.mesh_config_file is not None:  # ValidationError names the file and field
        from controlplane.model.mesh import apply_mesh_config
        from controlplane.sources.mesh_config import load_mesh_config

        mesh = apply_mesh_config(mesh, load_mesh_config(settings.mesh_config_file))
    # Istio's VERIFY_CERTIFICATE_AT_CLIENT: TLS to a backend that names no CA is checked against
    # the OS trust bundle, which the proxies get from here (no agent beside them reads it).
    return replace(mesh, system_ca_bundle=load_system_ca_bundle())


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

    def on_stream_settled(self, stream_id: int) -> None:
        self._rt.observer.stream_settled(stream_id)  # convergence, without polling

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
        # In a cluster the API client comes first: the CA root lives in a Secret there.
        self.api_client: Any = _api_client(s) if s.kubernetes else None
        self.ca_secret: Any = None  # the Secret the CA came from (cluster mode)
        if self.api_client is not None and s.ca_from_secret:
            from controlplane.cluster.ca_secret import sync_ca_secret

            self.ca_secret = sync_ca_secret(
                self.api_client, s.system_namespace, s.ca_dir, s.trust_domain
            )
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
        self._folder_source_ids = frozenset(folder.source_id for folder in self.folders)
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
        self.ca_follower: Any = None  # takes the CA's Secrets from the watch (cluster mode)
        # Singleton work (status writes, root ConfigMaps, root rotation) runs only while
        # ``leadership.is_leader``; ``leadership.subscribe(callback)`` tells of changes.
        self.leadership: Any = _leadership(s, self.api_client)
        self.root_publisher: Any = None
        self.gateway_status: Any = None  # Gateway API status written back (cluster mode)
        self.webhook_ca_bundle: Any = None  # the injector webhook trusts our root (cluster mode)
        self._cluster_unsubscribes: list[Any] = []
        self.monitoring: MonitoringServer | None = None
        self.injection_webhook: WebhookServer | None = None
        self.ready = asyncio.Event()
        self._debouncer: Debouncer[ChangeSet] = Debouncer(
            self._push_changes, merge_changes,
            quiet=s.debounce_after_seconds, max_delay=s.debounce_max_seconds,
            urgent=endpoint_kinds_only,  # cheap pushes: never held past the quiet period
            settle=self._settle_seconds,
            leading=self._takes_leading_edge,
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._warming: asyncio.Task[Any] | None = None  # the last Pusher.warm
        self._unsubscribe = lambda: None
        self._unsubscribe_observer = lambda: None
        self.ports: dict[str, int] = {}

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        def to_debouncer(changes: ChangeSet) -> None:  # from the sources' threads
            loop.call_soon_threadsafe(self._debouncer.submit, changes)

        self._unsubscribe = self.store.subscribe(to_debouncer)
        self._unsubscribe_observer = self.store.subscribe(self.observer.input_changed)
        for folder in self.folders:
            folder.load()  # reports its own problems
            folder.start()
        if s.kubernetes:
            self.kubernetes = self._start_kubernetes()
            self.leadership.start()
            self.root_publisher = self._start_root_publisher()
            self.gateway_status = self._start_gateway_status()
            self.webhook_ca_bundle = self._start_webhook_ca_bundle()
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
                config_errors=lambda: [str(e) for folder in self.folders for e in folder.errors]
                + [str(p) for p in self.pusher.envoy_filter_problems()],
                observer=self.observer,
                xds_server=self.xds_server,
                cache=self.cache,
                pusher=self.pusher,
                prometheus_url=s.prometheus_url,
            ))
            self.ports["monitoring"] = await self.monitoring.start(
                s.monitoring_host or s.listen_host, s.monitoring_port
            )
        if s.injection_webhook_port is not None:
            self.ports["injection-webhook"] = await self._start_injection_webhook(s.injection_webhook_port)
        log.info("control plane ready: %s", ", ".join(f"{k} {v}" for k, v in sorted(self.ports.items())))

    async def stop(self) -> None:
        # Singleton work first, then the Lease is released: another replica takes over at once
        # (not after the lease duration) while this one still serves its proxies.
        for unsubscribe in self._cluster_unsubscribes:
            unsubscribe()
        if self.root_publisher is not None:
            self.root_publisher.stop()
        if self.gateway_status is not None:
            self.gateway_status.stop()
        if self.webhook_ca_bundle is not None:
            self.webhook_ca_bundle.stop()
        await asyncio.to_thread(self.leadership.stop)  # releases the Lease: a quick handover
        if self.injection_webhook is not None:
            await self.injection_webhook.stop()
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
        # What the initial load and translation made lives long: the cyclic collector need not
        # scan it again in each full collection (event-loop pauses that grow with the mesh).
        # Here, in the process's own entry, not in start(): tests run many in one process.
        gc.collect()
        gc.freeze()
        # Again once the units are warm (Pusher.warm, after ready): a few milliseconds, with
        # the rest frozen; else the first proxies' translations pay a full collection of them.
        if self._warming is not None:
            await asyncio.wait([self._warming])
            gc.collect()
            gc.freeze()
        # The free heap that bursts of proxy requests leave in glibc's arenas goes back to
        # the system (server/heap.py); process-wide, so here too.
        self._spawn(trim_periodically(HeapTrimmer(), self.settings.heap_trim_interval_seconds))
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
        self.metrics.envoy_filter_status.clear()
        for name, count in self.pusher.envoy_filter_error_counts().items():
            self.metrics.envoy_filter_status.labels(name, "error").set(count)

    # --- internals ----------------------------------------------------------------------------

    def _start_kubernetes(self) -> Any:
        from controlplane.cluster.ca_secret import CaSecretFollower
        from controlplane.sources.kubernetes import KubernetesSource

        api_client = self.api_client
        self.authenticator = auth.build_authenticator(
            self.settings.ca_dir, self.settings.trust_domain, api_client
        )
        # The CA's own Secrets (its key) never reach the store: the follower takes them, and
        # reloads the CA when the one it signs with changes (a root rotation).
        loop = asyncio.get_running_loop()
        self.ca_follower = CaSecretFollower(
            self.settings.system_namespace, self.ca_secret, self.settings.ca_dir,
            on_change=lambda: loop.call_soon_threadsafe(self._ca_changed),
        )
        source = KubernetesSource(self.store, api_client, claim={"Secret": self.ca_follower.claim})
        source.start()
        source.wait_synced(timeout=30)
        for kind in source.missing:
            log.warning("%s: not served by the API server (CRD not installed); skipped", kind)
        return source

    def _ca_changed(self) -> None:
        """The CA Secret changed: sign with it, and trust both roots until the next start."""
        s = self.settings
        try:
            self.ca = load_or_init_ca(
                s.ca_dir, s.trust_domain, workload_ttl=timedelta(seconds=s.workload_cert_ttl_seconds)
            )
        except Exception:  # a bad CA must not take the server down
            log.exception("reloading the CA from %s failed; still signing with the previous one", s.ca_dir)
            return
        self.certificates.reissue_all()  # proxies get the new bundle and certificate over SDS
        for worker in (self.root_publisher, self.webhook_ca_bundle):
            if worker is not None:
                worker.wake()

    def _start_root_publisher(self) -> Any:
        """The trust bundle as istio-ca-root-cert in every namespace, while leading."""
        from controlplane.cluster.root_configmap import RootCertPublisher

        publisher = RootCertPublisher(
            self.api_client,
            namespaces=lambda: [ns.meta.name for ns in self.store.snapshot.of_kind("Namespace")],
            root_pem=lambda: self.ca.bundle.pem,
            is_leader=lambda: self.leadership.is_leader,
        )
        self._cluster_unsubscribes += [
            self.store.subscribe(
                lambda changes: publisher.wake() if "Namespace" in changes.kinds else None
            ),
            self.leadership.subscribe(publisher.wake),
        ]
        publisher.start()
        return publisher

    def _start_gateway_status(self) -> Any:
        """The Gateway API status Istio writes, patched onto the objects while leading."""
        from controlplane.cluster.gateway_status import GROUP as GATEWAY_API_GROUP
        from controlplane.cluster.gateway_status import GatewayStatusWriter

        writer = GatewayStatusWriter(
            self.api_client,
            statuses=lambda: self.pusher.context().routing.gateway_api.statuses,
            is_leader=lambda: self.leadership.is_leader,
            served_versions=lambda: self.kubernetes.served_versions(GATEWAY_API_GROUP),
        )
        self._cluster_unsubscribes.append(self.leadership.subscribe(writer.wake))
        writer.start()
        return writer

    def _start_webhook_ca_bundle(self) -> Any:
        """The injector's MutatingWebhookConfiguration trusts our root, set while leading."""
        from controlplane.cluster.webhook_ca_bundle import WebhookCaBundlePatcher

        patcher = WebhookCaBundlePatcher(
            self.api_client,
            root_pem=lambda: self.ca.bundle.pem,
            is_leader=lambda: self.leadership.is_leader,
        )
        self._cluster_unsubscribes.append(self.leadership.subscribe(patcher.wake))
        patcher.start()
        return patcher

    async def _start_injection_webhook(self, port: int) -> int:
        """Sidecar injection over TLS with a server certificate from our CA; a Namespace the
        store holds has its labels checked against Istio's webhook selectors."""
        from controlplane.ca import DEFAULT_SERVER_IPS
        from controlplane.inject import InjectorSettings
        from controlplane.inject.webhook import load_certificate, server_tls
        from controlplane.model.checks import is_ip
        from controlplane.model.kubernetes import Namespace

        def namespace_labels(name: str) -> dict[str, str] | None:
            namespace = self.store.snapshot.get_typed(Namespace, "", name)
            return dict(namespace.meta.labels) if namespace is not None else None

        # The API server calls the address it was given: the listen address joins the SANs.
        host = self.settings.listen_host
        extra_ips = (host,) if is_ip(host) and host not in ("0.0.0.0", "::", *DEFAULT_SERVER_IPS) else ()
        rng = random.SystemRandom()

        def issue() -> tuple[str, str, datetime]:
            issued = self.ca.issue_server(ip_addresses=(*DEFAULT_SERVER_IPS, *extra_ips))
            assert issued.private_key_pem is not None
            renew_at = certificate_renewal_time(issued.cert, rng)
            return issued.chain_pem, issued.private_key_pem.decode(), renew_at

        async def renew(context: ssl.SSLContext, renew_at: datetime) -> None:
            while True:  # the certificate is renewed at about half its life, as xDS's
                await asyncio.sleep(max(1.0, (renew_at - datetime.now(UTC)).total_seconds()))
                chain, key, renew_at = issue()
                load_certificate(context, chain, key)

        chain, key, renew_at = issue()
        tls = server_tls(chain, key)
        self._spawn(renew(tls, renew_at))
        self.injection_webhook = WebhookServer(
            InjectorSettings(trust_domain=self.settings.trust_domain, image=self.settings.injection_image,
                             cluster_domain=self.settings.domain_suffix),
            namespace_labels,
        )
        return await self.injection_webhook.start(self.settings.listen_host, port, tls)

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
            if datetime.now(UTC) < current["renew_at"]:
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

    def _takes_leading_edge(self, changes: ChangeSet) -> bool:
        """Which isolated bursts are pushed at once, not after the quiet period: endpoint
        changes, and any change a folder hands over (a file is read whole, and the watcher
        gathers a storm of files). Other config changes wait the quiet period, as Istio's
        do: the objects of one ``kubectl apply`` come as one watch event each.

        The Kubernetes events of one endpoint change (a new Pod, then the EndpointSlice naming
        it, then the old Pod's deletion; in any order, since each kind has its own watch) come
        a few milliseconds apart, and each state between them is correct: an endpoint whose Pod
        is not known is left out until it is, as Istio leaves it (services.kubernetes_endpoints);
        a push for a Pod that no endpoint names changes nothing and holds back nothing
        (debounce.py); a state that leaves an endpoint waiting for its Pod waits a few ms for
        it (_settle_seconds). Istio's own debounce of endpoint changes
        (PILOT_ENABLE_EDS_DEBOUNCE, on by default) holds each for PILOT_DEBOUNCE_AFTER."""
        return endpoint_kinds_only(changes) or changes.source in self._folder_source_ids

    def _settle_seconds(self, changes: ChangeSet) -> float:
        """How long a burst on the leading edge waits for more of its change: none when it is
        complete (a folder's change comes whole; a Kubernetes endpoint event that leaves no
        endpoint waiting for its Pod), a few milliseconds when the rest is on its way (a slice
        naming a Pod not yet here, a Pod deleted before its slice drops it): the events of one
        change come that close, and one push then serves the whole change."""
        if changes.source in self._folder_source_ids or not awaits_pods(changes):
            return 0.0
        return FOLLOWING_EVENTS_SECONDS

    async def _push_changes(self, changes: ChangeSet, debounce_seconds: float) -> bool:
        """Push a debounced burst; False when it changed nothing any proxy is sent."""
        if not changes:
            self.metrics.debounce_time.observe(debounce_seconds)
            return True
        self.observer.burst_flushed(debounce_seconds)
        report = await self.pusher.push(changes)
        if report is not None and not report.changed:
            return False  # as Istio, which never pushes for such a change: not a push in metrics
        self.metrics.debounce_time.observe(debounce_seconds)
        return True

    def _pushed(self, report: PushReport) -> None:
        if self.gateway_status is not None:
            self.gateway_status.wake()  # statuses follow the push context
        self.observer.pushed(report)
        if not report.changed:
            log.debug("%s: nothing changed", describe(report))
            return
        self.metrics.xds_push_time.labels("eds" if report.endpoints_only else "full").observe(report.seconds)
        log.info("%s", describe(report))
        if report.groups == 0 and not report.endpoints_only:  # the start, or every proxy gone
            # Proxies over TLS prove an identity: theirs are the clusters to warm (auto mTLS).
            with_certificate = self.settings.xds_tls_port is not None
            self._warming = self._spawn(self.pusher.warm(has_certificate=with_certificate))

    def _jwks_fetched(self, ok: bool) -> None:
        (self.metrics.jwks_fetch_success if ok else self.metrics.jwks_fetch_fail).inc()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _api_client(settings: Settings) -> Any:
    from controlplane.sources.kubernetes import api_client_from_config

    return api_client_from_config(settings.kubeconfig)


def _leadership(settings: Settings, api_client: Any) -> Any:
    """Leader election on a Lease among the replicas of a cluster; otherwise this process is
    the only control plane and does the singleton work itself."""
    from controlplane.cluster.leader import (
        AlwaysLeader,
        LeaderElector,
        LeaseSettings,
        default_identity,
    )

    if api_client is None or not settings.leader_election:
        return AlwaysLeader()
    lease = LeaseSettings(
        namespace=settings.system_namespace,
        lease_duration=settings.lease_duration_seconds,
        renew_deadline=settings.lease_renew_deadline_seconds,
        retry_period=settings.lease_retry_period_seconds,
    )
    return LeaderElector(api_client, settings.replica_name or default_identity(), lease)


def _plaintext(call: xds.CallInfo) -> bool:
    """Whether the call came over the plaintext development port (gRPC's auth context says
    ``insecure``; TLS says ``ssl``)."""
    return call.auth_context.get("transport_security_type") == [b"insecure"]


def run(settings: Settings) -> None:
    async def main() -> None:
        # Built inside the loop: grpc.aio binds its server to the loop it is created on.
        await ControlPlane(settings).run_until_signalled()

    asyncio.run(main())
