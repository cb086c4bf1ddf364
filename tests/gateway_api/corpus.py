"""Istio's Gateway API conversion cases (../shared/conformance/istio/gateway-api/): load a
case with the services and secrets Istio's own test registers around it
(pilot/pkg/config/kube/gateway/conversion_test.go), convert it, and compare with Istio's
output: status conditions, Istio Gateways and VirtualServices, semantically.
"""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controlplane.model import FieldError, ValidationError
from controlplane.model.base import Resource
from controlplane.model.decode import decode
from controlplane.model.destination_rule import DestinationRuleSpec
from controlplane.model.gateway import GatewaySpec
from controlplane.model.parse import UnsupportedKind, parse
from controlplane.model.virtual_service import VirtualServiceSpec
from controlplane.store import Snapshot
from controlplane.translate.gateway_api import ConvertedConfig, convert, inputs_from_snapshot
from controlplane.translate.gateway_api.status import POLICY_KINDS

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "istio" / "gateway-api"
DOMAIN_SUFFIX = "domain.suffix"
# The kinds whose status is compared (others, e.g. InferencePool, are not supported).
STATUS_KINDS = frozenset({"GatewayClass", "Gateway", "ListenerSet", "HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute",
                          "BackendTLSPolicy", "XBackendTrafficPolicy"})
_GATEWAY_API_GROUPS = ("gateway.networking.k8s.io/", "gateway.networking.x-k8s.io/")
# The controllers whose entries in a policy's ancestors are ours to write (others' are kept).
OUR_CONTROLLERS = frozenset({"istio.io/mesh-controller", "istio.io/gateway-controller"})
CASES = sorted(p.name.removesuffix(".yaml") for p in CORPUS.glob("*.yaml") if (CORPUS / f"{p.name}.golden").exists())

# Services of Istio's test registry: (namespace, name); every one has ports 80, 34000, 34001.
_SERVICES = [
    ("default", n) for n in (
        "httpbin", "httpbin-second", "httpbin-wildcard", "foo-svc", "httpbin-other", "example", "echo",
        "svc4", "httpbin-zero", "httpbin-mirror", "httpbin-foo", "httpbin-alt", "httpbin-bad", "echo-1",
        "echo-2", "echo-port", "not-found",
    )
] + [
    ("apple", "httpbin-apple"), ("banana", "httpbin-banana"), ("cert", "httpbin"), ("service", "my-svc"),
    ("allowed-1", "a-example"), ("allowed-2", "a-example"), ("allowed-1", "b-example"), ("allowed-1", "svc2"),
    ("allowed-2", "svc2"), ("allowed-1", "svc1"), ("allowed-2", "svc3"), ("group-namespace1", "httpbin"),
    ("group-namespace2", "httpbin"), ("istio-system", "httpbin"), ("istio-system", "istiod"),
    ("istio-system", "echo"),
]
# Non-Kubernetes hosts of the registry: (namespace, host)
_HOSTS = [("istio-system", "example.com"), ("default", "google.com")]
# ConfigMaps holding a CA (ca.crt), for frontend validation's caCertificateRefs.
_CA_CONFIG_MAPS = [("istio-system", "my-cert-http"), ("default", "auth-cert")]
_SECRETS = [("istio-system", "my-cert-http"), ("ns2", "ns2-cert"), ("ns3", "ns3-cert"), ("ns4", "ns4-cert"),
            ("istio-system", "my-cert-http2"), ("cert", "cert"), ("istio-system", "my-cert"), ("bookinfo", "bookinfo-secret")]


@cache
def _key_pair() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def _service(ns: str, name: str, ports: tuple[int, ...] = (80, 34000, 34001), **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"port": p, "name": f"p{p}"} for p in ports], **spec}}


def fixture_documents() -> list[dict[str, Any]]:
    cert, key = _key_pair()
    docs = [_service(ns, name) for ns, name in _SERVICES]
    docs.append(_service("istio-system", "istio-ingressgateway", (80, 443, 34000, 34001),
                         selector={"istio": "ingressgateway"}, externalIPs=["1.2.3.4"]))
    for ns, host in _HOSTS:
        docs.append({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                     "metadata": {"name": f"registry-{host.replace('.', '-')}", "namespace": ns},
                     "spec": {"hosts": [host], "ports": [{"number": p, "name": f"p{p}", "protocol": "TCP"}
                                                         for p in (80, 34000, 34001)]}})
    for ns, name in _SECRETS:
        docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
                     "type": "kubernetes.io/tls", "stringData": {"tls.crt": cert, "tls.key": key}})
    for ns, name in _CA_CONFIG_MAPS:
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
                     "data": {"ca.crt": cert}})
    docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "malformed", "namespace": "default"},
                 "data": {"not-ca.crt": "hello"}})
    docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "malformed", "namespace": "istio-system"},
                 "stringData": {"tls.crt": "SGVsbG8gd29ybGQK", "tls.key": "SGVsbG8gd29ybGQK"}})
    return docs


