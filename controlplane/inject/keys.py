"""The pod annotations and labels sidecar injection reads and writes (Istio's names)."""

from __future__ import annotations

# Which pods.
INJECT = "sidecar.istio.io/inject"  # pod label (preferred) or annotation
NAMESPACE_INJECTION = "istio-injection"  # namespace label: enabled | disabled
REVISION = "istio.io/rev"  # namespace or pod label; also written on the pod as an annotation
STATUS = "sidecar.istio.io/status"  # written on injection; present = already injected

# What the capture does.
INTERCEPTION_MODE = "sidecar.istio.io/interceptionMode"
INCLUDE_OUTBOUND_IP_RANGES = "traffic.sidecar.istio.io/includeOutboundIPRanges"
EXCLUDE_OUTBOUND_IP_RANGES = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
INCLUDE_INBOUND_PORTS = "traffic.sidecar.istio.io/includeInboundPorts"
EXCLUDE_INBOUND_PORTS = "traffic.sidecar.istio.io/excludeInboundPorts"
INCLUDE_OUTBOUND_PORTS = "traffic.sidecar.istio.io/includeOutboundPorts"
EXCLUDE_OUTBOUND_PORTS = "traffic.sidecar.istio.io/excludeOutboundPorts"
KUBEVIRT_INTERFACES = "traffic.sidecar.istio.io/kubevirtInterfaces"
REROUTE_VIRTUAL_INTERFACES = "istio.io/reroute-virtual-interfaces"
STATUS_PORT = "status.sidecar.istio.io/port"

# The proxy.
TEMPLATES = "inject.istio.io/templates"  # sidecar (the default) or gateway
PROXY_CONFIG = "proxy.istio.io/config"
NATIVE_SIDECAR = "sidecar.istio.io/nativeSidecar"
PROXY_IMAGE = "sidecar.istio.io/proxyImage"

# Written on the pod.
TLS_MODE = "security.istio.io/tlsMode"
CANONICAL_NAME = "service.istio.io/canonical-name"
CANONICAL_REVISION = "service.istio.io/canonical-revision"
DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"
DEFAULT_LOGS_CONTAINER = "kubectl.kubernetes.io/default-logs-container"
PROMETHEUS_SCRAPE = "prometheus.io/scrape"
PROMETHEUS_SCRAPE_DOTTED = "prometheus.io.scrape"  # a spelling Istio honours too
PROMETHEUS_PORT = "prometheus.io/port"
PROMETHEUS_PATH = "prometheus.io/path"
PROMETHEUS_MERGE = "prometheus.istio.io/merge-metrics"

TRUE_VALUES = ("y", "yes", "true", "on")  # YAML 1.1 booleans, as Istio reads the inject label
