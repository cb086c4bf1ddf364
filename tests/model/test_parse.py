"""The parser's contract: typed frozen models, defaults, paths in errors, unsupported kinds."""

from __future__ import annotations

import base64
import dataclasses
from datetime import timedelta

import pytest

from controlplane.model import (
    BY_KIND,
    DestinationRule,
    EndpointSlice,
    FrozenDict,
    Namespace,
    Origin,
    PeerAuthentication,
    Pod,
    ResourceKey,
    Secret,
    Service,
    ServiceEntry,
    UnsupportedKind,
    ValidationError,
    VirtualService,
    is_supported,
    parse,
    parse_with_warnings,
    supported_kinds,
)
from controlplane.model.decode import parse_duration
from tests.model.helpers import assert_error, assert_valid, errors_of, istio

VS_SPEC = {
    "hosts": ["reviews"],
    "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}],
}


def service(**spec_extra: object) -> dict:
    spec = {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}], **spec_extra}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "reviews", "namespace": "bookinfo"},
        "spec": spec,
    }


def test_virtual_service_is_typed_and_snake_cased() -> None:
    doc = istio(
        "VirtualService",
        {
            "hosts": ["reviews"],
            "http": [
                {
                    "match": [
                        {"headers": {"end-user": {"exact": "jason"}}, "uri": {"prefix": "/api"}}
                    ],
                    "route": [
                        {
                            "destination": {
                                "host": "reviews",
                                "subset": "v2",
                                "port": {"number": 9080},
                            }
                        }
                    ],
                    "timeout": "1.5s",
                    "retries": {"attempts": 3, "perTryTimeout": "300ms", "retryOn": "5xx"},
                    "corsPolicy": {
                        "allowOrigins": [{"exact": "https://a.example"}],
                        "maxAge": "24h",
                    },
                }
            ],
        },
    )
    vs = parse(doc)
    assert isinstance(vs, VirtualService)
    route = vs.spec.http[0]
    assert route.match[0].headers["end-user"].exact == "jason"
    assert route.match[0].uri is not None and route.match[0].uri.prefix == "/api"
    assert route.route[0].destination is not None and route.route[0].destination.port is not None
    assert route.route[0].destination.port.number == 9080
    assert route.timeout == timedelta(seconds=1.5)
    assert route.retries is not None and route.retries.per_try_timeout == timedelta(
        milliseconds=300
    )
    assert route.cors_policy is not None and route.cors_policy.max_age == timedelta(hours=24)
    assert isinstance(vs.spec.http, tuple) and isinstance(route.match[0].headers, FrozenDict)
    assert vs.key == ResourceKey("VirtualService", "default", "r")


def test_models_are_immutable_and_hashable() -> None:
    vs = parse(istio("VirtualService", VS_SPEC))
    with pytest.raises(dataclasses.FrozenInstanceError):
        vs.spec.hosts = ()  # type: ignore[misc]
    sel = parse(service()).spec.selector
    with pytest.raises(TypeError):
        sel["x"] = "y"  # type: ignore[index]
    assert hash(vs) == hash(parse(istio("VirtualService", VS_SPEC)))
    assert vs == parse(istio("VirtualService", VS_SPEC))


@pytest.mark.parametrize("version", ["v1", "v1beta1", "v1alpha3"])
def test_every_networking_version_is_accepted(version: str) -> None:
    assert isinstance(parse(istio("VirtualService", VS_SPEC, version=version)), VirtualService)


def test_unknown_version_of_known_kind_is_an_error() -> None:
    assert_error(istio("VirtualService", VS_SPEC, version="v2"), "apiVersion", "unsupported value")


