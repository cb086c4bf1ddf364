"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics (as istiod).

Every replica serves xDS; only the leader does singleton work (status writes, publishing the
root ConfigMaps, root rotation). The Lease records ``holderIdentity``, ``leaseDurationSeconds``,
``acquireTime``, ``renewTime`` and ``leaseTransitions``; every write carries the
``resourceVersion`` read, so two candidates never both win (the loser gets 409 Conflict).

As client-go, expiry is judged on the local clock from when this replica last *saw* the
record change, never from the ``renewTime`` written by another machine: clocks of different
nodes need not agree. The leader renews every ``retry_period``; if it cannot renew for
``renew_deadline`` it stops leading before the lease could be taken over
(``renew_deadline < lease_duration``). A replica that stops cleanly releases the lease
(empty holder), so the next one takes over at once instead of after the lease duration.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s

log = logging.getLogger(__name__)

# istiod's defaults (pilot/pkg/leaderelection): 30 s lease, 15 s renew deadline, 5 s retries.
DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_RENEW_DEADLINE_SECONDS = 15.0
DEFAULT_RETRY_SECONDS = 5.0
DEFAULT_LEASE_NAME = "istio-leader"

LeadershipCallback = Callable[[bool], None]


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    namespace: str = "istio-system"
    name: str = DEFAULT_LEASE_NAME
    lease_duration: float = DEFAULT_LEASE_SECONDS
    renew_deadline: float = DEFAULT_RENEW_DEADLINE_SECONDS
    retry_period: float = DEFAULT_RETRY_SECONDS

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration, got "
                f"{self.retry_period}, {self.renew_deadline}, {self.lease_duration}"
            )


@dataclass(frozen=True, slots=True)
class _Record:
    holder: str
    lease_seconds: float
    acquire_time: Any
    renew_time: Any
    transitions: int
    resource_version: str


def default_identity() -> str:
    """This replica's holder identity when none is given: the host name (a pod's name) and
    the process id, so two processes on one machine never claim to be the same holder."""
    return f"{socket.gethostname()}_{os.getpid()}"


def micro_time(now: datetime) -> datetime:
    """A time for a Lease's ``MicroTime`` fields. The client writes datetimes with
    ``isoformat()``, which drops the fraction when it is zero, while the API server parses
    exactly six decimals (RFC 3339 micro): never hand it a whole second."""
    now = now.astimezone(UTC)
    return now if now.microsecond else now.replace(microsecond=1)


