"""security.istio.io PeerAuthentication, AuthorizationPolicy and RequestAuthentication."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, Literal

from controlplane.model.base import ObjectMeta, Resource
from controlplane.model.common import PolicyTargetReference, WorkloadSelector
from controlplane.model.decode import jfield

MTLSMode = Literal["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]
AuthorizationAction = Literal["ALLOW", "DENY", "AUDIT", "CUSTOM"]


# --- PeerAuthentication ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MutualTLS:
    mode: MTLSMode = "UNSET"


@dataclass(frozen=True, slots=True)
class PeerAuthenticationSpec:
    selector: WorkloadSelector | None = None
    mtls: MutualTLS | None = None
    # Keys are port numbers as strings ("8080"); validation checks they are 1..65535.
    port_level_mtls: Mapping[str, MutualTLS] | None = None

    @property
    def port_level_modes(self) -> tuple[tuple[int, MutualTLS], ...]:
        """``portLevelMtls`` as (port number, setting) pairs, sorted by port."""
        items = (self.port_level_mtls or {}).items()
        return tuple(sorted(((int(port), mtls) for port, mtls in items), key=lambda item: item[0]))


@dataclass(frozen=True, slots=True)
class PeerAuthentication(Resource):
    KIND: ClassVar[str] = "PeerAuthentication"
    meta: ObjectMeta
    spec: PeerAuthenticationSpec


# --- AuthorizationPolicy ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    principals: tuple[str, ...] = ()
    not_principals: tuple[str, ...] = ()
    request_principals: tuple[str, ...] = ()
    not_request_principals: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    not_namespaces: tuple[str, ...] = ()
    service_accounts: tuple[str, ...] = ()
    not_service_accounts: tuple[str, ...] = ()
    ip_blocks: tuple[str, ...] = ()
    not_ip_blocks: tuple[str, ...] = ()
    remote_ip_blocks: tuple[str, ...] = ()
    not_remote_ip_blocks: tuple[str, ...] = ()
    trust_domains: tuple[str, ...] = ()
    not_trust_domains: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    hosts: tuple[str, ...] = ()
    not_hosts: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    not_ports: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    not_methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    not_paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleFrom:
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class RuleTo:
    operation: Operation | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    key: str = ""
    values: tuple[str, ...] = ()
    not_values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    from_: tuple[RuleFrom, ...] = jfield("from", default=())
    to: tuple[RuleTo, ...] = ()
    when: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class ExtensionProvider:
    name: str = ""


@dataclass(frozen=True, slots=True)
class AuthorizationPolicySpec:
    selector: WorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: tuple[PolicyTargetReference, ...] = ()
    rules: tuple[Rule, ...] = ()
    action: AuthorizationAction = "ALLOW"
    provider: ExtensionProvider | None = None


@dataclass(frozen=True, slots=True)
class AuthorizationPolicy(Resource):
    KIND: ClassVar[str] = "AuthorizationPolicy"
    meta: ObjectMeta
    spec: AuthorizationPolicySpec


# --- RequestAuthentication -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JWTHeader:
    name: str = ""
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class ClaimToHeader:
    header: str = ""
    claim: str = ""


@dataclass(frozen=True, slots=True)
class JWTRule:
    issuer: str = ""
    audiences: tuple[str, ...] = ()
    jwks_uri: str = ""
    jwks: str = ""
    from_headers: tuple[JWTHeader, ...] = ()
    from_params: tuple[str, ...] = ()
    from_cookies: tuple[str, ...] = ()
    output_payload_to_header: str = ""
    forward_original_token: bool = False
    output_claim_to_headers: tuple[ClaimToHeader, ...] = ()
    timeout: timedelta | None = None
    space_delimited_claims: tuple[str, ...] = ()
    presence: Literal["REQUIRED", "OPTIONAL"] | None = None


@dataclass(frozen=True, slots=True)
class RequestAuthenticationSpec:
    selector: WorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: tuple[PolicyTargetReference, ...] = ()
    jwt_rules: tuple[JWTRule, ...] = ()


@dataclass(frozen=True, slots=True)
class RequestAuthentication(Resource):
    KIND: ClassVar[str] = "RequestAuthentication"
    meta: ObjectMeta
    spec: RequestAuthenticationSpec
