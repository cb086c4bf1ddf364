"""``controlplane proxy-config clusters|listeners|routes|endpoints|secrets|authz PROXY``.

What one proxy is configured with, as compact tables like ``istioctl proxy-config``, or in
full with ``-o json|yaml``; ``authz`` lists the policies it enforces per inbound port (see
``proxy_authz``). By default it shows the control plane's view (what we send that
proxy: /debug/config_dump?proxyID= on the monitoring port); with ``--envoy-admin URL`` it
reads a live Envoy's own /config_dump instead, in the same shape, so the two can be
compared. Secrets show name, serial, SPIFFE ID and validity, never keys (both sources
redact them; this command never prints key fields either way).
"""

from __future__ import annotations

import argparse
import base64
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from controlplane.cli.monitoring_client import (
    FetchError,
    add_monitoring_address,
    base_url,
    dump,
    fail,
    fetch_json,
    table,
)

_ADMIN = "type.googleapis.com/envoy.admin.v3."
KINDS = ("clusters", "listeners", "routes", "endpoints", "secrets", "authz")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "proxy-config",
        help="a proxy's clusters, listeners, routes, endpoints, secrets or authorization policies",
    )
    p.add_argument("kind", choices=KINDS)
    p.add_argument(
        "proxy", nargs="?", help="node id, pod.namespace or pod (not needed with --envoy-admin)"
    )
    add_monitoring_address(p)
    p.add_argument(
        "--envoy-admin",
        metavar="URL",
        help="read a live Envoy's admin /config_dump instead of the control plane's view",
    )
    p.add_argument("-o", "--output", choices=("short", "json", "yaml"), default="short")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config_dump = load_config_dump(args.proxy, args.monitoring_address, args.envoy_admin)
    except FetchError as error:
        return fail(str(error))
    if args.kind == "authz":
        from controlplane.cli.proxy_authz import proxy_authz, render

        authz = proxy_authz(config_dump)
        print(render(authz) if args.output == "short" else dump(authz.to_json(), args.output), end="")
        return 0
    resources = list(EXTRACTORS[args.kind](config_dump))
    if args.output != "short":
        print(dump([_public(r) for r in resources], args.output), end="")
    else:
        print(RENDERERS[args.kind](resources), end="")
    return 0


def load_config_dump(
    proxy: str | None, monitoring_address: str, envoy_admin: str | None
) -> dict[str, Any]:
    if envoy_admin:
        return fetch_json(base_url(envoy_admin) + "/config_dump?include_eds")
    if not proxy:
        raise FetchError(
            "name a PROXY (see `controlplane proxy-status`), or give --envoy-admin URL"
        )
    query = urllib.parse.urlencode({"proxyID": proxy})
    return fetch_json(f"{base_url(monitoring_address)}/debug/config_dump?{query}")


# --- reading a config dump (Envoy's shape; ours is the same) --------------------------------


def _sections(config_dump: dict[str, Any], type_name: str) -> Iterator[dict[str, Any]]:
    for section in config_dump.get("configs", []):
        if section.get("@type") == _ADMIN + type_name:
            yield section


