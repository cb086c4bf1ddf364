"""The EnvoyFilter part of the index: every EnvoyFilter's patches, their values parsed into
Envoy messages once per snapshot, and which of them apply to a proxy (Istio's order).

Istio's order (PushContext.EnvoyFilters): the root namespace's filters and the proxy's own
namespace's, those with a ``workloadSelector`` only where it matches the proxy's labels; sorted
by ``priority``, then root namespace first, then by name (the input has no creation time).
Filters with ``targetRefs`` apply to no proxy, as in Istio.

A value that cannot be parsed is a problem of its EnvoyFilter, and that patch is left out;
so is a patch whose result the translator finds invalid (it reports it here). ``problems()``
lists both for logs, metrics, ``/debug`` and ``analyze``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from controlplane.model.base import ResourceKey
from controlplane.model.envoy_filter import EnvoyConfigObjectMatch, EnvoyFilter
from controlplane.model.labels import selector_matches
from controlplane.translate.envoy_filter.values import PatchValueError, parse_value
from controlplane.translate.index.service_index import Snapshot

ENVOY_FILTER_KINDS = frozenset({EnvoyFilter.KIND})
# Istio turns INSERT_* into ADD where there is no order to keep.
_ORDERED = frozenset({"HTTP_FILTER", "NETWORK_FILTER", "HTTP_ROUTE", "LISTENER_FILTER"})
_INSERTS = frozenset({"INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST"})
MAX_REPORTED_PROBLEMS = 1000  # problems found while patching, kept for /debug and metrics

try:
    import re2 as _re
except ImportError:  # pragma: no cover - google-re2 is a dependency
    import re as _re  # type: ignore[no-redef]

_ANY_MATCH = EnvoyConfigObjectMatch()


@dataclass(frozen=True, slots=True, order=True)
class PatchId:
    """One patch: its EnvoyFilter and its position in ``configPatches``."""

    key: ResourceKey
    index: int

    @property
    def path(self) -> str:
        return f"spec.configPatches[{self.index}]"

    def __str__(self) -> str:
        return f"{self.key}: {self.path}"


@dataclass(frozen=True, slots=True)
class EnvoyFilterProblem:
    """Why a patch is left out, named by EnvoyFilter and field path."""

    patch: PatchId
    field: str  # relative to the patch: "patch.value", "" ...
    message: str

    def __str__(self) -> str:
        where = f"{self.patch.path}.{self.field}" if self.field else self.patch.path
        return f"{self.patch.key}: {where}: {self.message}"


@dataclass(frozen=True, slots=True, eq=False)
class CompiledPatch:
    id: PatchId
    apply_to: str
    operation: str
    match: EnvoyConfigObjectMatch
    value: Message | None
    proxy_version: Any = None  # compiled regex, or None

    @property
    def context(self) -> str:
        return self.match.context

    def matches_proxy(self, istio_version: str) -> bool:
        if self.proxy_version is None:
            return True
        return bool(istio_version) and self.proxy_version.search(istio_version) is not None


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    key: ResourceKey
    priority: int
    selector: Mapping[str, str] | None  # None: every workload of its namespace
    patches: tuple[CompiledPatch, ...]


@dataclass(frozen=True, slots=True)
class ProxyPatches:
    """The patches that apply to one proxy, by applyTo, in Istio's order."""

    by_kind: Mapping[str, tuple[CompiledPatch, ...]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.by_kind)

    def of(self, apply_to: str) -> tuple[CompiledPatch, ...]:
        return self.by_kind.get(apply_to, ())

    def all(self) -> tuple[CompiledPatch, ...]:
        return tuple(p for ps in self.by_kind.values() for p in ps)

    def without(self, excluded: set[PatchId]) -> ProxyPatches:
        if not excluded:
            return self
        kept = {k: tuple(p for p in ps if p.id not in excluded) for k, ps in self.by_kind.items()}
        return ProxyPatches({k: ps for k, ps in kept.items() if ps})


