"""RFC 6902 JSON patches as the API server applies a webhook's answer (add, replace, remove),
for the local cluster (``controlplane demo --pods``) and tests."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any


class PatchError(ValueError):
    pass


def apply_patch(document: dict[str, Any], patch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A patched copy; the document is unchanged if any operation fails (all or nothing)."""
    out = copy.deepcopy(document)
    for op in patch:
        path = op.get("path", "")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
        if not parts:
            raise PatchError(f"{op.get('op')} {path!r}: the whole document cannot be patched here")
        try:
            parent: Any = out
            for part in parts[:-1]:
                parent = parent[int(part)] if isinstance(parent, list) else parent[part]
            last = parts[-1]
            if op["op"] in ("add", "replace"):
                if isinstance(parent, list):
                    index = len(parent) if last == "-" else int(last)
                    if op["op"] == "replace":
                        parent[index] = op["value"]
                    else:
                        parent.insert(index, op["value"])
                else:
                    if op["op"] == "replace" and last not in parent:
                        raise PatchError(f"replace {path}: nothing there")
                    parent[last] = op["value"]
            elif op["op"] == "remove":
                del parent[int(last) if isinstance(parent, list) else last]
            else:
                raise PatchError(f"{op['op']} {path}: operation not supported")
        except (KeyError, IndexError, ValueError, TypeError) as error:
            raise PatchError(f"{op.get('op')} {path}: {error}") from None
    return out
