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
from controlplane.model.hosts import host_matches, hosts_overlap
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


def validate_virtual_service(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, VirtualService)
    spec = resource.spec
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
        for i, first in enumerate(spec.hosts):
            for j in range(i + 1, len(spec.hosts)):
                if hosts_overlap(first, spec.hosts[j]):
                    error(
                        errors,
                        f"spec.hosts[{j}]",
                        f"duplicate hosts in virtual service: {first} & {spec.hosts[j]}",
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

    for index, tls in enumerate(spec.tls):
        path = f"spec.tls[{index}]"
        if not tls.match:
            error(errors, f"{path}.match", "TLS route must have at least one match condition")
        for m_index, tls_match in enumerate(tls.match):
            m_path = f"{path}.match[{m_index}]"
            if not tls_match.sni_hosts:
                error(errors, f"{m_path}.sniHosts", "TLS match must have at least one SNI host")
            for s_index, sni in enumerate(tls_match.sni_hosts):
                _validate_sni_host(sni, f"{m_path}.sniHosts[{s_index}]", spec.hosts, errors)
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


def _validate_sni_host(
    sni: str, path: str, vs_hosts: tuple[str, ...], errors: list[FieldError]
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
    # The SNI host must be a subset of some VirtualService host.
    if not any(
        host_matches(host, sni) or host.lower() == sni.lower() or _wildcard_subset(sni, host)
        for host in vs_hosts
    ):
        error(
            errors,
            path,
            f"SNI host {sni!r} is not a compatible subset of any of the virtual "
            f"service hosts: [{', '.join(vs_hosts)}]",
        )


def _wildcard_subset(pattern: str, of: str) -> bool:
    """``*.a.example.com`` is a subset of ``*.example.com``."""
    return (
        pattern.startswith("*")
        and of.startswith("*")
        and pattern[1:].lower().endswith(of[1:].lower())
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


