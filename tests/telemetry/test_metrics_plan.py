"""The Telemetry API's ``metrics`` section: which metrics each direction reports and with
which tags, and the value expressions stock Envoy can evaluate (others refused, with a warning
that names the field)."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.extensions.access_loggers.stats.v3 import stats_pb2

from controlplane.model.mesh_config import DefaultProviders, TelemetryDefaults
from controlplane.model.metric_expression import (
    EnvoyAttribute,
    LiteralValue,
    PeerAttribute,
    UnsupportedExpression,
    parse_metric_expression,
)
from controlplane.model.parse import parse_with_warnings
from controlplane.model.telemetry import Telemetry
from controlplane.translate.istio_metrics.labels import source_labels
from controlplane.translate.istio_metrics.loggers import http_metrics
from controlplane.translate.istio_metrics.plan import METRICS, MetricsPlan, TagChange, metrics_plan
from controlplane.translate.istio_metrics.workload import WorkloadFacts


def telemetry(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
            "metadata": {"name": "t", "namespace": "default"}, "spec": {"metrics": metrics}}  # fmt: skip


def parsed(metrics: list[dict[str, Any]]) -> Telemetry:
    resource, _ = parse_with_warnings(telemetry(metrics))
    assert isinstance(resource, Telemetry)
    return resource


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("'east'", LiteralValue("east")),
        ('"east"', LiteralValue("east")),
        ("request.host", EnvoyAttribute("request.host")),
        ("request.headers['x-user']", EnvoyAttribute("request.headers['x-user']")),
        ('request.headers["x-user"]', EnvoyAttribute("request.headers['x-user']")),
        ("upstream_peer.app", PeerAttribute("upstream_peer", "app")),
        ("downstream_peer.workload", PeerAttribute("downstream_peer", "workload")),
    ],
)
def test_supported_expressions(text: str, expected: object) -> None:
    assert parse_metric_expression(text) == expected


@pytest.mark.parametrize(
    "text",
    ["add", "size(request.path)", "request.size > 3", "node.metadata['X']", "upstream_peer.labels",
     "request", "'a' + 'b'", "request.headers['%x']"],
)  # fmt: skip
def test_unsupported_expressions_are_refused(text: str) -> None:
    with pytest.raises(UnsupportedExpression):
        parse_metric_expression(text)


def test_a_refused_expression_warns_with_its_field_path() -> None:
    _, warnings = parse_with_warnings(telemetry([{"overrides": [{"tagOverrides": {
        "ok": {"value": "request.host"}, "bad": {"value": "size(request.path)"}}}]}]))  # fmt: skip
    assert [(w.path, w.severity) for w in warnings] == [
        ("spec.metrics[0].overrides[0].tagOverrides[bad].value", "warning")
    ]
    assert "refused" in warnings[0].message and "size(request.path)" in warnings[0].message


def test_defaults_report_every_metric_both_ways() -> None:
    plan = metrics_plan([], TelemetryDefaults())
    assert plan.outbound.metrics == tuple(METRICS.values()) == plan.inbound.metrics


def test_overrides_accumulate_by_level_and_mode() -> None:
    mesh = parsed([{"overrides": [{"disabled": True, "match": {"mode": "SERVER"}}]}])
    workload = parsed([{"overrides": [
        {"match": {"metric": "REQUEST_COUNT", "mode": "SERVER"}, "disabled": False},
        {"match": {"metric": "REQUEST_COUNT"}, "tagOverrides": {
            "request_protocol": {"operation": "REMOVE"}, "zone": {"value": "'a'"}, "bad": {"value": "x.y"}}},
    ]}])  # fmt: skip
    plan = metrics_plan([mesh, workload], TelemetryDefaults())
    assert plan.inbound.metrics == ("istio_requests_total",)
    assert plan.outbound.metrics == tuple(METRICS.values())
    expected = (TagChange("request_protocol", None), TagChange("zone", LiteralValue("a")))
    assert plan.outbound.tag_changes("istio_requests_total") == expected
    assert plan.inbound.tag_changes("istio_requests_total") == expected
    assert plan.outbound.tag_changes("istio_request_bytes") == ()


def test_metrics_go_only_to_a_prometheus_provider() -> None:
    other = parsed([{"providers": [{"name": "stackdriver"}]}])
    assert metrics_plan([other], TelemetryDefaults()).outbound.empty
    assert metrics_plan([], TelemetryDefaults(default_providers=DefaultProviders(metrics=("none",)))).inbound.empty
    back = parsed([{"providers": [{"name": "prometheus"}]}])
    assert not metrics_plan([other, back], TelemetryDefaults()).outbound.empty


def test_literal_text_is_escaped_in_the_format_strings() -> None:
    """A workload's own facts and literal tag values are text: a ``%`` in them stays one."""
    facts = WorkloadFacts("w%1", "ns", "app", "v1", "app", "v1")
    plan = MetricsPlan(changes=(("istio_requests_total", (TagChange("share", LiteralValue("50%")),)),))
    [log] = http_metrics(source_labels(facts, http=True), plan, "upstream_peer")
    config = stats_pb2.Config()
    log.typed_config.Unpack(config)
    tags = {t.name: t.value_format for t in config.counters[0].stat.tags}
    assert tags["source_workload"] == "w%%1" and tags["share"] == "50%%"
