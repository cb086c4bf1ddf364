"""Revoked local tokens: ``revoked-tokens`` in the CA folder, one token id (``jti``) a line.

    <jti> <exp as unix seconds, or -> [# comment]

Written by ``controlplane ca token --revoke`` (mode 0600, replaced atomically) and read by
the server's token verifier whenever the file changes. An entry whose token has expired is
dropped at the next revocation, so the list does not grow forever.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jwt

from controlplane.ca.errors import CAError
from controlplane.ca.keys import write_new_file

log = logging.getLogger("controlplane.auth")

REVOCATION_FILE = "revoked-tokens"
_TOKEN_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# Kept past expiry by more than the verifier's clock-skew leeway.
_PRUNE_AFTER_SECONDS = 3600


@dataclass(frozen=True)
class Revocation:
    token_id: str
    expires: int | None  # unix seconds; None when only the id was given (kept until removed)


def revocation_of(token_or_id: str) -> Revocation:
    """A token (its ``jti`` and ``exp`` read without checking the signature: revoking costs
    nothing, whoever signed it) or a bare token id."""
    text = token_or_id.strip()
    if text.count(".") == 2:
        try:
            claims = jwt.decode(text, options={"verify_signature": False})
        except jwt.InvalidTokenError as exc:
            raise CAError(f"cannot read the token: {exc}") from None
        token_id, expires = claims.get("jti"), claims.get("exp")
        if not isinstance(token_id, str) or not _TOKEN_ID.match(token_id):
            raise CAError("the token has no usable 'jti'; rotate the token key to revoke it")
        return Revocation(token_id, expires if type(expires) is int else None)
    if not _TOKEN_ID.match(text):
        raise CAError(f"{text[:40]!r} is neither a token nor a token id (its jti)")
    return Revocation(text, None)


def read_revocations(path: Path) -> dict[str, int | None]:
    """Token id -> expiry. A malformed line is skipped with a warning; the others still apply."""
    revoked: dict[str, int | None] = {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        fields = line.partition("#")[0].split()
        if not fields:
            continue
        expires = fields[1] if len(fields) > 1 else "-"
        if not _TOKEN_ID.match(fields[0]) or not (expires == "-" or expires.isdigit()):
            log.warning("%s:%d: not '<token id> <expiry or ->'; skipped", path, number)
            continue
        revoked[fields[0]] = None if expires == "-" else int(expires)
    return revoked


def revoke(ca_folder: Path, revocation: Revocation, now: datetime) -> Path:
    """Add to the list (dropping entries expired long ago) and replace the file atomically."""
    path = ca_folder / REVOCATION_FILE
    revoked = read_revocations(path) if path.exists() else {}
    cutoff = now.timestamp() - _PRUNE_AFTER_SECONDS
    kept = {jti: exp for jti, exp in revoked.items() if exp is None or exp > cutoff}
    kept[revocation.token_id] = revocation.expires
    lines = [f"{jti} {'-' if exp is None else exp}\n" for jti, exp in kept.items()]
    staged = path.with_name(f".{REVOCATION_FILE}.{secrets.token_hex(4)}")
    write_new_file(staged, "".join(lines).encode(), 0o600)
    os.replace(staged, path)
    return path
