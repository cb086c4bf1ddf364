"""What Istio's metrics cost a request: latency (p50/p99) and Envoy CPU per 1,000 requests
through a sidecar pair over mTLS, with the metrics (the default) and without (a root
Telemetry that disables every metric: no stats access loggers; the peer-metadata exchange
stays, as it does in Istio).

    .venv/bin/python benchmarks/istio_metrics.py [--requests 3000] [--rounds 2] [--path /] [--json]
                                                 [--translation-only]

Each round starts a small mesh per variant (``tests/telemetry/metrics_mesh.py``: `controlplane
serve`, real Envoy sidecars with ``--concurrency 1``, a loopback app) and sends ``--requests``
sequential keep-alive requests client -> client's sidecar -> web's sidecar -> app. CPU is the
user+system time of the two sidecars (psutil) during the requests. Variants alternate, so
other work on the machine affects both alike. It also times the translation of one Bookinfo
sidecar with and without the stats loggers, and the size of its listeners (LDS).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.telemetry.metrics_mesh import HTTP_PORT, MetricsMesh, metrics_mesh

NO_METRICS = {
    "apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
    "metadata": {"name": "no-metrics", "namespace": "istio-system"},
    "spec": {"metrics": [{"overrides": [{"disabled": True}]}]},
}  # fmt: skip


def _cpu(mesh: MetricsMesh, names: tuple[str, ...]) -> float:
    total = 0.0
    for name in names:
        process = mesh.sidecars[name].envoy.process
        assert process is not None
        times = psutil.Process(process.pid).cpu_times()
        total += times.user + times.system
    return total


def _has_metrics(mesh: MetricsMesh) -> bool:
    return any(n == "istio_requests_total" for n, _, _ in mesh.samples("web"))


def measure(mesh: MetricsMesh, requests: int, path: str) -> dict[str, float]:
    conn = http.client.HTTPConnection(mesh.address("client"), HTTP_PORT, timeout=10)
    latencies: list[float] = []
    try:
        for _ in range(200):  # warm up: connections, TLS sessions, stats created
            conn.request("GET", path, headers={"host": "web"})
            conn.getresponse().read()
        cpu_before = _cpu(mesh, ("client", "web"))
        started = time.perf_counter()
        for _ in range(requests):
            t0 = time.perf_counter()
            conn.request("GET", path, headers={"host": "web"})
            response = conn.getresponse()
            response.read()
            latencies.append(time.perf_counter() - t0)
            if response.status != 200:
                raise RuntimeError(f"request answered {response.status}")
        elapsed = time.perf_counter() - started
        cpu = _cpu(mesh, ("client", "web")) - cpu_before
    finally:
        conn.close()
    latencies.sort()
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "envoy_cpu_ms_per_1000": 1000 * cpu * 1000 / requests,
        "requests_per_s": requests / elapsed,
    }


def run(requests: int, rounds: int, path: str) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {"with metrics": [], "without metrics": []}
    for _ in range(rounds):
        for variant, extra in (("with metrics", []), ("without metrics", [NO_METRICS])):
            # (the test harness prints the sidecars' logs when they stop: keep stdout for results)
            with tempfile.TemporaryDirectory(prefix="bench-istio-metrics-") as tmp, \
                    contextlib.redirect_stdout(sys.stderr), metrics_mesh(Path(tmp), extra) as mesh:
                if _has_metrics(mesh) != (variant == "with metrics"):
                    raise RuntimeError(f"{variant}: the web sidecar's metrics do not match")
                results[variant].append(measure(mesh, requests, path))
    return results


def translation_cost(repeat: int = 200) -> dict[str, dict[str, float]]:
    """What the stats loggers add to one translation: a Bookinfo sidecar (the golden case
    ``bookinfo_all_v1``), a fresh push context each time; LDS bytes of that proxy."""
    import yaml

    from controlplane.translate import LISTENER_TYPE, MeshConfig, push_context, translate
    from controlplane.translate.filters import istio_stats
    from tests.translate.support import load_documents, proxy_from, snapshot_of

    case = Path(__file__).resolve().parents[1] / "tests" / "golden" / "bookinfo_all_v1"
    snapshot = snapshot_of(load_documents((case / "input.yaml").read_text()))
    proxy = proxy_from(yaml.safe_load((case / "proxy.yaml").read_text()))

    def run() -> dict[str, float]:
        best = math.inf
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(repeat):
                out = translate(push_context(snapshot, MeshConfig()), proxy)
            best = min(best, (time.perf_counter() - started) / repeat)
        lds = sum(len(lst.SerializeToString()) for lst in out[LISTENER_TYPE])
        return {"ms_per_translation": 1000 * best, "lds_bytes": lds}

    original = istio_stats.IstioStats.access_logs
    try:
        with_metrics = run()
        istio_stats.IstioStats.access_logs = lambda self, site: []  # type: ignore[method-assign]
        without = run()
    finally:
        istio_stats.IstioStats.access_logs = original  # type: ignore[method-assign]
    return {"with metrics": with_metrics, "without metrics": without}


def _span(runs: list[dict[str, Any]], key: str, unit: str, digits: int) -> str:
    values = sorted(r[key] for r in runs)
    low, high = values[0], values[-1]
    return f"{low:.{digits}f} {unit}" if len(values) == 1 else f"{low:.{digits}f}-{high:.{digits}f} {unit}"


def summary(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = ["| variant | p50 | p99 | Envoy CPU / 1,000 requests (both sidecars) | requests/s |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for variant, runs in results.items():
        lines.append(f"| {variant} | {_span(runs, 'p50_ms', 'ms', 3)} | {_span(runs, 'p99_ms', 'ms', 3)} | "
                     f"{_span(runs, 'envoy_cpu_ms_per_1000', 'ms CPU', 0)} | {_span(runs, 'requests_per_s', '', 0)} |")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--path", default="/")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--translation-only", action="store_true", help="only the translation cost")
    args = parser.parse_args()
    translation = translation_cost()
    results = {} if args.translation_only else run(args.requests, args.rounds, args.path)
    if args.json:
        print(json.dumps({"requests": results, "translation": translation}, indent=1))
        return 0
    if results:
        print(summary(results))
    for variant, figures in translation.items():
        print(f"translation of a Bookinfo sidecar, {variant}: {figures['ms_per_translation']:.2f} ms, "
              f"LDS {figures['lds_bytes'] / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
