"""Checks on AuthorizationPolicy and RequestAuthentication (all warnings), where
``istioctl analyze`` and istiod warn:

- a policy that selects no workload (Istio's IST0127 ``NoMatchingWorkloadsFound``): its
  selector matches no Pod, WorkloadEntry or pod template of its namespace (of any namespace
  for a selector in the root namespace), or, without a selector, its namespace has no
  workload. Checked only when the input holds workloads at all: a folder of policies alone
  says nothing about what runs;
- ``source.namespaces`` / ``notNamespaces`` naming a namespace nothing in the input is in
  (Istio's IST0101 ``ReferencedResourceNotFound``; ``*``, ``prefix*`` and ``*suffix`` as Istio);
- principals, namespaces and service accounts (and their ``when`` keys), read from the
  caller's mTLS certificate, on workloads whose PeerAuthentication DISABLEs mTLS: they
  never match there (a ``not`` form matches every request);
- HTTP-only fields (methods, paths, hosts, request principals, headers, JWT claims) on a
  rule whose ports are all TCP on the workloads it selects: Istio leaves such an ALLOW rule
  out (it allows nothing) and drops the fields from a DENY, AUDIT or CUSTOM rule (it matches
  every connection its other fields match);
- a CUSTOM policy whose provider is not an ``extensionProviders`` entry of the mesh config
  (istiod then denies every request to the workloads it selects).

Which policy applies to which workload, the mTLS mode of a workload, the ports it serves
and which fields are HTTP-only are the translator's own answers (the policy index, the
PeerAuthentication composition, the sidecar builder's inbound ports, the RBAC terms), so
``analyze`` and the config sent to proxies cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controlplane.analysis.inputs import Inputs
from controlplane.analysis.workloads import Workload
from controlplane.model.base import Origin, Resource, ResourceKey
from controlplane.model.labels import selector_labels
from controlplane.model.mesh import MeshConfig
from controlplane.model.mesh_config import IstioMeshConfig
from controlplane.model.security import (
    AuthorizationPolicy,
    Condition,
    PeerAuthentication,
    RequestAuthentication,
    Rule,
)
from controlplane.sources.diagnostics import WARNING, Diagnostic
from controlplane.sources.parsing import Parsed
from controlplane.store import Snapshot
from controlplane.translate.authz.conditions import UnknownAttribute, condition_terms
from controlplane.translate.authz.operations import operation_terms
from controlplane.translate.authz.sources import source_terms
from controlplane.translate.authz.trust_domain import TrustDomainBundle
from controlplane.translate.authz.workload import trust_domain_bundle
from controlplane.translate.builders.sidecar import inbound_ports
from controlplane.translate.index.context import PushContext, build_push_context
from controlplane.translate.peer_authentication import InboundMtls, inbound_mtls
from controlplane.translate.protocol import is_http
from controlplane.translate.proxy import SIDECAR, Proxy
from controlplane.translate.scope import sidecar_scope
from controlplane.translate.transport import DISABLE

# RBAC attribute -> the API fields (values, notValues) that set it, in from.source and to.operation.
SOURCE_FIELDS = {
    "source.principal": ("principals", "notPrincipals"),
    "source.trustDomain": ("trustDomains", "notTrustDomains"),
    "request.auth.principal": ("requestPrincipals", "notRequestPrincipals"),
    "source.serviceAccount": ("serviceAccounts", "notServiceAccounts"),
    "source.namespace": ("namespaces", "notNamespaces"),
    "remote.ip": ("remoteIpBlocks", "notRemoteIpBlocks"),
    "source.ip": ("ipBlocks", "notIpBlocks"),
}
OPERATION_FIELDS = {
    "host": ("hosts", "notHosts"),
    "method": ("methods", "notMethods"),
    "path": ("paths", "notPaths"),
    "destination.port": ("ports", "notPorts"),
}
# Attributes Envoy reads from the peer's certificate: empty without mTLS.
FROM_CERTIFICATE = frozenset(
    {"source.principal", "source.namespace", "source.serviceAccount", "source.trustDomain"}
)
# Telemetry provider kinds of the mesh config (model.mesh_config.ExtensionProvider.kind).
TELEMETRY_PROVIDER_KINDS = frozenset(
    {"envoy_file_access_log", "zipkin", "opentelemetry", "prometheus"}
)
# What a DENY-like rule does to a connection once its HTTP-only fields are dropped.
_VERB = {"DENY": "denies", "AUDIT": "audits", "CUSTOM": "sends to the external authorizer"}
SHOWN = 3  # workloads named in a message before "and N more"


@dataclass(frozen=True, slots=True)
class Target:
    """One workload as the translator sees its sidecar: inbound ports and mTLS mode."""

    workload: Workload
    proxy: Proxy
    ports: Mapping[int, str]  # inbound port -> protocol
    mtls: InboundMtls


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a rule: its path, its RBAC attribute, whether it is a ``not`` form, and
    whether only HTTP chains can check it."""

    path: str
    attribute: str
    negated: bool
    http_only: bool


