"""Istio's own AuthorizationPolicy -> RBAC cases (``conformance/istio/authz/{http,tcp}``): our
RBAC must make the same decisions as the RBAC Istio generates, on requests derived from each
case's policies (see ``requests.py``), evaluated with Envoy's RBAC semantics (``rbac_eval``).

For ALLOW/DENY/AUDIT cases the whole chain is compared: allowed or refused, marked by an AUDIT
policy or not, and what each dry-run (shadow) engine concluded; and, policy by policy (by
Istio's name ``ns[NS]-policy[NAME]-rule[N]``), whether each ``to`` entry (permission) and each
``from`` entry (principal) matches, so that a rule hidden behind another is checked too. For CUSTOM cases (``custom-*``)
only their RBAC part is ours: which requests the CUSTOM rules select (to send to the external
authorizer, or to refuse when the provider is bad); the ext_authz filter itself is not
compared. ``extended-*`` outputs are byte-identical to the plain ones (Istio's extended
generator variant) and are checked against the same inputs.

Differences explained (the test fails on any other):
- JWT metadata: Istio reads the verified payload from jwt_authn metadata key ``payload``, we
  from ``jwt_payload`` (the key our jwt_authn filter writes); each side is evaluated with the
  payload under its own key, so this is a naming difference, not a decision difference.
- ``tcp/custom-only-http``: Istio emits no filter at all because the CUSTOM provider is an
  HTTP one and cannot serve a TCP chain; that is a decision of the ext_authz filter, not of
  the RBAC rules, so the case has no RBAC part to compare (listed, not scored).
- ``http/allow-host-before-111`` is what Istio writes for proxies older than 1.11 (hosts as
  ``(?i)`` regexes); we write what Istio writes for current proxies (``ignore_case``
  matchers): the same decisions, which the case checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2  # noqa: F401  (Any types)
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.ext_authz.v3 import ext_authz_pb2 as net_ext_authz_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from envoy.extensions.path.match.uri_template.v3 import uri_template_match_pb2  # noqa: F401
from google.protobuf import json_format

from controlplane.model.security import AuthorizationPolicy
from controlplane.translate.authz import (
    CUSTOM,
    TrustDomainBundle,
    build_action,
    build_workload_rbac,
    builder,
    matchers,
    operations,
    sources,
)
from controlplane.translate.authz.terms import Permission, Principal, principal_or
from controlplane.translate.index.policies import PolicySet
from tests.authz.rbac_eval import Detail, FilterConfig, any_policy_matches, details, evaluate
from tests.authz.requests import Space
from tests.translate.support import load_documents

ISTIO_JWT_KEY = "payload"
OUR_JWT_KEY = "jwt_payload"
# The proxy of Istio's builder tests.
NAMESPACE, LABELS = "foo", {"app": "httpbin", "version": "v1"}


@dataclass(frozen=True)
class Case:
    name: str
    folder: str  # http or tcp
    input: str
    outputs: tuple[str, ...]
    trust_domains: tuple[str, ...] = ("cluster.local",)
    custom: bool = False

    @property
    def tcp(self) -> bool:
        return self.folder == "tcp"


def _plain(folder: str, name: str, *outs: str, td: tuple[str, ...] = ("cluster.local",), input: str = "",
           custom: bool = False) -> Case:
    outputs = tuple(f"{name}-{o}.yaml" for o in outs) if outs else (f"{name}-out.yaml",)
    return Case(name, folder, f"{input or name}-in.yaml", outputs, td, custom)


# Istio's builder_test.go: which input, outputs and trust domain bundle each case uses.
BASE_CASES = [
    _plain("http", "allow-empty-rule"),
    _plain("http", "allow-full-rule"),
    _plain("http", "allow-host-before-111"),
    _plain("http", "allow-nil-rule"),
    _plain("http", "allow-path"),
    _plain("http", "audit-full-rule"),
    _plain("http", "deny-and-allow", "out1", "out2"),
    _plain("http", "deny-empty-rule"),
    _plain("http", "dry-run-allow-and-deny", "out1", "out2"),
    _plain("http", "dry-run-allow"),
    _plain("http", "dry-run-mix"),
    _plain("http", "multiple-policies"),
    _plain("http", "single-policy"),
    _plain("http", "trust-domains"),
    _plain("http", "simple-policy-td-aliases", td=("td1", "cluster.local")),
    _plain("http", "simple-policy-multiple-td-aliases", td=("td1", "cluster.local", "some-td")),
    _plain("http", "simple-policy-principal-with-wildcard", td=("td1", "foobar")),
    _plain("http", "td-aliases-source-principal", td=("new-td", "old-td", "some-trustdomain")),
    _plain("http", "custom-grpc-provider-no-namespace", "out1", "out2", input="custom-simple-http", custom=True),
    _plain("http", "custom-grpc-provider", "out1", "out2", input="custom-simple-http", custom=True),
    _plain("http", "custom-http-provider", "out1", "out2", input="custom-simple-http", custom=True),
    Case("custom-bad", "http", "custom-simple-http-in.yaml", ("custom-bad-out.yaml",), custom=True),
    _plain("http", "custom-bad-multiple-providers", "out1", "out2", custom=True),
    _plain("tcp", "allow-both-http-tcp"),
    _plain("tcp", "allow-only-http"),
    _plain("tcp", "audit-both-http-tcp"),
    _plain("tcp", "deny-both-http-tcp"),
    _plain("tcp", "dry-run-mix"),
    _plain("tcp", "custom-both-http-tcp", "out1", "out2", custom=True),
]
# Listed for completeness, not scored (see the module docstring).
UNSCORED = {("tcp", "custom-only-http-in.yaml"): "HTTP-only CUSTOM provider on TCP: no filter, an ext_authz decision"}


def _cases(corpus: Path) -> list[Case]:
    cases = list(BASE_CASES)
    for c in BASE_CASES:
        extended = tuple(f"extended-{o}" for o in c.outputs)
        if all((corpus / c.folder / o).is_file() for o in extended):
            cases.append(Case(f"extended-{c.name}", c.folder, c.input, extended, c.trust_domains, c.custom))
    return cases


@pytest.fixture(scope="module")
def corpus(conformance_dir: Path) -> Path:
    path = conformance_dir / "authz"
    if not path.is_dir():
        pytest.skip(f"no authz corpus under {conformance_dir}")
    return path


def _istio_chain(corpus: Path, case: Case) -> list[FilterConfig]:
    """The RBAC filters of Istio's expected output (ext_authz filters left aside)."""
    chain: list[FilterConfig] = []
    for name in case.outputs:
        data = yaml.safe_load((corpus / case.folder / name).read_text())
        if case.tcp:
            f = json_format.ParseDict(data, lc.Filter())
            config: FilterConfig = network_rbac_pb2.RBAC()
        else:
            f = json_format.ParseDict(data, hcm_pb2.HttpFilter())
            config = http_rbac_pb2.RBAC()
        if f.typed_config.Is(config.DESCRIPTOR):
            f.typed_config.Unpack(config)
            chain.append(config)
    return chain


