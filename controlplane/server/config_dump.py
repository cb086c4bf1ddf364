"""What we would send one proxy, in the shape of Envoy's own ``/config_dump``.

``/debug/config_dump?proxyID=`` answers with this, as istiod does, so ``controlplane
proxy-config`` reads the control plane's view and a live Envoy's admin output with the
same code. Secrets are redacted as Envoy redacts them: the private key (and any other
secret bytes) become ``[redacted]``; certificates and trust bundles are public and stay.
Filter configs served over ECDS come as Envoy's ``ecds_filter_http`` and
``ecds_filter_network`` sections (one ``EcdsConfigDump`` each, HTTP filters first).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from envoy.admin.v3 import config_dump_pb2, config_dump_shared_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from google.protobuf import any_pb2
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from controlplane.xds import types

REDACTED = b"[redacted]"

# What one xDS type's view looks like: controlplane.xds.resources.TypeResources or None.
View = Callable[[str], Any]


def redact_secret(secret: secret_pb2.Secret) -> secret_pb2.Secret:
    """A copy with every secret byte replaced, as Envoy's admin does."""
    out = secret_pb2.Secret()
    out.CopyFrom(secret)
    if out.HasField("tls_certificate"):
        tls = out.tls_certificate
        for field in ("private_key", "password"):
            if tls.HasField(field):
                getattr(tls, field).Clear()
                getattr(tls, field).inline_bytes = REDACTED
        if tls.HasField("private_key_provider"):
            tls.ClearField("private_key_provider")
    if out.HasField("session_ticket_keys"):
        for key in out.session_ticket_keys.keys:
            key.Clear()
            key.inline_bytes = REDACTED
    if out.HasField("generic_secret"):
        out.generic_secret.secret.Clear()
        out.generic_secret.secret.inline_bytes = REDACTED
    return out


def _any(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _resources(view: View, type_url: str) -> list[tuple[str, str, Message]]:
    """(name, version, decoded message) of one type, sorted by name."""
    resources = view(type_url)
    if resources is None:
        return []
    return [
        (name, prepared.version, prepared.message())
        for name, prepared in sorted(resources.by_name.items())
    ]


# Envoy dumps ECDS configs per filter kind; a config's own type tells which kind it serves.
_ECDS_KINDS = ("envoy.extensions.filters.http.", "envoy.extensions.filters.network.")


def _ecds_kind(message: Message) -> int:
    inner = getattr(message, "typed_config", None)
    type_name = inner.type_url.rsplit("/", 1)[-1] if inner is not None else ""
    for index, prefix in enumerate(_ECDS_KINDS):
        if type_name.startswith(prefix):
            return index
    return len(_ECDS_KINDS)  # another kind of extension: a section of its own, last


def _ecds_dumps(view: View) -> list[config_dump_shared_pb2.EcdsConfigDump]:
    dumps: dict[int, config_dump_shared_pb2.EcdsConfigDump] = {}
    for _name, version, message in _resources(view, types.EXTENSION_CONFIG):
        dump = dumps.setdefault(_ecds_kind(message), config_dump_shared_pb2.EcdsConfigDump())
        dump.ecds_filters.add(version_info=version, ecds_filter=_any(message))
    return [dumps[k] for k in sorted(dumps)]


def build_config_dump(view: View) -> config_dump_pb2.ConfigDump:
    clusters = config_dump_shared_pb2.ClustersConfigDump(
        version_info=_set_version(view, types.CLUSTER)
    )
    for _name, version, message in _resources(view, types.CLUSTER):
        clusters.dynamic_active_clusters.add(version_info=version, cluster=_any(message))
    listeners = config_dump_shared_pb2.ListenersConfigDump(
        version_info=_set_version(view, types.LISTENER)
    )
    for name, version, message in _resources(view, types.LISTENER):
        entry = listeners.dynamic_listeners.add(name=name)
        entry.active_state.version_info = version
        entry.active_state.listener.CopyFrom(_any(message))
    routes = config_dump_shared_pb2.RoutesConfigDump()
    for _name, version, message in _resources(view, types.ROUTE):
        routes.dynamic_route_configs.add(version_info=version, route_config=_any(message))
    endpoints = config_dump_shared_pb2.EndpointsConfigDump()
    for _name, version, message in _resources(view, types.ENDPOINT):
        endpoints.dynamic_endpoint_configs.add(version_info=version, endpoint_config=_any(message))
    secrets = config_dump_pb2.SecretsConfigDump()
    for name, version, message in _resources(view, types.SECRET):
        secrets.dynamic_active_secrets.add(
            name=name, version_info=version, secret=_any(redact_secret(message))
        )
    dump = config_dump_pb2.ConfigDump()
    for part in (clusters, *_ecds_dumps(view), listeners, routes, endpoints, secrets):
        dump.configs.append(_any(part))
    return dump


def config_dump_dict(view: View) -> dict[str, Any]:
    """The dump as JSON-ready data, with field names as Envoy prints them (snake_case)."""
    return MessageToDict(build_config_dump(view), preserving_proto_field_name=True)


def _set_version(view: View, type_url: str) -> str:
    resources = view(type_url)
    return "" if resources is None else resources.version
