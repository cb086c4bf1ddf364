"""Istio mesh config YAML -> MeshConfig: the loader, its errors, and `serve --mesh-config`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controlplane.cli import build_parser
from controlplane.cli.serve import settings_from
from controlplane.model.base import ValidationError
from controlplane.model.mesh import apply_mesh_config, mesh_config_from_yaml
from controlplane.sources.mesh_config import load_mesh_config
from controlplane.translate import MeshConfig

ISTIO_CONFIGMAP_MESH = """\
accessLogFile: /dev/stdout
accessLogEncoding: JSON
defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
  tracing:
    sampling: 25
    zipkin:
      address: zipkin.istio-system:9411
enablePrometheusMerge: true
rootNamespace: istio-config
outboundTrafficPolicy:
  mode: REGISTRY_ONLY
connectTimeout: 3s
extensionProviders:
- name: otel
  opentelemetry:
    service: opentelemetry-collector.observability.svc.cluster.local
    port: 4317
- name: oauth2-proxy
  envoyExtAuthzHttp:
    service: oauth2-proxy.oauth2-proxy.svc.cluster.local
    port: 4180
defaultProviders:
  tracing: [otel]
  metrics: [prometheus]
"""


def test_a_real_istio_mesh_config_loads_and_unknown_fields_are_ignored() -> None:
    mesh = mesh_config_from_yaml(ISTIO_CONFIGMAP_MESH)
    t = mesh.telemetry
    assert (t.access_log_file, t.access_log_encoding) == ("/dev/stdout", "JSON")
    assert t.tracing_sampling == 25.0 and t.legacy_zipkin_address == "zipkin.istio-system:9411"
    assert t.default_providers.tracing == ("otel",)
    assert t.provider("otel").opentelemetry.port == 4317
    assert t.provider("oauth2-proxy").kind == "envoy_ext_authz_http"  # AuthorizationPolicy CUSTOM's, not telemetry's
    assert mesh.root_namespace == "istio-config" and mesh.outbound_traffic_policy == "REGISTRY_ONLY"
    assert mesh.connect_timeout_seconds == 3.0
    assert mesh.trust_domain == "cluster.local"  # from Settings, never from the file


def test_the_istio_configmap_form_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "istio.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "istio", "namespace": "istio-system"},
                "data": {"mesh": ISTIO_CONFIGMAP_MESH},
            }
        )
    )
    assert (
        apply_mesh_config(MeshConfig(), load_mesh_config(path)).telemetry.access_log_file
        == "/dev/stdout"
    )


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [
        ({"accessLogEncoding": "XML"}, "accessLogEncoding", "Unsupported value"),
        (
            {"accessLogEncoding": "JSON", "accessLogFormat": "[%START_TIME%]"},
            "accessLogFormat",
            "JSON",
        ),
        (
            {"extensionProviders": [{"name": "z", "zipkin": {"service": "zipkin", "port": 0}}]},
            "extensionProviders[0].zipkin.port",
            "1-65535",
        ),
        (
            {"extensionProviders": [{"name": "z", "zipkin": {"port": 9411}}]},
            "extensionProviders[0].zipkin.service",
            "Required",
        ),
        (
            {
                "extensionProviders": [
                    {"name": "a", "prometheus": {}},
                    {"name": "a", "prometheus": {}},
                ]
            },
            "extensionProviders[1].name",
            "duplicate",
        ),
        (
            {
                "extensionProviders": [
                    {
                        "name": "f",
                        "envoyFileAccessLog": {"logFormat": {"text": "x", "labels": {"a": "b"}}},
                    }
                ]
            },
            "extensionProviders[0].envoyFileAccessLog.logFormat",
            "only one",
        ),
        (
            {"defaultProviders": {"accessLogging": ["envoy", "nope"]}},
            "defaultProviders.accessLogging[1]",
            "unknown",
        ),
        (
            {"defaultConfig": {"tracing": {"sampling": 101}}},
            "defaultConfig.tracing.sampling",
            "range",
        ),
        (
            {"defaultConfig": {"tracing": {"zipkin": {"address": "no-port"}}}},
            "defaultConfig.tracing.zipkin.address",
            "host:port",
        ),
        ({"enableTracing": "yes"}, "enableTracing", "boolean"),
    ],
)
def test_errors_name_the_field(document: dict, path: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        mesh_config_from_yaml(yaml.safe_dump(document))
    assert [e.path for e in info.value.errors] == [path]
    assert message in info.value.errors[0].message


def test_configmap_errors_are_prefixed_with_data_mesh(tmp_path: Path) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text(
        yaml.safe_dump({"kind": "ConfigMap", "data": {"mesh": "accessLogEncoding: XML\n"}})
    )
    with pytest.raises(ValidationError) as info:
        load_mesh_config(path)
    assert info.value.errors[0].path == "data.mesh.accessLogEncoding"
    assert str(path) in str(info.value)


def test_serve_mesh_config_flag_reaches_the_runtime_mesh_config(tmp_path: Path) -> None:
    from controlplane.server.runtime import mesh_config

    path = tmp_path / "mesh.yaml"
    path.write_text("accessLogFile: /tmp/access.log\n")
    args = build_parser().parse_args(
        ["serve", "--config-dir", str(tmp_path), "--mesh-config", str(path)]
    )
    settings = settings_from(args)
    assert settings.mesh_config_file == path
    assert mesh_config(settings).telemetry.access_log_file == "/tmp/access.log"
    assert (
        mesh_config(
            settings_from(build_parser().parse_args(["serve", "--config-dir", "x"]))
        ).telemetry.access_log_file
        == ""
    )


def test_serve_refuses_a_bad_mesh_config_before_serving(tmp_path: Path) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text("accessLogEncoding: XML\n")
    args = build_parser().parse_args(
        ["serve", "--config-dir", str(tmp_path), "--mesh-config", str(path)]
    )
    with pytest.raises(SystemExit) as info:
        args.func(args)
    assert "accessLogEncoding" in str(info.value) and str(path) in str(info.value)


def test_path_normalization_follows_the_mesh_config() -> None:
    """Istio normalizes request paths (pathNormalization BASE by default), so routes and RBAC see
    `/admin` for `/./admin`; NONE turns it off, MERGE_SLASHES adds merging."""
    from envoy.extensions.filters.network.http_connection_manager.v3 import (
        http_connection_manager_pb2 as hcm_pb2,
    )

    from controlplane.translate.filters.network import http_connection_manager

    def hcm(mode: str) -> hcm_pb2.HttpConnectionManager:
        out = hcm_pb2.HttpConnectionManager()
        http_connection_manager("x", [], rds_name="80", path_normalization=mode).typed_config.Unpack(out)
        return out

    assert mesh_config_from_yaml("{}").path_normalization == "BASE"
    assert mesh_config_from_yaml("pathNormalization: {normalization: DEFAULT}").path_normalization == "BASE"
    assert mesh_config_from_yaml("pathNormalization: {normalization: NONE}").path_normalization == "NONE"
    assert hcm("BASE").normalize_path.value and not hcm("BASE").merge_slashes
    assert not hcm("NONE").normalize_path.value
    assert hcm("MERGE_SLASHES").merge_slashes
    assert hcm("DECODE_AND_MERGE_SLASHES").path_with_escaped_slashes_action == (
        hcm_pb2.HttpConnectionManager.UNESCAPE_AND_FORWARD)
