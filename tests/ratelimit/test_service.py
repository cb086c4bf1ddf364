"""The RLS's decisions (envoyproxy/ratelimit's rules) with counters in memory and in Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
from envoy.service.ratelimit.v3 import rls_pb2

from controlplane.ratelimit.config import Config, parse_domain
from controlplane.ratelimit.counters import MemoryCounters, RedisCounters
from controlplane.ratelimit.service import OK, OVER_LIMIT, BadRequest, RateLimitDecider
from tests.ratelimit.processes import running_redis

CONFIG = Config({"d": parse_domain({"domain": "d", "descriptors": [
    {"key": "path", "value": "/", "rate_limit": {"unit": "minute", "requests_per_unit": 2}},
    {"key": "path", "rate_limit": {"unit": "second", "requests_per_unit": 1, "name": "per-path"}},
    {"key": "shadow", "shadow_mode": True, "rate_limit": {"unit": "minute", "requests_per_unit": 1}},
    {"key": "internal", "rate_limit": {"unlimited": True}},
    {"key": "premium", "rate_limit": {"unit": "minute", "requests_per_unit": 100, "replaces": [{"name": "per-path"}]}},
]})})


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_040.0  # 20 s into a minute

    def __call__(self) -> float:
        return self.now


def request(*descriptors: list[tuple[str, str]], hits: int = 0) -> rls_pb2.RateLimitRequest:
    req = rls_pb2.RateLimitRequest(domain="d", hits_addend=hits)
    for entries in descriptors:
        d = req.descriptors.add()
        for k, v in entries:
            d.entries.add(key=k, value=v)
    return req


async def _fixed_window_rules(decider: RateLimitDecider, clock: Clock) -> None:
    root = [("path", "/")]
    first = await decider.should_rate_limit(request(root))
    assert first.overall_code == OK
    assert first.statuses[0].current_limit.requests_per_unit == 2 and first.statuses[0].limit_remaining == 1
    assert first.statuses[0].duration_until_reset.seconds == 40
    assert (await decider.should_rate_limit(request(root))).overall_code == OK
    third = await decider.should_rate_limit(request(root))
    assert third.overall_code == OVER_LIMIT and third.statuses[0].code == OVER_LIMIT
    clock.now += 40  # the next minute: a new window
    assert (await decider.should_rate_limit(request(root))).overall_code == OK
    # Any other path: counted per value, a second each.
    assert (await decider.should_rate_limit(request([("path", "/a")]))).overall_code == OK
    assert (await decider.should_rate_limit(request([("path", "/b")]))).overall_code == OK
    assert (await decider.should_rate_limit(request([("path", "/a")]))).overall_code == OVER_LIMIT
    # hits_addend counts several at once.
    assert (await decider.should_rate_limit(request([("path", "/c")], hits=2))).overall_code == OVER_LIMIT


async def test_memory_counters_fixed_windows() -> None:
    clock = Clock()
    await _fixed_window_rules(RateLimitDecider(CONFIG, MemoryCounters(clock), clock), clock)


async def test_redis_counters_fixed_windows(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis") as url:
        clock = Clock()
        counters = RedisCounters(url)
        try:
            await _fixed_window_rules(RateLimitDecider(CONFIG, counters, clock), clock)
            # Keys expire with their window (envoyproxy/ratelimit's INCRBY + EXPIRE).
            import redis

            client = redis.Redis.from_url(url)
            keys = client.keys("d_path_*")
            assert keys and all(0 < client.ttl(k) <= 60 for k in keys)
            client.close()
        finally:
            await counters.close()


async def test_shadow_unlimited_unknown_and_replaces() -> None:
    clock = Clock()
    decider = RateLimitDecider(CONFIG, MemoryCounters(clock), clock)
    for _ in range(3):  # shadow mode: over the limit, never refused
        assert (await decider.should_rate_limit(request([("shadow", "x")]))).overall_code == OK
    assert decider.stats.shadow_mode == 2
    for _ in range(5):
        assert (await decider.should_rate_limit(request([("internal", "x")]))).overall_code == OK
        assert (await decider.should_rate_limit(request([("nothing", "x")]))).overall_code == OK
    # premium replaces per-path: the 1/s limit is not applied when both match.
    for _ in range(3):
        response = await decider.should_rate_limit(request([("path", "/p")], [("premium", "gold")]))
        assert response.overall_code == OK
    assert (await decider.should_rate_limit(request([("path", "/p")]))).overall_code == OK  # not counted before


async def test_requests_are_bounded() -> None:
    decider = RateLimitDecider(CONFIG, MemoryCounters())
    with pytest.raises(BadRequest):
        await decider.should_rate_limit(request(*[[("path", "/")]] * 65))
    with pytest.raises(BadRequest):
        await decider.should_rate_limit(request([("path", "x" * 2000)]))
    with pytest.raises(BadRequest):
        await decider.should_rate_limit(rls_pb2.RateLimitRequest())
