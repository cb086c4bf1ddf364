"""Istio's Gateway API conversion corpus (../shared/conformance/istio/gateway-api/): every input
parsed and validated, the status conditions (type, status, reason per object, listener and
parent, and attachedRoutes) equal to Istio's, and the Istio Gateways and VirtualServices equal
to the ones Istio derives, compared as typed models (hosts, gateways, matches, destinations,
weights, filters, timeouts, retries; names and annotations aside).

Cases that differ are listed in KNOWN with the reason; they xfail, and one that starts to match
fails until it is taken off the list. ``-s`` prints the counts per aspect.
"""

from __future__ import annotations

import pytest

from tests.gateway_api.corpus import CASES, CaseResult, run_case

_AMBIENT = "ambient mode (waypoints, istio.io/mesh-controller and east-west HBONE gateways) is not supported"
KNOWN = {
    "backend-tls-client-cert": "Gateway spec.tls.backend.clientCertificateRef (InvalidClientCertificateRef) is not supported",
    "east-west-ambient": _AMBIENT,
    "foreign-waypoint": _AMBIENT,
    "waypoint": _AMBIENT,
    "http": "InferencePool backends (inference.networking.k8s.io) are not supported: InvalidKind instead",
    "reference-policy-inferencepool": "InferencePool backends (inference.networking.k8s.io) are not supported",
    "xbackend": "XBackend backends (gateway.networking.x-k8s.io, experimental) are not supported: InvalidKind instead",
    "invalid": (
        "9 HTTPRoutes are named with capitals (invalid-backendRef-kind, ...): Kubernetes refuses such names "
        "(metadata.name must be a DNS-1123 subdomain) and so does the model, so they and their status are "
        "missing (and the routes they would attach to the Gateway's listener)"
    ),
    "mix-backend-policy": (
        "two BackendTLSPolicies for one Service, neither with a metadata.uid: Istio's test takes objects of equal "
        "(empty) uid for one, so the newer is not Conflicted; every API object has its own uid, and the newer "
        "is reported Conflicted here as Istio reports it for distinct objects (backend-tls-policy)"
    ),
    "status": "status written by other controllers (parents of other Gateways, extra conditions) is not merged in",
    "listenerset-invalid": "a Gateway of class istio-waypoint (ambient) is not converted; " + _AMBIENT,
}

_results: dict[str, CaseResult] = {}


def _result(name: str) -> CaseResult:
    if name not in _results:
        _results[name] = run_case(name)
    return _results[name]


def test_the_corpus_is_there() -> None:
    assert len(CASES) >= 50, CASES


@pytest.mark.parametrize("name", CASES)
def test_case(name: str) -> None:
    result = _result(name)
    # Every document is either accepted or skipped as an unsupported kind, except the names
    # Kubernetes itself refuses (listed in KNOWN).
    if name != "invalid":
        assert not result.rejected, result.rejected
    diffs = result.status_diffs + result.config_diffs
    if name in KNOWN:
        if not diffs and not result.rejected:
            pytest.fail(f"{name} now matches Istio: take it off KNOWN")
        pytest.xfail(KNOWN[name])
    assert not diffs, "\n".join(d[:2000] for d in diffs)


def test_counts() -> None:
    """The counts per aspect, over every case (printed with -s), and a floor against regressions."""
    results = [_result(name) for name in CASES]
    status = (sum(r.status_matching for r in results), sum(r.status_total for r in results))
    gateways = (sum(r.gateway_matching for r in results), sum(r.gateway_total for r in results))
    services = (sum(r.vs_matching for r in results), sum(r.vs_total for r in results))
    rules = (sum(r.rule_matching for r in results), sum(r.rule_total for r in results))
    cases = sum(1 for r in results if not r.status_diffs and not r.config_diffs and not r.rejected)
    accepted = sum(r.accepted for r in results)
    rejected = sum(len(r.rejected) for r in results)
    skipped = sum((r.skipped for r in results), start=type(results[0].skipped)())
    print(f"\ncases matching Istio entirely: {cases}/{len(results)}")
    print(f"objects with Istio's status: {status[0]}/{status[1]}")
    print(f"Istio Gateways equal to Istio's: {gateways[0]}/{gateways[1]}")
    print(f"VirtualServices equal to Istio's: {services[0]}/{services[1]}")
    print(f"DestinationRules of backend policies equal to Istio's: {rules[0]}/{rules[1]}")
    print(f"documents rejected: {rejected}; skipped as unsupported kinds: {dict(skipped)}")
    print(f"resources loaded (with the test registry's services and secrets): {accepted}")
    for name in CASES:
        if name in KNOWN:
            print(f"  differs: {name}: {KNOWN[name]}")
    assert cases >= 31 and status[0] >= 179 and gateways[0] >= 92 and services[0] >= 98
