"""The proxy's credential, read from its file every time it is needed: the kubelet rotates a
projected ServiceAccount token by replacing the file, and the next upstream connection must
carry the new one. Nothing keeps or logs the token."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MAX_TOKEN_BYTES = 64 * 1024


class TokenError(Exception):
    """The token file cannot be used (the message names the file, never the token)."""


@dataclass(frozen=True)
class TokenFile:
    path: Path

    def read(self) -> str:
        try:
            with self.path.open("rb") as f:
                data = f.read(MAX_TOKEN_BYTES + 1)
        except OSError as error:
            raise TokenError(f"token file {self.path}: {error.strerror}") from None
        if len(data) > MAX_TOKEN_BYTES:
            raise TokenError(f"token file {self.path}: larger than {MAX_TOKEN_BYTES} bytes")
        token = data.decode("ascii", "replace").strip()
        if not token or any(c.isspace() for c in token):
            raise TokenError(f"token file {self.path}: not a single token")
        return token
