"""Traffic and stats against the real demo apps wired directly (no sidecars)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from controlplane.demo.apps import AppConfig, Downstream, make_server
from controlplane.demo.stats import ANONYMOUS, JASON, Probe, Sample, StatsWindow, percentile
from controlplane.demo.traffic import DirectCall, Target, Traffic, classify, probe_plaintext


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _to(name: str, port: int) -> Downstream:
    return Downstream(name, f"{name}:9080", "/", "127.0.0.1", port)


@pytest.fixture
def bookinfo() -> Iterator[dict[str, int]]:
    """productpage -> details, reviews v2 -> ratings; returns the ports."""
    ports = {name: _free_port() for name in ("productpage", "details", "reviews", "ratings")}
    configs = [
        AppConfig("ratings", "v1", "127.0.0.1", ports["ratings"]),
        AppConfig("details", "v1", "127.0.0.1", ports["details"]),
        AppConfig(
            "reviews",
            "v2",
            "127.0.0.1",
            ports["reviews"],
            downstreams=(_to("ratings", ports["ratings"]),),
        ),
        AppConfig(
            "productpage",
            "v1",
            "127.0.0.1",
            ports["productpage"],
            downstreams=(_to("details", ports["details"]), _to("reviews", ports["reviews"])),
        ),
    ]
    servers = [make_server(c) for c in configs]
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}) for s in servers
    ]
    for t in threads:
        t.start()
    try:
        yield ports
    finally:
        for s, t in zip(servers, threads):
            s.shutdown()
            s.server_close()
            t.join(5)


def test_traffic_counts_versions_users_and_probes(bookinfo: dict[str, int]) -> None:
    front = Target("127.0.0.1", bookinfo["productpage"], "productpage:9080")
    traffic = Traffic(front, rate=200, jason_every=4, workers=3, probe=front, probe_rate=20)
    summary = traffic.run_for(1.0).summary()
    anon, jason = summary.users[ANONYMOUS], summary.users[JASON]
    assert anon.requests > 0 and jason.requests > 0
    assert anon.requests >= 2 * jason.requests  # one in four is jason
    assert anon.versions == {"v2": anon.requests} and anon.share("v2") == 1.0
    assert anon.errors == 0 and anon.p50_ms is not None and anon.p99_ms >= anon.p50_ms
    # no sidecars here, so nobody presented an identity
    assert set(summary.identities) == {"productpage", "details", "reviews", "ratings"}
    assert all(set(callers) == {"none"} for callers in summary.identities.values())
    assert summary.probes > 0 and summary.probes_accepted == summary.probes


def test_every_hop_and_direct_call_is_counted_by_caller_and_status(bookinfo: dict[str, int]) -> None:
    front = Target("127.0.0.1", bookinfo["productpage"], "productpage:9080")
    direct = (
        DirectCall("loadgen", "reviews", Target("127.0.0.1", bookinfo["reviews"], "reviews:9080")),
        DirectCall("loadgen", "nowhere", Target("127.0.0.1", _free_port(), "nowhere:9080", "/x")),
    )
    traffic = Traffic(front, rate=100, workers=2, direct=direct, direct_rate=20)
    calls = traffic.run_for(1.0).summary().calls
    assert set(calls) == {
        "loadgen -> productpage /",
        "productpage -> details /",
        "productpage -> reviews /",
        "reviews -> ratings /",
        "loadgen -> reviews /",
        "loadgen -> nowhere /x",
    }
    assert all(set(statuses) == {"200"} for edge, statuses in calls.items() if "nowhere" not in edge)
    assert set(calls["loadgen -> nowhere /x"]) == {"unreachable"}
    # productpage's hops: one per answered request
    assert calls["productpage -> reviews /"]["200"] == calls["loadgen -> productpage /"]["200"]


def test_retarget_moves_the_users_to_another_entry_and_caller(bookinfo: dict[str, int]) -> None:
    """As the tour does for the gateway-api phase: the next requests go to the new target (a
    dead first one counts as unreachable), counted for the new caller on its path."""
    dead = Target("127.0.0.1", _free_port(), "productpage:9080")
    traffic = Traffic(dead, rate=100, workers=2)
    traffic.start()
    try:
        while traffic.window.summary().requests < 3:
            threading.Event().wait(0.05)
        traffic.retarget(Target("127.0.0.1", bookinfo["productpage"], "bookinfo.demo", "/productpage"), "gateway")
        traffic.new_window()
        while traffic.window.summary().requests < 5:
            threading.Event().wait(0.05)
        calls = traffic.new_window().summary().calls
    finally:
        traffic.stop()
    assert set(calls["gateway -> productpage /productpage"]) == {"200"}
    assert "loadgen -> productpage /" not in calls
    assert traffic.caller == "gateway" and traffic.target.path == "/productpage"


def test_a_refused_hop_is_counted_as_its_status() -> None:
    body = {"calls": {"details": {"status": 200, "body": {}}, "reviews": {"status": 403, "body": "RBAC: access denied"}}}
    sample = classify(ANONYMOUS, 1.0, 200, body, caller="loadgen")
    assert sample.errors == ("reviews HTTP 403",)
    assert sample.calls == (
        ("loadgen -> productpage /", "200"),
        ("productpage -> details /", "200"),
        ("productpage -> reviews /", "403"),
    )
    assert classify(ANONYMOUS, 1.0, 403, "RBAC: access denied").calls == (("loadgen -> productpage /", "403"),)


def test_new_window_starts_empty(bookinfo: dict[str, int]) -> None:
    front = Target("127.0.0.1", bookinfo["productpage"], "productpage:9080")
    traffic = Traffic(front, rate=100, workers=2)
    traffic.start()
    try:
        while traffic.window.summary().requests < 5:
            threading.Event().wait(0.05)
        ended = traffic.new_window()
        fresh = traffic.window.summary().requests
    finally:
        traffic.stop()
    assert ended.summary().requests >= 5
    assert fresh <= 2  # at most the requests in flight at the switch


def test_failed_ratings_call_is_an_error_with_the_version_that_made_it() -> None:
    body = {
        "caller": "spiffe://cluster.local/ns/default/sa/loadgen",
        "calls": {
            "details": {"status": 200, "body": {"caller": None}},
            "reviews": {
                "status": 200,
                "body": {
                    "version": "v3",
                    "caller": "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
                    "calls": {"ratings": {"status": 500, "body": "fault filter abort"}},
                },
            },
        },
    }
    sample = classify(ANONYMOUS, 1.0, 200, body)
    assert sample.reviews_version == "v3" and sample.errors == ("ratings HTTP 500",)
    assert sample.identities == (
        ("productpage", "spiffe://cluster.local/ns/default/sa/loadgen"),
        ("details", "none"),
        ("reviews", "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"),
    )


def test_unreachable_productpage_and_refused_probe() -> None:
    dead = _free_port()
    assert classify(JASON, 1.0, 0, None).errors == ("productpage unreachable",)
    probe = probe_plaintext(Target("127.0.0.1", dead, "productpage:9080"))
    assert (probe.accepted, probe.outcome) == (False, "connection refused")


def test_window_summary_percentiles() -> None:
    window = StatsWindow()
    for ms in range(1, 101):
        window.add(Sample(ANONYMOUS, float(ms), "v1", (), ()))
    summary = window.summary().users[ANONYMOUS]
    assert (summary.p50_ms, summary.p95_ms, summary.p99_ms) == (50.0, 95.0, 99.0)
    assert percentile([], 0.5) is None


def test_requests_sent_before_the_window_opened_do_not_count() -> None:
    before = time.monotonic()
    window = StatsWindow()
    window.add(Sample(ANONYMOUS, 5.0, "v3", (), (), started=before))  # routed by the old config
    window.add(Sample(ANONYMOUS, 5.0, "v1", (), (), started=time.monotonic()))
    window.add_probe(Probe(True, "HTTP 200", started=before))
    summary = window.summary()
    assert summary.users[ANONYMOUS].versions == {"v1": 1}
    assert summary.probes == 0
