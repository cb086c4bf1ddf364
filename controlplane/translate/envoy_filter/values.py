"""EnvoyFilter patch values: JSON data (with ``@type``) into the Envoy message that each
``applyTo`` patches, through protobuf's json_format.

A typed config names its message by ``@type``; json_format finds it in the default
descriptor pool, which holds only the modules imported so far. ``resolve_type`` imports,
on demand, the generated modules of the message's package (xds-protos lays them out by
package: ``envoy/extensions/filters/http/lua/v3/*_pb2.py``), so every Envoy type resolves
without importing all of them up front; an unknown one is reported with its name.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Mapping
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import extension_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

# The message each applyTo patches (Istio's xds.BuildXDSObjectFromStruct).
MESSAGE_OF: Mapping[str, type[Message]] = {
    "LISTENER": listener_pb2.Listener,
    "FILTER_CHAIN": lc.FilterChain,
    "NETWORK_FILTER": lc.Filter,
    "HTTP_FILTER": hcm_pb2.HttpFilter,
    "LISTENER_FILTER": lc.ListenerFilter,
    "ROUTE_CONFIGURATION": route_pb2.RouteConfiguration,
    "VIRTUAL_HOST": rc.VirtualHost,
    "HTTP_ROUTE": rc.Route,
    "CLUSTER": cluster_pb2.Cluster,
    "EXTENSION_CONFIG": extension_pb2.TypedExtensionConfig,
}

# Packages whose modules the project may import to find a type; nothing else is imported.
_ROOTS = ("envoy.", "udpa.", "xds.", "validate.", "google.protobuf.", "google.rpc.")
_imported: set[str] = set()
_lock = threading.Lock()


class PatchValueError(ValueError):
    """A patch value that cannot be turned into its Envoy message; ``str`` says why."""


def thaw(value: Any) -> Any:
    """Frozen model data (FrozenDict, tuples) back into the plain dicts and lists json_format reads."""
    if isinstance(value, Mapping):
        return {str(k): thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


def resolve_type(full_name: str) -> bool:
    """Make ``full_name`` (``envoy.extensions.filters.http.lua.v3.Lua``) known to the default
    pool, importing the modules of its package if need be; False if no module defines it."""
    pool = descriptor_pool.Default()
    if _known(pool, full_name):
        return True
    if not full_name.startswith(_ROOTS):
        return False
    parts = full_name.split(".")
    # The package is a prefix of the name (nested messages add parts): longest first.
    for cut in range(len(parts) - 1, 0, -1):
        package = ".".join(parts[:cut])
        if _import_package(package) and _known(pool, full_name):
            return True
    return False


def _known(pool: descriptor_pool.DescriptorPool, full_name: str) -> bool:
    try:
        pool.FindMessageTypeByName(full_name)
        return True
    except KeyError:
        return False


def _import_package(package: str) -> bool:
    with _lock:
        if package in _imported:
            return False
        _imported.add(package)
    try:
        module = importlib.import_module(package)
    except ImportError:
        return False
    paths = getattr(module, "__path__", None)
    if paths is None:
        return False
    for info in pkgutil.iter_modules(paths):
        if info.name.endswith("_pb2"):
            try:
                importlib.import_module(f"{package}.{info.name}")
            except ImportError:
                continue
    return True


def _type_urls(value: Any, out: set[str]) -> None:
    """Every ``@type`` (and TypedStruct ``type_url``) inside ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "@type" and isinstance(item, str) or key in ("type_url", "typeUrl") and isinstance(item, str) and "/" in item:
                out.add(item)
            else:
                _type_urls(item, out)
    elif isinstance(value, list):
        for item in value:
            _type_urls(item, out)


def check_types(value: Any) -> str:
    """'' when every type ``value`` names is known, else what is unknown."""
    urls: set[str] = set()
    _type_urls(value, urls)
    unknown = sorted(u for u in urls if not resolve_type(u.rsplit("/", 1)[-1]))
    if unknown:
        return "unknown type " + ", ".join(repr(u) for u in unknown) + " (not an Envoy API message this build knows)"
    return ""


def parse_value(apply_to: str, value: Any) -> Message:
    """The Envoy message of ``value`` for ``apply_to``; raises PatchValueError saying why not."""
    cls = MESSAGE_OF.get(apply_to)
    if cls is None:
        raise PatchValueError(f"applyTo {apply_to} is not supported")
    data = thaw(value) if value is not None else {}
    if problem := check_types(data):
        raise PatchValueError(problem)
    message = cls()
    try:
        json_format.ParseDict(data, message, descriptor_pool=descriptor_pool.Default())
    except (json_format.ParseError, TypeError, ValueError, KeyError, AttributeError) as exc:
        reason = str(exc).split("\n", 1)[0]  # json_format appends every field name: not useful
        raise PatchValueError(f"not a valid {cls.DESCRIPTOR.full_name}: {reason}") from None
    return message


def unpack_any(any_msg: Any) -> Message | None:
    """The message inside a ``google.protobuf.Any``, or None when its type is unknown."""
    name = any_msg.type_url.rsplit("/", 1)[-1]
    if not name or not resolve_type(name):
        return None
    try:
        cls = message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(name))
    except (KeyError, TypeError):
        return None
    inner = cls()
    if not any_msg.Unpack(inner):
        return None
    return inner
