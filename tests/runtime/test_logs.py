from __future__ import annotations

import json
import logging

import pytest

from controlplane.server.logs import JsonFormatter, parse_levels


def test_levels_per_component() -> None:
    default, per = parse_levels("warning,xds=debug, sources=info")
    assert default == logging.WARNING
    assert per == {"controlplane.xds": logging.DEBUG, "controlplane.sources": logging.INFO}


def test_unknown_level_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        parse_levels("loud")


def test_json_lines_name_the_component() -> None:
    record = logging.LogRecord("controlplane.xds", logging.INFO, __file__, 1, "pushed %d", (3,), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["scope"] == "xds" and entry["msg"] == "pushed 3" and entry["level"] == "info"
