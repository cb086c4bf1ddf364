"""What the traffic measured during one window: versions, errors, latency, identities.

A ``Sample`` is one productpage request as the traffic generator saw it (its
downstream results come back in productpage's JSON); a ``Probe`` is one call of
the plaintext client that has no sidecar. Every hop is also counted by HTTP status per
caller (``calls``: ``"productpage -> reviews /"`` -> ``{"200": n, "403": m}``), from the
samples and from the direct calls of other callers, so a refusal by an
AuthorizationPolicy shows as 403s of that caller. ``StatsWindow`` collects them from
several threads and hands out frozen ``WindowSummary`` snapshots for the view,
the results file and the tests.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

ANONYMOUS = "anonymous"
JASON = "jason"
USERS = (ANONYMOUS, JASON)
UNREACHABLE = "unreachable"  # a call that got no HTTP answer


def call_edge(caller: str, callee: str, path: str = "/") -> str:
    """``loadgen -> productpage /admin``: who called which service on which path."""
    return f"{caller} -> {callee} {path}"


def status_text(status: int) -> str:
    return str(status) if status else UNREACHABLE


@dataclass(frozen=True)
class Sample:
    user: str
    latency_ms: float
    reviews_version: str | None  # None when reviews did not answer
    errors: tuple[str, ...]  # e.g. ("ratings HTTP 500",); empty when every call succeeded
    identities: tuple[tuple[str, str], ...]  # (callee service, caller SPIFFE ID or "none")
    started: float | None = None  # time.monotonic() when the request was sent
    calls: tuple[tuple[str, str], ...] = ()  # (call_edge, status_text) of every hop

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class Probe:
    accepted: bool
    outcome: str  # "HTTP 200", "connection reset", ...
    started: float | None = None


@dataclass(frozen=True)
class UserSummary:
    requests: int
    versions: dict[str, int]
    errors: int
    error_kinds: dict[str, int]
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    def share(self, version: str) -> float:
        answered = sum(self.versions.values())
        return self.versions.get(version, 0) / answered if answered else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class WindowSummary:
    seconds: float
    users: dict[str, UserSummary]
    identities: dict[str, dict[str, int]]  # callee -> caller identity -> count
    probes: int
    probes_accepted: int
    probe_outcomes: dict[str, int]
    calls: dict[str, dict[str, int]] = field(default_factory=dict)  # edge -> status -> count

    @property
    def requests(self) -> int:
        return sum(u.requests for u in self.users.values())

    def to_json(self) -> dict[str, object]:
        return {
            "seconds": round(self.seconds, 3),
            "users": {
                name: u.__dict__ | {"error_rate": u.error_rate} for name, u in self.users.items()
            },
            "identities": self.identities,
            "plaintext": {
                "probes": self.probes,
                "accepted": self.probes_accepted,
                "outcomes": self.probe_outcomes,
            },
            "calls": self.calls,
        }


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


@dataclass
class _UserCounts:
    latencies: list[float] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)
    error_kinds: Counter[str] = field(default_factory=Counter)
    errors: int = 0


class StatsWindow:
    """Thread-safe accumulator for one measurement window.

    Only requests sent after the window opened count: one sent before a change
    reached the sidecars may answer after, and must not be blamed on the new config.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._users = {user: _UserCounts() for user in USERS}
        self._identities: dict[str, Counter[str]] = {}
        self._probe_outcomes: Counter[str] = Counter()
        self._probes_accepted = 0
        self._calls: dict[str, Counter[str]] = {}

    def add(self, sample: Sample) -> None:
        if sample.started is not None and sample.started < self._started:
            return
        with self._lock:
            counts = self._users.setdefault(sample.user, _UserCounts())
            counts.latencies.append(sample.latency_ms)
            if sample.reviews_version:
                counts.versions[sample.reviews_version] += 1
            if sample.errors:
                counts.errors += 1
                counts.error_kinds.update(sample.errors)
            for callee, caller in sample.identities:
                self._identities.setdefault(callee, Counter())[caller] += 1
            for edge, status in sample.calls:
                self._calls.setdefault(edge, Counter())[status] += 1

    def add_call(self, edge: str, status: str, started: float | None = None) -> None:
        """One call of a caller outside the sampled traffic (see ``traffic.DirectCall``)."""
        if started is not None and started < self._started:
            return
        with self._lock:
            self._calls.setdefault(edge, Counter())[status] += 1

    def add_probe(self, probe: Probe) -> None:
        if probe.started is not None and probe.started < self._started:
            return
        with self._lock:
            self._probe_outcomes[probe.outcome] += 1
            self._probes_accepted += probe.accepted

    def summary(self) -> WindowSummary:
        with self._lock:
            users = {}
            for name, counts in self._users.items():
                ordered = sorted(counts.latencies)
                users[name] = UserSummary(
                    requests=len(ordered),
                    versions=dict(sorted(counts.versions.items())),
                    errors=counts.errors,
                    error_kinds=dict(counts.error_kinds.most_common()),
                    p50_ms=percentile(ordered, 0.50),
                    p95_ms=percentile(ordered, 0.95),
                    p99_ms=percentile(ordered, 0.99),
                )
            return WindowSummary(
                seconds=time.monotonic() - self._started,
                users=users,
                identities={k: dict(v.most_common()) for k, v in sorted(self._identities.items())},
                probes=sum(self._probe_outcomes.values()),
                probes_accepted=self._probes_accepted,
                probe_outcomes=dict(self._probe_outcomes.most_common()),
                calls={edge: dict(sorted(c.items())) for edge, c in sorted(self._calls.items())},
            )
