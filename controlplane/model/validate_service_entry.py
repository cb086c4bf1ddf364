"""ServiceEntry and WorkloadEntry validation (after Istio)."""

from __future__ import annotations

from controlplane.model.base import FieldError, Resource
from controlplane.model.checks import (
    check_cidr_or_ip,
    check_dns1123_label,
    check_dns1123_subdomain,
    check_fqdn,
    check_port,
    check_wildcard_domain,
    is_ip,
)
from controlplane.model.service_entry import ServiceEntry, WorkloadEntry, WorkloadEntrySpec
from controlplane.model.validate_common import (
    error,
    validate_export_to,
    validate_labels,
    validate_port,
    validate_workload_selector,
    warning,
)
from controlplane.model.validate_destination_rule import check_locality
from controlplane.model.validate_gateway import HTTP_PROTOCOLS, TLS_PROTOCOLS

# --- ServiceEntry and WorkloadEntry ----------------------------------------------------------


def validate_service_entry(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, ServiceEntry)
    spec = resource.spec
    if spec.workload_selector is not None:
        validate_workload_selector(
            spec.workload_selector.labels, "spec.workloadSelector.labels", errors
        )
        if spec.endpoints:
            error(errors, "spec", "only one of WorkloadSelector or Endpoints can be set")
    if not spec.hosts:
        error(errors, "spec.hosts", "Required value: service entry must have at least one host")
    for index, host in enumerate(spec.hosts):
        path = f"spec.hosts[{index}]"
        if host == "*":
            error(errors, path, "hostname cannot be wildcard")
        elif message := check_wildcard_domain(host):
            error(errors, path, message)
        elif host.startswith("*") and not host.startswith("*."):
            warning(errors, path, f"partial wildcard {host!r} is not supported by every proxy")
    for index, address in enumerate(spec.addresses):
        path = f"spec.addresses[{index}]"
        if message := check_cidr_or_ip(address):
            error(errors, path, message)
        elif "/" in address and spec.resolution not in ("NONE", "STATIC"):
            error(errors, path, "CIDR addresses are allowed only for NONE/STATIC resolution types")
    port_names: set[str] = set()
    port_numbers: set[int] = set()
    for index, port in enumerate(spec.ports):
        path = f"spec.ports[{index}]"
        validate_port(port, path, errors, protocol_required=False)
        if not port.name:
            error(errors, f"{path}.name", "Required value: invalid port name")
        elif port.name in port_names:
            error(errors, f"{path}.name", f'Duplicate value: "{port.name}"')
        port_names.add(port.name)
        if port.number in port_numbers:
            error(errors, f"{path}.number", "port number cannot be duplicated")
        port_numbers.add(port.number)
        if port.target_port and spec.resolution == "NONE":
            warning(
                errors,
                f"{path}.targetPort",
                "targetPort has no effect when resolution mode is NONE",
            )
        if not spec.addresses and port.protocol.upper() in ("", "TCP"):
            warning(
                errors,
                f"{path}.protocol",
                "addresses are required for ports serving TCP (or unset) "
                "protocol when the proxy does not allocate addresses",
            )
    resolution = spec.resolution
    if resolution == "NONE":
        if spec.endpoints:
            error(errors, "spec.endpoints", "NONE mode cannot set endpoints")
        if spec.workload_selector is not None:
            warning(
                errors,
                "spec.workloadSelector",
                "workloadSelector should not be set when resolution mode is NONE",
            )
    elif resolution in ("DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS"):
        if not spec.endpoints:
            for index, host in enumerate(spec.hosts):
                if host != "*" and check_fqdn(host):
                    error(
                        errors,
                        f"spec.hosts[{index}]",
                        f"hosts must be FQDN if no endpoints are provided for resolution mode {resolution}",
                    )
        if resolution == "DNS_ROUND_ROBIN" and len(spec.endpoints) > 1:
            error(errors, "spec.endpoints", "DNS_ROUND_ROBIN mode cannot have multiple endpoints")
        if spec.workload_selector is not None:
            warning(
                errors,
                "spec.workloadSelector",
                f"workloadSelector should not be set when resolution mode is {resolution}",
            )
    if resolution != "NONE" and len(spec.hosts) > 1:
        for index, port in enumerate(spec.ports):
            protocol = port.protocol.upper()
            if protocol not in HTTP_PROTOCOLS and protocol not in TLS_PROTOCOLS:
                error(
                    errors,
                    f"spec.ports[{index}].protocol",
                    "multiple hosts provided with non-HTTP, non-TLS ports",
                )
                break
    for index, endpoint in enumerate(spec.endpoints):
        path = f"spec.endpoints[{index}]"
        _validate_workload(endpoint, path, errors, resolution=resolution)
        for name in endpoint.ports:
            if name not in port_names:
                error(
                    errors,
                    f"{path}.ports[{name}]",
                    f"endpoint port {name!r} is not defined by the service entry",
                )
    for index, san in enumerate(spec.subject_alt_names):
        if not san:
            error(errors, f"spec.subjectAltNames[{index}]", "must not be empty")
    validate_export_to(
        spec.export_to, "spec.exportTo", resource.meta.namespace, errors, service_entry=True
    )


def validate_workload_entry(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, WorkloadEntry)
    _validate_workload(resource.spec, "spec", errors, resolution=None)


def _validate_workload(
    spec: WorkloadEntrySpec, path: str, errors: list[FieldError], *, resolution: str | None
) -> None:
    """Istio's validateWorkloadEntry; ``resolution`` is the owning ServiceEntry's, if any."""
    address = spec.address
    if not address:
        if not spec.network:
            error(errors, f"{path}.address", "Address is required")
        else:
            warning(errors, f"{path}.address", f"address is unset with network {spec.network!r}")
    elif address.startswith("unix://"):
        socket = address[len("unix://") :]
        if resolution not in (None, "STATIC"):
            error(
                errors,
                f"{path}.address",
                f"unix socket endpoints need STATIC resolution, not {resolution}",
            )
        if not socket.startswith(("/", "@")):
            error(errors, f"{path}.address", "UDS must be an absolute path or abstract socket")
        elif socket.endswith("/"):
            error(errors, f"{path}.address", "UDS may not be a dir")
        if spec.ports:
            error(errors, f"{path}.ports", "UDS may not include ports")
    elif not is_ip(address):
        if resolution == "STATIC":
            error(
                errors, f"{path}.address", f"endpoint address {address!r} is not a valid IP address"
            )
        elif check_fqdn(address):
            error(
                errors,
                f"{path}.address",
                f"endpoint address {address!r} is not a valid FQDN or an IP address",
            )
    for name, number in spec.ports.items():
        p_path = f"{path}.ports[{name}]"
        if check_dns1123_label(name):
            error(errors, p_path, f"Invalid value: invalid port name: {name}")
        if message := check_port(number):
            error(errors, p_path, message)
    validate_labels(spec.labels, f"{path}.labels", errors)
    if spec.service_account and (message := check_dns1123_subdomain(spec.service_account)):
        error(errors, f"{path}.serviceAccount", message)
    if spec.locality and (message := check_locality(spec.locality)):
        error(errors, f"{path}.locality", message)
