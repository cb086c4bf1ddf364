"""When to renew a certificate: at half its life, with jitter so proxies don't renew at once.

Pure functions of the certificate's validity and an injected random source, as Istio's
SECRET_GRACE_PERIOD_RATIO (0.5) with its jitter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from controlplane.ca.errors import CAError


@dataclass(frozen=True)
class RenewalPolicy:
    renew_at_fraction: float = 0.5  # of the lifetime, measured from notBefore
    jitter_fraction: float = 0.05  # +/- this fraction of the lifetime

    def __post_init__(self) -> None:
        low = self.renew_at_fraction - self.jitter_fraction
        high = self.renew_at_fraction + self.jitter_fraction
        if self.jitter_fraction < 0 or low <= 0 or high >= 1:
            raise CAError("renewal must fall strictly inside the certificate's lifetime")


def renewal_time(
    not_before: datetime,
    not_after: datetime,
    rng: random.Random,
    policy: RenewalPolicy = RenewalPolicy(),
) -> datetime:
    """The moment to renew a certificate valid from ``not_before`` to ``not_after``."""
    lifetime = not_after - not_before
    if lifetime.total_seconds() <= 0:
        raise CAError("certificate lifetime must be positive")
    jitter = rng.uniform(-policy.jitter_fraction, policy.jitter_fraction)
    return not_before + lifetime * (policy.renew_at_fraction + jitter)


def certificate_renewal_time(
    cert: x509.Certificate, rng: random.Random, policy: RenewalPolicy = RenewalPolicy()
) -> datetime:
    return renewal_time(cert.not_valid_before_utc, cert.not_valid_after_utc, rng, policy)
