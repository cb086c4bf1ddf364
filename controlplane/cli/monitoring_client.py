"""What the operator commands share: reading the monitoring port (or an Envoy admin) over
HTTP, printing aligned tables as istioctl does, and "how long ago"."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

DEFAULT_MONITORING_ADDRESS = "127.0.0.1:15014"


class FetchError(Exception):
    """The control plane or Envoy could not be read; the message says what to check."""


def add_monitoring_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--monitoring-address",
        default=DEFAULT_MONITORING_ADDRESS,
        metavar="HOST:PORT",
        help="the control plane's monitoring port (default %(default)s)",
    )


def base_url(address: str) -> str:
    address = address.rstrip("/")
    return address if "://" in address else f"http://{address}"


def fetch(url: str, timeout: float = 10.0) -> bytes:
    # No proxy from the environment: these addresses are local or port-forwarded.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        body = error.read().decode(errors="replace").strip()
        try:
            body = json.loads(body).get("error", body)
        except (ValueError, AttributeError):
            pass
        raise FetchError(f"{url}: HTTP {error.code}: {body}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise FetchError(f"cannot reach {url}: {reason}") from None


def fetch_json(url: str) -> Any:
    data = fetch(url)
    try:
        return json.loads(data)
    except ValueError:
        raise FetchError(f"{url}: not JSON") from None


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell, three spaces apart (istioctl's tabwriter look)."""
    cells = [list(headers)] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines) + "\n"


def ago(when: float | None, now: float | None = None) -> str:
    """``3s``, ``4m``, ``2h``, ``5d``: how long ago an epoch time was."""
    if when is None:
        return ""
    seconds = max(0.0, (time.time() if now is None else now) - when)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def dump(data: Any, output: str) -> str:
    if output == "yaml":
        import yaml

        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    return json.dumps(data, indent=2) + "\n"
