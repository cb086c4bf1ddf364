"""Which telemetry applies to a proxy: Istio's Telemetry API merged over the mesh defaults.

Levels, least to most specific: the root namespace's Telemetry without selector, the proxy
namespace's Telemetry without selector, then one in the proxy's namespace whose selector
matches its labels (the first by name when several match, as Istio takes the oldest). A
Telemetry with only ``targetRefs`` targets waypoints and gateways, not sidecars, and is
skipped here.

Per direction (CLIENT = outbound listeners, SERVER = inbound), each level may replace the
provider list and set ``disabled``/``filter``/sampling for the providers in effect. With no
providers named anywhere, the mesh ``defaultProviders`` apply, and when those are empty the
mesh ``accessLogFile`` (Istio's legacy switch) and ``enableTracing`` + Zipkin address do.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.model.mesh_config import (
    BUILTIN_ACCESS_LOG,
    ExtensionProvider,
    TelemetryDefaults,
    ZipkinTracingProvider,
)
from controlplane.model.telemetry import (
    AccessLogSelector,
    CustomTag,
    Telemetry,
    TracingSelector,
)

CLIENT = "CLIENT"  # outbound listeners
SERVER = "SERVER"  # inbound listeners
DIRECTIONS = (CLIENT, SERVER)
LEGACY_ACCESS_LOG = ""  # provider name standing for the mesh accessLogFile


@dataclass(frozen=True, slots=True)
class AccessLogPlan:
    provider: ExtensionProvider | None  # None: the mesh accessLogFile
    filter_expression: str = ""


@dataclass(frozen=True, slots=True)
class TracingPlan:
    provider: ExtensionProvider | None  # None: sample and propagate, report nowhere
    sampling: float  # percent
    custom_tags: tuple[tuple[str, CustomTag], ...] = ()  # (tag name, tag)


@dataclass(frozen=True, slots=True)
class DirectionPlan:
    access_logs: tuple[AccessLogPlan, ...] = ()
    tracing: TracingPlan | None = None


@dataclass(frozen=True, slots=True)
class TelemetryPlan:
    outbound: DirectionPlan
    inbound: DirectionPlan

    @property
    def empty(self) -> bool:
        return self.outbound == DirectionPlan() and self.inbound == DirectionPlan()

    def for_direction(self, direction: str) -> DirectionPlan:
        return self.outbound if direction == CLIENT else self.inbound


def _applies(match: AccessLogSelector | TracingSelector | None, direction: str) -> bool:
    mode = match.mode if match is not None else "CLIENT_AND_SERVER"
    return mode == "CLIENT_AND_SERVER" or mode == direction


def _access_logs(
    levels: list[Telemetry], defaults: TelemetryDefaults, direction: str
) -> tuple[AccessLogPlan, ...]:
    names: tuple[str, ...] = defaults.default_providers.access_logging
    if not names and defaults.access_log_file:
        names = (LEGACY_ACCESS_LOG,)
    settings: dict[str, tuple[bool, str]] = {}  # provider -> (disabled, filter expression)
    for telemetry in levels:
        for entry in telemetry.spec.access_logging:
            if not _applies(entry.match, direction):
                continue
            if entry.providers:
                names = tuple(p.name for p in entry.providers)
            elif not names and entry.disabled is False:
                names = (BUILTIN_ACCESS_LOG,)  # "turn logs on" with nothing named: Istio's built-in
            expression = entry.filter.expression if entry.filter is not None else ""
            for name in names:
                old_disabled, old_expr = settings.get(name, (False, ""))
                disabled = entry.disabled if entry.disabled is not None else old_disabled
                settings[name] = (disabled, expression or old_expr)
    plans = []
    for name in names:
        disabled, expression = settings.get(name, (False, ""))
        if disabled:
            continue
        if name == LEGACY_ACCESS_LOG:
            plans.append(AccessLogPlan(None, expression))
            continue
        provider = defaults.provider(name)
        if provider is not None and provider.envoy_file_access_log is not None:
            plans.append(AccessLogPlan(provider, expression))
    return tuple(plans)


def _legacy_tracer(defaults: TelemetryDefaults) -> ExtensionProvider | None:
    if not defaults.enable_tracing or not defaults.legacy_zipkin_address:
        return None
    host, _, port = defaults.legacy_zipkin_address.rpartition(":")
    return ExtensionProvider(name="", zipkin=ZipkinTracingProvider(service=host, port=int(port)))


def _tracing(
    levels: list[Telemetry], defaults: TelemetryDefaults, direction: str
) -> TracingPlan | None:
    provider: ExtensionProvider | None = None
    if defaults.default_providers.tracing:
        provider = defaults.provider(defaults.default_providers.tracing[0])
    else:
        provider = _legacy_tracer(defaults)
    sampling = defaults.tracing_sampling
    tags: dict[str, CustomTag] = {}
    reporting = True
    for telemetry in levels:
        for entry in telemetry.spec.tracing:
            if not _applies(entry.match, direction):
                continue
            if entry.providers:
                provider = defaults.provider(entry.providers[0].name)
            if entry.random_sampling_percentage is not None:
                sampling = entry.random_sampling_percentage
            if entry.disable_span_reporting is not None:
                reporting = not entry.disable_span_reporting
            tags.update(entry.custom_tags)
    if provider is None or provider.kind not in ("zipkin", "opentelemetry"):
        return None
    return TracingPlan(provider if reporting else None, sampling, tuple(sorted(tags.items())))


def telemetry_plan(levels: list[Telemetry], defaults: TelemetryDefaults) -> TelemetryPlan:
    outbound, inbound = (
        DirectionPlan(_access_logs(levels, defaults, d), _tracing(levels, defaults, d))
        for d in DIRECTIONS
    )
    return TelemetryPlan(outbound=outbound, inbound=inbound)
