"""Read files for analysis: every document, parsed or not, with its diagnostics."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from controlplane.model.base import Origin, ResourceKey
from controlplane.sources.diagnostics import ERROR, WARNING, Diagnostic
from controlplane.sources.folder import find_yaml_files
from controlplane.sources.parsing import Parsed, parse_document
from controlplane.sources.yaml_loader import load_file


@dataclass(frozen=True)
class Inputs:
    """Everything read: the parsed documents (valid, invalid and unsupported kinds, in
    file order) and the problems found on the way."""

    files: tuple[Path, ...]
    documents: tuple[Parsed, ...]
    diagnostics: tuple[Diagnostic, ...]

    def valid(self, kind: str | None = None) -> list[Parsed]:
        """Documents that passed validation, first of each key only."""
        return [
            p
            for p in self._unique()
            if p.resource is not None and (kind is None or p.key is not None and p.key.kind == kind)
        ]

    def raw(self, kinds: Iterable[str]) -> list[Parsed]:
        """Documents of ``kinds`` whatever the model thinks of them (e.g. Deployments)."""
        wanted = set(kinds)
        return [p for p in self.documents if p.document.body.get("kind") in wanted]

    def _unique(self) -> list[Parsed]:
        seen: set[ResourceKey] = set()
        out = []
        for parsed in self.documents:
            if parsed.key is not None and parsed.resource is not None:
                if parsed.key in seen:
                    continue
                seen.add(parsed.key)
            out.append(parsed)
        return out


def read_inputs(paths: Sequence[Path], default_namespace: str = "default") -> Inputs:
    diagnostics: list[Diagnostic] = []
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            diagnostics.append(
                Diagnostic(Origin(str(path)), None, "", "no such file or directory", ERROR)
            )
        elif path.is_dir():
            files.extend(find_yaml_files([path]))
        else:
            files.append(path)
    documents: list[Parsed] = []
    first: dict[ResourceKey, Origin] = {}
    for file in files:
        result = load_file(file)
        diagnostics.extend(
            Diagnostic(p.origin, None, "", p.message, ERROR) for p in result.problems
        )
        for document in result.documents:
            parsed = parse_document(document, default_namespace)
            diagnostics.extend(parsed.diagnostics)
            documents.append(parsed)
            if parsed.resource is None or parsed.key is None:
                continue
            if parsed.key in first:
                diagnostics.append(
                    Diagnostic(
                        document.origin,
                        parsed.key,
                        "",
                        f"duplicate of the resource at {first[parsed.key]}; ignored",
                        WARNING,
                    )
                )
            else:
                first[parsed.key] = document.origin
    return Inputs(tuple(files), tuple(documents), tuple(diagnostics))
