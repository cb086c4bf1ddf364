"""SDS certificates per proven identity: a reconnect reuses a certificate still before its
renewal time, so stream churn does not make a key and a signature per stream."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from controlplane.auth import ProvenIdentity
from controlplane.ca import CertificateAuthority
from controlplane.server.workload_certs import WorkloadCertificates

REVIEWS = ProvenIdentity("cluster.local", "default", "reviews")


class FakeCache:
    def __init__(self) -> None:
        self.served: dict[ProvenIdentity, list[Any]] = {}

    def set_identity_resources(self, identity: Any, type_url: str, resources: Any) -> None:
        self.served[identity] = list(resources)

    def remove_identity(self, identity: Any) -> None:
        self.served.pop(identity, None)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def _certs(**kwargs: Any) -> tuple[WorkloadCertificates, FakeCache, list[ProvenIdentity], dict]:
    holder = {"ca": CertificateAuthority.self_signed("cluster.local")}
    cache, issued = FakeCache(), []
    certs = WorkloadCertificates(
        lambda: holder["ca"], cache, on_issued=issued.append, rng=random.Random(1), **kwargs
    )
    return certs, cache, issued, holder


async def test_stream_churn_from_one_identity_issues_one_certificate() -> None:
    certs, cache, issued, _ = _certs()
    try:
        for _ in range(100):
            certs.stream_opened(REVIEWS)
            first = cache.served[REVIEWS]
            certs.stream_closed(REVIEWS)
            assert REVIEWS not in cache.served  # nothing served to nobody
        certs.stream_opened(REVIEWS)
        assert cache.served[REVIEWS] == first
        assert issued == [REVIEWS]
    finally:
        certs.stop()


async def test_a_reconnect_after_the_renewal_time_gets_a_new_certificate() -> None:
    clock = Clock()
    certs, _, issued, _ = _certs(clock=clock)
    try:
        certs.stream_opened(REVIEWS)
        certs.stream_closed(REVIEWS)
        clock.now += timedelta(hours=23)  # past half life and its jitter
        certs.stream_opened(REVIEWS)
        assert issued == [REVIEWS, REVIEWS]
    finally:
        certs.stop()


async def test_a_new_ca_is_never_served_an_old_certificate() -> None:
    certs, _, issued, holder = _certs()
    try:
        certs.stream_opened(REVIEWS)
        certs.stream_closed(REVIEWS)
        holder["ca"] = CertificateAuthority.self_signed("cluster.local")
        certs.stream_opened(REVIEWS)
        assert issued == [REVIEWS, REVIEWS]
    finally:
        certs.stop()


async def test_held_certificates_are_bounded() -> None:
    certs, _, issued, _ = _certs(max_held=5)
    try:
        for n in range(20):
            identity = ProvenIdentity("cluster.local", "default", f"sa-{n}")
            certs.stream_opened(identity)
            certs.stream_closed(identity)
        assert len(certs._held) == 5
        certs.stream_opened(ProvenIdentity("cluster.local", "default", "sa-0"))  # dropped: anew
        assert len(issued) == 21
    finally:
        certs.stop()
