"""From input snapshots to the xDS cache: which proxy groups exist, and what each is sent.

Proxies that would get the same output share a group (one translation each push). A
group exists while at least one stream is on it. A push after an endpoint-only change
rebuilds the endpoints of the services it touched alone (index and assignments, in every
group, updated in place in the cache); any other change retranslates every group, where
only the units whose inputs changed are rebuilt (translate/units.py) and only the messages
not sent before are serialized (SerializedMessages). Translation runs in a worker thread so
streams keep being served meanwhile; one job at a time, each on the newest snapshot, so a
slow older job can never overwrite a newer result.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from envoy.config.core.v3 import base_pb2
from google.protobuf.message import Message

from controlplane import translate
from controlplane.model.kubernetes import Endpoints, EndpointSlice, Pod
from controlplane.store import ChangeSet, Snapshot
from controlplane.translate import ENDPOINT_TYPE, GroupKey, MeshConfig, Proxy, PushContext
from controlplane.translate.index.envoy_filters import EnvoyFilterProblem
from controlplane.translate.index.registry import MeshEndpoint
from controlplane.translate.index.service_index import UPDATABLE_KINDS
from controlplane.xds.resources import PreparedResource, prepare

log = logging.getLogger("controlplane.push")

# Kinds whose changes can only alter ClusterLoadAssignments.
ENDPOINT_ONLY_KINDS = frozenset({"EndpointSlice", "Endpoints"})
# Pods feed endpoints (labels pick subsets, locality, tlsMode) and also, for a connected
# proxy's own Pod, its inbound listeners (named target ports): endpoint-only unless it is
# one of those. Identities they bring are checked apart (see Pusher._work).
ENDPOINT_KINDS_UNLESS_OWN_POD = ENDPOINT_ONLY_KINDS | {"Pod"}
# Pusher.warm's sidecar: no Kubernetes namespace has a dot in its name, so it sees the mesh
# as a proxy of a namespace holding nothing does (no short names of its own).
WARM_UP_NAMESPACE = "warm-up.controlplane"
# Rounds of first translations one job runs: groups asked for while a round ran are taken by
# the next (see Pusher._first_translations).
FIRST_ROUNDS = 4
MAX_LOGGED_PROBLEMS = 20  # new problems of one kind logged per push; /debug/configz lists them all


def group_name(key: GroupKey) -> str:
    """A proxy group's name: readable, and unique by a digest of the translator's group key
    (every field of the node that translation reads; see translate.group_key)."""
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:12]
    who = dict(key.labels).get("app") or key.service_account
    return f"{key.kind}/{key.namespace}/{who}/{digest}"


@dataclass(frozen=True)
class PushReport:
    """What one push did, for the push summary log line and metrics."""

    groups: int
    endpoints_only: bool
    seconds: float  # from the push's start to the end of its translation (its own work)
    snapshot_version: int
    failed_groups: int = 0
    # False: an endpoint push that changed no group's assignments (a Pod no EndpointSlice
    # names yet; a slice whose new address waits for its Pod): nothing was sent.
    changed: bool = True


class Pusher:
    """Keeps the cache's groups translated from the newest input snapshot."""

    def __init__(
        self,
        cache,  # controlplane.xds.SnapshotCache
        snapshot: Callable[[], Snapshot],
        mesh: MeshConfig,
        *,
        on_push: Callable[[PushReport], None] = lambda report: None,
    ) -> None:
        self._cache = cache
        self._snapshot = snapshot
        self._mesh = mesh
        self._on_push = on_push
        self._groups: dict[str, Proxy] = {}
        self._groups_lock = threading.Lock()
        self._job = asyncio.Lock()
        # Groups whose streams asked for a first translation since the last such job took
        # them (ordered: first asked, first translated); the job's thread takes them too.
        self._first_needed: dict[str, None] = {}
        self._first_lock = threading.Lock()
        self._context: PushContext | None = None
        self._context_snapshot: Snapshot | None = None
        self._context_version = -1
        self._context_lock = threading.Lock()  # group_of (event loop) and pushes (a thread)
        self._full_version = -1  # snapshot version of the last push that retranslated everything
        self._identities: dict[tuple[str, int], frozenset[tuple[str, str]]] = {}
        # Hosts whose endpoints changed since the last push took them; None: not known (a
        # change of another kind came between), so an endpoint push updates them all.
        self._endpoint_hosts: frozenset[str] | None = frozenset()
        # Problems translation meets, each logged once when it appears (never their content).
        self._credential_log = ProblemLog("; the proxies asking for it wait for it")
        self._gateway_log = ProblemLog("; the server is dropped")
        self._envoy_filter_log = ProblemLog("")
        self._serialized = SerializedMessages()
        self.pushes = 0

    # --- groups -------------------------------------------------------------------------------

    def group_of(self, node: base_pb2.Node, identity: object) -> str:
        """The xDS server's grouping function; raises NodeParseError for a node we can't serve."""
        proxy = translate.parse_node(node)
        if identity is None:  # no credential: never given a certificate (see Proxy.has_certificate)
            proxy = dataclasses.replace(proxy, has_certificate=False)
        group = group_name(translate.group_key(self.context(), proxy))
        with self._groups_lock:
            self._groups.setdefault(group, proxy)
        return group

    def forget(self, group: str) -> None:
        """The last stream of a group went away."""
        with self._groups_lock:
            self._groups.pop(group, None)
        self._cache.remove_group(group)

    def groups(self) -> dict[str, Proxy]:
        with self._groups_lock:
            return dict(self._groups)

    # --- pushes -------------------------------------------------------------------------------

    async def translate_group(self, group: str) -> None:
        """A stream joined a group with nothing translated yet. One job translates every
        group asked for before it ends, those asked for while it runs included, so the new
        groups of streams that join at once (a cold start) do not each wait behind a job of
        their own, nor for the event loop (busy sending the first groups' configs) to start
        the next job."""
        with self._first_lock:
            self._first_needed[group] = None
        async with self._job:
            with self._first_lock:
                if group not in self._first_needed:
                    return  # an earlier job took it
            await asyncio.to_thread(self._first_translations)

    def _first_translations(self) -> None:
        """Translate the groups asked for, until none is left or FIRST_ROUNDS rounds ran (a
        push waiting for the job is not held back by groups that keep coming; those left
        start a job of their own). In the job's thread."""
        ctx = None
        for _ in range(FIRST_ROUNDS):
            with self._first_lock:
                needed, self._first_needed = self._first_needed, {}
            groups = self.groups()
            waiting = {g: groups[g] for g in needed if g in groups and not self._cache.has_group(g)}
            if not waiting:
                break
            ctx = self.context()
            self._full(waiting, ctx)
        if ctx is not None:
            self._report_problems(ctx, complete=False)

    async def warm(self, has_certificate: bool = True) -> None:
        """While no group exists (the server just started, or every proxy left), translate a
        sidecar of no group and drop its output: the units every sidecar shares (each service
        port's clusters and assignments, each virtual host) are built before the first proxy
        comes, whose first translation is then mostly assembly; a proxy of a namespace that
        sees the mesh as this one does (the same services and DestinationRules, as Kubernetes
        namespaces without a Sidecar or rules of their own do) takes its outbound clusters and
        assignments whole. Runs as a push job, in the worker thread, after the server is
        ready; no proxy's config is made ahead of it. ``has_certificate``: as the proxies
        expected (auto mTLS makes other clusters)."""
        async with self._job:
            if self.groups():
                return  # their translations keep the shared units in use
            await asyncio.to_thread(self._warm, has_certificate)

    def _warm(self, has_certificate: bool) -> None:
        proxy = dataclasses.replace(
            Proxy.make("sidecar", WARM_UP_NAMESPACE, domain_suffix=self._mesh.domain_suffix),
            has_certificate=has_certificate,
        )
        try:  # serialized too: the messages every group shares are then serialized once, here
            self._serialized.prepare(WARM_UP_NAMESPACE, translate.translate(self.context(), proxy))
        except Exception:  # what fails here fails for a real group too, and is reported there
            log.debug("warming the translation units failed", exc_info=True)

    async def push(self, changes: ChangeSet | None) -> PushReport | None:
        """Bring every group up to the newest snapshot after ``changes`` (None: everything).

        Nothing to do (None) when a full push already translated a snapshot that includes
        ``changes``: e.g. the initial load, which reaches the debouncer after the first push.
        """
        async with self._job:
            if changes is not None and changes.snapshot.version <= self._full_version:
                return None
            groups = self.groups()
            endpoints_only = changes is not None and _endpoints_only(changes, groups)
            started = time.perf_counter()

            def work() -> tuple[int, bool, int, bool, float]:
                # Timed here: the push's own time, not the wait for the event loop (busy
                # sending what the push just gave the streams) to take the result.
                return (*self._work(groups, endpoints_only), time.perf_counter())

            failed, endpoints_only, version, changed, finished = await asyncio.to_thread(work)
            if not endpoints_only:
                # The version translated, not the newest context's: a stream joining, or the
                # problem report, may have moved the context on meanwhile, and the burst that
                # brought that newer snapshot must not be skipped as already pushed.
                self._full_version = version
            report = PushReport(
                groups=len(groups),
                endpoints_only=endpoints_only,
                seconds=finished - started,
                snapshot_version=version,
                failed_groups=failed,
                changed=changed,
            )
            self.pushes += 1
            self._on_push(report)
            return report

    def context(self) -> PushContext:
        """The push context of the newest snapshot, built once and shared by all groups.

        Only the parts of the index that changed kinds feed are rebuilt; an endpoint change
        rebuilds the endpoints of the services it names alone (and notes their hosts)."""
        snapshot = self._snapshot()
        with self._context_lock:
            ctx, before = self._context, self._context_snapshot
            if ctx is None or before is None:
                ctx = translate.push_context(snapshot, self._mesh)
                self._endpoint_hosts = None
            elif snapshot.version != self._context_version:
                kinds = snapshot.kinds_changed_since(before)
                update = translate.update_push_context_endpoints(
                    ctx, snapshot, kinds, snapshot.changed_since(before, kinds)
                )
                if update is None:
                    endpoint_changes = snapshot.changed_since(before, kinds & UPDATABLE_KINDS)
                    ctx = translate.update_push_context(ctx, snapshot, kinds, endpoint_changes)
                    self._endpoint_hosts = None
                else:
                    ctx, hosts = update
                    if self._endpoint_hosts is not None:
                        self._endpoint_hosts |= hosts
            self._context, self._context_snapshot, self._context_version = ctx, snapshot, snapshot.version
            return ctx

    def _take_context(self) -> tuple[PushContext, frozenset[str] | None, int]:
        """The newest context, the hosts whose endpoints changed since the last push took
        them (None: not known) and the context's snapshot version, as one consistent set."""
        self.context()
        with self._context_lock:
            assert self._context is not None
            hosts, self._endpoint_hosts = self._endpoint_hosts, frozenset()
            return self._context, hosts, self._context_version

    def _work(self, groups: dict[str, Proxy], endpoints_only: bool) -> tuple[int, bool, int, bool]:
        """Translate ``groups``; returns (failed groups, whether it was endpoints alone, the
        snapshot version translated, whether it could change any group's config).

        Clusters name the service accounts they accept from their endpoints, so endpoint
        changes that bring a new identity behind a service must retranslate clusters too.
        """
        ctx, hosts, version = self._take_context()
        if self._identities_changed(ctx, hosts):
            endpoints_only = False
        if endpoints_only:
            failed, changed = self._endpoints(groups, ctx, hosts)
            return failed, True, version, changed
        ctx.begin_full_push()
        failed = self._full(groups, ctx)
        ctx.end_full_push()  # every group was translated: the caches may drop what none used
        self._serialized.end_push()
        self._report_problems(ctx, complete=True)
        return failed, False, version, True

    def _report_problems(self, ctx: PushContext, complete: bool) -> None:
        """Log what the translation just met, once each: credentialName Secrets that cannot be
        served, Gateway servers a router's merge dropped (Istio logs those and counts them in
        pilot_total_rejected_configs), EnvoyFilter patches left out. ``complete``: every group
        was just translated, so credential problems no longer met are gone."""
        self._credential_log.report(ctx.credentials.problems(), complete)
        self._gateway_log.report(ctx.gateways.met_conflicts())
        self._envoy_filter_log.report(ctx.envoy_filters.problems())

    def envoy_filter_problems(self) -> tuple[EnvoyFilterProblem, ...]:
        """EnvoyFilter patches left out (unusable values, results Envoy would refuse)."""
        return self.context().envoy_filters.problems()

    def envoy_filter_error_counts(self) -> dict[str, int]:
        """``ns/name`` -> how many of its patches are left out."""
        counts: dict[str, int] = {}
        for problem in {(p.patch.key, p.patch.index): p for p in self.envoy_filter_problems()}.values():
            name = f"{problem.patch.key.namespace}/{problem.patch.key.name}"
            counts[name] = counts.get(name, 0) + 1
        return counts

    def _full(self, groups: dict[str, Proxy], ctx: PushContext) -> int:
        serialized = self._serialized
        return self._each(
            groups, lambda g, p: self._cache.set_snapshot(g, serialized.prepare(g, translate.translate(ctx, p)))
        )

    def _identities_changed(self, ctx: PushContext, hosts: frozenset[str] | None) -> bool:
        """Whether the identities behind services' endpoints changed (those of ``hosts``
        alone when known), remembering the new ones."""
        if hosts is None:
            identities = endpoint_identities(ctx)
            changed = identities != self._identities
            self._identities = identities
            return changed
        changed = False
        for host in hosts:  # in place: the cost of the change, not of the mesh
            service = ctx.service_by_host.get(host)
            for port in service.ports if service is not None else ():
                key = (host, port.number)
                if key in ctx.endpoints:
                    now = _identities_of(ctx.endpoints[key])
                    if self._identities.get(key) != now:
                        self._identities[key] = now
                        changed = True
        return changed

    def _endpoints(
        self, groups: dict[str, Proxy], ctx: PushContext, hosts: frozenset[str] | None
    ) -> tuple[int, bool]:
        """Update every group's ClusterLoadAssignments: those of ``hosts`` alone when known.
        Returns the failed groups and whether any group's config changed."""
        changed = False

        def work(group: str, proxy: Proxy) -> None:
            nonlocal changed
            if not self._cache.has_group(group):
                # joined since the last full push: nothing to update yet, translate it whole
                self._cache.set_snapshot(group, translate.translate(ctx, proxy))
                changed = True
            elif hosts is None:
                self._cache.set_resources(group, ENDPOINT_TYPE, translate.endpoints(ctx, proxy))
                changed = True
            elif hosts:
                endpoints = translate.endpoints(ctx, proxy, hosts=hosts)
                changed = self._cache.update_resources(group, ENDPOINT_TYPE, endpoints) or changed

        return self._each(groups, work), changed

    def _each(self, groups: dict[str, Proxy], work: Callable[[str, Proxy], None]) -> int:
        """Run ``work`` per group; a group that fails keeps its last config, the rest go on."""
        failed = 0
        for group, proxy in groups.items():
            try:
                work(group, proxy)
            except translate.TranslationError as exc:
                failed += 1
                log.error("proxy group %s keeps its last config: %s", group, exc)
            except Exception:
                failed += 1
                log.exception("translation for proxy group %s failed; it keeps its last config", group)
        return failed


