"""envoyproxy/ratelimit's configuration: one YAML document per domain.

    domain: echo-ratelimit
    descriptors:
      - key: PATH
        value: "/"
        rate_limit: {unit: minute, requests_per_unit: 1}
      - key: PATH                      # any other value: a limit per value
        rate_limit: {unit: minute, requests_per_unit: 100}
      - key: remote_address
        descriptors:                   # nested: matched by the request's next entry
          - key: PATH
            rate_limit: {unit: second, requests_per_unit: 5, name: per-ip-path}
            shadow_mode: true          # counted and reported, never enforced
      - key: internal
        rate_limit: {unlimited: true}
      - key: premium
        rate_limit: {unit: second, requests_per_unit: 50, replaces: [{name: per-ip-path}]}

A value ending in ``*`` matches by prefix (as envoyproxy/ratelimit's wildcards); a
descriptor without ``value`` matches any value, each value counted apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controlplane.model.base import FieldError, Origin, ValidationError

UNIT_SECONDS: Mapping[str, int] = {
    "second": 1, "minute": 60, "hour": 3600, "day": 86400,
    "week": 7 * 86400, "month": 30 * 86400, "year": 365 * 86400,
}
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 16
MAX_DESCRIPTORS = 10_000

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader = yaml.SafeLoader


@dataclass(frozen=True, slots=True)
class RateLimit:
    unit: str = ""  # "" when unlimited
    requests_per_unit: int = 0
    unlimited: bool = False
    name: str = ""
    replaces: tuple[str, ...] = ()

    @property
    def seconds(self) -> int:
        return UNIT_SECONDS.get(self.unit, 1)


@dataclass(frozen=True, slots=True)
class Descriptor:
    key: str
    value: str = ""
    rate_limit: RateLimit | None = None
    shadow_mode: bool = False
    descriptors: tuple[Descriptor, ...] = ()
    # Children by exact value, prefix wildcards and the any-value child, for lookups.
    by_value: Mapping[tuple[str, str], Descriptor] = field(default_factory=dict, compare=False, repr=False)
    # The descriptor's place in the config (``key_value.key``), as envoyproxy/ratelimit names
    # its stats: bounded by the config, whatever values requests carry.
    stat_key: str = ""

    @property
    def is_prefix(self) -> bool:
        return self.value.endswith("*")


@dataclass(frozen=True, slots=True)
class DomainConfig:
    domain: str
    descriptors: tuple[Descriptor, ...]
    index: Mapping[tuple[str, str], Descriptor] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Config:
    domains: Mapping[str, DomainConfig]

    def find(self, domain: str, entries: Sequence[tuple[str, str]]) -> tuple[Descriptor | None, str]:
        """The configured descriptor a request descriptor's entries reach (its limit), and the
        key of its counter (``key_value`` of each entry, as envoyproxy/ratelimit's cache key:
        values of an any-value or prefix descriptor are counted apart)."""
        config = self.domains.get(domain)
        if config is None or not entries:
            return None, ""
        level: Mapping[tuple[str, str], Descriptor] = config.index
        node: Descriptor | None = None
        for key, value in entries:
            node = _lookup(level, key, value)
            if node is None:
                return None, ""
            level = node.by_value
        return node, "_".join(f"{k}_{v}" for k, v in entries)


def _lookup(level: Mapping[tuple[str, str], Descriptor], key: str, value: str) -> Descriptor | None:
    exact = level.get((key, value))
    if exact is not None:
        return exact
    for (k, v), d in level.items():  # prefix wildcards: few per level
        if k == key and d.is_prefix and value.startswith(v[:-1]):
            return d
    return level.get((key, ""))


def _index(descriptors: Sequence[Descriptor]) -> dict[tuple[str, str], Descriptor]:
    return {(d.key, d.value): d for d in descriptors}


class _Reader:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.count = 0

    def error(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    def descriptors(self, items: Any, path: str, depth: int, parent: str = "") -> tuple[Descriptor, ...]:
        if items is None:
            return ()
        if not isinstance(items, list):
            self.error(path, "must be a list of descriptors")
            return ()
        if depth > MAX_DEPTH:
            self.error(path, f"descriptors nest deeper than {MAX_DEPTH} levels")
            return ()
        out: list[Descriptor] = []
        seen: set[tuple[str, str]] = set()
        for i, item in enumerate(items):
            self.count += 1
            if self.count > MAX_DESCRIPTORS:
                self.error(path, f"more than {MAX_DESCRIPTORS} descriptors")
                return tuple(out)
            d = self.descriptor(item, f"{path}[{i}]", depth, parent)
            if d is None:
                continue
            if (d.key, d.value) in seen:
                self.error(f"{path}[{i}]", f"duplicate descriptor composite key '{d.key}_{d.value}'")
                continue
            seen.add((d.key, d.value))
            out.append(d)
        return tuple(out)

    def descriptor(self, item: Any, path: str, depth: int, parent: str) -> Descriptor | None:
        if not isinstance(item, dict):
            self.error(path, "must be a mapping")
            return None
        unknown = set(item) - {"key", "value", "rate_limit", "descriptors", "shadow_mode", "detailed_metric"}
        if unknown:
            self.error(path, f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
        key, value = item.get("key"), item.get("value", "")
        if not isinstance(key, str) or not key:
            self.error(f"{path}.key", "a non-empty string is required")
            return None
        if not isinstance(value, (str, int)):
            self.error(f"{path}.value", "must be a string")
            value = ""
        shadow = item.get("shadow_mode", False)
        if not isinstance(shadow, bool):
            self.error(f"{path}.shadow_mode", "must be true or false")
            shadow = False
        limit = self.rate_limit(item.get("rate_limit"), f"{path}.rate_limit")
        own = f"{key}_{value}" if value != "" else key
        stat_key = f"{parent}.{own}" if parent else own
        children = self.descriptors(item.get("descriptors"), f"{path}.descriptors", depth + 1, stat_key)
        return Descriptor(key, str(value), limit, shadow, children, _index(children), stat_key)

    def rate_limit(self, item: Any, path: str) -> RateLimit | None:
        if item is None:
            return None
        if not isinstance(item, dict):
            self.error(path, "must be a mapping")
            return None
        unknown = set(item) - {"unit", "requests_per_unit", "unlimited", "name", "replaces"}
        if unknown:
            self.error(path, f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
        name = item.get("name", "")
        if not isinstance(name, str):
            self.error(f"{path}.name", "must be a string")
            name = ""
        replaces: list[str] = []
        for i, r in enumerate(item.get("replaces") or []):
            if not isinstance(r, dict) or not isinstance(r.get("name"), str) or not r["name"]:
                self.error(f"{path}.replaces[{i}].name", "a non-empty name is required")
            else:
                replaces.append(r["name"])
        if item.get("unlimited") is True:
            if "unit" in item or "requests_per_unit" in item:
                self.error(path, "should not have unit or requests_per_unit when unlimited is true")
            return RateLimit(unlimited=True, name=name, replaces=tuple(replaces))
        unit = str(item.get("unit", "")).lower()
        if unit not in UNIT_SECONDS:
            self.error(f"{path}.unit", f"invalid rate limit unit {item.get('unit')!r}: one of {', '.join(UNIT_SECONDS)}")
            return None
        rpu = item.get("requests_per_unit")
        if type(rpu) is not int or rpu < 0:
            self.error(f"{path}.requests_per_unit", "a non-negative integer is required")
            return None
        return RateLimit(unit, rpu, False, name, tuple(replaces))


def parse_domain(data: Any, origin: Origin | None = None) -> DomainConfig:
    """One domain's document; raises ValidationError naming the field paths."""
    reader = _Reader()
    if not isinstance(data, dict):
        raise ValidationError([FieldError("", "a rate limit config must be a mapping")], origin=origin)
    domain = data.get("domain")
    if not isinstance(domain, str) or not domain:
        reader.error("domain", "a non-empty domain is required")
    descriptors = reader.descriptors(data.get("descriptors"), "descriptors", 0)
    if reader.errors:
        raise ValidationError(reader.errors, origin=origin)
    assert isinstance(domain, str)
    return DomainConfig(domain, descriptors, _index(descriptors))


def load_config(paths: Sequence[Path]) -> Config:
    """Every ``*.yaml``/``*.yml`` of the given files and folders; a domain defined twice is an error."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        else:
            files.append(path)
    domains: dict[str, DomainConfig] = {}
    for file in files:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise ValidationError([FieldError("", f"file larger than {MAX_FILE_BYTES} bytes")], origin=Origin(str(file)))
        try:
            documents = [d for d in yaml.load_all(file.read_text(), Loader=_Loader) if d is not None]
        except yaml.YAMLError as exc:
            raise ValidationError([FieldError("", f"not YAML: {exc}")], origin=Origin(str(file))) from None
        for document in documents:
            config = parse_domain(document, Origin(str(file)))
            if config.domain in domains:
                raise ValidationError([FieldError("domain", f"duplicate domain {config.domain!r}")], origin=Origin(str(file)))
            domains[config.domain] = config
    return Config(domains)
