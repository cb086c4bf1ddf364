"""A small mesh for Istio's metrics: `controlplane serve` over TLS, and real Envoy sidecars on
free loopback addresses 127.0.76.N, each with a token for its own service account (mTLS by
auto mTLS, PERMISSIVE servers).

Servers: ``web`` (HTTP app on 9080), ``rpc`` (a gRPC app on 7070), ``db`` (a TCP echo on 5432),
each behind its sidecar (Sidecar ingress, captureMode NONE). One caller, ``client``, reaches all
three by name through its egress listeners. Each sidecar has Istio's 15090-style stats
listener on a free port (``stats_url``).
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Self

import grpc

from controlplane.auth import local_token_issuer
from controlplane.ca import load_ca_folder
from controlplane.model.canonical import WORKLOAD_NAME_LABEL
from controlplane.translate.bootstrap import BootstrapParams, render_bootstrap
from controlplane.translate.istio_metrics.prometheus import istio_name
from tests.harness.control_plane import ServedControlPlane, served_control_plane
from tests.harness.echo import EchoServer
from tests.harness.envoy import EnvoyProcess
from tests.harness.ports import free_address, free_port
from tests.harness.wait import wait_for
from tests.mtls.mesh import NAMESPACE, TRUST_DOMAIN, bound_server_docs, dump, pod
from tests.translate.fast_upstream import FastUpstream

HTTP_PORT, GRPC_PORT, TCP_PORT = 9080, 7070, 5432
PORTS = (HTTP_PORT, GRPC_PORT, TCP_PORT)
GRPC_METHOD = "/metrics.Echo/Ping"


class GrpcEcho:
    """A gRPC app with one unary method (raw bytes, no proto): ``b"fail"`` answers INTERNAL."""

    def __init__(self) -> None:
        def ping(request: bytes, context: grpc.ServicerContext) -> bytes:
            if request == b"fail":
                context.abort(grpc.StatusCode.INTERNAL, "asked to fail")
            return request

        handler = grpc.method_handlers_generic_handler(
            "metrics.Echo", {"Ping": grpc.unary_unary_rpc_method_handler(ping)}
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def __enter__(self) -> Self:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(grace=None)


def _doc(kind: str, api: str, name: str, **body: Any) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": NAMESPACE}, **body}


def _server(name: str, address: str, port: int, protocol: str, app_port: int) -> list[dict[str, Any]]:
    # the label names the pod's workload as its sidecar does (WORKLOAD_NAME), for its endpoints
    labels = {"app": name, "version": "v1", WORKLOAD_NAME_LABEL: name}
    return bound_server_docs(name, address, port, protocol, app_port, labels)


def _caller(name: str, address: str) -> dict[str, Any]:
    return _doc("Sidecar", "networking.istio.io/v1", name, spec={
        "workloadSelector": {"labels": {"app": name}},
        "egress": [
            {"port": {"number": port, "protocol": protocol, "name": pname}, "bind": address, "captureMode": "NONE",
             "hosts": ["./*"]}
            for port, protocol, pname in ((HTTP_PORT, "HTTP", "http"), (GRPC_PORT, "GRPC", "grpc"), (TCP_PORT, "TCP", "tcp"))
        ],
    })  # fmt: skip


@dataclass
class Sidecar:
    envoy: EnvoyProcess
    address: str
    stats_port: int

    @property
    def stats_target(self) -> str:
        return f"127.0.0.1:{self.stats_port}"


@dataclass
class MetricsMesh:
    cp: ServedControlPlane
    config: Path
    sidecars: dict[str, Sidecar]
    workdir: Path

    def address(self, name: str) -> str:
        return self.sidecars[name].address

    # --- traffic from the client's sidecar ------------------------------------------------

    def http(self, path: str = "/", host: str = "web") -> int:
        conn = http.client.HTTPConnection(self.address("client"), HTTP_PORT, timeout=10)
        try:
            conn.request("GET", path, headers={"host": host})
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def grpc(self, payload: bytes) -> grpc.StatusCode:
        target = f"{self.address('client')}:{GRPC_PORT}"
        with grpc.insecure_channel(target, options=[("grpc.default_authority", f"rpc:{GRPC_PORT}")]) as channel:
            call = channel.unary_unary(GRPC_METHOD)
            try:
                call(payload, timeout=10)
                return grpc.StatusCode.OK
            except grpc.RpcError as error:
                return error.code()

    def tcp(self, payload: bytes = b"ping") -> bytes:
        with socket.create_connection((self.address("client"), TCP_PORT), timeout=10) as s:
            s.sendall(payload)
            received = b""
            while len(received) < len(payload):
                chunk = s.recv(4096)
                if not chunk:
                    break
                received += chunk
            return received

    # --- what the sidecars report ------------------------------------------------------------

    def samples(self, name: str) -> list[tuple[str, dict[str, str], float]]:
        """The sidecar's Istio metrics as Prometheus stores them (names after the shipped
        relabeling)."""
        with urllib.request.urlopen(f"http://{self.sidecars[name].stats_target}/stats/prometheus", timeout=5) as r:
            text = r.read().decode()
        return [(istio_name(n), labels, v) for n, labels, v in parse_prometheus(text) if "istio" in n]


_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            out.append((m[1], dict(_LABEL.findall(m[2] or "")), float(m[3])))
    return out


def _sidecar(
    workdir: Path, cp: ServedControlPlane, name: str, address: str, labels: dict[str, str], kind: str = "sidecar"
) -> Sidecar:
    token = local_token_issuer(cp.ca_dir).mint(NAMESPACE, name, ttl=timedelta(hours=1))
    stats_port = free_port()
    params = BootstrapParams(
        ip=address, pod=f"{name}-0", namespace=NAMESPACE, service_account=name, workload_name=name,
        labels=labels, instance_ips=(address,), kind=kind, xds_port=cp.xds_tls_port,
        xds_tls_root_pem=load_ca_folder(cp.ca_dir, TRUST_DOMAIN).bundle.pem, credential_token=token,
        admin_port=free_port(), stats_port=stats_port, extra_metadata={"INTERCEPTION_MODE": "NONE"},
    )
    return Sidecar(EnvoyProcess(render_bootstrap(params), workdir, name=name), address, stats_port)


@contextlib.contextmanager
def gateway_proxy(mesh: MetricsMesh, name: str, labels: dict[str, str], ports: tuple[int, ...]) -> Iterator[Sidecar]:
    """A router Envoy (an ingress gateway) for workload ``name`` on a free 127.0.76.N whose
    ``ports`` are free, known to ``mesh.samples(name)``; stopped on exit."""
    gateway = _sidecar(mesh.workdir, mesh.cp, name, free_address("127.0.76", ports), labels, kind="router")
    with gateway.envoy:
        gateway.envoy.wait_ready()
        mesh.sidecars[name] = gateway
        try:
            yield gateway
        finally:
            del mesh.sidecars[name]


@contextlib.contextmanager
def metrics_mesh(workdir: Path, extra_docs: list[dict[str, Any]] = ()) -> Iterator[MetricsMesh]:  # type: ignore[assignment]
    config = workdir / "config"
    config.mkdir()
    with contextlib.ExitStack() as stack:
        web = stack.enter_context(FastUpstream("web"))
        echo = stack.enter_context(EchoServer())
        rpc = stack.enter_context(GrpcEcho())
        addresses = {name: free_address("127.0.76", PORTS) for name in ("client", "web", "rpc", "db")}
        docs = (
            _server("web", addresses["web"], HTTP_PORT, "HTTP", web.port)
            + _server("rpc", addresses["rpc"], GRPC_PORT, "GRPC", rpc.port)
            + _server("db", addresses["db"], TCP_PORT, "TCP", echo.port)
            + [pod("client-0", {"app": "client", "version": "v1"}, "client"), _caller("client", addresses["client"])]
            + list(extra_docs)
        )
        (config / "mesh.yaml").write_text(dump(docs))
        cp = stack.enter_context(served_control_plane(workdir, config))
        sidecars = {
            name: _sidecar(workdir, cp, name, address, {"app": name, "version": "v1"})
            for name, address in addresses.items()
        }
        for sidecar in sidecars.values():
            stack.enter_context(sidecar.envoy)
        for sidecar in sidecars.values():
            sidecar.envoy.wait_ready()
        mesh = MetricsMesh(cp, config, sidecars, workdir)
        wait_for(lambda: mesh.http() == 200, message="client -> web")
        wait_for(lambda: mesh.grpc(b"hi") == grpc.StatusCode.OK, message="client -> rpc")
        wait_for(lambda: mesh.tcp() == b"ping", message="client -> db")
        yield mesh