class SerializedMessages:
    """Each message serialized once while translation keeps handing it back: the units whose
    inputs did not change are the same objects, in every group (translate/units.py). Holds
    what the pushes since the last full one sent, and what that one sent.

    Each group's last list of each type is held too: a list of the same messages, where a
    change replaced a few (or none), is compared by identity (no lookup per message) and
    only the replaced ones are looked up; the very same list gives the very same tuple,
    which the cache then takes as the set it made from it (TypeResources.build)."""

    def __init__(self) -> None:
        # id(message) -> (message, its PreparedResource); holding the message keeps its id unique
        self._sent: dict[int, tuple[Message, PreparedResource]] = {}
        self._sending: dict[int, tuple[Message, PreparedResource]] = {}
        # (group, type) -> (its last messages, held; their PreparedResources)
        self._lists_sent: dict[tuple[str, str], tuple[tuple[Message, ...], tuple[PreparedResource, ...]]] = {}
        self._lists_sending: dict[tuple[str, str], tuple[tuple[Message, ...], tuple[PreparedResource, ...]]] = {}

    def prepare(self, group: str, resources: dict[str, list[Message]]) -> dict[str, tuple[PreparedResource, ...]]:
        return {type_url: self._prepared_list(group, type_url, messages) for type_url, messages in resources.items()}

    def _prepared_list(self, group: str, type_url: str, messages: list[Message]) -> tuple[PreparedResource, ...]:
        key = (group, type_url)
        held = self._lists_sending.get(key) or self._lists_sent.get(key)
        if held is None:  # a group's first list: each message looked up (and kept) once
            held = (tuple(messages), self._prepared_all(type_url, messages))
            self._lists_sending[key] = held
            return held[1]
        if len(held[0]) != len(messages):  # some added or gone: found by id (held: unique)
            known = dict(zip(map(id, held[0]), held[1]))
            held = (tuple(messages), tuple(known.get(id(m)) or self._prepared(type_url, m) for m in messages))
        else:
            kept, prepared = held
            replaced = [i for i, (old, new) in enumerate(zip(kept, messages)) if old is not new]
            if replaced:
                made = list(prepared)
                for i in replaced:
                    made[i] = self._prepared(type_url, messages[i])
                held = (tuple(messages), tuple(made))
        if held[1]:  # the messages still in use keep their PreparedResources for later pushes (in C)
            self._sending.update(zip(map(id, held[0]), zip(*held)))
        self._lists_sending[key] = held
        return held[1]

    def _prepared_all(self, type_url: str, messages: Sequence[Message]) -> tuple[PreparedResource, ...]:
        """Each message's PreparedResource, kept for later pushes, serialized only if no list
        since the last full push held that very message. One loop: a new group's first
        translation hands over thousands of messages, almost all prepared for other groups."""
        sending, sent = self._sending, self._sent
        out = []
        for message in messages:
            key = id(message)
            held = sending.get(key)
            if held is None or held[0] is not message:
                held = sent.get(key)
                if held is None or held[0] is not message:
                    held = (message, prepare(type_url, message))
                sending[key] = held
            out.append(held[1])
        return tuple(out)

    def _prepared(self, type_url: str, message: Message) -> PreparedResource:
        return self._prepared_all(type_url, (message,))[0]

    def end_push(self) -> None:
        """After a push that translated every group: what it did not send is dropped."""
        self._sent, self._sending = self._sending, {}
        self._lists_sent, self._lists_sending = self._lists_sending, {}


