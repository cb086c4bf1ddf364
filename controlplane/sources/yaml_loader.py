"""Multi-document YAML in, plain dicts out, each with where it came from.

Files are split on document markers before parsing, so a syntax error in one
document does not lose the documents next to it (YAML forbids a ``---`` at the
start of a line inside any scalar, so the split is exact). Each document is
composed by libyaml (CSafeLoader) into a node tree, then constructed; the tree is
kept beside the data so that an error message can name the line of any field
path (``spec.http[0].route[1].destination.host``) without a second parse.
``kind: List`` documents (``kubectl get -o yaml``) are unwrapped into their items.

What is read is bounded (``YamlLimits``): file and resource size, nesting depth and nodes
with aliases expanded. A document beyond a bound is one problem naming its file, document
number and line; the documents next to it are read as usual.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from controlplane.model.base import Origin
from controlplane.sources.limits import DEFAULT_LIMITS, YamlLimits, size_text
from controlplane.sources.yaml_compat import (
    DepthLimitedSafeLoader,
    GoCompatibleSafeLoader,
    TooLarge,
)


def _libyaml_loader() -> type | None:
    """libyaml when the wheel has it (same results, several times faster), if it is 0.2.5 or
    later: those refuse nesting past 1000 levels themselves, so that composing (C recursion,
    before any bound of ours can look) cannot exhaust the stack."""
    try:
        from yaml import _yaml

        version = tuple(_yaml.get_version())
    except (ImportError, AttributeError):  # pragma: no cover - pure-Python PyYAML
        return None
    return yaml.CSafeLoader if version >= (0, 2, 5) else None


_Loader: type = _libyaml_loader() or DepthLimitedSafeLoader

# A document starts at a line "---" (alone or followed by a space/content).
_DOC_START = re.compile(r"^---(?=[ \t\r\n]|$)", re.MULTILINE)
# A document that may be a ``kind: List``, whose items (not itself) are resources.
_MAYBE_LIST = re.compile(r"""\bkind["']?\s*:\s*["']?[A-Za-z]*List\b""")
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


def load_yaml(text: str, file: str = "", limits: YamlLimits = DEFAULT_LIMITS) -> LoadResult:
    """Every document of ``text`` (named ``file`` in origins and messages)."""
    documents: list[Document] = []
    problems: list[YamlProblem] = []
    number = 0  # of the document, from 1, as users count them between "---" lines
    for first_line, chunk in _chunks(text):
        if not _has_content(chunk):
            continue
        number += 1
        size = _utf8_size(chunk, limits.max_resource_bytes)
        try:
            if size > limits.max_resource_bytes and not _MAYBE_LIST.search(chunk):
                raise TooLarge(_too_big(size, limits))
            node, body = _read_document(chunk, size, limits)
            if node is None:
                continue
        except (TooLarge, RecursionError) as exc:
            # RecursionError: a safety net, should a bound above ever be too loose.
            mark = getattr(exc, "problem_mark", None)
            line = first_line + (mark.line + 1 if mark is not None else 1)
            problem = getattr(exc, "problem", None) or f"nested too deeply to read ({exc})"
            problems.append(YamlProblem(Origin(file, line), f"document {number}: {problem}"))
            continue
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            # libyaml may point past the end (an unclosed bracket): name the last line.
            last_line = len(chunk.rstrip().splitlines()) or 1
            line = first_line + min(mark.line + 1 if mark is not None else 1, last_line)
            problem = getattr(exc, "problem", None) or str(exc)
            if size > limits.max_second_chance_bytes:
                limit = size_text(limits.max_second_chance_bytes)
                problem += f" (a document over {limit} is not read again as go-yaml would)"
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
        for document in _unwrap(Document(body, origin, node, first_line), problems):
            if size > limits.max_resource_bytes and document.node is not None:
                # Only a List's items can be smaller than their document.
                start, end = document.node.start_mark.index, document.node.end_mark.index
                item_size = _utf8_size(chunk[start:end], limits.max_resource_bytes)
                if item_size > limits.max_resource_bytes:
                    where = f"document {number}, item at line {document.origin.line}"
                    problems.append(
                        YamlProblem(document.origin, f"{where}: {_too_big(item_size, limits)}")
                    )
                    continue
            documents.append(document)
    return LoadResult(tuple(documents), tuple(problems))


def _read_document(chunk: str, size: int, limits: YamlLimits) -> tuple[yaml.Node | None, Any]:
    try:
        return _load_one(_Loader, chunk, limits)
    except TooLarge:
        raise
    except yaml.YAMLError as first_error:
        problem = getattr(first_error, "problem", None) or ""
        if "maximum nesting depth" in problem:  # libyaml's own bound (1000)
            mark = getattr(first_error, "problem_mark", None)
            raise TooLarge(f"nested more than {limits.max_depth} levels deep", mark) from None
        if size > limits.max_second_chance_bytes:
            raise
        # libyaml is stricter than the go-yaml Kubernetes uses; give the document a
        # second chance before calling it broken.
        try:
            return _load_one(GoCompatibleSafeLoader, chunk, limits)
        except TooLarge:
            raise
        except yaml.YAMLError:
            raise first_error from None


def _utf8_size(text: str, limit: int) -> int:
    """The UTF-8 size of ``text``, exact only when it might exceed ``limit`` (cheaply)."""
    if len(text) * 4 <= limit:
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def _too_big(size: int, limits: YamlLimits) -> str:
    limit = limits.max_resource_bytes
    return (
        f"{size:,} bytes: a resource may have at most {limit:,} ({size_text(limit)}, "
        "etcd's request limit in Kubernetes)"
    )


def _load_one(
    loader_class: type, chunk: str, limits: YamlLimits = DEFAULT_LIMITS
) -> tuple[yaml.Node | None, Any]:
    loader = loader_class(chunk)
    if hasattr(loader, "max_depth"):  # PyYAML's composer: bounded while composing
        loader.max_depth = limits.max_depth
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_shape(node, limits)  # libyaml's composer: bounded before constructing
        try:
            return node, _construct(node, loader, {})
        except _NeedsFullConstructor:
            return node, loader.construct_document(node)
    finally:
        loader.dispose()


class _NeedsFullConstructor(Exception):
    pass


def _check_shape(root: yaml.Node, limits: YamlLimits) -> None:
    """Raise TooLarge if the tree nests deeper than ``max_depth`` or holds more than
    ``max_nodes`` nodes, counting a node as often as aliases reach it (so an alias cycle
    is too deep, and an alias bomb too large). Iterative: no recursion to exhaust."""
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    count = 1
    while stack:
        node, depth = stack.pop()
        if depth > limits.max_depth:
            raise TooLarge(f"nested more than {limits.max_depth} levels deep", node.start_mark)
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            continue
        count += len(children)
        if count > limits.max_nodes:
            raise TooLarge(
                f"more than {limits.max_nodes:,} nodes with aliases expanded", node.start_mark
            )
        stack.extend((c, depth + 1) for c in children if not isinstance(c, yaml.ScalarNode))


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


def load_file(
    path: str | Path, display_name: str | None = None, limits: YamlLimits = DEFAULT_LIMITS
) -> LoadResult:
    """Read and load one file; an unreadable file is one problem, not an exception."""
    name = display_name if display_name is not None else str(path)

    def problem(message: str) -> LoadResult:
        return LoadResult((), (YamlProblem(Origin(name, 0), message),))

    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block, a device never end
            return problem("cannot read file: not a regular file")
        if info.st_size > limits.max_file_bytes:
            return problem(_file_too_big(info.st_size, limits))
        with open(path, encoding="utf-8") as stream:
            text = stream.read(limits.max_file_bytes + 1)  # it may have grown since
    except (OSError, UnicodeDecodeError) as exc:
        return problem(f"cannot read file: {exc}")
    if len(text) > limits.max_file_bytes:
        return problem(_file_too_big(len(text), limits))
    return load_yaml(text, name, limits)


def _file_too_big(size: int, limits: YamlLimits) -> str:
    limit = limits.max_file_bytes
    return (
        f"file of {size:,} bytes not read: at most {limit:,} ({size_text(limit)}) per file;"
        " split it into several files"
    )
