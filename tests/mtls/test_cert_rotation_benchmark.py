"""The rotation benchmark's bookkeeping: renewal moments read from the control plane's JSON log
and matched by serial with what each proxy received."""

from __future__ import annotations

import json

from benchmarks.cert_rotation import Issued, issued_events, renewal_latencies

ID = "spiffe://cluster.local/ns/default/sa/bench"


def _line(time: str, msg: str, scope: str = "ca") -> str:
    return json.dumps({"time": time, "level": "debug", "scope": scope, "msg": msg})


def test_issued_events_come_from_the_ca_debug_lines_only() -> None:
    log = "\n".join([
        "plain text line",
        _line("2026-11-21T16:00:00.250Z", f"issued {ID} serial 1f, renewing in 4.5 s"),
        _line("2026-11-21T16:00:01.000Z", f"issued {ID} serial 20, renewing in 4.5 s", scope="xds"),
        _line("2026-11-21T16:00:02.000Z", "push full: snapshot 3"),
    ])
    (event,) = issued_events(log)
    assert event.spiffe_id == ID and event.serial == 0x1F
    assert event.at == 1795276800.25  # 2026-11-21T16:00:00.250Z as epoch seconds


def test_latency_per_renewal_to_each_and_to_every_proxy() -> None:
    events = [Issued(ID, 1, 100.0), Issued(ID, 2, 105.0), Issued(ID, 3, 110.0)]
    proxies = [{1: 100.01, 2: 105.02, 3: 110.5}, {1: 100.02, 2: 105.04}]  # the 2nd missed the last
    result = renewal_latencies(events, {ID: proxies})
    assert result["renewals"] == 1  # the first issue is no renewal; serial 3 is incomplete
    assert result["to_every_proxy"]["max_ms"] == 40.0
    assert result["to_each_proxy"]["count"] == 2
    assert result["incomplete_at_end"] == 1
