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
from controlplane.model.hosts import short_name_aliases


@pytest.mark.parametrize(
    "pattern,host,expected",
    [
        ("*", "anything.example.com", True),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "aexample.com", False),
        ("*x", "box", True),
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
    ],
)
def test_hosts_overlap(a: str, b: str, expected: bool) -> None:
    assert hosts_overlap(a, b) is expected


def test_resolve_short_name_as_istio() -> None:
    assert resolve_short_name("reviews", "default") == "reviews.default.svc.cluster.local"
    assert (
        resolve_short_name("reviews", "prod", "svc.corp.internal")
        == "reviews.prod.svc.corp.internal"
    )
    assert (
        resolve_short_name("reviews.prod", "default") == "reviews.prod"
    )  # Istio never expands a dotted name
    assert resolve_short_name("*", "default") == "*"
    assert resolve_short_name("10.0.0.1", "default") == "10.0.0.1"
    assert resolve_short_name("", "default") == ""
    assert service_fqdn("reviews", "default") == "reviews.default.svc.cluster.local"


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
