"""The injection decisions for one pod: pure functions from the pod's metadata and spec (plus
the injector's settings) to what its sidecar and capture must do. Bad annotations give an
``InjectionError`` naming the annotation, and nothing is injected."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from controlplane.capture.spec import (
    INTERCEPTION_MODES,
    PROXY_UID,
    CaptureError,
    CaptureSpec,
    parse_ports,
    parse_ranges,
)
from controlplane.inject import keys as a
from controlplane.inject.workload import WorkloadMeta
from controlplane.model.canonical import canonical_name, canonical_revision

MAX_PROXY_CONFIG_BYTES = 64 * 1024
AGENT_STATUS_PORT = 15020  # the agent's merged stats, whatever port readiness uses


class InjectionError(ValueError):
    """A pod that cannot be injected as asked: names the object and the field path."""


@dataclass(frozen=True)
class InjectorSettings:
    """The injector's defaults, as Istio's ``values.global.proxy.*`` and mesh config."""

    revision: str = "default"
    policy: str = "enabled"  # enabled: inject unless the pod opts out; disabled: only opt-ins
    image: str = "controlplane/proxy:latest"  # a controlplane install with Envoy beside it
    xds_address: str = "istiod.istio-system.svc:15012"
    trust_domain: str = "cluster.local"
    cluster_domain: str = "cluster.local"
    cluster_id: str = "Kubernetes"
    interception_mode: str = "REDIRECT"
    include_ip_ranges: str = "*"
    exclude_ip_ranges: str = ""
    include_inbound_ports: str = "*"
    exclude_inbound_ports: str = ""
    include_outbound_ports: str = ""
    exclude_outbound_ports: str = ""
    status_port: int = 15020  # the agent's merged stats; 15021 is Envoy's readiness
    native_sidecars: bool = True  # the proxy as a restartable init container (Kubernetes 1.29+)
    enable_prometheus_merge: bool = True
    token_audience: str = "istio-ca"
    token_ttl_seconds: int = 43200  # the projected ServiceAccount token, as Istio's template
    mesh_proxy_config: Mapping[str, Any] = field(default_factory=dict)  # meshConfig.defaultConfig


@dataclass(frozen=True)
class PodDecisions:
    capture: CaptureSpec
    interception_mode: str
    proxy_config: Mapping[str, Any]  # PROXY_CONFIG: mesh defaults with the pod's annotation
    native_sidecar: bool
    workload: WorkloadMeta
    labels: Mapping[str, str]  # labels to set
    annotations: Mapping[str, str]  # annotations to set
    prometheus_annotations: Mapping[str, str]  # the app's own scrape settings, for the agent
    # Istio's ``gateway`` template: the pod is a gateway (Envoy as a router), nothing captured.
    gateway: bool = False


def _annotation(annotations: Mapping[str, str], key: str, default: str) -> str:
    value = annotations.get(key)
    return default if value is None else str(value)


def parse_proxy_config(text: str, where: str) -> dict[str, Any]:
    """``proxy.istio.io/config``: a ProxyConfig as YAML or JSON (a mapping)."""
    if len(text) > MAX_PROXY_CONFIG_BYTES:
        raise InjectionError(f"{where}: larger than {MAX_PROXY_CONFIG_BYTES} bytes")
    try:
        value = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as error:
        raise InjectionError(f"{where}: not YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(value, dict):
        raise InjectionError(f"{where}: must be a ProxyConfig mapping, not {type(value).__name__}")
    metadata = value.get("proxyMetadata")
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise InjectionError(f"{where}.proxyMetadata: must map names to strings")
    mode = value.get("interceptionMode")
    if mode is not None and mode not in INTERCEPTION_MODES:
        raise InjectionError(f"{where}.interceptionMode: {mode!r} is not one of {', '.join(INTERCEPTION_MODES)}")
    return value


def merge_proxy_config(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """As a protobuf merge: scalars replaced, maps (proxyMetadata) merged key by key."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _exclude_inbound(status_port: str, excluded: str) -> str:
    """Istio's excludeInboundPort: the status port joins the excluded inbound ports."""
    status_port = status_port.strip()
    ports = [p.strip() for p in excluded.split(",") if p.strip()]
    if status_port and status_port != "0" and status_port not in ports:
        ports.append(status_port)
    return ",".join(ports)


