"""The CA's root certificate and key in a Kubernetes Secret, so every replica signs with the
same root and a restart keeps it.

As istiod: Istio's ``cacerts`` (a plugged-in CA: ``ca-cert.pem``, ``ca-key.pem``,
``root-cert.pem``, ``cert-chain.pem``) is used when present; otherwise the self-signed root
lives in ``istio-ca-secret`` (type ``istio.io/ca-root``, ``ca-cert.pem`` and ``ca-key.pem``),
created by the first replica to get there. Creating is a plain POST: a replica that loses
the race gets 409 AlreadyExists and reads the winner's root instead of keeping its own.

The chosen files are then written into the replica's CA folder (a private ``emptyDir`` in a
pod, key mode 0600), where the rest of the control plane loads its CA from, as Istio mounts
``cacerts`` as files. The Secret is the truth: the folder follows it at every start, and
while running (``CaSecretFollower``, fed by the Kubernetes source's watch of Secrets, which
keeps these Secrets out of the input store).
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
CA_SECRET_NAMES = frozenset({PLUGGED_IN_SECRET, SELF_SIGNED_SECRET})
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


def is_ca_secret(secret: Mapping[str, Any], system_namespace: str) -> bool:
    """Whether a Secret (as the API serves it) holds the CA's key: ``cacerts`` or
    ``istio-ca-secret`` in the system namespace, or any Secret of type ``istio.io/ca-root``.
    Those stay out of the store (so no ``credentialName`` or debug page can reach them); the
    CA reads them itself, here."""
    if secret.get("type") == SELF_SIGNED_TYPE:
        return True
    meta = secret.get("metadata") or {}
    return meta.get("namespace") == system_namespace and meta.get("name") in CA_SECRET_NAMES


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


class CaSecretFollower:
    """Every replica follows the CA Secret it signs with, through the Kubernetes source's
    watch of Secrets: ``claim`` is offered each Secret listed or watched, takes the CA's own
    (they never enter the store) and, when the one in use changes (a new root, or a
    plugged-in ``cacerts`` that appears), writes it into the CA folder and calls
    ``on_change``. The roots trusted before stay in ``root-cert.pem`` (the overlap of a root
    rotation: certificates the old root signed still verify) until the next start, which
    reads the Secret alone.

    ``claim`` runs on a watch thread: ``on_change`` must hand the reload to whoever owns the
    CA (the runtime's event loop)."""

    def __init__(
        self,
        system_namespace: str,
        following: CaSecret | None,
        folder: Path,
        on_change: Callable[[], object],
    ) -> None:
        self._namespace = system_namespace
        self._following = following
        self._folder = folder
        self._on_change = on_change
        self.changes = 0

    def claim(self, secret: Mapping[str, Any]) -> bool:
        if not is_ca_secret(secret, self._namespace):
            return False
        meta = secret.get("metadata") or {}
        name = str(meta.get("name") or "")
        current = self._following
        if current is None or meta.get("namespace") != self._namespace:
            return True
        if name != current.name and name != PLUGGED_IN_SECRET:  # cacerts wins, as at start
            return True
        try:
            found = _files_of(self._namespace, name, {str(k): str(v) for k, v in
                                                      (secret.get("data") or {}).items()})
            if found == current:
                return True
            _write_folder(self._folder, _with_old_roots(found.files, self._folder))
        except (CAError, ValueError) as exc:  # a broken Secret: keep signing with what we have
            log.error("CA Secret %s/%s changed but cannot be used: %s; keeping the current CA",
                      self._namespace, name, exc)
            return True
        self._following = found
        self.changes += 1
        log.info("CA Secret %s/%s changed (root SHA-256 %s); reloading the CA",
                 self._namespace, name, found.root_fingerprint)
        self._on_change()
        return True


def _with_old_roots(files: Mapping[str, bytes], folder: Path) -> dict[str, bytes]:
    """``files`` with the roots of ``folder``'s trust bundle that they lack appended."""
    new_roots = load_certs_pem(files[ROOT_CERT], ROOT_CERT)
    old_roots = load_certs_pem((folder / ROOT_CERT).read_bytes(), str(folder / ROOT_CERT))
    known = {fingerprint_sha256(root) for root in new_roots}
    kept = [root for root in old_roots if fingerprint_sha256(root) not in known]
    bundle = files[ROOT_CERT] + "".join(cert_pem(root) for root in kept).encode()
    return {**files, ROOT_CERT: bundle}