def clusters(config_dump: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for section in _sections(config_dump, "ClustersConfigDump"):
        for entry in section.get("static_clusters", []) + section.get(
            "dynamic_active_clusters", []
        ):
            yield entry["cluster"]


def listeners(config_dump: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for section in _sections(config_dump, "ListenersConfigDump"):
        for entry in section.get("static_listeners", []):
            yield entry["listener"]
        for entry in section.get("dynamic_listeners", []):
            state = entry.get("active_state") or entry.get("warming_state") or {}
            if "listener" in state:
                yield state["listener"]


def routes(config_dump: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for section in _sections(config_dump, "RoutesConfigDump"):
        for entry in section.get("static_route_configs", []) + section.get(
            "dynamic_route_configs", []
        ):
            yield entry["route_config"]


def endpoints(config_dump: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for section in _sections(config_dump, "EndpointsConfigDump"):
        for entry in section.get("static_endpoint_configs", []) + section.get(
            "dynamic_endpoint_configs", []
        ):
            yield entry["endpoint_config"]


def secrets(config_dump: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for section in _sections(config_dump, "SecretsConfigDump"):
        for status, key in (
            ("ACTIVE", "static_secrets"),
            ("ACTIVE", "dynamic_active_secrets"),
            ("WARMING", "dynamic_warming_secrets"),
        ):
            for entry in section.get(key, []):
                if "secret" in entry:
                    yield dict(entry["secret"], _status=status)


EXTRACTORS: dict[str, Callable[[dict[str, Any]], Iterator[dict[str, Any]]]] = {
    "clusters": clusters,
    "listeners": listeners,
    "routes": routes,
    "endpoints": endpoints,
    "secrets": secrets,
}


def _public(resource: dict[str, Any]) -> dict[str, Any]:
    """For -o json/yaml: drop our bookkeeping and any key field, whatever the source says."""
    out = {k: v for k, v in resource.items() if not k.startswith("_")}
    tls = out.get("tls_certificate")
    if isinstance(tls, dict):
        out["tls_certificate"] = {
            k: v for k, v in tls.items() if k not in ("private_key", "password")
        }
    return out


# --- tables -----------------------------------------------------------------------------------


def _istio_config(resource: dict[str, Any]) -> str:
    """Istio's ``metadata.filter_metadata.istio.config`` ("/apis/.../destination-rule/x") as
    ``x.namespace``, or "-"."""
    path = (
        ((resource.get("metadata") or {}).get("filter_metadata") or {})
        .get("istio", {})
        .get("config", "")
    )
    parts = path.strip("/").split("/")
    if len(parts) >= 7 and parts[3] == "namespaces":
        return f"{parts[6]}.{parts[4]}"
    return path or "-"


def render_clusters(items: list[dict[str, Any]]) -> str:
    rows = []
    for c in items:
        name = c.get("name", "")
        parts = name.split("|")
        if len(parts) == 4:
            direction, port, subset, fqdn = parts
        else:
            direction, port, subset, fqdn = "-", "-", "-", name
        # STATIC is the enum's zero value: JSON leaves it out.
        kind = c.get("type") or (c.get("cluster_type") or {}).get("name") or "STATIC"
        rows.append([fqdn, port or "-", subset or "-", direction, kind, _istio_config(c)])
    return table(["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"], rows)


def _address(listener: dict[str, Any]) -> tuple[str, str]:
    socket = (listener.get("address") or {}).get("socket_address") or {}
    return socket.get("address", "-"), str(socket.get("port_value", "-"))


def _chain_match(chain: dict[str, Any]) -> str:
    match = chain.get("filter_chain_match") or {}
    parts = []
    if "destination_port" in match:
        parts.append(f"port {match['destination_port']}")
    for field, label in (
        ("server_names", "SNI"),
        ("application_protocols", "ALPN"),
        ("prefix_ranges", "Addr"),
        ("source_prefix_ranges", "Source"),
    ):
        values = match.get(field)
        if values:
            shown = [
                v if isinstance(v, str) else f"{v.get('address_prefix')}/{v.get('prefix_len', 32)}"
                for v in values
            ]
            parts.append(f"{label}: {','.join(shown)}")
    if match.get("transport_protocol"):
        parts.append(f"Trans: {match['transport_protocol']}")
    return "; ".join(parts) or "ALL"


def _chain_destination(chain: dict[str, Any]) -> str:
    for network_filter in chain.get("filters", []):
        config = network_filter.get("typed_config") or {}
        if "rds" in config:
            return f"Route: {config['rds'].get('route_config_name')}"
        if "route_config" in config:
            return f"Inline Route: {config['route_config'].get('name') or '-'}"
        if "cluster" in config:
            return f"Cluster: {config['cluster']}"
        if "weighted_clusters" in config:
            return "Clusters: " + ",".join(
                w.get("name", "") for w in config["weighted_clusters"].get("clusters", [])
            )
    return "-"


def render_listeners(items: list[dict[str, Any]]) -> str:
    rows = []
    for listener in items:
        address, port = _address(listener)
        chains = list(listener.get("filter_chains", []))
        if "default_filter_chain" in listener:
            chains.append(
                dict(listener["default_filter_chain"], filter_chain_match={"default": True})
            )
        if not chains:
            rows.append([listener.get("name"), address, port, "-", "-"])
        for chain in chains:
            match = (
                "default chain"
                if chain.get("filter_chain_match") == {"default": True}
                else _chain_match(chain)
            )
            rows.append([listener.get("name"), address, port, match, _chain_destination(chain)])
    return table(["NAME", "ADDRESSES", "PORT", "MATCH", "DESTINATION"], rows)


def _route_match(route: dict[str, Any]) -> str:
    match = route.get("match") or {}
    for field in ("prefix", "path", "path_separated_prefix"):
        if field in match:
            text = match[field] + ("*" if field != "path" else "")
            break
    else:
        regex = (match.get("safe_regex") or {}).get("regex")
        text = f"~{regex}" if regex else "-"
    if match.get("headers"):
        text += " + headers"
    return text


def render_routes(items: list[dict[str, Any]]) -> str:
    rows = []
    for config in items:
        for vhost in config.get("virtual_hosts", []):
            domains = vhost.get("domains", [])
            shown = (
                domains[0] + (f" +{len(domains) - 1} more" if len(domains) > 1 else "")
                if domains
                else "-"
            )
            vhost_routes = vhost.get("routes", []) or [{}]
            for route in vhost_routes:
                rows.append(
                    [
                        config.get("name", "-"),
                        vhost.get("name", "-"),
                        shown,
                        _route_match(route) if route else "-",
                        _istio_config(route),
                    ]
                )
    return table(["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"], rows)


def render_endpoints(items: list[dict[str, Any]]) -> str:
    rows = []
    for assignment in items:
        cluster = assignment.get("cluster_name", "-")
        for locality in assignment.get("endpoints", []):
            for lb in locality.get("lb_endpoints", []):
                socket = ((lb.get("endpoint") or {}).get("address") or {}).get(
                    "socket_address"
                ) or {}
                address = f"{socket.get('address', '?')}:{socket.get('port_value', '?')}"
                health = lb.get("health_status", "HEALTHY")
                rows.append([address, "HEALTHY" if health == "UNKNOWN" else health, cluster])
    return table(["ENDPOINT", "STATUS", "CLUSTER"], rows)


def _certificates(data_source: dict[str, Any] | None) -> list[Any]:
    from cryptography import x509

    if not data_source:
        return []
    if "inline_bytes" in data_source:
        pem = base64.b64decode(data_source["inline_bytes"])
    elif "inline_string" in data_source:
        pem = data_source["inline_string"].encode()
    else:
        return []
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        return []


def _spiffe_ids(cert: Any) -> str:
    from cryptography import x509

    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "-"
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    return ",".join(uris) or "-"


def render_secrets(items: list[dict[str, Any]], now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    rows = []
    for secret in items:
        if "tls_certificate" in secret:
            kind, certs = (
                "Cert Chain",
                _certificates(secret["tls_certificate"].get("certificate_chain")),
            )
            certs = certs[:1]  # the leaf: intermediates are the CA's
        elif "validation_context" in secret:
            kind, certs = "CA", _certificates(secret["validation_context"].get("trusted_ca"))
        else:
            kind, certs = "Other", []
        if not certs:
            rows.append([secret.get("name"), kind, secret.get("_status"), "-", "-", "-", "-", "-"])
        for cert in certs:
            valid = cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
            rows.append(
                [
                    secret.get("name"),
                    kind,
                    secret.get("_status"),
                    "true" if valid else "false",
                    format(cert.serial_number, "x"),
                    cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    _spiffe_ids(cert)
                    if kind == "Cert Chain"
                    else cert.subject.rfc4514_string() or "-",
                ]
            )
    return table(
        [
            "RESOURCE NAME",
            "TYPE",
            "STATUS",
            "VALID CERT",
            "SERIAL NUMBER",
            "NOT AFTER",
            "NOT BEFORE",
            "SPIFFE ID / SUBJECT",
        ],
        rows,
    )


RENDERERS: dict[str, Callable[[list[dict[str, Any]]], str]] = {
    "clusters": render_clusters,
    "listeners": render_listeners,
    "routes": render_routes,
    "endpoints": render_endpoints,
    "secrets": render_secrets,
}
