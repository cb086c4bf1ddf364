"""More of Istio's validation rules, one behaviour per test."""

from __future__ import annotations

import json
from typing import Any

from tests.model.helpers import assert_error, assert_valid, istio


def route(host: str = "reviews") -> dict[str, Any]:
    return {"route": [{"destination": {"host": host}}]}


def test_export_to_rules() -> None:
    dr = {"host": "reviews", "workloadSelector": {"matchLabels": {"app": "x"}}, "exportTo": ["other"]}
    assert_error(istio("DestinationRule", dr), "spec.exportTo", "beyond current namespace")
    assert_error(
        istio("DestinationRule", {"host": "r", "exportTo": ["~"]}),
        "spec.exportTo[0]",
        "ServiceEntry",
    )
    assert_valid(istio("ServiceEntry", {"hosts": ["a.example"], "exportTo": ["~"]}))
    assert_error(
        istio("ServiceEntry", {"hosts": ["a.example"], "exportTo": ["~", "ns"]}),
        "spec.exportTo",
        "no one",
    )
    doc = istio(
        "VirtualService",
        {"hosts": ["a"], "exportTo": [".", "prod"], "http": [route()]},
        namespace="prod",
    )
    assert_error(doc, "spec.exportTo[1]", "duplicate")


def test_virtual_service_hosts_and_delegation() -> None:
    assert_error(
        istio(
            "VirtualService",
            {"hosts": ["*.example.com", "a.example.com"], "gateways": ["gw"], "http": [route()]},
        ),
        "spec.hosts[1]",
        "duplicate hosts",
    )
    delegate = istio("VirtualService", {"http": [route()], "tcp": [route()]})
    assert_error(delegate, "spec.tcp", "delegate")
    root = istio(
        "VirtualService", {"hosts": ["a"], "http": [{"delegate": {"name": "child"}, **route()}]}
    )
    assert_error(root, "spec.http[0].route", "root HTTP route")
    child = istio("VirtualService", {"http": [{"match": [{"uri": {"regex": "/a.*"}}], **route()}]})
    assert_error(child, "spec.http[0].match[0].uri.regex", "delegating")


def test_jwt_claim_routing_only_on_gateways() -> None:
    match = {"match": [{"headers": {"@request.auth.claims.groups": {"exact": "admin"}}}], **route()}
    assert_error(
        istio("VirtualService", {"hosts": ["a"], "http": [match]}),
        "spec.http[0].match[0].headers[@request.auth.claims.groups]",
        "only supported for gateway",
    )
    assert_valid(
        istio(
            "VirtualService",
            {"hosts": ["a.example"], "gateways": ["istio-system/gw"], "http": [match]},
        )
    )


