"""Typed errors for what translation refuses."""

from __future__ import annotations


class TranslationError(Exception):
    """Translation cannot configure this proxy (e.g. a kind of proxy with no builder).

    The push keeps the proxy's last good config and reports the error; other proxies go on.
    """
