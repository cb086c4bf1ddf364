"""Reading Envoy config dumps: each phase's check, and polling admin APIs until it holds."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from rich.console import Console

from controlplane.demo import propagation as prop
from controlplane.demo.phases import PHASES
from controlplane.demo.stats import ANONYMOUS, JASON, Probe, Sample, StatsWindow
from controlplane.demo.topology import Workload
from controlplane.demo.view import PhaseResult, PhaseView, render_phase, render_summary

FQDN = "{}.default.svc.cluster.local"
PHASE = {p.key: p for p in PHASES}


def _cluster(service: str, subset: str) -> str:
    return f"outbound|9080|{subset}|{FQDN.format(service)}"


def _vhost(service: str, routes: list[dict[str, Any]]) -> dict[str, Any]:
    fqdn = FQDN.format(service)
    return {
        "name": f"{fqdn}:9080",
        "domains": [fqdn, f"{fqdn}:9080", service, f"{service}:9080"],
        "routes": routes,
    }


def _to(service: str, subset: str, **extra: Any) -> dict[str, Any]:
    return {"match": {"prefix": "/"}, "route": {"cluster": _cluster(service, subset)}, **extra}


def _routes_dump(vhosts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"version_info": "1", "route_config": {"name": "9080", "virtual_hosts": vhosts}}]


ALL_V1 = [_vhost(s, [_to(s, "v1")]) for s in ("productpage", "details", "ratings")]
JASON_ROUTE = {
    "match": {"prefix": "/", "headers": [{"name": "end-user", "string_match": {"exact": "jason"}}]},
    "route": {"cluster": _cluster("reviews", "v2")},
}
CANARY_ROUTE = {
    "match": {"prefix": "/"},
    "route": {
        "weighted_clusters": {
            "clusters": [
                {"name": _cluster("reviews", "v1"), "weight": 90},
                {"name": _cluster("reviews", "v3"), "weight": 10},
            ]
        }
    },
}
FAULT = {
    "envoy.filters.http.fault": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
        "abort": {"http_status": 500, "percentage": {"numerator": 50}},
    }
}
W = Workload(
    "productpage-v1", "default", "127.0.10.1", "productpage", "v1", "sa", (), inbound_port=9080
)


def test_route_checks_follow_the_tour() -> None:
    baseline = _routes_dump(
        [
            *ALL_V1,
            _vhost(
                "reviews",
                [
                    {
                        "match": {"prefix": "/"},
                        "route": {"cluster": "outbound|9080||reviews.default.svc.cluster.local"},
                    }
                ],
            ),
        ]
    )
    all_v1 = _routes_dump([*ALL_V1, _vhost("reviews", [_to("reviews", "v1")])])
    jason = _routes_dump([*ALL_V1, _vhost("reviews", [JASON_ROUTE, _to("reviews", "v1")])])
    canary = _routes_dump([*ALL_V1, _vhost("reviews", [JASON_ROUTE, CANARY_ROUTE])])
    fault_vhosts = [v for v in ALL_V1 if v["domains"][2] != "ratings"]
    fault = _routes_dump(
        [*fault_vhosts, _vhost("ratings", [_to("ratings", "v1", typed_per_filter_config=FAULT)])]
    )

    def holds(key: str, dump: list[dict[str, Any]]) -> bool:
        check = PHASE[key].check
        assert check is not None
        return check(W, dump)

    assert not holds("all-v1", baseline) and holds("all-v1", all_v1)
    assert not holds("jason", all_v1) and holds("jason", jason)
    assert not holds("canary", jason) and holds("canary", canary)
    assert not holds("fault", canary) and holds("fault", fault)
    assert not holds("all-v1", []) and not holds("jason", [])


def _listener(chains: list[dict[str, Any]], address: str = "127.0.10.1") -> list[dict[str, Any]]:
    listener = {
        "address": {"socket_address": {"address": address, "port_value": 9080}},
        "filter_chains": chains,
    }
    return [{"name": f"{address}_9080", "active_state": {"listener": listener}}]


def _tls_chain(required: Any) -> dict[str, Any]:
    typed = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
    }
    if required is not None:
        typed["require_client_certificate"] = required
    return {"transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": typed}}


def test_strict_check_needs_every_inbound_chain_to_demand_a_certificate() -> None:
    check = prop.inbound_requires_client_cert
    permissive = _listener([_tls_chain(True), {"filters": []}])
    assert not check(W, permissive)
    assert check(W, _listener([_tls_chain(True)]))
    assert check(W, _listener([_tls_chain({"value": True})]))
    assert not check(W, _listener([_tls_chain(None)]))
    assert not check(W, _listener([_tls_chain(True)], address="127.0.10.2"))


@pytest.fixture
def admin() -> Iterator[dict[str, Any]]:
    """A stand-in for one Envoy admin API whose route dump (and draining filter chains) the
    test switches."""
    state: dict[str, Any] = {"dump": _routes_dump(ALL_V1), "requests": 0, "draining": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["requests"] += 1
            if self.path.startswith("/stats"):
                stat = {"name": prop.DRAINING_STAT, "value": state["draining"]}
                body = json.dumps({"stats": [stat]}).encode()
            else:
                body = json.dumps({"configs": state["dump"]}).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_wait_until_applied_polls_until_the_change_shows(admin: dict[str, Any]) -> None:
    host, port = admin["url"].removeprefix("http://").split(":")
    workload = Workload("w", "default", host, "productpage", "v1", "sa", (), admin_port=int(port))
    check = PHASE["canary"].check
    assert check is not None

    def switch_later() -> None:
        while admin["requests"] < 3:
            time.sleep(0.01)
        admin["dump"] = _routes_dump([*ALL_V1, _vhost("reviews", [JASON_ROUTE, CANARY_ROUTE])])

    switcher = threading.Thread(target=switch_later)
    switcher.start()
    result = prop.wait_until_applied(
        [workload], prop.ROUTES, check, since=time.monotonic(), timeout=30
    )
    switcher.join()
    assert result.complete and admin["requests"] >= 4
    missing = prop.wait_until_applied(
        [workload], prop.ROUTES, PHASE["fault"].check, since=time.monotonic(), timeout=0.2
    )
    assert not missing.complete and missing.per_sidecar == {"w": None}


RBAC_HTTP = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
REVIEWS_POLICY = "ns[default]-policy[reviews-from-productpage]-rule[0]"


def _rbac(policies: list[str], shadow: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    config: dict[str, Any] = {"@type": RBAC_HTTP, "rules": {"policies": {p: {} for p in policies}}}
    if shadow:
        config["shadow_rules"] = {"policies": {p: {} for p in shadow}}
    return config


def test_authz_check_finds_enforced_policies_inline_or_over_ecds() -> None:
    check = PHASE["authz"].check
    assert check is not None and PHASE["authz"].resource == prop.ALL
    reviews = Workload("reviews-v1", "default", "127.0.10.3", "reviews", "v1", "sa", ())
    hcm = {"http_filters": [{"name": "envoy.filters.http.rbac", "typed_config": _rbac([REVIEWS_POLICY])}]}
    inline = [{"@type": "ListenersConfigDump", "dynamic_listeners": _listener([{"filters": [{"typed_config": hcm}]}])}]
    ecds = [
        {"@type": "ListenersConfigDump", "dynamic_listeners": _listener([])},
        {"@type": "EcdsConfigDump", "ecds_filters": [{"ecds_filter": {"name": "default.rbac-allow", "typed_config": _rbac([REVIEWS_POLICY])}}]},
    ]
    dry_run = [{"@type": "EcdsConfigDump", "ecds_filters": [{"ecds_filter": {"typed_config": _rbac([], [REVIEWS_POLICY])}}]}]
    assert check(reviews, inline) and check(reviews, ecds)
    assert not check(reviews, dry_run) and not check(reviews, [])
    # productpage waits for its own policy, not reviews'
    assert not check(W, inline)
    assert not PHASE["authz"].applies_to(Workload("details-v1", "default", "127.0.10.2", "details", "v1", "sa", ()))


def test_wait_until_drained(admin: dict[str, Any]) -> None:
    host, port = admin["url"].removeprefix("http://").split(":")
    workload = Workload("w", "default", host, "productpage", "v1", "sa", (), admin_port=int(port))
    admin["draining"] = 1
    assert not prop.wait_until_drained([workload], timeout=0.3)
    assert prop.filter_chains_draining(workload.admin_url) == 1

    def drained_later() -> None:
        start = admin["requests"]
        while admin["requests"] < start + 2:
            time.sleep(0.01)
        admin["draining"] = 0

    thread = threading.Thread(target=drained_later)
    thread.start()
    assert prop.wait_until_drained([workload], timeout=30)
    thread.join()


def test_views_render_the_numbers() -> None:
    window = StatsWindow()
    for i in range(20):
        window.add(
            Sample(
                ANONYMOUS,
                10.0 + i,
                "v3" if i % 10 == 0 else "v1",
                (),
                (("reviews", "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"),),
            )
        )
    window.add(Sample(JASON, 12.0, "v2", ("ratings HTTP 500",), ()))
    window.add_probe(Probe(False, "connection reset"))
    window.add_call("loadgen -> reviews /", "403")
    window.add_call("loadgen -> reviews /", "403")
    window.add_call("loadgen -> reviews /", "unreachable")
    summary = window.summary()
    propagation = prop.Propagation({"a": 0.12, "b": 0.34})
    console = Console(record=True, width=160)
    console.print(
        render_phase(
            PhaseView(PHASE["canary"], 4, 6, summary, 5.0, 10.0, propagation, "127.0.10.1:9080")
        )
    )
    console.print(render_summary([PhaseResult(PHASE["canary"], summary, propagation)]))
    text = console.export_text()
    assert "A 90/10 canary of reviews v3" in text
    assert "90%" in text and "10%" in text  # anonymous: v1 and v3 shares
    assert "ratings HTTP 500 x1" in text
    assert "spiffe://cluster.local/ns/default/sa/bookinfo-productpage" in text
    assert "0 accepted, 1 refused" in text
    assert "after 340 ms" in text
    assert "loadgen -> reviews /" in text and "unreachable x1" in text
    denied_row = next(line for line in text.splitlines() if "loadgen -> reviews /" in line)
    cells = [cell.strip() for cell in denied_row.split("│") if cell.strip()]
    assert cells == ["loadgen -> reviews /", "3", "0", "2", "unreachable x1"]  # calls, 200, 403
