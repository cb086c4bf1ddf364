"""The proxy node: Istio's node id and node metadata, read in one place.

The node id is ``<kind>~<ip>~<pod>.<namespace>~<namespace>.svc.<domainSuffix>`` (Istio's
``model.ParseServiceNodeWithMetadata``); the metadata carries NAMESPACE, SERVICE_ACCOUNT,
LABELS, INSTANCE_IPS, WORKLOAD_NAME, INTERCEPTION_MODE. Both are what the proxy *claims*.
The credential check (``auth.claim_from_node``) and translation (``translate.parse_node``)
both read the node through ``parse_node`` here, so the namespace a proxy is configured for is
exactly the namespace its credential was checked against.

Namespace rule. Istio takes metadata NAMESPACE, else the first label of the DNS domain. Here
every place the node names a namespace must agree, and one of them must name it:
- metadata NAMESPACE;
- the id's ``<pod>.<namespace>``: the namespace follows the *last* dot, as pod names may
  hold dots and namespaces (DNS labels) never do;
- the DNS domain, only in its ``<namespace>.svc.<suffix>`` form: the first label of another
  domain (``cluster.local``, ``example.com``) is not a namespace, and reading one from it
  would hand a proxy a namespace it never claimed.
A node whose names disagree is refused: no credential could prove both.

Service account: SERVICE_ACCOUNT, or "" when the node claims none; as in Istio, the
credential check then compares the namespace only (no ``default`` is assumed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.model.checks import check_dns1123_label, is_ip
from controlplane.model.hosts import DEFAULT_DOMAIN_SUFFIX

SIDECAR = "sidecar"
ROUTER = "router"
NODE_KINDS = (SIDECAR, ROUTER)

INTERCEPTION_REDIRECT = "REDIRECT"
INTERCEPTION_NONE = "NONE"

_SEPARATOR = "~"
_SVC = ".svc."


class NodeParseError(ValueError):
    """The node id or metadata does not describe a proxy we can configure."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What a node says about itself (a claim, until a credential proves it)."""

    id: str
    kind: str  # SIDECAR or ROUTER
    ip: str  # from the node id
    pod_name: str
    namespace: str  # the one namespace it is configured for and checked against
    dns_domain: str
    service_account: str = ""  # "" claims none
    labels: tuple[tuple[str, str], ...] = ()
    ips: tuple[str, ...] = ()  # INSTANCE_IPS, else the id's ip
    workload_name: str = ""
    interception_mode: str = INTERCEPTION_REDIRECT
    istio_version: str = ""  # ISTIO_VERSION: what EnvoyFilter ``match.proxy.proxyVersion`` reads


MAX_VERSION_CHARS = 64


def node_id(
    kind: str, ip: str, pod: str, namespace: str, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX
) -> str:
    """Istio's node id: ``sidecar~10.0.0.1~reviews-v1-abc.default~default.svc.cluster.local``."""
    if kind not in NODE_KINDS:
        raise ValueError(f"kind must be 'sidecar' or 'router', not {kind!r}")
    return _SEPARATOR.join((kind, ip, f"{pod}.{namespace}", f"{namespace}{_SVC}{domain_suffix}"))


def split_pod_name(name: str) -> tuple[str, str]:
    """``<pod>.<namespace>`` -> (pod, namespace), split at the last dot; no dot: (name, "")."""
    pod, dot, namespace = name.rpartition(".")
    return (pod, namespace) if dot else (name, "")


def proxy_name(node_id_text: str) -> str:
    """The ``<pod>.<namespace>`` part of an Istio node id (as istioctl names proxies); any
    other id whole."""
    parts = node_id_text.split(_SEPARATOR)
    return parts[2] if len(parts) == 4 and parts[2] else node_id_text


def _domain_namespace(dns_domain: str) -> str:
    namespace, svc, _ = dns_domain.partition(_SVC)
    return namespace if svc else ""


def _namespace(id_text: str, id_namespace: str, domain: str, metadata: Mapping[str, Any]) -> str:
    named = {
        "metadata NAMESPACE": str(metadata.get("NAMESPACE") or ""),
        "node id": id_namespace,
        "DNS domain": _domain_namespace(domain),
    }
    found = {value for value in named.values() if value}
    if not found:
        raise NodeParseError(f"node {id_text!r} names no namespace")
    if len(found) > 1:
        said = ", ".join(f"{where} {value!r}" for where, value in named.items() if value)
        raise NodeParseError(f"node {id_text!r} names different namespaces: {said}")
    namespace = found.pop()
    if message := check_dns1123_label(namespace):
        raise NodeParseError(f"node {id_text!r}: namespace {message}")
    return namespace


def _ips(id_text: str, id_ip: str, metadata: Mapping[str, Any]) -> tuple[str, ...]:
    """Istio's rule: INSTANCE_IPS when all are addresses, else the id's ip, else refuse."""
    listed = tuple(p.strip() for p in str(metadata.get("INSTANCE_IPS") or "").split(",") if p.strip())
    if listed and all(is_ip(ip) for ip in listed):
        return listed
    if is_ip(id_ip):
        return (id_ip,)
    raise NodeParseError(f"node {id_text!r}: no valid IP address in the node id or INSTANCE_IPS")


def parse_node(id_text: str, metadata: Mapping[str, Any] | None = None) -> NodeInfo:
    """The node id and its metadata (as a plain mapping) -> NodeInfo, or NodeParseError."""
    metadata = metadata or {}
    parts = id_text.split(_SEPARATOR)
    if len(parts) != 4:
        raise NodeParseError(
            f"node id {id_text!r}: want <kind>~<ip>~<pod>.<namespace>~<namespace>.svc.<domain>"
        )
    kind, ip, name, domain = parts
    if kind not in NODE_KINDS:
        raise NodeParseError(f"node id {id_text!r}: kind {kind!r} is not sidecar or router")
    pod, id_namespace = split_pod_name(name)
    namespace = _namespace(id_text, id_namespace, domain, metadata)
    raw_labels = metadata.get("LABELS") or {}
    if not isinstance(raw_labels, Mapping):
        raise NodeParseError(f"node {id_text!r}: metadata LABELS must be a map")
    return NodeInfo(
        id=id_text,
        kind=kind,
        ip=ip,
        pod_name=pod,
        namespace=namespace,
        dns_domain=domain,
        service_account=str(metadata.get("SERVICE_ACCOUNT") or ""),
        labels=tuple(sorted((str(k), str(v)) for k, v in raw_labels.items())),
        ips=_ips(id_text, ip, metadata),
        workload_name=str(metadata.get("WORKLOAD_NAME") or ""),
        interception_mode=str(metadata.get("INTERCEPTION_MODE") or INTERCEPTION_REDIRECT).upper(),
        istio_version=str(metadata.get("ISTIO_VERSION") or "")[:MAX_VERSION_CHARS],
    )
