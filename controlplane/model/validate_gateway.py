"""Gateway validation and the server TLS rules shared with Sidecar ingress (after Istio)."""

from __future__ import annotations

from controlplane.model.base import FieldError, Resource
from controlplane.model.checks import (
    check_dns1123_label,
    check_namespaced_host,
    is_ip,
)
from controlplane.model.gateway import Gateway, Server, ServerTLSSettings
from controlplane.model.validate_common import (
    error,
    validate_labels,
    validate_port,
    warning,
)

_TLS_ORDER = ("TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3")

# --- Gateway ---------------------------------------------------------------------------------

HTTP_PROTOCOLS = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB", "HTTP_PROXY"})
TLS_PROTOCOLS = frozenset({"HTTPS", "TLS"})


def validate_gateway(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, Gateway)
    spec = resource.spec
    if check_dns1123_label(resource.meta.name):
        error(
            errors,
            "metadata.name",
            f"invalid gateway name: {resource.meta.name!r} (must be a DNS-1123 label)",
        )
    if not spec.servers:
        error(errors, "spec.servers", "gateway must have at least one server")
    validate_labels(spec.selector, "spec.selector", errors)
    port_names: set[str] = set()
    server_names: set[str] = set()
    for index, server in enumerate(spec.servers):
        path = f"spec.servers[{index}]"
        if server.name:
            if server.name in server_names:
                error(errors, f"{path}.name", f"server name {server.name!r} must be unique")
            server_names.add(server.name)
        if not server.hosts:
            error(errors, f"{path}.hosts", "server config must contain at least one host")
        for h_index, host in enumerate(server.hosts):
            if message := check_namespaced_host(host):
                error(errors, f"{path}.hosts[{h_index}]", message)
        protocol = ""
        port_ok = False
        if server.port is None:
            error(errors, f"{path}.port", "port is required")
        else:
            protocol = server.port.protocol.upper()
            before = len(errors)
            validate_port(
                server.port,
                f"{path}.port",
                errors,
                name_required=True,
                check_name=False,
                allow_zero=server.port.number == 0 and server.bind.startswith("unix://"),
            )
            port_ok = len(errors) == before
            if server.port.target_port:
                error(errors, f"{path}.port.targetPort", "targetPort has no impact on Gateways")
            if server.port.name in port_names:
                error(
                    errors,
                    f"{path}.port.name",
                    f"port names in servers must be unique: duplicate name {server.port.name}",
                )
            port_names.add(server.port.name)
            if (
                server.tls is not None
                and server.tls.https_redirect
                and protocol not in HTTP_PROTOCOLS
            ):
                warning(
                    errors,
                    f"{path}.tls.httpsRedirect",
                    "tls.httpsRedirect should only be used with http servers",
                )
        _validate_bind(server, path, errors)
        if server.tls is not None:
            validate_server_tls(server.tls, f"{path}.tls", errors)
        if port_ok:
            if protocol in TLS_PROTOCOLS and server.tls is None:
                error(
                    errors, f"{path}.tls", "server must have TLS settings for HTTPS/TLS protocols"
                )
            elif protocol not in TLS_PROTOCOLS and server.tls is not None:
                tls = server.tls
                if protocol in HTTP_PROTOCOLS:
                    passthrough = tls.mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH")
                    if (
                        not passthrough
                        or tls.ca_certificates
                        or tls.private_key
                        or tls.server_certificate
                    ):
                        error(
                            errors,
                            f"{path}.tls",
                            "server cannot have TLS settings for plain text HTTP ports",
                        )
                else:
                    error(
                        errors,
                        f"{path}.tls",
                        "server cannot have TLS settings for non HTTPS/TLS ports",
                    )


