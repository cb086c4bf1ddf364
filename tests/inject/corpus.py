"""Istio's injection cases (``../shared/conformance/istio/inject``) as decisions to compare.

From an injected document (Istio's ``.injected`` output or ours) we read only what carries an
injection decision, not the container template: whether each pod template was injected; the
labels and annotations injection sets; the capture (the ``istio-iptables`` flags of the init
step, read with the same parser for both); where the proxy sits (native sidecar or not) and as
which UID; the proxy env that carries decisions (interception mode, workload, owner, the
merged ProxyConfig)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controlplane.capture.spec import CaptureError, spec_from_args
from controlplane.inject import InjectorSettings
from controlplane.inject.documents import TEMPLATES

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "istio" / "inject"

LABELS = ("security.istio.io/tlsMode", "service.istio.io/canonical-name", "service.istio.io/canonical-revision")
ANNOTATIONS = (
    "istio.io/rev",
    "kubectl.kubernetes.io/default-container",
    "kubectl.kubernetes.io/default-logs-container",
    "prometheus.io/scrape",
    "prometheus.io/port",
    "prometheus.io/path",
)
ENV = ("ISTIO_META_INTERCEPTION_MODE", "ISTIO_META_WORKLOAD_NAME", "ISTIO_META_OWNER", "PROXY_CONFIG")


@dataclass(frozen=True)
class Case:
    source: str
    expected: str
    settings: InjectorSettings = field(default_factory=InjectorSettings)
    error: str = ""  # Istio refuses the input; the error must name this annotation
    xfail: str = ""  # a known, explained difference


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        obj = (obj or {}).get(key)
    return obj


def _env(container: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in container.get("env") or ():
        if item.get("name") in ENV and "value" in item:
            value = item["value"]
            out[item["name"]] = json.loads(value) if item["name"] == "PROXY_CONFIG" else value
    return out


def _proxy_kind(args: list[str]) -> str:
    """Istio's ``proxy router`` / ``proxy sidecar``; ours ``controlplane agent --kind router``."""
    if args[:1] == ["proxy"] and len(args) > 1:
        return args[1]
    return args[args.index("--kind") + 1] if "--kind" in args else "sidecar"


def _capture(args: list[str]) -> Any:
    if args[:2] == ["controlplane", "capture"]:
        args = args[2:]
    try:
        return spec_from_args(args)
    except CaptureError:
        return ("unparsed", args)  # e.g. a pod's own istio-init override


