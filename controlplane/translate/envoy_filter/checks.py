"""Cheap checks that a patched resource is one Envoy accepts, so that no proxy NACKs because
of a user's patch: the protoc-gen-validate rules Envoy's API declares (required messages and
oneofs, string lengths, list sizes, number bounds), followed into typed configs, plus what
Envoy checks beyond them (a listener's address, the router last in an HTTP filter chain,
unique filter chain matches and virtual host domains).

Each returns '' when it finds nothing wrong, else the first problem, with its field path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import EncodeError, Message
from validate import validate_pb2

from controlplane.translate.envoy_filter.values import resolve_type, unpack_any

_TYPED_STRUCTS = frozenset({"udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct"})
_TERMINAL_HTTP = frozenset({"envoy.filters.http.router", "envoy.router", "envoy.filters.http.upstream_codec"})
_HCM = ("envoy.filters.network.http_connection_manager", "envoy.http_connection_manager")
_NUMBERS = ("float", "double", "int32", "int64", "uint32", "uint64", "sint32", "sint64",
            "fixed32", "fixed64", "sfixed32", "sfixed64")
MAX_DEPTH = 64

Check = Callable[[Message, str], str]
_plans: dict[str, list[Check]] = {}


def pgv_problem(message: Message, path: str = "", depth: int = 0) -> str:
    """The first protoc-gen-validate rule ``message`` breaks, followed into set sub-messages
    and into typed configs (``Any``) of known types."""
    if depth > MAX_DEPTH:
        return ""
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Any":
        return _any_problem(message, path, depth)
    for check in _plan(message.DESCRIPTOR):
        if problem := check(message, path):
            return problem
    for fd, value in message.ListFields():
        if fd.message_type is None:
            continue
        sub = f"{path}.{fd.name}" if path else fd.name
        if fd.is_repeated:
            if fd.message_type.GetOptions().map_entry:
                value_fd = fd.message_type.fields_by_name["value"]
                if value_fd.message_type is None:
                    continue
                for key in value:
                    if problem := pgv_problem(value[key], f"{sub}[{key}]", depth + 1):
                        return problem
                continue
            for i, item in enumerate(value):
                if problem := pgv_problem(item, f"{sub}[{i}]", depth + 1):
                    return problem
        elif problem := pgv_problem(value, sub, depth + 1):
            return problem
    return ""


def _any_problem(any_msg: Any, path: str, depth: int) -> str:
    type_name = any_msg.type_url.rsplit("/", 1)[-1]
    if not resolve_type(type_name):
        return f"{path}: unknown type {any_msg.type_url!r}"
    inner = unpack_any(any_msg)
    if inner is None:
        return f"{path}: cannot read a {type_name}"
    if type_name in _TYPED_STRUCTS:
        wrapped = inner.type_url.rsplit("/", 1)[-1]  # type: ignore[attr-defined]
        if not resolve_type(wrapped):
            return f"{path}.type_url: unknown type {inner.type_url!r}"  # type: ignore[attr-defined]
        cls = message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(wrapped))
        real = cls()
        try:
            json_format.ParseDict(json_format.MessageToDict(inner.value), real)  # type: ignore[attr-defined]
        except json_format.ParseError as exc:
            return f"{path}.value: not a valid {wrapped}: {str(exc).splitlines()[0]}"
        inner = real
    return pgv_problem(inner, f"{path}<{inner.DESCRIPTOR.full_name}>", depth + 1)


def _plan(descriptor: Descriptor) -> list[Check]:
    """The rule checks of one message type, built once."""
    plan = _plans.get(descriptor.full_name)
    if plan is not None:
        return plan
    plan = []
    for oneof in descriptor.oneofs:
        if oneof.GetOptions().Extensions[validate_pb2.required]:
            plan.append(_oneof_required(oneof.name, [f.name for f in oneof.fields]))
    for fd in descriptor.fields:
        options = fd.GetOptions()
        if not options.HasExtension(validate_pb2.rules):
            continue
        rules = options.Extensions[validate_pb2.rules]
        field_checks = _field_checks(fd, rules)
        if fd.containing_oneof is not None:  # PGV: a oneof member's rules hold when it is set
            field_checks = [_when_set(fd.name, c) for c in field_checks]
        plan.extend(field_checks)
    _plans[descriptor.full_name] = plan
    return plan


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _when_set(name: str, check: Check) -> Check:
    return lambda m, p: check(m, p) if m.HasField(name) else ""


def _oneof_required(name: str, fields: list[str]) -> Check:
    def check(msg: Message, path: str) -> str:
        if msg.WhichOneof(name) is None:
            return f"{_join(path, name)}: one of {', '.join(fields)} is required"
        return ""
    return check


def _field_checks(fd: FieldDescriptor, rules: Any) -> list[Check]:
    checks: list[Check] = []
    name = fd.name
    kind = rules.WhichOneof("type")
    if rules.HasField("message") and rules.message.required:
        checks.append(lambda m, p: "" if m.HasField(name) else f"{_join(p, name)}: is required")
    if fd.is_repeated:
        if kind == "repeated" and rules.repeated.min_items and not rules.repeated.ignore_empty:
            least = rules.repeated.min_items
            checks.append(lambda m, p: "" if len(getattr(m, name)) >= least
                          else f"{_join(p, name)}: needs at least {least} item(s)")
        return checks
    if kind == "string":
        r = rules.string
        least = max(r.min_len, r.min_bytes)
        if least and not r.ignore_empty:
            checks.append(lambda m, p: "" if len(getattr(m, name)) >= least
                          else f"{_join(p, name)}: must be at least {least} character(s) long")
    elif kind == "duration":
        r = rules.duration
        if r.required:
            checks.append(lambda m, p: "" if m.HasField(name) else f"{_join(p, name)}: is required")
        bounds = [(b, _seconds(getattr(r, b))) for b in ("gt", "gte", "lt", "lte") if r.HasField(b)]
        if bounds:
            check = _number_check(name, bounds, read=lambda m: _seconds(getattr(m, name)))
            checks.append(lambda m, p: check(m, p) if m.HasField(name) else "")
    elif kind in _NUMBERS and fd.message_type is None:
        r = getattr(rules, kind)
        bounds = [(b, getattr(r, b)) for b in ("gt", "gte", "lt", "lte") if r.HasField(b)]
        if bounds and not getattr(r, "ignore_empty", False):
            checks.append(_number_check(name, bounds))
    return checks


_COMPARE = {
    "gt": (lambda v, b: v > b, ">"),
    "gte": (lambda v, b: v >= b, ">="),
    "lt": (lambda v, b: v < b, "<"),
    "lte": (lambda v, b: v <= b, "<="),
}


def _seconds(duration: Any) -> float:
    return duration.seconds + duration.nanos / 1e9


def _number_check(name: str, bounds: list[tuple[str, Any]], read: Callable[[Message], Any] | None = None) -> Check:
    def check(msg: Message, path: str) -> str:
        value = read(msg) if read is not None else getattr(msg, name)
        lower = [(b, x) for b, x in bounds if b in ("gt", "gte")]
        upper = [(b, x) for b, x in bounds if b in ("lt", "lte")]
        # PGV: lower > upper bound means "outside the range" (exclusive ranges).
        if lower and upper and lower[0][1] > upper[0][1]:
            ok = _COMPARE[lower[0][0]][0](value, lower[0][1]) or _COMPARE[upper[0][0]][0](value, upper[0][1])
            return "" if ok else f"{_join(path, name)}: {value} is out of range"
        for bound, limit in bounds:
            test, sign = _COMPARE[bound]
            if not test(value, limit):
                return f"{_join(path, name)}: must be {sign} {limit}, got {value}"
        return ""
    return check


# --- what Envoy checks beyond the PGV rules --------------------------------------------------


def _serializes(message: Message) -> str:
    try:
        message.SerializeToString()
    except EncodeError as exc:
        return f"does not serialize: {exc}"
    return ""


def _hcm_problem(filter_msg: lc.Filter, path: str) -> str:
    hcm = hcm_pb2.HttpConnectionManager()
    if not filter_msg.typed_config.Unpack(hcm):
        return ""
    if hcm.http_filters:
        last = hcm.http_filters[-1].name
        if last not in _TERMINAL_HTTP:
            return f"{path}.http_filters: the last HTTP filter must be the router, not {last!r}"
        for i, f in enumerate(hcm.http_filters[:-1]):
            if f.name in _TERMINAL_HTTP:
                return f"{path}.http_filters[{i}]: the terminal filter {f.name!r} must be last"
    if hcm.HasField("route_config"):
        return route_config_problem(hcm.route_config, f"{path}.route_config")
    return ""


def listener_problem(lst: listener_pb2.Listener) -> str:
    if problem := _serializes(lst):
        return problem
    if not lst.name:
        return "name: a listener needs a name"
    if not lst.HasField("address") and not lst.HasField("api_listener"):
        return "address: a listener needs an address"
    seen: dict[bytes, int] = {}
    for i, fc in enumerate(lst.filter_chains):
        key = fc.filter_chain_match.SerializeToString(deterministic=True)
        if key in seen:
            return f"filter_chains[{i}]: same filter_chain_match as filter_chains[{seen[key]}]"
        seen[key] = i
    chains = [(f"filter_chains[{i}]", fc) for i, fc in enumerate(lst.filter_chains)]
    if lst.HasField("default_filter_chain"):
        chains.append(("default_filter_chain", lst.default_filter_chain))
    for path, fc in chains:
        for j, flt in enumerate(fc.filters):
            if flt.name in _HCM and (problem := _hcm_problem(flt, f"{path}.filters[{j}]")):
                return problem
    return pgv_problem(lst)


def route_config_problem(config: route_pb2.RouteConfiguration, path: str = "") -> str:
    if problem := _serializes(config):
        return problem
    domains: dict[str, str] = {}
    for i, vh in enumerate(config.virtual_hosts):
        for domain in vh.domains:
            low = domain.lower()
            if low in domains:
                return f"{_join(path, f'virtual_hosts[{i}]')}: domain {domain!r} is also in virtual host {domains[low]!r}"
            domains[low] = vh.name
    return pgv_problem(config, path)


def cluster_problem(cluster: cluster_pb2.Cluster) -> str:
    return _serializes(cluster) or pgv_problem(cluster)


def message_problem(message: Message) -> str:
    return _serializes(message) or pgv_problem(message)
