"""The CA's one error type: anything wrong with keys, certificates, CSRs or the CA folder."""

from __future__ import annotations


class CAError(Exception):
    """A CA operation failed; the message never contains key material."""
