"""DestinationRule, Gateway, Sidecar, ServiceEntry, security and telemetry validation."""

from __future__ import annotations

from typing import Any

from tests.model.helpers import assert_error, assert_valid, istio

# --- DestinationRule -------------------------------------------------------------------------


def dr(spec: dict[str, Any]) -> dict[str, Any]:
    return istio("DestinationRule", {"host": "reviews", **spec})


def test_destination_rule_traffic_policy() -> None:
    assert_valid(
        dr(
            {
                "trafficPolicy": {
                    "loadBalancer": {
                        "consistentHash": {
                            "httpCookie": {"name": "u", "ttl": "0s"},
                            "ringHash": {"minimumRingSize": 1024},
                        },
                        "localityLbSetting": {
                            "enabled": True,
                            "failover": [{"from": "us-east", "to": "us-west"}],
                        },
                    },
                    "connectionPool": {
                        "tcp": {
                            "maxConnections": 100,
                            "connectTimeout": "30ms",
                            "tcpKeepalive": {"time": "7200s", "interval": "75s"},
                        },
                        "http": {
                            "http2MaxRequests": 1000,
                            "maxRequestsPerConnection": 10,
                            "h2UpgradePolicy": "UPGRADE",
                        },
                    },
                    "outlierDetection": {
                        "consecutive5xxErrors": 7,
                        "interval": "5m",
                        "baseEjectionTime": "15m",
                        "maxEjectionPercent": 100,
                    },
                    "tls": {"mode": "SIMPLE", "sni": "reviews.example"},
                    "portLevelSettings": [
                        {"port": {"number": 80}, "loadBalancer": {"simple": "LEAST_REQUEST"}}
                    ],
                }
            }
        )
    )
    assert_error(dr({"trafficPolicy": {}}), "spec.trafficPolicy", "at least one field")
    assert_error(
        dr(
            {
                "trafficPolicy": {
                    "loadBalancer": {"consistentHash": {"httpHeaderName": "x", "useSourceIp": True}}
                }
            }
        ),
        "spec.trafficPolicy.loadBalancer.consistentHash",
        "only one",
    )
    maglev = {"consistentHash": {"useSourceIp": True, "maglev": {"tableSize": 1000}}}
    assert_error(
        dr({"trafficPolicy": {"loadBalancer": maglev}}),
        "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
        "prime",
    )
    maglev = {"consistentHash": {"useSourceIp": True, "maglev": {"tableSize": 65537}}}
    assert_valid(dr({"trafficPolicy": {"loadBalancer": maglev}}))
    assert_error(
        dr({"trafficPolicy": {"loadBalancer": {"simple": "FASTEST"}}}),
        "spec.trafficPolicy.loadBalancer.simple",
        "unsupported",
    )
    assert_error(
        dr(
            {
                "trafficPolicy": {
                    "loadBalancer": {
                        "localityLbSetting": {
                            "distribute": [{"from": "a/*", "to": {"a/*": 60, "b/*": 30}}]
                        }
                    }
                }
            }
        ),
        "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to",
        "100",
    )
    assert_error(
        dr({"trafficPolicy": {"outlierDetection": {"maxEjectionPercent": 101}}}),
        "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
    )
    assert_error(
        dr({"trafficPolicy": {"connectionPool": {"tcp": {"connectTimeout": "0s"}}}}),
        "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
        "1ms",
    )
    assert_error(
        dr({"trafficPolicy": {"tls": {"mode": "MUTUAL"}}}),
        "spec.trafficPolicy.tls.clientCertificate",
    )
    assert_valid(
        dr({"trafficPolicy": {"tls": {"mode": "MUTUAL", "credentialName": "client-cred"}}})
    )
    warnings = assert_valid(
        dr({"trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL", "clientCertificate": "/a"}}})
    )
    assert [w.path for w in warnings] == ["spec.trafficPolicy.tls"]
    assert_error(
        dr(
            {
                "trafficPolicy": {
                    "tunnel": {"targetHost": "a.example", "targetPort": 8443},
                    "proxyProtocol": {},
                }
            }
        ),
        "spec.trafficPolicy",
        "together",
    )
    assert_error(
        dr(
            {
                "trafficPolicy": {
                    "portLevelSettings": [
                        {"port": {"number": 80}, "tls": {"mode": "SIMPLE"}},
                        {"port": {"number": 80}, "tls": {"mode": "SIMPLE"}},
                    ]
                }
            }
        ),
        "spec.trafficPolicy.portLevelSettings[1].port.number",
        "duplicated",
    )


