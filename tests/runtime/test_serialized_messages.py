"""The pusher serializes each message once, and compares a group's lists by identity: the
same messages give the same tuple (the cache keeps the set made from it), and a list where a
few were replaced, added or dropped has only those looked up."""

from __future__ import annotations

from controlplane.server import push
from controlplane.server.push import SerializedMessages
from controlplane.xds import types
from controlplane.xds.resources import prepare
from tests.harness import xds_resources as r


def test_a_group_s_lists_are_prepared_by_what_changed(monkeypatch) -> None:
    serialized: list[str] = []

    def counting(type_url, message, previous=None):
        serialized.append(message.cluster_name)
        return prepare(type_url, message, previous)

    monkeypatch.setattr(push, "prepare", counting)
    messages = [r.assignment(f"c{i}", [("127.0.0.1", 9000 + i)]) for i in range(5)]
    s = SerializedMessages()
    first = s.prepare("g", {types.ENDPOINT: messages})[types.ENDPOINT]
    assert [p.name for p in first] == [f"c{i}" for i in range(5)] and len(serialized) == 5
    assert s.prepare("g", {types.ENDPOINT: list(messages)})[types.ENDPOINT] is first
    s.end_push()
    assert s.prepare("g", {types.ENDPOINT: list(messages)})[types.ENDPOINT] is first, "kept across a push"

    replaced = r.assignment("c2", [("127.0.0.1", 7002)])
    second = s.prepare("g", {types.ENDPOINT: [*messages[:2], replaced, *messages[3:]]})[types.ENDPOINT]
    assert serialized[5:] == ["c2"]
    assert [a is b for a, b in zip(first, second)] == [True, True, False, True, True]
    assert second[2].payload == replaced.SerializeToString(deterministic=True)

    added = r.assignment("c9", [("127.0.0.1", 7009)])
    third = s.prepare("g", {types.ENDPOINT: [*messages[:2], replaced, added]})[types.ENDPOINT]
    assert serialized[6:] == ["c9"], "the others are found by identity"
    assert third[:3] == second[:3]
    # Another group with a message the first one prepared: serialized once for both.
    assert s.prepare("h", {types.ENDPOINT: [added]})[types.ENDPOINT][0] is third[3]
    assert serialized[7:] == []
