"""Bounds on user text that error messages repeat: a 1 MB name must not make a 2 MB log line.

Messages are cut in the middle so that both the start of the value and the explanation
that usually ends a message stay readable.
"""

from __future__ import annotations

# A name (253, Kubernetes' longest) fits whole; a field path with a few keys in it too.
MAX_NAME_CHARS = 253
MAX_PATH_CHARS = 512
# Above any message the validators write about values of sane length.
MAX_MESSAGE_CHARS = 1_024


def clip(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its head and tail around a marker
    that says how much was cut (the result may exceed ``limit`` by the marker's length)."""
    if len(text) <= limit:
        return text
    head = limit * 3 // 4
    tail = limit - head
    cut = len(text) - head - tail
    return f"{text[:head]}...[{cut} chars cut]...{text[len(text) - tail:] if tail else ''}"
