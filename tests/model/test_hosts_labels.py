"""Host matching, short-name resolution and selector matching."""

from __future__ import annotations

import pytest

from controlplane.model import (
    host_matches,
    hosts_overlap,
    resolve_short_name,
    selector_matches,
    service_fqdn,
    service_selects,
    split_namespaced_host,
)
from controlplane.model.common import LabelSelector, WorkloadSelector
from controlplane.model.hosts import (
    DEFAULT_DOMAIN_SUFFIX,
    normalize_domain_suffix,
    short_name_aliases,
)
from controlplane.model.labels import selector_labels


@pytest.mark.parametrize(
    "pattern,host,expected",
    [
        ("*", "anything.example.com", True),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "aexample.com", False),
        ("*x", "box", True),
        ("*x", "x", True),  # Istio's SubsetOf: a plain suffix test, no label boundary
        ("*.example.com", "*.a.example.com", True),  # a wildcard covered by a wider one
        ("*.a.example.com", "*.example.com", False),
        ("a.example.com", "*.example.com", False),
        ("*.EXAMPLE.com", "a.example.COM", True),
        ("Reviews.Default.svc.cluster.local", "reviews.default.svc.cluster.local", True),
        ("reviews.default.svc.cluster.local", "REVIEWS.default.svc.cluster.local", True),
        ("reviews.default.svc.cluster.local", "ratings.default.svc.cluster.local", False),
    ],
)
def test_host_matches(pattern: str, host: str, expected: bool) -> None:
    assert host_matches(pattern, host) is expected


@pytest.mark.parametrize(
    "a,b,expected",
    [
        ("*.com", "*.example.com", True),
        ("*.example.com", "*.com", True),
        ("*.example.com", "*.example.org", False),
        ("a.example.com", "*.example.com", True),
        ("a.example.com", "b.example.com", False),
        ("*", "x", True),
        ("*.Example.com", "A.example.COM", True),
    ],
)
def test_hosts_overlap(a: str, b: str, expected: bool) -> None:
    assert hosts_overlap(a, b) is expected


def test_resolve_short_name_as_istio() -> None:
    assert resolve_short_name("reviews", "default") == "reviews.default.svc.cluster.local"
    # The suffix is Istio's domainSuffix: ".svc." is inserted when a service FQDN is built.
    assert resolve_short_name("reviews", "prod", "corp.internal") == "reviews.prod.svc.corp.internal"
    # Hosts compare case-insensitively, so resolved names are lower case (Istio lower-cases).
    assert resolve_short_name("Reviews", "default") == "reviews.default.svc.cluster.local"
    assert resolve_short_name("API.Example.com", "default") == "api.example.com"
    assert (
        resolve_short_name("reviews.prod", "default") == "reviews.prod"
    )  # Istio never expands a dotted name
    assert resolve_short_name("*", "default") == "*"
    assert resolve_short_name("10.0.0.1", "default") == "10.0.0.1"
    assert resolve_short_name("", "default") == ""
    assert service_fqdn("reviews", "default") == "reviews.default.svc.cluster.local"
    assert service_fqdn("reviews", "prod", "corp.internal") == "reviews.prod.svc.corp.internal"


def test_domain_suffix_is_istios_domain_suffix() -> None:
    assert DEFAULT_DOMAIN_SUFFIX == "cluster.local"
    assert normalize_domain_suffix("cluster.local") == "cluster.local"
    # The old "svc.cluster.local" spelling keeps working: the "svc." is the builder's to add.
    assert normalize_domain_suffix("svc.cluster.local") == "cluster.local"
    assert normalize_domain_suffix("svc.Corp.Internal.") == "corp.internal"


def test_short_name_aliases() -> None:
    fqdn = "reviews.default.svc.cluster.local"
    assert short_name_aliases(fqdn, "default") == (
        fqdn,
        "reviews.default.svc",
        "reviews.default",
        "reviews",
    )
    assert short_name_aliases(fqdn, "other") == (fqdn, "reviews.default.svc", "reviews.default")
    assert short_name_aliases("api.example.com", "default") == ("api.example.com",)


def test_split_namespaced_host() -> None:
    assert split_namespaced_host("istio-system/*.example.com") == ("istio-system", "*.example.com")
    assert split_namespaced_host("*.example.com") == ("*", "*.example.com")
    assert split_namespaced_host("./reviews") == (".", "reviews")


def test_selector_matching() -> None:
    labels = {"app": "reviews", "version": "v1"}
    assert selector_matches({"app": "reviews"}, labels)
    assert selector_matches({"app": "reviews", "version": "v1"}, labels)
    assert not selector_matches({"app": "reviews", "version": "v2"}, labels)
    assert not selector_matches({"tier": "x"}, labels)
    assert selector_matches({}, labels) and selector_matches(None, labels)
    assert not service_selects({}, labels) and not service_selects(None, labels)
    assert service_selects({"app": "reviews"}, labels)
    # Indexes keep selectors as sorted pairs: the same rule applies.
    assert selector_matches((("app", "reviews"),), labels)
    assert not selector_matches((("app", "reviews"), ("version", "v2")), labels)
    assert selector_matches({"app": "reviews"}, {**labels, "extra": "x"})  # a subset suffices
    assert not selector_matches({"app": "Reviews"}, labels)  # values compare exactly


def test_selector_labels_reads_both_selector_shapes() -> None:
    """``selector.matchLabels`` (policies, DestinationRule) and ``workloadSelector.labels``
    (Sidecar, ServiceEntry) are read by one function."""
    assert selector_labels(WorkloadSelector({"app": "a"})) == {"app": "a"}
    assert selector_labels(LabelSelector({"app": "a"})) == {"app": "a"}
    assert selector_labels(WorkloadSelector()) == {} and selector_labels(None) == {}