def snapshot_of(inputs: Inputs) -> Snapshot:
    """The valid documents as the store would hold them."""
    by_kind: dict[str, dict[ResourceKey, Resource]] = {}
    for parsed in inputs.valid():
        if parsed.key is not None and parsed.resource is not None:
            by_kind.setdefault(parsed.key.kind, {})[parsed.key] = parsed.resource
    return Snapshot(by_kind)


def namespace_match(namespace: str, pattern: str) -> bool:
    """Istio's analyzer: ``*``, ``*suffix``, ``prefix*``, else equal ignoring case."""
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return namespace.endswith(pattern[1:])
    if pattern.endswith("*"):
        return namespace.startswith(pattern[:-1])
    return namespace.lower() == pattern.lower()


def _warn(parsed: Parsed, path: str, message: str) -> Diagnostic:
    document = parsed.document
    return Diagnostic(
        Origin(document.origin.file, document.line_of(path)), parsed.key, path, message, WARNING
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _shown_labels(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _names(targets: Sequence[Target]) -> str:
    names = [t.workload.display for t in targets]
    more = len(names) - SHOWN
    return ", ".join(names[:SHOWN]) + (f" and {more} more" if more > 0 else "")


class PolicyChecks:
    def __init__(
        self,
        inputs: Inputs,
        workloads: Sequence[Workload],
        mesh: MeshConfig,
        mesh_config: IstioMeshConfig | None,
    ) -> None:
        self.inputs = inputs
        self.workloads = list(workloads)
        self.mesh = mesh
        self.mesh_config = mesh_config
        self._ctx: PushContext | None = None
        self._targets: list[Target] | None = None

    @property
    def ctx(self) -> PushContext:
        """The translator's push context of the input (built on first use: only policies
        need it)."""
        if self._ctx is None:
            self._ctx = build_push_context(snapshot_of(self.inputs), self.mesh)
        return self._ctx

    @property
    def bundle(self) -> TrustDomainBundle:
        return trust_domain_bundle(self.ctx)

    # --- what the translator would do -------------------------------------------------------
    @property
    def targets(self) -> list[Target]:
        if self._targets is None:
            self._targets = [self._target(w) for w in self.workloads]
        return self._targets

    def _target(self, workload: Workload) -> Target:
        proxy = Proxy.make(
            SIDECAR,
            workload.namespace,
            labels=workload.labels,
            ips=workload.ips,
            service_account=workload.service_account or "default",
            workload_name=workload.name,
            pod_name=workload.name,
            domain_suffix=self.mesh.domain_suffix,
        )
        ports = {
            p.port: p.protocol
            for p in inbound_ports(self.ctx, proxy, sidecar_scope(self.ctx, proxy))
        }
        mtls = inbound_mtls(self.ctx, workload.namespace, proxy.label_map)
        return Target(workload, proxy, ports, mtls)

    def _selected(self, policy: AuthorizationPolicy | RequestAuthentication) -> list[Target]:
        """The workloads ``policy`` applies to, by the policy index's own choice."""
        policies = self.ctx.policies
        index = (
            policies.authorization_policies
            if isinstance(policy, AuthorizationPolicy)
            else policies.request_authentications
        )
        root = self.mesh.root_namespace
        return [
            t
            for t in self.targets
            if any(
                p is policy
                for p in index.applicable(root, t.workload.namespace, t.workload.labels).all()
            )
        ]

    # --- checks --------------------------------------------------------------------------------
    def check(self) -> list[Diagnostic]:
        out: list[Diagnostic] = []
        for parsed in self.inputs.valid(AuthorizationPolicy.KIND):
            policy = parsed.resource
            assert isinstance(policy, AuthorizationPolicy)
            out.extend(self.check_namespaces(parsed, policy))
            out.extend(self.check_provider(parsed, policy))
            if policy.spec.target_ref or policy.spec.target_refs:
                continue  # attached to gateways or services, not selected by labels
            selected = self._selected(policy)
            if not selected:
                out.extend(self.check_selects_workload(parsed, policy))
                continue
            for index, rule in enumerate(policy.spec.rules):
                fields = list(self._fields(policy, index, rule))
                out.extend(self.check_mtls_fields(parsed, policy, rule, fields, selected))
                out.extend(self.check_http_fields_on_tcp(parsed, policy, rule, fields, selected))
        for parsed in self.inputs.valid(RequestAuthentication.KIND):
            authn = parsed.resource
            assert isinstance(authn, RequestAuthentication)
            if authn.spec.target_ref or authn.spec.target_refs:
                continue
            if not self._selected(authn):
                out.extend(self.check_selects_workload(parsed, authn))
        return out

    def check_selects_workload(
        self, parsed: Parsed, policy: AuthorizationPolicy | RequestAuthentication
    ) -> Iterator[Diagnostic]:
        if not self.workloads:
            return
        labels = selector_labels(policy.spec.selector)
        namespace, root = policy.meta.namespace, self.mesh.root_namespace
        kinds = "Pod, WorkloadEntry or pod template"
        if not labels:
            yield _warn(
                parsed,
                "metadata.namespace",
                f"selects no workload: namespace {namespace} has no {kinds}",
            )
        elif namespace == root:
            yield _warn(
                parsed,
                "spec.selector.matchLabels",
                f"selects no workload: no {kinds} in any namespace has the labels {_shown_labels(labels)} "
                f"(a selector in the root namespace {root} applies mesh-wide)",
            )
        else:
            yield _warn(
                parsed,
                "spec.selector.matchLabels",
                f"selects no workload: no {kinds} in namespace {namespace} has the labels {_shown_labels(labels)}",
            )

    def check_namespaces(self, parsed: Parsed, policy: AuthorizationPolicy) -> Iterator[Diagnostic]:
        known = self._namespaces()
        rules = _list(_dict(parsed.document.body.get("spec")).get("rules"))
        for i, rule in enumerate(rules):
            for j, source in enumerate(_list(_dict(rule).get("from"))):
                fields = _dict(_dict(source).get("source"))
                for name in ("namespaces", "notNamespaces"):
                    for k, pattern in enumerate(_list(fields.get(name))):
                        if isinstance(pattern, str) and not any(
                            namespace_match(ns, pattern) for ns in known
                        ):
                            yield _warn(
                                parsed,
                                f"spec.rules[{i}].from[{j}].source.{name}[{k}]",
                                f'referenced namespace not found: "{pattern}" (no Namespace and no '
                                "resource of the input is in it)",
                            )

    def _namespaces(self) -> set[str]:
        names = {
            p.key.namespace for p in self.inputs.documents if p.key is not None and p.key.namespace
        }
        names |= {
            p.key.name
            for p in self.inputs.documents
            if p.key is not None and p.key.kind == "Namespace"
        }
        names |= {w.namespace for w in self.workloads}
        return names

    def check_provider(self, parsed: Parsed, policy: AuthorizationPolicy) -> Iterator[Diagnostic]:
        provider = policy.spec.provider
        if policy.spec.action != "CUSTOM" or provider is None or not provider.name:
            return
        providers = self.mesh_config.extension_providers if self.mesh_config is not None else ()
        found = next((p for p in providers if p.name == provider.name), None)
        if found is None:
            known = (
                ", ".join(
                    sorted(p.name for p in providers if p.kind not in TELEMETRY_PROVIDER_KINDS)
                )
                or "none"
            )
            hint = (
                ""
                if self.mesh_config is not None
                else "; no mesh config was given (--mesh-config FILE)"
            )
            yield _warn(
                parsed,
                "spec.provider.name",
                f'unknown provider "{provider.name}": not an extensionProviders entry of the mesh config '
                f"(known: {known}{hint}); Istio then denies every request to the workloads this policy selects",
            )
        elif found.kind in TELEMETRY_PROVIDER_KINDS:
            yield _warn(
                parsed,
                "spec.provider.name",
                f'provider "{provider.name}" is a {found.kind} provider, not an external authorizer '
                "(envoyExtAuthzHttp or envoyExtAuthzGrpc); Istio then denies every request to the "
                "workloads this policy selects",
            )

    # --- rule fields -----------------------------------------------------------------------------
    def _fields(self, policy: AuthorizationPolicy, i: int, rule: Rule) -> Iterator[Field]:
        """Every field a rule sets, with the translator's view of it (attribute, HTTP-only)."""
        namespace = policy.meta.namespace
        for j, source in enumerate(rule.from_):
            if source.source is None:
                continue
            for term in source_terms(source.source, namespace, self.bundle):
                names = SOURCE_FIELDS.get(term.key)
                if names is None:
                    continue
                for name, values, negated in (
                    (names[0], term.values, False),
                    (names[1], term.not_values, True),
                ):
                    if values:
                        path = f"spec.rules[{i}].from[{j}].source.{name}"
                        yield Field(path, term.key, negated, term.http_only)
        for j, to in enumerate(rule.to):
            if to.operation is None:
                continue
            for term in operation_terms(to.operation):
                names = OPERATION_FIELDS.get(term.key)
                if names is None:
                    continue
                for name, values, negated in (
                    (names[0], term.values, False),
                    (names[1], term.not_values, True),
                ):
                    if values:
                        path = f"spec.rules[{i}].to[{j}].operation.{name}"
                        yield Field(path, term.key, negated, term.http_only)
        for k, condition in enumerate(rule.when):
            yield from self._condition_fields(namespace, f"spec.rules[{i}].when[{k}]", condition)

    def _condition_fields(self, namespace: str, path: str, condition: Condition) -> Iterator[Field]:
        try:
            terms = condition_terms((condition,), namespace, self.bundle)
        except UnknownAttribute:
            return
        for term in (*terms.permissions, *terms.principals):
            if term.values:
                yield Field(f"{path}.values", term.key, False, term.http_only)
            if term.not_values:
                yield Field(f"{path}.notValues", term.key, True, term.http_only)

    @staticmethod
    def _rule_ports(rule: Rule) -> set[int] | None:
        """The ports a rule is limited to (every ``to`` names ports), or None: all ports."""
        if not rule.to or any(t.operation is None or not t.operation.ports for t in rule.to):
            return None
        return {int(p) for t in rule.to if t.operation for p in t.operation.ports if p.isdigit()}

    def check_mtls_fields(
        self,
        parsed: Parsed,
        policy: AuthorizationPolicy,
        rule: Rule,
        fields: list[Field],
        selected: list[Target],
    ) -> Iterator[Diagnostic]:
        certificate_fields = [f for f in fields if f.attribute in FROM_CERTIFICATE]
        if not certificate_fields:
            return
        limited = self._rule_ports(rule)

        def off(target: Target) -> bool:
            ports = sorted(limited) if limited is not None else sorted(target.ports)
            modes = [target.mtls.mode_for(p) for p in ports] or [target.mtls.mode]
            return all(mode == DISABLE for mode in modes)

        disabled = [t for t in selected if off(t)]
        if not disabled:
            return
        who = (
            "every workload this policy selects"
            if len(disabled) == len(selected)
            else "some workloads it selects"
        )
        decided = self._disabling_policy(disabled[0])
        by = f" by PeerAuthentication {decided}" if decided else ""
        for f in certificate_fields:
            effect = (
                "it then matches every request there" if f.negated else "it never matches there"
            )
            yield _warn(
                parsed,
                f.path,
                f"read from the caller's mTLS certificate, but mTLS is DISABLE{by} for "
                f"{who} ({_names(disabled)}): {effect}",
            )

    def _disabling_policy(self, target: Target) -> str:
        """The most specific PeerAuthentication that sets DISABLE for ``target``, as ns/name."""
        levels = self.ctx.policies.peer_authentications.applicable(
            self.mesh.root_namespace, target.workload.namespace, target.workload.labels
        ).first_per_level()
        for policy in reversed(levels):
            if policy is not None and _disables(policy):
                return f"{policy.meta.namespace}/{policy.meta.name}"
        return ""

    def check_http_fields_on_tcp(
        self,
        parsed: Parsed,
        policy: AuthorizationPolicy,
        rule: Rule,
        fields: list[Field],
        selected: list[Target],
    ) -> Iterator[Diagnostic]:
        http_fields = [f for f in fields if f.http_only]
        if not http_fields:
            return
        limited = self._rule_ports(rule)
        covered = {
            port: protocol
            for t in selected
            for port, protocol in t.ports.items()
            if limited is None or port in limited
        }
        if not covered or any(is_http(protocol) for protocol in covered.values()):
            return
        ports = ", ".join(str(p) for p in sorted(covered))
        action = policy.spec.action
        for f in http_fields:
            if action == "ALLOW":
                effect = "Istio leaves the rule out there, so it allows nothing"
            else:
                effect = f"Istio ignores this field there, so the rule {_VERB[action]} every connection its other fields match"
            yield _warn(
                parsed,
                f.path,
                f"HTTP only, but every port this rule covers on the workloads it selects is TCP ({ports}): {effect}",
            )


def _disables(policy: PeerAuthentication) -> bool:
    spec = policy.spec
    modes = [spec.mtls.mode if spec.mtls is not None else "UNSET"]
    modes += [m.mode for _, m in spec.port_level_modes]
    return DISABLE in modes
