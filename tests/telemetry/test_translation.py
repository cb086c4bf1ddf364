"""Which access logs and tracing each proxy gets: Telemetry levels, modes, mesh defaults,
collector clusters. Checked on translate() output (no Envoy; the golden cases validate)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.access_loggers.file.v3 import file_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from controlplane.model.mesh import mesh_config_from_yaml
from controlplane.translate import (
    CLUSTER_TYPE,
    LISTENER_TYPE,
    MeshConfig,
    Proxy,
    push_context,
    translate,
)
from controlplane.translate.filters.network import HCM, HCM_TYPE, TCP_PROXY
from controlplane.translate.telemetry import ISTIO_TEXT_FORMAT
from tests.translate.support import load_documents, snapshot_of, validate_many

ZIPKIN_MESH = """
extensionProviders:
- name: zipkin
  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}
- name: file
  envoyFileAccessLog: {path: /dev/stderr}
defaultProviders: {tracing: [zipkin]}
"""


def _docs(*extra: dict[str, Any]) -> list[Any]:
    docs = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "reviews"},
            "spec": {
                "clusterIP": "10.96.0.12",
                "selector": {"app": "reviews"},
                "ports": [{"name": "http", "port": 9080}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "db"},
            "spec": {
                "clusterIP": "10.96.0.13",
                "selector": {"app": "db"},
                "ports": [{"name": "tcp", "port": 5432}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "zipkin", "namespace": "istio-system"},
            "spec": {
                "clusterIP": "10.96.5.5",
                "selector": {"app": "zipkin"},
                "ports": [{"name": "http", "port": 9411}],
            },
        },
        *extra,
    ]
    return load_documents(yaml.safe_dump_all(docs))


def telemetry(name: str, spec: dict[str, Any], ns: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "telemetry.istio.io/v1",
        "kind": "Telemetry",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def proxy(app: str = "productpage", ns: str = "default") -> Proxy:
    return Proxy.make(
        "sidecar", ns, labels={"app": app}, ips=["10.1.0.1"], workload_name=f"{app}-v1"
    )


def run(
    docs: list[Any], mesh: MeshConfig | str | None = None, who: Proxy | None = None
) -> dict[str, list[Any]]:
    if isinstance(mesh, str):
        mesh = mesh_config_from_yaml(mesh)
    return translate(push_context(snapshot_of(docs), mesh or MeshConfig()), who or proxy())


def _hcms(out: dict[str, list[Any]], direction: int) -> list[Any]:
    found = []
    for lst in out[LISTENER_TYPE]:
        if lst.traffic_direction != direction:
            continue
        for chain in [*lst.filter_chains, lst.default_filter_chain]:
            for f in chain.filters:
                if f.name == HCM:
                    hcm = HCM_TYPE()
                    f.typed_config.Unpack(hcm)
                    found.append(hcm)
                elif f.name == TCP_PROXY:
                    tp = tcp_proxy_pb2.TcpProxy()
                    f.typed_config.Unpack(tp)
                    found.append(tp)
    return found


def file_logs(msg: Any) -> list[Any]:
    """A connection manager's or tcp_proxy's file access logs (not the stats loggers that make
    Istio's metrics, on every chain)."""
    return [log for log in msg.access_log if log.name == "envoy.access_loggers.file"]


def log_paths(out: dict[str, list[Any]], direction: int) -> set[tuple[str, ...]]:
    """The access log paths of each filter of that direction (1 inbound, 2 outbound)."""
    paths = set()
    for msg in _hcms(out, direction):
        files = []
        for log in file_logs(msg):
            cfg = file_pb2.FileAccessLog()
            log.typed_config.Unpack(cfg)
            files.append(cfg.path)
        paths.add(tuple(files))
    return paths


def sampling(out: dict[str, list[Any]], direction: int) -> set[float | None]:
    return {
        m.tracing.random_sampling.value if m.HasField("tracing") else None
        for m in _hcms(out, direction)
        if isinstance(m, HCM_TYPE)
    }


INBOUND, OUTBOUND = 1, 2


def test_nothing_configured_changes_nothing() -> None:
    out = run(_docs())
    assert log_paths(out, OUTBOUND) == {()} and log_paths(out, INBOUND) <= {()}
    assert sampling(out, OUTBOUND) == {None}


def test_mesh_access_log_file_covers_hcm_and_tcp_proxy_in_both_directions() -> None:
    out = run(_docs(), "accessLogFile: /dev/stdout", proxy("reviews"))
    assert log_paths(out, OUTBOUND) == {("/dev/stdout",)}
    assert log_paths(out, INBOUND) == {("/dev/stdout",)}
    tcp = [m for m in _hcms(out, OUTBOUND) if isinstance(m, tcp_proxy_pb2.TcpProxy)]
    assert tcp and all(len(file_logs(m)) == 1 for m in tcp)
    cfg = file_pb2.FileAccessLog()
    file_logs(tcp[0])[0].typed_config.Unpack(cfg)
    assert cfg.log_format.text_format_source.inline_string == ISTIO_TEXT_FORMAT


def test_json_encoding_uses_istio_json_fields() -> None:
    out = run(_docs(), "accessLogFile: /dev/stdout\naccessLogEncoding: JSON")
    hcm = _hcms(out, OUTBOUND)[0]
    cfg = file_pb2.FileAccessLog()
    file_logs(hcm)[0].typed_config.Unpack(cfg)
    fields = dict(cfg.log_format.json_format)
    assert (
        fields["upstream_cluster"] == "%UPSTREAM_CLUSTER_RAW%"
        and fields["response_code"] == "%RESPONSE_CODE%"
    )
    assert len(fields) == 24


def test_workload_telemetry_beats_namespace_beats_root() -> None:
    docs = _docs(
        telemetry(
            "root", {"accessLogging": [{"providers": [{"name": "envoy"}]}]}, ns="istio-system"
        ),
        telemetry("ns", {"accessLogging": [{"providers": [{"name": "file"}]}]}),
        telemetry(
            "reviews",
            {
                "selector": {"matchLabels": {"app": "reviews"}},
                "accessLogging": [{"disabled": True}],
            },
        ),
    )
    other_ns = run(docs, ZIPKIN_MESH, proxy(ns="other"))
    assert log_paths(other_ns, OUTBOUND) == {("/dev/stdout",)}  # root: built-in "envoy"
    assert log_paths(run(docs, ZIPKIN_MESH), OUTBOUND) == {("/dev/stderr",)}  # namespace: "file"
    assert log_paths(run(docs, ZIPKIN_MESH, proxy("reviews")), OUTBOUND) == {
        ()
    }  # workload: disabled


def test_mode_client_or_server_picks_the_direction() -> None:
    docs = _docs(
        telemetry(
            "ns",
            {
                "accessLogging": [{"match": {"mode": "SERVER"}, "providers": [{"name": "envoy"}]}],
                "tracing": [{"match": {"mode": "CLIENT"}, "randomSamplingPercentage": 50}],
            },
        )
    )
    out = run(docs, ZIPKIN_MESH, proxy("reviews"))  # reviews serves HTTP on 9080: an inbound HCM
    assert log_paths(out, OUTBOUND) == {()} and log_paths(out, INBOUND) == {("/dev/stdout",)}
    assert sampling(out, OUTBOUND) == {50.0} and sampling(out, INBOUND) == {1.0}  # mesh default 1%


def test_disabled_at_namespace_is_reenabled_for_one_workload() -> None:
    docs = _docs(
        telemetry("ns", {"accessLogging": [{"disabled": True}]}),
        telemetry(
            "loud",
            {
                "selector": {"matchLabels": {"app": "reviews"}},
                "accessLogging": [{"disabled": False}],
            },
        ),
    )
    mesh = "accessLogFile: /tmp/mesh.log"
    assert log_paths(run(docs, mesh), OUTBOUND) == {()}
    assert log_paths(run(docs, mesh, proxy("reviews")), OUTBOUND) == {("/tmp/mesh.log",)}


def test_target_ref_only_telemetry_does_not_apply_to_sidecars() -> None:
    docs = _docs(
        telemetry(
            "waypoint",
            {
                "targetRefs": [{"kind": "Service", "group": "", "name": "reviews"}],
                "accessLogging": [{"providers": [{"name": "envoy"}]}],
            },
        )
    )
    assert log_paths(run(docs), OUTBOUND) == {()}


def test_mesh_sampling_default_and_telemetry_override() -> None:
    mesh = ZIPKIN_MESH + "defaultConfig: {tracing: {sampling: 7}}\n"
    assert sampling(run(_docs(), mesh), OUTBOUND) == {7.0}
    docs = _docs(telemetry("ns", {"tracing": [{"randomSamplingPercentage": 100}]}))
    assert sampling(run(docs, mesh), OUTBOUND) == {100.0}


def test_unknown_or_non_tracing_provider_means_no_tracing() -> None:
    docs = _docs(telemetry("ns", {"tracing": [{"providers": [{"name": "missing"}]}]}))
    assert sampling(run(docs, ZIPKIN_MESH), OUTBOUND) == {None}


def test_legacy_zipkin_address_follows_enable_tracing() -> None:
    mesh = "enableTracing: false\ndefaultConfig: {tracing: {zipkin: {address: zipkin.istio-system:9411}}}"
    assert sampling(run(_docs(), mesh), OUTBOUND) == {None}
    legacy = run(_docs(), mesh.replace("false", "true"))
    assert sampling(legacy, OUTBOUND) == {1.0}  # the short name resolves to the registry service
    assert "outbound|9411||zipkin.istio-system.svc.cluster.local" in {
        c.name for c in legacy[CLUSTER_TYPE]
    }


def test_collector_cluster_in_scope_is_reused_not_duplicated() -> None:
    out = run(_docs(), ZIPKIN_MESH)
    [zipkin] = [c for c in out[CLUSTER_TYPE] if "zipkin" in c.name]
    assert zipkin.type == cluster_pb2.Cluster.EDS  # the ordinary outbound cluster


def test_collector_outside_sidecar_scope_gets_a_dns_cluster() -> None:
    sidecar = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Sidecar",
        "metadata": {"name": "default"},
        "spec": {"egress": [{"hosts": ["./*"]}]},
    }
    out = run(_docs(sidecar), ZIPKIN_MESH)
    [zipkin] = [c for c in out[CLUSTER_TYPE] if "zipkin" in c.name]
    assert zipkin.type == cluster_pb2.Cluster.STRICT_DNS
    assert zipkin.name == "outbound|9411||zipkin.istio-system.svc.cluster.local"


