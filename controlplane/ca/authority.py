"""The certificate authority: who signs, what is trusted, and issuing X.509-SVIDs.

A ``CertificateAuthority`` is immutable. Root rotation returns new values, in two steps:
``with_trusted_root(new_root)`` (trusted everywhere, signs nothing yet) and, once every
proxy has the combined bundle, ``with_signer(new_signer)``. ``without_trusted_root``
ends the overlap after the last leaf signed by the old root has expired.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from cryptography import x509

from controlplane.ca.bundle import TrustBundle
from controlplane.ca.certs import (
    backdate_for,
    build_leaf,
    build_root,
    cert_pem,
    fingerprint_sha256,
    is_ca_certificate,
    is_issued_by,
    is_self_signed,
)
from controlplane.ca.errors import CAError
from controlplane.ca.keys import (
    KeyAlgorithm,
    PrivateKey,
    PublicKey,
    generate_key,
    private_key_pem,
    public_keys_equal,
)
from controlplane.ca.spiffe import SpiffeId, validate_trust_domain

DEFAULT_WORKLOAD_TTL = timedelta(hours=24)
# What Istio's istiod serves on 15012; the SPIFFE ID is the control plane's own identity.
DEFAULT_SERVER_DNS_NAMES = (
    "localhost",
    "istiod.istio-system.svc",
    "istiod.istio-system.svc.cluster.local",
)
DEFAULT_SERVER_IPS = ("127.0.0.1",)
CONTROL_PLANE_NAMESPACE = "istio-system"
CONTROL_PLANE_SERVICE_ACCOUNT = "istiod"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Signer:
    """The signing key, its certificate, the intermediates above it, and its root."""

    key: PrivateKey = field(repr=False)
    cert: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]  # ca-cert first (when not the root), up to the root
    root: x509.Certificate

    def __post_init__(self) -> None:
        if not public_keys_equal(self.key.public_key(), self.cert.public_key()):
            raise CAError("the CA key does not match the CA certificate")
        if not is_ca_certificate(self.cert):
            raise CAError("the CA certificate is not a CA (basicConstraints cA is not true)")
        path = (*self.intermediates, self.root)
        if self.cert != self.root and (
            not self.intermediates or self.intermediates[0] != self.cert
        ):
            raise CAError("a signer that is not the root must list its own certificate first")
        for child, parent in pairwise(path):
            if not is_issued_by(child, parent):
                raise CAError("the CA certificate chain does not lead to its root")
        if not is_self_signed(self.root):
            raise CAError("the root is not self-signed")

    @property
    def not_after(self) -> datetime:
        return min(c.not_valid_after_utc for c in (self.cert, *self.intermediates, self.root))

    @property
    def not_before(self) -> datetime:
        return max(c.not_valid_before_utc for c in (self.cert, *self.intermediates, self.root))


@dataclass(frozen=True)
class IssuedCertificate:
    cert: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]
    root: x509.Certificate  # the root this leaf chains to
    bundle: TrustBundle  # everything a peer should trust right now
    # PEM of the key when the CA generated it (``issue_workload``); never shown in repr.
    private_key_pem: bytes | None = field(default=None, repr=False)

    @property
    def spiffe_id(self) -> str:
        san = self.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return san.get_values_for_type(x509.UniformResourceIdentifier)[0]

    @property
    def cert_pem(self) -> str:
        return cert_pem(self.cert)

    @property
    def chain_pem(self) -> str:
        """Leaf then intermediates: what a TLS endpoint presents (Envoy's certificate_chain)."""
        return "".join(cert_pem(c) for c in (self.cert, *self.intermediates))

    def istio_cert_chain(self) -> list[str]:
        """IstioCertificateResponse.cert_chain: leaf, each intermediate, then the root(s).

        The last entry is the whole trust bundle, concatenated, as istiod sends it: one
        root normally, old and new roots during a rotation.
        """
        return [cert_pem(self.cert), *(cert_pem(c) for c in self.intermediates), self.bundle.pem]


@dataclass(frozen=True)
class CertificateAuthority:
    trust_domain: str
    signer: Signer
    bundle: TrustBundle
    workload_ttl: timedelta = DEFAULT_WORKLOAD_TTL
    key_algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256  # for keys the CA makes itself
    clock: Callable[[], datetime] = field(default=utc_now, compare=False, repr=False)

    def __post_init__(self) -> None:
        validate_trust_domain(self.trust_domain)
        if not self.bundle.contains(self.signer.root):
            raise CAError("the signing root is not in the trust bundle")

    @classmethod
    def self_signed(
        cls,
        trust_domain: str,
        *,
        algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256,
        clock: Callable[[], datetime] = utc_now,
        workload_ttl: timedelta = DEFAULT_WORKLOAD_TTL,
    ) -> CertificateAuthority:
        """A fresh root in memory (tests, or the first start of a CA folder)."""
        signer = new_root_signer(trust_domain, algorithm=algorithm, now=clock())
        return cls(
            trust_domain,
            signer,
            TrustBundle((signer.root,)),
            workload_ttl=workload_ttl,
            key_algorithm=algorithm,
            clock=clock,
        )

    # --- issuing ---------------------------------------------------------------------------

    def workload_id(self, namespace: str, service_account: str) -> SpiffeId:
        return SpiffeId.for_workload(self.trust_domain, namespace, service_account)

    def issue_for_public_key(
        self,
        public_key: PublicKey,
        spiffe_id: SpiffeId,
        *,
        ttl: timedelta | None = None,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
    ) -> IssuedCertificate:
        """Sign an X.509-SVID for a key the caller holds (the CSR path)."""
        if spiffe_id.trust_domain != self.trust_domain:
            raise CAError(f"{spiffe_id} is outside trust domain {self.trust_domain}")
        now = self.clock()
        if now >= self.signer.not_after:
            raise CAError("the signing CA has expired")
        lifetime = min(ttl or self.workload_ttl, self.workload_ttl)
        if lifetime <= timedelta(0):
            raise CAError("certificate lifetime must be positive")
        # Backdated for clock skew, yet never outside the signing CA's own validity.
        not_before = max(now - backdate_for(lifetime), self.signer.not_before)
        not_after = min(now + lifetime, self.signer.not_after)
        leaf = build_leaf(
            public_key,
            spiffe_id=spiffe_id,
            issuer_cert=self.signer.cert,
            issuer_key=self.signer.key,
            not_before=not_before,
            not_after=not_after,
            dns_names=tuple(dns_names),
            ip_addresses=tuple(ipaddress.ip_address(ip) for ip in ip_addresses),
        )
        return IssuedCertificate(leaf, self.signer.intermediates, self.signer.root, self.bundle)

    def issue_workload(
        self, namespace: str, service_account: str, *, ttl: timedelta | None = None
    ) -> IssuedCertificate:
        """Generate a key and sign an X.509-SVID for it (local runs and ``ca issue``)."""
        key = generate_key(self.key_algorithm)
        issued = self.issue_for_public_key(
            key.public_key(), self.workload_id(namespace, service_account), ttl=ttl
        )
        return _with_key(issued, key)

    def issue_server(
        self,
        *,
        dns_names: Sequence[str] = DEFAULT_SERVER_DNS_NAMES,
        ip_addresses: Sequence[str] = DEFAULT_SERVER_IPS,
        namespace: str = CONTROL_PLANE_NAMESPACE,
        service_account: str = CONTROL_PLANE_SERVICE_ACCOUNT,
        ttl: timedelta | None = None,
    ) -> IssuedCertificate:
        """The control plane's own xDS TLS certificate: DNS/IP SANs plus its SPIFFE ID."""
        key = generate_key(self.key_algorithm)
        issued = self.issue_for_public_key(
            key.public_key(),
            self.workload_id(namespace, service_account),
            ttl=ttl,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
        )
        return _with_key(issued, key)

    # --- rotation --------------------------------------------------------------------------

    def with_trusted_root(self, root: x509.Certificate) -> CertificateAuthority:
        """Step 1: trust ``root`` next to the current ones; signing does not change."""
        if not is_self_signed(root) or not is_ca_certificate(root):
            raise CAError("only a self-signed CA certificate can be added as a root")
        return _replace(self, bundle=self.bundle.with_root(root))

    def with_signer(self, signer: Signer) -> CertificateAuthority:
        """Step 2: sign with ``signer``, whose root must already be trusted (step 1)."""
        if not self.bundle.contains(signer.root):
            raise CAError("add the new root to the trust bundle before signing with it")
        return _replace(self, signer=signer)

    def without_trusted_root(self, fingerprint: str) -> CertificateAuthority:
        """Step 3: stop trusting an old root (after its last leaf expired)."""
        if fingerprint.upper() == fingerprint_sha256(self.signer.root):
            raise CAError("cannot drop the root that currently signs")
        return _replace(self, bundle=self.bundle.without_root(fingerprint))


def new_root_signer(
    trust_domain: str, *, algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256, now: datetime
) -> Signer:
    key = generate_key(algorithm)
    root = build_root(key, trust_domain=trust_domain, now=now)
    return Signer(key=key, cert=root, intermediates=(), root=root)


def _with_key(issued: IssuedCertificate, key: PrivateKey) -> IssuedCertificate:
    return IssuedCertificate(
        issued.cert, issued.intermediates, issued.root, issued.bundle, private_key_pem(key)
    )


def _replace(ca: CertificateAuthority, **changes: object) -> CertificateAuthority:
    return replace(ca, **changes)  # type: ignore[arg-type]
