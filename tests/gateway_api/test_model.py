"""The Gateway API kinds in the model: parsed under their versions, the Gateway API Gateway
stored as KubernetesGateway beside Istio's Gateway, errors with field paths, kinds not
modelled skipped (not failed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controlplane.model import BY_KIND, UnsupportedKind, ValidationError, is_supported, parse
from controlplane.model.base import Origin, ResourceKey
from controlplane.model.gateway import Gateway
from controlplane.model.gateway_api import BackendTLSPolicy, HTTPRoute, KubernetesGateway, TCPRoute
from controlplane.sources.folder import FolderSource
from controlplane.store import Store

API = "gateway.networking.k8s.io"


def gateway_doc(**spec: Any) -> dict[str, Any]:
    body = {"gatewayClassName": "istio", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}], **spec}
    return {"apiVersion": f"{API}/v1", "kind": "Gateway", "metadata": {"name": "web", "namespace": "apps"},
            "spec": body}


def route_doc(kind: str = "HTTPRoute", version: str = "v1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{API}/{version}", "kind": kind, "metadata": {"name": "r", "namespace": "apps"},
            "spec": spec}


def errors_of(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        parse(doc, Origin("routes.yaml", 7))
    assert "routes.yaml:7" in str(caught.value)
    return [str(e) for e in caught.value.errors]


def test_gateway_api_gateway_is_stored_as_kubernetes_gateway() -> None:
    gw = parse(gateway_doc())
    assert isinstance(gw, KubernetesGateway) and gw.key == ResourceKey("KubernetesGateway", "apps", "web")
    istio = parse({"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "web"},
                   "spec": {"servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}})
    assert isinstance(istio, Gateway) and istio.key.kind == "Gateway"
    assert BY_KIND["KubernetesGateway"].api_versions == (f"{API}/v1", f"{API}/v1beta1")
    assert BY_KIND["Gateway"].cls is Gateway


@pytest.mark.parametrize("kind,version", [("HTTPRoute", "v1beta1"), ("GRPCRoute", "v1"), ("TLSRoute", "v1alpha2"),
                                          ("TCPRoute", "v1alpha2"), ("TCPRoute", "v1")])
def test_route_versions(kind: str, version: str) -> None:
    spec: dict[str, Any] = {"parentRefs": [{"name": "web"}], "rules": [{"backendRefs": [{"name": "a", "port": 80}]}]}
    assert parse(route_doc(kind, version, **spec)).KIND == kind


def test_route_fields_are_typed() -> None:
    route = parse(route_doc(
        parentRefs=[{"name": "web", "sectionName": "http", "port": 80}],
        hostnames=["a.example.com"],
        rules=[{"matches": [{"path": {"type": "Exact", "value": "/x"}, "method": "GET",
                             "headers": [{"name": "h", "value": "v"}]}],
                "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "m", "port": 80},
                                                                         "fraction": {"numerator": 1}}}],
                "backendRefs": [{"name": "a", "port": 80, "weight": 3}],
                "timeouts": {"request": "1s"}}],
    ))
    assert isinstance(route, HTTPRoute)
    rule = route.spec.rules[0]
    assert rule.matches[0].path is not None and rule.matches[0].path.value == "/x"
    assert rule.filters[0].request_mirror is not None and rule.filters[0].request_mirror.fraction is not None
    assert rule.filters[0].request_mirror.fraction.denominator == 100
    assert rule.backend_refs[0].weight == 3 and rule.timeouts is not None
    assert rule.timeouts.request is not None and rule.timeouts.request.total_seconds() == 1


@pytest.mark.parametrize(
    "doc,path",
    [
        (gateway_doc(listeners=[{"name": "a", "port": 80, "protocol": "HTTP"},
                                {"name": "a", "port": 81, "protocol": "HTTP"}]), "spec.listeners[1].name"),
        (gateway_doc(listeners=[{"name": "a", "port": 70000, "protocol": "HTTP"}]), "spec.listeners[0].port"),
        (gateway_doc(listeners=[{"name": "a", "port": 80, "protocol": "HTTP", "hostname": "1.2.3.4"}]),
         "spec.listeners[0].hostname"),
        (gateway_doc(listeners=[{"name": "a", "port": 80, "protocol": "HTTP",
                                 "allowedRoutes": {"namespaces": {"from": "Selector"}}}]),
         "spec.listeners[0].allowedRoutes.namespaces.selector"),
        (gateway_doc(gatewayClassName=""), "spec.gatewayClassName"),
        (route_doc(parentRefs=[{"name": "web"}], hostnames=["bad_host"]), "spec.hostnames[0]"),
        (route_doc(rules=[{"matches": [{"path": {"type": "PathPrefix", "value": "relative"}}]}]),
         "spec.rules[0].matches[0].path.value"),
        (route_doc(rules=[{"backendRefs": [{"name": "a", "port": 80, "weight": -1}]}]),
         "spec.rules[0].backendRefs[0].weight"),
        (route_doc(rules=[{"filters": [{"type": "RequestRedirect"}]}]), "spec.rules[0].filters[0].requestRedirect"),
        (route_doc(rules=[{"backendRefs": [{"name": "a", "port": "eighty"}]}]), "spec.rules[0].backendRefs[0].port"),
        (route_doc(parentRefs=[{"name": f"p{i}"} for i in range(33)]), "spec.parentRefs"),
        (route_doc("TCPRoute", rules=[{"backendRefs": [{"name": "a", "port": 80}]}] * 17), "spec.rules"),
        ({"apiVersion": f"{API}/v1beta1", "kind": "ReferenceGrant", "metadata": {"name": "g"},
          "spec": {"from": [{"group": API, "kind": "HTTPRoute"}], "to": [{"group": "", "kind": "Service"}]}},
         "spec.from[0].namespace"),
    ],
)
def test_errors_name_the_field(doc: dict[str, Any], path: str) -> None:
    assert any(e.startswith(path) for e in errors_of(doc)), errors_of(doc)


def test_unknown_fields_are_errors_but_experimental_ones_are_kept() -> None:
    assert any(e.startswith("spec.rules[0].bogus") for e in errors_of(route_doc(rules=[{"bogus": 1}])))
    assert isinstance(parse(gateway_doc(infrastructure={"labels": {"a": "b"}}, tls={"frontend": {}})),
                      KubernetesGateway)
    assert isinstance(parse(route_doc("TCPRoute", rules=[{"name": "x"}])), TCPRoute)


@pytest.mark.parametrize("kind", ["BackendLBPolicy", "XMesh"])
def test_kinds_not_modelled_are_skipped(kind: str) -> None:
    assert not is_supported(f"{API}/v1", kind)
    with pytest.raises(UnsupportedKind):
        parse({"apiVersion": f"{API}/v1", "kind": kind, "metadata": {"name": "x"}, "spec": {}})


def test_a_folder_with_unsupported_gateway_api_kinds_loads(tmp_path: Path) -> None:
    (tmp_path / "gw.yaml").write_text("""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: apps}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.x-k8s.io/v1alpha1
