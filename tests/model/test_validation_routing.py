"""VirtualService validation as Istio does it, each error at its field path."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.model.checks import check_regex
from tests.model.helpers import assert_error, assert_valid, istio


def vs(
    *routes: dict[str, Any], hosts: tuple[str, ...] = ("reviews",), **extra: Any
) -> dict[str, Any]:
    return istio("VirtualService", {"hosts": list(hosts), "http": list(routes), **extra})


def to(
    host: str = "reviews", weight: int | None = None, subset: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"destination": {"host": host}}
    if subset:
        out["destination"]["subset"] = subset
    if weight is not None:
        out["weight"] = weight
    return out


# --- VirtualService --------------------------------------------------------------------------


def test_weights_are_relative_as_in_istio() -> None:
    # Istio: negative weights and an all-zero split are errors; other totals are relative shares.
    assert (
        assert_valid(vs({"route": [to(weight=80, subset="v1"), to(weight=20, subset="v2")]})) == []
    )
    assert assert_valid(vs({"route": [to()]})) == []
    warnings = assert_valid(vs({"route": [to(weight=60), to(weight=60)]}))
    assert [(w.path, w.severity) for w in warnings] == [("spec.http[0].route", "warning")]
    assert "120 != 100" in warnings[0].message
    assert_error(vs({"route": [to(weight=0), to(weight=0)]}), "spec.http[0].route", "= 0")
    assert_error(
        vs({"route": [to(weight=-1), to(weight=101)]}), "spec.http[0].route[0].weight", "< 0"
    )
    tcp = istio(
        "VirtualService", {"hosts": ["db"], "tcp": [{"route": [to("db", 0), to("db2", 0)]}]}
    )
    assert_error(tcp, "spec.tcp[0].route", "= 0")


@pytest.mark.parametrize("regex", ["(?=x)abc", "(?!x)", "(?<=a)b", r"(a)\1", "a++", "[unclosed"])
def test_regexes_envoy_would_refuse_are_rejected(regex: str) -> None:
    route = {"match": [{"uri": {"regex": regex}}], "route": [to()]}
    assert_error(vs(route), "spec.http[0].match[0].uri.regex", "regex")
    assert check_regex(regex)


@pytest.mark.parametrize(
    "regex", ["/api/v[0-9]+/.*", "^(foo|bar)$", r"\d{3}", "(?i)abc", "[[:alpha:]]+"]
)
def test_re2_regexes_are_accepted(regex: str) -> None:
    assert_valid(
        vs(
            {
                "match": [{"uri": {"regex": regex}, "headers": {"x-a": {"regex": regex}}}],
                "route": [to()],
            }
        )
    )


def test_string_match_oneof_and_empty_regex() -> None:
    assert_error(
        vs({"match": [{"uri": {"exact": "/a", "prefix": "/b"}}], "route": [to()]}),
        "spec.http[0].match[0].uri",
        "only one",
    )
    assert_error(
        vs({"match": [{"headers": {"x": {"regex": ""}}}], "route": [to()]}),
        "spec.http[0].match[0].headers[x].regex",
        "empty",
    )
    assert_error(
        vs({"match": [{"headers": {"bad header": {"exact": "v"}}}], "route": [to()]}),
        "spec.http[0].match[0].headers[bad header]",
        "header name",
    )


def test_durations_have_minimums() -> None:
    assert_valid(vs({"route": [to()], "timeout": "1ms"}))
    assert_error(vs({"route": [to()], "timeout": "0s"}), "spec.http[0].timeout", "1ms")  # as Istio
    assert_error(vs({"route": [to()], "timeout": "1500us"}), "spec.http[0].timeout", "ms precision")
    assert_error(vs({"route": [to()], "timeout": "500us"}), "spec.http[0].timeout", "1ms")
    assert_error(
        vs({"route": [to()], "retries": {"attempts": 2, "perTryTimeout": "0s"}}),
        "spec.http[0].retries.perTryTimeout",
        "1ms",
    )


def test_retries() -> None:
    assert_valid(
        vs({"route": [to()], "retries": {"attempts": 3, "retryOn": "5xx,gateway-error,503"}})
    )
    assert_error(
        vs({"route": [to()], "retries": {"attempts": -1}}), "spec.http[0].retries.attempts"
    )
    assert_error(
        vs({"route": [to()], "retries": {"attempts": 1, "retryOn": "5xx,sometimes"}}),
        "spec.http[0].retries.retryOn",
        "sometimes",
    )


def test_route_redirect_direct_response_rules() -> None:
    assert_error(vs({"match": [{"uri": {"prefix": "/"}}]}), "spec.http[0]", "required")
    assert_error(vs({"route": [to()], "redirect": {"uri": "/x"}}), "spec.http[0].redirect", "both")
    assert_error(
        vs({"redirect": {"uri": "/x", "redirectCode": 400}}),
        "spec.http[0].redirect.redirectCode",
        "3xx",
    )
    assert_valid(vs({"redirect": {"uri": "/x", "redirectCode": 305}}))
    assert_error(vs({"redirect": {"uri": "/x", "scheme": "ftp"}}), "spec.http[0].redirect.scheme")
    assert_error(
        vs({"route": [to()], "retries": {"attempts": 0, "retryOn": "5xx"}}),
        "spec.http[0].retries.attempts",
        "attempts are set to 0",
    )
    assert_error(vs({"redirect": {}}), "spec.http[0].redirect", "must specify")
    assert_valid(vs({"redirect": {"scheme": "https", "redirectCode": 308}}))
    assert_valid(vs({"directResponse": {"status": 503, "body": {"string": "down"}}}))
    assert_error(vs({"directResponse": {"status": 700}}), "spec.http[0].directResponse.status")
    assert_error(vs({"redirect": {"uri": "/a"}, "rewrite": {"uri": "/b"}}), "spec.http[0].rewrite")
    assert_error(
        vs(
            {
                "route": [to()],
                "rewrite": {"uri": "/b", "uriRegexRewrite": {"match": "a", "rewrite": "b"}},
            }
        ),
        "spec.http[0].rewrite",
        "only contain one",
    )


def test_fault_and_mirror_percentages() -> None:
    assert_valid(
        vs(
            {
                "route": [to()],
                "fault": {"delay": {"fixedDelay": "7s", "percentage": {"value": 100}}},
            }
        )
    )
    assert_error(
        vs({"route": [to()], "fault": {"abort": {"httpStatus": 700, "percentage": {"value": 10}}}}),
        "spec.http[0].fault.abort.httpStatus",
    )
    assert_error(
        vs(
            {"route": [to()], "fault": {"abort": {"httpStatus": 500, "percentage": {"value": 101}}}}
        ),
        "spec.http[0].fault.abort.percentage.value",
        "range",
    )
    assert_error(
        vs({"route": [to()], "fault": {"abort": {"grpcStatus": "NOPE"}}}),
        "spec.http[0].fault.abort.grpcStatus",
    )
    fault = {"abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 0.5}}}
    assert_valid(vs({"route": [to()], "fault": fault}))
    warnings = assert_valid(vs({"route": [to()], "fault": {"delay": {"percentage": {"value": 5}}}}))
    assert [w.path for w in warnings] == ["spec.http[0].fault.delay"]
    assert_error(
        vs({"route": [to()], "fault": {"delay": {"exponentialDelay": "1s"}}}),
        "spec.http[0].fault.delay.exponentialDelay",
        "not supported",
    )
    assert_error(
        vs({"route": [to()], "mirror": {"host": "m"}, "mirrorPercentage": {"value": 150}}),
        "spec.http[0].mirrorPercentage.value",
    )
    assert_error(
        vs({"route": [to()], "mirror": {"host": "m"}, "mirrors": [{"destination": {"host": "n"}}]}),
        "spec.http[0].mirrors",
        "both",
    )


def test_hosts_and_destinations() -> None:
    assert_error(vs({"route": [to()]}, hosts=("*",)), "spec.hosts[0]", "mesh gateway")
    assert_valid(vs({"route": [to()]}, hosts=("*",), gateways=["istio-system/ingress"]))
    assert_valid(
        vs({"route": [to()]}, hosts=("*.example.com", "reviews.prod.svc.cluster.local", "10.0.0.1"))
    )
    assert_error(vs({"route": [to()]}, hosts=("a.*.com",)), "spec.hosts[0]", "invalid")
    assert_error(
        vs({"route": [{"destination": {"host": ""}}]}), "spec.http[0].route[0].destination.host"
    )
    assert_error(vs({"route": [to(subset="V_1")]}), "spec.http[0].route[0].destination.subset")
    assert_error(istio("VirtualService", {"hosts": ["a"]}), "spec", "http, tcp or tls")
    assert_error(vs({"route": [to()]}, gateways=["a/b/c"]), "spec.gateways[0]")


def test_tls_and_tcp_routes() -> None:
    spec = {
        "hosts": ["*.example.com"],
        "gateways": ["gw"],
        "tls": [
            {
                "match": [{"sniHosts": ["a.example.com"], "port": 443}],
                "route": [to("a.example.com")],
            }
        ],
        "tcp": [
            {
                "match": [{"port": 3306, "destinationSubnets": ["10.0.0.0/8"]}],
                "route": [to("db", 50), to("db2", 50)],
            }
        ],
    }
    assert_valid(istio("VirtualService", spec))
    spec["tls"][0]["match"][0]["sniHosts"] = ["other.org"]
    assert_error(
        istio("VirtualService", spec), "spec.tls[0].match[0].sniHosts[0]", "not a compatible subset"
    )
    spec["tls"][0]["match"][0]["sniHosts"] = ["a.example.com"]
    spec["tcp"][0]["match"][0]["destinationSubnets"] = ["10.0.0.0/99"]
    assert_error(istio("VirtualService", spec), "spec.tcp[0].match[0].destinationSubnets[0]")


def test_header_operations() -> None:
    headers = {
        "request": {"set": {"x-a": "1"}, "remove": ["x-b"]},
        "response": {"add": {"x-c": "2"}},
    }
    assert_valid(vs({"route": [{**to(), "headers": headers}], "headers": headers}))
    assert_error(
        vs({"route": [to()], "headers": {"response": {"set": {":status": "200"}}}}),
        "spec.http[0].headers.response.set[:status]",
        "prefix",
    )
    assert_error(
        vs({"route": [to()], "headers": {"request": {"remove": ["host"]}}}),
        "spec.http[0].headers.request.remove[0]",
    )
    assert_valid(
        vs({"route": [to()], "headers": {"request": {"set": {":authority": "a.example"}}}})
    )
    assert_error(
        vs(
            {
                "route": [to()],
                "rewrite": {"authority": "b"},
                "headers": {"request": {"set": {"host": "a"}}},
            }
        ),
        "spec.http[0].headers.request.set[host]",
        "multiple times",
    )
