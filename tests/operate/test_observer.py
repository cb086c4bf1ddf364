"""The operator-side logic on data: convergence tracking, sync states, redaction, tables.
Fast (no Envoy); the end-to-end behaviour is in test_observability.py and test_cli.py."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from prometheus_client import generate_latest

from controlplane import xds
from controlplane.cli.proxy_status import render_table
from controlplane.model.base import ResourceKey
from controlplane.server.config_dump import config_dump_dict
from controlplane.server.metrics import Metrics
from controlplane.server.monitoring import matches_proxy, proxy_name, sync_state
from controlplane.server.observer import Observer
from controlplane.translate.secrets import workload_secrets
from controlplane.xds import types
from controlplane.xds.resources import TypeResources

KEY_PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "TUlJRXZRSUJBREFOQmdrcWhraUc5dzBCQVFFRkFBU0NCS2N3Z2dTakFnRUFBb0lCQVFD\n"
    "-----END PRIVATE KEY-----\n"
)


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def _type(
    sent_at: float | None,
    acked_at: float | None = None,
    *,
    pending: bool = False,
    nack_at: float | None = None,
) -> dict[str, Any]:
    return {
        "version_sent": None if sent_at is None else "v",
        "sent_at": sent_at,
        "acked_at": acked_at,
        "pending_ack": pending,
        "last_nack": None if nack_at is None else {"at": nack_at, "version": "v", "error": "bad"},
    }


class Streams:
    """What XdsServer.sync_statuses() would return, set by the test."""

    def __init__(self) -> None:
        self.types: dict[int, dict[str, Any]] = {}
        self.settled: set[int] = set()
        self.asked: list[list[int]] = []

    def __call__(self, stream_ids: Any, *, settled_only: bool = False) -> list[dict[str, Any]]:
        self.asked.append(list(stream_ids))
        return [
            {"stream_id": sid, "settled": sid in self.settled, "types": t}
            for sid, t in self.types.items()
            if sid in self.asked[-1] and (sid in self.settled or not settled_only)
        ]


def _push(observer: Observer, cache: xds.SnapshotCache, clock: Clock, cluster_name: str) -> None:
    """An input change debounced for 0.1 s, then a push that changes group g's clusters."""
    observer.burst_flushed(0.1)
    cache.set_snapshot("g", {types.CLUSTER: [cluster_pb2.Cluster(name=cluster_name)]})
    observer.pushed(
        SimpleNamespace(
            endpoints_only=False, snapshot_version=2, groups=1, failed_groups=0, seconds=0.02
        )
    )
    observer.stop()  # the test expires by hand


def _observer() -> tuple[Observer, Metrics, xds.SnapshotCache, Clock, Streams]:
    metrics, cache, clock, streams = Metrics(), xds.SnapshotCache(), Clock(), Streams()
    cache.set_snapshot("g", {types.CLUSTER: [cluster_pb2.Cluster(name="old")]})
    observer = Observer(metrics, cache, streams, clock=clock)
    observer.pushed(
        SimpleNamespace(
            endpoints_only=False, snapshot_version=1, groups=1, failed_groups=0, seconds=0.01
        )
    )  # baseline versions
    observer.stream_opened(SimpleNamespace(stream_id=7, group="g", identity=None))
    observer.stream_opened(SimpleNamespace(stream_id=8, group="other", identity=None))
    return observer, metrics, cache, clock, streams


def _convergence(metrics: Metrics) -> tuple[float, float]:
    samples = {s.name: s.value for s in metrics.proxy_convergence_time.collect()[0].samples}
    return samples["pilot_proxy_convergence_time_count"], samples[
        "pilot_proxy_convergence_time_sum"
    ]


async def test_convergence_is_from_first_change_to_the_ack_the_stream_settled_on() -> None:
    observer, metrics, cache, clock, streams = _observer()
    clock.now = 2000.0
    streams.types[7] = {"CDS": _type(1990.0, 1990.1)}  # settled on an older push's config
    _push(observer, cache, clock, "new")  # burst started at 1999.9, push started at 1999.98
    assert _convergence(metrics) == (0, 0)  # it was sent nothing of this push yet
    streams.types[7] = {"CDS": _type(2000.01, 2000.03), "LDS": _type(2000.02, pending=True)}
    streams.settled = set()
    observer.stream_settled(8)  # not awaited (another group): not even read
    assert streams.asked == [[7]]
    streams.types[7]["LDS"] = _type(2000.02, 2000.2)
    streams.settled = {7}
    observer.stream_settled(7)  # every response answered, nothing due
    count, total = _convergence(metrics)
    assert count == 1 and abs(total - (2000.2 - 1999.9)) < 1e-6
    observer.stream_settled(7)
    assert _convergence(metrics)[0] == 1  # recorded once


async def test_a_stream_that_settled_before_the_push_was_reported_is_read_then() -> None:
    observer, metrics, cache, clock, streams = _observer()
    clock.now = 2000.0
    # Its ACK came while the pusher was still finishing: its settle event found no push.
    streams.types[7] = {"CDS": _type(1999.99, 1999.995)}
    streams.settled = {7}
    _push(observer, cache, clock, "new")
    count, total = _convergence(metrics)
    assert count == 1 and abs(total - (1999.995 - 1999.9)) < 1e-6


