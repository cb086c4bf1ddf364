"""Gateway API status, shown by ``analyze`` (warnings): the conditions Istio would write on
each Gateway, listener and route parent that are not as they should be (a route attached to
no listener, a backend not found, a reference not permitted, an unsupported protocol, ...),
computed by the same conversion the translator uses.

The Service Istio would create for a Gateway without ``addresses`` is not expected in the
folder (Programmed is not reported for those). Each warning points at the field concerned: ``spec.listeners[i]`` for a listener,
``spec.parentRefs[i]`` for a route's parent, ``spec.rules`` for unresolved backends.
"""

from __future__ import annotations

from collections.abc import Iterator

from controlplane.analysis.inputs import Inputs
from controlplane.model.base import Origin, ResourceKey
from controlplane.model.gateway_api import (
    GATEWAY_API_KINDS,
    AnyRoute,
    BackendTLSPolicy,
    KubernetesGateway,
    XBackendTrafficPolicy,
)
from controlplane.sources.diagnostics import WARNING, Diagnostic
from controlplane.sources.parsing import Parsed
from controlplane.translate.gateway_api import (
    Condition,
    ObjectStatus,
    convert,
    inputs_from_snapshot,
)
from controlplane.translate.gateway_api.inputs import INPUT_KINDS
from controlplane.translate.gateway_api.status import MESH_CONTROLLER, ParentRefStatus

_NEGATIVE = frozenset({"Conflicted"})
_STORE_KIND = {"Gateway": KubernetesGateway.KIND}


def _healthy(c: Condition) -> bool:
    # Accepted=True with reason ListenersNotValid: some listeners of the Gateway are not.
    return c.status == ("False" if c.type in _NEGATIVE else "True") and c.reason != "ListenersNotValid"


class _Resources:
    """The analyzed documents as the conversion reads a snapshot."""

    def __init__(self, inputs: Inputs) -> None:
        self.inputs = inputs

    def of_kind(self, kind: str) -> list:  # type: ignore[type-arg]
        return [p.resource for p in self.inputs.valid(kind)] if kind in INPUT_KINDS else []


class GatewayApiChecks:
    def __init__(self, inputs: Inputs, domain_suffix: str) -> None:
        self.inputs = inputs
        self.domain_suffix = domain_suffix
        self.parsed: dict[ResourceKey, Parsed] = {
            p.key: p for kind in GATEWAY_API_KINDS for p in inputs.valid(kind) if p.key is not None
        }

    def check(self) -> list[Diagnostic]:
        if not self.parsed:
            return []
        converted = convert(inputs_from_snapshot(_Resources(self.inputs), self.domain_suffix))
        return [d for status in converted.statuses for d in self._diagnostics(status)]

    def _diagnostics(self, status: ObjectStatus) -> Iterator[Diagnostic]:
        key = ResourceKey(_STORE_KIND.get(status.kind, status.kind), status.namespace, status.name)
        parsed = self.parsed.get(key)
        if parsed is None:
            return
        gateway = parsed.resource
        for c in status.conditions:
            # Istio creates the Service of a Gateway without addresses: a folder seldom has it.
            managed = isinstance(gateway, KubernetesGateway) and not gateway.spec.addresses
            if not _healthy(c) and not (managed and c.type == "Programmed"):
                yield self._warn(parsed, "spec", c)
        for index, listener in enumerate(status.listeners):
            if isinstance(gateway, KubernetesGateway):
                index = next((i for i, l in enumerate(gateway.spec.listeners) if l.name == listener.name), index)
            for c in listener.conditions:
                if not _healthy(c):
                    yield self._warn(parsed, f"spec.listeners[{index}]", c)
        if isinstance(parsed.resource, BackendTLSPolicy | XBackendTrafficPolicy):
            yield from self._policy_diagnostics(parsed, parsed.resource, status)
            return
        route = parsed.resource
        for parent in status.parents:
            index = _parent_index(route, parent.parent_ref)  # type: ignore[arg-type]
            for c in parent.conditions:
                if _healthy(c):
                    continue
                path = "spec.rules" if c.type == "ResolvedRefs" else f"spec.parentRefs[{index}]"
                yield self._warn(parsed, path, c)

    def _policy_diagnostics(
        self, parsed: Parsed, policy: BackendTLSPolicy | XBackendTrafficPolicy, status: ObjectStatus
    ) -> Iterator[Diagnostic]:
        """A policy's ancestors: one per target (the Gateways' repeat the last target's)."""
        reported: set[tuple[str, str]] = set()
        for ancestor in status.parents:
            if ancestor.controller_name != MESH_CONTROLLER:
                continue
            ref = ancestor.parent_ref
            index = next((i for i, t in enumerate(policy.spec.target_refs)
                          if (t.name, t.kind, t.section_name) == (ref.name, ref.kind, ref.section_name)), 0)
            for c in ancestor.conditions:
                about_ca = c.type == "ResolvedRefs" or c.reason == "NoValidCACertificate"
                path = "spec.validation.caCertificateRefs[0]" if about_ca else f"spec.targetRefs[{index}]"
                if not _healthy(c) and (path, c.reason) not in reported:
                    reported.add((path, c.reason))
                    yield self._warn(parsed, path, c)

    @staticmethod
    def _warn(parsed: Parsed, path: str, c: Condition) -> Diagnostic:
        document = parsed.document
        message = f"{c.type}={c.status} ({c.reason}): {c.message}"
        return Diagnostic(Origin(document.origin.file, document.line_of(path)), parsed.key, path, message, WARNING)


def _parent_index(route: AnyRoute, ref: ParentRefStatus) -> int:
    wanted = (ref.name, ref.namespace, ref.section_name, ref.port, ref.kind)
    for index, candidate in enumerate(route.spec.parent_refs):
        if (candidate.name, candidate.namespace, candidate.section_name, candidate.port, candidate.kind) == wanted:
            return index
    return 0
