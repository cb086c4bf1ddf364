"""Light validation of Kubernetes kinds (the API server has already checked live objects)."""

from __future__ import annotations

import re

from controlplane.model.base import FieldError, Resource
from controlplane.model.checks import check_dns1123_label, check_fqdn, check_ip, check_port
from controlplane.model.kubernetes import SERVICE_NAME_LABEL, Endpoints, EndpointSlice, Pod, Service
from controlplane.model.validate_common import error, validate_labels, warning

# IANA service names: what a named targetPort / container port may be.
_IANA_SVC_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def _check_port_name(name: str) -> str:
    if len(name) > 15 or not _IANA_SVC_NAME.match(name) or "--" in name:
        return f"{name!r} is not a valid port name (IANA service name: max 15, lower case, at least one letter)"
    return ""


def validate_service(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, Service)
    spec = resource.spec
    names: set[str] = set()
    for index, port in enumerate(spec.ports):
        path = f"spec.ports[{index}]"
        if message := check_port(port.port):
            error(errors, f"{path}.port", message)
        if len(spec.ports) > 1 and not port.name:
            error(
                errors, f"{path}.name", "Required value: ports must be named when there are several"
            )
        if port.name:
            if message := check_dns1123_label(port.name):
                error(errors, f"{path}.name", message)
            if port.name in names:
                error(errors, f"{path}.name", f'Duplicate value: "{port.name}"')
            names.add(port.name)
        target = port.target_port
        if (
            isinstance(target, int)
            and (message := check_port(target))
            or isinstance(target, str)
            and (message := _check_port_name(target))
        ):
            error(errors, f"{path}.targetPort", message)
    validate_labels(spec.selector, "spec.selector", errors)
    if spec.type == "ExternalName":
        if not spec.external_name:
            error(errors, "spec.externalName", "Required value for type ExternalName")
        elif message := check_fqdn(spec.external_name):
            error(errors, "spec.externalName", message)
    if spec.cluster_ip and spec.cluster_ip != "None" and (message := check_ip(spec.cluster_ip)):
        error(errors, "spec.clusterIP", message)


def validate_endpoint_slice(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, EndpointSlice)
    if not resource.service_name:
        warning(
            errors,
            f"metadata.labels[{SERVICE_NAME_LABEL}]",
            "EndpointSlice has no service-name label: it belongs to no Service",
        )
    for index, endpoint in enumerate(resource.endpoints):
        path = f"endpoints[{index}]"
        if not endpoint.addresses:
            error(errors, f"{path}.addresses", "Required value")
        for a_index, address in enumerate(endpoint.addresses):
            a_path = f"{path}.addresses[{a_index}]"
            if resource.address_type == "FQDN":
                message = check_fqdn(address)
            else:
                message = check_ip(address)
                if not message and (":" in address) != (resource.address_type == "IPv6"):
                    message = f"{address!r} is not an {resource.address_type} address"
            if message:
                error(errors, a_path, message)
    for index, port in enumerate(resource.ports):
        if port.port is not None and (message := check_port(port.port)):
            error(errors, f"ports[{index}].port", message)


def validate_endpoints(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, Endpoints)
    for s_index, subset in enumerate(resource.subsets):
        for field, addresses in (
            ("addresses", subset.addresses),
            ("notReadyAddresses", subset.not_ready_addresses),
        ):
            for index, address in enumerate(addresses):
                if message := check_ip(address.ip):
                    error(errors, f"subsets[{s_index}].{field}[{index}].ip", message)
        for index, port in enumerate(subset.ports):
            if port.port is not None and (message := check_port(port.port)):
                error(errors, f"subsets[{s_index}].ports[{index}].port", message)


def validate_pod(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, Pod)
    if resource.status.pod_ip and (message := check_ip(resource.status.pod_ip)):
        error(errors, "status.podIP", message)
    for index, pod_ip in enumerate(resource.status.pod_ips):
        if message := check_ip(pod_ip.ip):
            error(errors, f"status.podIPs[{index}].ip", message)
