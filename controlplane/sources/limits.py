"""How much YAML one file or document may hold before it is refused, not read.

Each bound is far above real configuration and far below what hurts the server: a
document nested 400 levels deep used to raise RecursionError, and an 8 MB file of routes
to block the folder for 20 s. A refused document is reported like any invalid one (file,
document number, line); the rest of the folder is read as usual.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class YamlLimits:
    # Kubernetes and Istio objects nest ~15 levels (an EnvoyFilter patch ~30); every
    # recursive step after the parser (construction, validation) stays far from Python's
    # recursion limit of 1000.
    max_depth: int = 100
    # etcd's default request limit (--max-request-bytes): no Kubernetes object is larger,
    # so neither may one resource here be (a document, or one item of a ``kind: List``).
    max_resource_bytes: int = 3 * MIB // 2
    # Nodes of one document counted with aliases expanded: more than 1.5 MiB of plain YAML
    # can hold, so only an alias bomb ("billion laughs") reaches it.
    max_nodes: int = 1_000_000
    # A file is read whole, and the folder waits while it is parsed (about 0.5 s per MiB
    # with libyaml): a larger dump is split into several files.
    max_file_bytes: int = 8 * MIB
    # Documents libyaml rejects get a second reading by PyYAML's pure-Python parser (go-yaml
    # accepts more), about 3 s per MiB: only small ones, as are those that need it.
    max_second_chance_bytes: int = 256 * 1024


DEFAULT_LIMITS = YamlLimits()


def size_text(n: int) -> str:
    return f"{n / MIB:g} MiB" if n >= MIB else f"{n / 1024:g} KiB"
