"""Load YAML the way Kubernetes tools (go-yaml) do, for the conformance corpus.

PyYAML follows the YAML spec strictly inside flow sequences: ``[1.2.3.4, 001:db8::]``
becomes ``["1.2.3.4", {"001:db8:": None}]``, while go-yaml (kubectl, Istio's tests)
reads the plain string ``"001:db8::"``. In go-yaml a ``:`` ends a plain scalar only when
a blank follows; this loader does the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.tokens import ScalarToken

_BLANKZ = "\0 \t\r\n\x85\u2028\u2029"


class GoYamlLoader(yaml.SafeLoader):
    def scan_plain(self) -> ScalarToken:  # adapted from PyYAML's Scanner.scan_plain
        chunks: list[str] = []
        start_mark = self.get_mark()
        end_mark = start_mark
        indent = self.indent + 1
        spaces: list[str] = []
        while True:
            length = 0
            if self.peek() == "#":
                break
            while True:
                ch = self.peek(length)
                if (
                    ch in _BLANKZ
                    or (ch == ":" and self.peek(length + 1) in _BLANKZ)
                    or (self.flow_level and ch in ",?[]{}")
                ):
                    break
                length += 1
            if length == 0:
                break
            self.allow_simple_key = False
            chunks.extend(spaces)
            chunks.append(self.prefix(length))
            self.forward(length)
            end_mark = self.get_mark()
            spaces = self.scan_plain_spaces(indent, start_mark)
            if not spaces or self.peek() == "#" or (not self.flow_level and self.column < indent):
                break
        return ScalarToken("".join(chunks), True, start_mark, end_mark)


def load_documents(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(1-based line, document) for every non-empty document of a YAML file."""
    out = []
    with path.open() as stream:
        loader = GoYamlLoader(stream)
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is None:
                    continue
                doc = loader.construct_document(node)
                if doc:
                    out.append((node.start_mark.line + 1, doc))
        finally:
            loader.dispose()
    return out
