"""BackendTLSPolicy -> TLS from gateways and sidecars to the backend, and the policies' status
(Istio's BackendTLSPolicyCollection).

A policy targets Services or ServiceEntries of its namespace, optionally one port by name
(``sectionName``): SIMPLE TLS with the policy's hostname as SNI, its subject alt names, and as CA
``configmap://<ns>/<name>`` (the ConfigMap's ``ca.crt``), the system's, or ``invalid://`` when
the reference is bad, which fails the calls rather than sending them without the promised
verification. Per target and port the oldest policy wins; the others are reported Conflicted.
The parts become DestinationRules in ``backend_rules``.

Status: one ancestor per target (controller ``istio.io/mesh-controller``), and one per Gateway
whose routes send to a target (``istio.io/gateway-controller``), as Istio reports them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from controlplane.model.destination_rule import ClientTLSSettings
from controlplane.model.gateway_api import (
    GROUP,
    AnyRoute,
    BackendTLSPolicy,
    BackendTLSPolicyValidation,
)
from controlplane.translate.gateway_api.backend_rules import (
    VALID,
    PolicyPart,
    Target,
    ignored,
    precedence,
    resolve_target,
    target_status,
)
from controlplane.translate.gateway_api.gateways import GatewayConversion
from controlplane.translate.gateway_api.inputs import ConversionInputs
from controlplane.translate.gateway_api.status import (
    CONTROLLER_NAME,
    MESH_CONTROLLER,
    Condition,
    ObjectStatus,
    ParentRefStatus,
    RouteParentStatus,
)
from controlplane.translate.gateway_api.tls import CONFIG_MAP_PREFIX

INVALID_CREDENTIAL = "invalid://"


def convert_backend_tls_policies(
    inputs: ConversionInputs, gateways: GatewayConversion, routes: Iterable[AnyRoute]
) -> tuple[list[PolicyPart], list[ObjectStatus]]:
    gateways_by_backend = _gateways_by_backend(routes, gateways, inputs)
    winners: dict[tuple[Target, str | None], BackendTLSPolicy] = {}
    parts: list[PolicyPart] = []
    statuses = []
    for policy in sorted(inputs.backend_tls_policies, key=precedence):
        ancestors, found = _convert_policy(policy, inputs, winners, gateways_by_backend)
        parts += found
        statuses.append(ObjectStatus("BackendTLSPolicy", policy.meta.namespace, policy.meta.name,
                                     parents=tuple(ancestors)))
    return parts, statuses


def _convert_policy(
    policy: BackendTLSPolicy, inputs: ConversionInputs, winners: dict[tuple[Target, str | None], BackendTLSPolicy],
    gateways_by_backend: Mapping[Target, set[tuple[str, str]]],
) -> tuple[list[RouteParentStatus], list[PolicyPart]]:
    ns = policy.meta.namespace
    if (opted_out := ignored(policy, policy.spec.target_refs)) is not None:
        return list(opted_out), []
    accepted = Condition("Accepted", "True", "Accepted", VALID)
    resolved = Condition("ResolvedRefs", "True", "ResolvedRefs", VALID)
    tls, accepted, resolved = _tls(policy.spec.validation, ns, inputs, accepted, resolved)
    ancestors: list[RouteParentStatus] = []
    parts: list[PolicyPart] = []
    gateways: set[tuple[str, str]] = set()
    conditions = (accepted, resolved)
    for ref in policy.spec.target_refs:
        conditions = (accepted, resolved)
        target, hosts, error = resolve_target(ref, ns, inputs)
        if error is None and target is not None:
            winner = winners.setdefault((target, ref.section_name or None), policy)
            if winner is not policy:
                error = Condition("Accepted", "False", "Conflicted",
                                  f'Conflicts with BackendTLSPolicy "{winner.meta.name}" targeting the same backend')
        if error is not None:
            conditions = (error, resolved)
        elif target is not None:
            parts += [PolicyPart(policy, target, host, ref.section_name or None, tls=tls) for host in hosts]
            gateways |= gateways_by_backend.get(target, set())
        ancestors.append(RouteParentStatus(target_status(ref), MESH_CONTROLLER, conditions))
    for gw_ns, gw_name in sorted(gateways):
        # Istio reports a Gateway with the conditions of the policy's last target.
        ref_status = ParentRefStatus(gw_name, group=GROUP, kind="Gateway")
        ancestors.append(RouteParentStatus(ref_status, CONTROLLER_NAME, conditions))
    return ancestors, parts


def _tls(
    validation: BackendTLSPolicyValidation, ns: str, inputs: ConversionInputs, accepted: Condition,
    resolved: Condition,
) -> tuple[ClientTLSSettings, Condition, Condition]:
    """The client TLS of the policy and its conditions (Istio's getBackendTLSCredentialName)."""
    sans = tuple(s.hostname if s.type == "Hostname" else s.uri for s in validation.subject_alt_names)
    credential = ""
    if validation.well_known_ca_certificates:
        if validation.well_known_ca_certificates != "System":
            accepted = Condition("Accepted", "False", "Invalid",
                                 f"Unknown wellKnownCACertificates: {validation.well_known_ca_certificates}")
    elif validation.ca_certificate_refs:
        ref = validation.ca_certificate_refs[0]
        problem: tuple[str, str, str] | None = None  # (ResolvedRefs reason, its wording, what is wrong)
        if (ref.group, ref.kind) not in (("", "ConfigMap"), ("core", "ConfigMap")):
            problem = ("InvalidKind", "Certificate reference not supported", f"unsupported kind {ref.kind}")
        elif (config_map := inputs.config_maps.get((ns, ref.name))) is None:
            problem = ("InvalidCACertificateRef", "Certificate reference not found",
                       f"reference {ns}/{ref.name} (of kind ConfigMap) not found")
        elif config_map.ca_certificate is None:
            found = ", ".join(sorted([*config_map.data, *config_map.binary_data]))
            problem = ("InvalidCACertificateRef", "Certificate invalid",
                       f"found secret, but didn't have expected keys cacert or ca.crt; found: {found}")
        if problem is None:
            credential = f"{CONFIG_MAP_PREFIX}{ns}/{ref.name}"
            if len(validation.ca_certificate_refs) > 1:
                accepted = Condition("Accepted", "True", "Accepted",
                                     VALID + "; warning: only the first caCertificateRefs will be used")
        else:
            reason, wording, detail = problem
            resolved = Condition("ResolvedRefs", "False", reason, f"{wording}: {detail}")
            accepted = Condition("Accepted", "False", "NoValidCACertificate", f"Certificate reference invalid: {detail}")
            credential = INVALID_CREDENTIAL  # fail closed: nothing will verify the backend
    tls = ClientTLSSettings(mode="SIMPLE", sni=validation.hostname, subject_alt_names=sans,
                            credential_name=credential)
    return tls, accepted, resolved


def _gateways_by_backend(
    routes: Iterable[AnyRoute], gateways: GatewayConversion, inputs: ConversionInputs
) -> dict[Target, set[tuple[str, str]]]:
    """Which of our Gateways route to which Service (Istio's ancestor backends): a route's
    Service backends, for each Gateway (or ListenerSet's Gateway) it names as parent."""
    listener_set_parents = {
        (ls.meta.namespace, ls.meta.name): (ls.spec.parent_ref.namespace or ls.meta.namespace, ls.spec.parent_ref.name)
        for ls in inputs.listener_sets
    }
    out: dict[Target, set[tuple[str, str]]] = {}
    for route in routes:
        ns = route.meta.namespace
        parents = set()
        for ref in route.spec.parent_refs:
            key = (ref.namespace or ns, ref.name)
            if (ref.group or GROUP) != GROUP:
                continue
            if (ref.kind or "Gateway") == "Gateway" and key in gateways.states:
                parents.add(key)
            elif ref.kind == "ListenerSet" and listener_set_parents.get(key) in gateways.states:
                parents.add(listener_set_parents[key])
        if not parents:
            continue
        for rule in route.spec.rules:
            for backend in rule.backend_refs:
                if (backend.group or "", backend.kind or "Service") == ("", "Service"):
                    out.setdefault(("Service", backend.namespace or ns, backend.name), set()).update(parents)
    return out