@pytest.mark.parametrize(
    "api_version,kind",
    [
        ("apps/v1", "Deployment"),
        ("networking.istio.io/v1beta1", "ProxyConfig"),
        ("v1", "LimitRange"),
        ("gateway.networking.k8s.io/v1", "XListenerSet"),
        ("gateway.networking.x-k8s.io/v1alpha1", "XBackend"),
    ],
)
def test_unknown_kinds_are_unsupported_not_invalid(api_version: str, kind: str) -> None:
    doc = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}, "spec": {"junk": 1}}
    assert not is_supported(api_version, kind)
    with pytest.raises(UnsupportedKind) as caught:
        parse(doc, Origin("f.yaml", 3))
    assert not isinstance(caught.value, ValidationError)
    assert caught.value.kind == kind and "f.yaml:3" in str(caught.value)


def test_registry_lists_kinds_and_versions() -> None:
    kinds = supported_kinds()
    assert kinds[("networking.istio.io", "VirtualService")] == ("v1", "v1beta1", "v1alpha3")
    assert kinds[("security.istio.io", "AuthorizationPolicy")] == ("v1", "v1beta1")
    assert kinds[("telemetry.istio.io", "Telemetry")] == ("v1", "v1alpha1")
    assert kinds[("discovery.k8s.io", "EndpointSlice")] == ("v1",)
    assert kinds[("", "Service")] == ("v1",)
    assert BY_KIND["Sidecar"].api_versions[0] == "networking.istio.io/v1"


@pytest.mark.parametrize("missing", ["apiVersion", "kind"])
def test_missing_type_fields_are_errors(missing: str) -> None:
    doc = istio("VirtualService", VS_SPEC)
    del doc[missing]
    assert_error(doc, missing, "required")


def test_unknown_field_is_named_with_its_full_path() -> None:
    doc = istio(
        "VirtualService", {"hosts": ["a"], "http": [{"route": [{"destination": {"hots": "a"}}]}]}
    )
    assert_error(doc, "spec.http[0].route[0].destination.hots", "unknown field")


def test_wrong_types_are_named_and_all_errors_collected() -> None:
    doc = istio(
        "VirtualService",
        {
            "hosts": "a",
            "http": [{"route": [{"destination": {"host": "a"}, "weight": "50"}], "timeout": 5}],
        },
    )
    paths = {e.path for e in errors_of(doc)}
    assert {"spec.hosts", "spec.http[0].route[0].weight", "spec.http[0].timeout"} <= paths


def test_booleans_are_not_integers_and_floats_are_not_integers() -> None:
    assert_error(
        istio(
            "VirtualService",
            {"hosts": ["a"], "http": [{"route": [{"destination": {"host": "a"}, "weight": True}]}]},
        ),
        "spec.http[0].route[0].weight",
        "integer",
    )
    assert_error(service(ports=[{"name": "http", "port": 80.0}]), "spec.ports[0].port", "integer")


def test_null_is_absent() -> None:
    doc = istio("VirtualService", {**VS_SPEC, "gateways": None, "tcp": None})
    assert parse(doc).spec.gateways == ()


def test_missing_spec_is_required_for_istio_kinds() -> None:
    doc = istio("DestinationRule", None)
    del doc["spec"]
    assert_error(doc, "spec", "required")


def test_default_namespace() -> None:
    assert parse(istio("VirtualService", VS_SPEC)).meta.namespace == "default"
    assert (
        parse(istio("VirtualService", VS_SPEC), default_namespace="prod").meta.namespace == "prod"
    )
    assert (
        parse(
            istio("VirtualService", VS_SPEC, namespace="x"), default_namespace="prod"
        ).meta.namespace
        == "x"
    )
    ns = parse(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "prod", "labels": {"istio-injection": "enabled"}},
        }
    )
    assert (
        isinstance(ns, Namespace)
        and ns.meta.namespace == ""
        and ns.key == ResourceKey("Namespace", "", "prod")
    )
    assert ns.meta.labels["istio-injection"] == "enabled"


