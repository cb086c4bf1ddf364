"""Telemetry validation (after Istio's validateTelemetry and the CRD's rules)."""

from __future__ import annotations

from controlplane.model.base import FieldError, Resource
from controlplane.model.metric_expression import UnsupportedExpression, parse_metric_expression
from controlplane.model.telemetry import ProviderRef, Telemetry
from controlplane.model.validate_common import (
    error,
    validate_duration,
    validate_policy_targets,
    warning,
)


def _validate_providers(
    providers: tuple[ProviderRef, ...], path: str, errors: list[FieldError]
) -> None:
    for index, provider in enumerate(providers):
        if not provider.name:
            error(errors, f"{path}[{index}].name", "name in body should be at least 1 chars long")


def validate_telemetry(resource: Resource, errors: list[FieldError]) -> None:
    assert isinstance(resource, Telemetry)
    spec = resource.spec
    validate_policy_targets(spec, resource.meta.namespace, errors)
    if len(spec.tracing) > 1:
        warning(errors, "spec.tracing", "multiple tracing is not currently supported")
    for index, tracing in enumerate(spec.tracing):
        path = f"spec.tracing[{index}]"
        _validate_providers(tracing.providers, f"{path}.providers", errors)
        if len(tracing.providers) > 1:
            warning(errors, f"{path}.providers", "multiple providers is not currently supported")
        rate = tracing.random_sampling_percentage
        if rate is not None and not 0 <= rate <= 100:
            error(
                errors,
                f"{path}.randomSamplingPercentage",
                "randomSamplingPercentage must be in range [0.0, 100.0]",
            )
        for name, tag in tracing.custom_tags.items():
            t_path = f"{path}.customTags[{name}]"
            if not name:
                error(errors, t_path, "tag name may not be empty")
            kinds = [k for k in (tag.literal, tag.environment, tag.header) if k is not None]
            if len(kinds) != 1:
                error(errors, t_path, "exactly one of literal, environment or header must be set")
            if tag.literal is not None and not tag.literal.value:
                error(errors, f"{t_path}.literal.value", "literal tag value may not be empty")
            if tag.environment is not None and not tag.environment.name:
                error(errors, f"{t_path}.environment.name", "environment tag name may not be empty")
            if tag.header is not None and not tag.header.name:
                error(errors, f"{t_path}.header.name", "header tag name may not be empty")
    for index, metrics in enumerate(spec.metrics):
        path = f"spec.metrics[{index}]"
        _validate_providers(metrics.providers, f"{path}.providers", errors)
        validate_duration(metrics.reporting_interval, f"{path}.reportingInterval", errors)
        for o_index, override in enumerate(metrics.overrides):
            o_path = f"{path}.overrides[{o_index}]"
            match = override.match
            if match is not None:
                if match.custom_metric is not None and match.metric is not None:
                    error(
                        errors, f"{o_path}.match", "only one of metric and customMetric may be set"
                    )
                if match.custom_metric == "":
                    error(
                        errors,
                        f"{o_path}.match.customMetric",
                        "customMetric in body should be at least 1 chars long",
                    )
            for name, tag_override in override.tag_overrides.items():
                t_path = f"{o_path}.tagOverrides[{name}]"
                if not name:
                    warning(errors, t_path, "tagOverrides.name may not be empty")
                if tag_override.operation == "UPSERT" and not tag_override.value:
                    error(errors, f"{t_path}.value", "value must be set when operation is UPSERT")
                if tag_override.operation == "REMOVE" and tag_override.value is not None:
                    error(
                        errors, f"{t_path}.value", "value must not be set when operation is REMOVE"
                    )
                if tag_override.operation == "UPSERT" and tag_override.value:
                    try:
                        parse_metric_expression(tag_override.value)
                    except UnsupportedExpression as exc:
                        # Valid for Istio, beyond what stock Envoy evaluates: the override is
                        # refused (not applied), and said so here.
                        warning(errors, f"{t_path}.value", f"refused: {exc}")
            if match is not None and match.custom_metric is not None and override.tag_overrides:
                warning(
                    errors,
                    f"{o_path}.match.customMetric",
                    "refused: custom metrics are not defined on stock Envoy; the override applies to none",
                )
    for index, logging in enumerate(spec.access_logging):
        path = f"spec.accessLogging[{index}]"
        _validate_providers(logging.providers, f"{path}.providers", errors)
        if logging.filter is not None and not logging.filter.expression:
            error(errors, f"{path}.filter.expression", "Required value")
