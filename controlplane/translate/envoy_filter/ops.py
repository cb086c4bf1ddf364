"""What every applyTo family shares: the patch context a resource is in, the record of
which patches applied, and Istio's list operations (ADD, INSERT_*, REPLACE, REMOVE)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableSequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

from google.protobuf.message import Message

from controlplane.translate.envoy_filter.merge import merge
from controlplane.translate.index.envoy_filters import CompiledPatch, PatchId

ANY = "ANY"
SIDECAR_INBOUND = "SIDECAR_INBOUND"
SIDECAR_OUTBOUND = "SIDECAR_OUTBOUND"
GATEWAY = "GATEWAY"

M = TypeVar("M", bound=Message)


@dataclass
class Applied:
    """Patches that matched something (Istio's envoy_filter applied metric, analyze's
    "matches nothing" warning)."""

    ids: set[PatchId] = field(default_factory=set)

    def mark(self, patch: CompiledPatch) -> None:
        self.ids.add(patch.id)


def context_matches(context: str, patch: CompiledPatch) -> bool:
    return patch.context == ANY or patch.context == context


def adds_in(context: str, patch: CompiledPatch) -> bool:
    """Istio adds listeners and clusters of an ANY patch to sidecar outbound and gateways only."""
    if patch.context == ANY:
        return context in (SIDECAR_OUTBOUND, GATEWAY)
    return patch.context == context


def clone(message: M) -> M:
    out = type(message)()
    out.CopyFrom(message)
    return out


def merge_value(target: Message, patch: CompiledPatch) -> None:
    assert patch.value is not None
    merge(target, patch.value, replace_lists=patch.operation == "MERGE_AND_REPLACE_LIST")


MERGES = frozenset({"MERGE", "MERGE_AND_REPLACE_LIST"})


def remove_or_merge(
    target: M,
    patches: Iterable[CompiledPatch],
    matches: Callable[[CompiledPatch], bool],
    applied: Applied,
    merge_one: Callable[[M, CompiledPatch], None] = merge_value,
) -> bool:
    """The REMOVE and MERGE patches of one resource, in order; False when a REMOVE drops it."""
    for p in patches:
        if not matches(p):
            continue
        if p.operation == "REMOVE":
            applied.mark(p)
            return False
        if p.operation in MERGES:
            merge_one(target, p)
            applied.mark(p)
    return True


def list_operation(
    items: MutableSequence[M],
    patch: CompiledPatch,
    has_match: bool,
    matches: Callable[[M], bool],
) -> bool:
    """ADD, INSERT_FIRST, INSERT_BEFORE, INSERT_AFTER, REPLACE or REMOVE on a repeated field
    (Istio's semantics: INSERT_BEFORE with nothing to match inserts first, INSERT_AFTER
    appends, REPLACE and REMOVE need a match). Returns whether it applied."""
    op = patch.operation
    current: list[M] = [clone(x) for x in items]
    new = cast(M, clone(patch.value) if patch.value is not None else None)  # None only for REMOVE
    out: list[M] | None = None
    if op == "ADD":
        out = [*current, new]
    elif op == "INSERT_FIRST":
        out = [new, *current]
    elif op in ("INSERT_BEFORE", "INSERT_AFTER"):
        if not has_match:
            out = [new, *current] if op == "INSERT_BEFORE" else [*current, new]
        else:
            at = next((i for i, x in enumerate(current) if matches(x)), None)
            if at is not None:
                at += 1 if op == "INSERT_AFTER" else 0
                out = [*current[:at], new, *current[at:]]
    elif op == "REPLACE" and has_match:
        at = next((i for i, x in enumerate(current) if matches(x)), None)
        if at is not None:
            out = [*current[:at], new, *current[at + 1:]]
    elif op == "REMOVE" and has_match:
        kept = [x for x in current if not matches(x)]
        if len(kept) != len(current):
            out = kept
    if out is None:
        return False
    del items[:]
    items.extend(out)  # type: ignore[attr-defined]
    return True