def test_metadata_is_checked() -> None:
    assert_error(istio("VirtualService", VS_SPEC, name="Bad_Name"), "metadata.name")
    assert_error(
        {**istio("VirtualService", VS_SPEC), "metadata": {"name": "a", "labels": {"app": "x y"}}},
        "metadata.labels[app]",
    )
    assert_error(
        {**istio("VirtualService", VS_SPEC), "metadata": {"name": "a", "nmespace": "x"}},
        "metadata.nmespace",
        "unknown",
    )
    doc = {
        **istio("VirtualService", VS_SPEC),
        "metadata": {
            "name": "a",
            "uid": "123",
            "resourceVersion": "42",
            "managedFields": [{}],
            "generation": 3,
            "creationTimestamp": "2024-01-01T00:00:00Z",
        },
        "status": {"conditions": []},
    }
    assert parse(doc).meta.resource_version == "42"


def test_a_write_that_moves_only_resource_version_and_status_is_no_change() -> None:
    """A status write (ours among them) comes back through the watch with a new resourceVersion;
    it must compare equal, or every status write would cost a push."""
    before = {**istio("VirtualService", VS_SPEC),
              "metadata": {"name": "a", "resourceVersion": "42"}}
    after = {**before, "metadata": {"name": "a", "resourceVersion": "43"},
             "status": {"conditions": [{"type": "Reconciled", "status": "True"}]}}
    assert parse(after) == parse(before)
    assert parse(after).meta.resource_version == "43"
    changed = {**after, "spec": {**VS_SPEC, "hosts": ["other"]}}
    assert parse(changed) != parse(before)


def test_error_carries_key_and_origin() -> None:
    doc = istio(
        "VirtualService",
        {"hosts": ["a"], "http": [{"route": [{"destination": {"host": ""}}]}]},
        namespace="ns1",
    )
    with pytest.raises(ValidationError) as caught:
        parse(doc, Origin("vs.yaml", 7))
    err = caught.value
    assert err.key == ResourceKey("VirtualService", "ns1", "r")
    assert err.origin == Origin("vs.yaml", 7)
    assert (
        "vs.yaml:7: VirtualService ns1/r: spec.http[0].route[0].destination.host" in err.describe()
    )


def test_durations_use_go_syntax() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("1.5s") == timedelta(seconds=1.5)
    assert parse_duration("300ms") == timedelta(milliseconds=300)
    assert parse_duration("2us") == timedelta(microseconds=2)
    assert parse_duration("0") == timedelta(0)
    for bad in ("", "5", "s", "1x", "-1s", "1.2.3s", "1 s"):
        assert parse_duration(bad) is None, bad
    assert_error(
        istio("VirtualService", {**VS_SPEC, "http": [{**VS_SPEC["http"][0], "timeout": "10"}]}),
        "spec.http[0].timeout",
        "duration",
    )


def test_istio_defaults() -> None:
    se = parse(istio("ServiceEntry", {"hosts": ["api.example.com"]}))
    assert isinstance(se, ServiceEntry)
    assert se.spec.location == "MESH_EXTERNAL" and se.spec.resolution == "NONE"
    pa = parse(istio("PeerAuthentication", {"mtls": {}}, group="security.istio.io"))
    assert (
        isinstance(pa, PeerAuthentication)
        and pa.spec.mtls is not None
        and pa.spec.mtls.mode == "UNSET"
    )
    ap = parse(istio("AuthorizationPolicy", {}, group="security.istio.io"))
    assert ap.spec.action == "ALLOW" and ap.spec.rules == ()  # type: ignore[attr-defined]
    dr = parse(
        istio("DestinationRule", {"host": "a", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}})
    )
    assert isinstance(dr, DestinationRule)
    assert dr.spec.traffic_policy is not None and dr.spec.traffic_policy.load_balancer is None


