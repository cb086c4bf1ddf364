"""Istio's own AuthorizationPolicy -> RBAC cases (``conformance/istio/authz/{http,tcp}``): our
RBAC must make the same decisions as the RBAC Istio generates, on requests derived from each
case's policies (see ``requests.py``), evaluated with Envoy's RBAC semantics (``rbac_eval``).

For ALLOW/DENY/AUDIT cases the whole chain is compared: allowed or refused, marked by an AUDIT
policy or not, and what each dry-run (shadow) engine concluded; and, policy by policy (by
Istio's name ``ns[NS]-policy[NAME]-rule[N]``), whether each ``to`` entry (permission) and each
``from`` entry (principal) matches, so that a rule hidden behind another is checked too.

CUSTOM cases (``custom-*``) are translated with the mesh config of Istio's test (its
``extensionProviders``, a registry holding ``my-custom-ext-authz.foo.svc.cluster.local``) and
compared as whole chains (``chain_eval``): RBAC shadow rules mark a request, the ext_authz
filter runs where its ``filter_enabled_metadata`` matches the mark, a bad provider's DENY
rules refuse. Per request: refused or not, and which ext_authz configs (byte for byte) were
consulted, so the ext_authz filter itself is scored; plus every policy's parts as above.
``extended-*`` outputs are byte-identical to the plain ones (Istio's extended generator
variant) and are checked against the same inputs.

Differences explained (the test fails on any other):
- JWT metadata: Istio reads the verified payload from jwt_authn metadata key ``payload``, we
  from ``jwt_payload`` (the key our jwt_authn filter writes); each side is evaluated with the
  payload under its own key, so this is a naming difference, not a decision difference.
- ``http/custom-bad-multiple-providers``: Istio writes one DENY RBAC filter per provider
  (``out1``: ``another``, ``out2``: ``default``); we write one DENY filter holding both
  providers' rules under the same names. A chain of DENY filters refuses exactly what one
  DENY filter with all their policies refuses: same decisions, one filter fewer.
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
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from envoy.extensions.path.match.uri_template.v3 import uri_template_match_pb2  # noqa: F401
from google.protobuf import json_format

from controlplane.model.base import FieldError
from controlplane.model.decode import decode
from controlplane.model.mesh import MeshConfig
from controlplane.model.mesh_config import IstioMeshConfig
from controlplane.model.security import AuthorizationPolicy
from controlplane.translate import push_context
from controlplane.translate.authz import (
    TrustDomainBundle,
    build_workload_rbac,
    builder,
    ext_authz,
    matchers,
    operations,
    sources,
)
from controlplane.translate.authz.ext_authz import (
    ResolvedProvider,
    build_custom,
    registry_lookup,
    resolve_providers,
)
from controlplane.translate.authz.terms import Permission, Principal, principal_or
from controlplane.translate.index.policies import PolicySet
from tests.authz.chain_eval import HTTP_RBAC, NETWORK_RBAC, Filter, run, unpack
from tests.authz.rbac_eval import FilterConfig, details, evaluate
from tests.authz.requests import Space
from tests.translate.support import load_documents, snapshot_of

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
    mesh: str = ""  # CUSTOM cases: which of Istio's test mesh configs (MESH_CONFIGS)

    @property
    def tcp(self) -> bool:
        return self.folder == "tcp"

    @property
    def custom(self) -> bool:
        return bool(self.mesh)


def _plain(folder: str, name: str, *outs: str, td: tuple[str, ...] = ("cluster.local",), input: str = "",
           mesh: str = "") -> Case:
    outputs = tuple(f"{name}-{o}.yaml" for o in outs) if outs else (f"{name}-out.yaml",)
    return Case(name, folder, f"{input or name}-in.yaml", outputs, td, mesh)


# The mesh configs of Istio's builder_test.go (meshConfigGRPCNoNamespace, meshConfigGRPC,
# meshConfigHTTP, meshConfigInvalid), as mesh config documents.
EXT_AUTHZ_HOST = "my-custom-ext-authz.foo.svc.cluster.local"
MESH_CONFIGS = {
    "grpc-no-namespace": {"envoyExtAuthzGrpc": {
        "service": EXT_AUTHZ_HOST, "port": 9000, "failOpen": True, "statusOnError": "403"}},
    "grpc": {"envoyExtAuthzGrpc": {
        "service": f"foo/{EXT_AUTHZ_HOST}", "port": 9000, "timeout": "2ms", "failOpen": True, "statusOnError": "403",
        "includeRequestBodyInCheck": {"maxRequestBytes": 4096, "allowPartialMessage": True}}},
    "http": {"envoyExtAuthzHttp": {
        "service": f"foo/{EXT_AUTHZ_HOST}", "port": 9000, "timeout": "10s", "failOpen": True, "statusOnError": "403",
        "pathPrefix": "/check", "includeRequestHeadersInCheck": ["x-custom-id", "x-prefix-*", "*-suffix"],
        "includeHeadersInCheck": ["should-not-include-when-IncludeRequestHeadersInCheck-is-set"],
        "includeAdditionalHeadersInCheck": {"x-header-1": "value-1", "x-header-2": "value-2"},
        "includeRequestBodyInCheck": {"maxRequestBytes": 2048, "allowPartialMessage": True, "packAsBytes": True},
        "headersToUpstreamOnAllow": ["Authorization", "x-prefix-*", "*-suffix"],
        "headersToDownstreamOnDeny": ["Set-cookie", "x-prefix-*", "*-suffix"],
        "headersToDownstreamOnAllow": ["Set-cookie", "x-prefix-*", "*-suffix"]}},
    "invalid": {"envoyExtAuthzHttp": {
        "service": "foo/my-custom-ext-authz", "port": 999999, "pathPrefix": "check", "statusOnError": "999"}},
}  # fmt: skip


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
    _plain("http", "custom-grpc-provider-no-namespace", "out1", "out2", input="custom-simple-http",
           mesh="grpc-no-namespace"),
    _plain("http", "custom-grpc-provider", "out1", "out2", input="custom-simple-http", mesh="grpc"),
    _plain("http", "custom-http-provider", "out1", "out2", input="custom-simple-http", mesh="http"),
    # Istio's custom-bad-invalid-config (an invalid provider).
    Case("custom-bad", "http", "custom-simple-http-in.yaml", ("custom-bad-out.yaml",), mesh="invalid"),
    _plain("http", "custom-bad-multiple-providers", "out1", "out2", mesh="http"),
    _plain("tcp", "allow-both-http-tcp"),
    _plain("tcp", "allow-only-http"),
    _plain("tcp", "audit-both-http-tcp"),
    _plain("tcp", "deny-both-http-tcp"),
    _plain("tcp", "dry-run-mix"),
    _plain("tcp", "custom-both-http-tcp", "out1", "out2", mesh="grpc"),
    # An HTTP provider cannot serve a TCP chain: Istio writes no filter at all.
    Case("custom-only-http", "tcp", "custom-only-http-in.yaml", (), mesh="http"),
]


def _cases(corpus: Path) -> list[Case]:
    cases = list(BASE_CASES)
    for c in BASE_CASES:
        extended = tuple(f"extended-{o}" for o in c.outputs)
        if extended and all((corpus / c.folder / o).is_file() for o in extended):
            cases.append(Case(f"extended-{c.name}", c.folder, c.input, extended, c.trust_domains, c.mesh))
    return cases


@pytest.fixture(scope="module")
def corpus(conformance_dir: Path) -> Path:
    path = conformance_dir / "authz"
    if not path.is_dir():
        pytest.skip(f"no authz corpus under {conformance_dir}")
    return path


def _istio_filters(corpus: Path, case: Case) -> list[Filter]:
    """Istio's expected output: every filter (RBAC and ext_authz), in order."""
    chain: list[Filter] = []
    for name in case.outputs:
        data = yaml.safe_load((corpus / case.folder / name).read_text())
        f = json_format.ParseDict(data, lc.Filter() if case.tcp else hcm_pb2.HttpFilter())
        chain.append(unpack(f.name, f.typed_config))
    return chain


