from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from controlplane.ca import (
    CAError,
    CertificateAuthority,
    RenewalPolicy,
    certificate_renewal_time,
    renewal_time,
)

START = datetime(2026, 6, 1, tzinfo=UTC)
DAY = timedelta(hours=24)


def test_renewal_is_at_half_life_within_the_jitter() -> None:
    rng = random.Random(7)
    times = [renewal_time(START, START + DAY, rng) for _ in range(500)]
    low, high = START + DAY * 0.45, START + DAY * 0.55
    assert all(low <= t <= high for t in times)
    assert len(set(times)) > 400  # jittered: proxies do not all renew at the same instant
    assert min(times) < START + DAY / 2 < max(times)


def test_renewal_is_a_pure_function_of_its_inputs() -> None:
    first = [renewal_time(START, START + DAY, random.Random(42)) for _ in range(3)]
    assert len(set(first)) == 1


def test_zero_jitter_is_exactly_half_life() -> None:
    policy = RenewalPolicy(renew_at_fraction=0.5, jitter_fraction=0.0)
    assert renewal_time(START, START + DAY, random.Random(1), policy) == START + DAY / 2


def test_policy_must_renew_inside_the_lifetime() -> None:
    with pytest.raises(CAError):
        RenewalPolicy(renew_at_fraction=0.9, jitter_fraction=0.2)
    with pytest.raises(CAError):
        renewal_time(START, START, random.Random(1))


def test_renewal_time_of_an_issued_certificate(authority: CertificateAuthority) -> None:
    cert = authority.issue_workload("default", "reviews").cert
    at = certificate_renewal_time(cert, random.Random(3))
    assert cert.not_valid_before_utc < at < cert.not_valid_after_utc
    half = cert.not_valid_before_utc + (cert.not_valid_after_utc - cert.not_valid_before_utc) / 2
    assert (
        abs((at - half).total_seconds())
        <= 0.05 * (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds()
    )
