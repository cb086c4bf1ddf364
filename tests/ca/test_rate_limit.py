"""Token buckets per key and the aggregated refusal log, on an injected clock."""

from __future__ import annotations

import logging

import pytest

from controlplane.auth.rate_limit import KeyedRateLimiter, peer_key
from controlplane.auth.refusals import RefusalSummary


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = KeyedRateLimiter(rate=2.0, burst=5, clock=clock)
    assert [limiter.allow("a") for _ in range(6)] == [True] * 5 + [False]
    clock.now += 0.4  # 0.8 of a token
    assert not limiter.allow("a")
    clock.now += 0.1  # 1.0
    assert limiter.allow("a") and not limiter.allow("a")
    clock.now += 3600  # refills to the burst, never past it
    assert sum(limiter.allow("a") for _ in range(10)) == 5


def test_keys_have_their_own_buckets() -> None:
    limiter = KeyedRateLimiter(rate=1.0, burst=1, clock=Clock())
    assert limiter.allow("a") and not limiter.allow("a")
    assert limiter.allow("b")


def test_a_clock_stepping_back_refills_nothing() -> None:
    clock = Clock()
    limiter = KeyedRateLimiter(rate=1.0, burst=1, clock=clock)
    assert limiter.allow("a")
    clock.now -= 100
    assert not limiter.allow("a")


def test_the_map_is_bounded_and_drops_the_least_recently_used() -> None:
    clock = Clock()
    limiter = KeyedRateLimiter(rate=1.0, burst=1, max_keys=100, clock=clock)
    assert limiter.allow("kept") and not limiter.allow("kept")
    for n in range(99):
        limiter.allow(n)
    assert not limiter.allow("kept")  # touched: now the most recently used
    for n in range(99, 10_099):
        limiter.allow(n)
        assert len(limiter) <= 100
    # "kept" was dropped long ago and starts again full; it had not refilled when dropped.
    assert limiter.allow("kept")
    assert limiter.evictions_of_unfilled > 0


@pytest.mark.parametrize(
    ("peer", "key"),
    [
        ("ipv4:10.1.2.3:40000", "10.1.2.3"),
        ("ipv6:[2001:db8:1:2:3:4:5:6]:40000", "2001:db8:1:2::/64"),
        ("ipv6:[2001:db8:1:2:ffff::9]:1", "2001:db8:1:2::/64"),  # same /64, same bucket
        ("ipv6:[::ffff:127.0.0.1]:5", "127.0.0.1"),
        ("unix:/run/agent.sock", "unix:/run/agent.sock"),
        ("", ""),
    ],
)
def test_peer_key_drops_the_port(peer: str, key: str) -> None:
    assert peer_key(peer) == key


def test_refusals_are_one_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    summary = RefusalSummary(
        logging.getLogger("test.refusals"), "certificate requests", interval=10.0, clock=clock
    )
    with caplog.at_level(logging.INFO, logger="test.refusals"):
        for n in range(1000):
            summary.refused("no_credential", "10.0.0.1")
        for n in range(30):
            summary.refused("peer_rate_limited", f"10.0.0.{n % 5 + 2}")
        assert caplog.records == []
        clock.now += 10.0
        summary.refused("no_credential", "10.0.0.1")  # the interval is over: flushed first
        (line,) = [r.getMessage() for r in caplog.records]
        assert line.startswith(
            "refused 1030 certificate requests in 10 s: no_credential 1000, "
            "peer_rate_limited 30; most from 10.0.0.1 (1000)"
        )
        summary.stop()
        assert caplog.records[-1].getMessage().startswith("refused 1 certificate requests")
        summary.flush()  # nothing pending: nothing logged
        assert len(caplog.records) == 2


def test_refusal_sources_are_bounded() -> None:
    summary = RefusalSummary(logging.getLogger("test.refusals"), "x", max_sources=10, clock=Clock())
    for n in range(10_000):
        summary.refused("r", f"peer-{n}")
    assert len(summary._sources) == 10
    assert summary._reasons["r"] == 10_000
