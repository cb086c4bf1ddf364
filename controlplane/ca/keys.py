"""Private keys: generation, PEM encoding, and files that only their owner can read."""

from __future__ import annotations

import logging
import os
import stat
from enum import Enum
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from controlplane.ca.errors import CAError

log = logging.getLogger(__name__)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

KEY_FILE_MODE = 0o600


class KeyAlgorithm(str, Enum):
    ECDSA_P256 = "ecdsa-p256"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"


def generate_key(algorithm: KeyAlgorithm = KeyAlgorithm.ECDSA_P256) -> PrivateKey:
    # ECDSA P-256 by default: RSA generation is two orders of magnitude slower.
    if algorithm is KeyAlgorithm.ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    bits = 2048 if algorithm is KeyAlgorithm.RSA_2048 else 3072
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_key_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (Envoy and Istio read it this way)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key_pem(data: bytes, source: str = "key") -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:  # the message of these errors never holds key bytes
        raise CAError(f"cannot read private key from {source}: {type(exc).__name__}") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise CAError(f"{source}: only ECDSA and RSA keys are supported")
    return key


def public_keys_equal(a: object, b: object) -> bool:
    """Same SubjectPublicKeyInfo; for any key type cryptography knows."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return a.public_bytes(der, spki) == b.public_bytes(der, spki)  # type: ignore[attr-defined]


def write_new_private_key(path: Path, key: PrivateKey) -> None:
    """Create ``path`` with mode 0600; never replace an existing file."""
    write_new_file(path, private_key_pem(key), KEY_FILE_MODE)


def write_new_file(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: an existing key (or a symlink planted in its place) is never overwritten.
    # The mode is given at creation so the key is never readable by others, not even briefly.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise CAError(f"{path} already exists; refusing to overwrite it") from None
    try:
        os.fchmod(fd, mode)  # the umask may have removed bits; it can never add any
        with os.fdopen(fd, "wb") as handle:
            fd = -1
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        if fd != -1:
            os.close(fd)


def read_private_key_file(path: Path, *, strict_permissions: bool = False) -> PrivateKey:
    """Read a key file, warning (or, when strict, refusing) if others can read it."""
    try:
        check_key_file_permissions(path, strict=strict_permissions)
        data = path.read_bytes()
    except FileNotFoundError:
        raise CAError(f"{path} is missing") from None
    return load_private_key_pem(data, source=str(path))


def check_key_file_permissions(path: Path, *, strict: bool = False) -> None:
    # Kubernetes secret volumes are 0644 unless defaultMode says otherwise, so a plugged-in
    # key that others can read is a warning by default; world-writable is always refused.
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & stat.S_IWOTH:
        raise CAError(f"{path} is world-writable (mode {mode:o}); refusing to use it")
    if mode & 0o077:
        message = f"{path} can be read by other users (mode {mode:o}); chmod 600 it"
        if strict:
            raise CAError(message)
        log.warning(message)
