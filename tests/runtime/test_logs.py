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


FORGED = "2026-01-01 00:00:00,000 INFO    controlplane.ca: issued certificate for spiffe://evil"


def _record(msg: str, *args: object, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("controlplane.xds", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_text_lines_escape_client_text() -> None:
    from controlplane.server.logs import TextFormatter

    record = _record("xds NACK from node %s: %s", "a\rb", f"bad\n{FORGED}\x1b[2J\u2028\u202e")
    line = TextFormatter().format(record)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert line.endswith("a\\rb: bad\\n" + FORGED + "\\u001b[2J\\u2028\\u202e")
    assert record.args[1].startswith("bad\n")  # the record itself is untouched for other handlers


def test_a_traceback_cannot_start_a_line_either() -> None:
    from controlplane.server.logs import TextFormatter

    try:
        raise ValueError(f"client said\n{FORGED}")
    except ValueError:
        import sys

        record = _record("failed", exc_info=sys.exc_info())
    first, *rest = TextFormatter().format(record).split("\n")
    assert first.endswith("failed") and rest
    assert all(line.startswith("    ") for line in rest)


def test_long_client_text_is_cut_in_both_formats() -> None:
    from controlplane.server.logs import MAX_ARG_CHARS, MAX_MESSAGE_CHARS, TextFormatter

    record = _record("object %s: %s", "n" * 1_000_000, "e")
    for formatted in (TextFormatter().format(record), json.loads(JsonFormatter().format(record))["msg"]):
        assert len(formatted) < MAX_ARG_CHARS + 200
        assert f"[{1_000_000 - MAX_ARG_CHARS} more chars]: e" in formatted
    built_by_the_caller = _record("x" * 100_000)  # an f-string: no args to cut, the message is
    assert len(TextFormatter().format(built_by_the_caller)) < MAX_MESSAGE_CHARS + 200


def test_mapping_args_are_cut_too() -> None:
    from controlplane.server.logs import TextFormatter

    record = _record("%(name)s", {"name": "z" * 5000})
    assert "more chars]" in TextFormatter().format(record)


def test_configure_installs_the_escaping_formatter(capsys: pytest.CaptureFixture[str]) -> None:
    from controlplane.server.logs import configure

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure("info", "text")
        logging.getLogger("controlplane.xds").warning("xds NACK from node %s: %s", "n", f"x\n{FORGED}")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        logging.getLogger("watchfiles").setLevel(logging.NOTSET)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "\\n2026-01-01" in lines[0]