class EnvoyFilterIndex:
    """EnvoyFilters by namespace, compiled; and the problems met with them."""

    def __init__(self, filters: Mapping[str, tuple[CompiledFilter, ...]] = {},
                 problems: tuple[EnvoyFilterProblem, ...] = ()) -> None:
        self.by_namespace = dict(filters)
        self.compile_problems = problems
        self.uses_proxy_version = any(
            p.proxy_version is not None for fs in self.by_namespace.values() for f in fs for p in f.patches
        )
        self._found: dict[EnvoyFilterProblem, None] = {}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.by_namespace)

    def filters(self) -> tuple[CompiledFilter, ...]:
        return tuple(f for ns in sorted(self.by_namespace) for f in self.by_namespace[ns])

    def patches_for(self, root_namespace: str, namespace: str, labels: Mapping[str, str],
                    istio_version: str = "") -> ProxyPatches:
        if not self.by_namespace:
            return ProxyPatches()
        matched: list[tuple[int, int, str, CompiledFilter]] = []
        namespaces = [root_namespace] if root_namespace else []
        if namespace != root_namespace:
            namespaces.append(namespace)
        for ns in namespaces:
            for f in self.by_namespace.get(ns, ()):
                if f.selector is None or selector_matches(f.selector, labels):
                    root_rank = 0 if ns == root_namespace else 1
                    matched.append((f.priority, root_rank, f"{f.key.name}.{f.key.namespace}", f))
        matched.sort(key=lambda m: m[:3])
        by_kind: dict[str, list[CompiledPatch]] = {}
        for *_, f in matched:
            for p in f.patches:
                if p.matches_proxy(istio_version):
                    by_kind.setdefault(p.apply_to, []).append(p)
        return ProxyPatches({k: tuple(v) for k, v in by_kind.items()})

    def report(self, problem: EnvoyFilterProblem) -> None:
        """A patch left out while patching a proxy's config (kept, bounded, for problems())."""
        with self._lock:
            if problem not in self._found and len(self._found) < MAX_REPORTED_PROBLEMS:
                self._found[problem] = None

    def forget_found(self) -> None:
        """Before every proxy is translated again: problems no translation meets anymore go."""
        with self._lock:
            self._found.clear()

    def problems(self) -> tuple[EnvoyFilterProblem, ...]:
        with self._lock:
            found = tuple(self._found)
        return tuple(sorted({*self.compile_problems, *found}, key=str))


def compile_filter(ef: EnvoyFilter, problems: list[EnvoyFilterProblem]) -> CompiledFilter:
    """One EnvoyFilter's usable patches; the others go to ``problems``."""
    patches: list[CompiledPatch] = []
    for index, cp in enumerate(ef.spec.config_patches):
        pid = PatchId(ef.key, index)
        if cp.patch is None or cp.apply_to in ("INVALID", "BOOTSTRAP") or cp.patch.operation == "INVALID":
            continue  # refused by validation already
        operation = cp.patch.operation
        if operation in _INSERTS and cp.apply_to not in _ORDERED:
            operation = "ADD"
        value: Message | None = None
        if cp.patch.value is not None and operation != "REMOVE":
            try:
                value = parse_value(cp.apply_to, cp.patch.value)
            except PatchValueError as exc:
                problems.append(EnvoyFilterProblem(pid, "patch.value", str(exc)))
                continue
        match = cp.match or _ANY_MATCH
        if match.proxy is not None and match.proxy.metadata:
            continue  # node metadata is not read: such a patch matches no proxy (validation warns)
        regex = None
        if match.proxy is not None and match.proxy.proxy_version:
            try:
                regex = _re.compile(match.proxy.proxy_version)
            except _re.error as exc:
                problems.append(EnvoyFilterProblem(pid, "match.proxy.proxyVersion", f"invalid regex: {exc}"))
                continue
        patches.append(CompiledPatch(pid, cp.apply_to, operation, match, value, regex))
    selector = ef.spec.workload_selector.labels if ef.spec.workload_selector is not None else None
    return CompiledFilter(ef.key, ef.spec.priority, selector, tuple(patches))


def build_envoy_filter_index(snapshot: Snapshot) -> EnvoyFilterIndex:
    problems: list[EnvoyFilterProblem] = []
    by_ns: dict[str, list[CompiledFilter]] = {}
    for ef in snapshot.of_kind(EnvoyFilter.KIND):
        assert isinstance(ef, EnvoyFilter)
        if ef.spec.target_refs:
            continue  # Istio: meant for a target, never applied to workloads yet
        by_ns.setdefault(ef.meta.namespace, []).append(compile_filter(ef, problems))
    return EnvoyFilterIndex({ns: tuple(fs) for ns, fs in by_ns.items()}, tuple(problems))
