"""The demo's clients: requests to productpage through a sidecar, and a plaintext prober.

``Traffic`` sends GET / to productpage at a bounded rate from a few threads,
through the loadgen sidecar's outbound listener (Host: productpage:9080), one
request in ``jason_every`` with ``end-user: jason``. Each answer becomes a
``Sample`` (which reviews version answered, which calls failed, which identity
each hop saw) in the current ``StatsWindow``; ``new_window()`` starts the next.

The prober is a caller without a sidecar: a fresh plaintext connection to a
workload's inbound listener each time. Under PERMISSIVE it is served; under
STRICT the sidecar refuses it (the connection is closed during the handshake).

``retarget`` moves the users' requests to another entry (the ingress gateway of the
gateway-api phase): each worker reconnects there, and the first hop is counted for the new
caller.

``DirectCall``s are other callers of the mesh's services (loadgen calling reviews, or
productpage's ``/admin``, through its own sidecar), a few per second, counted by HTTP
status beside the hops of the sampled requests: an AuthorizationPolicy that refuses a
caller shows as that caller's 403s.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Self

from controlplane.demo.stats import (
    ANONYMOUS,
    JASON,
    Probe,
    Sample,
    StatsWindow,
    call_edge,
    status_text,
)

REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Target:
    connect_host: str
    connect_port: int
    host_header: str
    path: str = "/"


@dataclass(frozen=True)
class DirectCall:
    """``caller`` calls ``service`` at ``target`` (its own sidecar's outbound listener)."""

    caller: str
    service: str
    target: Target

    @property
    def edge(self) -> str:
        return call_edge(self.caller, self.service, self.target.path)


def _status_error(name: str, call: dict[str, Any] | None) -> str | None:
    if call is None:
        return f"{name}: not called"
    status = call.get("status", 0)
    if status == 200:
        return None
    return f"{name} HTTP {status}" if status else f"{name} unreachable"


def _hop(caller: str, callee: str, call: dict[str, Any] | None) -> tuple[str, str]:
    return call_edge(caller, callee), status_text(int(call.get("status", 0)) if call else 0)


def classify(
    user: str,
    latency_ms: float,
    status: int,
    body: Any,
    started: float | None = None,
    caller: str = "loadgen",
    path: str = "/",
) -> Sample:
    """Turn productpage's answer (with its downstream results) into a Sample; ``caller``
    is who called productpage, on ``path``."""
    hops = [(call_edge(caller, "productpage", path), status_text(status))]
    if status != 200 or not isinstance(body, dict):
        failure = f"productpage HTTP {status}" if status else "productpage unreachable"
        return Sample(user, latency_ms, None, (failure,), (), started, tuple(hops))
    errors: list[str] = []
    identities = [("productpage", body.get("caller") or "none")]
    calls = body.get("calls") or {}
    version = None
    for name in ("details", "reviews"):
        call = calls.get(name)
        hops.append(_hop("productpage", name, call))
        error = _status_error(name, call)
        if error is not None or call is None:
            errors.append(error or f"{name}: not called")
            continue
        answer = call["body"] if isinstance(call.get("body"), dict) else {}
        identities.append((name, answer.get("caller") or "none"))
        if name != "reviews":
            continue
        version = answer.get("version")
        ratings = (answer.get("calls") or {}).get("ratings")
        if ratings is not None:
            hops.append(_hop("reviews", "ratings", ratings))
            if (error := _status_error("ratings", ratings)) is not None:
                errors.append(error)
            elif isinstance(ratings.get("body"), dict):
                identities.append(("ratings", ratings["body"].get("caller") or "none"))
    return Sample(
        user, latency_ms, version, tuple(errors), tuple(identities), started, tuple(hops)
    )


def get_json(
    conn: http.client.HTTPConnection, target: Target, headers: dict[str, str]
) -> tuple[int, Any]:
    conn.request("GET", target.path, headers={"Host": target.host_header, **headers})
    response = conn.getresponse()
    raw = response.read()
    try:
        return response.status, json.loads(raw) if raw else None
    except ValueError:
        return response.status, raw.decode("utf-8", "replace")[:200]


class Traffic:
    """Background load on productpage plus an optional plaintext prober."""

    def __init__(
        self,
        target: Target,
        *,
        rate: float = 40.0,
        jason_every: int = 4,
        workers: int = 8,
        probe: Target | None = None,
        probe_rate: float = 4.0,
        direct: tuple[DirectCall, ...] = (),
        direct_rate: float = 2.0,
        caller: str = "loadgen",
    ) -> None:
        self._front = (target, caller)  # replaced whole by retarget(): read without a lock
        self.rate = rate
        self.jason_every = jason_every
        self.workers = workers
        self.probe = probe
        self.probe_rate = probe_rate
        self.direct = direct
        self.direct_rate = direct_rate  # rounds per second, each round one call of each
        self.window = StatsWindow()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._slot_lock = threading.Lock()
        self._next_slot = 0
        self._started = 0.0

    @property
    def target(self) -> Target:
        return self._front[0]

    @property
    def caller(self) -> str:
        return self._front[1]

    def retarget(self, target: Target, caller: str) -> None:
        """Send the users' next requests to ``target``, counted as ``caller``'s."""
        self._front = (target, caller)

    def new_window(self) -> StatsWindow:
        """Start counting afresh; returns the window that just ended."""
        ended, self.window = self.window, StatsWindow()
        return ended

    def start(self) -> None:
        self._stop.clear()
        self._started = time.monotonic()
        self._threads = [
            threading.Thread(target=self._worker, name=f"traffic-{i}", daemon=True)
            for i in range(self.workers)
        ]
        if self.probe is not None:
            self._threads.append(threading.Thread(target=self._prober, name="probe", daemon=True))
        if self.direct:
            self._threads.append(threading.Thread(target=self._direct, name="direct", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT_SECONDS + 1)
        self._threads = []

    def run_for(self, seconds: float) -> StatsWindow:
        self.start()
        try:
            self._stop.wait(seconds)
        finally:
            self.stop()
        return self.window

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _take_slot(self) -> tuple[int, float]:
        with self._slot_lock:
            slot = self._next_slot
            self._next_slot += 1
        return slot, self._started + slot / self.rate

    def _worker(self) -> None:
        conn: http.client.HTTPConnection | None = None
        connected_to: Target | None = None
        while not self._stop.is_set():
            slot, due = self._take_slot()
            if self._stop.wait(max(0.0, due - time.monotonic())):
                break
            user = JASON if slot % self.jason_every == 0 else ANONYMOUS
            headers = {"end-user": user} if user == JASON else {}
            # The time first: a request counted in a window opened after retarget() (its start
            # later than ``sent``) reads the new target.
            sent = time.monotonic()
            target, caller = self._front
            if conn is not None and connected_to != target:
                conn.close()
                conn = None
            started = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(
                        target.connect_host, target.connect_port, timeout=REQUEST_TIMEOUT_SECONDS
                    )
                    connected_to = target
                status, body = get_json(conn, target, headers)
            except (OSError, http.client.HTTPException):
                status, body = 0, None
                if conn is not None:
                    conn.close()
                conn = None
            latency_ms = (time.perf_counter() - started) * 1000
            self.window.add(classify(user, latency_ms, status, body, sent, caller, target.path))
        if conn is not None:
            conn.close()

    def _prober(self) -> None:
        assert self.probe is not None
        interval = 1.0 / self.probe_rate
        while not self._stop.wait(interval):
            self.window.add_probe(probe_plaintext(self.probe))

    def _direct(self) -> None:
        interval = 1.0 / self.direct_rate
        while not self._stop.wait(interval):
            for call in self.direct:
                sent = time.monotonic()
                self.window.add_call(call.edge, status_text(direct_status(call.target)), sent)


def direct_status(target: Target) -> int:
    """The HTTP status of one GET on a fresh connection; 0 when there is no answer."""
    conn = http.client.HTTPConnection(target.connect_host, target.connect_port, timeout=5)
    try:
        status, _ = get_json(conn, target, {})
        return status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def probe_plaintext(target: Target) -> Probe:
    """One plaintext request on a fresh connection, as a caller without a sidecar makes it."""
    sent = time.monotonic()
    conn = http.client.HTTPConnection(target.connect_host, target.connect_port, timeout=5)
    try:
        status, _ = get_json(conn, target, {})
        return Probe(status == 200, f"HTTP {status}", sent)
    except ConnectionResetError:
        return Probe(False, "connection reset", sent)
    except ConnectionRefusedError:
        return Probe(False, "connection refused", sent)
    except http.client.RemoteDisconnected:
        return Probe(False, "closed by the sidecar", sent)
    except (OSError, http.client.HTTPException) as exc:
        return Probe(False, type(exc).__name__, sent)
    finally:
        conn.close()