def test_plain_ip_collector_gets_a_static_cluster_and_otel_grpc_gets_http2() -> None:
    mesh = """
extensionProviders:
- name: otel
  opentelemetry: {service: 192.0.2.1, port: 4317}
defaultProviders: {tracing: [otel]}
"""
    out = run(_docs(), mesh)
    [otel] = [c for c in out[CLUSTER_TYPE] if c.name == "outbound|4317||192.0.2.1"]
    assert otel.type == cluster_pb2.Cluster.STATIC
    assert (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        in otel.typed_extension_protocol_options
    )
    hcm = _hcms(out, OUTBOUND)[0]
    assert hcm.tracing.provider.name == "envoy.tracers.opentelemetry"


def test_selector_telemetry_gives_proxies_of_one_namespace_different_output() -> None:
    docs = _docs(
        telemetry(
            "quiet",
            {
                "selector": {"matchLabels": {"app": "reviews"}},
                "accessLogging": [{"disabled": True}],
            },
        )
    )
    ctx = push_context(snapshot_of(docs), mesh_config_from_yaml("accessLogFile: /dev/stdout"))
    loud, quiet = translate(ctx, proxy("productpage")), translate(ctx, proxy("reviews"))
    assert log_paths(loud, OUTBOUND) == {("/dev/stdout",)} and log_paths(quiet, OUTBOUND) == {()}
    assert log_paths(translate(ctx, proxy("productpage")), OUTBOUND) == {
        ("/dev/stdout",)
    }  # cache by labels


