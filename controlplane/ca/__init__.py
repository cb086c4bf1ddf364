"""The built-in certificate authority: keys, X.509-SVIDs, trust bundle, rotation, renewal.

Imports nothing from the project; only ``cryptography`` and the standard library.
"""

from __future__ import annotations

from controlplane.ca.authority import (
    DEFAULT_SERVER_DNS_NAMES,
    DEFAULT_SERVER_IPS,
    DEFAULT_WORKLOAD_TTL,
    CertificateAuthority,
    IssuedCertificate,
    Signer,
    new_root_signer,
)
from controlplane.ca.bundle import TrustBundle
from controlplane.ca.certs import (
    CertificateRequest,
    build_csr,
    build_intermediate,
    build_root,
    cert_pem,
    fingerprint_sha256,
    load_certs_pem,
    parse_csr,
)
from controlplane.ca.errors import CAError
from controlplane.ca.folder import (
    activate_staged_root,
    drop_trusted_root,
    load_ca_folder,
    load_or_init_ca,
    stage_new_root,
)
from controlplane.ca.keys import KeyAlgorithm, generate_key, private_key_pem
from controlplane.ca.renewal import RenewalPolicy, certificate_renewal_time, renewal_time
from controlplane.ca.spiffe import SpiffeId, parse_spiffe_id, parse_workload_id

__all__ = [
    "DEFAULT_SERVER_DNS_NAMES",
    "DEFAULT_SERVER_IPS",
    "DEFAULT_WORKLOAD_TTL",
    "CAError",
    "CertificateAuthority",
    "CertificateRequest",
    "IssuedCertificate",
    "KeyAlgorithm",
    "RenewalPolicy",
    "Signer",
    "SpiffeId",
    "TrustBundle",
    "activate_staged_root",
    "build_csr",
    "build_intermediate",
    "build_root",
    "cert_pem",
    "certificate_renewal_time",
    "drop_trusted_root",
    "fingerprint_sha256",
    "generate_key",
    "load_ca_folder",
    "load_certs_pem",
    "load_or_init_ca",
    "new_root_signer",
    "parse_csr",
    "parse_spiffe_id",
    "parse_workload_id",
    "private_key_pem",
    "renewal_time",
    "stage_new_root",
]