async def test_a_stream_not_settled_when_the_push_is_reported_waits_for_its_event() -> None:
    observer, metrics, cache, clock, streams = _observer()
    clock.now = 2000.0
    streams.types[7] = {"CDS": _type(1999.99, 1999.995)}  # ACKed, but LDS is due: not settled
    _push(observer, cache, clock, "new")
    assert _convergence(metrics) == (0, 0)
    streams.types[7]["LDS"] = _type(2000.1, 2000.15)
    streams.settled = {7}
    observer.stream_settled(7)
    count, total = _convergence(metrics)
    assert count == 1 and abs(total - (2000.15 - 1999.9)) < 1e-6


async def test_a_nack_or_a_proxy_that_was_sent_nothing_does_not_count() -> None:
    observer, metrics, cache, clock, streams = _observer()
    clock.now = 3000.0
    _push(observer, cache, clock, "rejected")
    streams.types[7] = {"CDS": _type(3000.01, nack_at=3000.02)}
    streams.settled = {7}
    observer.stream_settled(7)
    assert _convergence(metrics) == (0, 0)
    clock.now = 4000.0
    streams.types[7] = {"CDS": _type(3000.01, 3000.5)}  # nothing sent since this push
    _push(observer, cache, clock, "unseen")
    observer.stream_settled(7)
    observer.expire(4011.0)  # given up after 10 s: nothing of that push concerned it
    streams.types[7] = {"CDS": _type(4011.1, 4011.2)}
    observer.stream_settled(7)
    assert _convergence(metrics) == (0, 0)


async def test_config_sizes_and_input_events_are_counted() -> None:
    observer, metrics, _, _, _ = _observer()
    key = ResourceKey("Service", "default", "reviews")
    change = SimpleNamespace(changes={key: SimpleNamespace(old=None, new=object())})
    observer.input_changed(change)
    text = generate_latest(metrics.registry).decode()
    assert 'pilot_k8s_reg_events{event="add",type="Service"} 1.0' in text
    assert 'pilot_xds_config_size_bytes_count{type="cds"} 1.0' in text
    observer.refresh(SimpleNamespace(of_kind=lambda kind: [1, 2] if kind == "Service" else []))
    assert "pilot_services 2.0" in generate_latest(metrics.registry).decode()
    observer.pushed(
        SimpleNamespace(
            endpoints_only=True, snapshot_version=3, groups=3, failed_groups=2, seconds=0.01
        )
    )
    text = generate_latest(metrics.registry).decode()
    assert "pilot_total_xds_internal_errors 2.0" in text
    assert 'pilot_push_triggers{type="endpoint"} 1.0' in text


def test_sync_states_as_istioctl_names_them() -> None:
    assert sync_state(None) == "IGNORED"
    assert sync_state(_type(None)) == "NOT SENT"
    assert sync_state(_type(10.0, pending=True)) == "STALE"
    assert sync_state(_type(10.0, 11.0)) == "SYNCED"
    assert sync_state(_type(10.0, 9.0, nack_at=10.5)) == "NACK"
    assert sync_state(_type(12.0, 12.5, nack_at=10.5)) == "SYNCED"  # a later version was taken


def test_proxies_are_named_as_istioctl_names_them() -> None:
    node_id = "sidecar~10.0.0.1~reviews-v1-abc.default~default.svc.cluster.local"
    assert proxy_name(node_id) == "reviews-v1-abc.default"
    assert all(
        matches_proxy(q, node_id) for q in (node_id, "reviews-v1-abc.default", "reviews-v1-abc")
    )
    assert not matches_proxy("reviews", node_id)
    assert proxy_name("plain-node") == "plain-node"


def test_config_dump_redacts_the_private_key_and_keeps_the_certificate() -> None:
    default, rootca = workload_secrets(
        "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n",
        KEY_PEM,
        ["-----BEGIN CERTIFICATE-----\nUk9PVA==\n-----END CERTIFICATE-----\n"],
    )
    view = {types.SECRET: TypeResources.build(types.SECRET, [default, rootca])}
    dump = config_dump_dict(view.get)
    text = repr(dump)
    secrets = dump["configs"][-1]["dynamic_active_secrets"]
    by_name = {s["name"]: s["secret"] for s in secrets}
    assert by_name["default"]["tls_certificate"]["private_key"] == {
        "inline_bytes": "W3JlZGFjdGVkXQ=="
    }
    assert "certificate_chain" in by_name["default"]["tls_certificate"]
    assert "PRIVATE KEY" not in text and "TUlJRXZRSUJBREFOQmdrcWhr" not in text
    assert [c["@type"].rsplit(".", 1)[1] for c in dump["configs"]] == [
        "ClustersConfigDump",
        "ListenersConfigDump",
        "RoutesConfigDump",
        "EndpointsConfigDump",
        "SecretsConfigDump",
    ]


def test_proxy_status_table_explains_a_nack() -> None:
    stream = {
        "proxy": "beta-0.default",
        "cluster": "beta.default",
        "spiffe_id": None,
        "types": {
            "CDS": dict(_type(100.0, 101.0), state="SYNCED"),
            "LDS": dict(_type(100.0, 99.0, nack_at=102.0), state="NACK"),
        },
    }
    out = render_table([stream], now=110.0)
    header, row = out.splitlines()[:2]
    assert header.split()[:8] == ["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "SDS", "ECDS"]
    assert "SYNCED (9s)" in row and "NACK (8s)" in row and row.count("IGNORED") == 4  # EDS RDS SDS ECDS
    assert "beta-0.default LDS NACK of version v (8s ago): bad" in out


async def test_reads_only_the_streams_a_push_changed() -> None:
    # With a thousand proxies connected, a push reads only the streams it changed, once.
    observer, _metrics, cache, clock, streams = _observer()
    clock.now = 5000.0
    _push(observer, cache, clock, "new")
    observer.stream_settled(8)
    assert streams.asked == [[7]]
