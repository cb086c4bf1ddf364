"""Probes: how a simulated proxy tells that the change under test reached it.

A probe names one resource (type URL + name) and byte patterns that its serialized content must
contain and must not contain. Scenarios build patterns that only the new version can match (a
fresh endpoint address that was never used, a weight pair that never existed, a new virtual
host), so a probe cannot be satisfied by an old or unrelated version: no false convergence.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Probe:
    id: str
    type_url: str
    name: str
    contains: tuple[bytes, ...] = ()
    absent: tuple[bytes, ...] = ()

    def matches(self, content: bytes) -> bool:
        return all(p in content for p in self.contains) and not any(p in content for p in self.absent)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "type_url": self.type_url, "name": self.name,
            "contains": [base64.b64encode(p).decode() for p in self.contains],
            "absent": [base64.b64encode(p).decode() for p in self.absent],
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Probe:
        return Probe(
            id=data["id"], type_url=data["type_url"], name=data["name"],
            contains=tuple(base64.b64decode(p) for p in data["contains"]),
            absent=tuple(base64.b64decode(p) for p in data["absent"]),
        )


@dataclass(frozen=True)
class Change:
    """One configuration change and the probes that, all satisfied, mean a proxy has it."""
    id: str
    probes: tuple[Probe, ...]
