from __future__ import annotations

import pytest

from controlplane.ca import CAError, SpiffeId, parse_spiffe_id, parse_workload_id


def test_workload_id_round_trip() -> None:
    spiffe_id = SpiffeId.for_workload("cluster.local", "default", "bookinfo-productpage")
    assert spiffe_id.uri == "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
    parsed = parse_workload_id(spiffe_id.uri)
    assert parsed == spiffe_id
    assert (parsed.namespace, parsed.service_account) == ("default", "bookinfo-productpage")


def test_trust_domain_only_is_valid_but_not_a_workload() -> None:
    spiffe_id = parse_spiffe_id("spiffe://example.org")
    assert spiffe_id.path == () and not spiffe_id.is_workload
    with pytest.raises(CAError):
        parse_workload_id("spiffe://example.org")


@pytest.mark.parametrize(
    "uri",
    [
        "SPIFFE://cluster.local/ns/a/sa/b",  # scheme is lowercase
        "https://cluster.local/ns/a/sa/b",
        "spiffe://Cluster.local/ns/a/sa/b",  # trust domain lowercase
        "spiffe://cluster.local:8443/ns/a/sa/b",  # no port
        "spiffe://user@cluster.local/ns/a/sa/b",  # no userinfo
        "spiffe://cluster.local/ns/a/sa/b/",  # no trailing slash
        "spiffe://cluster.local//ns/a",  # no empty segment
        "spiffe://cluster.local/ns/../sa/b",  # no dot segments
        "spiffe://cluster.local/ns/a/sa/b?x=1",  # no query
        "spiffe://cluster.local/ns/a/sa/b#f",  # no fragment
        "spiffe://cluster.local/ns/a%20b/sa/c",  # no percent-encoding
        "spiffe:///ns/a/sa/b",  # empty trust domain
        "spiffe://cluster.local/" + "a" * 2100,
    ],
)
def test_invalid_ids_are_refused(uri: str) -> None:
    with pytest.raises(CAError):
        parse_spiffe_id(uri)


def test_workload_form_is_required_for_workloads() -> None:
    with pytest.raises(CAError):
        parse_workload_id("spiffe://cluster.local/ns/default/serviceaccount/x")


@pytest.mark.parametrize(
    "namespace,service_account", [("", "a"), ("a", ""), ("a/b", "c"), ("..", "x")]
)
def test_for_workload_validates_names(namespace: str, service_account: str) -> None:
    with pytest.raises(CAError):
        SpiffeId.for_workload("cluster.local", namespace, service_account)
