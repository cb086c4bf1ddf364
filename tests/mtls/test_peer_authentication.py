"""PeerAuthentication resolution as Istio composes it: mesh, namespace, workload, port."""

from __future__ import annotations

import textwrap

import pytest

from controlplane.translate import MeshConfig, push_context
from controlplane.translate.index.registry import MeshEndpoint
from controlplane.translate.peer_authentication import (
    InboundMtls,
    endpoint_accepts_mtls,
    inbound_mtls,
)
from tests.translate.support import load_documents, snapshot_of


def _ctx(yaml_text: str):
    return push_context(snapshot_of(load_documents(textwrap.dedent(yaml_text))), MeshConfig())


def _pa(name: str, namespace: str, mode: str | None, selector: dict | None = None, ports: dict | None = None) -> str:
    spec: list[str] = []
    if selector:
        spec.append(f"  selector: {{matchLabels: {selector}}}")
    if mode:
        spec.append(f"  mtls: {{mode: {mode}}}")
    if ports:
        body = ", ".join(f'"{p}": {{mode: {m}}}' for p, m in ports.items())
        spec.append(f"  portLevelMtls: {{{body}}}")
    return "\n".join([
        "---", "apiVersion: security.istio.io/v1", "kind: PeerAuthentication",
        f"metadata: {{name: {name}, namespace: {namespace}}}", "spec:" if spec else "spec: {}", *spec,
    ]) + "\n"


APP = {"app": "reviews"}


def test_nothing_set_is_permissive() -> None:
    assert inbound_mtls(_ctx(""), "default", APP) == InboundMtls("PERMISSIVE")


@pytest.mark.parametrize(
    ("mesh", "namespace", "workload", "expected"),
    [
        ("STRICT", None, None, "STRICT"),
        ("STRICT", "DISABLE", None, "DISABLE"),
        ("STRICT", "UNSET", None, "STRICT"),  # UNSET inherits
        ("DISABLE", "UNSET", "UNSET", "DISABLE"),
        ("STRICT", "PERMISSIVE", "STRICT", "STRICT"),
        (None, "STRICT", "PERMISSIVE", "PERMISSIVE"),
        ("UNSET", "UNSET", None, "PERMISSIVE"),
    ],
)
def test_levels_override_and_unset_inherits(mesh, namespace, workload, expected) -> None:
    text = ""
    if mesh:
        text += _pa("default", "istio-system", mesh)
    if namespace:
        text += _pa("default", "default", namespace)
    if workload:
        text += _pa("reviews", "default", workload, selector=APP)
    assert inbound_mtls(_ctx(text), "default", APP).mode == expected


def test_workload_policy_applies_only_to_selected_workloads_and_its_namespace() -> None:
    ctx = _ctx(_pa("ns", "default", "STRICT") + _pa("reviews", "default", "DISABLE", selector=APP))
    assert inbound_mtls(ctx, "default", APP).mode == "DISABLE"
    assert inbound_mtls(ctx, "default", {"app": "ratings"}).mode == "STRICT"
    assert inbound_mtls(ctx, "other", APP).mode == "PERMISSIVE"


def test_root_namespace_policy_with_a_selector_is_not_mesh_wide() -> None:
    ctx = _ctx(_pa("sel", "istio-system", "STRICT", selector=APP))
    assert inbound_mtls(ctx, "default", APP).mode == "PERMISSIVE"
    assert inbound_mtls(ctx, "istio-system", APP).mode == "STRICT"


def test_port_level_modes_from_the_workload_policy() -> None:
    ctx = _ctx(
        _pa("ns", "default", "STRICT")
        + _pa("reviews", "default", "UNSET", selector=APP, ports={9080: "DISABLE", 9443: "UNSET", 8080: "PERMISSIVE"})
    )
    mtls = inbound_mtls(ctx, "default", APP)
    assert mtls.mode == "STRICT"
    assert [mtls.mode_for(p) for p in (9080, 9443, 8080, 1234)] == ["DISABLE", "STRICT", "PERMISSIVE", "STRICT"]


def test_competing_policies_at_one_level_first_by_name_wins() -> None:
    ctx = _ctx(_pa("b-strict", "default", "STRICT") + _pa("a-disable", "default", "DISABLE"))
    assert inbound_mtls(ctx, "default", APP).mode == "DISABLE"


def test_service_level_inference_ignores_workload_policies() -> None:
    ctx = _ctx(_pa("ns", "default", "DISABLE") + _pa("reviews", "default", "STRICT", selector=APP))
    assert inbound_mtls(ctx, "default", None).mode == "DISABLE"


def test_endpoint_accepts_mtls_needs_the_sidecar_tls_mode_and_no_disable() -> None:
    labels = (("app", "reviews"),)
    ctx = _ctx(_pa("reviews", "default", "UNSET", selector=APP, ports={9080: "DISABLE"}))
    assert not endpoint_accepts_mtls(ctx, MeshEndpoint("10.0.0.1", 9080, labels, namespace="default"))
    assert not endpoint_accepts_mtls(ctx, MeshEndpoint("10.0.0.1", 9080, labels, namespace="default", tls_mode="istio"))
    assert endpoint_accepts_mtls(ctx, MeshEndpoint("10.0.0.1", 9443, labels, namespace="default", tls_mode="istio"))