def proxy_uid(spec: Mapping[str, Any]) -> str:
    """The proxy's UID the capture lets through: 1337, or what the pod's own istio-proxy says."""
    for container in (*(spec.get("initContainers") or ()), *(spec.get("containers") or ())):
        if container.get("name") == "istio-proxy":
            uid = (container.get("securityContext") or {}).get("runAsUser")
            if uid is not None:
                return str(uid)
    return PROXY_UID


def capture_spec(
    annotations: Mapping[str, str], settings: InjectorSettings, mode: str, where: str, uid: str = PROXY_UID
) -> CaptureSpec:
    """The init step's capture, from the pod's ``traffic.sidecar.istio.io/*`` annotations over the
    injector's defaults (Istio's template: 15090 and 15021 never captured inbound, nor the status
    port)."""

    def field_of(key: str, default: str) -> tuple[str, str]:
        return _annotation(annotations, key, default), f"{where}.annotations[{key}]"

    try:
        include_ranges, path = field_of(a.INCLUDE_OUTBOUND_IP_RANGES, settings.include_ip_ranges)
        include_ranges_v = parse_ranges(include_ranges, path)
        exclude_ranges, path = field_of(a.EXCLUDE_OUTBOUND_IP_RANGES, settings.exclude_ip_ranges)
        exclude_ranges_v = parse_ranges(exclude_ranges, path)
        if exclude_ranges_v == ("*",):
            raise CaptureError(f"{path}: '*' is not an IP range (CIDR)")
        include_in, path = field_of(a.INCLUDE_INBOUND_PORTS, settings.include_inbound_ports)
        include_in_v = parse_ports(include_in, path, wildcard=True)
        exclude_in, path = field_of(a.EXCLUDE_INBOUND_PORTS, settings.exclude_inbound_ports)
        parse_ports(exclude_in, path)
        status, path = field_of(a.STATUS_PORT, str(settings.status_port))
        parse_ports(status if status != "0" else "", path)
        exclude_in_v = parse_ports(f"15090,15021,{_exclude_inbound(status, exclude_in)}", path)
        include_out, path = field_of(a.INCLUDE_OUTBOUND_PORTS, settings.include_outbound_ports)
        include_out_v = parse_ports(include_out, path)
        exclude_out, path = field_of(a.EXCLUDE_OUTBOUND_PORTS, settings.exclude_outbound_ports)
        exclude_out_v = parse_ports(exclude_out, path)
    except CaptureError as error:
        raise InjectionError(str(error)) from None
    interfaces = annotations.get(a.REROUTE_VIRTUAL_INTERFACES) or annotations.get(a.KUBEVIRT_INTERFACES) or ""
    return CaptureSpec(
        proxy_uid=uid,
        mode=mode,
        include_outbound_ranges=include_ranges_v,
        exclude_outbound_ranges=exclude_ranges_v,
        include_inbound_ports=include_in_v,
        exclude_inbound_ports=exclude_in_v,
        include_outbound_ports=include_out_v,
        exclude_outbound_ports=exclude_out_v,
        kube_virt_interfaces=tuple(i.strip() for i in interfaces.split(",") if i.strip()),
    )


def _prometheus(annotations: Mapping[str, str], settings: InjectorSettings) -> tuple[dict[str, str], dict[str, str]]:
    """Istio's prometheus merge: scrape the agent's 15020, which serves Envoy's stats merged with
    the app's own (whose scrape settings the agent is told). An app that says
    ``prometheus.io/scrape: "false"`` keeps it."""
    if not settings.enable_prometheus_merge or annotations.get(a.PROMETHEUS_MERGE, "") == "false":
        return {}, {}
    if "false" in (annotations.get(a.PROMETHEUS_SCRAPE), annotations.get(a.PROMETHEUS_SCRAPE_DOTTED)):
        return {}, {}
    app = {k: annotations[k] for k in (a.PROMETHEUS_SCRAPE, a.PROMETHEUS_PORT, a.PROMETHEUS_PATH) if k in annotations}
    if app.get(a.PROMETHEUS_PORT) == str(AGENT_STATUS_PORT):
        app = {}  # what an earlier injection wrote, not the app's own
    written = {
        a.PROMETHEUS_SCRAPE: "true",
        a.PROMETHEUS_PORT: str(AGENT_STATUS_PORT),
        a.PROMETHEUS_PATH: "/stats/prometheus",
    }
    return written, app


