"""``controlplane proxy-config authz PROXY``: the policies a proxy enforces, per inbound port.

Like ``istioctl x authz check``, read from the proxy's config (the control plane's view, or a
live Envoy's admin with ``--envoy-admin``), not from the YAML: what is listed is what the
proxy was given. For each inbound listener and port (``*``: the passthrough chain of
``virtualInbound``), in the order Envoy runs them:

- ``jwt_authn`` (RequestAuthentication): each provider's issuer, audiences and where its
  keys come from;
- ``ext_authz`` (CUSTOM): the external authorizer it calls;
- RBAC (AuthorizationPolicy), HTTP or TCP: each policy ``ns[NS]-policy[NAME]-rule[N]`` with
  its action (AUDIT, DENY, ALLOW; CUSTOM for the shadow rules that pick the requests sent to
  ext_authz) and whether it is dry-run (``istio.io/dry-run``: shadow rules, counted, never
  enforced). An ALLOW filter without any policy refuses every request.

Filters served over ECDS (``config_discovery``) are read from the dump's ECDS section.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from controlplane.cli.monitoring_client import table

_ADMIN = "type.googleapis.com/envoy.admin.v3."
HCM = "envoy.filters.network.http_connection_manager"
RBAC_TYPES = (
    "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
    "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC",
)
JWT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
EXT_AUTHZ_TYPES = (
    "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
    "type.googleapis.com/envoy.extensions.filters.network.ext_authz.v3.ExtAuthz",
)
# Istio's stat prefix of the shadow rules that mark requests for the CUSTOM provider.
EXT_AUTHZ_SHADOW_PREFIX = "istio_ext_authz_"
_ACTIONS = {"ALLOW": "ALLOW", "DENY": "DENY", "LOG": "AUDIT"}
NO_POLICY = "(no policy: matches no request)"
MISSING = "_missing_ecds"


@dataclass(frozen=True)
class PolicyRow:
    listener: str
    port: str
    protocol: str  # HTTP or TCP: the RBAC filter's kind
    action: str  # ALLOW, DENY, AUDIT, CUSTOM
    dry_run: bool
    policy: str


@dataclass(frozen=True)
class JwtRow:
    listener: str
    port: str
    provider: str
    issuer: str
    audiences: tuple[str, ...]
    keys: str


@dataclass(frozen=True)
class ExtAuthzRow:
    listener: str
    port: str
    protocol: str
    target: str
    failure_mode_allow: bool


@dataclass(frozen=True)
class ProxyAuthz:
    policies: tuple[PolicyRow, ...]
    jwt: tuple[JwtRow, ...]
    ext_authz: tuple[ExtAuthzRow, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "policies": [asdict(r) for r in self.policies],
            "request_authentication": [
                asdict(r) | {"audiences": list(r.audiences)} for r in self.jwt
            ],
            "ext_authz": [asdict(r) for r in self.ext_authz],
        }


# --- reading the dump --------------------------------------------------------------------


def _sections(config_dump: dict[str, Any], type_name: str) -> Iterator[dict[str, Any]]:
    for section in config_dump.get("configs", []):
        if section.get("@type") == _ADMIN + type_name:
            yield section


def _listeners(config_dump: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for section in _sections(config_dump, "ListenersConfigDump"):
        for entry in section.get("static_listeners", []):
            yield entry.get("listener") or {}
        for entry in section.get("dynamic_listeners", []):
            state = entry.get("active_state") or entry.get("warming_state") or {}
            if "listener" in state:
                yield state["listener"]


def ecds_configs(config_dump: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Name -> typed_config of every filter config the dump holds from ECDS."""
    out: dict[str, dict[str, Any]] = {}
    for section in _sections(config_dump, "EcdsConfigDump"):
        for entry in section.get("ecds_filters", []):
            extension = entry.get("ecds_filter") or {}
            if extension.get("name"):
                out[extension["name"]] = extension.get("typed_config") or {}
    return out


