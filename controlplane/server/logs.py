"""Logging setup: readable text by default or one JSON object per line, levels per component.

``--log-level`` takes a default and per-component overrides, as Istio's
``--log_output_level``: ``info`` or ``warning,xds=debug,sources=info``. Components
are the loggers under ``controlplane.`` (``xds``, ``sources``, ``translate``, ...).

Messages carry text from clients (node ids, NACK details, CSR and token fields). The
formatters, not the call sites, make that safe, so no call site can forget: each string
argument is cut to ``MAX_ARG_CHARS`` and each message to ``MAX_MESSAGE_CHARS``, and in
text format control characters are escaped (a newline cannot start a forged line) and
every line of a traceback after the first is indented. JSON escapes by itself.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
MAX_ARG_CHARS = 1_000
MAX_MESSAGE_CHARS = 8_000
# C0 and C1 controls, DEL, Unicode line/paragraph separators, and bidirectional overrides
# (which make a terminal show text in another order than it is written).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_control(text: str) -> str:
    """A newline becomes the two characters backslash and n, and so on: one line, every
    character visible."""
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\u{ord(m.group()):04x}"), text)


def clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more chars]"


def bounded_message(record: logging.LogRecord) -> str:
    """``record.getMessage()`` with long string arguments and a long result cut short."""
    args = record.args
    if isinstance(args, Mapping):
        args = {k: clip(v, MAX_ARG_CHARS) if isinstance(v, str) else v for k, v in args.items()}
    elif args:
        args = tuple(clip(a, MAX_ARG_CHARS) if isinstance(a, str) else a for a in args)
    message = str(record.msg) % args if args else str(record.msg)
    return clip(message, MAX_MESSAGE_CHARS)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        safe = logging.makeLogRecord(record.__dict__)  # other handlers see the record as it was
        safe.msg, safe.args = escape_control(bounded_message(record)), None
        first, *rest = super().format(safe).split("\n")
        return "\n".join([first, *("    " + escape_control(line) for line in rest)])


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "scope": record.name.removeprefix("controlplane."),
            "msg": bounded_message(record),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"))


def parse_levels(spec: str) -> tuple[int, dict[str, int]]:
    """``"warning,xds=debug"`` → (WARNING, {"controlplane.xds": DEBUG})."""
    default = logging.INFO
    per_component: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, level = part.partition("=")
        if not sep:
            default = _level(name)
        else:
            per_component[f"controlplane.{name.strip()}"] = _level(level)
    return default, per_component


def _level(name: str) -> int:
    level = logging.getLevelName(name.strip().upper())
    if not isinstance(level, int):
        raise ValueError(f"unknown log level {name!r} (debug, info, warning, error)")
    return level


def configure(level_spec: str = "info", fmt: str = "text") -> None:
    default, per_component = parse_levels(level_spec)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(default)
    # watchfiles reports every file event at INFO; the folder source logs what matters.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    for name, level in per_component.items():
        logging.getLogger(name).setLevel(level)
