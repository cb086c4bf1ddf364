"""A set built from a tuple of PreparedResources (what the pusher's SerializedMessages hands
the cache) remembers it: the very same tuple again gives the very same set, and one where a
few were replaced gives the set a whole build would, sharing every resource not replaced."""

from __future__ import annotations

from controlplane.xds import types
from controlplane.xds.resources import PreparedResource, TypeResources, prepare
from tests.harness import xds_resources as r


def prepared(ports: dict[str, int]) -> tuple[PreparedResource, ...]:
    return tuple(prepare(types.ENDPOINT, r.assignment(name, [("127.0.0.1", port)])) for name, port in sorted(ports.items()))


def same_content(a: TypeResources, b: TypeResources) -> bool:
    return list(a.by_name) == list(b.by_name) and a.version == b.version and all(
        a.by_name[n].payload == b.by_name[n].payload for n in a.by_name
    )


def test_the_same_tuple_gives_the_same_set() -> None:
    items = prepared({"a": 1, "b": 2, "c": 3})
    first = TypeResources.build(types.ENDPOINT, items)
    assert TypeResources.build(types.ENDPOINT, items, first) is first
    # Equal resources in another tuple of the same PreparedResources: the same set too.
    assert TypeResources.build(types.ENDPOINT, items[:1] + items[1:], first) is first


def test_a_few_replaced_give_what_a_whole_build_gives() -> None:
    ports = {f"c{i:02}": 9000 + i for i in range(30)}
    items = prepared(ports)
    first = TypeResources.build(types.ENDPOINT, items)
    changed = dict(ports, c03=7003, c17=7017)
    again = prepared(changed)
    mixed = tuple(again[i] if name in ("c03", "c17") else items[i] for i, name in enumerate(sorted(ports)))
    second = TypeResources.build(types.ENDPOINT, mixed, first)
    assert same_content(second, TypeResources.build(types.ENDPOINT, prepared(changed)))
    assert second.version != first.version
    assert all(second.by_name[n] is first.by_name[n] for n in ports if n not in ("c03", "c17"))
    # Replaced by resources of the same content (a rebuilt unit): nothing new for streams.
    rebuilt = tuple(prepared(changed)[i] if i in (3, 17) else r for i, r in enumerate(mixed))
    assert TypeResources.build(types.ENDPOINT, rebuilt, second) is second


def test_a_replacement_under_another_name_is_built_whole() -> None:
    items = prepared({"a": 1, "b": 2, "c": 3})
    first = TypeResources.build(types.ENDPOINT, items)
    renamed = (items[0], prepared({"bb": 2})[0], items[2])
    second = TypeResources.build(types.ENDPOINT, renamed, first)
    assert same_content(second, TypeResources.build(types.ENDPOINT, prepared({"a": 1, "bb": 2, "c": 3})))


def test_messages_are_not_held_as_a_set_s_source() -> None:
    """A message may change in place: a set built from messages takes no shortcut later."""
    message = r.assignment("a", [("127.0.0.1", 1)])
    first = TypeResources.build(types.ENDPOINT, (message,))
    assert first.built_from is None
    message.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value = 2
    second = TypeResources.build(types.ENDPOINT, (message,), first)
    assert second.version != first.version
