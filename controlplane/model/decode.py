"""Turn plain dicts into frozen dataclasses, once-compiled per class, with field paths in errors.

Each model class is inspected once (type hints, field names); the result is a
closure per field, so parsing a document costs a dict walk and no reflection.
Field names are the dataclass's snake_case names turned into camelCase, unless a
field sets ``metadata={"json": "..."}`` (``from`` is a Python keyword, for one).

Supported annotations: ``str``, ``int``, ``float``, ``bool``, ``timedelta``
(Istio/Go duration syntax), ``Literal[...]`` of strings, ``int | str``,
``X | None``, ``tuple[X, ...]``, ``Mapping[str, X]`` (a FrozenDict), ``object``
(any JSON value, frozen) and nested model dataclasses.

A ``null`` value counts as absent, as the Kubernetes API server treats it.
A class with ``LENIENT = True`` ignores fields it does not model (used for the
parts of Kubernetes objects we do not read, such as a Pod's containers' images).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Literal, TypeVar, get_args, get_origin

from controlplane.model.base import FieldError, ObjectMeta
from controlplane.model.frozen import FrozenDict

T = TypeVar("T")

# Returned by a converter whose input was wrong; the error is already recorded.
INVALID: Any = type("Invalid", (), {"__repr__": lambda self: "INVALID"})()

Converter = Callable[[Any, str, list[FieldError]], Any]


def camel(name: str) -> str:
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def join(path: str, key: str) -> str:
    return f"{path}.{key}"


def jfield(json_name: str, **kwargs: Any) -> Any:
    """A dataclass field whose document name is not the camelCase of its Python name."""
    return dataclasses.field(metadata={"json": json_name}, **kwargs)


def json_name(cls: type, attr: str) -> str:
    """The document name of a model attribute, for validators building paths."""
    for f in dataclasses.fields(cls):
        if f.name == attr:
            return f.metadata.get("json", camel(f.name))
    raise AttributeError(attr)


# --- scalars -------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _wrong(path: str, expected: str, value: Any, errors: list[FieldError]) -> Any:
    errors.append(FieldError(path, f"must be of type {expected}, got {_type_name(value)}"))
    return INVALID


def _str(value: Any, path: str, errors: list[FieldError]) -> Any:
    if type(value) is str:
        return value
    return _wrong(path, "string", value, errors)


def _int(value: Any, path: str, errors: list[FieldError]) -> Any:
    if type(value) is int:
        return value
    return _wrong(path, "integer", value, errors)


def _float(value: Any, path: str, errors: list[FieldError]) -> Any:
    if type(value) is float or type(value) is int:
        return float(value)
    return _wrong(path, "number", value, errors)


def _bool(value: Any, path: str, errors: list[FieldError]) -> Any:
    if type(value) is bool:
        return value
    return _wrong(path, "boolean", value, errors)


def _int_or_str(value: Any, path: str, errors: list[FieldError]) -> Any:
    if type(value) is int or type(value) is str:
        return value
    return _wrong(path, "integer or string", value, errors)


_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> timedelta | None:
    """Go's ``time.ParseDuration`` syntax (``1h30m``, ``1.5s``, ``300ms``); None if malformed.

    Istio accepts these in every duration field. Negative durations are refused here
    because no Istio field allows them.
    """
    if not text:
        return None
    if text == "0":
        return timedelta(0)
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    try:
        return timedelta(seconds=total)
    except OverflowError:
        return None


def _duration(value: Any, path: str, errors: list[FieldError]) -> Any:
    if type(value) is not str:
        return _wrong(path, "string (a duration such as 5s)", value, errors)
    parsed = parse_duration(value)
    if parsed is None:
        errors.append(FieldError(path, f"invalid duration {value!r}: must be like 1h, 5s or 300ms"))
        return INVALID
    return parsed


def _any_json(value: Any, path: str, errors: list[FieldError]) -> Any:
    """Any JSON value, made immutable (lists to tuples, dicts to FrozenDict)."""
    if isinstance(value, dict):
        return FrozenDict({str(k): _any_json(v, path, errors) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_any_json(v, path, errors) for v in value)
    return value


# --- containers ------------------------------------------------------------------------------


def _literal(allowed: tuple[str, ...]) -> Converter:
    allowed_set = frozenset(allowed)
    listing = ", ".join(f'"{a}"' for a in allowed)

    def convert(value: Any, path: str, errors: list[FieldError]) -> Any:
        if type(value) is str and value in allowed_set:
            return value
        if type(value) is not str:
            return _wrong(path, "string", value, errors)
        errors.append(
            FieldError(path, f'Unsupported value: "{value}": supported values: {listing}')
        )
        return INVALID

    return convert


def _tuple(item: Converter) -> Converter:
    def convert(value: Any, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, (list, tuple)):
            return _wrong(path, "array", value, errors)
        out = []
        ok = True
        for index, element in enumerate(value):
            converted = item(element, f"{path}[{index}]", errors)
            if converted is INVALID:
                ok = False
            else:
                out.append(converted)
        return tuple(out) if ok else INVALID

    return convert


def _mapping(item: Converter) -> Converter:
    def convert(value: Any, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, dict):
            return _wrong(path, "object", value, errors)
        out = {}
        ok = True
        for key, element in value.items():
            # YAML turns unquoted keys like 80 into ints; JSON (and Kubernetes) keys are strings.
            if type(key) is not str:
                if type(key) is int:
                    key = str(key)
                else:
                    errors.append(FieldError(f"{path}[{key}]", "keys must be strings"))
                    ok = False
                    continue
            converted = item(element, f"{path}[{key}]", errors)
            if converted is INVALID:
                ok = False
            else:
                out[key] = converted
        return FrozenDict(out) if ok else INVALID

    return convert


def _bytes(value: Any, path: str, errors: list[FieldError]) -> Any:
    if type(value) is bytes:
        return value
    return _wrong(path, "bytes", value, errors)


def _object_meta(value: Any, path: str, errors: list[FieldError]) -> Any:
    # ``meta`` is parsed by meta.py and handed in ready; a document key "meta" is not a field.
    if type(value) is ObjectMeta:
        return value
    errors.append(FieldError(path, "unknown field"))
    return INVALID


_SCALARS: dict[Any, Converter] = {
    bytes: _bytes,
    ObjectMeta: _object_meta,
    str: _str,
    int: _int,
    float: _float,
    bool: _bool,
    timedelta: _duration,
    object: _any_json,
    Any: _any_json,
}


def _converter_for(hint: Any) -> Converter:
    if hint in _SCALARS:
        return _SCALARS[hint]
    origin = get_origin(hint)
    args = get_args(hint)
    if origin is Literal:
        return _literal(tuple(str(a) for a in args))
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if set(members) == {int, str}:
            return _int_or_str
        if len(members) == 1:
            return _converter_for(members[0])
        raise TypeError(f"unsupported union {hint!r}")
    if origin is tuple:
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"only tuple[X, ...] is supported, not {hint!r}")
        return _tuple(_converter_for(args[0]))
    if origin in (dict, Mapping, FrozenDict) or origin is typing.Mapping:
        return _mapping(_converter_for(args[1]))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return compile_model(hint)
    raise TypeError(f"unsupported annotation {hint!r}")


# --- dataclasses -----------------------------------------------------------------------------

_compiled: dict[type, Converter] = {}


def compile_model(cls: type) -> Converter:
    """The converter for one model dataclass (cached)."""
    cached = _compiled.get(cls)
    if cached is not None:
        return cached

    # Register a trampoline first so that self-referencing models compile.
    real: list[Converter] = []

    def trampoline(value: Any, path: str, errors: list[FieldError]) -> Any:
        return real[0](value, path, errors)

    _compiled[cls] = trampoline
    hints = typing.get_type_hints(cls)
    by_json: dict[str, tuple[str, Converter, str]] = {}
    required: list[tuple[str, str]] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        name = f.metadata.get("json", camel(f.name))
        by_json[name] = (f.name, _converter_for(hints[f.name]), "." + name)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append((f.name, name))
    lenient = bool(getattr(cls, "LENIENT", False))
    allowed_hint = ", ".join(sorted(by_json))

    def convert(value: Any, path: str, errors: list[FieldError]) -> Any:
        if type(value) is not dict:
            if isinstance(value, FrozenDict):
                value = dict(value)
            else:
                return _wrong(path, "object", value, errors)
        before = len(errors)
        kwargs: dict[str, Any] = {}
        for key, element in value.items():
            spec = by_json.get(key)
            if spec is None:
                if not lenient:
                    errors.append(
                        FieldError(join(path, str(key)), f"unknown field (known: {allowed_hint})")
                    )
                continue
            if element is None:
                continue
            # Paths are built by concatenation (cheap); the root's leading "." is dropped below.
            converted = spec[1](element, path + spec[2], errors)
            if converted is not INVALID:
                kwargs[spec[0]] = converted
        for attr, name in required:
            if attr not in kwargs and value.get(name) is None:
                errors.append(FieldError(join(path, name), "Required value"))
        if len(errors) != before:
            return INVALID
        return cls(**kwargs)

    real.append(convert)
    _compiled[cls] = convert
    return convert


def decode(cls: type[T], value: Any, path: str, errors: list[FieldError]) -> T | None:
    """Decode ``value`` into ``cls``; on failure record errors and return None.

    With ``path=""`` (a whole document) the error paths are ``spec.x``, not ``.spec.x``.
    """
    before = len(errors)
    result = compile_model(cls)(value, path, errors)
    if not path:
        for index in range(before, len(errors)):
            error = errors[index]
            if error.path.startswith("."):
                errors[index] = FieldError(error.path[1:], error.message, error.severity)
    return None if result is INVALID else result
