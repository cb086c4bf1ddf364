"""VirtualService validation, after Istio's pkg/config/validation (ValidateVirtualService).

Deliberate difference: Istio treats route weights as relative (only negative weights and an
all-zero split are errors); a split that does not add up to 100 is reported as a warning.
"""

from __future__ import annotations

from collections.abc import Mapping

from controlplane.model.base import FieldError, Resource
from controlplane.model.checks import (
    check_cidr_or_ip,
    check_port,
    check_wildcard_domain,
    is_ip,
)
from controlplane.model.host_sets import HostSet, earlier_overlaps
from controlplane.model.text import clip
from controlplane.model.validate_common import (
    error,
    validate_export_to,
    validate_labels,
    warning,
)
from controlplane.model.validate_http_route import (
    validate_gateway_name,
    validate_http_route,
    validate_route_destinations,
)
from controlplane.model.virtual_service import (
    VirtualService,
)

MESH_GATEWAY = "mesh"
# Routes of one kind (http, tls, tcp) per VirtualService. Real ones hold tens; 100,000
# routes made a 31.7 MB RDS response (repeated per host) and held the folder 22 s. Far
# above real use, so that reaching it means a generated or hostile file.
MAX_ROUTES = 10_000
# Each host gets its own copy of every http route in RDS (20 hosts × 10,000 routes made
# 61.6 MB): a bound on the product, ten times the routes one host may have.
MAX_ROUTE_COPIES = 10 * MAX_ROUTES


def validate_virtual_service(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, VirtualService)
    spec = resource.spec
    if _too_many_routes(resource, errors):
        return  # refused; checking every route would take long and add nothing
    delegate = not spec.hosts
    if delegate:
        if spec.gateways:
            error(
                errors, "spec.gateways", "delegate virtual service must have no gateways specified"
            )
        if spec.tls:
            error(errors, "spec.tls", "delegate virtual service must have no tls route specified")
        if spec.tcp:
            error(errors, "spec.tcp", "delegate virtual service must have no tcp route specified")
    # Bound to gateways only when "mesh" is not among them (Istio's isGateway).
    applies_to_gateway = bool(spec.gateways) and MESH_GATEWAY not in spec.gateways
    for index, gateway in enumerate(spec.gateways):
        validate_gateway_name(gateway, f"spec.gateways[{index}]", errors)

    hosts_valid = True
    for index, host in enumerate(spec.hosts):
        path = f"spec.hosts[{index}]"
        if host == "*" and not applies_to_gateway:
            error(
                errors,
                path,
                "wildcard host * is not allowed for virtual services bound to the mesh gateway",
            )
            hosts_valid = False
        elif host != "*" and not is_ip(host) and (message := check_wildcard_domain(host)):
            error(errors, path, message)
            hosts_valid = False
    if hosts_valid:
        # Each duplicate once, with the first host it overlaps (not every pair: n
        # copies of one host made n²/2 errors).
        for j, i in enumerate(earlier_overlaps(spec.hosts)):
            if i is not None:
                error(
                    errors,
                    f"spec.hosts[{j}]",
                    f"duplicate hosts in virtual service: {spec.hosts[i]} & {spec.hosts[j]}",
                )

    if not spec.http and not spec.tcp and not spec.tls:
        error(errors, "spec", "http, tcp or tls must be provided in virtual service")
    validate_export_to(spec.export_to, "spec.exportTo", resource.meta.namespace, errors)

    for index, route in enumerate(spec.http):
        path = f"spec.http[{index}]"
        validate_http_route(route, path, delegate, applies_to_gateway, errors)
        if not route.match and index < len(spec.http) - 1:
            warning(
                errors,
                f"spec.http[{index + 1}]",
                f"virtualService rule #{index + 1} not used (only the last rule can have no matches)",
            )

    vs_hosts = HostSet(spec.hosts)
    hosts_text = clip(", ".join(spec.hosts), 500)  # once: each SNI error repeats it
    for index, tls in enumerate(spec.tls):
        path = f"spec.tls[{index}]"
        if not tls.match:
            error(errors, f"{path}.match", "TLS route must have at least one match condition")
        for m_index, tls_match in enumerate(tls.match):
            m_path = f"{path}.match[{m_index}]"
            if not tls_match.sni_hosts:
                error(errors, f"{m_path}.sniHosts", "TLS match must have at least one SNI host")
            for s_index, sni in enumerate(tls_match.sni_hosts):
                _validate_sni_host(
                    sni, f"{m_path}.sniHosts[{s_index}]", hosts_text, vs_hosts, errors
                )
            _validate_l4_match(
                tls_match.destination_subnets,
                tls_match.port,
                tls_match.source_labels,
                tls_match.gateways,
                m_path,
                errors,
            )
        if not tls.route:
            error(errors, f"{path}.route", "TLS route is required")
        validate_route_destinations(tls.route, f"{path}.route", errors)

    for index, tcp in enumerate(spec.tcp):
        path = f"spec.tcp[{index}]"
        for m_index, match in enumerate(tcp.match):
            _validate_l4_match(
                match.destination_subnets,
                match.port,
                match.source_labels,
                match.gateways,
                f"{path}.match[{m_index}]",
                errors,
            )
        if not tcp.route:
            error(errors, f"{path}.route", "TCP route is required")
        validate_route_destinations(tcp.route, f"{path}.route", errors)


def _too_many_routes(resource: VirtualService, errors: list[FieldError]) -> bool:
    spec = resource.spec
    refused = False
    for name, routes in (("http", spec.http), ("tls", spec.tls), ("tcp", spec.tcp)):
        if len(routes) > MAX_ROUTES:
            message = f"{len(routes):,} routes: at most {MAX_ROUTES:,} are accepted"
            error(errors, f"spec.{name}", message)
            refused = True
    if not refused and len(spec.hosts) * len(spec.http) > MAX_ROUTE_COPIES:
        error(
            errors,
            "spec.http",
            f"{len(spec.hosts):,} hosts × {len(spec.http):,} routes: each host gets every route,"
            f" and at most {MAX_ROUTE_COPIES:,} such copies are accepted",
        )
        refused = True
    return refused


def _validate_sni_host(
    sni: str, path: str, hosts_text: str, vs_hosts: HostSet, errors: list[FieldError]
) -> None:
    if message := check_wildcard_domain(sni):
        if is_ip(sni):
            warning(
                errors,
                path,
                f"using an IP address ({sni!r}) goes against SNI spec and most clients do not support this",
            )
        else:
            error(errors, path, message)
        return
    # The SNI host must be a subset of some VirtualService host (equal, or covered by a
    # wildcard: ``*.a.example.com`` by ``*.example.com``).
    if not vs_hosts.covers(sni):
        error(
            errors,
            path,
            f"SNI host {sni!r} is not a compatible subset of any of the virtual "
            f"service hosts: [{hosts_text}]",
        )


def _validate_l4_match(
    subnets: tuple[str, ...],
    port: int,
    source_labels: Mapping[str, str],
    gateways: tuple[str, ...],
    path: str,
    errors: list[FieldError],
) -> None:
    for index, subnet in enumerate(subnets):
        if message := check_cidr_or_ip(subnet):
            error(errors, f"{path}.destinationSubnets[{index}]", message)
    if port and (message := check_port(port)):
        error(errors, f"{path}.port", message)
    validate_labels(source_labels, f"{path}.sourceLabels", errors)
    for index, gateway in enumerate(gateways):
        validate_gateway_name(gateway, f"{path}.gateways[{index}]", errors)


