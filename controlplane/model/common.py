"""Types shared by several Istio kinds: selectors, target references, string matches, ports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from controlplane.model.frozen import EMPTY


@dataclass(frozen=True, slots=True)
class WorkloadSelector:
    """``selector.matchLabels`` (security and telemetry kinds, Sidecar is ``labels``)."""

    match_labels: Mapping[str, str] = field(default=EMPTY)


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """``workloadSelector.labels`` of DestinationRule, ServiceEntry and Sidecar."""

    labels: Mapping[str, str] = field(default=EMPTY)


@dataclass(frozen=True, slots=True)
class PolicyTargetReference:
    """``targetRef``: a Gateway API style reference (Service, Gateway, ServiceEntry, ...)."""

    name: str
    kind: str
    group: str = ""
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class StringMatch:
    """Exactly one of ``exact``, ``prefix``, ``regex`` (RE2 syntax) is set."""

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None


@dataclass(frozen=True, slots=True)
class PortSelector:
    number: int = 0


@dataclass(frozen=True, slots=True)
class Percent:
    """A percentage 0..100 as a double (``mirrorPercentage``, fault ``percentage``)."""

    value: float = 0.0


@dataclass(frozen=True, slots=True)
class Port:
    """Gateway/ServiceEntry/Sidecar port. ``protocol`` is HTTP|HTTPS|GRPC|HTTP2|MONGO|TCP|TLS."""

    number: int = 0
    protocol: str = ""
    name: str = ""
    target_port: int = 0
