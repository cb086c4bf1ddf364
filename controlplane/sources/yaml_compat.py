"""A second-chance YAML loader that reads plain scalars the way Kubernetes does.

Kubernetes and Istio read YAML with go-yaml v2, where a ``:`` ends a plain scalar
only when a space (or the end) follows, also inside ``[...]``: so
``addresses: [1.2.3.4, 2001:db8::]`` is a list of two strings there, while libyaml
rejects it and PyYAML's own scanner makes ``{"2001:db8:": null}`` of the second.
The loader uses this only for documents libyaml rejects, so the fast path is unchanged.

PyYAML's own composer recurses once per level of nesting, so these loaders stop at
``max_depth`` levels (``TooLarge``) instead of exhausting Python's stack.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.tokens import ScalarToken

_BLANK = "\0 \t\r\n\x85\u2028\u2029"


class TooLarge(yaml.MarkedYAMLError):
    """A document beyond one of ``YamlLimits`` (depth, nodes, bytes): refused, not read."""

    def __init__(self, problem: str, mark: Any = None) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _DepthLimited:
    max_depth = 100  # set per loader from YamlLimits
    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                mark = self.peek_event().start_mark  # type: ignore[attr-defined]
                raise TooLarge(f"nested more than {self.max_depth} levels deep", mark)
            return super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._depth -= 1


class DepthLimitedSafeLoader(_DepthLimited, yaml.SafeLoader):
    """PyYAML's SafeLoader, for where libyaml is missing or too old to bound nesting."""


class GoCompatibleSafeLoader(_DepthLimited, yaml.SafeLoader):
    def scan_plain(self) -> ScalarToken:  # PyYAML's, with go-yaml v2's end-of-scalar rule
        chunks: list[str] = []
        start_mark = self.get_mark()
        end_mark = start_mark
        indent = self.indent + 1
        spaces: list[str] | None = []
        while True:
            length = 0
            if self.peek() == "#":
                break
            while True:
                ch = self.peek(length)
                if (
                    ch in _BLANK
                    or (ch == ":" and self.peek(length + 1) in _BLANK)
                    or (self.flow_level and ch in ",?[]{}")
                ):
                    break
                length += 1
            if length == 0:
                break
            self.allow_simple_key = False
            chunks.extend(spaces or [])
            chunks.append(self.prefix(length))
            self.forward(length)
            end_mark = self.get_mark()
            spaces = self.scan_plain_spaces(indent, start_mark)
            if not spaces or self.peek() == "#" or (not self.flow_level and self.column < indent):
                break
        return ScalarToken("".join(chunks), True, start_mark, end_mark)
