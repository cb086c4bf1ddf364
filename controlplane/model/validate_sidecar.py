"""Sidecar validation (after Istio's ValidateSidecar)."""

from __future__ import annotations

from controlplane.model.base import FieldError, Resource
from controlplane.model.checks import (
    check_fqdn,
    check_namespaced_host,
    check_port,
    is_ip,
)
from controlplane.model.sidecar import Sidecar
from controlplane.model.validate_common import (
    error,
    validate_port,
    validate_workload_selector,
    warning,
)
from controlplane.model.validate_destination_rule import validate_connection_pool
from controlplane.model.validate_gateway import (
    HTTP_PROTOCOLS,
    check_unix_address,
    validate_server_tls,
)

# --- Sidecar ---------------------------------------------------------------------------------

_ISTIO_DEFAULT_ENDPOINT_HOSTS = ("127.0.0.1", "0.0.0.0", "::1", "::", "")


def validate_sidecar(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, Sidecar)
    spec = resource.spec
    if spec.workload_selector is not None:
        validate_workload_selector(
            spec.workload_selector.labels, "spec.workloadSelector.labels", errors
        )
    if (
        not spec.ingress
        and not spec.egress
        and spec.outbound_traffic_policy is None
        and spec.inbound_connection_pool is None
    ):
        error(errors, "spec", "sidecar: empty configuration provided")
        return
    ports: set[int] = set()
    for index, listener in enumerate(spec.ingress):
        path = f"spec.ingress[{index}]"
        if listener.port is None:
            error(errors, f"{path}.port", "sidecar: port is required for ingress listeners")
            continue
        if listener.port.target_port:
            error(errors, f"{path}.port.targetPort", "targetPort has no impact on Sidecars")
        validate_port(listener.port, f"{path}.port", errors, protocol_required=False)
        if listener.port.number in ports:
            error(
                errors, f"{path}.port.number", "sidecar: ports on IP bound listeners must be unique"
            )
        ports.add(listener.port.number)
        if listener.bind and not is_ip(listener.bind):
            error(errors, f"{path}.bind", f"{listener.bind!r} is not a valid IP address")
        if listener.default_endpoint:
            _validate_default_endpoint(listener.default_endpoint, f"{path}.defaultEndpoint", errors)
        if listener.tls is not None:
            tls, t_path = listener.tls, f"{path}.tls"
            if tls.subject_alt_names:
                error(
                    errors,
                    f"{t_path}.subjectAltNames",
                    "sidecar: subjectAltNames is not supported in ingress tls",
                )
            if tls.https_redirect:
                error(errors, f"{t_path}.httpsRedirect", "sidecar: httpsRedirect is not supported")
            if tls.credential_name:
                error(
                    errors,
                    f"{t_path}.credentialName",
                    "sidecar: credentialName is not currently supported",
                )
            if tls.mode in ("ISTIO_MUTUAL", "AUTO_PASSTHROUGH"):
                error(
                    errors,
                    f"{t_path}.mode",
                    f"cannot set mode to {tls.mode} in sidecar ingress tls",
                )
            validate_server_tls(tls, t_path, errors)
        if listener.connection_pool is not None:
            validate_connection_pool(listener.connection_pool, f"{path}.connectionPool", errors)
            if (
                listener.connection_pool.http is not None
                and listener.port.protocol.upper() not in HTTP_PROTOCOLS
            ):
                warning(
                    errors,
                    f"{path}.connectionPool.http",
                    "sidecar: HTTP connection pool settings are "
                    "configured for a port whose protocol is not HTTP; only TCP settings will apply",
                )
    if spec.inbound_connection_pool is not None:
        validate_connection_pool(spec.inbound_connection_pool, "spec.inboundConnectionPool", errors)

    egress_ports: set[int] = set()
    sockets: set[str] = set()
    catch_all_found = False
    for index, egress in enumerate(spec.egress):
        path = f"spec.egress[{index}]"
        if egress.port is None:
            if catch_all_found:
                error(errors, path, "sidecar: egress can have only one listener with empty port")
                continue
            if index == len(spec.egress) - 1:
                catch_all_found = True
            else:
                error(
                    errors,
                    path,
                    "sidecar: the egress listener with empty port should be the last listener in the list",
                )
        else:
            port = egress.port
            if port.target_port:
                error(errors, f"{path}.port.targetPort", "targetPort has no impact on Sidecars")
            if port.number == 0:  # a unix domain socket listener
                validate_port(
                    port, f"{path}.port", errors, protocol_required=False, allow_zero=True
                )
                if not egress.bind.startswith("unix://"):
                    error(
                        errors,
                        f"{path}.bind",
                        "sidecar: ports with 0 value must have a unix domain socket bind address",
                    )
                elif message := check_unix_address(egress.bind[len("unix://") :]):
                    error(errors, f"{path}.bind", message)
                if egress.capture_mode not in ("DEFAULT", "NONE"):
                    error(
                        errors,
                        f"{path}.captureMode",
                        "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners",
                    )
                if egress.bind in sockets:
                    error(
                        errors,
                        f"{path}.bind",
                        "sidecar: unix domain socket values for listeners must be unique",
                    )
                sockets.add(egress.bind)
            else:
                validate_port(port, f"{path}.port", errors, protocol_required=False)
                if egress.bind and not is_ip(egress.bind):
                    error(errors, f"{path}.bind", f"{egress.bind!r} is not a valid IP address")
                if port.number in egress_ports:
                    error(
                        errors,
                        f"{path}.port.number",
                        "sidecar: ports on IP bound listeners must be unique",
                    )
                egress_ports.add(port.number)
        if not egress.hosts:
            error(
                errors, f"{path}.hosts", "sidecar: egress listener must contain at least one host"
            )
        for h_index, host in enumerate(egress.hosts):
            h_path = f"{path}.hosts[{h_index}]"
            if "/" not in host:
                error(errors, h_path, f"sidecar: host {host!r} must be of form namespace/dnsName")
            elif message := check_namespaced_host(host):
                error(errors, h_path, message)
    policy = spec.outbound_traffic_policy
    if policy is not None and policy.egress_proxy is not None:
        p_path = "spec.outboundTrafficPolicy.egressProxy"
        if policy.mode != "ALLOW_ANY":
            error(
                errors,
                p_path,
                "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
            )
        else:
            if message := check_fqdn(policy.egress_proxy.host):
                error(errors, f"{p_path}.host", message)
            if policy.egress_proxy.port is None:
                error(errors, f"{p_path}.port", "sidecar: egress_proxy port must be non-nil")
            elif message := check_port(policy.egress_proxy.port.number):
                error(errors, f"{p_path}.port.number", message)


def _validate_default_endpoint(value: str, path: str, errors: list[FieldError]) -> None:
    """Istio allows only loopback/any addresses; any 127.0.0.0/8 address is accepted here too,
    because a local mesh gives every workload its own loopback address."""
    if value.startswith("unix://"):
        if message := check_unix_address(value[len("unix://") :]):
            error(errors, path, message)
        return
    host, colon, port = value.rpartition(":")
    if not colon:
        error(errors, path, f"sidecar: defaultEndpoint {value!r} must be host:port")
        return
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host not in _ISTIO_DEFAULT_ENDPOINT_HOSTS and not (is_ip(host) and host.startswith("127.")):
        error(
            errors,
            path,
            "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,"
            "[::1]:port,[::]:port,unix://filepath or unset",
        )
    if not port.isdigit():
        error(errors, path, f"sidecar: defaultEndpoint port ({port}) is not a number")
    elif message := check_port(int(port)):
        error(errors, path, message)
