"""Certificate rotation: from a renewal to every connected proxy holding the new certificate.

    .venv/bin/python -m benchmarks.cert_rotation [--proxies 100] [--ttl 10] [--rounds 3] [--envoys 10]

Runs ``controlplane serve`` (a subprocess, xDS over TLS, ``--cert-ttl`` short so renewals at
half life come every few seconds) and connects proxies that prove their identity with a token
and ask for the SDS secrets ``default`` and ``ROOTCA``, as sidecars do:

- ``shared``: P lightweight ADS clients (grpc.aio, one TLS connection each, one process) that
  all hold one identity, as replicas of one service account: every renewal goes to all P.
- ``distinct``: P clients with P identities: P renewals (jittered), each to one proxy, while
  all P are connected.
- ``envoys``: E real Envoys of one identity whose inbound listener uses the secrets; a proxy
  holds the certificate when its admin ``/certs`` shows the new serial (polled every 10 ms, so
  figures are coarser by that much).

The renewal moment is the control plane's own log line ``issued <SPIFFE ID> serial <hex>``
(JSON log, millisecond timestamps, same host clock), written when the new secrets enter the
xDS cache; a proxy holds the certificate when its response carrying that serial arrived.
Reports per-renewal latency to each proxy and to the last proxy (all of them), p50/p95/max.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import io
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import struct_pb2

from controlplane.auth import local_token_issuer
from controlplane.ca import load_ca_folder
from controlplane.model.node import SIDECAR, node_id
from tests.harness.control_plane import ServedControlPlane, served_control_plane
from tests.harness.xds_client import XdsClientStream

SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
NAMESPACE = "default"


# --- renewals, from the control plane's log ----------------------------------------------------


@dataclass(frozen=True)
class Issued:
    spiffe_id: str
    serial: int
    at: float  # epoch seconds


def issued_events(log_text: str) -> list[Issued]:
    out = []
    for line in log_text.splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        words = entry.get("msg", "").split()
        if entry.get("scope") != "ca" or len(words) < 4 or words[0] != "issued" or words[2] != "serial":
            continue
        at = datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=None)
        epoch = (at - datetime(1970, 1, 1)) / timedelta(seconds=1)
        out.append(Issued(words[1], int(words[3].rstrip(","), 16), epoch))
    return out


# --- lightweight SDS clients -----------------------------------------------------------------


@dataclass
class SdsProxy:
    """One simulated sidecar: an ADS stream over its own TLS connection, asking for SDS."""

    index: int
    service_account: str
    received: dict[int, float] = field(default_factory=dict)  # certificate serial -> arrival

    def node(self) -> base_pb2.Node:
        ip = f"127.0.50.{self.index % 250 + 1}"
        node = base_pb2.Node(id=node_id(SIDECAR, ip, f"bench-{self.index}", NAMESPACE))
        node.metadata.CopyFrom(struct_pb2.Struct(fields={
            "NAMESPACE": struct_pb2.Value(string_value=NAMESPACE),
            "SERVICE_ACCOUNT": struct_pb2.Value(string_value=self.service_account),
            "INTERCEPTION_MODE": struct_pb2.Value(string_value="NONE"),
            "INSTANCE_IPS": struct_pb2.Value(string_value=ip),
        }))
        return node

    async def run(self, xds_port: int, root_pem: bytes, token: str) -> None:
        credentials = grpc.ssl_channel_credentials(root_certificates=root_pem)
        options = (("grpc.ssl_target_name_override", "istiod.istio-system.svc"),
                   ("grpc.use_local_subchannel_pool", 1))  # its own connection, as a proxy has
        names = ["default", "ROOTCA"]
        async with grpc.aio.secure_channel(f"127.0.0.1:{xds_port}", credentials, options) as channel:
            stream = XdsClientStream(channel, metadata=(("authorization", f"Bearer {token}"),))
            await stream.send(discovery_pb2.DiscoveryRequest(node=self.node(), type_url=SECRET_TYPE, resource_names=names))
            with contextlib.suppress(EOFError, grpc.aio.AioRpcError):
                while True:
                    response = await stream.recv()
                    arrived = time.time()
                    for resource in response.resources:
                        secret = secret_pb2.Secret()
                        resource.Unpack(secret)
                        if secret.name == "default":
                            pem = secret.tls_certificate.certificate_chain.inline_bytes
                            serial = x509.load_pem_x509_certificate(pem).serial_number
                            self.received.setdefault(serial, arrived)
                    await stream.send(discovery_pb2.DiscoveryRequest(
                        type_url=SECRET_TYPE, version_info=response.version_info,
                        response_nonce=response.nonce, resource_names=names,
                    ))


async def _run_clients(xds_port: int, ca_dir: Path, proxies: list[SdsProxy], seconds: float) -> None:
    root = load_ca_folder(ca_dir, "cluster.local").bundle.pem.encode()
    issuer = local_token_issuer(ca_dir)
    tasks = [asyncio.create_task(p.run(xds_port, root, issuer.mint(NAMESPACE, p.service_account))) for p in proxies]
    try:
        deadline = time.monotonic() + 60
        while not all(p.received for p in proxies):  # everyone holds a first certificate
            if time.monotonic() > deadline:
                raise RuntimeError("not every proxy got a certificate")
            await asyncio.sleep(0.05)
        await asyncio.sleep(seconds)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _client_process(xds_port: int, ca_dir: Path, proxies: list[SdsProxy], seconds: float) -> list[SdsProxy]:
    asyncio.run(_run_clients(xds_port, ca_dir, proxies, seconds))
    return proxies


def run_clients(cp: ServedControlPlane, proxies: list[SdsProxy], seconds: float, processes: int) -> list[SdsProxy]:
    """The proxies spread over ``processes`` client processes (one event loop each would
    otherwise add its own queueing to the figures); their arrivals, on the host clock."""
    shares = [proxies[i::processes] for i in range(processes)]
    with concurrent.futures.ProcessPoolExecutor(processes) as pool:
        futures = [pool.submit(_client_process, cp.xds_tls_port, cp.ca_dir, share, seconds) for share in shares if share]
        return [p for f in futures for p in f.result()]


# --- real Envoys ----------------------------------------------------------------------------


def _envoy_config(count: int) -> str:
    """A Sidecar ingress per Envoy (own address) so its inbound listener uses the secrets."""
    return "\n---\n".join(
        json.dumps({
            "apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
            "metadata": {"name": f"bench-envoy-{i}", "namespace": NAMESPACE},
            "spec": {"workloadSelector": {"labels": {"app": f"bench-envoy-{i}"}},
                     "ingress": [{"port": {"number": 15080, "protocol": "HTTP", "name": "http"},
                                  "captureMode": "NONE", "defaultEndpoint": "127.0.0.1:9"}]},
        })
        for i in range(count)
    )


def _run_envoys(cp: ServedControlPlane, workdir: Path, count: int, seconds: float) -> list[dict[int, float]]:
    from tests.harness.envoy import EnvoyProcess
    from tests.mtls.mesh import cert_serials, sidecar

    received: list[dict[int, float]] = [{} for _ in range(count)]
    stop = threading.Event()
    # EnvoyProcess prints each Envoy's log tail when it stops (for tests); not wanted here.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.ExitStack() as stack:
        envoys: list[EnvoyProcess] = []
        for i in range(count):
            envoy = sidecar(workdir, cp.ca_dir, cp.xds_tls_port, name=f"bench-envoy-{i}", address=f"127.0.51.{i + 1}",
                            service_account="bench-envoy", labels={"app": f"bench-envoy-{i}"})
            envoys.append(stack.enter_context(envoy))

        def poll(i: int) -> None:
            while not stop.is_set():
                with contextlib.suppress(Exception):
                    for serial in cert_serials(envoys[i]):
                        received[i].setdefault(int(serial, 16), time.time())
                time.sleep(0.01)

        threads = [threading.Thread(target=poll, args=(i,), daemon=True) for i in range(count)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while not all(received) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
    return received


# --- figures --------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    ms = [v * 1000 for v in values]
    return {"count": len(ms), "p50_ms": round(statistics.median(ms), 1), "p95_ms": round(_pct(ms, 0.95), 1),
            "max_ms": round(max(ms), 1)}


def renewal_latencies(events: list[Issued], holders: dict[str, list[dict[int, float]]]) -> dict[str, Any]:
    """Per renewal (not first issues): latency to each proxy of the identity, and to the last."""
    first_issue: dict[str, float] = {}
    per_proxy: list[float] = []
    to_all: list[float] = []
    missed = 0
    for event in sorted(events, key=lambda e: e.at):
        if event.spiffe_id not in first_issue:
            first_issue[event.spiffe_id] = event.at
            continue  # the first certificate of an identity is an issue, not a renewal
        proxies = holders.get(event.spiffe_id, [])
        arrivals = [p[event.serial] for p in proxies if event.serial in p]
        missed += sum(1 for p in proxies if event.serial not in p)
        if not proxies or len(arrivals) < len(proxies):
            continue  # the run ended before every proxy got it
        delays = [max(0.0, a - event.at) for a in arrivals]
        per_proxy += delays
        to_all.append(max(delays))
    return {"renewals": len(to_all), "to_each_proxy": _summary(per_proxy), "to_every_proxy": _summary(to_all),
            "incomplete_at_end": missed}


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"ttl_seconds": args.ttl, "proxies": args.proxies,
                               "client_processes": args.client_processes}
    run_seconds = args.rounds * args.ttl / 2 + 1
    with tempfile.TemporaryDirectory(prefix="cert-rotation-") as tmp:
        workdir = Path(tmp)
        config = workdir / "config"
        config.mkdir()
        (config / "sidecars.yaml").write_text(_envoy_config(args.envoys))
        extra = ("--cert-ttl", str(args.ttl), "--log-level", "info,ca=debug", "--log-format", "json")
        with served_control_plane(workdir, config, *extra) as cp:
            trust = "spiffe://cluster.local/ns/default/sa/"
            for scenario, accounts in (("shared", ["bench"] * args.proxies),
                                       ("distinct", [f"bench-{i}" for i in range(args.proxies)])):
                started = time.time()
                proxies = run_clients(cp, [SdsProxy(i, sa) for i, sa in enumerate(accounts)], run_seconds,
                                      args.client_processes)
                holders: dict[str, list[dict[int, float]]] = defaultdict(list)
                for p in proxies:
                    holders[trust + p.service_account].append(p.received)
                events = [e for e in issued_events(cp.log()) if e.at >= started - 1 and e.spiffe_id in holders]
                results[scenario] = renewal_latencies(events, holders)
                print(f"{scenario}: {json.dumps(results[scenario])}", flush=True)
            if args.envoys:
                started = time.time()
                received = _run_envoys(cp, workdir, args.envoys, run_seconds)
                spiffe = trust + "bench-envoy"
                events = [e for e in issued_events(cp.log()) if e.at >= started - 1 and e.spiffe_id == spiffe]
                results["envoys"] = {"count": args.envoys, **renewal_latencies(events, {spiffe: received})}
                print(f"envoys: {json.dumps(results['envoys'])}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cert_rotation", description=__doc__.split("\n")[0])
    parser.add_argument("--proxies", type=int, default=100, help="simulated proxies (default %(default)s)")
    parser.add_argument("--ttl", type=float, default=10.0, help="certificate lifetime, seconds (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="renewals to observe per identity (default %(default)s)")
    parser.add_argument("--envoys", type=int, default=10, help="real Envoys, 0 for none (default %(default)s)")
    parser.add_argument("--client-processes", type=int, default=2, help="processes for the simulated proxies")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results = run(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