def _istio_chain(corpus: Path, case: Case) -> list[FilterConfig]:
    """The RBAC filters of Istio's expected output."""
    return [c for _, c in _istio_filters(corpus, case) if isinstance(c, http_rbac_pb2.RBAC | network_rbac_pb2.RBAC)]


def _policies(corpus: Path, case: Case) -> list[AuthorizationPolicy]:
    docs = [d for d in load_documents((corpus / case.folder / case.input).read_text()) if isinstance(d, AuthorizationPolicy)]
    # Our one selection routine, for Istio's test proxy (httpbin v1 in foo).
    return list(PolicySet.of(docs, root_selectors_mesh_wide=True).applicable("istio-system", NAMESPACE, LABELS).all())


def _our_chain(policies: list[AuthorizationPolicy], case: Case) -> list[FilterConfig]:
    bundle = TrustDomainBundle(case.trust_domains)
    workload = build_workload_rbac(policies, tcp=case.tcp, bundle=bundle)
    actions = [a for a in (workload.audit, workload.deny, workload.allow)] if workload is not None else []
    return [a.tcp() if case.tcp else a.http() for a in actions if a is not None]


def _providers(case: Case) -> dict[str, ResolvedProvider]:
    """Istio's test mesh config, resolved against a registry with the authorizer's Service
    (our LookupCluster), as the translator resolves the mesh config's providers."""
    errors: list[FieldError] = []  # not validated: meshConfigInvalid must reach the translator
    mesh = decode(IstioMeshConfig, {"extensionProviders": [{"name": "default", **MESH_CONFIGS[case.mesh]}]}, "", errors)
    assert mesh is not None and not errors, errors
    service = load_documents("""
apiVersion: v1
kind: Service
metadata: {name: my-custom-ext-authz, namespace: foo}
spec: {ports: [{name: grpc, port: 9000}]}
""")
    registry = push_context(snapshot_of(service), MeshConfig())
    return resolve_providers(mesh.extension_providers, registry_lookup(registry))