def _policies(corpus: Path, case: Case) -> list[AuthorizationPolicy]:
    docs = [d for d in load_documents((corpus / case.folder / case.input).read_text()) if isinstance(d, AuthorizationPolicy)]
    # Our one selection routine, for Istio's test proxy (httpbin v1 in foo).
    return list(PolicySet.of(docs, root_selectors_mesh_wide=True).applicable("istio-system", NAMESPACE, LABELS).all())


def _our_chain(policies: list[AuthorizationPolicy], case: Case) -> list[FilterConfig]:
    bundle = TrustDomainBundle(case.trust_domains)
    if case.custom:
        built = build_action(policies, CUSTOM, tcp=case.tcp, bundle=bundle)
        actions = [built] if built is not None else []
    else:
        workload = build_workload_rbac(policies, tcp=case.tcp, bundle=bundle)
        actions = [a for a in (workload.audit, workload.deny, workload.allow)] if workload is not None else []
    return [a.tcp() if case.tcp else a.http() for a in actions if a is not None]


@dataclass
class Score:
    matches: int = 0
    total: int = 0
    mismatches: list[str] | None = None


def compare(corpus: Path, case: Case) -> Score:
    policies = _policies(corpus, case)
    istio, ours = _istio_chain(corpus, case), _our_chain(policies, case)
    space = Space.of(policies, case.trust_domains)
    score = Score(mismatches=[])
    for request in space.requests(http=not case.tcp, seed=case.name):
        if case.custom:
            a: object = any_policy_matches(istio, request, ISTIO_JWT_KEY)
            b: object = any_policy_matches(ours, request, OUR_JWT_KEY)
            da = _custom(details(istio, request, ISTIO_JWT_KEY, _custom_name))
            db = _custom(details(ours, request, OUR_JWT_KEY, _custom_name))
        else:
            a, b = evaluate(istio, request, ISTIO_JWT_KEY), evaluate(ours, request, OUR_JWT_KEY)
            da, db = details(istio, request, ISTIO_JWT_KEY), details(ours, request, OUR_JWT_KEY)
        score.total += 1
        if a == b and da == db:
            score.matches += 1
        else:
            score.mismatches.append(f"{request}: istio {a} {sorted(da - db)}, ours {b} {sorted(db - da)}")  # type: ignore[union-attr]
    return score


