"""One xDS stream (SotW or delta, ADS or a single type): the protocol, without gRPC.

A reader task applies requests to the per-type state as they arrive; the stream's own loop wakes
when a request arrived or the cache changed what this stream sees, and sends whatever is due, in
ADS order. Each stream awaits only its own writes, so a slow proxy delays nobody else.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING

from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import Message

from controlplane.xds import types
from controlplane.xds.auth import CallInfo, Identity
from controlplane.xds.describe import describe_request, describe_response
from controlplane.xds.limits import Refused, ResourceExhausted, clip, over
from controlplane.xds.requests import (
    DELTA,
    SOTW,
    check_names,
    check_request,
    check_subscriptions,
    parse_request,
)
from controlplane.xds.resources import (
    PreparedResource,
    TypeResources,
    empty_assignment,
    version_of_set,
)
from controlplane.xds.shared import repeats_subscription, subscription_key
from controlplane.xds.state import TypeState
from controlplane.xds.status import NackRecord

if TYPE_CHECKING:
    from controlplane.xds.core import XdsCore

log = logging.getLogger(__name__)

_stream_ids = itertools.count(1)



class Stream:
    def __init__(self, core: XdsCore, kind: str, call: CallInfo, type_url: str | None) -> None:
        self.core = core
        self.kind = kind
        self.call = call
        self.service_type = type_url  # None on ADS: any type
        self.stream_id = next(_stream_ids)
        self.node = base_pb2.Node()
        self.identity: Identity | None = None
        self.group: str | None = None
        self.connected_at = time.time()
        self.types: dict[str, TypeState] = {}
        self.closed = False
        self.idle = False  # parked waiting for work (tests use this to know the stream settled)
        self._unsettled = False  # sent something not yet reported settled (see core.settled)
        self._nonces = itertools.count(1)
        self._wake = asyncio.Event()
        self.loop = asyncio.get_running_loop()  # where the cache notifies it (cache.Watcher)
        self.requests_seen = 0
        self.responses_built = 0
        self.stale_ignored = 0
        self.owner: object = None  # what the core counts this stream against (its identity)
        self.slow = False  # its proxy once did not take a response within the send timeout
        # Why the reader ended the stream: a limit (Refused), or a bug (re-raised by run()).
        self.refusal: Exception | None = None
        self._unexpected_types_logged = False

    # --- called by the cache (any thread) -----------------------------------------------------

    def notify(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self._wake.set()
        else:
            try:
                self.loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # loop closed: the stream is gone
                pass

    def close(self) -> None:
        """Ask the stream to end (server shutdown)."""
        self.closed = True
        self.notify()

    # --- the stream's life --------------------------------------------------------------------

    async def run(self, requests: AsyncIterator) -> AsyncIterator[bytes]:
        served = self._serve(requests)
        try:
            async for response in served:
                yield response
                del response  # not held while idle (see XdsServer._serve)
        except Refused as refusal:
            self.closed = True
            self.types.clear()  # nothing the client sent is kept once it is refused
            self.core.refused(refusal.reason, self)
            raise
        finally:
            await served.aclose()  # now, not when collected: the stream detaches at once

    async def _serve(self, requests: AsyncIterator) -> AsyncGenerator[bytes, None]:
        iterator = aiter(requests)
        await self.core.admit(self)
        try:
            first, first_raw = parse_request(self.kind, self.core.limits, await anext(iterator))
        except StopAsyncIteration:
            return
        check_request(self.kind, self.core.limits, first, first_raw)  # before anything of it is kept or authenticated
        self.node.CopyFrom(first.node)
        self.identity = await self.core.authenticate_stream(self)
        self.group = self.core.group_of(self.node, self.identity)
        self.core.attach(self)
        reader = asyncio.create_task(self._read(iterator), name=f"xds-reader-{self.stream_id}")
        try:
            self._apply(first, first_raw, checked=True)
            del first, first_raw  # no request is kept once applied (the node was copied)
            while True:
                # (A pass that would build nothing takes no slot: see _nothing_due.)
                while not self.closed and not self._nothing_due():
                    # Built in a push slot, and handed over in it unless small: at most
                    # max_concurrent_pushes streams do so at once (limits.PushThrottle).
                    slot = await self.core.push_slot(self)
                    try:
                        response = None if self.closed else self._next_response()
                        if response is None:
                            break
                        self.core.counters.bytes_sent += len(response)
                        if log.isEnabledFor(logging.DEBUG):
                            log.debug(
                                "stream %d response: %d bytes %s",
                                self.stream_id,
                                len(response),
                                describe_response(self.kind == DELTA, response),
                            )
                        if self.slow or len(response) < self.core.limits.push_slot_min_bytes:
                            slot.release()  # (a proxy that once did not read holds none)
                        slot.handing_over()
                        yield response  # resumes once gRPC took it: one in flight per stream
                        response = None  # not held while idle (see XdsServer._serve)
                    finally:
                        slot.release()
                if self.closed:
                    break
                self.idle = True
                if self._unsettled and self.settled:
                    self._unsettled = False
                    self.core.settled(self)
                await self._wake.wait()
                self._wake.clear()
                self.idle = False
            if self.refusal is not None:
                refusal, self.refusal = self.refusal, None  # no cycle through its traceback
                raise refusal
        finally:
            self.closed = True
            reader.cancel()
            self.core.detach(self)

    async def _read(self, iterator: AsyncIterator) -> None:
        try:
            async for received in iterator:
                try:
                    if not self._acked_unchanged(received):
                        self._apply(*parse_request(self.kind, self.core.limits, received))
                except Refused as refusal:
                    self.refusal = refusal
                    # Drop what the client made us hold now: the stream ends once its
                    # pending send completes, which a client that does not read delays.
                    self.types.clear()
                    break
                except Exception as error:  # a bug: end this stream loudly, not the server
                    log.exception("stream %d: request failed", self.stream_id)
                    self.refusal = error
                    break
                del received  # not held while waiting for the next one
                # Most requests are ACKs after which nothing is due: the stream's loop is
                # not woken for them (it looks again after any response it is handing
                # over), and the stream settles here.
                if not self._nothing_due():
                    self._wake.set()
                elif self._unsettled and self.settled:
                    self._unsettled = False
                    self.core.settled(self)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the transport went away
            log.debug("stream %d read ended: %r", self.stream_id, error)
        self.closed = True
        self._wake.set()

    # --- requests -----------------------------------------------------------------------------

    def _state(self, type_url: str) -> TypeState:
        state = self.types.get(type_url)
        if state is None:
            self.types[type_url] = state = TypeState(type_url)
            # In ADS order, which _next_response follows at each wake-up.
            self.types = dict(sorted(self.types.items(), key=lambda kv: types.order_index(kv[0])))
        return state

    def _acked_unchanged(self, received: bytes | Message) -> bool:
        """A SotW ACK of the last response of a type that repeats the subscription, told
        from its bytes (shared.repeats_subscription), and applied as such: an Envoy's EDS
        ACK names every EDS cluster, which parsing makes ~1,400 strings of. Anything else (a
        NACK, other names, another nonce or version, the first request) is parsed."""
        if self.kind != SOTW or not isinstance(received, bytes):
            return False
        if over(len(received), self.core.limits.max_request_bytes):
            return False  # refused by _parse
        for state in self.types.values():
            key = state.subscription_key
            if (
                state.pending
                and key is not None
                and state.version_sent is not None
                and repeats_subscription(received, key, state.version_sent, state.nonce_sent)
            ):
                self.requests_seen += 1
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("stream %d request: ACK of %s nonce %s, names unchanged",
                              self.stream_id, types.short_name(state.type_url), state.nonce_sent)
                self._acknowledge(state, state.version_sent, state.nonce_sent, None)
                return True
        return False

    def _apply(self, request, raw: bytes | None = None, *, checked: bool = False) -> None:
        self.requests_seen += 1
        if not checked:
            check_request(self.kind, self.core.limits, request, raw)
        type_url = request.type_url or self.service_type
        if log.isEnabledFor(logging.DEBUG):
            log.debug("stream %d request: %s", self.stream_id, describe_request(request))
        if not type_url or (self.service_type and type_url != self.service_type):
            if not self._unexpected_types_logged:  # once per stream: a client cannot flood
                self._unexpected_types_logged = True
                log.warning(
                    "stream %d: request for unexpected type %r ignored", self.stream_id, type_url
                )
            return
        if type_url not in self.types and over(
            len(self.types) + 1, self.core.limits.max_types_per_stream
        ):
            raise ResourceExhausted(
                "types_per_stream",
                f"a stream may ask for {self.core.limits.max_types_per_stream} resource types",
            )
        if self.kind == SOTW:
            subscribed = self._apply_sotw(type_url, request, raw)
        else:
            subscribed = self._apply_delta(type_url, request)
        if subscribed:  # (an ACK repeats what was checked)
            check_subscriptions(self.core.limits, self.types[type_url], self.types.values())

    def _apply_sotw(
        self, type_url: str, request: discovery_pb2.DiscoveryRequest, raw: bytes | None
    ) -> bool:
        """Apply a SotW request; whether it named a subscription other than the last."""
        state = self._state(type_url)
        nonce = request.response_nonce
        if nonce and nonce != state.nonce_sent:
            self.stale_ignored += 1  # answers a response the client has since been superseded
            return False
        if nonce:
            self._acknowledge(state, request.version_info, nonce, _error_of(request))
        elif state.version_sent is None and request.version_info:
            state.client_version = request.version_info  # reconnect: what the client already has
        # An ACK repeats the subscription: its bytes equal the last request's, compared in
        # one memcmp, and nothing more is done (no string made of its ~1,000 EDS names).
        key = subscription_key(request, raw)
        if state.requested and key == state.subscription_key:
            return False
        pool = self.core.subscriptions
        pooled = pool.known(key)
        if pooled is None:
            names = list(request.resource_names)
            check_names(self.core.limits, names)
            pooled = pool.add(key, names)
        state.subscription_key, names_asked = pooled
        state.apply_sotw_names(names_asked)
        return True

    def _apply_delta(self, type_url: str, request: discovery_pb2.DeltaDiscoveryRequest) -> bool:
        """Apply a delta request; whether it may have changed the subscription."""
        state = self._state(type_url)
        first = not state.requested
        nonce = request.response_nonce
        if nonce and nonce == state.nonce_sent:
            self._acknowledge(state, state.version_sent or "", nonce, _error_of(request))
        elif nonce and request.HasField("error_detail"):
            self._record_nack(state, "", nonce, request.error_detail.message)
        # Subscription changes count whatever the nonce.
        subscribe = list(request.resource_names_subscribe)
        unsubscribe = list(request.resource_names_unsubscribe)
        initial = dict(request.initial_resource_versions) if not state.requested else None
        check_names(self.core.limits, itertools.chain(subscribe, unsubscribe, *(
            (initial, initial.values()) if initial else ())))
        state.apply_delta_subscriptions(
            subscribe, unsubscribe, initial, self.core.subscriptions.names
        )
        return first or bool(subscribe or unsubscribe)

    def _acknowledge(self, state: TypeState, version: str, nonce: str, error: str | None) -> None:
        """An answer to the last response of the type: an ACK, or a NACK with ``error``."""
        state.pending = False
        if error is not None:
            rejected = state.version_sent or ""
            self._record_nack(state, rejected, nonce, error)
            if self.kind == SOTW:
                state.sotw_nacked()
            if state.type_url == types.CLUSTER:
                self._state(types.ENDPOINT).owed = frozenset()  # those clusters were not taken
        else:
            if self.kind == SOTW:
                state.sotw_acked()
            state.version_acked = version if self.kind == SOTW else state.version_sent
            state.acked_at = time.time()
            self.core.counters.acks_by_type[types.short_name(state.type_url)] += 1

    def _record_nack(self, state: TypeState, rejected: str, nonce: str, error: str) -> None:
        keep = self.core.limits.max_kept_text
        record = NackRecord(
            stream_id=self.stream_id,
            node_id=clip(self.node.id, keep),
            type_url=state.type_url,
            rejected_version=rejected,
            nonce=nonce,
            error=clip(error, keep),
            at=time.time(),
        )
        state.last_nack = record
        first_time = rejected not in state.nacked_versions
        # (logged once each among the recent ones)
        recent = state.nacked_versions if len(state.nacked_versions) < 64 else frozenset()
        state.nacked_versions = recent | {rejected}
        self.core.record_nack(record, log_it=first_time)

    # --- responses ----------------------------------------------------------------------------

    def _next_response(self) -> bytes | None:
        """The next response due, honouring ADS order; None when nothing is due now."""
        # Types that still wait for an ACK, or EDS that owes endpoints to re-created clusters.
        busy = {t for t, s in self.types.items() if s.pending or s.owed}
        for state in self.types.values():  # in ADS order (see _state)
            if self.service_type is None and busy & types.held_back_by(state.type_url):
                continue
            response = self._build(state)
            if response is not None:
                return response
        return None

    def _nothing_due(self) -> bool:
        """Whether a pass of _next_response would build nothing: every type asked for is in
        step with its current view as _build's shortcuts tell it (no planning). False when
        unsure: the pass then decides."""
        view_of, group, identity = self.core.cache.view, self.group, self.identity
        assert group is not None
        sotw = self.kind == SOTW
        for type_url, state in self.types.items():
            if not state.requested:
                continue
            if state.force or state.owed or state.check_missing:
                return False
            if sotw and type_url == types.CLUSTER:
                # Planned at each pass; _plan_sotw's first look: the client was given all of
                # this very view (no view: no snapshot yet, nothing to build).
                view = view_of(group, identity, type_url)
                if view is not None and not (
                    state.wildcard
                    and state.resources is view.by_name
                    and view.version == state.version_sent
                ):
                    return False
                continue
            synced = state.synced
            if synced is None:
                return False  # (unless the view is gone: the pass then builds nothing)
            view = view_of(group, identity, type_url)
            if view is None:
                continue  # no snapshot yet: nothing to build (see _build)
            if (
                synced[0] is not view
                or state.version_sent is None
                or (type_url == types.ENDPOINT
                    and synced[1] is not view_of(group, identity, types.CLUSTER))
            ):
                return False
        return True

    def _view(self, type_url: str) -> TypeResources | None:
        assert self.group is not None
        return self.core.cache.view(self.group, self.identity, type_url)

    def _selected(self, state: TypeState, view: TypeResources) -> list[PreparedResource]:
        """What the client is to hold of this type, sorted by name."""
        if state.wildcard:
            return list(view.by_name.values())
        found, stand_ins = self._selection(state, view)
        chosen = {**{name: view.by_name[name] for name in found}, **stand_ins}
        return [chosen[name] for name in sorted(chosen)]

    def _selection(
        self, state: TypeState, view: TypeResources
    ) -> tuple[AbstractSet[str], dict[str, PreparedResource]]:
        """The names the client is to hold that the view has, and resources standing in for
        subscribed names it lacks: an empty ClusterLoadAssignment, as Envoy waits for every
        cluster's EDS. Set operations (in C): a stream's work per push does not grow with
        the number of names it holds."""
        if state.wildcard:
            return view.by_name.keys(), {}
        found = view.present(state.names)  # (once per view for the names streams share)
        if state.type_url != types.ENDPOINT or len(found) == len(state.names):
            return found, {}
        kept = self._kept_endpoint_names()
        return found, {n: empty_assignment(n) for n in state.names - found if n not in kept}

    def _changed(
        self,
        state: TypeState,
        view: TypeResources,
        found: AbstractSet[str],
        stand_ins: dict[str, PreparedResource],
        *,
        skip_rejected: bool,
    ) -> list[PreparedResource]:
        """Selected resources whose version differs from what the client was sent, and forced
        ones, sorted by name. SotW (``skip_rejected``): not a version the client rejected,
        unless forced (see TypeState.sotw_due)."""
        if not state.sent and not stand_ins and not state.rejected and len(found) == len(view.by_name):
            return list(view.by_name.values())  # a first response of all the view (in name order)
        if len(found) * 4 < len(view.by_name):  # a few names (RDS, or one step of the view)
            names = {name for name in found if state.sent.get(name) != view.by_name[name].version}
        else:  # worked out once per view for the map the group's streams share (share_sent)
            names = {name for name in view.differing(state.sent) if name in found}
        if state.force:
            names |= state.force & found
        for name, resource in stand_ins.items():
            if state.sent.get(name) != resource.version or name in state.force:
                names.add(name)
        out = []
        for name in sorted(names):
            resource = stand_ins.get(name) or view.by_name[name]
            if skip_rejected and name not in state.force and state.rejected.get(name) == resource.version:
                continue
            out.append(resource)
        return out

    def _build(self, state: TypeState) -> bytes | None:
        if not state.requested:
            return None
        view = self._view(state.type_url)
        if view is None:
            return None  # the group has no snapshot yet
        # Nothing is due again until a view or the state changes: a wake-up (an ACK, another
        # type's push) costs no planning, and a view updated from the one nothing was due
        # against costs a look at the names that changed. CDS: whether a removed cluster may
        # go depends on other types' progress; SotW plans it at each wake-up (cheaply), delta
        # skips a view the client holds all of (see _build_delta). EDS stand-ins depend on
        # the clusters held.
        if state.type_url == types.CLUSTER:
            if self.kind == SOTW:
                return self._build_sotw(state, view)
            if state.synced is not None and state.synced[0] is view:
                return None
            return self._build_delta(state, view)
        clusters = self._view(types.CLUSTER) if state.type_url == types.ENDPOINT else None
        synced = state.synced
        if synced is not None and synced[1] is clusters and state.version_sent is not None:
            synced_view, _, whole = synced
            if synced_view is view:
                return None
            changed = view.changed_since(synced_view.serial)  # replaced alone, none added or gone
            if changed is not None:
                names = changed if state.wildcard else changed & state.names
                state.synced = (view, clusters, whole)
                # (The map is looked up, not built: a cached property of the view.)
                held_all = state.sent is vars(synced_view).get("versions")
                return self._build_step(state, view, names, whole, held_all)
        if self.kind == SOTW:
            response = self._build_sotw(state, view)
        else:
            response = self._build_delta(state, view)
        state.synced = (view, clusters, state.wildcard or view.named_by(state.names))
        return response

    def _build_step(
        self,
        state: TypeState,
        view: TypeResources,
        names: AbstractSet[str],
        whole: bool,
        held_all: bool,
    ) -> bytes | None:
        """The response due after the view changed ``names`` only, since nothing was due;
        ``held_all``: the client was sent exactly the view nothing was due against."""
        to_send = self._changed(state, view, names, {}, skip_rejected=self.kind == SOTW)
        if not to_send:
            return None
        # The client held all of the view nothing was due against, and is sent every name
        # changed since: it then holds all of this view (its map, shared, no copy).
        exact = held_all and len(to_send) == len(names)
        if self.kind == DELTA:
            return self._send_delta(state, view, to_send, [], names, exact=exact)
        version = view.version if whole else version_of_set(self._selected(state, view))
        return self._send_sotw(state, view, [], to_send, version, exact=exact)

    def _kept_endpoint_names(self) -> set[str]:
        """EDS names of clusters deleted from the snapshot but still kept on this client."""
        clusters = self.types.get(types.CLUSTER)
        view = self._view(types.CLUSTER)
        if clusters is None or not clusters.resources or view is None:
            return set()
        gone = clusters.resources.keys() - view.by_name.keys()
        return {dep for name in gone if (dep := clusters.resources[name].eds_dependency)}

    def _keeps_removed_clusters(self, state: TypeState) -> bool:
        """On ADS, a deleted cluster stays until listeners and routes that may use it are
        replaced and ACKed; then a later pass removes it."""
        if state.type_url != types.CLUSTER or self.service_type is not None:
            return False
        for type_url in types.CLUSTER_USERS:
            user = self.types.get(type_url)
            if user is None or not user.requested:
                continue
            if user.pending or self._is_due(user):
                return True
        return False

    def _is_due(self, state: TypeState) -> bool:
        view = self._view(state.type_url)
        if view is None or not state.requested:
            return False
        if self.kind == SOTW:
            return self._plan_sotw(state, view)[3]
        _, to_send, removed, _ = self._plan_delta(state, view)
        return bool(to_send or removed or state.check_missing)

    def _plan_sotw(
        self, state: TypeState, view: TypeResources
    ) -> tuple[list[PreparedResource], list[PreparedResource], str, bool]:
        """What the client would hold after a SotW response sent now (empty when it need
        not be known: see _build_sotw), what the response would carry, its version (of the
        type as a whole), and whether it is due."""
        if state.type_url in types.FULL_STATE_TYPES:
            if (
                state.resources is view.by_name  # the client was given all of this very view
                and state.wildcard
                and view.version == state.version_sent
                and not state.force
            ):
                return [], [], view.version, False
            selected = self._selected(state, view)
            whole = state.wildcard or len(selected) == len(view.by_name)
            names = view.by_name.keys() if whole else {r.name for r in selected}
            forced = bool(state.force) and not state.force.isdisjoint(names)
            version = view.version if whole else version_of_set(selected)
            if state.type_url == types.CLUSTER:
                # (once per view for the set the group's streams were all given)
                gone = view.absent(state.resources) if whole else sorted(state.resources.keys() - names)
                kept = [state.resources[n] for n in gone]
                if kept and self._keeps_removed_clusters(state):
                    selected = sorted(selected + kept, key=lambda r: r.name)
                    version = version_of_set(selected)
            return selected, selected, version, version != state.version_sent or forced
        found, stand_ins = self._selection(state, view)
        if not found and not stand_ins:
            return [], [], "", False
        # EDS/RDS/SDS: the client keeps subscribed resources a response leaves out (Istio's
        # incremental EDS), so only new or changed versions, and re-warming clusters', go out.
        to_send = self._changed(state, view, found, stand_ins, skip_rejected=True)
        if not to_send:
            return [], [], "", False
        if not stand_ins and len(found) == len(view.by_name):
            version = view.version  # the version of the whole view, computed once per view
        else:
            version = version_of_set(self._selected(state, view))
        return [], to_send, version, bool(to_send)

    def _build_sotw(self, state: TypeState, view: TypeResources) -> bytes | None:
        selected, to_send, version, due = self._plan_sotw(state, view)
        if due and state.version_sent is None and version == state.client_version:
            # Reconnect (e.g. after a control-plane restart): content-derived versions tell that
            # the client already has exactly this set.
            state.sent = {r.name: r.version for r in selected or self._selected(state, view)}
            state.share_sent(view.versions)
            state.before = None  # it holds all of it
            state.version_sent = state.version_acked = version
            return None
        if not due:
            return None
        return self._send_sotw(state, view, selected, to_send, version)

    def _send_sotw(
        self,
        state: TypeState,
        view: TypeResources,
        selected: list[PreparedResource],
        to_send: list[PreparedResource],
        version: str,
        *,
        exact: bool = False,
    ) -> bytes:
        whole = len(to_send) == len(view.by_name) and version == view.version
        # The whole view (a first response, CDS and LDS): its bytes and its difference from
        # what the client had are computed once and shared by the group's streams.
        if whole:
            changed = view.changed_from(state.sent)
        else:
            changed = [r for r in to_send if state.sent.get(r.name) != r.version]
            # (the stream may then hold the view's own map, shared, instead of a copy)
            exact = exact or view.completed_by(state.sent, to_send)
        # LDS/CDS given the whole view: its own maps, shared by the group's streams.
        state.record_sotw_sent(
            view.versions if whole else {r.name: r.version for r in to_send},
            view.versions,
            exact=exact,
        )
        if state.type_url == types.CLUSTER:
            state.resources = view.by_name if whole else {r.name: r for r in selected}
        if whole:
            shared_nonce, response, body_at = view.sotw_response(self.core.control_plane)
            # The group's shared response, the first time this stream is given this set: its
            # nonce is then new to the stream. Again (a re-warm, a subscription back to all
            # of it), a nonce of its own, so a late answer to the first is still stale.
            if view.serial > state.whole_serial:
                state.whole_serial = view.serial
                self._stamp(state, version, shared_nonce)
                self._after_send(state, to_send, changed, view)
                return response
        nonce = self._stamp(state, version)
        self._after_send(state, to_send, changed, view if whole else None)
        header = discovery_pb2.DiscoveryResponse(
            version_info=version,
            type_url=state.type_url,
            nonce=nonce,
            control_plane=self.core.control_plane,
        ).SerializeToString()
        if whole:
            return b"".join((header, memoryview(response)[body_at:]))
        return header + b"".join(r.sotw_field for r in to_send)

    def _plan_delta(
        self, state: TypeState, view: TypeResources
    ) -> tuple[AbstractSet[str], list[PreparedResource], list[str], bool]:
        """What a delta response would carry now: the names selected, resources to send,
        removals, and whether the client then holds exactly the view (all of it, nothing
        else: no removal held back for listeners and routes, no stand-in)."""
        found, stand_ins = self._selection(state, view)
        selected_names = found | stand_ins.keys() if stand_ins else found
        to_send = self._changed(state, view, found, stand_ins, skip_rejected=False)
        removed = state.sent.keys() - selected_names
        whole = not stand_ins and len(found) == len(view.by_name)
        if removed and self._keeps_removed_clusters(state):
            removed, whole = set(), False
        elif removed and state.type_url == types.ENDPOINT:
            removed -= self._kept_endpoint_names()
        missing = state.check_missing - selected_names
        if state.type_url in types.KEPT_WHILE_SUBSCRIBED:
            # What the client holds stays until it unsubscribes (see types.KEPT_WHILE_SUBSCRIBED).
            removed -= state.names
            missing -= state.sent.keys()
            whole = False
        return selected_names, to_send, sorted(removed | missing), whole

    def _build_delta(self, state: TypeState, view: TypeResources) -> bytes | None:
        selected_names, to_send, removed, whole = self._plan_delta(state, view)
        state.check_missing = frozenset()
        if state.type_url == types.CLUSTER:  # (other types: see _build)
            # Nothing is due again against this view once the client holds all of it; a
            # removal held back (or a named subset) is planned again at each wake-up.
            state.synced = (view, None, True) if whole else None
        if not to_send and not removed:
            if state.version_sent is None and state.resumed:
                # Reconnect (e.g. after a control-plane restart): the client already holds
                # exactly this, at these content-derived versions; it is in sync.
                state.version_sent = state.version_acked = view.version
            return None
        return self._send_delta(state, view, to_send, removed, selected_names, exact=whole)

    def _send_delta(
        self,
        state: TypeState,
        view: TypeResources,
        to_send: list[PreparedResource],
        removed: list[str],
        selected_names: AbstractSet[str],
        *,
        exact: bool = False,
    ) -> bytes:
        if exact:  # the client then holds all of the view: its maps, shared (see _plan_delta)
            state.sent = view.versions
        else:
            sent = dict(state.sent)  # never changed in place: it may be shared
            for r in to_send:
                sent[r.name] = r.version
            for name in removed:
                sent.pop(name, None)
            state.sent = sent
            state.share_sent(view.versions)
        current, whole = to_send, None
        if state.type_url == types.CLUSTER and exact:
            state.resources, whole = view.by_name, view
        elif state.type_url == types.CLUSTER:
            resources = dict(state.resources)
            for r in to_send:
                resources[r.name] = r
            for name in removed:
                resources.pop(name, None)
            state.resources = resources
            current = [view.by_name[n] for n in sorted(selected_names)]
        version = view.version
        nonce = self._stamp(state, version)
        self._after_send(state, current, to_send, whole)
        header = discovery_pb2.DeltaDiscoveryResponse(
            system_version_info=version,
            type_url=state.type_url,
            nonce=nonce,
            removed_resources=removed,
            control_plane=self.core.control_plane,
        ).SerializeToString()
        return header + b"".join(r.delta_field for r in to_send)

    def _stamp(self, state: TypeState, version: str, nonce: str | None = None) -> str:
        self.responses_built += 1
        nonce = nonce or str(next(self._nonces))
        state.nonce_sent = nonce
        state.version_sent = version
        state.sent_at = time.time()
        state.pending = True
        self._unsettled = True
        self.core.counters.pushes_by_type[types.short_name(state.type_url)] += 1
        return nonce

    def _after_send(
        self,
        state: TypeState,
        current: list[PreparedResource],
        changed: list[PreparedResource],
        whole: TypeResources | None = None,  # ``current`` is all of this view
    ) -> None:
        if state.type_url == types.ENDPOINT:
            if state.force or state.owed:
                sent = {r.name for r in changed} | (
                    whole.by_name.keys() if whole is not None else {r.name for r in current}
                )
                # New sets, not ``-=``: a set keeps its table when emptied in place (two
                # 1,000-name EDS tables per stream, long after they were sent).
                state.force = state.force - sent
                state.owed = state.owed - sent
        elif state.type_url == types.CLUSTER and self.service_type is None:
            # A changed cluster is re-created by Envoy and warms until its EDS arrives again.
            # Only a client that uses EDS on this stream owes anything (the first CDS response
            # comes before any EDS request; Envoy asks for listeners only once clusters warmed).
            endpoints = self.types.get(types.ENDPOINT)
            if endpoints is not None:
                endpoints.synced = None  # the clusters it holds changed: plan EDS again
            if endpoints is None or not endpoints.requested:
                return
            rewarm = {r.eds_dependency for r in changed if r.eds_dependency}
            endpoints.force |= rewarm
            alive = (
                whole.eds_dependencies
                if whole is not None
                else {r.eds_dependency for r in current if r.eds_dependency}
            )
            endpoints.owed = (endpoints.owed & alive) | rewarm

    # --- operators ----------------------------------------------------------------------------

    @property
    def settled(self) -> bool:
        """Nothing due now and every response answered (ACK or NACK)."""
        return (
            self.idle
            and not self._wake.is_set()
            and not any(s.pending for s in self.types.values())
        )

    def sync_status(self) -> dict[str, object]:
        return {
            "stream_id": self.stream_id,
            "settled": self.settled,
            "types": {types.short_name(t): s.sync_status() for t, s in self.types.items()},
        }

    def status(self) -> dict[str, object]:
        return {
            "stream_id": self.stream_id,
            "kind": self.kind,
            "service": types.short_name(self.service_type) if self.service_type else "ADS",
            "node_id": self.node.id,
            "cluster": self.node.cluster,
            "identity": None if self.identity is None else str(self.identity),
            "group": self.group,
            "peer": self.call.peer,
            "connected_at": self.connected_at,
            "requests_seen": self.requests_seen,
            "responses_built": self.responses_built,
            "types": {
                types.short_name(t): s.status()
                for t, s in sorted(self.types.items(), key=lambda kv: types.order_index(kv[0]))
            },
        }


def _error_of(request) -> str | None:
    """A NACK's error message (None: an ACK or a request)."""
    return request.error_detail.message if request.HasField("error_detail") else None
