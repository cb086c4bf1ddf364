"""Istio's node id and metadata, read in one place (controlplane.model.node)."""

from __future__ import annotations

import pytest

from controlplane.model.node import (
    NodeParseError,
    node_id,
    parse_node,
    proxy_name,
    split_pod_name,
)


def test_node_id_is_istios_format_and_round_trips() -> None:
    text = node_id("sidecar", "10.0.0.1", "reviews-v1-abc", "default")
    assert text == "sidecar~10.0.0.1~reviews-v1-abc.default~default.svc.cluster.local"
    assert node_id("router", "10.0.0.9", "gw", "istio-system", "corp.internal").endswith(
        "~istio-system.svc.corp.internal"
    )
    node = parse_node(text)
    assert (node.kind, node.ip, node.pod_name, node.namespace) == (
        "sidecar", "10.0.0.1", "reviews-v1-abc", "default",
    )
    assert node.dns_domain == "default.svc.cluster.local" and node.ips == ("10.0.0.1",)
    with pytest.raises(ValueError):
        node_id("gateway", "10.0.0.1", "gw", "default")


def test_pod_names_may_hold_dots_namespaces_never() -> None:
    node = parse_node("router~10.0.0.1~gw.with.dots.istio-system~istio-system.svc.cluster.local")
    assert node.pod_name == "gw.with.dots" and node.namespace == "istio-system"
    assert split_pod_name("a.b.c") == ("a.b", "c") and split_pod_name("pod") == ("pod", "")
    assert proxy_name("sidecar~1.2.3.4~a.b.ns~ns.svc.cluster.local") == "a.b.ns"
    assert proxy_name("plain") == "plain"
    # A dotted pod name without its namespace is read as Istio's format says: the last label
    # is the namespace, which then disagrees with the rest of the node.
    with pytest.raises(NodeParseError, match="different namespaces"):
        parse_node("sidecar~10.0.0.1~my.pod~default.svc.cluster.local", {"NAMESPACE": "default"})


@pytest.mark.parametrize(
    "text,metadata",
    [
        # metadata NAMESPACE against the id's pod.namespace and DNS domain
        ("sidecar~10.0.0.1~pod.prod~prod.svc.cluster.local", {"NAMESPACE": "default"}),
        # the id's two places against each other
        ("sidecar~10.0.0.1~pod.prod~default.svc.cluster.local", {}),
        ("sidecar~10.0.0.1~pod.default~prod.svc.cluster.local", {"NAMESPACE": "default"}),
    ],
)
def test_namespaces_that_disagree_are_refused(text: str, metadata: dict[str, str]) -> None:
    """No credential can prove two namespaces: the node is refused rather than one picked."""
    with pytest.raises(NodeParseError, match="different namespaces"):
        parse_node(text, metadata)


def test_metadata_namespace_alone_is_enough_when_the_id_agrees() -> None:
    node = parse_node("sidecar~10.0.0.1~pod~cluster.local", {"NAMESPACE": "prod"})
    assert node.namespace == "prod" and node.pod_name == "pod"


def test_a_domain_without_svc_names_no_namespace() -> None:
    """Istio would take the domain's first label; here only ``<ns>.svc.<suffix>`` names one,
    so ``evil.example.com`` cannot make ``evil`` the proxy's namespace."""
    with pytest.raises(NodeParseError, match="names no namespace"):
        parse_node("sidecar~10.0.0.1~pod~evil.example.com")
    with pytest.raises(NodeParseError, match="names no namespace"):
        parse_node("sidecar~10.0.0.1~pod~cluster.local")
    # The namespace then comes from where it is named, and only from there.
    node = parse_node("sidecar~10.0.0.1~pod.prod~evil.example.com")
    assert node.namespace == "prod"


def test_missing_service_account_claims_none() -> None:
    """As Istio's checkConnectionIdentity: no SERVICE_ACCOUNT, no service account compared
    (and no ``default`` assumed)."""
    assert parse_node("sidecar~10.0.0.1~pod.default~default.svc.cluster.local").service_account == ""
    assert parse_node(
        "sidecar~10.0.0.1~pod.default~default.svc.cluster.local", {"SERVICE_ACCOUNT": "reviews"}
    ).service_account == "reviews"


def test_metadata_fields_and_istios_ip_rule() -> None:
    node = parse_node(
        "sidecar~10.0.0.1~pod.default~default.svc.cluster.local",
        {
            "LABELS": {"version": "v1", "app": "reviews"},
            "INSTANCE_IPS": "10.0.0.1, fd00::1",
            "WORKLOAD_NAME": "reviews-v1",
            "INTERCEPTION_MODE": "none",
        },
    )
    assert node.labels == (("app", "reviews"), ("version", "v1"))
    assert node.ips == ("10.0.0.1", "fd00::1") and node.workload_name == "reviews-v1"
    assert node.interception_mode == "NONE"
    # INSTANCE_IPS with a non-address falls back to the id's ip; with neither, refused.
    fallback = parse_node("sidecar~10.0.0.2~p.default~default.svc.cluster.local", {"INSTANCE_IPS": "x"})
    assert fallback.ips == ("10.0.0.2",)
    with pytest.raises(NodeParseError, match="IP"):
        parse_node("sidecar~not-an-ip~p.default~default.svc.cluster.local")
    with pytest.raises(NodeParseError, match="LABELS"):
        parse_node("sidecar~10.0.0.1~p.default~default.svc.cluster.local", {"LABELS": "app=x"})


@pytest.mark.parametrize(
    "text",
    [
        "not-an-istio-node",
        "gateway~10.0.0.1~a.b~b.svc.cluster.local",
        "sidecar~10.0.0.1~a.B_AD~B_AD.svc.cluster.local",  # not a DNS-1123 label
    ],
)
def test_unreadable_nodes_are_refused(text: str) -> None:
    with pytest.raises(NodeParseError):
        parse_node(text)
