"""What operators see of the running control plane beyond the xDS server's own counters.

The runtime tells the ``Observer`` about its events (a stream opened or closed, input
changed, a debounced burst was flushed, a push finished); the observer keeps the few
facts the debug endpoints show (who is connected, recent pushes) and feeds the metrics
that need those events: ``pilot_proxy_convergence_time``, ``pilot_xds_config_size_bytes``,
``pilot_k8s_reg_events``, ``pilot_push_triggers``, ``pilot_services``.

Convergence is the delay from the first input change of a debounced burst until a proxy
whose config that push changed has ACKed everything it was sent, with nothing left to
send. The xDS server says when a stream settled (``on_stream_settled``: every response
answered, nothing due); the observer then reads that one stream's sync state (timestamps
only) and takes the ACK time the server recorded. A stream that settled before the push
was reported is read once when it is. Nothing is polled: a sweep only gives up on streams
that push did not concern.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from controlplane.server.metrics import Metrics

log = logging.getLogger("controlplane.monitoring")

class SyncStatuses(Protocol):
    """XdsServer.sync_statuses: for the given stream ids (``settled_only``: of those settled),
    per type what was sent and ACKed when."""

    def __call__(self, stream_ids: Iterable[int], *, settled_only: bool = False) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class PushRecord:
    """One push, as /debug/push_status lists it."""

    at: float  # epoch seconds when it finished
    kind: str  # "full" or "endpoints"
    snapshot_version: int
    groups: int
    changed_groups: int
    failed_groups: int
    seconds: float
    debounce_seconds: float | None  # None for pushes not caused by an input change


@dataclass
class _Awaited:
    """A stream whose config a push changed, until it has ACKed all of it."""

    group: str
    burst_started: float
    push_started: float


class Observer:
    def __init__(
        self,
        metrics: Metrics,
        cache: Any,  # controlplane.xds.SnapshotCache
        sync_statuses: SyncStatuses,
        *,
        clock: Callable[[], float] = time.time,
        # How often streams a push did not concern (nothing sent to them) are given up on.
        sweep_interval: float = 1.0,
        give_up_after: float = 10.0,
        history: int = 50,
    ) -> None:
        self._metrics = metrics
        self._cache = cache
        self._sync_statuses = sync_statuses
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._give_up_after = give_up_after
        self._streams: dict[int, Any] = {}  # stream id -> xds.StreamInfo
        self._pushes: collections.deque[PushRecord] = collections.deque(maxlen=history)
        self._versions: dict[str, Mapping[str, str]] = {}  # group -> type URL -> version
        self._sized: dict[tuple[str, str], str] = {}  # (group, type URL) -> version measured
        self._burst_started: float | None = None
        self._burst_debounce: float | None = None
        self._awaited: dict[int, _Awaited] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # --- proxies (xDS callbacks, on the event loop) -------------------------------------------

    def stream_opened(self, info: Any) -> None:
        self._streams[info.stream_id] = info

    def stream_closed(self, info: Any) -> None:
        self._streams.pop(info.stream_id, None)
        self._awaited.pop(info.stream_id, None)

    def stream_settled(self, stream_id: int) -> None:
        """The xDS server's ``on_stream_settled``: read the stream if a push awaits it."""
        if stream_id in self._awaited:
            self._settle(self._sync_statuses([stream_id]))

    def streams(self) -> list[Any]:
        """StreamInfo of every open stream, by stream id."""
        return [info for _, info in sorted(self._streams.items())]

    def stream(self, stream_id: int) -> Any | None:
        return self._streams.get(stream_id)

    # --- input (store subscription: any thread) -----------------------------------------------

    def input_changed(self, changes: Any) -> None:
        """Count input events as Istio's pilot_k8s_reg_events does (type = kind)."""
        for key, change in changes.changes.items():
            if change.old is None:
                event = "add"
            elif change.new is None:
                event = "delete"
            else:
                event = "update"
            self._metrics.k8s_reg_events.labels(key.kind, event).inc()

    # --- pushes (on the event loop) -----------------------------------------------------------

    def burst_flushed(self, debounce_seconds: float) -> None:
        """A debounced burst of input changes is about to be pushed."""
        self._burst_debounce = debounce_seconds
        self._burst_started = self._clock() - debounce_seconds

    def pushed(self, report: Any) -> None:
        """A push finished (``controlplane.server.push.PushReport``)."""
        now = self._clock()
        changed = self._changed_groups()
        burst_started, self._burst_started = self._burst_started, None
        debounce, self._burst_debounce = self._burst_debounce, None
        kind = "endpoints" if report.endpoints_only else "full"
        self._metrics.push_triggers.labels("endpoint" if report.endpoints_only else "config").inc()
        if report.failed_groups:
            self._metrics.xds_internal_errors.inc(report.failed_groups)
        self._pushes.append(
            PushRecord(
                at=now,
                kind=kind,
                snapshot_version=report.snapshot_version,
                groups=report.groups,
                changed_groups=len(changed),
                failed_groups=report.failed_groups,
                seconds=report.seconds,
                debounce_seconds=debounce,
            )
        )
        if burst_started is None or not changed:
            return
        push_started = now - report.seconds
        fresh = [
            stream_id
            for stream_id, info in self._streams.items()
            if info.group in changed and stream_id not in self._awaited
        ]
        for stream_id in fresh:
            self._awaited[stream_id] = _Awaited(
                self._streams[stream_id].group, burst_started, push_started
            )
        # Those that settled before now told it while nobody awaited them: read them once.
        if fresh:
            self._settle(self._sync_statuses(fresh, settled_only=True))
        if self._awaited and (self._sweeper is None or self._sweeper.done()):
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep(), name="convergence-sweeper"
            )

    def recent_pushes(self) -> list[PushRecord]:
        return list(self._pushes)

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    # --- scrape time --------------------------------------------------------------------------

    def refresh(self, snapshot: Any) -> None:
        """Before a scrape: inventory gauges from the input snapshot, and the config sizes of
        groups translated since the last push (a new proxy's group is built on connect)."""
        self._observe_sizes()
        self._metrics.services.set(
            len(snapshot.of_kind("Service")) + len(snapshot.of_kind("ServiceEntry"))
        )
        self._metrics.virtual_services.set(len(snapshot.of_kind("VirtualService")))

    # --- internals ----------------------------------------------------------------------------

    def _changed_groups(self) -> set[str]:
        """Groups whose content changed since the last push."""
        self._observe_sizes()
        current = {group: self._cache.group_versions(group) for group in self._cache.groups()}
        changed = {
            group for group, versions in current.items() if versions != self._versions.get(group)
        }
        self._versions = current
        return changed

    def _observe_sizes(self) -> None:
        """pilot_xds_config_size_bytes: each new version of a group's type, measured once."""
        sized: dict[tuple[str, str], str] = {}
        try:
            groups = self._cache.groups()
        except RuntimeError:  # a translation thread added a group meanwhile: measure next time
            return
        for group in groups:
            for type_url, version in self._cache.group_versions(group).items():
                sized[(group, type_url)] = version
                if self._sized.get((group, type_url)) == version:
                    continue
                resources = self._cache.resources(group, type_url)
                size = resources.payload_bytes  # derived from the difference after a step
                self._metrics.config_size_bytes.labels(_short(type_url)).observe(size)
        self._sized = sized

    async def _sweep(self) -> None:
        try:
            while self._awaited:
                await asyncio.sleep(self._sweep_interval)
                self.expire(self._clock())
        except asyncio.CancelledError:
            raise
        except Exception:  # a metric must never take the runtime down
            log.exception("convergence tracking failed")
            self._awaited.clear()

    def expire(self, now: float) -> None:
        """Give up on streams that settled on nothing of their push (it did not concern
        them) or never settled, ``give_up_after`` seconds after it."""
        for stream_id, awaited in list(self._awaited.items()):
            if now - awaited.push_started > self._give_up_after:
                del self._awaited[stream_id]

    def _settle(self, statuses: Iterable[Mapping[str, Any]]) -> None:
        """Settled streams' sync states: converged at their last ACK since the push."""
        for status in statuses:
            awaited = self._awaited.get(status.get("stream_id"))  # type: ignore[arg-type]
            if awaited is None:
                continue
            verdict = _acked_at(status, awaited.push_started)
            if verdict == "nack":
                del self._awaited[status["stream_id"]]  # rejected: it did not converge
            elif isinstance(verdict, float):
                self._metrics.proxy_convergence_time.observe(
                    max(0.0, verdict - awaited.burst_started)
                )
                del self._awaited[status["stream_id"]]
            # None: sent nothing since the push (yet): wait, or give up (expire)


def _acked_at(status: Mapping[str, Any], since: float) -> float | str | None:
    """When the stream ACKed the last response it was sent since ``since``: None if it was
    sent nothing since then, "waiting" while a response awaits its ACK, "nack" if the
    newest response of some type was rejected."""
    latest: float | None = None
    for state in (status.get("types") or {}).values():
        sent_at = state.get("sent_at")
        if sent_at is None or sent_at < since:
            continue
        if state.get("pending_ack"):
            return "waiting"
        nack = state.get("last_nack")
        if nack and nack.get("at", 0) >= sent_at:
            return "nack"
        acked_at = state.get("acked_at")
        if acked_at is None:
            return "waiting"
        latest = acked_at if latest is None else max(latest, acked_at)
    return latest


def _short(type_url: str) -> str:
    from controlplane.xds import types

    return types.short_name(type_url).lower()