kind: XBackend
metadata: {name: external, namespace: apps}
spec: {protocol: HTTP}
""")
    store = Store()
    source = FolderSource(store, tmp_path)
    source.load()
    assert [k.kind for k in store.snapshot] == ["KubernetesGateway"]
    assert not [d for d in source.errors if d.is_error]


def _backend_tls_policy(validation: dict[str, Any], targets: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"apiVersion": f"{API}/v1", "kind": "BackendTLSPolicy", "metadata": {"name": "tls", "namespace": "apps"},
            "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "web"}] if targets is None else targets,
                     "validation": validation}}


def test_a_backend_tls_policy_is_checked_as_its_crd_checks_it() -> None:
    ca = {"caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]}
    policy = parse(_backend_tls_policy({"hostname": "web.example.com", **ca}))
    assert isinstance(policy, BackendTLSPolicy)
    assert policy.spec.validation.ca_certificate_refs[0].name == "ca"
    cases = {
        "spec.targetRefs": _backend_tls_policy({"hostname": "a.example.com", **ca}, targets=[]),
        "spec.validation.hostname": _backend_tls_policy({"hostname": "*.example.com", **ca}),
        "spec.validation": _backend_tls_policy({"hostname": "a.example.com"}),
        "spec.validation.subjectAltNames[0]": _backend_tls_policy(
            {"hostname": "a.example.com", "wellKnownCACertificates": "System",
             "subjectAltNames": [{"type": "URI", "hostname": "a.example.com"}]}),
    }
    for path, doc in cases.items():
        with pytest.raises(ValidationError) as caught:
            parse(doc)
        assert path in [e.path for e in caught.value.errors], (path, caught.value.errors)