def test_service_model() -> None:
    svc = parse(
        service(
            ports=[
                {"name": "http", "port": 9080},
                {"name": "grpc", "port": 9090, "targetPort": "grpc-port", "appProtocol": "grpc"},
            ],
            clusterIP="10.0.0.5",
        )
    )
    assert isinstance(svc, Service)
    assert svc.spec.ports[0].protocol == "TCP" and svc.spec.ports[0].effective_target_port == 9080
    assert svc.spec.ports[1].target_port == "grpc-port" and svc.spec.ports[1].app_protocol == "grpc"
    assert (
        svc.spec.cluster_ip == "10.0.0.5"
        and svc.spec.type == "ClusterIP"
        and not svc.spec.is_headless
    )
    assert_error(service(ports=[{"port": 1}, {"port": 2}]), "spec.ports[0].name", "required")
    assert_error(service(ports=[{"name": "a", "port": 70000}]), "spec.ports[0].port")
    assert_error(
        service(ports=[{"name": "a", "port": 80, "protocol": "HTTP"}]),
        "spec.ports[0].protocol",
        "unsupported",
    )
    assert_error(service(type="ExternalName"), "spec.externalName")


def test_endpoint_slice_model() -> None:
    doc = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "reviews-abc", "labels": {"kubernetes.io/service-name": "reviews"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 9080, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": ["10.1.0.4"],
                "conditions": {"ready": True},
                "nodeName": "n1",
                "zone": "z1",
                "hints": {"forZones": [{"name": "z1"}]},
                "targetRef": {"kind": "Pod", "name": "p1", "namespace": "default"},
            },
            {"addresses": ["10.1.0.5"], "conditions": {"ready": False, "terminating": True}},
            {"addresses": ["10.1.0.6"]},
        ],
    }
    eps = parse(doc)
    assert isinstance(eps, EndpointSlice)
    assert eps.service_name == "reviews" and eps.address_type == "IPv4"
    assert [e.is_ready for e in eps.endpoints] == [True, False, True]
    assert eps.endpoints[0].hints is not None and eps.endpoints[0].hints.for_zones[0].name == "z1"
    assert eps.endpoints[0].target_ref is not None and eps.endpoints[0].target_ref.name == "p1"
    doc["endpoints"][0]["addresses"] = ["fe80::1"]
    assert_error(doc, "endpoints[0].addresses[0]", "IPv4")
    del doc["addressType"]
    assert_error(doc, "addressType", "required")
    no_label = {**doc, "addressType": "IPv4", "metadata": {"name": "x"}}
    no_label["endpoints"] = [{"addresses": ["10.0.0.1"]}]
    assert [w.path for w in assert_valid(no_label)] == [
        "metadata.labels[kubernetes.io/service-name]"
    ]


def test_endpoints_fallback_model() -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "reviews"},
        "subsets": [
            {
                "addresses": [{"ip": "10.0.0.1", "nodeName": "n"}],
                "notReadyAddresses": [{"ip": "10.0.0.2"}],
                "ports": [{"name": "http", "port": 9080}],
            }
        ],
    }
    eps = parse(doc)
    assert eps.subsets[0].addresses[0].ip == "10.0.0.1"  # type: ignore[attr-defined]
    doc["subsets"][0]["addresses"][0]["ip"] = "nope"
    assert_error(doc, "subsets[0].addresses[0].ip")


