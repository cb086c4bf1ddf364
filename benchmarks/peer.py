"""The peer: sovereign (https://pypi.org/project/sovereign/), a Python Envoy control plane that
serves JSON over REST only (POST /v3/discovery:clusters). Installed with the benchmark extra
``peer``; skipped cleanly (and said why) when it is missing or cannot start.

It serves the same clusters (our translator's CDS for one workload group, as JSON, through a
Python template) to the same number of polling clients. Measured: time to render and serve one
response, cold start (every client's first full response), and convergence of a new cluster:
the file behind the template changes, each client polls every ``POLL_SECONDS`` with its last
version and has converged when a 200 carries the new cluster's name. Sovereign renders per
request from its template, so a poll after the change sees it; the poll interval bounds the time.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import expected as exp
from benchmarks import mesh, wire
from benchmarks.monitor import ProcessMonitor
from benchmarks.session import latency_summary
from benchmarks.targets import free_port

POLL_SECONDS = 1.0
_VERSION = re.compile(rb'"version_info"\s*:\s*"([^"]*)"')
_TEMPLATE = '''import json, os


def call(*args, **kwargs):
    with open(os.environ["PEER_CLUSTERS_FILE"]) as f:
        return json.load(f)
'''


def available() -> str | None:
    """None when sovereign can run here, else why not."""
    if importlib.util.find_spec("sovereign") is None:
        return "sovereign is not installed (pip install -e '.[peer]')"
    return None


def clusters_json(expected: exp.Expected) -> list[dict[str, Any]]:
    from envoy.config.cluster.v3 import cluster_pb2
    from google.protobuf.json_format import MessageToDict

    group = next(iter(expected.by_group))
    return [
        MessageToDict(cluster_pb2.Cluster.FromString(v), preserving_proto_field_name=True)
        for v in expected.by_group[group][wire.CLUSTER].values()
    ]


async def post(host: str, port: int, body: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            b"POST /v3/discovery:clusters HTTP/1.1\r\nHost: peer\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, payload


def request_body(index: int, version: str) -> bytes:
    return json.dumps({
        "node": {"id": f"sidecar~10.200.0.{index % 250 + 1}~load-{index}.ns-0~ns-0.svc.cluster.local",
                 "cluster": "svc-0.ns-0",
                 "build_version": "0/1.40.0/Clean/RELEASE/BoringSSL"},
        "version_info": version, "resource_names": [],
    }).encode()


async def run(config: Any, progress) -> dict[str, Any]:
    reason = available()
    if reason is not None:
        progress("peer: skipped")
        return {"skipped": reason}
    progress("peer: sovereign, translating the clusters it will serve")
    state = mesh.generate(config.spec)
    expected = exp.translate_state(state, 1)
    added_state, index = mesh.add_service(state)
    added = exp.translate_state(added_state, 1)
    new_cluster = added_state.cluster_name(index).encode()
    last_cluster = state.cluster_name(len(state.services) - 1).encode()
    workdir = Path(tempfile.mkdtemp(prefix="peer-bench-"))
    clusters_file = workdir / "clusters.json"
    clusters_file.write_text(json.dumps(clusters_json(expected)))
    (workdir / "peer_clusters.py").write_text(_TEMPLATE)
    (workdir / "sovereign.yaml").write_text(
        "templates:\n  default:\n    - type: clusters\n      spec:\n        protocol: python\n"
        f"        serialization: raw\n        path: {workdir / 'peer_clusters.py'}\n"
    )
    port = free_port()
    env = {**os.environ, "SOVEREIGN_CONFIG": f"file://{workdir / 'sovereign.yaml'}",
           "SOVEREIGN_HOST": "127.0.0.1", "SOVEREIGN_PORT": str(port), "SOVEREIGN_WORKERS": "1",
           "SOVEREIGN_NODE_MATCHING_ENABLED": "false", "PEER_CLUSTERS_FILE": str(clusters_file)}
    log = open(workdir / "sovereign.log", "wb")  # noqa: SIM115, ASYNC230 - lives as long as the server
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sovereign.server", env=env, stdout=log, stderr=log, cwd=workdir)
    monitor = ProcessMonitor(proc.pid)
    result: dict[str, Any] = {"target": "sovereign", "clients": config.proxies,
                              "clusters": len(expected.by_group[next(iter(expected.by_group))][wire.CLUSTER]),
                              "poll_seconds": POLL_SECONDS}
    try:
        first = await _first_response(port, proc, workdir)
        result["startup_seconds"] = round(first, 2)
        samples = []
        for i in range(5):  # render and serve one full response (the version changes nothing)
            t = time.monotonic()
            _, body = await post("127.0.0.1", port, request_body(i, ""))
            samples.append((time.monotonic() - t) * 1000)
        result["render_and_serve_ms"] = latency_summary(samples)
        result["response_bytes"] = len(body)
        progress(f"peer: {config.proxies} polling clients")
        monitor.mark()
        versions: dict[int, str] = {}
        cold = await _poll_until(port, config.proxies, versions, last_cluster, time.monotonic(),
                                 config.timeout, stagger=False)
        result["cold_start"] = {**cold, **monitor.window()}
        monitor.mark()
        tmp = workdir / ".clusters.json.tmp"
        tmp.write_text(json.dumps(clusters_json(added)))
        moment = time.monotonic()
        os.replace(tmp, clusters_file)
        change = await _poll_until(port, config.proxies, versions, new_cluster, moment,
                                   config.timeout, stagger=True)
        result["new_cluster"] = {**change, **monitor.window()}
    except Exception as error:  # noqa: BLE001 - the reason goes into the results
        result["error"] = f"{type(error).__name__}: {error}"
        result["log_tail"] = (workdir / "sovereign.log").read_text(errors="replace")[-1500:]
    finally:
        monitor.stop()
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()
    return result


async def _first_response(port: int, proc: asyncio.subprocess.Process, workdir: Path) -> float:
    start = time.monotonic()
    while time.monotonic() - start < 60:
        if proc.returncode is not None:
            raise RuntimeError("sovereign exited: "
                               + (workdir / "sovereign.log").read_text(errors="replace")[-800:])
        try:
            status, _ = await post("127.0.0.1", port, request_body(0, ""))
            if status == 200:
                return time.monotonic() - start
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError("sovereign did not answer in 60 s")


async def _poll_until(port: int, clients: int, versions: dict[int, str], needle: bytes,
                      moment: float, timeout: float, stagger: bool) -> dict[str, Any]:
    """Every client polls (version-aware) every POLL_SECONDS until a 200 carries ``needle``;
    all at once (a cold start), or spread over one interval as independent timers are."""
    done: dict[int, float] = {}
    received = [0]
    deadline = moment + timeout

    async def client(i: int) -> None:
        if stagger:
            await asyncio.sleep((i / clients) * POLL_SECONDS)
        while time.monotonic() < deadline:
            try:
                status, body = await post("127.0.0.1", port, request_body(i, versions.get(i, "")))
            except OSError:
                status, body = 0, b""
            received[0] += len(body)
            if status == 200:
                match = _VERSION.search(body[:200])
                if match:
                    versions[i] = match.group(1).decode()
                if needle in body:
                    done[i] = time.monotonic()
                    return
            await asyncio.sleep(POLL_SECONDS)

    await asyncio.gather(*(client(i) for i in range(clients)))
    latencies = [(t - moment) * 1000 for t in done.values()]
    return {"converged": len(done), "expected": clients, "convergence_ms": latency_summary(latencies),
            "bytes_sent": received[0], "complete": len(done) == clients}