def test_destination_rule_subsets_and_export() -> None:
    assert_error(
        dr(
            {
                "subsets": [
                    {"name": "v1", "labels": {"version": "v1"}},
                    {"name": "v1", "labels": {"version": "v2"}},
                ]
            }
        ),
        "spec.subsets[1].name",
        "duplicate",
    )
    assert_error(
        dr({"subsets": [{"labels": {"version": "v1"}}]}), "spec.subsets[0].name", "cannot be empty"
    )
    assert_error(dr({"exportTo": ["*", "ns1"]}), "spec.exportTo", "both public")
    assert_error(dr({"exportTo": ["Bad_NS"]}), "spec.exportTo[0]")
    assert_valid(dr({"exportTo": ["."], "workloadSelector": {"matchLabels": {"app": "x"}}}))
    assert_valid(dr({"exportTo": [".", "istio-system"]}))


# --- Gateway, Sidecar, ServiceEntry, WorkloadEntry -------------------------------------------


def gateway(server: dict[str, Any]) -> dict[str, Any]:
    return istio("Gateway", {"selector": {"istio": "ingressgateway"}, "servers": [server]})


def test_gateway_servers() -> None:
    https = {
        "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
        "hosts": ["ns1/*.example.com"],
        "tls": {"mode": "SIMPLE", "credentialName": "cred"},
    }
    assert_valid(gateway(https))
    assert_error(gateway({**https, "tls": None}), "spec.servers[0].tls", "TLS settings")
    assert_error(
        gateway({**https, "tls": {"mode": "SIMPLE"}}), "spec.servers[0].tls.serverCertificate"
    )
    assert_error(
        gateway(
            {**https, "tls": {"mode": "MUTUAL", "serverCertificate": "/c", "privateKey": "/k"}}
        ),
        "spec.servers[0].tls.caCertificates",
    )
    assert_error(gateway({**https, "hosts": ["a/b/c"]}), "spec.servers[0].hosts[0]")
    assert_error(gateway({**https, "hosts": []}), "spec.servers[0].hosts", "at least one host")
    assert_error(
        gateway({**https, "port": {"number": 443, "protocol": "HTTPS"}}),
        "spec.servers[0].port.name",
    )
    assert_error(
        gateway({**https, "port": {"number": 443, "name": "x", "protocol": "FTP"}}),
        "spec.servers[0].port.protocol",
    )
    assert_error(istio("Gateway", {"servers": []}), "spec.servers", "at least one server")
    assert_valid(
        gateway(
            {
                "port": {"number": 80, "name": "http", "protocol": "HTTP"},
                "hosts": ["*"],
                "tls": {"httpsRedirect": True},
            }
        )
    )


def sidecar(spec: dict[str, Any]) -> dict[str, Any]:
    return istio("Sidecar", spec)


