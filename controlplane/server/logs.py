"""Logging setup: readable text by default or one JSON object per line, levels per component.

``--log-level`` takes a default and per-component overrides, as Istio's
``--log_output_level``: ``info`` or ``warning,xds=debug,sources=info``. Components
are the loggers under ``controlplane.`` (``xds``, ``sources``, ``translate``, ...).
"""

from __future__ import annotations

import json
import logging
import sys
import time

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "scope": record.name.removeprefix("controlplane."),
            "msg": record.getMessage(),
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
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(default)
    # watchfiles reports every file event at INFO; the folder source logs what matters.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    for name, level in per_component.items():
        logging.getLogger(name).setLevel(level)
