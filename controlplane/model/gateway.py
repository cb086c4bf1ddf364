"""networking.istio.io Gateway: listeners of an ingress/egress gateway proxy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from controlplane.model.base import ObjectMeta, Resource
from controlplane.model.common import Port
from controlplane.model.frozen import EMPTY

ServerTLSMode = Literal[
    "PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"
]
TLSProtocol = Literal["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"]


@dataclass(frozen=True, slots=True)
class TLSCertificate:
    server_certificate: str = ""
    private_key: str = ""
    ca_certificates: str = ""


@dataclass(frozen=True, slots=True)
class ServerTLSSettings:
    https_redirect: bool = False
    mode: ServerTLSMode = "PASSTHROUGH"
    server_certificate: str = ""
    private_key: str = ""
    ca_certificates: str = ""
    ca_crl: str = ""
    credential_name: str = ""
    credential_names: tuple[str, ...] = ()
    # MUTUAL / OPTIONAL_MUTUAL: the Secret (or, with ``configmap://``, the ConfigMap) whose
    # ``ca.crt`` verifies clients, instead of the CA of ``credentialName``.
    ca_cert_credential_name: str = ""
    tls_certificates: tuple[TLSCertificate, ...] = ()
    subject_alt_names: tuple[str, ...] = ()
    verify_certificate_spki: tuple[str, ...] = ()
    verify_certificate_hash: tuple[str, ...] = ()
    min_protocol_version: TLSProtocol = "TLS_AUTO"
    max_protocol_version: TLSProtocol = "TLS_AUTO"
    cipher_suites: tuple[str, ...] = ()
    # Accept a client whose certificate does not verify (Gateway API AllowInsecureFallback).
    insecure_skip_verify: bool | None = None


@dataclass(frozen=True, slots=True)
class Server:
    port: Port | None = None
    bind: str = ""
    hosts: tuple[str, ...] = ()
    tls: ServerTLSSettings | None = None
    default_endpoint: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class GatewaySpec:
    servers: tuple[Server, ...] = ()
    selector: Mapping[str, str] = field(default=EMPTY)


@dataclass(frozen=True, slots=True)
class Gateway(Resource):
    KIND: ClassVar[str] = "Gateway"
    meta: ObjectMeta
    spec: GatewaySpec
