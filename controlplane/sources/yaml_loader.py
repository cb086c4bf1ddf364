"""Multi-document YAML in, plain dicts out, each with where it came from.

Files are split on document markers before parsing, so a syntax error in one
document does not lose the documents next to it (YAML forbids a ``---`` at the
start of a line inside any scalar, so the split is exact). Each document is
composed by libyaml (CSafeLoader) into a node tree, then constructed; the tree is
kept beside the data so that an error message can name the line of any field
path (``spec.http[0].route[1].destination.host``) without a second parse.
``kind: List`` documents (``kubectl get -o yaml``) are unwrapped into their items.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from controlplane.model.base import Origin
from controlplane.sources.yaml_compat import GoCompatibleSafeLoader

try:  # libyaml when the wheel has it; same results, several times faster
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - pure-Python PyYAML
    _Loader = yaml.SafeLoader

# A document starts at a line "---" (alone or followed by a space/content).
_DOC_START = re.compile(r"^---(?=[ \t\r\n]|$)", re.MULTILINE)
_PATH_TOKEN = re.compile(r"""\[(\d+)\]|\[["']([^"']*)["']\]|([^.\[\]]+)""")


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document: its data, where it starts, and its node tree for field lines."""

    body: Any
    origin: Origin
    node: yaml.Node | None = field(default=None, compare=False, repr=False)
    line_offset: int = field(default=0, compare=False, repr=False)

    def line_of(self, path: str) -> int:
        """The 1-based line of ``path`` in this document (the nearest existing ancestor
        when the field itself is missing); the document's line when unknown."""
        if self.node is None or not path:
            return self.origin.line
        node, line = self.node, self.origin.line
        tokens = _split_path(path)
        i = 0
        while i < len(tokens):
            token = tokens[i]
            if isinstance(node, yaml.SequenceNode) and isinstance(token, int):
                if token >= len(node.value):
                    break
                node = node.value[token]
                line = node.start_mark.line + 1 + self.line_offset
                i += 1
                continue
            if not isinstance(node, yaml.MappingNode) or isinstance(token, int):
                break
            # Keys may contain dots (labels like app.kubernetes.io/name): try the
            # longest run of remaining name tokens first.
            matched = False
            for j in range(len(tokens), i, -1):
                run = tokens[i:j]
                if any(isinstance(t, int) for t in run):
                    continue
                name = ".".join(run)  # type: ignore[arg-type]
                for key_node, value_node in node.value:
                    if getattr(key_node, "value", None) == name:
                        line = key_node.start_mark.line + 1 + self.line_offset
                        node, i, matched = value_node, j, True
                        break
                if matched:
                    break
            if not matched:
                break
        return line


@dataclass(frozen=True, slots=True)
class YamlProblem:
    """A part of a file that could not be read as a YAML mapping."""

    origin: Origin
    message: str


@dataclass(frozen=True, slots=True)
class LoadResult:
    documents: tuple[Document, ...]
    problems: tuple[YamlProblem, ...]


def _split_path(path: str) -> list[str | int]:
    tokens: list[str | int] = []
    for index, quoted, name in _PATH_TOKEN.findall(path):
        if index:
            tokens.append(int(index))
        elif quoted:
            tokens.append(quoted)
        elif name:
            tokens.append(name)
    return tokens


def _chunks(text: str) -> Iterator[tuple[int, str]]:
    """(0-based first line, text) of each document; directives stay with their document."""
    starts = [0]
    for match in _DOC_START.finditer(text):
        start = _before_directives(text, starts[-1], match.start())
        if _has_content(text[starts[-1] : start]):
            starts.append(start)
    starts.append(len(text))
    line = 0
    for begin, end in pairwise(starts):
        chunk = text[begin:end]
        yield line, chunk
        line += chunk.count("\n")


def _before_directives(text: str, floor: int, start: int) -> int:
    """Move a split point up over the ``%`` directive lines that belong to the next document."""
    while start > floor:
        line_start = text.rfind("\n", floor, start - 1) + 1
        if line_start < floor or not text.startswith("%", line_start):
            break
        start = line_start
    return start


def _has_content(text: str) -> bool:
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped and not stripped.startswith(("#", "%")):
            return True
    return False


