"""Requests derived from AuthorizationPolicies, to compare two RBAC configs by decisions.

Every value a policy names (principals, namespaces, service accounts, trust domains, IP
blocks, hosts, methods, paths, ports, headers, JWT principals and claims, SNI, Envoy
metadata) gives concrete values that match it (globs filled in, at their boundaries too),
and values that do not (other identities, addresses outside a block, upper-case hosts, a
port added, a query string, plaintext). Requests then vary one attribute at a time, follow
each rule (its positive values chosen, the rest at random) and mix everything at random.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from controlplane.model.security import AuthorizationPolicy, Condition, Operation, Rule, Source
from tests.authz.rbac_eval import Request

Value = Any
DEFAULT_PRINCIPAL = "spiffe://cluster.local/ns/default/sa/default"


def fill(value: str) -> list[str]:
    """Concrete strings a glob matches: the ``*`` filled in, and left empty."""
    if value == "*":
        return ["any-value"]
    if value.startswith("*"):
        return ["zz" + value[1:], value[1:]]
    if value.endswith("*"):
        return [value[:-1] + "zz", value[:-1]]
    return [value]


def _principals(value: str, trust_domains: tuple[str, ...]) -> list[str]:
    out = ["spiffe://" + v for v in fill(value)] + ["spiffe://" + value.replace("*", "zz")]
    parts = value.split("/")
    if len(parts) == 5:
        rest = "/".join(parts[1:]).replace("*", "zz")
        out += [f"spiffe://{td}/{rest}" for td in (*trust_domains, "other-td")]
    return out


def _namespace(value: str) -> list[str]:
    return [f"spiffe://cluster.local/ns/{v}{tail}/sa/default" for v in fill(value) for tail in ("", "-x")]


def _service_account(value: str, policy_ns: str) -> list[str]:
    ns, slash, sa = value.partition("/")
    if not slash:
        ns, sa = policy_ns, value
    return [
        f"spiffe://cluster.local/ns/{ns}/sa/{sa}", f"spiffe://td/ns/{ns}/sa/{sa}-junk",
        f"spiffe://td/ns/{ns}/x/y/sa/{sa}/extra", f"spiffe://td/ns/{ns}-x/sa/{sa}",
    ]  # fmt: skip


def _trust_domain(value: str) -> list[str]:
    return [f"spiffe://{v}/ns/default/sa/default" for v in fill(value)]


def _addresses(value: str) -> list[str]:
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return []
    out = [str(net.network_address), str(net.broadcast_address)]
    try:
        out.append(str(net.broadcast_address + 1))
    except ipaddress.AddressValueError:
        pass
    return out


def _paths(value: str) -> list[str]:
    if "{*}" in value or "{**}" in value:
        base = value.replace("{*}", "seg")
        return [base.replace("{**}", "a/b"), base.replace("{**}", "a"), value.replace("{*}", "").replace("{**}", "")]
    if value == "*":
        return ["/anything"]
    out = fill(value) + ["/" + v for v in fill(value) if not v.startswith("/")]
    return out + [p + "?q=1" for p in out] + [p + "/more" for p in out]


def _hosts(value: str) -> list[str]:
    out = fill(value)
    return out + [h.upper() for h in out] + [h + ":80" for h in out]


def _jwt_principal(value: str) -> list[tuple[str, str]]:
    iss, slash, sub = value.rpartition("/")
    if not slash:
        return [(v, "") for v in fill(value)] + [(v, "sub") for v in fill(value)]
    return [(i, s) for i in fill(iss) for s in fill(sub)]


def _claim(value: str) -> list[Value]:
    return [v for f in fill(value) for v in (f, [f], ["other", f])]


def _meta(value: str) -> list[Value]:
    if value.startswith("[") and value.endswith("]"):
        return [[v] for v in fill(value[1:-1])]
    return fill(value)


def _nested(text: str) -> tuple[str, ...]:
    return tuple(text[1:-1].split("]["))


@dataclass
class Space:
    """Candidate values per attribute ("dimension"); a request picks one in each."""

    trust_domains: tuple[str, ...] = ("cluster.local",)
    candidates: dict[str, list[Value]] = field(default_factory=dict)
    # Per rule, per (from, to) pair: the values it asks for, per dimension.
    guides: list[dict[str, list[Value]]] = field(default_factory=list)

    def add(self, dim: str, values: list[Value]) -> None:
        seen = self.candidates.setdefault(dim, [])
        for v in values:
            if v not in seen:
                seen.append(v)

    # --- from policies -------------------------------------------------------------------

    def source(self, s: Source, ns: str, guide: dict[str, list[Value]]) -> None:
        td = self.trust_domains
        for values, make, dim in (
            (s.principals, lambda v: _principals(v, td), "principal"),
            (s.namespaces, _namespace, "principal"),
            (s.service_accounts, lambda v: _service_account(v, ns), "principal"),
            (s.trust_domains, _trust_domain, "principal"),
            (s.request_principals, _jwt_principal, "jwt.principal"),
            (s.ip_blocks, _addresses, "source_ip"),
            (s.remote_ip_blocks, _addresses, "remote_ip"),
        ):
            positive = [c for v in values for c in make(v)]
            self.add(dim, positive)
            if positive:
                guide.setdefault(dim, []).extend(positive)
        for values, make, dim in (
            (s.not_principals, lambda v: _principals(v, td), "principal"),
            (s.not_namespaces, _namespace, "principal"),
            (s.not_service_accounts, lambda v: _service_account(v, ns), "principal"),
            (s.not_trust_domains, _trust_domain, "principal"),
            (s.not_request_principals, _jwt_principal, "jwt.principal"),
            (s.not_ip_blocks, _addresses, "source_ip"),
            (s.not_remote_ip_blocks, _addresses, "remote_ip"),
        ):
            self.add(dim, [c for v in values for c in make(v)])

    def operation(self, o: Operation, guide: dict[str, list[Value]]) -> None:
        for values, not_values, make, dim in (
            (o.hosts, o.not_hosts, _hosts, "host"),
            (o.methods, o.not_methods, fill, "method"),
            (o.paths, o.not_paths, _paths, "path"),
            (o.ports, o.not_ports, lambda v: [int(v)] if v.isdigit() else [], "port"),
        ):
            positive = [c for v in values for c in make(v)]
            self.add(dim, positive + [c for v in not_values for c in make(v)])
            if positive:
                guide.setdefault(dim, []).extend(positive)

    def condition(self, c: Condition, ns: str, guide: dict[str, list[Value]]) -> None:
        dim, make = self._condition_dim(c.key, ns)
        if dim is None:
            return
        positive = [x for v in c.values for x in make(v)]
        self.add(dim, positive + [x for v in c.not_values for x in make(v)])
        if positive:
            guide.setdefault(dim, []).extend(positive)

    def _condition_dim(self, key: str, ns: str) -> tuple[str | None, Any]:
        td = self.trust_domains
        simple: dict[str, tuple[str, Any]] = {
            "source.principal": ("principal", lambda v: _principals(v, td)),
            "source.namespace": ("principal", _namespace),
            "source.serviceAccount": ("principal", lambda v: _service_account(v, ns)),
            "source.trustDomain": ("principal", _trust_domain),
            "source.ip": ("source_ip", _addresses),
            "remote.ip": ("remote_ip", _addresses),
            "destination.ip": ("destination_ip", _addresses),
            "destination.port": ("port", lambda v: [int(v)] if v.isdigit() else []),
            "connection.sni": ("sni", fill),
            "request.auth.principal": ("jwt.principal", _jwt_principal),
            "request.auth.audiences": ("jwt.claim:aud", _claim),
            "request.auth.presenter": ("jwt.claim:azp", _claim),
        }
        if key in simple:
            return simple[key]
        if key.startswith("request.headers["):
            return "header:" + key[len("request.headers[") : -1].lower(), fill
        if key.startswith("request.auth.claims["):
            return "jwt.claim:" + ".".join(_nested(key[len("request.auth.claims") :])), _claim
        if key.startswith("experimental.envoy.filters."):
            name, _, rest = key.removeprefix("experimental.").partition("[")
            return f"meta:{name}:{rest.removesuffix(']')}", _meta
        return None, None

    def rule(self, rule: Rule, ns: str) -> None:
        sources = [f.source for f in rule.from_ if f.source is not None] or [None]
        operations = [t.operation for t in rule.to if t.operation is not None] or [None]
        for s in sources:
            for o in operations:
                guide: dict[str, list[Value]] = {}
                if s is not None:
                    self.source(s, ns, guide)
                if o is not None:
                    self.operation(o, guide)
                for c in rule.when:
                    self.condition(c, ns, guide)
                self.guides.append(guide)

    @staticmethod
    def of(policies: list[AuthorizationPolicy], trust_domains: tuple[str, ...] = ("cluster.local",)) -> Space:
        space = Space(trust_domains)
        for dim, values in _BASE.items():
            space.add(dim, list(values))
        for p in policies:
            for rule in p.spec.rules:
                space.rule(rule, p.meta.namespace)
        for dim in list(space.candidates):  # every optional attribute may also be absent
            if dim.startswith(("header:", "jwt.", "meta:")):
                space.add(dim, [None])
        return space

    # --- requests ------------------------------------------------------------------------

    def defaults(self) -> dict[str, Value]:
        return {dim: (None if dim.startswith(("header:", "jwt.", "meta:")) else values[0])
                for dim, values in self.candidates.items()}  # fmt: skip

    def requests(self, *, http: bool, seed: str, guided: int = 12, random_count: int = 150) -> Iterator[Request]:
        rng = random.Random(seed)
        base = self.defaults()
        for dim, values in self.candidates.items():  # one attribute at a time
            for v in values:
                yield self.request({**base, dim: v}, http)
        for guide in self.guides:  # each rule's own values
            for _ in range(guided):
                choice = {d: rng.choice(vs) for d, vs in self.candidates.items()}
                for d, vs in guide.items():
                    if rng.random() < 0.85:
                        choice[d] = rng.choice(vs)
                yield self.request(choice, http)
        for _ in range(random_count):
            yield self.request({d: rng.choice(vs) for d, vs in self.candidates.items()}, http)

    @staticmethod
    def request(choice: dict[str, Value], http: bool) -> Request:
        jwt: dict[str, Any] | None = None
        metadata: dict[str, dict[str, Any]] = {}
        headers: dict[str, str] = {}
        for dim, v in choice.items():
            if v is None:
                continue
            if dim == "jwt.principal":
                jwt = jwt or {}
                jwt["iss"], jwt["sub"] = v
            elif dim.startswith("jwt.claim:"):
                jwt = jwt or {}
                node = jwt
                path = dim.removeprefix("jwt.claim:").split(".")
                for key in path[:-1]:
                    child = node.get(key)
                    if not isinstance(child, dict):
                        child = node[key] = {}
                    node = child
                node[path[-1]] = v
            elif dim.startswith("meta:"):
                _, name, key = dim.split(":", 2)
                metadata.setdefault(name, {})[key] = v
            elif dim.startswith("header:"):
                headers[dim.removeprefix("header:")] = v
        if http:
            headers.update({":method": choice["method"], ":path": choice["path"], ":authority": choice["host"]})
        else:
            headers, jwt = {}, None
        return Request(
            principal=choice["principal"], source_ip=choice["source_ip"], remote_ip=choice["remote_ip"],
            destination_ip=choice["destination_ip"], port=choice["port"], sni=choice["sni"],
            headers=headers, jwt=jwt, metadata=metadata,
        )  # fmt: skip


# Attributes every request has, with neutral values first.
_BASE: dict[str, tuple[Value, ...]] = {
    "principal": (DEFAULT_PRINCIPAL, None, "spiffe://other.td/ns/other/sa/other"),
    "source_ip": ("10.0.0.1",),
    "remote_ip": ("10.0.0.1", "203.0.113.9"),
    "destination_ip": ("10.0.0.2",),
    "port": (8888,),
    "sni": ("", "outbound_.80_._.svc.cluster.local"),
    "method": ("GET", "POST"),
    "path": ("/", "/other"),
    "host": ("svc.example", "other.com"),
}