def test_pod_from_live_api_ignores_unmodelled_fields() -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "reviews-v1-abc",
            "namespace": "default",
            "labels": {"app": "reviews", "version": "v1"},
        },
        "spec": {
            "serviceAccountName": "bookinfo-reviews",
            "nodeName": "n1",
            "restartPolicy": "Always",
            "containers": [
                {
                    "name": "reviews",
                    "image": "img",
                    "env": [{"name": "A", "value": "b"}],
                    "ports": [{"containerPort": 9080, "name": "http"}],
                }
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.1.0.4",
            "podIPs": [{"ip": "10.1.0.4"}, {"ip": "fd00::4"}],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    pod = parse(doc)
    assert isinstance(pod, Pod)
    assert pod.spec.service_account_name == "bookinfo-reviews" and pod.status.phase == "Running"
    assert pod.ips == ("10.1.0.4", "fd00::4")
    assert pod.spec.containers[0].ports[0].container_port == 9080
    bare = parse({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})
    assert bare.spec.service_account_name == "default" and bare.ips == ()  # type: ignore[attr-defined]
    doc["status"]["podIP"] = "999.1.1.1"
    assert_error(doc, "status.podIP")


def test_secret_data_is_decoded_and_never_printed() -> None:
    crt, key = b"-----BEGIN CERTIFICATE-----\nX\n", b"-----BEGIN PRIVATE KEY-----\nsecret\n"
    doc = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": "gw-cred", "namespace": "istio-system"},
        "data": {
            "tls.crt": base64.b64encode(crt).decode(),
            "tls.key": base64.b64encode(key).decode(),
        },
        "stringData": {"ca.crt": "CA"},
    }
    secret = parse(doc)
    assert isinstance(secret, Secret)
    assert (
        secret.tls_certificate == crt
        and secret.tls_private_key == key
        and secret.ca_certificate == b"CA"
    )
    assert "secret" not in repr(secret) and "ca.crt" in repr(secret)
    doc["data"]["tls.key"] = "***not base64***"
    assert_error(doc, "data[tls.key]", "base64")


def test_service_account_is_accepted() -> None:
    sa = parse(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "bookinfo-reviews"},
            "secrets": [{"name": "x"}],
            "automountServiceAccountToken": False,
        }
    )
    assert sa.KIND == "ServiceAccount" and sa.automount_service_account_token is False  # type: ignore[attr-defined]


def test_warnings_do_not_fail_parse() -> None:
    doc = istio("DestinationRule", {"host": "reviews", "subsets": [{"name": "all"}]})
    resource, warnings = parse_with_warnings(doc)
    assert isinstance(resource, DestinationRule)
    assert [(w.path, w.severity) for w in warnings] == [("spec.subsets[0].labels", "warning")]
    assert parse(doc) == resource


@pytest.mark.parametrize("doc", [None, [], "text", 5, {"kind": 5, "apiVersion": "v1"}])
def test_non_documents_are_validation_errors(doc: object) -> None:
    with pytest.raises(ValidationError):
        parse(doc)  # type: ignore[arg-type]


def test_destination_rule_workload_selector_uses_match_labels() -> None:
    """DestinationRule's selector is istio.type.v1beta1.WorkloadSelector (``matchLabels``),
    unlike Sidecar's and ServiceEntry's (``labels``)."""
    from controlplane.model import ValidationError, parse

    doc = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "r", "namespace": "default"},
        "spec": {"host": "reviews", "workloadSelector": {"matchLabels": {"app": "productpage"}}},
    }
    rule = parse(doc)
    assert dict(rule.spec.workload_selector.match_labels) == {"app": "productpage"}
    doc["spec"]["workloadSelector"] = {"labels": {"app": "productpage"}}
    with pytest.raises(ValidationError, match=r"spec\.workloadSelector\.labels"):
        parse(doc)


def test_creation_timestamp_is_kept_and_absent_changes_no_equality() -> None:
    from datetime import UTC, datetime

    import yaml

    doc = istio("VirtualService", VS_SPEC, namespace="default")
    plain = parse(doc)
    assert plain.meta.creation_timestamp is None
    assert parse(istio("VirtualService", VS_SPEC, namespace="default")) == plain  # still equal without one
    stamped = dict(doc, metadata={**doc["metadata"], "creationTimestamp": "2024-01-01T00:00:01Z"})
    created = parse(stamped).meta.creation_timestamp
    assert created == datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert parse(stamped) != plain  # a re-created object is a change
    # Unquoted in YAML it is already a timestamp; one with an offset is moved to UTC.
    loaded = yaml.safe_load("name: r\nnamespace: default\ncreationTimestamp: 2024-01-01T02:00:01+02:00\n")
    assert parse(dict(doc, metadata=loaded)).meta.creation_timestamp == created
    bad = dict(doc, metadata={**doc["metadata"], "creationTimestamp": "yesterday"})
    assert_error(bad, "metadata.creationTimestamp", "RFC 3339")