def _validate_bind(server: Server, path: str, errors: list[FieldError]) -> None:
    if server.bind.startswith("unix://"):
        if message := check_unix_address(server.bind[len("unix://") :]):
            error(errors, f"{path}.bind", message)
        if server.port is not None and server.port.number != 0:
            error(errors, f"{path}.port.number", "port number must be 0 for unix domain socket")
    elif server.bind and not is_ip(server.bind):
        error(errors, f"{path}.bind", f"{server.bind!r} is not a valid IP address")


def check_unix_address(address: str) -> str:
    """Istio's ValidateUnixAddress: an abstract socket (``@name``) or an absolute file path."""
    if not address:
        return "unix address must not be empty"
    if address.startswith("@"):
        return ""
    if not address.startswith("/") or address.endswith("/"):
        return f"{address} is not an absolute path to a file"
    return ""


def validate_server_tls(tls: ServerTLSSettings, path: str, errors: list[FieldError]) -> None:
    """Istio's validateTLSOptions."""
    if tls.min_protocol_version in ("TLSV1_0", "TLSV1_1") and not tls.cipher_suites:
        warning(
            errors,
            f"{path}.cipherSuites",
            "TLS version below TLSV1_2 require setting compatible "
            "ciphers as by default they no longer include compatible ciphers.",
        )
    duplicates = {c for c in tls.cipher_suites if tls.cipher_suites.count(c) > 1}
    if duplicates:
        warning(
            errors,
            f"{path}.cipherSuites",
            f"ignoring duplicate cipher suites: {sorted(duplicates)}",
        )
    if (
        tls.min_protocol_version != "TLS_AUTO"
        and tls.max_protocol_version != "TLS_AUTO"
        and _TLS_ORDER.index(tls.min_protocol_version) > _TLS_ORDER.index(tls.max_protocol_version)
    ):
        error(
            errors,
            f"{path}.minProtocolVersion",
            "minProtocolVersion must not be above maxProtocolVersion",
        )
    if tls.mode == "ISTIO_MUTUAL":
        for field, value in (
            ("serverCertificate", tls.server_certificate),
            ("privateKey", tls.private_key),
            ("caCertificates", tls.ca_certificates),
            ("credentialName", tls.credential_name),
        ):
            if value:
                error(errors, f"{path}.{field}", f"ISTIO_MUTUAL TLS cannot have associated {field}")
        return
    if tls.mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH") and (
        tls.ca_crl
        or tls.server_certificate
        or tls.private_key
        or tls.ca_certificates
        or tls.credential_name
    ):
        warning(errors, path, f"{tls.mode} mode does not use certificates, they will be ignored")
    if tls.credential_name and tls.credential_names:
        error(
            errors,
            f"{path}.credentialNames",
            "only one of credentialName and credentialNames may be set",
        )
    if tls.ca_cert_credential_name and tls.mode not in ("MUTUAL", "OPTIONAL_MUTUAL"):
        warning(errors, f"{path}.caCertCredentialName",
                f"only MUTUAL and OPTIONAL_MUTUAL verify client certificates: ignored in {tls.mode}")
    has_credential = bool(tls.credential_name or tls.credential_names or tls.tls_certificates)
    if tls.mode in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL") and has_credential:
        return  # certificates are fetched from the credential
    if tls.mode == "SIMPLE":
        if not tls.server_certificate:
            error(errors, f"{path}.serverCertificate", "SIMPLE TLS requires a server certificate")
        if not tls.private_key:
            error(errors, f"{path}.privateKey", "SIMPLE TLS requires a private key")
    elif tls.mode in ("MUTUAL", "OPTIONAL_MUTUAL"):
        if not tls.server_certificate:
            error(errors, f"{path}.serverCertificate", "MUTUAL TLS requires a server certificate")
        if not tls.private_key:
            error(errors, f"{path}.privateKey", "MUTUAL TLS requires a private key")
        if not tls.ca_certificates:
            error(errors, f"{path}.caCertificates", "MUTUAL TLS requires a client CA bundle")
    if tls.ca_crl and tls.mode == "SIMPLE":
        error(errors, f"{path}.caCrl", "CRL is not supported with SIMPLE TLS")
