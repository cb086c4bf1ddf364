from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlplane.ca import CertificateAuthority


@pytest.fixture(scope="module")
def authority() -> CertificateAuthority:
    return CertificateAuthority.self_signed("cluster.local")


@pytest.fixture
def fixed_now() -> datetime:
    return datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
