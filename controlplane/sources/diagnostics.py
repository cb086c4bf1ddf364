"""One problem found in the input, printed the way compilers and ``istioctl analyze`` do."""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.model.base import Origin, ResourceKey
from controlplane.model.text import MAX_MESSAGE_CHARS, MAX_NAME_CHARS, MAX_PATH_CHARS, clip

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True, slots=True, order=True)
class Diagnostic:
    """``file:line: Kind namespace/name: field.path: severity: message``.

    Ordered by file, then line, so that sorted lists read top to bottom.
    """

    origin: Origin
    key: ResourceKey | None
    path: str
    message: str
    severity: str = ERROR

    def __post_init__(self) -> None:
        # Kept until the file is fixed and shown in configz: hold no 1 MB name or value.
        key = self.key
        if key is not None and max(map(len, (key.kind, key.namespace, key.name))) > MAX_NAME_CHARS:
            parts = (clip(p, MAX_NAME_CHARS) for p in (key.kind, key.namespace, key.name))
            object.__setattr__(self, "key", ResourceKey(*parts))
        object.__setattr__(self, "path", clip(self.path, MAX_PATH_CHARS))
        object.__setattr__(self, "message", clip(self.message, MAX_MESSAGE_CHARS))

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def __str__(self) -> str:
        parts = [str(self.origin)] if str(self.origin) else []
        if self.key is not None:
            parts.append(str(self.key))
        if self.path:
            parts.append(self.path)
        parts.append(f"{self.severity}: {self.message}")
        return ": ".join(parts)

    def sort_key(self) -> tuple[str, int, str, str]:
        return (self.origin.file, self.origin.line, self.path, self.message)