def template_decisions(metadata: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    injected = "sidecar.istio.io/status" in annotations
    out: dict[str, Any] = {"injected": injected}
    if not injected:
        return out
    out["labels"] = {k: labels.get(k) for k in LABELS}
    out["annotations"] = {k: annotations.get(k) for k in ANNOTATIONS}
    init = {c["name"]: c for c in spec.get("initContainers") or ()}
    containers = {c["name"]: c for c in spec.get("containers") or ()}
    capture = init.get("istio-init")
    out["capture"] = _capture(capture["args"]) if capture else None
    proxy = init.get("istio-proxy") or containers.get("istio-proxy")
    out["native_sidecar"] = "istio-proxy" in init
    security = (proxy or {}).get("securityContext") or {}
    out["proxy_user"] = (security.get("runAsUser"), security.get("runAsGroup"))
    out["proxy_env"] = _env(proxy or {})
    out["proxy_kind"] = _proxy_kind((proxy or {}).get("args") or [])
    return out


def decisions(documents: list[Any]) -> list[dict[str, Any]]:
    out = []
    for doc in documents:
        if not isinstance(doc, dict):
            continue
        if doc.get("kind") == "List":
            out += decisions(doc.get("items") or [])
            continue
        ref = TEMPLATES.get(str(doc.get("kind")))
        if ref is None:
            out.append({"kind": doc.get("kind")})
            continue
        out.append({"kind": doc["kind"], **template_decisions(
            _get(doc, ref.metadata_path) or {}, _get(doc, ref.spec_path) or {})})
    return out


def load(name: str) -> list[Any]:
    return [d for d in yaml.safe_load_all((CORPUS / name).read_text()) if d is not None]


def _settings(**kw: Any) -> InjectorSettings:
    return InjectorSettings(**kw)


_CNI = "Istio CNI mode (no init container, CNI annotations) is not implemented: capture is always an init step"
_TEMPLATES = ("injection templates other than sidecar and gateway (inject.istio.io/templates: grpc-agent, custom "
              "ones) are not implemented: the pod gets the sidecar")
_OPENSHIFT = "OpenShift UID ranges are not implemented"

# Istio's inject_test.go runs these with settings other than the defaults (values flags, mesh
# config); every other file pair runs with the defaults.
SPECIAL: tuple[Case, ...] = (
    Case("hello.yaml", "hello.yaml.cni.injected", xfail=_CNI),
    Case("hello.yaml", "hello.yaml.proxyImageName.injected"),
    Case("hello.yaml", "hello-tproxy.yaml.injected", _settings(mesh_proxy_config={"interceptionMode": "TPROXY"})),
    Case("hello.yaml", "hello-always.yaml.injected"),
    Case("hello.yaml", "hello-never.yaml.injected"),
    Case("format-duration.yaml", "format-duration.yaml.injected", _settings(mesh_proxy_config={"drainDuration": "23s"})),
    Case("traffic-params.yaml", "traffic-params.yaml.injected", _settings(
        include_ip_ranges="127.0.0.1/24,10.96.0.1/24", exclude_ip_ranges="10.96.0.2/24,10.96.0.3/24",
        exclude_inbound_ports="4,5,6", status_port=0)),
    Case("status_params.yaml", "status_params.yaml.injected", _settings(status_port=123)),
    Case("kubevirtInterfaces.yaml", "kubevirtInterfaces.yaml.injected", _settings(status_port=123)),
    Case("reroute-virtual-interfaces.yaml", "reroute-virtual-interfaces.yaml.injected", _settings(status_port=123)),
    Case("hello.yaml", "hello-image-secrets-in-values.yaml.injected"),
    Case("hello-image-pull-secret.yaml", "hello-multiple-image-secrets.yaml.injected"),
    Case("hello.yaml", "hello-template-in-values.yaml.injected"),
    Case("hello.yaml", "hello-mount-mtls-certs.yaml.injected"),
    Case("hello.yaml", "hello-cncf-networks.yaml.injected", xfail=_CNI),
    Case("hello-existing-cncf-networks.yaml", "hello-existing-cncf-networks.yaml.injected", xfail=_CNI),
    Case("hello-existing-cncf-networks-json.yaml", "hello-existing-cncf-networks-json.yaml.injected", xfail=_CNI),
    # holdApplicationUntilProxyStarts orders containers; the decisions compared are the same.
    Case("hello.yaml", "hello.proxyHoldsApplication.yaml.injected"),
    Case("hello-probes.yaml", "hello-probes.proxyHoldsApplication.yaml.injected"),
    Case("hello-probes-proxyHoldApplication-ProxyConfig.yaml", "hello-probes-proxyHoldApplication-ProxyConfig.yaml.injected"),
    Case("hello-probes-noProxyHoldApplication-ProxyConfig.yaml", "hello-probes-noProxyHoldApplication-ProxyConfig.yaml.injected"),
    Case("hello-service.yaml", "hello-service.yaml.injected"),
    Case("cronjob.yaml", "cronjob.yaml.injected"),
    Case("traffic-annotations-bad-includeipranges.yaml", "", error="traffic.sidecar.istio.io/includeOutboundIPRanges"),
    Case("traffic-annotations-bad-excludeipranges.yaml", "", error="traffic.sidecar.istio.io/excludeOutboundIPRanges"),
    Case("traffic-annotations-bad-includeinboundports.yaml", "", error="traffic.sidecar.istio.io/includeInboundPorts"),
    Case("traffic-annotations-bad-excludeinboundports.yaml", "", error="traffic.sidecar.istio.io/excludeInboundPorts"),
    Case("traffic-annotations-bad-excludeoutboundports.yaml", "", error="traffic.sidecar.istio.io/excludeOutboundPorts"),
    Case("traffic-annotations.yaml", "traffic-annotations.yaml.injected", _settings(
        mesh_proxy_config={"proxyMetadata": {"ISTIO_META_TLS_CLIENT_KEY": "/etc/identity/client/keys/client-key.pem"}})),
    Case("proxy-override-runas.yaml", "proxy-override-runas.yaml.cni.injected", xfail=_CNI),
    Case("proxy-override-runas.yaml", "proxy-override-runas.yaml.tproxy.injected",
         _settings(mesh_proxy_config={"interceptionMode": "TPROXY"})),
    Case("proxy-override-args.yaml", "proxy-override-args-native.yaml.injected"),
    Case("native-sidecar-opt-out.yaml", "native-sidecar-opt-out.yaml.injected"),
    Case("custom-template.yaml", "custom-template.yaml.injected", xfail=_TEMPLATES),
    Case("hello-openshift.yaml", "hello-openshift.yaml.injected", xfail=_OPENSHIFT),
    Case("hello-openshift-custom-injection.yaml", "hello-openshift-custom-injection.yaml.injected", xfail=_OPENSHIFT),
    Case("merge-probers.yaml", "merge-probers.yaml.injected"),
    Case("hello-tracing-disabled.yaml", "hello-tracing-disabled.yaml.injected", _settings(mesh_proxy_config={"tracing": {}})),
    Case("hello-probes-localhost.yaml", "hello-probes-localhost.yaml.injected"),
)

# Default-settings cases whose difference is known and explained.
KNOWN: dict[str, str] = {
    "grpc-agent.yaml": _TEMPLATES,
    "grpc-simple.yaml": _TEMPLATES,
    "hello-openshift-tproxy.yaml": _OPENSHIFT,
}


def all_cases() -> list[Case]:
    special_expected = {c.expected for c in SPECIAL if c.expected}
    special_inputs = {c.source for c in SPECIAL if c.error}
    cases = list(SPECIAL)
    for path in sorted(CORPUS.glob("*.yaml")):
        name = path.name
        if name.endswith(".iop.yaml") or name in special_inputs:
            continue
        expected = f"{name}.injected"
        if expected in special_expected or not (CORPUS / expected).exists():
            continue
        cases.append(Case(name, expected, xfail=KNOWN.get(name, "")))
    return cases
