"""The CA folder, in the layout of Istio's ``cacerts`` secret.

    ca-key.pem      the signing key (mode 0600; created once, never overwritten)
    ca-cert.pem     the signing certificate (the root itself, or an intermediate)
    cert-chain.pem  ca-cert.pem up to the root (Istio's convention; the root may be included)
    root-cert.pem   the trust bundle: every trusted root, old and new during a rotation

A folder without these files gets a fresh self-signed root on first start. Files put
there beforehand (Istio's ``cacerts``, with or without an intermediate) are used as is.
Root rotation stages the new root under ``next/`` and keeps retired keys under
``retired/<UTC time>/``: a key file is only ever created, moved, never rewritten.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from controlplane.ca.authority import (
    DEFAULT_WORKLOAD_TTL,
    CertificateAuthority,
    Signer,
    new_root_signer,
    utc_now,
)
from controlplane.ca.bundle import TrustBundle
from controlplane.ca.certs import (
    cert_pem,
    fingerprint_sha256,
    is_issued_by,
    is_self_signed,
    load_certs_pem,
)
from controlplane.ca.errors import CAError
from controlplane.ca.keys import (
    KeyAlgorithm,
    read_private_key_file,
    write_new_file,
    write_new_private_key,
)

log = logging.getLogger(__name__)

CA_KEY = "ca-key.pem"
CA_CERT = "ca-cert.pem"
CERT_CHAIN = "cert-chain.pem"
ROOT_CERT = "root-cert.pem"
NEXT_DIR = "next"
RETIRED_DIR = "retired"
_PUBLIC_MODE = 0o644
_MAX_CHAIN = 8


def load_or_init_ca(
    folder: Path,
    trust_domain: str,
    *,
    algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256,
    workload_ttl: timedelta = DEFAULT_WORKLOAD_TTL,
    strict_permissions: bool = False,
    clock: Callable[[], datetime] = utc_now,
) -> CertificateAuthority:
    """Load the CA from ``folder``, creating a self-signed root there if it has none."""
    if not (folder / CA_KEY).exists() and not (folder / CA_CERT).exists():
        init_ca_folder(folder, trust_domain, algorithm=algorithm, now=clock())
    return load_ca_folder(
        folder,
        trust_domain,
        workload_ttl=workload_ttl,
        key_algorithm=algorithm,
        strict_permissions=strict_permissions,
        clock=clock,
    )


def init_ca_folder(
    folder: Path, trust_domain: str, *, algorithm: KeyAlgorithm, now: datetime
) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in (CA_KEY, CA_CERT, CERT_CHAIN, ROOT_CERT):
        if (folder / name).exists():
            raise CAError(f"{folder / name} exists; refusing to initialise over it")
    signer = new_root_signer(trust_domain, algorithm=algorithm, now=now)
    write_new_private_key(folder / CA_KEY, signer.key)
    root_pem = cert_pem(signer.root).encode()
    for name in (CA_CERT, CERT_CHAIN, ROOT_CERT):
        write_new_file(folder / name, root_pem, _PUBLIC_MODE)
    log.info("created a new root CA in %s (SHA-256 %s)", folder, fingerprint_sha256(signer.root))


def load_ca_folder(
    folder: Path,
    trust_domain: str,
    *,
    workload_ttl: timedelta = DEFAULT_WORKLOAD_TTL,
    key_algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256,
    strict_permissions: bool = False,
    clock: Callable[[], datetime] = utc_now,
) -> CertificateAuthority:
    signer = load_signer(folder, strict_permissions=strict_permissions)
    roots = load_certs_pem(_read(folder / ROOT_CERT), str(folder / ROOT_CERT))
    if not roots:
        raise CAError(f"{folder / ROOT_CERT} holds no certificate")
    bundle = TrustBundle(tuple(roots))
    if not bundle.contains(signer.root):
        raise CAError(f"the root of {folder / CA_CERT} is not in {folder / ROOT_CERT}")
    now = clock()
    if now >= signer.not_after:
        raise CAError(f"the CA certificate in {folder} expired on {signer.not_after:%Y-%m-%d}")
    return CertificateAuthority(
        trust_domain,
        signer,
        bundle,
        workload_ttl=workload_ttl,
        key_algorithm=key_algorithm,
        clock=clock,
    )


def load_signer(folder: Path, *, strict_permissions: bool = False) -> Signer:
    """The signing key and certificate, and the path from it to a root in root-cert.pem."""
    key = read_private_key_file(folder / CA_KEY, strict_permissions=strict_permissions)
    certs = load_certs_pem(_read(folder / CA_CERT), str(folder / CA_CERT))
    if not certs:
        raise CAError(f"{folder / CA_CERT} holds no certificate")
    ca_cert = certs[0]
    roots = load_certs_pem(_read(folder / ROOT_CERT), str(folder / ROOT_CERT))
    chain_path = folder / CERT_CHAIN
    chain = load_certs_pem(chain_path.read_bytes(), str(chain_path)) if chain_path.exists() else []
    intermediates, root = _path_to_root(ca_cert, candidates=certs[1:] + chain, roots=roots)
    return Signer(key=key, cert=ca_cert, intermediates=intermediates, root=root)


def _path_to_root(
    cert: x509.Certificate, *, candidates: list[x509.Certificate], roots: list[x509.Certificate]
) -> tuple[tuple[x509.Certificate, ...], x509.Certificate]:
    if is_self_signed(cert):
        return (), cert
    path = [cert]
    current = cert
    for _ in range(_MAX_CHAIN):
        root = next((r for r in roots if is_issued_by(current, r)), None)
        if root is not None:
            return tuple(path), root
        parent = next(
            (
                c
                for c in candidates
                if not is_self_signed(c) and c not in path and is_issued_by(current, c)
            ),
            None,
        )
        if parent is None:
            break
        path.append(parent)
        current = parent
    raise CAError(f"{CA_CERT} does not chain to a root in {ROOT_CERT} (via {CERT_CHAIN})")


# --- root rotation ------------------------------------------------------------------------


def stage_new_root(
    folder: Path,
    trust_domain: str,
    *,
    algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256,
    now: datetime | None = None,
) -> x509.Certificate:
    """Rotation step 1: make a new root under next/ and add it to root-cert.pem."""
    staged = folder / NEXT_DIR
    if staged.exists():
        raise CAError(f"{staged} exists: a rotation is already staged")
    staged.mkdir(mode=0o700)
    signer = new_root_signer(trust_domain, algorithm=algorithm, now=now or utc_now())
    write_new_private_key(staged / CA_KEY, signer.key)
    write_new_file(staged / CA_CERT, cert_pem(signer.root).encode(), _PUBLIC_MODE)
    roots = load_certs_pem(_read(folder / ROOT_CERT), str(folder / ROOT_CERT))
    _replace_public_file(folder / ROOT_CERT, "".join(cert_pem(r) for r in (*roots, signer.root)))
    log.info(
        "staged new root (SHA-256 %s); it is trusted, not yet signing",
        fingerprint_sha256(signer.root),
    )
    return signer.root


def activate_staged_root(folder: Path, *, now: datetime | None = None) -> None:
    """Rotation step 2: sign with the staged root; the old one stays in root-cert.pem."""
    staged = folder / NEXT_DIR
    if not (staged / CA_KEY).exists():
        raise CAError(f"no staged root in {staged}; stage one first")
    new_root = load_certs_pem(_read(staged / CA_CERT), str(staged / CA_CERT))[0]
    roots = load_certs_pem(_read(folder / ROOT_CERT), str(folder / ROOT_CERT))
    if fingerprint_sha256(new_root) not in {fingerprint_sha256(r) for r in roots}:
        raise CAError("the staged root is not in root-cert.pem; refusing to sign with it")
    retired = folder / RETIRED_DIR / (now or utc_now()).strftime("%Y%m%dT%H%M%SZ")
    retired.mkdir(mode=0o700, parents=True)
    for name in (CA_KEY, CA_CERT, CERT_CHAIN):
        if (folder / name).exists():
            _move_new(folder / name, retired / name)
    _move_new(staged / CA_KEY, folder / CA_KEY)
    _move_new(staged / CA_CERT, folder / CA_CERT)
    write_new_file(folder / CERT_CHAIN, cert_pem(new_root).encode(), _PUBLIC_MODE)
    staged.rmdir()
    log.info("now signing with root SHA-256 %s", fingerprint_sha256(new_root))


def drop_trusted_root(folder: Path, fingerprint: str) -> None:
    """Rotation step 3: remove an old root from root-cert.pem once its leaves expired."""
    signer_root = load_signer(folder).root
    if fingerprint_sha256(signer_root) == fingerprint.upper():
        raise CAError("cannot drop the root that currently signs")
    bundle = TrustBundle(tuple(load_certs_pem(_read(folder / ROOT_CERT)))).without_root(fingerprint)
    _replace_public_file(folder / ROOT_CERT, bundle.pem)


def _move_new(source: Path, target: Path) -> None:
    # os.link fails if the target exists, so nothing is ever replaced by a move.
    try:
        os.link(source, target)
    except FileExistsError:
        raise CAError(f"{target} already exists; refusing to overwrite it") from None
    source.unlink()


def _replace_public_file(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    write_new_file(temporary, text.encode(), _PUBLIC_MODE)
    os.replace(temporary, path)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CAError(f"{path} is missing") from None