def test_gateway_tls_rules() -> None:
    http = {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
    assert_error(
        istio("Gateway", {"servers": [{**http, "tls": {"mode": "SIMPLE", "credentialName": "c"}}]}),
        "spec.servers[0].tls",
        "plain text HTTP",
    )
    tcp = {"port": {"number": 31400, "name": "tcp", "protocol": "TCP"}, "hosts": ["*"]}
    assert_error(
        istio("Gateway", {"servers": [{**tcp, "tls": {"mode": "PASSTHROUGH"}}]}),
        "spec.servers[0].tls",
        "non HTTPS/TLS",
    )
    assert_error(
        istio("Gateway", {"servers": [http, {**http, "port": {**http["port"], "number": 8080}}]}),
        "spec.servers[1].port.name",
        "unique",
    )
    passthrough = {
        "port": {"number": 443, "name": "tls", "protocol": "TLS"},
        "hosts": ["*"],
        "tls": {"mode": "PASSTHROUGH"},
    }
    assert_valid(istio("Gateway", {"servers": [passthrough]}))
    assert_error(
        istio("Gateway", {"servers": [http]}, name="bad.name"), "metadata.name", "DNS-1123 label"
    )
    mutual = {**passthrough, "tls": {"mode": "ISTIO_MUTUAL", "credentialName": "x"}}
    assert_error(
        istio("Gateway", {"servers": [mutual]}),
        "spec.servers[0].tls.credentialName",
        "ISTIO_MUTUAL",
    )


def test_sidecar_default_endpoint_accepts_local_mesh_loopback() -> None:
    def ingress(endpoint: str) -> dict[str, Any]:
        return istio(
            "Sidecar",
            {
                "ingress": [
                    {
                        "port": {"number": 9080, "protocol": "HTTP", "name": "http"},
                        "defaultEndpoint": endpoint,
                    }
                ]
            },
        )

    for ok in (
        "127.0.0.1:8080",
        "0.0.0.0:8080",
        "[::1]:8080",
        ":8080",
        "127.0.10.2:9080",
        "unix:///var/run/app.sock",
    ):
        assert_valid(ingress(ok))
    assert_error(ingress("10.0.0.5:8080"), "spec.ingress[0].defaultEndpoint", "127.0.0.1")
    assert_error(ingress("127.0.0.1:http"), "spec.ingress[0].defaultEndpoint", "not a number")
    assert_error(ingress("unix://relative"), "spec.ingress[0].defaultEndpoint", "absolute")


def test_sidecar_unix_socket_egress_and_selector_warning() -> None:
    uds = {
        "port": {"number": 0, "protocol": "HTTP", "name": "uds"},
        "bind": "unix:///var/run/out.sock",
        "hosts": ["./*"],
    }
    warnings = assert_valid(istio("Sidecar", {"workloadSelector": {"labels": {}}, "egress": [uds]}))
    assert [w.path for w in warnings] == ["spec.workloadSelector.labels"]
    assert_error(
        istio("Sidecar", {"egress": [{**uds, "bind": "127.0.0.1"}]}),
        "spec.egress[0].bind",
        "unix domain socket",
    )


def test_service_entry_endpoints() -> None:
    spec = {
        "hosts": ["a.example"],
        "resolution": "STATIC",
        "endpoints": [{"address": "10.0.0.1", "ports": {"http": 8080}}],
    }
    assert_error(istio("ServiceEntry", spec), "spec.endpoints[0].ports[http]", "not defined")
    spec["ports"] = [{"number": 80, "name": "http", "protocol": "HTTP"}]
    assert_valid(istio("ServiceEntry", spec))
    dns = {
        "hosts": ["a.example"],
        "resolution": "DNS",
        "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
        "endpoints": [{"address": "unix:///sock"}],
    }
    assert_error(istio("ServiceEntry", dns), "spec.endpoints[0].address", "STATIC")


def test_workload_entry_port_names_are_dns_labels() -> None:
    assert_error(
        istio("WorkloadEntry", {"address": "10.0.0.1", "ports": {"HTTP": 80}}),
        "spec.ports[HTTP]",
        "port name",
    )
    assert_error(
        istio("WorkloadEntry", {"address": "10.0.0.1", "locality": "us/*/z"}),
        "spec.locality",
        "last segment",
    )


def test_request_authentication_inline_jwks() -> None:
    good = json.dumps({"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]})
    assert_valid(
        istio(
            "RequestAuthentication",
            {"jwtRules": [{"issuer": "i", "jwks": good}]},
            group="security.istio.io",
        )
    )
    assert_error(
        istio(
            "RequestAuthentication",
            {"jwtRules": [{"issuer": "i", "jwks": "{not json"}]},
            group="security.istio.io",
        ),
        "spec.jwtRules[0].jwks",
        "jwks parse error",
    )


def test_telemetry_warnings_and_custom_tags() -> None:
    doc = istio(
        "Telemetry",
        {"tracing": [{"providers": [{"name": "a"}, {"name": "b"}]}, {}]},
        group="telemetry.istio.io",
    )
    assert sorted(w.path for w in assert_valid(doc)) == [
        "spec.tracing",
        "spec.tracing[0].providers",
    ]
    tags = {"customTags": {"t": {"literal": {"value": ""}}}}
    assert_error(
        istio("Telemetry", {"tracing": [tags]}, group="telemetry.istio.io"),
        "spec.tracing[0].customTags[t].literal.value",
        "may not be empty",
    )


def test_workload_selector_wildcards() -> None:
    spec = {"selector": {"matchLabels": {"app": "*"}}}
    assert_error(
        istio("AuthorizationPolicy", spec, group="security.istio.io"),
        "spec.selector.matchLabels[app]",
        "wildcard",
    )