def test_sidecar() -> None:
    assert_valid(
        sidecar(
            {
                "workloadSelector": {"labels": {"app": "reviews"}},
                "ingress": [
                    {
                        "port": {"number": 9080, "protocol": "HTTP", "name": "http"},
                        "defaultEndpoint": "127.0.0.1:8080",
                        "captureMode": "NONE",
                    }
                ],
                "egress": [
                    {"port": {"number": 9080, "protocol": "HTTP", "name": "h"}, "hosts": ["./*"]},
                    {"hosts": ["istio-system/*", "~/*"]},
                ],
                "outboundTrafficPolicy": {
                    "mode": "ALLOW_ANY",
                    "egressProxy": {"host": "egress.example", "port": {"number": 443}},
                },
            }
        )
    )
    assert_error(sidecar({}), "spec", "empty")
    assert_error(
        sidecar({"egress": [{"hosts": ["reviews.default.svc.cluster.local"]}]}),
        "spec.egress[0].hosts[0]",
        "namespace/dnsName",
    )
    assert_error(
        sidecar(
            {
                "egress": [
                    {"hosts": ["./*"]},
                    {"port": {"number": 80, "protocol": "HTTP", "name": "h"}, "hosts": ["./*"]},
                ]
            }
        ),
        "spec.egress[0]",
        "last",
    )
    assert_error(
        sidecar({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY", "egressProxy": {"host": "e"}}}),
        "spec.outboundTrafficPolicy.egressProxy",
        "ALLOW_ANY",
    )
    assert_error(
        sidecar(
            {
                "ingress": [
                    {
                        "port": {"number": 9080, "protocol": "HTTP", "name": "h"},
                        "defaultEndpoint": "localhost",
                    }
                ]
            }
        ),
        "spec.ingress[0].defaultEndpoint",
    )
    assert_error(
        sidecar({"egress": [{"hosts": ["./*"], "captureMode": "SOMETIMES"}]}),
        "spec.egress[0].captureMode",
    )


def test_service_entry_resolution_rules() -> None:
    assert_valid(
        istio(
            "ServiceEntry",
            {
                "hosts": ["api.example.com"],
                "ports": [{"number": 443, "name": "https", "protocol": "TLS"}],
                "resolution": "DNS",
                "location": "MESH_EXTERNAL",
            },
        )
    )
    assert_error(
        istio("ServiceEntry", {"hosts": ["*.example.com"], "resolution": "DNS"}),
        "spec.hosts[0]",
        "FQDN",
    )
    assert_error(
        istio(
            "ServiceEntry",
            {
                "hosts": ["a.example"],
                "resolution": "STATIC",
                "endpoints": [{"address": "not-an-ip.example"}],
            },
        ),
        "spec.endpoints[0].address",
    )
    assert_error(
        istio(
            "ServiceEntry",
            {
                "hosts": ["a.example"],
                "resolution": "STATIC",
                "ports": [{"number": 80, "name": "http"}],
                "endpoints": [{"address": "10.0.0.1", "ports": {"grpc": 90}}],
            },
        ),
        "spec.endpoints[0].ports[grpc]",
        "not defined",
    )
    assert_error(
        istio("ServiceEntry", {"hosts": ["a.example"], "location": "MESH_SOMEWHERE"}),
        "spec.location",
    )


def test_workload_entry() -> None:
    assert_valid(
        istio(
            "WorkloadEntry",
            {"address": "10.0.0.1", "labels": {"app": "vm"}, "serviceAccount": "vm-sa"},
        )
    )
    assert_error(istio("WorkloadEntry", {"address": "bad_host!"}), "spec.address")
    assert_error(
        istio("WorkloadEntry", {"address": "10.0.0.1", "labels": {"app": "a b"}}),
        "spec.labels[app]",
    )


# --- security and telemetry ------------------------------------------------------------------


def authz(spec: dict[str, Any]) -> dict[str, Any]:
    return istio("AuthorizationPolicy", spec, group="security.istio.io")


def test_authorization_policy() -> None:
    assert_valid(
        authz(
            {
                "action": "DENY",
                "rules": [
                    {
                        "from": [{"source": {"notNamespaces": ["foo"]}}],
                        "to": [{"operation": {"methods": ["POST"], "ports": ["8080"]}}],
                    }
                ],
            }
        )
    )
    assert_valid(authz({"action": "CUSTOM", "provider": {"name": "ext-authz"}, "rules": [{}]}))
    assert_error(
        authz({"action": "CUSTOM", "rules": [{}]}), "spec.provider.name", "must not be empty"
    )
    assert_error(
        authz({"action": "CUSTOM", "provider": {"name": "x"}}), "spec.rules", "meaningless"
    )
    assert_error(authz({"action": "DENY"}), "spec.rules", "meaningless")
    custom = {
        "action": "CUSTOM",
        "provider": {"name": "x"},
        "rules": [{"from": [{"source": {"principals": ["a"]}}]}],
    }
    assert_error(
        authz(custom), "spec.rules[0].from[0].source.principals", "not supported with CUSTOM"
    )
    assert_error(
        authz({"rules": [{"to": [{"operation": {"methods": ["GET", ""]}}]}]}),
        "spec.rules[0].to[0].operation.methods[1]",
    )
    assert_error(authz({"action": "ALLOW", "provider": {"name": "x"}}), "spec.provider", "CUSTOM")
    assert_error(authz({"action": "PERMIT"}), "spec.action", "unsupported")
    assert_error(
        authz({"rules": [{"when": [{"key": "request.foo", "values": ["a"]}]}]}),
        "spec.rules[0].when[0].key",
        "unknown",
    )
    assert_error(
        authz({"rules": [{"when": [{"key": "source.ip", "values": ["10.0.0.0/40"]}]}]}),
        "spec.rules[0].when[0].values[0]",
    )
    assert_error(
        authz({"rules": [{"when": [{"key": "destination.port", "notValues": ["http"]}]}]}),
        "spec.rules[0].when[0].notValues[0]",
        "port",
    )
    assert_error(
        authz({"rules": [{"when": [{"key": "request.auth.claims[iss]"}]}]}),
        "spec.rules[0].when[0]",
        "values",
    )
    assert_error(
        authz({"rules": [{"from": [{"source": {"ipBlocks": ["1.2.3"]}}]}]}),
        "spec.rules[0].from[0].source.ipBlocks[0]",
    )
    assert_error(
        authz({"rules": [{"to": [{"operation": {"paths": ["/a/{x}"]}}]}]}),
        "spec.rules[0].to[0].operation.paths[0]",
    )
    assert_error(
        authz({"rules": [{"from": [{"source": {}}]}]}), "spec.rules[0].from[0].source", "empty"
    )
    assert_error(
        authz(
            {
                "selector": {"matchLabels": {"app": "a"}},
                "targetRef": {"kind": "Service", "name": "a"},
            }
        ),
        "spec",
        "only one",
    )


def test_peer_authentication_port_level() -> None:
    spec = {
        "selector": {"matchLabels": {"app": "a"}},
        "mtls": {"mode": "STRICT"},
        "portLevelMtls": {8080: {"mode": "DISABLE"}},
    }
    pa = assert_valid(istio("PeerAuthentication", spec, group="security.istio.io"))
    assert pa == []


def test_request_authentication() -> None:
    ok = {
        "selector": {"matchLabels": {"app": "a"}},
        "jwtRules": [{"issuer": "https://issuer", "jwksUri": "https://issuer/jwks"}],
    }
    assert_valid(istio("RequestAuthentication", ok, group="security.istio.io"))
    bad = {"jwtRules": [{"issuer": "i", "jwksUri": "ftp://x/jwks"}, {"jwksUri": "https://x"}]}
    doc = istio("RequestAuthentication", bad, group="security.istio.io")
    assert_error(doc, "spec.jwtRules[0].jwksUri", "scheme")
    assert_error(doc, "spec.jwtRules[1].issuer", "issuer")


def telemetry(spec: dict[str, Any]) -> dict[str, Any]:
    return istio("Telemetry", spec, group="telemetry.istio.io")


def test_telemetry() -> None:
    assert_valid(
        telemetry(
            {
                "tracing": [{"randomSamplingPercentage": 10.5}],
                "accessLogging": [{"providers": [{"name": "envoy"}]}],
            }
        )
    )
    assert_error(
        telemetry({"tracing": [{"randomSamplingPercentage": 100.5}]}),
        "spec.tracing[0].randomSamplingPercentage",
    )
    assert_error(
        telemetry(
            {
                "tracing": [
                    {"customTags": {"a": {"literal": {"value": "x"}, "header": {"name": "h"}}}}
                ]
            }
        ),
        "spec.tracing[0].customTags[a]",
        "exactly one",
    )
    assert_error(
        telemetry({"metrics": [{"overrides": [{"match": {"metric": "REQUEST_COUNTS"}}]}]}),
        "spec.metrics[0].overrides[0].match.metric",
        "unsupported",
    )
    assert_error(
        telemetry({"metrics": [{"reportingInterval": "0.1ms"}]}),
        "spec.metrics[0].reportingInterval",
    )
