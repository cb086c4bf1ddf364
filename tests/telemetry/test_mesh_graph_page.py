"""The mesh graph page on the monitoring port, in a real headless Chromium, while traffic flows
through a small mesh of real Envoys (``metrics_mesh.py``): the page draws the calls client ->
web, rpc and db with their rates, the lock of mutual TLS, and every proxy's sync state. The
screenshot stays in the test's tmp folder (``mesh-graph.png``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.harness.wait import wait_for
from tests.telemetry.metrics_mesh import MetricsMesh, metrics_mesh

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

CLIENT = "default/client"
SERVICES = {"web": "http", "rpc": "grpc", "db": "tcp"}


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed (Debian package `chromium`; CI installs it)")


@pytest.fixture(scope="module")
def busy_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsMesh]:
    chromium()
    with metrics_mesh(tmp_path_factory.mktemp("graph-mesh")) as mesh:
        stop = threading.Event()

        def traffic() -> None:
            while not stop.is_set():
                try:
                    mesh.http("/")
                    mesh.http("/status/503")
                    mesh.grpc(b"hi")
                    mesh.tcp()
                except OSError:
                    pass
                time.sleep(0.02)

        thread = threading.Thread(target=traffic, daemon=True)
        thread.start()
        try:
            yield mesh
        finally:
            stop.set()
            thread.join(timeout=10)


def _graph(mesh: MetricsMesh) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{mesh.cp.monitoring_port}/debug/graph", timeout=10) as r:
        return json.loads(r.read())


class _Rows(HTMLParser):
    """The ``<tr>`` of the page's tables with their data attributes and cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append({"attrs": dict(attrs), "cells": []})
        elif tag == "td" and self.rows:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1]["cells"].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_the_data_has_the_calls_with_rates(busy_mesh: MetricsMesh) -> None:
    def edges() -> dict[tuple[str, str], dict[str, Any]] | None:
        found = {(e["source"], e["target"]): e for e in _graph(busy_mesh)["graph"]["edges"]}
        wanted = [(CLIENT, f"{s}.default.svc.cluster.local") for s in SERVICES]
        return found if all(k in found and found[k]["rate"] > 0 for k in wanted) else None

    found = wait_for(edges, deadline=20, interval=0.5, message="the three calls with rates")
    web = found[(CLIENT, "web.default.svc.cluster.local")]
    assert web["mtls"] is True and web["protocol"] == "http"
    assert 20 < web["error_percent"] < 80  # every other request to web answers 503
    assert found[("web.default.svc.cluster.local", "default/web")]["rate"] > 0
    assert found[(CLIENT, "db.default.svc.cluster.local")]["protocol"] == "tcp"


def test_the_page_in_chromium(busy_mesh: MetricsMesh, tmp_path: Path) -> None:
    test_the_data_has_the_calls_with_rates(busy_mesh)  # the server holds two scrapes: rates
    url = f"http://127.0.0.1:{busy_mesh.cp.monitoring_port}/graph"
    browser = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1500,1000",
               "--virtual-time-budget=3000"]  # fmt: skip
    dom = subprocess.run([*browser, "--dump-dom", url], capture_output=True, text=True, timeout=90, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    screenshot = tmp_path / "mesh-graph.png"
    shot = subprocess.run([*browser, f"--screenshot={screenshot}", url], capture_output=True, timeout=90, check=False)
    assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]

    assert 'data-loaded="true"' in dom.stdout
    parser = _Rows()
    parser.feed(dom.stdout)
    edges = {(r["attrs"]["data-source"], r["attrs"]["data-target"]): r
             for r in parser.rows if r["attrs"].get("class", "").startswith("edge")}  # fmt: skip
    for service, protocol in SERVICES.items():
        row = edges[(CLIENT, f"{service}.default.svc.cluster.local")]
        assert float(row["attrs"]["data-rate"]) > 0
        assert row["cells"][2] == protocol and float(row["cells"][3]) > 0
    web = edges[(CLIENT, "web.default.svc.cluster.local")]
    assert web["attrs"]["data-mtls"] == "true" and "mutual_tls" in web["cells"][6]
    assert "error" in web["attrs"]["class"]  # the 503s
    # the SVG draws the same calls, the mTLS ones with a lock
    assert dom.stdout.count('class="lock"') >= 3
    assert f'data-source="{CLIENT}" data-target="web.default.svc.cluster.local"' in dom.stdout
    proxies = {r["attrs"]["data-proxy"]: r for r in parser.rows if r["attrs"].get("class") == "proxy"}
    assert set(proxies) == {f"{n}-0.default" for n in ("client", "web", "rpc", "db")}
    assert all("LDS:SYNCED" in r["cells"][2] and "CDS:SYNCED" in r["cells"][2] for r in proxies.values())
    assert proxies["web-0.default"]["cells"][1] == "spiffe://cluster.local/ns/default/sa/web"
