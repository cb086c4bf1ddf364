"""Offline validation of configuration files, as ``istioctl analyze`` does.

``analyze_paths`` reads files and folders, validates every document with the model
(errors with the line of the field) and cross-references what passed (warnings): routing
(``crossref.py``) and AuthorizationPolicy / RequestAuthentication (``policies.py``); the
Gateway API's status conditions as Istio would write them (``gateway_api.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from controlplane.analysis.crossref import CrossReferences
from controlplane.analysis.envoy_filters import EnvoyFilterChecks
from controlplane.analysis.gateway_api import GatewayApiChecks
from controlplane.analysis.gateways import GatewayChecks
from controlplane.analysis.inputs import Inputs, read_inputs
from controlplane.analysis.mesh import mesh_config_in, mesh_of
from controlplane.analysis.policies import PolicyChecks
from controlplane.model.hosts import DEFAULT_DOMAIN_SUFFIX
from controlplane.model.mesh_config import IstioMeshConfig
from controlplane.sources.diagnostics import Diagnostic


@dataclass(frozen=True)
class Report:
    inputs: Inputs
    diagnostics: tuple[Diagnostic, ...]  # sorted by file, line

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if not d.is_error)


def analyze_paths(
    paths: Sequence[Path | str],
    *,
    default_namespace: str = "default",
    domain_suffix: str = DEFAULT_DOMAIN_SUFFIX,
    mesh_config: IstioMeshConfig | None = None,
) -> Report:
    """``domain_suffix`` is Istio's domainSuffix (``cluster.local``); Services are
    ``<name>.<namespace>.svc.<domain_suffix>``. ``mesh_config`` (``--mesh-config``) gives the
    root namespace and the extension providers; without it an ``istio`` ConfigMap among the
    inputs does, else Istio's defaults."""
    inputs = read_inputs([Path(p) for p in paths], default_namespace)
    found = list(inputs.diagnostics)
    if mesh_config is None:
        mesh_config, problems = mesh_config_in(inputs)
        found += problems
    crossref = CrossReferences(inputs, domain_suffix)
    found += crossref.check()
    found += PolicyChecks(inputs, crossref.workloads, mesh_of(mesh_config, domain_suffix), mesh_config).check()
    found += EnvoyFilterChecks(inputs, crossref.workloads, mesh_of(mesh_config, domain_suffix)).check()
    found += GatewayChecks(inputs, crossref.workloads).check()
    found += GatewayApiChecks(inputs, domain_suffix).check()
    unique = sorted(set(found), key=Diagnostic.sort_key)
    return Report(inputs, tuple(unique))


__all__ = ["Report", "analyze_paths"]