def endpoint_kinds_only(changes: ChangeSet) -> bool:
    """Changes of kinds that feed endpoints alone (or a proxy's own Pod): their push is cheap."""
    return changes.kinds <= ENDPOINT_KINDS_UNLESS_OWN_POD


def awaits_pods(changes: ChangeSet) -> bool:
    """Whether these changes leave endpoints between two states of one change: a slice naming
    a Pod not here yet (about to arrive), or a Pod deleted that no slice among them stopped
    naming (the slice that still names it is about to). Each such state is correct (the
    endpoint is left out), but pushing it would cost a second push a moment later."""
    snapshot = changes.snapshot
    deleted: set[tuple[str, str]] = set()
    dropped: set[tuple[str, str]] = set()
    for key, change in changes.changes.items():
        if key.kind == "Pod" and change.new is None:
            deleted.add((key.namespace, key.name))
        elif key.kind in ("EndpointSlice", "Endpoints"):
            named = _named_pods(change.new, key.namespace)
            if any(snapshot.get_typed(Pod, ns, name) is None for ns, name in named):
                return True
            dropped |= _named_pods(change.old, key.namespace) - named
    return bool(deleted - dropped)


def _named_pods(resource: object, namespace: str) -> set[tuple[str, str]]:
    """(namespace, name) of the Pods a slice's or an Endpoints' addresses name."""
    if isinstance(resource, EndpointSlice):
        refs = [ep.target_ref for ep in resource.endpoints]
    elif isinstance(resource, Endpoints):
        refs = [a.target_ref for subset in resource.subsets for a in subset.addresses]
    else:
        return set()
    return {(ref.namespace or namespace, ref.name) for ref in refs if ref is not None and ref.kind == "Pod"}