def decide(
    metadata: Mapping[str, Any],
    spec: Mapping[str, Any],
    workload: WorkloadMeta,
    settings: InjectorSettings,
    where: str = "metadata",
) -> PodDecisions:
    """Everything injection decides for one pod template. ``where`` prefixes field paths."""
    annotations = {str(k): str(v) for k, v in (metadata.get("annotations") or {}).items()}
    labels = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
    proxy_config = dict(settings.mesh_proxy_config)
    if a.PROXY_CONFIG in annotations:
        override = parse_proxy_config(annotations[a.PROXY_CONFIG], f"{where}.annotations[{a.PROXY_CONFIG}]")
        proxy_config = merge_proxy_config(proxy_config, override)
    mode = annotations.get(a.INTERCEPTION_MODE) or proxy_config.get("interceptionMode") or settings.interception_mode
    if mode not in INTERCEPTION_MODES:
        raise InjectionError(
            f"{where}.annotations[{a.INTERCEPTION_MODE}]: {mode!r} is not one of {', '.join(INTERCEPTION_MODES)}"
        )
    gateway = _gateway_template(annotations, where)
    capture = capture_spec(annotations, settings, mode, where, proxy_uid(spec))
    native = settings.native_sidecars
    if a.NATIVE_SIDECAR in annotations:
        native = annotations[a.NATIVE_SIDECAR].lower() == "true"
    native = native and not gateway  # a gateway's proxy is its main container
    containers = [str(c.get("name", "")) for c in spec.get("containers") or ()]
    new_annotations: dict[str, str] = {a.REVISION: settings.revision}
    if containers and containers[0] != "istio-proxy" and a.DEFAULT_CONTAINER not in annotations:
        new_annotations[a.DEFAULT_CONTAINER] = containers[0]
    if containers and containers[0] != "istio-proxy" and a.DEFAULT_LOGS_CONTAINER not in annotations:
        new_annotations[a.DEFAULT_LOGS_CONTAINER] = containers[0]
    scrape, app_scrape = _prometheus(annotations, settings)
    new_annotations.update(scrape)
    new_labels = {
        **({} if gateway else {a.TLS_MODE: "istio"}),  # a gateway is not reached by mesh mTLS
        a.CANONICAL_NAME: canonical_name(labels, workload.name),
        a.CANONICAL_REVISION: canonical_revision(labels),
    }
    return PodDecisions(
        capture=capture,
        interception_mode=mode,
        proxy_config=proxy_config,
        native_sidecar=native,
        workload=workload,
        labels=new_labels,
        annotations=new_annotations,
        prometheus_annotations=app_scrape,
        gateway=gateway,
    )


def _gateway_template(annotations: Mapping[str, str], where: str) -> bool:
    """``inject.istio.io/templates``: Istio's ``gateway`` template, else the sidecar one (the
    others Istio ships, grpc-agent and spire, and custom ones are not implemented: such a pod
    gets the sidecar, as before)."""
    names = {n.strip() for n in annotations.get(a.TEMPLATES, "").split(",") if n.strip()}
    if {"gateway", "sidecar"} <= names:
        raise InjectionError(f"{where}.annotations[{a.TEMPLATES}]: sidecar and gateway cannot be combined")
    return "gateway" in names


def status_annotation(init_containers: list[str], containers: list[str], volumes: list[str], revision: str) -> str:
    """``sidecar.istio.io/status``: what injection added, so it is never added twice."""
    return json.dumps(
        {
            "initContainers": init_containers or None,
            "containers": containers or None,
            "volumes": volumes or None,
            "imagePullSecrets": None,
            "revision": revision,
        },
        separators=(",", ":"),
    )