def _custom_name(name: str) -> str:
    """``istio-ext-authz-<provider>-ns[..]-policy[..]-rule[..]`` (and ``-deny-due-to-bad-CUSTOM-action``
    when the provider is bad) -> ``ns[..]-policy[..]-rule[..]``."""
    return name[name.index("ns[") :].removesuffix("-deny-due-to-bad-CUSTOM-action")


def _custom(items: frozenset[Detail]) -> frozenset[tuple[object, ...]]:
    """CUSTOM rules are shadow rules (a good provider) or DENY rules (a bad one) in Istio's
    output: only which of them match is ours to compare."""
    return frozenset(item[2:] for item in items)


def _ids(corpus_cases: list[Case]) -> Iterator[str]:
    return (f"{c.folder}/{c.name}" for c in corpus_cases)


def test_every_corpus_file_is_covered(corpus: Path) -> None:
    used = {(c.folder, f) for c in _cases(corpus) for f in (c.input, *c.outputs)} | set(UNSCORED)
    present = {(folder, p.name) for folder in ("http", "tcp") for p in (corpus / folder).glob("*.yaml")}
    assert present - used == set(), "corpus files no case reads"
    assert used - present == set(), "cases name files the corpus lacks"


def test_corpus_decisions_match_istio(corpus: Path, record_property: pytest.RecordProperty) -> None:
    lines, matches, total, failures = [], 0, 0, []
    for case in _cases(corpus):
        score = compare(corpus, case)
        matches += score.matches
        total += score.total
        lines.append(f"{case.folder}/{case.name}: {score.matches}/{score.total}")
        failures += [f"{case.folder}/{case.name}: {m}" for m in (score.mismatches or [])[:3]]
    report = "\n".join(lines + [f"TOTAL {matches}/{total} requests, {len(_cases(corpus))} cases"])
    print(report)
    record_property("authz_corpus", report)
    assert not failures, "decisions differ from Istio's:\n" + "\n".join(failures)


# --- the comparison notices a wrong translation ----------------------------------------------


def _case_sensitive_host(value: str) -> Permission:
    return Permission(header=matchers.header_matcher(":authority", value))


def _loose_namespace(value: str) -> Principal:
    return sources.authenticated(matchers.regex(f".*/ns/{matchers.glob_regex(value)}.*"))


def _issuer_only(values: tuple[str, ...]) -> Principal:
    issuers = [sources._issuer_subject(v)[0] for v in values]
    return principal_or([Principal(metadata=matchers.jwt_claim(["iss"], matchers.string_value(i))) for i in issuers])


MUTATIONS = {
    "hosts matched case-sensitively": (operations, "host", _case_sensitive_host),
    "namespace regex without its trailing slash": (sources, "peer_namespace", _loose_namespace),
    "request principals without the subject": (sources, "request_principals", _issuer_only),
    "no trust domain aliases": (TrustDomainBundle, "expand", lambda self, principals: principals),
    "dry-run ignored": (builder, "is_dry_run", lambda policy: False),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_wrong_translation_is_noticed(corpus: Path, mutation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    target, name, replacement = MUTATIONS[mutation]
    monkeypatch.setattr(target, name, replacement)
    mismatches = sum(len(compare(corpus, c).mismatches or []) for c in BASE_CASES)
    assert mismatches > 0, f"{mutation}: no request told it apart from Istio's RBAC"