def _our_filters(policies: list[AuthorizationPolicy], case: Case) -> list[Filter]:
    """The CUSTOM part of our chain: the RBAC filter and, with a good provider, ext_authz."""
    bundle = TrustDomainBundle(case.trust_domains)
    custom = build_custom(policies, _providers(case), tcp=case.tcp, bundle=bundle)
    if custom is None:
        return []
    rbac = (NETWORK_RBAC, custom.rbac) if case.tcp else (HTTP_RBAC, custom.rbac)
    if custom.ext_authz is None:
        return [rbac]
    return [rbac, ("envoy.filters.network.ext_authz" if case.tcp else "envoy.filters.http.ext_authz", custom.ext_authz)]


@dataclass
class Score:
    matches: int = 0
    total: int = 0
    mismatches: list[str] | None = None


def compare(corpus: Path, case: Case) -> Score:
    policies = _policies(corpus, case)
    if case.custom:
        istio_filters, our_filters = _istio_filters(corpus, case), _our_filters(policies, case)
        istio, ours = [c for _, c in istio_filters if _is_rbac(c)], [c for _, c in our_filters if _is_rbac(c)]
    else:
        istio, ours = _istio_chain(corpus, case), _our_chain(policies, case)
    space = Space.of(policies, case.trust_domains)
    score = Score(mismatches=[])
    for request in space.requests(http=not case.tcp, seed=case.name):
        if case.custom:
            a: object = run(istio_filters, request, ISTIO_JWT_KEY)
            b: object = run(our_filters, request, OUR_JWT_KEY)
            da, db = details(istio, request, ISTIO_JWT_KEY), details(ours, request, OUR_JWT_KEY)
        else:
            a, b = evaluate(istio, request, ISTIO_JWT_KEY), evaluate(ours, request, OUR_JWT_KEY)
            da, db = details(istio, request, ISTIO_JWT_KEY), details(ours, request, OUR_JWT_KEY)
        score.total += 1
        if a == b and da == db:
            score.matches += 1
        else:
            score.mismatches.append(f"{request}: istio {a} {sorted(da - db)}, ours {b} {sorted(db - da)}")  # type: ignore[union-attr]
    return score


def _is_rbac(config: object) -> bool:
    return isinstance(config, http_rbac_pb2.RBAC | network_rbac_pb2.RBAC)


def _ids(corpus_cases: list[Case]) -> Iterator[str]:
    return (f"{c.folder}/{c.name}" for c in corpus_cases)


def test_every_corpus_file_is_covered(corpus: Path) -> None:
    used = {(c.folder, f) for c in _cases(corpus) for f in (c.input, *c.outputs)}
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
    # CUSTOM: the ext_authz filter is compared too, not only the rules that select requests.
    "ext_authz headers matched case-sensitively": (
        ext_authz, "_headers", lambda patterns: _case_sensitive_headers(patterns)),
    "ext_authz enabled by another metadata key": (ext_authz, "SHADOW_EFFECTIVE_POLICY_ID", "shadow_effective_policy_id"),
    "ext_authz without the provider's timeout": (ext_authz, "duration", lambda value: _ORIGINAL_DURATION(600)),
}
_ORIGINAL_DURATION = ext_authz.duration
_ORIGINAL_HEADERS = ext_authz._headers


def _case_sensitive_headers(patterns: tuple[str, ...]) -> object:
    out = _ORIGINAL_HEADERS(patterns)
    for m in out.patterns if out is not None else ():
        m.ignore_case = False
    return out


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_wrong_translation_is_noticed(corpus: Path, mutation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    target, name, replacement = MUTATIONS[mutation]
    monkeypatch.setattr(target, name, replacement)
    mismatches = sum(len(compare(corpus, c).mismatches or []) for c in BASE_CASES)
    assert mismatches > 0, f"{mutation}: no request told it apart from Istio's RBAC"


def test_custom_filters_are_istios_byte_for_byte(corpus: Path) -> None:
    """Beyond decisions: each CUSTOM case's filters equal Istio's, message for message (names,
    RBAC shadow rules, the whole ext_authz config), except the one merge explained above."""
    for case in (c for c in BASE_CASES if c.custom):
        istio, ours = _istio_filters(corpus, case), _our_filters(_policies(corpus, case), case)
        if case.name == "custom-bad-multiple-providers":
            merged = http_rbac_pb2.RBAC()
            for _, config in istio:
                merged.MergeFrom(config)
            istio = [(HTTP_RBAC, merged)]
        assert ours == istio, f"{case.folder}/{case.name}"
