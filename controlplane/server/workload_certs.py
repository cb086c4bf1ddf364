"""SDS for proven identities: each gets ``default`` (its SVID and key) and ``ROOTCA``.

A certificate is issued when the first stream of an identity connects, renewed at half
life with jitter while any stream of that identity remains, and pushed again through
the cache, which Envoy applies without dropping connections. Keys live only in memory
and in the protobufs sent to the proxy that proved the identity.

An identity that reconnects before its certificate's renewal time gets the same one
again: a proxy opening and closing streams in a loop would otherwise have a key made and
signed for each (387 certificates/s from one token). At most ``max_held`` are kept for
identities with no stream, the least recently used dropped first.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from controlplane.auth.identity import ProvenIdentity
from controlplane.ca import CertificateAuthority, certificate_renewal_time
from controlplane.translate import SECRET_TYPE
from controlplane.translate.secrets import workload_secrets

log = logging.getLogger("controlplane.ca")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Held:
    ca: CertificateAuthority  # the CA that signed it: after a rotation it is not reused
    resources: list[Any]  # the "default" and "ROOTCA" secrets
    renew_at: datetime


class WorkloadCertificates:
    def __init__(
        self,
        authority: Callable[[], CertificateAuthority],
        cache,  # controlplane.xds.SnapshotCache
        *,
        on_issued: Callable[[ProvenIdentity], None] = lambda identity: None,
        rng: random.Random | None = None,
        max_held: int = 10_000,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._authority = authority
        self._cache = cache
        self._on_issued = on_issued
        self._rng = rng or random.SystemRandom()
        self._max_held = max_held
        self._clock = clock
        self._streams: Counter[ProvenIdentity] = Counter()
        self._timers: dict[ProvenIdentity, asyncio.TimerHandle] = {}
        self._held: OrderedDict[ProvenIdentity, _Held] = OrderedDict()

    def stream_opened(self, identity: ProvenIdentity) -> None:
        self._streams[identity] += 1
        if identity in self._timers:
            return
        held = self._held.get(identity)
        if held is not None and held.ca is self._authority() and self._clock() < held.renew_at:
            self._held.move_to_end(identity)
            self._serve(identity, held)
        else:
            self._issue(identity)

    def stream_closed(self, identity: ProvenIdentity) -> None:
        self._streams[identity] -= 1
        if self._streams[identity] > 0:
            return
        del self._streams[identity]
        timer = self._timers.pop(identity, None)
        if timer is not None:
            timer.cancel()
        self._cache.remove_identity(identity)

    def reissue_all(self) -> None:
        """After a root rotation: every identity gets a certificate and bundle from the new CA."""
        self._held.clear()
        for identity in list(self._timers):
            self._issue(identity)

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _issue(self, identity: ProvenIdentity) -> None:
        ca = self._authority()
        issued = ca.issue_workload(identity.namespace, identity.service_account)
        assert issued.private_key_pem is not None  # issue_workload generates the key
        default, rootca = workload_secrets(issued.chain_pem, issued.private_key_pem, ca.bundle.pems)
        held = _Held(ca, [default, rootca], certificate_renewal_time(issued.cert, self._rng))
        self._held[identity] = held
        self._held.move_to_end(identity)
        while len(self._held) > self._max_held:
            self._held.popitem(last=False)
        self._on_issued(identity)
        delay = self._serve(identity, held)
        # The serial lets benchmarks/cert_rotation.py match this moment with what proxies receive.
        log.debug("issued %s serial %x, renewing in %.1f s", issued.spiffe_id, issued.cert.serial_number, delay)

    def _serve(self, identity: ProvenIdentity, held: _Held) -> float:
        """Put the secrets in the cache and set the renewal timer; returns its delay."""
        self._cache.set_identity_resources(identity, SECRET_TYPE, held.resources)
        delay = max(0.0, (held.renew_at - self._clock()).total_seconds())
        previous = self._timers.pop(identity, None)
        if previous is not None:
            previous.cancel()
        self._timers[identity] = asyncio.get_running_loop().call_later(delay, self._renew, identity)
        return delay

    def _renew(self, identity: ProvenIdentity) -> None:
        if identity in self._streams:
            try:
                self._issue(identity)
            except Exception:
                # Keep serving the current certificate; try again shortly.
                log.exception("renewing the certificate of %s failed", identity.spiffe_id)
                self._timers[identity] = asyncio.get_running_loop().call_later(5.0, self._renew, identity)
