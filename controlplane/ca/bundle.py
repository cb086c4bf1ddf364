"""The trust bundle: the roots a workload trusts, in order, old roots first during rotation."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from controlplane.ca.certs import cert_pem, fingerprint_sha256
from controlplane.ca.errors import CAError


@dataclass(frozen=True)
class TrustBundle:
    roots: tuple[x509.Certificate, ...]

    def __post_init__(self) -> None:
        if not self.roots:
            raise CAError("a trust bundle needs at least one root")

    @property
    def pems(self) -> list[str]:
        return [cert_pem(root) for root in self.roots]

    @property
    def pem(self) -> str:
        """All roots concatenated, as Envoy's ``trusted_ca`` and Istio's root-cert.pem hold them."""
        return "".join(self.pems)

    @property
    def fingerprints(self) -> tuple[str, ...]:
        return tuple(fingerprint_sha256(root) for root in self.roots)

    def contains(self, cert: x509.Certificate) -> bool:
        return fingerprint_sha256(cert) in self.fingerprints

    def with_root(self, root: x509.Certificate) -> TrustBundle:
        if self.contains(root):
            return self
        return TrustBundle(self.roots + (root,))

    def without_root(self, fingerprint: str) -> TrustBundle:
        kept = tuple(r for r in self.roots if fingerprint_sha256(r) != fingerprint.upper())
        if len(kept) == len(self.roots):
            raise CAError(f"no root with fingerprint {fingerprint} in the bundle")
        return TrustBundle(kept)
