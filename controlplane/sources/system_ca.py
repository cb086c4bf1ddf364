"""The OS trust bundle for Istio's VERIFY_CERTIFICATE_AT_CLIENT: a DestinationRule's SIMPLE or
MUTUAL TLS that names no CA verifies the server against it (MeshConfig.system_ca_bundle, served
to the proxies over SDS as ``file-root:system``; Istio's agent reads it from the proxy's disk,
stock Envoy has no agent, so the server sends the one it has).

Found where OpenSSL looks (``SSL_CERT_FILE`` first), else certifi's Mozilla bundle. Istio's
variable ``VERIFY_CERTIFICATE_AT_CLIENT=false`` turns it off, as in istiod. Only certificates
that parse are kept: Envoy refuses a whole secret for one bad entry.
"""

from __future__ import annotations

import logging
import os
import ssl
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning

log = logging.getLogger(__name__)

ENV_SWITCH = "VERIFY_CERTIFICATE_AT_CLIENT"
MAX_BUNDLE_BYTES = 4 * 2**20  # a system bundle is ~0.2 MB; anything far larger is not one


def load_system_ca_bundle(environ: dict[str, str] | None = None) -> bytes:
    """PEM of every root in the first bundle found; empty when off or none is found."""
    env = os.environ if environ is None else environ
    if env.get(ENV_SWITCH, "true").strip().lower() in ("false", "0", "no", "off"):
        return b""
    for path in _candidates(env):
        bundle = _read(path)
        if bundle:
            log.info("verifying TLS servers that name no CA against %s", path)
            return bundle
    log.warning("no OS trust bundle found (set SSL_CERT_FILE): DestinationRule TLS without "
                "caCertificates is not verified")
    return b""


def _candidates(env: dict[str, str] | os._Environ[str]) -> list[Path]:
    paths = ssl.get_default_verify_paths()
    found = [env.get("SSL_CERT_FILE"), paths.cafile, paths.openssl_cafile]
    try:
        import certifi

        found.append(certifi.where())
    except ImportError:  # certifi comes with the Kubernetes client; a bundle may still be found above
        pass
    return [Path(p) for p in dict.fromkeys(found) if p]


def _read(path: Path) -> bytes:
    try:
        if not path.is_file() or path.stat().st_size > MAX_BUNDLE_BYTES:
            return b""
        with warnings.catch_warnings():
            # an OS bundle may hold old roots with a serial RFC 5280 disallows; Envoy takes them
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError):
        return b""
    return b"".join(c.public_bytes(Encoding.PEM) for c in certificates)
