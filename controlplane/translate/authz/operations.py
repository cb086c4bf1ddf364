"""What is asked for: ``to.operation`` fields and the destination-side ``when`` keys as RBAC
permissions (Istio's host, method, path, destPort, destIP, connSNI and envoyFilter generators).
Hosts, methods and paths exist only on HTTP chains."""

from __future__ import annotations

from envoy.config.core.v3 import extension_pb2
from envoy.extensions.path.match.uri_template.v3 import uri_template_match_pb2

from controlplane.model.security import Operation
from controlplane.translate.authz import matchers as m
from controlplane.translate.authz.terms import Permission, Term
from controlplane.translate.pb import any_of

AUTHORITY = ":authority"
METHOD = ":method"
URI_TEMPLATE = "uri-template"


def host(value: str) -> Permission:
    """The Host / :authority header, case-insensitive."""
    return Permission(header=m.header_matcher(AUTHORITY, value, ignore_case=True))


def method(value: str) -> Permission:
    return Permission(header=m.header_matcher(METHOD, value))


def path(value: str) -> Permission:
    """The path without its query: a glob, or a ``{*}``/``{**}`` template (Envoy uri_template)."""
    if m.is_path_template(value):
        config = uri_template_match_pb2.UriTemplateMatchConfig(path_template=m.path_template(value))
        return Permission(uri_template=extension_pb2.TypedExtensionConfig(name=URI_TEMPLATE, typed_config=any_of(config)))
    return Permission(url_path=m.path_matcher(value))


def destination_port(value: str) -> Permission:
    return Permission(destination_port=m.port(value))


def destination_ip(value: str) -> Permission:
    return Permission(destination_ip=m.cidr(value))


def server_name(value: str) -> Permission:
    return Permission(requested_server_name=m.string_matcher(value))


def envoy_metadata(key: str, values: tuple[str, ...]) -> Permission:
    """``experimental.envoy.filters.<filter>[<key>]``: that filter's dynamic metadata; a value
    written ``[v]`` matches a list holding ``v``."""
    name, bracket, rest = key.removeprefix("experimental.").partition("[")
    if not bracket:
        raise m.Unsupported(f"invalid key {key!r}")
    field = rest.removesuffix("]")
    matchers = []
    for value in values:
        if value.startswith("[") and value.endswith("]"):
            matchers.append(m.list_one_of(m.string_value(m.string_matcher(value.strip("[]")))))
        else:
            matchers.append(m.string_value(m.string_matcher(value)))
    return Permission(metadata=m.metadata(name, [field], m.or_values(matchers)))


def operation_terms(op: Operation) -> list[Term[Permission]]:
    """The terms of one ``to.operation``, in Istio's order."""
    return [t for t in (
        Term("host", op.hosts, op.not_hosts, one=host, http_only=True),
        Term("method", op.methods, op.not_methods, one=method, http_only=True),
        Term("path", op.paths, op.not_paths, one=path, http_only=True),
        Term("destination.port", op.ports, op.not_ports, one=destination_port),
    ) if t]  # fmt: skip
