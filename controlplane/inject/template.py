"""The containers and volumes injection adds, as plain Kubernetes JSON (what the API server
and ``kubectl`` take). Istio's names where they are visible to users (``istio-init``,
``istio-proxy``, ports 15090/15021/15020, UID 1337, the ``istio-token`` projected token);
the commands are this project's (``controlplane capture``, ``controlplane agent``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from controlplane.inject.params import InjectorSettings, PodDecisions

INIT_NAME = "istio-init"
PROXY_NAME = "istio-proxy"
PROXY_UID = 1337
TOKEN_DIR = "/var/run/secrets/tokens"
CA_DIR = "/var/run/secrets/istio"
PODINFO_DIR = "/etc/istio/pod"
UNPRIVILEGED_PORTS = "net.ipv4.ip_unprivileged_port_start"


def _field(path: str) -> dict[str, Any]:
    return {"valueFrom": {"fieldRef": {"fieldPath": path}}}


def init_container(d: PodDecisions, settings: InjectorSettings) -> dict[str, Any]:
    """The init step installing the capture rules: root with NET_ADMIN/NET_RAW only, as Istio's."""
    env = [{"name": k, "value": v} for k, v in sorted((d.proxy_config.get("proxyMetadata") or {}).items())]
    container: dict[str, Any] = {
        "name": INIT_NAME,
        "image": settings.image,
        "args": ["controlplane", "capture", *d.capture.args()],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "readOnlyRootFilesystem": False,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "runAsUser": 0,
        },
    }
    if env:
        container["env"] = env
    return container


def _pod_ports(spec: Mapping[str, Any]) -> str:
    ports = [p for c in spec.get("containers") or () for p in c.get("ports") or ()]
    return json.dumps(ports, separators=(",", ":"))


def proxy_container(
    d: PodDecisions, settings: InjectorSettings, spec: Mapping[str, Any], annotations: Mapping[str, str]
) -> dict[str, Any]:
    """The agent beside Envoy, as UID/GID 1337 (the identity the capture lets through)."""
    app_containers = ",".join(str(c.get("name", "")) for c in spec.get("containers") or ())
    env: list[dict[str, Any]] = [
        {"name": "CA_ADDR", "value": settings.xds_address},
        {"name": "POD_NAME", **_field("metadata.name")},
        {"name": "POD_NAMESPACE", **_field("metadata.namespace")},
        {"name": "INSTANCE_IP", **_field("status.podIP")},
        {"name": "SERVICE_ACCOUNT", **_field("spec.serviceAccountName")},
        {"name": "HOST_IP", **_field("status.hostIP")},
        {"name": "PROXY_CONFIG", "value": json.dumps(dict(d.proxy_config), separators=(",", ":")) + "\n"},
        {"name": "ISTIO_META_POD_PORTS", "value": _pod_ports(spec)},
        {"name": "ISTIO_META_APP_CONTAINERS", "value": app_containers},
        {"name": "ISTIO_META_CLUSTER_ID", "value": settings.cluster_id},
        {"name": "ISTIO_META_INTERCEPTION_MODE", "value": d.interception_mode},
    ]
    if d.workload.name:
        env.append({"name": "ISTIO_META_WORKLOAD_NAME", "value": d.workload.name})
    if d.workload.owner:
        env.append({"name": "ISTIO_META_OWNER", "value": d.workload.owner})
    env.append({"name": "ISTIO_META_MESH_ID", "value": settings.trust_domain})
    env.append({"name": "TRUST_DOMAIN", "value": settings.trust_domain})
    if d.prometheus_annotations:
        env.append({"name": "ISTIO_PROMETHEUS_ANNOTATIONS",
                    "value": json.dumps(dict(d.prometheus_annotations), separators=(",", ":"))})
    env += [{"name": k, "value": v} for k, v in sorted((d.proxy_config.get("proxyMetadata") or {}).items())]
    container: dict[str, Any] = {
        "name": PROXY_NAME,
        "image": annotations.get("sidecar.istio.io/proxyImage", settings.image),
        "args": [
            "controlplane", "agent",
            "--pod", "$(POD_NAME)", "--namespace", "$(POD_NAMESPACE)", "--ip", "$(INSTANCE_IP)",
            "--service-account", "$(SERVICE_ACCOUNT)", "--xds-address", settings.xds_address,
            "--token-file", f"{TOKEN_DIR}/istio-token", "--root-cert", f"{CA_DIR}/root-cert.pem",
            "--labels-file", f"{PODINFO_DIR}/labels", "--interception", d.interception_mode,
            "--domain-suffix", settings.cluster_domain, "--kind", "router" if d.gateway else "sidecar",
            *_app_metrics_args(d.prometheus_annotations),
        ],
        "env": env,
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/healthz/ready", "port": 15021},
            "periodSeconds": 15, "timeoutSeconds": 3, "failureThreshold": 4,
        },
        "securityContext": _proxy_security(d.interception_mode),
        "volumeMounts": [
            {"mountPath": CA_DIR, "name": "istiod-ca-cert"},
            {"mountPath": "/var/lib/istio/data", "name": "istio-data"},
            {"mountPath": "/etc/istio/proxy", "name": "istio-envoy"},
            {"mountPath": TOKEN_DIR, "name": "istio-token"},
            {"mountPath": PODINFO_DIR, "name": "istio-podinfo"},
        ],
    }
    if d.native_sidecar:
        container["restartPolicy"] = "Always"
        container["startupProbe"] = {
            "httpGet": {"path": "/healthz/ready", "port": 15021},
            "periodSeconds": 1, "timeoutSeconds": 3, "failureThreshold": 600,
        }
    return container


def _app_metrics_args(app: Mapping[str, str]) -> list[str]:
    """The app's own scrape settings, for the agent to merge into 15020 (as Istio's
    ISTIO_PROMETHEUS_ANNOTATIONS)."""
    port = app.get("prometheus.io/port", "")
    if app.get("prometheus.io/scrape") != "true" or not port.isdigit():
        return []
    return ["--app-metrics-port", port, "--app-metrics-path", app.get("prometheus.io/path", "/metrics")]


def _proxy_security(mode: str) -> dict[str, Any]:
    """UID/GID 1337, no capabilities; TPROXY needs root and NET_ADMIN (as Istio's template)."""
    tproxy = mode == "TPROXY"
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]} if tproxy else {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsGroup": PROXY_UID,
        "runAsNonRoot": not tproxy,
        "runAsUser": 0 if tproxy else PROXY_UID,
    }


def gateway_pod_security(security: Mapping[str, Any]) -> dict[str, Any]:
    """A gateway's pod lets the proxy (not root) bind ports below 1024, as Istio's gateway
    template does; the pod's own sysctls stay."""
    sysctls = [s for s in security.get("sysctls") or () if s.get("name") != UNPRIVILEGED_PORTS]
    return {**security, "sysctls": [{"name": UNPRIVILEGED_PORTS, "value": "0"}, *sysctls]}


def volumes(settings: InjectorSettings) -> list[dict[str, Any]]:
    return [
        {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
        {"name": "istio-data", "emptyDir": {}},
        {"name": "istio-podinfo", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        ]}},
        {"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": settings.token_audience,
            "expirationSeconds": settings.token_ttl_seconds,
            "path": "istio-token",
        }}]}},
        {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}},
    ]