def load_yaml(text: str, file: str = "") -> LoadResult:
    """Every document of ``text`` (named ``file`` in origins and messages)."""
    documents: list[Document] = []
    problems: list[YamlProblem] = []
    for first_line, chunk in _chunks(text):
        try:
            try:
                node, body = _load_one(_Loader, chunk)
            except yaml.YAMLError as first_error:
                # libyaml is stricter than the go-yaml Kubernetes uses; give the
                # document a second chance before calling it broken.
                try:
                    node, body = _load_one(GoCompatibleSafeLoader, chunk)
                except yaml.YAMLError:
                    raise first_error from None
            if node is None:
                continue
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            # libyaml may point past the end (an unclosed bracket): name the last line.
            last_line = len(chunk.rstrip().splitlines()) or 1
            line = first_line + min(mark.line + 1 if mark is not None else 1, last_line)
            problem = getattr(exc, "problem", None) or str(exc)
            problems.append(YamlProblem(Origin(file, line), f"invalid YAML: {problem}"))
            continue
        origin = Origin(file, first_line + node.start_mark.line + 1)
        if body is None:
            continue
        if not isinstance(body, dict):
            problems.append(
                YamlProblem(origin, f"a document must be a mapping, not {type(body).__name__}")
            )
            continue
        documents.extend(_unwrap(Document(body, origin, node, first_line), problems))
    return LoadResult(tuple(documents), tuple(problems))


def _load_one(loader_class: type, chunk: str) -> tuple[yaml.Node | None, Any]:
    loader = loader_class(chunk)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        try:
            return node, _construct(node, loader, {})
        except _NeedsFullConstructor:
            return node, loader.construct_document(node)
    finally:
        loader.dispose()


class _NeedsFullConstructor(Exception):
    pass


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


def _construct(node: yaml.Node, loader: Any, memo: dict[int, Any]) -> Any:
    """PyYAML's SafeConstructor, minus its generic machinery, for the plain maps,
    lists and strings that make up nearly all of Kubernetes YAML (twice as fast);
    anything else (merge keys ``<<``, sets, other tags) goes to the real one."""
    found = memo.get(id(node))
    if found is not None:
        return found
    tag = node.tag
    if tag == _STR:
        return node.value
    if tag == _MAP:
        result: dict[Any, Any] = {}
        memo[id(node)] = result
        for key_node, value_node in node.value:
            if key_node.tag != _STR:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise _NeedsFullConstructor
                key = loader.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, bool, type(None))):
                    raise _NeedsFullConstructor  # let PyYAML report unhashable keys
            else:
                key = key_node.value
            result[key] = _construct(value_node, loader, memo)
        return result
    if tag == _SEQ:
        items: list[Any] = []
        memo[id(node)] = items
        items.extend(_construct(child, loader, memo) for child in node.value)
        return items
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_object(node, deep=True)  # int, bool, null, float, timestamp...
    raise _NeedsFullConstructor


def _unwrap(document: Document, problems: list[YamlProblem]) -> Iterator[Document]:
    body = document.body
    kind = body.get("kind")
    items = body.get("items")
    if not (isinstance(kind, str) and kind.endswith("List") and "items" in body):
        yield document
        return
    if items is None:
        return
    if not isinstance(items, list):
        problems.append(YamlProblem(document.origin, f"{kind}.items must be a list"))
        return
    item_nodes = _value_node(document.node, "items")
    for index, item in enumerate(items):
        node = None
        if isinstance(item_nodes, yaml.SequenceNode) and index < len(item_nodes.value):
            node = item_nodes.value[index]
        line = node.start_mark.line + 1 + document.line_offset if node else document.origin.line
        origin = Origin(document.origin.file, line)
        if not isinstance(item, dict):
            problems.append(YamlProblem(origin, f"items[{index}] must be a mapping"))
            continue
        yield Document(item, origin, node, document.line_offset)


def _value_node(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if getattr(key_node, "value", None) == key:
                return value_node
    return None


def load_file(path: str | Path, display_name: str | None = None) -> LoadResult:
    """Read and load one file; an unreadable file is one problem, not an exception."""
    name = display_name if display_name is not None else str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return LoadResult((), (YamlProblem(Origin(name, 0), f"cannot read file: {exc}"),))
    return load_yaml(text, name)
