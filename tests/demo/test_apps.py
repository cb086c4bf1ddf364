"""The demo apps: real HTTP servers in threads, downstream calls, XFCC parsing."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from controlplane.demo.apps import AppConfig, Downstream, caller_identity, make_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve() -> Iterator:
    servers = []

    def start(config: AppConfig):
        server = make_server(config)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        servers.append((server, thread))
        return server

    try:
        yield start
    finally:
        for server, thread in servers:
            server.shutdown()
            server.server_close()
            thread.join(5)


def _get(port: int, path: str = "/", headers: dict[str, str] | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_caller_identity_takes_uri_of_nearest_element() -> None:
    xfcc = (
        'By=spiffe://cluster.local/ns/default/sa/a;Hash=1;Subject="O=x,CN=y";'
        "URI=spiffe://cluster.local/ns/default/sa/first,"
        'By=spiffe://cluster.local/ns/default/sa/b;Hash=2;Subject="";'
        "URI=spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
    )
    assert caller_identity(xfcc) == "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
    assert caller_identity('Hash=abc;Subject="CN=a;URI=fake"') is None
    assert caller_identity(None) is None


def test_downstream_parse_names_service_and_connects_to_egress() -> None:
    target = Downstream.parse("http://reviews:9080/r", "127.0.10.101:9080")
    assert (target.name, target.host_header, target.path) == ("reviews", "reviews:9080", "/r")
    assert (target.connect_host, target.connect_port) == ("127.0.10.101", 9080)
    with pytest.raises(ValueError):
        Downstream.parse("https://x/", None)


def test_app_reports_itself_caller_and_downstream_calls(serve) -> None:
    ratings_port, reviews_port = _free_port(), _free_port()
    serve(AppConfig("ratings", "v1", "127.0.0.1", ratings_port, workload="ratings-v1"))
    # reviews reaches "ratings:9080" through an "egress" that is the ratings app itself
    serve(
        AppConfig(
            "reviews",
            "v2",
            "127.0.0.1",
            reviews_port,
            downstreams=(Downstream.parse("http://ratings:9080/", f"127.0.0.1:{ratings_port}"),),
        )
    )
    xfcc = "By=spiffe://x;Hash=1;URI=spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
    status, body = _get(
        reviews_port, headers={"end-user": "jason", "x-forwarded-client-cert": xfcc}
    )
    assert status == 200
    assert (body["service"], body["version"]) == ("reviews", "v2")
    assert body["caller"] == "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
    ratings = body["calls"]["ratings"]
    assert ratings["status"] == 200
    assert ratings["body"]["service"] == "ratings"
    assert ratings["body"]["end_user"] == "jason"  # propagated
    assert ratings["body"]["caller"] is None  # no sidecar, no XFCC


def test_failed_downstream_is_reported_not_raised(serve) -> None:
    port, dead = _free_port(), _free_port()
    serve(
        AppConfig(
            "productpage",
            "v1",
            "127.0.0.1",
            port,
            downstreams=(Downstream.parse("http://details:9080/", f"127.0.0.1:{dead}"),),
        )
    )
    status, body = _get(port)
    assert status == 200
    assert body["calls"]["details"]["status"] == 0
    assert "ConnectionRefused" in body["calls"]["details"]["error"]
    assert _get(port, "/healthz")[1] == {"status": "ok", "service": "productpage"}
