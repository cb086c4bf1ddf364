"""Where a proxy's and an endpoint's locality come from, rule by rule (Istio's precedence)."""

from __future__ import annotations

import pytest

from controlplane.model.locality import (
    Locality,
    locality_label,
    pod_locality,
    proxy_locality,
    sanitize_locality_label,
    split_locality,
    workload_entry_locality,
)

REGION = "topology.kubernetes.io/region"
ZONE = "topology.kubernetes.io/zone"
SUBZONE = "topology.istio.io/subzone"
NODE = Locality("node-region", "node-zone", "node-sub")


@pytest.mark.parametrize(("text", "want"), [
    ("", Locality()),
    ("us-east", Locality("us-east")),
    ("us-east/us-east-1a", Locality("us-east", "us-east-1a")),
    ("us-east/us-east-1a/rack-7", Locality("us-east", "us-east-1a", "rack-7")),
    ("us-east.us-east-1a", Locality("us-east.us-east-1a")),  # only "/" separates here
])
def test_split_locality(text: str, want: Locality) -> None:
    assert split_locality(text) == want


def test_str_is_istios_locality_string() -> None:
    assert str(Locality("r", "z", "s")) == "r/z/s"
    assert str(Locality("r", "z")) == "r/z"
    assert str(Locality("r", "", "s")) == "r"  # as LocalityToString: no zone, no subzone
    assert str(Locality()) == ""


def test_label_dots_become_slashes_unless_it_has_a_slash() -> None:
    assert sanitize_locality_label("us-east.us-east-1a.rack-7") == "us-east/us-east-1a/rack-7"
    assert sanitize_locality_label("us-east/zone.with.dots") == "us-east/zone.with.dots"


def test_newer_locality_label_wins_over_istio_locality() -> None:
    assert locality_label({"istio-locality": "a.b"}) == "a/b"
    assert locality_label({"istio-locality": "a.b", "topology.istio.io/locality": "c.d"}) == "c/d"
    # Present wins even when empty, as Istio's GetLocalityLabel.
    assert locality_label({"istio-locality": "a.b", "topology.istio.io/locality": ""}) == ""
    assert locality_label({"app": "x"}) == ""


# --- the proxy: topology labels, then locality label, then node.locality -----------------------


def test_proxy_without_labels_takes_the_node_locality() -> None:
    assert proxy_locality({"app": "x"}, NODE) == NODE
    assert proxy_locality({}, None) == Locality()


def test_proxy_locality_label_wins_over_the_node_locality() -> None:
    assert proxy_locality({"istio-locality": "us-east.us-east-1a"}, NODE) == Locality("us-east", "us-east-1a")


def test_proxy_topology_labels_win_over_locality_label_and_node() -> None:
    labels = {REGION: "eu-west", ZONE: "eu-west-1b", SUBZONE: "rack-2", "istio-locality": "us-east.us-east-1a"}
    assert proxy_locality(labels, NODE) == Locality("eu-west", "eu-west-1b", "rack-2")
    # Any one of them is enough; the others are then empty, not taken from elsewhere.
    assert proxy_locality({ZONE: "eu-west-1b"}, NODE) == Locality("", "eu-west-1b")


def test_deprecated_beta_topology_labels_count_after_the_ga_ones() -> None:
    beta = {"failure-domain.beta.kubernetes.io/region": "old", "failure-domain.beta.kubernetes.io/zone": "old-a"}
    assert proxy_locality(beta, NODE) == Locality("old", "old-a")
    assert proxy_locality({**beta, REGION: "new"}, NODE) == Locality("new", "old-a")


# --- endpoints -------------------------------------------------------------------------------


def test_pod_locality_label_wins_over_topology_labels() -> None:
    labels = {"istio-locality": "us-east.us-east-1a.rack-1", REGION: "eu-west", ZONE: "eu-west-1b"}
    assert pod_locality(labels) == Locality("us-east", "us-east-1a", "rack-1")


def test_pod_topology_labels_stand_in_for_its_node() -> None:
    assert pod_locality({REGION: "eu-west", ZONE: "eu-west-1b", SUBZONE: "rack-2"}) == Locality(
        "eu-west", "eu-west-1b", "rack-2"
    )
    assert pod_locality({"app": "x"}) == Locality()


def test_workload_entry_field_wins_over_its_label() -> None:
    assert workload_entry_locality("us-east/us-east-1a", {"istio-locality": "eu.eu-1"}) == Locality(
        "us-east", "us-east-1a"
    )
    assert workload_entry_locality("", {"istio-locality": "eu.eu-1.r"}) == Locality("eu", "eu-1", "r")
    assert workload_entry_locality("", {"topology.istio.io/locality": "eu/eu-1"}) == Locality("eu", "eu-1")
    # Istio reads topology labels of Pods (via their Node) only, not of WorkloadEntries.
    assert workload_entry_locality("", {REGION: "eu"}) == Locality()