def test_listeners_of_other_results_are_not_mutated() -> None:
    ctx = push_context(snapshot_of(_docs()), mesh_config_from_yaml("accessLogFile: /dev/stdout"))
    first = translate(ctx, proxy())
    before = [m.SerializeToString(deterministic=True) for m in first[LISTENER_TYPE]]
    translate(ctx, proxy())
    assert [m.SerializeToString(deterministic=True) for m in first[LISTENER_TYPE]] == before


@pytest.mark.envoy
def test_envoy_accepts_every_variant() -> None:
    """Filters (CEL), formats (JSON, custom text) and tracers as Envoy 1.40 validates them."""
    mesh_variants = {
        "json": 'accessLogFile: /dev/stdout\naccessLogEncoding: JSON\naccessLogFormat: \'{"a": "%START_TIME%"}\'',
        "zipkin": ZIPKIN_MESH,
        "otel-http": "extensionProviders: [{name: o, opentelemetry: {service: otel.example.com, port: 4318, "
        "http: {path: /v1/traces}}}]\ndefaultProviders: {tracing: [o]}",
    }
    docs = _docs(
        telemetry(
            "ns",
            {
                "accessLogging": [
                    {
                        "providers": [{"name": "envoy"}],
                        "filter": {"expression": "response.code >= 500"},
                    }
                ],
                "tracing": [{"customTags": {"env": {"environment": {"name": "HOME"}}}}],
            },
        )
    )
    outputs = {name: run(docs, mesh) for name, mesh in mesh_variants.items()}
    outputs["reviews"] = run(docs, ZIPKIN_MESH, proxy("reviews"))
    assert validate_many(outputs) == {}


@pytest.mark.envoy
def test_envoy_accepts_the_telemetry_golden_cases() -> None:
    from tests.translate.support import CASES, run_case

    names = [n for n in CASES if n.startswith("telemetry_")]
    assert len(names) >= 10
    assert validate_many({n: run_case(n) for n in names}) == {}
