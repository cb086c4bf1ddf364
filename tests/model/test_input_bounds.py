"""Bounds on what the model accepts and repeats (issue 19): messages and keys cut short, a cap
on routes per VirtualService, Kubernetes' annotation limit, and duplicate-host checks that
do not compare every pair."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.model import FieldError, ValidationError
from controlplane.model.base import ResourceKey
from controlplane.model.hosts import host_matches, hosts_overlap
from tests.model.helpers import assert_valid, errors_of, istio


def test_long_user_text_is_cut_in_the_middle_with_a_marker() -> None:
    value = "a" * 1_000_000
    error = FieldError(f"metadata.labels[{value}]", f"{value!r} is not a valid label value")
    assert len(error.path) < 600 and len(error.message) < 1_100
    assert error.message.endswith("a' is not a valid label value")  # the explanation stays
    assert "chars cut]" in error.message and "chars cut]" in error.path
    key = ResourceKey("Service", "default", value)
    assert len(str(key)) < 600 and str(key).startswith("Service default/aaa")
    assert str(ResourceKey("Service", "default", "reviews")) == "Service default/reviews"
    assert "chars cut]" in str(ValidationError([error], key=key))


def routes(count: int, kind: str = "http") -> list[dict[str, Any]]:
    if kind == "tcp":
        return [{"route": [{"destination": {"host": "a"}}]} for _ in range(count)]
    return [
        {"match": [{"uri": {"prefix": f"/{i}"}}], "route": [{"destination": {"host": "a"}}]}
        for i in range(count)
    ]


def test_more_routes_than_the_cap_are_refused_with_the_field_path() -> None:
    from controlplane.model.validate_virtual_service import MAX_ROUTES

    assert MAX_ROUTES == 10_000
    for kind in ("http", "tcp"):
        doc = istio("VirtualService", {"hosts": ["a"], kind: routes(MAX_ROUTES + 1, kind)})
        assert [str(e) for e in errors_of(doc)] == [
            f"spec.{kind}: 10,001 routes: at most 10,000 are accepted"
        ]


def test_routes_up_to_the_cap_are_accepted() -> None:
    assert_valid(istio("VirtualService", {"hosts": ["a"], "http": routes(10_000)}))


def test_hosts_times_routes_is_bounded_as_each_host_gets_every_route() -> None:
    hosts = [f"h{i}.example.com" for i in range(11)]
    [error] = errors_of(istio("VirtualService", {"hosts": hosts, "http": routes(10_000)}))
    assert str(error) == (
        "spec.http: 11 hosts × 10,000 routes: each host gets every route, and at most 100,000"
        " such copies are accepted"
    )
    assert_valid(istio("VirtualService", {"hosts": hosts[:10], "http": routes(10_000)}))


def test_annotations_over_kubernetes_limit_are_refused() -> None:
    doc = istio("VirtualService", {"hosts": ["a"], "http": routes(1)})
    doc["metadata"]["annotations"] = {"note": "x" * (256 * 1024)}
    [error] = errors_of(doc)
    assert error.path == "metadata.annotations"
    assert error.message == "Too long: must have at most 262144 bytes, has 262148"
    doc["metadata"]["annotations"] = {"note": "x" * (256 * 1024 - 4)}
    assert_valid(doc)


def test_each_duplicate_host_is_reported_once() -> None:
    hosts = ["a.example.com"] * 300 + ["*.example.com"]
    errors = errors_of(istio("VirtualService", {"hosts": hosts, "http": routes(1)}))
    # Each names the first host it duplicates (every pair made 45,150 errors).
    assert len(errors) == 300
    assert str(errors[0]) == "spec.hosts[1]: duplicate hosts in virtual service: " + (
        "a.example.com & a.example.com"
    )
    assert str(errors[-1]) == "spec.hosts[300]: duplicate hosts in virtual service: " + (
        "a.example.com & *.example.com"
    )


def test_sni_hosts_must_be_covered_by_a_virtual_service_host() -> None:
    def tls(*sni: str) -> dict[str, Any]:
        route = [{"destination": {"host": "a"}}]
        return {"hosts": ["*.example.com", "b.test"], "tls": [
            {"match": [{"port": 443, "sniHosts": list(sni)}], "route": route}
        ]}

    assert_valid(istio("VirtualService", tls("x.example.com", "*.a.example.com", "B.test")))
    [error] = errors_of(istio("VirtualService", tls("x.example.com", "example.com")))
    assert error.path == "spec.tls[0].match[0].sniHosts[1]"


LABELS = st.sampled_from(["a", "b", "ab", "c"])
HOSTS = st.builds(
    lambda labels, prefix, upper: (prefix + ".".join(labels)).upper() if upper else (
        prefix + ".".join(labels)
    ),
    st.lists(LABELS, min_size=1, max_size=3),
    st.sampled_from(["", "", "*.", "*", "*-"]),
    st.booleans(),
) | st.just("*")


@settings(max_examples=300, deadline=None)
@given(st.lists(HOSTS, max_size=12), HOSTS)
def test_host_sets_agree_with_comparing_every_pair(hosts: list[str], other: str) -> None:
    from controlplane.model.host_sets import HostSet, earlier_overlaps

    expected = [
        next((i for i in range(j) if hosts_overlap(hosts[i], hosts[j])), None)
        for j in range(len(hosts))
    ]
    assert earlier_overlaps(hosts) == expected
    assert HostSet(hosts).covers(other) == any(host_matches(h, other) for h in hosts)
