"""Listener conflicts on one Gateway: its own listeners first, then its ListenerSets' by creation
time. A listener that cannot share a port with one accepted before it is Conflicted
(HostnameConflict or ProtocolConflict), gets no Istio Gateway, takes no route, and does not
block later listeners. Istio's corpus cases (listenerset-*-conflict) cover the common path; these
cover the rules around it."""

from __future__ import annotations

from typing import Any

from controlplane.model import parse
from controlplane.translate.gateway_api import ConvertedConfig, convert, inputs_from_snapshot
from tests.translate.support import snapshot_of

API = "gateway.networking.k8s.io/v1"


def _converted(listeners: list[dict[str, Any]], *sets: tuple[str, str, list[dict[str, Any]]],
               routes: tuple[dict[str, Any], ...] = ()) -> ConvertedConfig:
    docs: list[dict[str, Any]] = [
        {"apiVersion": API, "kind": "GatewayClass", "metadata": {"name": "istio"},
         "spec": {"controllerName": "istio.io/gateway-controller"}},
        {"apiVersion": API, "kind": "Gateway", "metadata": {"name": "shared", "namespace": "infra"},
         "spec": {"gatewayClassName": "istio", "listeners": listeners,
                  "allowedListeners": {"namespaces": {"from": "All"}}}},
    ]
    for name, created, entries in sets:
        docs.append({"apiVersion": API, "kind": "ListenerSet",
                     "metadata": {"name": name, "namespace": "team", "creationTimestamp": created},
                     "spec": {"parentRef": {"name": "shared", "namespace": "infra"}, "listeners": entries}})
    return convert(inputs_from_snapshot(snapshot_of([parse(d) for d in (*docs, *routes)])))


def _listener(name: str, protocol: str, port: int, hostname: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "port": port, "protocol": protocol,
                           "allowedRoutes": {"namespaces": {"from": "All"}}}
    if hostname is not None:
        out["hostname"] = hostname
    return out


def _listener_reasons(out: ConvertedConfig, kind: str, namespace: str, name: str) -> dict[str, str]:
    """listener name -> its Conflicted reason."""
    status = out.status_of(kind, namespace, name)
    assert status is not None
    return {ls.name: next(c.reason for c in ls.conditions if c.type == "Conflicted") for ls in status.listeners}


def _gateway_names(out: ConvertedConfig) -> set[str]:
    return {g.meta.name.rsplit("~", 1)[1] for g in out.gateways}


def test_a_gateway_listener_that_repeats_an_earlier_hostname_on_its_port_is_conflicted() -> None:
    out = _converted([_listener("first", "HTTP", 80, "a.example.com"), _listener("second", "HTTP", 80, "a.example.com"),
                      _listener("other-port", "HTTP", 8080, "a.example.com"), _listener("other-host", "HTTP", 80)])
    assert _listener_reasons(out, "Gateway", "infra", "shared") == {
        "first": "NoConflicts", "second": "HostnameConflict", "other-port": "NoConflicts", "other-host": "NoConflicts"}
    assert _gateway_names(out) == {"first", "other-port", "other-host"}
    status = out.status_of("Gateway", "infra", "shared")
    assert status is not None
    second = next(ls for ls in status.listeners if ls.name == "second")
    assert {c.type: c.status for c in second.conditions} == {"Accepted": "False", "Programmed": "False", "Conflicted": "True"}
    assert {c.type: c.reason for c in status.conditions}["Accepted"] == "ListenersNotValid"


def test_l4_listeners_own_their_port() -> None:
    out = _converted([_listener("tcp", "TCP", 9000), _listener("tls", "TLS", 9000, "a.example.com"),
                      _listener("tcp-again", "TCP", 9000), _listener("udp", "UDP", 9000)])
    assert _listener_reasons(out, "Gateway", "infra", "shared") == {
        "tcp": "NoConflicts", "tls": "ProtocolConflict", "tcp-again": "ProtocolConflict", "udp": "ProtocolConflict"}


def test_a_losing_listener_blocks_nothing_and_older_listener_sets_win() -> None:
    gateway = [_listener("web", "HTTP", 80, "a.example.com"), _listener("raw", "TCP", 80)]  # raw loses to web
    newer = ("newer", "2024-01-01T00:00:02Z", [_listener("shop", "HTTP", 80, "shop.example.com")])
    older = ("older", "2024-01-01T00:00:01Z", [_listener("shop", "HTTP", 80, "shop.example.com"),
                                               _listener("api", "HTTP", 80, "api.example.com")])
    out = _converted(gateway, newer, older)  # listed newest first: creation time decides
    assert _listener_reasons(out, "Gateway", "infra", "shared") == {"web": "NoConflicts", "raw": "ProtocolConflict"}
    assert _listener_reasons(out, "ListenerSet", "team", "older") == {"shop": "NoConflicts", "api": "NoConflicts"}
    assert _listener_reasons(out, "ListenerSet", "team", "newer") == {"shop": "HostnameConflict"}
    newer_status = out.status_of("ListenerSet", "team", "newer")
    assert newer_status is not None
    assert {c.type: c.reason for c in newer_status.conditions} == {
        "Accepted": "ListenersNotValid", "Programmed": "ListenersNotValid"}
    gateway_status = out.status_of("Gateway", "infra", "shared")
    assert gateway_status is not None and gateway_status.attached_listener_sets == 1
    assert {g.meta.name for g in out.gateways if g.meta.namespace == "team"} == {
        "older~istio-autogenerated-k8s-gateway~shop", "older~istio-autogenerated-k8s-gateway~api"}


def test_a_route_cannot_attach_to_a_conflicted_listener() -> None:
    route = {"apiVersion": API, "kind": "HTTPRoute", "metadata": {"name": "shop", "namespace": "team"},
             "spec": {"parentRefs": [{"kind": "ListenerSet", "name": "team", "sectionName": "shop"}],
                      "rules": [{"backendRefs": [{"name": "shop", "port": 80}]}]}}
    for gateway_host, attached in (("shop.example.com", False), ("www.example.com", True)):
        out = _converted([_listener("web", "HTTP", 80, gateway_host)],
                         ("team", "2024-01-01T00:00:02Z", [_listener("shop", "HTTP", 80, "shop.example.com")]),
                         routes=(route,))
        assert bool(out.virtual_services) is attached, gateway_host
