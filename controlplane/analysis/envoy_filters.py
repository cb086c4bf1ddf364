"""Checks on EnvoyFilters, with the translator's own patch engine:

- errors: a patch value that is not the Envoy message its ``applyTo`` patches (an unknown
  ``@type``, a field the message lacks): istiod's webhook refuses these; the server leaves
  such a patch out;
- errors: a patch whose result Envoy would refuse on a workload of the input (the server
  leaves it out for that workload's proxy);
- warnings: a ``workloadSelector`` that selects no workload, and a patch that matches
  nothing in the config of any workload the EnvoyFilter selects (Istio's envoy filter
  metrics would show it never applied).

Workloads come from the input (Pods, WorkloadEntries, pod templates); a folder of
EnvoyFilters alone says nothing about what runs, so the two warnings need some workload.
Workloads labeled ``istio: ingressgateway`` or ``egressgateway`` are gateways (GATEWAY context).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from controlplane.analysis.inputs import Inputs
from controlplane.analysis.policies import snapshot_of
from controlplane.analysis.workloads import Workload
from controlplane.model.base import Origin, ResourceKey
from controlplane.model.envoy_filter import EnvoyFilter
from controlplane.model.labels import selector_matches
from controlplane.model.mesh import MeshConfig
from controlplane.sources.diagnostics import ERROR, WARNING, Diagnostic
from controlplane.sources.parsing import Parsed
from controlplane.translate.builders import BUILDERS
from controlplane.translate.envoy_filter.apply import inbound_hosts, patch_config
from controlplane.translate.index.context import build_push_context
from controlplane.translate.index.envoy_filters import EnvoyFilterProblem, PatchId
from controlplane.translate.proxy import ROUTER, SIDECAR, Proxy

GATEWAY_LABELS = frozenset({"ingressgateway", "egressgateway"})
MAX_PROXIES = 200  # distinct workloads translated; more say little new and cost time


class EnvoyFilterChecks:
    def __init__(self, inputs: Inputs, workloads: Sequence[Workload], mesh: MeshConfig) -> None:
        self.inputs = inputs
        self.workloads = workloads
        self.mesh = mesh

    def check(self) -> list[Diagnostic]:
        parsed = {p.key: p for p in self.inputs.valid(EnvoyFilter.KIND) if p.key is not None}
        if not parsed:
            return []
        ctx = build_push_context(snapshot_of(self.inputs), self.mesh)
        index = ctx.envoy_filters
        found: dict[tuple[PatchId, str], EnvoyFilterProblem] = {}
        for problem in index.compile_problems:
            found[(problem.patch, problem.field)] = problem
        selected: dict[ResourceKey, int] = {}
        applied: set[PatchId] = set()
        for proxy in self._proxies()[:MAX_PROXIES]:
            patches = index.patches_for(self.mesh.root_namespace, proxy.namespace, proxy.label_map)
            if not patches:
                continue
            for key in {p.id.key for p in patches.all()}:
                selected[key] = selected.get(key, 0) + 1
            result = patch_config(proxy.kind, BUILDERS[proxy.kind].build(ctx, proxy), patches, inbound_hosts(ctx, proxy))
            applied |= result.applied
            for problem in result.problems:
                found.setdefault((problem.patch, problem.field), problem)
        out = [self._diagnostic(parsed, p, ERROR) for p in found.values() if p.patch.key in parsed]
        if self.workloads:
            out += self._unused(parsed, selected, applied, {pid for pid, _ in found})
        return out

    def _proxies(self) -> list[Proxy]:
        seen: dict[tuple[str, str, tuple[tuple[str, str], ...]], Proxy] = {}
        for w in self.workloads:
            kind = ROUTER if w.labels.get("istio") in GATEWAY_LABELS else SIDECAR
            labels = tuple(sorted(w.labels.items()))
            if (kind, w.namespace, labels) not in seen:
                seen[(kind, w.namespace, labels)] = Proxy.make(
                    kind, w.namespace, labels=dict(w.labels), ips=w.ips or ("10.0.0.1",),
                    service_account=w.service_account or "default", workload_name=w.name,
                )
        return list(seen.values())

    def _unused(
        self, parsed: Mapping[ResourceKey, Parsed], selected: Mapping[ResourceKey, int],
        applied: set[PatchId], failed: set[PatchId],
    ) -> list[Diagnostic]:
        out = []
        for key, p in parsed.items():
            ef = p.resource
            assert isinstance(ef, EnvoyFilter)
            if ef.spec.target_refs:
                continue
            if key not in selected:
                if ef.spec.workload_selector is not None and not any(
                    selector_matches(ef.spec.workload_selector.labels, w.labels) for w in self.workloads
                ):
                    out.append(_at(p, "spec.workloadSelector", "selects no workload of the input", WARNING))
                continue
            for index, _ in enumerate(ef.spec.config_patches):
                pid = PatchId(key, index)
                if pid not in applied and pid not in failed:
                    out.append(_at(p, pid.path, (
                        f"this patch matches nothing in the config of the {selected[key]} workload(s) the "
                        "EnvoyFilter selects"), WARNING))
        return out

    @staticmethod
    def _diagnostic(parsed: Mapping[ResourceKey, Parsed], problem: EnvoyFilterProblem, severity: str) -> Diagnostic:
        path = f"{problem.patch.path}.{problem.field}" if problem.field else problem.patch.path
        return _at(parsed[problem.patch.key], path, problem.message, severity)


def _at(parsed: Parsed, path: str, message: str, severity: str) -> Diagnostic:
    document = parsed.document
    return Diagnostic(Origin(document.origin.file, document.line_of(path)), parsed.key, path, message, severity)