@dataclass
class LoadedCase:
    resources: list[Resource]
    rejected: list[str] = field(default_factory=list)  # "Kind ns/name: why"
    skipped: Counter[str] = field(default_factory=Counter)  # unsupported kinds


def load_case(name: str) -> LoadedCase:
    out = LoadedCase([])
    by_key: dict[Any, Resource] = {}
    seen_namespaces: set[str] = set()
    for doc in fixture_documents():
        r = parse(doc)
        by_key[r.key] = r
    for doc in yaml.safe_load_all((CORPUS / f"{name}.yaml").read_text()):
        if not doc:
            continue
        try:
            r = parse(doc)
        except UnsupportedKind as e:
            out.skipped[e.kind] += 1
            continue
        except ValidationError as e:
            out.rejected.append(e.describe())
            continue
        by_key[r.key] = r
        seen_namespaces.add(r.meta.namespace)
    # Istio's test creates every namespace it sees, labelled istio.io/test-name-part: <first part>.
    for ns in sorted(seen_namespaces - {""}):
        r = parse({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": ns, "labels": {"istio.io/test-name-part": ns.split("-")[0]}}})
        by_key.setdefault(r.key, r)
    out.resources = list(by_key.values())
    return out


def snapshot_of(resources: list[Resource]) -> Snapshot:
    by_kind: dict[str, dict[Any, Any]] = {}
    for r in resources:
        by_kind.setdefault(r.KIND, {})[r.key] = r
    return Snapshot(by_kind, version=1)


def convert_case(name: str) -> tuple[LoadedCase, ConvertedConfig]:
    case = load_case(name)
    return case, convert(inputs_from_snapshot(snapshot_of(case.resources), DOMAIN_SUFFIX))


# --- comparison -------------------------------------------------------------------------------


def _sorted(items: Any) -> tuple[Any, ...]:
    return tuple(sorted(items, key=repr))


def _conds(items: list[dict[str, Any]] | None) -> tuple[tuple[str, str, str], ...]:
    return tuple(sorted((c["type"], c["status"], c["reason"]) for c in items or ()))


def _ref_key(ref: dict[str, Any] | Any, namespace: str) -> tuple[Any, ...]:
    get = ref.get if isinstance(ref, dict) else lambda k: getattr(ref, {"sectionName": "section_name"}.get(k, k))
    return (get("group"), get("kind"), get("name"), get("namespace") or namespace, get("sectionName"), get("port"))


def golden_statuses(name: str) -> dict[tuple[str, str, str], Any]:
    """(kind, namespace, name) -> comparable status of Istio's golden (Gateway API kinds only)."""
    out = {}
    for doc in yaml.safe_load_all((CORPUS / f"{name}.status.yaml.golden").read_text()):
        if not doc or not doc["apiVersion"].startswith(_GATEWAY_API_GROUPS) or doc["kind"] not in STATUS_KINDS:
            continue
        ns = doc["metadata"].get("namespace", "")
        status = doc.get("status") or {}
        ancestors = [a for a in status.get("ancestors") or () if a["controllerName"] in OUR_CONTROLLERS]
        out[(doc["kind"], ns, doc["metadata"]["name"])] = (
            _conds(status.get("conditions")),
            tuple(sorted((l["name"], l.get("attachedRoutes", 0), _conds(l.get("conditions")))
                         for l in status.get("listeners") or ())),
            _sorted((_ref_key(p["parentRef"], ns), _conds(p.get("conditions")))
                    for p in status.get("parents") or ())
            + _sorted((_ref_key(a["ancestorRef"], ns), a["controllerName"], _conds(a.get("conditions")))
                      for a in ancestors),
            status.get("attachedListenerSets", 0),
        )
    return out


def our_statuses(converted: ConvertedConfig) -> dict[tuple[str, str, str], Any]:
    out = {}
    for s in converted.statuses:
        out[(s.kind, s.namespace, s.name)] = (
            tuple(sorted((c.type, c.status, c.reason) for c in s.conditions)),
            tuple(sorted((l.name, l.attached_routes, tuple(sorted((c.type, c.status, c.reason) for c in l.conditions)))
                         for l in s.listeners)),
            _sorted((_ref_key(p.parent_ref, s.namespace), tuple(sorted((c.type, c.status, c.reason)
                                                                         for c in p.conditions)))
                    for p in s.parents if s.kind not in POLICY_KINDS)
            + _sorted((_ref_key(p.parent_ref, s.namespace), p.controller_name,
                       tuple(sorted((c.type, c.status, c.reason) for c in p.conditions)))
                      for p in s.parents if s.kind in POLICY_KINDS),
            s.attached_listener_sets,
        )
    return out


def _golden_vs_spec(spec: dict[str, Any]) -> VirtualServiceSpec:
    """Istio's golden spec in our model (fields the model spells differently mapped first)."""
    for route in spec.get("http") or ():
        redirect = route.get("redirect")
        if redirect and "prefixRewrite" in redirect:
            redirect["uri"] = "%PREFIX()%" + redirect.pop("prefixRewrite")
    errors: list[FieldError] = []
    decoded = decode(VirtualServiceSpec, spec, "spec", errors)
    assert decoded is not None, errors
    return decoded


def golden_config(name: str) -> tuple[Counter[Any], Counter[Any], Counter[Any], set[str]]:
    """Istio's Gateways {(ns, name, servers)}, VirtualServices {(gateways, hosts, spec)} and the
    DestinationRules of BackendTLSPolicies {(ns, name, spec)} as multisets, and the names of the
    rules it also derived from kinds not supported here (e.g. XBackendTrafficPolicy)."""
    gateways: Counter[Any] = Counter()
    services: Counter[Any] = Counter()
    rules: Counter[Any] = Counter()
    unsupported_rules: set[str] = set()
    for doc in yaml.safe_load_all((CORPUS / f"{name}.yaml.golden").read_text()):
        if not doc:
            continue
        meta = doc["metadata"]
        if doc["kind"] == "Gateway" and doc["apiVersion"].startswith("networking.istio.io"):
            errors: list[FieldError] = []
            spec = decode(GatewaySpec, doc["spec"], "spec", errors)
            assert spec is not None, errors
            gateways[(meta["namespace"], meta["name"], spec.servers)] += 1
        elif doc["kind"] == "VirtualService":
            spec = _golden_vs_spec(doc["spec"])
            services[(spec.gateways, spec.hosts, spec)] += 1
        elif doc["kind"] == "DestinationRule":
            parents = meta["annotations"]["internal.istio.io/parents"].split(",")
            if all(p.startswith(("BackendTLSPolicy/", "XBackendTrafficPolicy/")) for p in parents):
                errors = []
                rule = decode(DestinationRuleSpec, doc["spec"], "spec", errors)
                assert rule is not None, errors
                rules[(meta["namespace"], meta["name"], rule)] += 1
            else:
                unsupported_rules.add(f"{meta['namespace']}/{meta['name']}")
    return gateways, services, rules, unsupported_rules


def our_config(converted: ConvertedConfig, skipped_rules: set[str]) -> tuple[Counter[Any], Counter[Any], Counter[Any]]:
    gateways = Counter((g.meta.namespace, g.meta.name, g.spec.servers) for g in converted.gateways)
    # A GAMMA consumer route's VirtualService is exported to its namespace only ("."): Istio
    # applies that rule in its push context instead, so its output has no exportTo.
    specs = [replace(v.spec, export_to=()) for v in converted.virtual_services]
    services = Counter((spec.gateways, spec.hosts, spec) for spec in specs)
    rules = Counter((r.meta.namespace, r.meta.name, r.spec) for r in converted.destination_rules
                    if f"{r.meta.namespace}/{r.meta.name}" not in skipped_rules)
    return gateways, services, rules


@dataclass
class CaseResult:
    name: str
    accepted: int
    rejected: list[str]
    skipped: Counter[str]
    status_total: int
    status_matching: int
    status_diffs: list[str]
    gateway_total: int
    gateway_matching: int
    vs_total: int
    vs_matching: int
    config_diffs: list[str]
    rule_total: int  # DestinationRules of backend policies in Istio's output
    rule_matching: int

    @property
    def status_ok(self) -> bool:
        return not self.status_diffs

    @property
    def config_ok(self) -> bool:
        return not self.config_diffs


def _diff(golden: Counter[Any], ours: Counter[Any], label: str) -> tuple[int, list[str]]:
    matching = sum((golden & ours).values())
    out = [f"{label} only in Istio's output: {k}" for k in (golden - ours)]
    out += [f"{label} only in ours: {k}" for k in (ours - golden)]
    return matching, out


def run_case(name: str) -> CaseResult:
    case, converted = convert_case(name)
    golden = golden_statuses(name)
    ours = our_statuses(converted)
    status_diffs = []
    matching = 0
    for key, want in golden.items():
        got = ours.get(key)
        if got == want:
            matching += 1
        else:
            status_diffs.append(f"status of {key}: Istio {want}, ours {got}")
    status_diffs += [f"status of {key} only in ours" for key in ours.keys() - golden.keys()]
    g_gw, g_vs, g_dr, unsupported_rules = golden_config(name)
    o_gw, o_vs, o_dr = our_config(converted, unsupported_rules)
    gw_matching, gw_diffs = _diff(g_gw, o_gw, "Gateway")
    vs_matching, vs_diffs = _diff(g_vs, o_vs, "VirtualService")
    dr_matching, dr_diffs = _diff(g_dr, o_dr, "DestinationRule")
    return CaseResult(
        name, len(case.resources), case.rejected, case.skipped, len(golden), matching, status_diffs,
        sum(g_gw.values()), gw_matching, sum(g_vs.values()), vs_matching, gw_diffs + vs_diffs + dr_diffs,
        sum(g_dr.values()), dr_matching,
    )
