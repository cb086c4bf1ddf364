"""Local tokens checked against the CA folder as it is now, not as it was at start.

``token-key.pem`` (replaced by ``controlplane ca rotate token-key``) and ``revoked-tokens``
(``controlplane ca token --revoke``) are re-read when their files change, so a rotation or
a revocation applies to the next request without restarting the server. One stat per file
per verification; the file is read only when the stat differs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec

from controlplane.auth.identity import ProvenIdentity
from controlplane.auth.revocation import REVOCATION_FILE, read_revocations
from controlplane.auth.tokens import (
    TOKEN_KEY_FILE,
    LocalTokenVerifier,
    _utc_now,
    load_or_create_token_key,
)

log = logging.getLogger("controlplane.auth")

T = TypeVar("T")


class WatchedFile(Generic[T]):
    """``load(path)`` again whenever the file's (mtime, size, inode) changes. A file that
    cannot be read keeps the last good value (warned once per change); a missing file gives
    ``missing`` (or keeps the last value when ``missing`` is None)."""

    def __init__(
        self, path: Path, load: Callable[[Path], T], initial: T, missing: T | None
    ) -> None:
        self.path = path
        self._load = load
        self._missing = missing
        self.value = initial
        self._stamp = self._stat()

    def current(self) -> T:
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            if stamp is None:
                if self._missing is not None:
                    self.value = self._missing
                else:
                    log.warning("%s is gone; still using the last one read", self.path)
            else:
                try:
                    self.value = self._load(self.path)
                except Exception as exc:  # noqa: BLE001 (a half-edited file must not stop serving)
                    log.warning(
                        "%s cannot be read (%s); still using the last one read", self.path, exc
                    )
        return self.value

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    return load_or_create_token_key(path.parent)


def _load_revoked(path: Path) -> frozenset[str]:
    return frozenset(read_revocations(path))


class FolderTokenVerifier:
    def __init__(
        self, ca_folder: Path, trust_domain: str, *, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        self.trust_domain = trust_domain
        self._clock = clock
        key = load_or_create_token_key(ca_folder)
        revoked_path = ca_folder / REVOCATION_FILE
        revoked = _load_revoked(revoked_path) if revoked_path.exists() else frozenset()
        self._key = WatchedFile(ca_folder / TOKEN_KEY_FILE, _load_key, key, missing=None)
        self._revoked = WatchedFile(revoked_path, _load_revoked, revoked, missing=frozenset())
        self._verifier = self._build(key, revoked)

    async def verify(self, token: str) -> ProvenIdentity | None:
        key, revoked = self._key.current(), self._revoked.current()
        if key is not self._verifier_key or revoked is not self._verifier.revoked:
            self._verifier = self._build(key, revoked)
        return await self._verifier.verify(token)

    def _build(
        self, key: ec.EllipticCurvePrivateKey, revoked: frozenset[str]
    ) -> LocalTokenVerifier:
        self._verifier_key = key
        return LocalTokenVerifier(
            key.public_key(), self.trust_domain, clock=self._clock, revoked=revoked
        )