def _typed_config(item: dict[str, Any], ecds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if "typed_config" in item:
        return item["typed_config"] or {}
    if "config_discovery" in item:
        name = item.get("name", "")
        if name in ecds:
            return ecds[name]
        # Not (yet) in the dump: say so where the filter's declared type would show.
        type_urls = (item.get("config_discovery") or {}).get("type_urls") or [""]
        return {"@type": type_urls[0], MISSING: name}
    return {}


def _missing(config: dict[str, Any]) -> str:
    return f"(ECDS {config[MISSING]} not in the dump)"


def _is_inbound(listener: dict[str, Any]) -> bool:
    return listener.get("traffic_direction") == "INBOUND"


def _chains(listener: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(port, chain): the chain's destination port, else the listener's own port for a bound
    listener, else ``*`` (virtualInbound's passthrough chains)."""
    socket = (listener.get("address") or {}).get("socket_address") or {}
    own_port = str(socket.get("port_value", ""))
    bound = listener.get("name") != "virtualInbound"
    chains = list(listener.get("filter_chains", []))
    if "default_filter_chain" in listener:
        chains.append(listener["default_filter_chain"])
    for chain in chains:
        match = chain.get("filter_chain_match") or {}
        if "destination_port" in match:
            yield str(match["destination_port"]), chain
        else:
            yield (own_port if bound else "*"), chain


def _rbac_rows(
    listener: str, port: str, protocol: str, config: dict[str, Any]
) -> Iterator[PolicyRow]:
    if MISSING in config:
        yield PolicyRow(listener, port, protocol, "?", False, _missing(config))
        return
    shadow_prefix = config.get("shadow_rules_stat_prefix", "")
    for key, dry_run in (("rules", False), ("shadow_rules", True)):
        if key not in config:
            continue
        rules = config[key] or {}
        action = _ACTIONS.get(rules.get("action", "ALLOW"), rules.get("action", "ALLOW"))
        if dry_run and shadow_prefix.startswith(EXT_AUTHZ_SHADOW_PREFIX):
            action, dry_run = "CUSTOM", False
        names = sorted((rules.get("policies") or {}).keys())
        for name in names or [NO_POLICY]:
            yield PolicyRow(listener, port, protocol, action, dry_run, name)


def _jwt_rows(listener: str, port: str, config: dict[str, Any]) -> Iterator[JwtRow]:
    if MISSING in config:
        yield JwtRow(listener, port, "?", _missing(config), (), "-")
        return
    for name, provider in sorted((config.get("providers") or {}).items()):
        if "local_jwks" in provider:
            keys = "inline"
        elif "remote_jwks" in provider:
            keys = ((provider["remote_jwks"].get("http_uri") or {}).get("uri")) or "remote"
        else:
            keys = "-"
        yield JwtRow(
            listener,
            port,
            name,
            provider.get("issuer", "-"),
            tuple(provider.get("audiences", [])),
            keys,
        )


def _ext_authz_row(listener: str, port: str, protocol: str, config: dict[str, Any]) -> ExtAuthzRow:
    if MISSING in config:
        return ExtAuthzRow(listener, port, protocol, _missing(config), False)
    grpc = config.get("grpc_service") or {}
    http = config.get("http_service") or {}
    target = (
        (grpc.get("envoy_grpc") or {}).get("cluster_name")
        or (grpc.get("google_grpc") or {}).get("target_uri")
        or (http.get("server_uri") or {}).get("cluster")
        or (http.get("server_uri") or {}).get("uri")
        or "-"
    )
    return ExtAuthzRow(
        listener, port, protocol, target, bool(config.get("failure_mode_allow", False))
    )


def proxy_authz(config_dump: dict[str, Any]) -> ProxyAuthz:
    ecds = ecds_configs(config_dump)
    policies: list[PolicyRow] = []
    jwt: list[JwtRow] = []
    ext: list[ExtAuthzRow] = []
    for listener in _listeners(config_dump):
        if not _is_inbound(listener):
            continue
        name = listener.get("name", "-")
        for port, chain in _chains(listener):
            for network_filter in chain.get("filters", []):
                config = _typed_config(network_filter, ecds)
                kind = config.get("@type", "")
                if kind in RBAC_TYPES:
                    policies.extend(_rbac_rows(name, port, "TCP", config))
                elif kind in EXT_AUTHZ_TYPES:
                    ext.append(_ext_authz_row(name, port, "TCP", config))
                elif network_filter.get("name") == HCM:
                    for http_filter in config.get("http_filters", []):
                        http_config = _typed_config(http_filter, ecds)
                        http_kind = http_config.get("@type", "")
                        if http_kind in RBAC_TYPES:
                            policies.extend(_rbac_rows(name, port, "HTTP", http_config))
                        elif http_kind == JWT_TYPE:
                            jwt.extend(_jwt_rows(name, port, http_config))
                        elif http_kind in EXT_AUTHZ_TYPES:
                            ext.append(_ext_authz_row(name, port, "HTTP", http_config))
    # A port's chains (PERMISSIVE: mTLS and plaintext) carry the same filters: list them once.
    return ProxyAuthz(_unique(policies), _unique(jwt), _unique(ext))


def _unique(rows: list[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(rows))


# --- printing -------------------------------------------------------------------------------


def render(authz: ProxyAuthz) -> str:
    sections: list[str] = []
    if authz.jwt:
        rows = [
            [r.listener, r.port, r.provider, r.issuer, ",".join(r.audiences) or "-", r.keys]
            for r in authz.jwt
        ]
        sections.append(
            "RequestAuthentication (jwt_authn):\n"
            + table(["LISTENER", "PORT", "PROVIDER", "ISSUER", "AUDIENCES", "KEYS"], rows)
        )
    if authz.ext_authz:
        rows = [
            [r.listener, r.port, r.protocol, r.target, "allow" if r.failure_mode_allow else "deny"]
            for r in authz.ext_authz
        ]
        sections.append(
            "CUSTOM (ext_authz):\n"
            + table(["LISTENER", "PORT", "FILTER", "AUTHORIZER", "ON FAILURE"], rows)
        )
    if authz.policies:
        rows = [
            [r.listener, r.port, r.protocol, r.action, "yes" if r.dry_run else "no", r.policy]
            for r in authz.policies
        ]
        sections.append(
            "AuthorizationPolicy (RBAC, in the order Envoy applies them):\n"
            + table(["LISTENER", "PORT", "FILTER", "ACTION", "DRY-RUN", "POLICY"], rows)
        )
    else:
        sections.append(
            "AuthorizationPolicy: no RBAC filter on any inbound port (no policy applies)\n"
        )
    return "\n".join(sections)