class LeaderElector:
    """Campaigns for one Lease in a background thread; ``is_leader`` and callbacks tell the
    rest of the control plane when to do singleton work. Callbacks run on the election
    thread (``True`` when leadership starts, ``False`` when it ends) and must not block."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        identity: str,
        settings: LeaseSettings = LeaseSettings(),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not identity:
            raise ValueError("leader election needs a non-empty identity (the pod name)")
        self.identity = identity
        self.settings = settings
        self._api = k8s.CoordinationV1Api(api_client)
        self._clock = clock
        # A hung API server must not hold a round past the renew deadline.
        self._timeout = settings.renew_deadline / 2
        self._lock = threading.Lock()
        self._callbacks: list[LeadershipCallback] = []
        self._leading = False
        self._observed: _Record | None = None
        self._observed_at = 0.0
        self._last_renew = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.transitions_seen = 0  # times this replica became leader

    # --- the hook others use ----------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def leader(self) -> str:
        """The holder this replica last saw ("" when none)."""
        observed = self._observed
        return observed.holder if observed is not None else ""

    def subscribe(self, callback: LeadershipCallback) -> Callable[[], None]:
        """Call ``callback(is_leader)`` on every change (and now, if already leading)."""
        with self._lock:
            self._callbacks.append(callback)
            leading = self._leading
        if leading:
            callback(True)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self, *, release: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.retry_period + 5)
        if self._leading:
            if release:
                self._release()
            self._set_leading(False)

    def _run(self) -> None:
        s = self.settings
        while not self._stop.is_set():
            ok = self._try_acquire_or_renew()
            now = self._clock()
            if ok:
                self._last_renew = now
                self._set_leading(True)
            elif self._leading and now - self._last_renew >= s.renew_deadline:
                log.warning("leader election: could not renew lease %s/%s for %.1fs; "
                            "no longer leading", s.namespace, s.name, now - self._last_renew)
                self._set_leading(False)
            self._stop.wait(s.retry_period)

    def _set_leading(self, leading: bool) -> None:
        with self._lock:
            if leading == self._leading:
                return
            self._leading = leading
            callbacks = list(self._callbacks)
        if leading:
            self.transitions_seen += 1
        log.info("leader election: %s %s lease %s/%s", self.identity,
                 "now holds" if leading else "no longer holds", self.settings.namespace,
                 self.settings.name)
        for callback in callbacks:
            try:
                callback(leading)
            except Exception:  # one subscriber's bug must not stop the election
                log.exception("leader election: a leadership callback failed")

    # --- one round (client-go's tryAcquireOrRenew) ----------------------------------------

    def _try_acquire_or_renew(self) -> bool:
        s = self.settings
        now = datetime.now(UTC)
        try:
            lease = self._api.read_namespaced_lease(
                s.name, s.namespace, _request_timeout=self._timeout
            )
        except k8s.ApiException as exc:
            if exc.status != 404:
                log.warning("leader election: reading lease %s/%s failed: HTTP %s",
                            s.namespace, s.name, exc.status)
                return False
            return self._create(now)
        except Exception as exc:  # noqa: BLE001 (connection refused, timeouts)
            log.warning("leader election: API unreachable: %s", type(exc).__name__)
            return False
        record = _record_of(lease)
        if self._observed is None or _changed(self._observed, record):
            self._observed, self._observed_at = record, self._clock()
        held_by_other = record.holder not in ("", self.identity)
        if held_by_other and self._observed_at + record.lease_seconds > self._clock():
            return False
        taking_over = record.holder != self.identity
        body = self._lease(
            self.identity,
            _whole_seconds(s.lease_duration),
            acquired=now if taking_over else record.acquire_time,
            renewed=now,
            transitions=record.transitions + (1 if taking_over else 0),
            resource_version=record.resource_version,
        )
        return self._write(body, create=False)

    def _create(self, now: datetime) -> bool:
        s = self.settings
        body = self._lease(self.identity, _whole_seconds(s.lease_duration), acquired=now,
                           renewed=now, transitions=0)
        return self._write(body, create=True)

    def _write(self, body: k8s.V1Lease, *, create: bool) -> bool:
        """Create or replace the lease; False when another replica wrote first (409) or the
        API could not be reached."""
        s = self.settings
        try:
            if create:
                written = self._api.create_namespaced_lease(
                    s.namespace, body, _request_timeout=self._timeout
                )
            else:
                written = self._api.replace_namespaced_lease(
                    s.name, s.namespace, body, _request_timeout=self._timeout
                )
        except k8s.ApiException as exc:  # 409: another replica wrote first
            if exc.status != 409:
                log.warning("leader election: writing lease %s/%s failed: HTTP %s",
                            s.namespace, s.name, exc.status)
            return False
        except Exception as exc:  # noqa: BLE001 (connection refused, timeouts)
            log.warning("leader election: API unreachable: %s", type(exc).__name__)
            return False
        self._observed, self._observed_at = _record_of(written), self._clock()
        return True

    def _release(self) -> None:
        """Give the lease up (client-go's ReleaseOnCancel): empty holder, 1 s duration."""
        s = self.settings
        observed = self._observed
        if observed is None or observed.holder != self.identity:
            return
        now = datetime.now(UTC)
        body = self._lease("", 1, acquired=now, renewed=now, transitions=observed.transitions,
                           resource_version=observed.resource_version)
        try:
            self._api.replace_namespaced_lease(
                s.name, s.namespace, body, _request_timeout=self._timeout
            )
            log.info("leader election: released lease %s/%s", s.namespace, s.name)
        except Exception as exc:  # noqa: BLE001 (the lease then simply expires)
            log.warning("leader election: releasing the lease failed: %s", type(exc).__name__)


    def _lease(
        self,
        holder: str,
        seconds: int,
        *,
        acquired: Any,
        renewed: datetime,
        transitions: int,
        resource_version: str | None = None,
    ) -> k8s.V1Lease:
        s = self.settings
        return k8s.V1Lease(
            api_version="coordination.k8s.io/v1",
            kind="Lease",
            metadata=k8s.V1ObjectMeta(
                name=s.name, namespace=s.namespace, resource_version=resource_version
            ),
            spec=k8s.V1LeaseSpec(
                holder_identity=holder,
                lease_duration_seconds=seconds,
                acquire_time=_time(acquired),
                renew_time=micro_time(renewed),
                lease_transitions=transitions,
            ),
        )


def _record_of(lease: k8s.V1Lease) -> _Record:
    spec = lease.spec or k8s.V1LeaseSpec()
    return _Record(
        holder=spec.holder_identity or "",
        lease_seconds=float(spec.lease_duration_seconds or 0),
        acquire_time=spec.acquire_time,
        renew_time=spec.renew_time,
        transitions=int(spec.lease_transitions or 0),
        resource_version=(lease.metadata.resource_version if lease.metadata else None) or "",
    )


def _changed(old: _Record, new: _Record) -> bool:
    return (old.holder, old.renew_time, old.transitions, old.lease_seconds) != (
        new.holder, new.renew_time, new.transitions, new.lease_seconds
    )


def _whole_seconds(seconds: float) -> int:
    return max(1, round(seconds))


def _time(value: Any) -> Any:
    return micro_time(value) if isinstance(value, datetime) else value


class AlwaysLeader:
    """The one control plane of a folder-fed mesh (or with leader election turned off): it
    does the singleton work itself. Same hook as ``LeaderElector``."""

    identity = ""
    is_leader = True
    leader = ""

    def subscribe(self, callback: LeadershipCallback) -> Callable[[], None]:
        callback(True)
        return lambda: None

    def start(self) -> None:
        pass

    def stop(self, *, release: bool = True) -> None:
        pass
