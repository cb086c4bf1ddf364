"""The decision: for each descriptor of a request, the configured limit it reaches, its
window's count after this request's hits, and OK or OVER_LIMIT (envoyproxy/ratelimit's
rules: a descriptor with no limit, or an ``unlimited`` one, is OK; ``shadow_mode`` counts and
reports but never refuses; a limit ``replaces`` the limits it names in the same request).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from envoy.service.ratelimit.v3 import rls_pb2

from controlplane.ratelimit.config import Config, Descriptor
from controlplane.ratelimit.counters import Counters, Increment

OK = rls_pb2.RateLimitResponse.OK
OVER_LIMIT = rls_pb2.RateLimitResponse.OVER_LIMIT
_UNITS = {
    "second": rls_pb2.RateLimitResponse.RateLimit.SECOND,
    "minute": rls_pb2.RateLimitResponse.RateLimit.MINUTE,
    "hour": rls_pb2.RateLimitResponse.RateLimit.HOUR,
    "day": rls_pb2.RateLimitResponse.RateLimit.DAY,
    "week": rls_pb2.RateLimitResponse.RateLimit.WEEK,
    "month": rls_pb2.RateLimitResponse.RateLimit.MONTH,
    "year": rls_pb2.RateLimitResponse.RateLimit.YEAR,
}
# What one request may ask (Envoy sends a few descriptors of a few entries).
MAX_DESCRIPTORS = 64
MAX_ENTRIES = 32
MAX_TEXT = 1024
MAX_HITS = 1_000_000


class BadRequest(ValueError):
    pass


MAX_STAT_KEYS = 10_000  # descriptors with stats (config entries: bounded by the config)


@dataclass
class DescriptorStats:
    """envoyproxy/ratelimit's per-descriptor stats: hits counted, and how they were answered."""

    total_hits: int = 0
    over_limit: int = 0
    within_limit: int = 0
    shadow_mode: int = 0


@dataclass
class Stats:
    """Decisions so far: calls, and hits per configured descriptor (domain, stat key)."""

    requests: int = 0
    over_limit: int = 0  # calls answered OVER_LIMIT
    no_limit: int = 0  # calls no configured limit applied to
    shadow_mode: int = 0  # descriptors over their limit in shadow mode
    by_descriptor: dict[tuple[str, str], DescriptorStats] = field(default_factory=dict)

    def of(self, domain: str, stat_key: str) -> DescriptorStats | None:
        found = self.by_descriptor.get((domain, stat_key))
        if found is None and len(self.by_descriptor) < MAX_STAT_KEYS:
            found = self.by_descriptor[(domain, stat_key)] = DescriptorStats()
        return found


class RateLimitDecider:
    def __init__(self, config: Config, counters: Counters, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.counters = counters
        self.clock = clock
        self.stats = Stats()

    async def should_rate_limit(self, request: rls_pb2.RateLimitRequest) -> rls_pb2.RateLimitResponse:
        domain = request.domain
        if not domain:
            raise BadRequest("rate limit domain must not be empty")
        if len(request.descriptors) > MAX_DESCRIPTORS:
            raise BadRequest(f"more than {MAX_DESCRIPTORS} descriptors")
        hits = request.hits_addend or 1
        if hits > MAX_HITS:
            raise BadRequest(f"hits_addend above {MAX_HITS}")
        found: list[tuple[Descriptor | None, str]] = []
        for d in request.descriptors:
            if len(d.entries) > MAX_ENTRIES:
                raise BadRequest(f"a descriptor with more than {MAX_ENTRIES} entries")
            entries = [(e.key, e.value) for e in d.entries]
            if any(len(k) > MAX_TEXT or len(v) > MAX_TEXT for k, v in entries):
                raise BadRequest(f"a descriptor entry longer than {MAX_TEXT} characters")
            found.append(self.config.find(domain, entries))
        replaced = {name for node, _ in found if node and node.rate_limit for name in node.rate_limit.replaces}
        now = self.clock()
        increments: list[Increment] = []
        counted: list[int] = []  # index in found of each increment
        for i, (node, key) in enumerate(found):
            limit = node.rate_limit if node else None
            if limit is None or limit.unlimited or (limit.name and limit.name in replaced):
                continue
            window = int(now) // limit.seconds * limit.seconds
            increments.append((f"{domain}_{key}_{window}", hits, limit.seconds))
            counted.append(i)
        counts = await self.counters.increment(increments) if increments else []
        response = rls_pb2.RateLimitResponse(overall_code=OK)
        statuses = [rls_pb2.RateLimitResponse.DescriptorStatus(code=OK) for _ in found]
        self.stats.requests += 1
        if not counted:
            self.stats.no_limit += 1
        for i, count in zip(counted, counts):
            node = found[i][0]
            assert node is not None and node.rate_limit is not None
            limit = node.rate_limit
            status = statuses[i]
            status.current_limit.requests_per_unit = limit.requests_per_unit
            status.current_limit.unit = _UNITS[limit.unit]
            if limit.name:
                status.current_limit.name = limit.name
            status.limit_remaining = max(0, limit.requests_per_unit - count)
            window_end = (int(now) // limit.seconds + 1) * limit.seconds
            status.duration_until_reset.seconds = max(0, window_end - int(now))
            stats = self.stats.of(domain, node.stat_key)
            if stats is not None:
                stats.total_hits += hits
            if count > limit.requests_per_unit:
                if node.shadow_mode:
                    self.stats.shadow_mode += 1
                    if stats is not None:
                        stats.shadow_mode += hits
                else:
                    status.code = OVER_LIMIT
                    response.overall_code = OVER_LIMIT
                    if stats is not None:
                        stats.over_limit += hits
            elif stats is not None:
                stats.within_limit += hits
        if response.overall_code == OVER_LIMIT:
            self.stats.over_limit += 1
        response.statuses.extend(statuses)
        return response
