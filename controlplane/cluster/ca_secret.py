"""The CA's root certificate and key in a Kubernetes Secret, so every replica signs with the
same root and a restart keeps it.

As istiod: Istio's ``cacerts`` (a plugged-in CA: ``ca-cert.pem``, ``ca-key.pem``,
``root-cert.pem``, ``cert-chain.pem``) is used when present; otherwise the self-signed root
lives in ``istio-ca-secret`` (type ``istio.io/ca-root``, ``ca-cert.pem`` and ``ca-key.pem``),
created by the first replica to get there. Creating is a plain POST: a replica that loses
the race gets 409 AlreadyExists and reads the winner's root instead of keeping its own.

The chosen files are then written into the replica's CA folder (a private ``emptyDir`` in a
pod, key mode 0600), where the rest of the control plane loads its CA from, as Istio mounts
``cacerts`` as files. The Secret is the truth: the folder follows it at every start.
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client as k8s

from controlplane.ca import cert_pem, fingerprint_sha256, load_certs_pem, new_root_signer
from controlplane.ca.authority import utc_now
from controlplane.ca.errors import CAError
from controlplane.ca.folder import CA_CERT, CA_KEY, CERT_CHAIN, ROOT_CERT
from controlplane.ca.keys import KEY_FILE_MODE, private_key_pem

log = logging.getLogger(__name__)

PLUGGED_IN_SECRET = "cacerts"  # Istio's plugged-in CA
SELF_SIGNED_SECRET = "istio-ca-secret"  # Istio's self-signed root
SELF_SIGNED_TYPE = "istio.io/ca-root"
_FILES = (CA_CERT, CA_KEY, CERT_CHAIN, ROOT_CERT)
_PUBLIC_MODE = 0o644


@dataclass(frozen=True, slots=True)
class CaSecret:
    """Which Secret the CA came from, and the files it holds."""

    namespace: str
    name: str
    files: Mapping[str, bytes]

    @property
    def root_fingerprint(self) -> str:
        roots = load_certs_pem(self.files[ROOT_CERT], f"{self.name}/{ROOT_CERT}")
        return fingerprint_sha256(roots[0]) if roots else ""


def sync_ca_secret(
    api_client: k8s.ApiClient, namespace: str, folder: Path, trust_domain: str
) -> CaSecret:
    """Find (or create, once for the whole cluster) the CA Secret and write it into ``folder``."""
    core = k8s.CoreV1Api(api_client)
    found = _read(core, namespace, PLUGGED_IN_SECRET) or _read(core, namespace, SELF_SIGNED_SECRET)
    if found is None:
        found = _create_self_signed(core, namespace, folder, trust_domain)
    _write_folder(folder, found.files)
    log.info("CA from Secret %s/%s (root SHA-256 %s)", found.namespace, found.name,
             found.root_fingerprint)
    return found


def _read(core: k8s.CoreV1Api, namespace: str, name: str) -> CaSecret | None:
    try:
        secret = core.read_namespaced_secret(name, namespace)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise CAError(f"reading Secret {namespace}/{name} failed: HTTP {exc.status}") from None
    except Exception as exc:  # noqa: BLE001 (the API unreachable: the pod restarts and retries)
        raise CAError(f"reading Secret {namespace}/{name} failed: {type(exc).__name__}") from None
    return _files_of(namespace, name, {k: str(v) for k, v in (secret.data or {}).items()})


def _files_of(namespace: str, name: str, data: Mapping[str, str]) -> CaSecret:
    files = {key: base64.b64decode(value) for key, value in data.items() if key in _FILES}
    where = f"Secret {namespace}/{name}"
    for required in (CA_CERT, CA_KEY):
        if not files.get(required):
            raise CAError(f"{where}: data.{required} is missing or empty")
    # Istio's self-signed Secret leaves these empty: the signing certificate is the root.
    if not files.get(ROOT_CERT):
        files[ROOT_CERT] = files[CA_CERT]
    if not files.get(CERT_CHAIN):
        files[CERT_CHAIN] = files[CA_CERT]
    return CaSecret(namespace, name, files)


def _create_self_signed(
    core: k8s.CoreV1Api, namespace: str, folder: Path, trust_domain: str
) -> CaSecret:
    """Create istio-ca-secret with a new root, or with the root already in ``folder`` (a CA
    that predates the Secret keeps signing); on 409 the winner's root is read instead."""
    if (folder / CA_KEY).exists() and (folder / CA_CERT).exists():
        files = {name: (folder / name).read_bytes() for name in _FILES if (folder / name).exists()}
    else:
        signer = new_root_signer(trust_domain, now=utc_now())
        root = cert_pem(signer.root).encode()
        files = {CA_CERT: root, CA_KEY: private_key_pem(signer.key), CERT_CHAIN: root,
                 ROOT_CERT: root}
    data: dict[str, bytes | str] = {
        key: base64.b64encode(value).decode() for key, value in files.items()
    }
    body = k8s.V1Secret(
        api_version="v1",
        kind="Secret",
        type=SELF_SIGNED_TYPE,
        metadata=k8s.V1ObjectMeta(name=SELF_SIGNED_SECRET, namespace=namespace),
        data=data,
    )
    try:
        core.create_namespaced_secret(namespace, body)
    except k8s.ApiException as exc:
        if exc.status != 409:
            raise CAError(
                f"creating Secret {namespace}/{SELF_SIGNED_SECRET} failed: HTTP {exc.status}"
            ) from None
        winner = _read(core, namespace, SELF_SIGNED_SECRET)
        if winner is None:
            raise CAError(f"Secret {namespace}/{SELF_SIGNED_SECRET} conflicted, then vanished") \
                from None
        log.info("another replica created %s/%s first; using its root", namespace,
                 SELF_SIGNED_SECRET)
        return winner
    except Exception as exc:  # noqa: BLE001 (the API unreachable: the pod restarts and retries)
        raise CAError(
            f"creating Secret {namespace}/{SELF_SIGNED_SECRET} failed: {type(exc).__name__}"
        ) from None
    log.info("created Secret %s/%s with the CA root", namespace, SELF_SIGNED_SECRET)
    return _files_of(namespace, SELF_SIGNED_SECRET, {k: str(v) for k, v in data.items()})


def _write_folder(folder: Path, files: Mapping[str, bytes]) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in _FILES:
        path = folder / name
        data = files[name]
        if path.exists() and path.read_bytes() == data:
            continue
        mode = KEY_FILE_MODE if name == CA_KEY else _PUBLIC_MODE
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
        try:
            os.fchmod(descriptor, mode)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
            os.replace(temporary, path)  # atomic: a reader sees the old file or the new one
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
