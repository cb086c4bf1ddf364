from __future__ import annotations

import pytest

from controlplane.model.base import ResourceKey, ValidationError
from controlplane.sources.memory import MemorySource
from controlplane.store import Store

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "a"},
    "spec": {"selector": {"app": "a"}, "ports": [{"name": "http", "port": 80}]},
}


def test_apply_dicts_yaml_and_objects_then_delete() -> None:
    store = Store()
    memory = MemorySource(store)
    changes = memory.apply(SERVICE)
    assert changes.added == (ResourceKey("Service", "default", "a"),)
    service = store.snapshot[ResourceKey("Service", "default", "a")]
    assert memory.apply(service).changes == {}  # the same object: nothing to tell
    memory.apply_yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: x}\nspec:\n  ports: [{port: 81}]\n"
    )
    assert sorted(str(k) for k in store.snapshot) == ["Service default/a", "Service x/b"]
    memory.delete(SERVICE, ResourceKey("Service", "x", "b"))
    assert len(store.snapshot) == 0


def test_invalid_dict_raises_and_changes_nothing() -> None:
    store = Store()
    memory = MemorySource(store)
    bad = {**SERVICE, "spec": {"ports": [{"port": "eighty"}]}}
    with pytest.raises(ValidationError) as info:
        memory.apply(SERVICE, bad)
    assert "spec.ports[0].port" in str(info.value)
    assert len(store.snapshot) == 0


def test_unsupported_kinds_are_ignored_and_replace_is_complete() -> None:
    store = Store()
    memory = MemorySource(store)
    memory.apply(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}, SERVICE
    )
    assert [k.kind for k in store.snapshot] == ["Service"]
    memory.replace([])
    assert len(store.snapshot) == 0