def _endpoints_only(changes: ChangeSet, groups: dict[str, Proxy]) -> bool:
    if not changes.kinds <= ENDPOINT_KINDS_UNLESS_OWN_POD:
        return False
    if "Pod" not in changes.kinds:
        return True
    own_pods = {(proxy.namespace, proxy.pod_name) for proxy in groups.values()}
    return not any(
        key.kind == "Pod" and (key.namespace, key.name) in own_pods for key in changes.changes
    )


def endpoint_identities(ctx: PushContext) -> dict[tuple[str, int], frozenset[tuple[str, str]]]:
    """(host, port) -> the (namespace, service account) pairs of its endpoints."""
    return {key: _identities_of(eps) for key, eps in ctx.endpoints.items()}


def _identities_of(endpoints: Iterable[MeshEndpoint]) -> frozenset[tuple[str, str]]:
    return frozenset((e.namespace, e.service_account) for e in endpoints if e.service_account)


def merge_changes(pending: ChangeSet | None, later: ChangeSet) -> ChangeSet:
    """Fold store change sets arriving during one debounce window."""
    return later if pending is None else pending.merge(later)


def describe(report: PushReport) -> str:
    kind = "endpoints" if report.endpoints_only else "full"
    failed = f", {report.failed_groups} failed" if report.failed_groups else ""
    return (
        f"push {kind}: snapshot {report.snapshot_version}, {report.groups} proxy groups"
        f"{failed}, {report.seconds * 1000:.1f} ms"
    )


class ProblemLog:
    """Logs each problem once, when it first appears, at most MAX_LOGGED_PROBLEMS per report
    (the rest are counted; /debug/configz lists them all)."""

    def __init__(self, suffix: str) -> None:
        self._suffix = suffix
        self._known: frozenset[object] = frozenset()

    def report(self, found: Iterable[object], complete: bool = True) -> None:
        """``complete``: ``found`` is every problem there is, so those missing from it are gone."""
        problems = frozenset(found)
        new = sorted(problems - self._known, key=str)
        for problem in new[:MAX_LOGGED_PROBLEMS]:
            log.warning("%s%s", problem, self._suffix)
        if len(new) > MAX_LOGGED_PROBLEMS:
            log.warning("%d more problems: see /debug/configz", len(new) - MAX_LOGGED_PROBLEMS)
        self._known = problems if complete else self._known | problems
