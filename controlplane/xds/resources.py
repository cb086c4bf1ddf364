"""Resources serialized once per version; the bytes are shared by every stream that sends them.

A DiscoveryResponse is framed by concatenating pre-encoded fields: protobuf allows fields in any
order and repeated fields to be split, so `header + b"".join(resource_fields)` is a valid message
and per-stream work is only joining bytes.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TypeAlias

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from controlplane.xds import types

# What callers hand to the cache: a message that carries its own name, or (name, message).
ResourceInput: TypeAlias = Message | tuple[str, Message]


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _type_url_of(message: Message) -> str:
    return "type.googleapis.com/" + message.DESCRIPTOR.full_name


def name_of(message: Message) -> str:
    """The xDS resource name of a message (ClusterLoadAssignment names itself by cluster_name)."""
    if isinstance(message, endpoint_pb2.ClusterLoadAssignment):
        return message.cluster_name
    name = getattr(message, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{message.DESCRIPTOR.full_name} has no name; pass (name, message)")
    return name


def _eds_dependency(message: Message) -> str | None:
    """The EDS resource name a cluster waits for while warming, if it is an EDS cluster."""
    if not isinstance(message, cluster_pb2.Cluster):
        return None
    if message.WhichOneof("cluster_discovery_type") != "type":
        return None
    if message.type != cluster_pb2.Cluster.EDS:
        return None
    source = message.eds_cluster_config.eds_config.WhichOneof("config_source_specifier")
    if source not in ("ads", "self"):
        return None  # fetched elsewhere, not on this stream
    return message.eds_cluster_config.service_name or message.name


@dataclass(frozen=True, eq=False)
class PreparedResource:
    """One resource at one version: its serialized bytes and the response fields built from them."""

    name: str
    type_url: str
    version: str
    payload: bytes  # the serialized resource message
    eds_dependency: str | None = None

    @cached_property
    def any_bytes(self) -> bytes:
        return any_pb2.Any(type_url=self.type_url, value=self.payload).SerializeToString()

    @cached_property
    def sotw_field(self) -> bytes:
        """This resource encoded as one `resources` entry of a DiscoveryResponse (protobuf's C
        encoder, measured faster than framing by hand in Python)."""
        return discovery_pb2.DiscoveryResponse(
            resources=[any_pb2.Any(type_url=self.type_url, value=self.payload)]
        ).SerializeToString()

    @cached_property
    def delta_field(self) -> bytes:
        """This resource encoded as one `resources` entry of a DeltaDiscoveryResponse."""
        return discovery_pb2.DeltaDiscoveryResponse(
            resources=[
                discovery_pb2.Resource(
                    name=self.name,
                    version=self.version,
                    resource=any_pb2.Any(type_url=self.type_url, value=self.payload),
                )
            ]
        ).SerializeToString()

    def message(self) -> Message:
        """Decode the payload (for debug output and tests; the server never needs it)."""
        from google.protobuf import descriptor_pool, message_factory

        descriptor = descriptor_pool.Default().FindMessageTypeByName(
            self.type_url.rsplit("/", 1)[-1]
        )
        return message_factory.GetMessageClass(descriptor).FromString(self.payload)


def prepare(
    type_url: str, item: ResourceInput, previous: Mapping[str, PreparedResource] | None = None
) -> PreparedResource:
    """Serialize one resource; reuse the previous PreparedResource (and its cached bytes) if equal."""
    if isinstance(item, tuple):
        name, message = item
    else:
        name, message = name_of(item), item
    actual = _type_url_of(message)
    if actual != type_url:
        raise ValueError(f"resource {name!r} is a {actual}, not a {type_url}")
    payload = message.SerializeToString(deterministic=True)
    version = content_hash(payload)
    if previous is not None:
        old = previous.get(name)
        if old is not None and old.version == version:
            return old
    return PreparedResource(name, type_url, version, payload, _eds_dependency(message))


@lru_cache(maxsize=4096)
def empty_assignment(cluster_name: str) -> PreparedResource:
    """The answer to an EDS request for a cluster we know nothing about: no endpoints."""
    return prepare(types.ENDPOINT, endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster_name))


def version_of_set(resources: Iterable[PreparedResource]) -> str:
    """A content-derived version for a set of resources (stable across restarts). Memoized on
    the resource objects, so many streams asking for the same set hash it once."""
    return _version_of_tuple(tuple(sorted(resources, key=lambda r: r.name)))


@lru_cache(maxsize=64)  # small: each entry keeps its resources alive
def _version_of_tuple(resources: tuple[PreparedResource, ...]) -> str:
    h = hashlib.blake2b(digest_size=8)
    for r in resources:
        h.update(r.name.encode())
        h.update(b"\0")
        h.update(r.version.encode())
        h.update(b"\0")
    return h.hexdigest()


_serials = itertools.count(1)
STEPS_KEPT = 8  # steps of ``updated`` a set remembers: streams that lag behind follow them


@dataclass(frozen=True)
class TypeResources:
    """All resources of one type in a snapshot, by name, with the version of the whole set.

    A set made by ``updated`` remembers its last few steps: the set each came from (by
    serial: no reference, so no chain of old sets stays alive) and the names whose resources
    it replaced (present before and after). A stream in sync with one of those sets looks at
    the names changed since (``changed_since``) alone."""

    type_url: str
    by_name: Mapping[str, PreparedResource] = field(default_factory=dict)
    serial: int = field(default_factory=lambda: next(_serials), compare=False)
    steps: tuple[tuple[int, frozenset[str]], ...] = field(default=(), compare=False)

    def changed_since(self, serial: int) -> frozenset[str] | None:
        """Names replaced since the set ``serial`` (same names in both); None if that set is
        not among the last few steps."""
        for i, (base, _) in enumerate(self.steps):
            if base == serial:
                return frozenset().union(*(names for _, names in self.steps[i:]))
        return None

    @cached_property
    def version(self) -> str:
        return version_of_set(self.by_name.values())

    @cached_property
    def sotw_body(self) -> bytes:
        """Every resource as ``resources`` fields of a DiscoveryResponse, joined once per set:
        each client given the whole set gets these same bytes after its own header."""
        return b"".join(r.sotw_field for r in self.by_name.values())

    @cached_property
    def eds_dependencies(self) -> frozenset[str]:
        """The EDS names the set's clusters wait for."""
        return frozenset(r.eds_dependency for r in self.by_name.values() if r.eds_dependency)

    def changed_from(self, versions: Mapping[str, str]) -> list[PreparedResource]:
        """The resources whose version differs from ``versions`` (name -> version), in name
        order. Memoized for the last few maps asked about: the streams of a group mostly
        hold the same one (another set's ``versions``)."""
        if not versions:
            return list(self.by_name.values())
        memo = self._diffs
        hit = memo.get(id(versions))
        if hit is not None and hit[0] is versions:
            return hit[1]
        changed = [r for name, r in self.by_name.items() if versions.get(name) != r.version]
        if len(memo) >= 4:
            memo.pop(next(iter(memo)))
        memo[id(versions)] = (versions, changed)  # the map is kept: its id is not reused
        return changed

    @cached_property
    def _diffs(self) -> dict[int, tuple[Mapping[str, str], list[PreparedResource]]]:
        return {}

    @cached_property
    def versions(self) -> dict[str, str]:
        """Name -> version, built once per set and shared by every stream that compares what
        it sent with this set (set operations in C instead of a loop per stream); never mutated."""
        return {name: r.version for name, r in self.by_name.items()}

    @staticmethod
    def build(
        type_url: str,
        items: Iterable[ResourceInput],
        previous: TypeResources | None = None,
    ) -> TypeResources:
        old = previous.by_name if previous is not None else None
        by_name: dict[str, PreparedResource] = {}
        for item in items:
            r = prepare(type_url, item, old)
            by_name[r.name] = r  # a duplicate name keeps the last one: never twice in a response
        return TypeResources(type_url, dict(sorted(by_name.items())))

    def updated(self, items: Iterable[ResourceInput]) -> TypeResources:
        """This set with ``items`` added or replaced by name, the others as they are; itself
        when nothing differs (streams then see nothing new)."""
        by_name = dict(self.by_name)
        changed: set[str] = set()
        added = False
        for item in items:
            r = prepare(self.type_url, item, self.by_name)
            if by_name.get(r.name) is not r:
                changed.add(r.name)
                added = added or r.name not in by_name
                by_name[r.name] = r
        if not changed:
            return self
        if added:  # names new to the set: no step a stream could follow
            return TypeResources(self.type_url, dict(sorted(by_name.items())))
        steps = (*self.steps[-(STEPS_KEPT - 1):], (self.serial, frozenset(changed)))
        return TypeResources(self.type_url, by_name, steps=steps)


def merge_layers(layers: Iterable[TypeResources | None], type_url: str) -> TypeResources:
    """Overlay several layers of one type (later layers win by name)."""
    present = [layer for layer in layers if layer is not None and layer.by_name]
    if not present:
        return TypeResources(type_url)
    if len(present) == 1:
        return present[0]
    merged: dict[str, PreparedResource] = {}
    for layer in present:
        merged.update(layer.by_name)
    return TypeResources(type_url, dict(sorted(merged.items())))
