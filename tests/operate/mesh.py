"""One served control plane and two real Envoys (alpha, beta) over TLS with tokens, for the
operator tests. Each proxy proves its identity, so it is sent SDS secrets; its node carries
Istio's ``PROXY_CONFIG.proxyAdminPort`` so the dashboard can point at its admin.

The honest way to make a real Envoy NACK through the real control plane: config that is
valid Istio input but that this Envoy cannot apply. A Sidecar egress listener bound to an
address:port another program already holds is such a case (Envoy rejects the LDS update
with "cannot bind ... Address already in use" and keeps its previous listeners).
"""

from __future__ import annotations

import json
import os
import socket
import textwrap
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from prometheus_client.parser import text_string_to_metric_families

from controlplane._proto.istio.security.v1alpha1 import ca_pb2, ca_pb2_grpc
from controlplane.auth import local_token_issuer
from controlplane.ca import SpiffeId, build_csr, generate_key, load_ca_folder
from controlplane.translate import SECRET_TYPE
from controlplane.translate.bootstrap import BootstrapParams, render_bootstrap
from tests.harness.control_plane import ServedControlPlane, served_control_plane
from tests.harness.envoy import EnvoyProcess
from tests.harness.ports import free_port
from tests.harness.wait import wait_for

WORKLOADS = {"alpha": "127.0.60.1", "beta": "127.0.60.2"}
EGRESS = {"alpha": "127.0.60.101", "beta": "127.0.60.102"}
SERVICE_PORT = 9080


def mesh_yaml(beta_egress_port: int = SERVICE_PORT, extra_alpha_endpoint: bool = False) -> str:
    docs = []
    for name, ip in WORKLOADS.items():
        egress_port = beta_egress_port if name == "beta" else SERVICE_PORT
        docs.append(
            textwrap.dedent(f"""\
            apiVersion: v1
            kind: Service
            metadata: {{name: {name}, namespace: default}}
            spec:
              selector: {{app: {name}}}
              ports: [{{name: http, port: {SERVICE_PORT}, targetPort: 8080}}]
            ---
            apiVersion: networking.istio.io/v1
            kind: WorkloadEntry
            metadata: {{name: {name}, namespace: default}}
            spec:
              address: {ip}
              labels: {{app: {name}}}
              serviceAccount: {name}
            ---
            apiVersion: networking.istio.io/v1
            kind: Sidecar
            metadata: {{name: {name}, namespace: default}}
            spec:
              workloadSelector: {{labels: {{app: {name}}}}}
              ingress:
              - port: {{number: {SERVICE_PORT}, protocol: HTTP, name: http}}
                bind: {ip}
                captureMode: NONE
                defaultEndpoint: 0.0.0.0:8080
              egress:
              - port: {{number: {egress_port}, protocol: HTTP, name: http}}
                bind: {EGRESS[name]}
                captureMode: NONE
                hosts: ["./*"]
            """)
        )
    if extra_alpha_endpoint:
        docs.append(
            textwrap.dedent("""\
            apiVersion: networking.istio.io/v1
            kind: WorkloadEntry
            metadata: {name: alpha-2, namespace: default}
            spec:
              address: 127.0.60.11
              labels: {app: alpha}
              serviceAccount: alpha
            """)
        )
    docs.append(
        textwrap.dedent("""\
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: default, namespace: default}
        spec:
          mtls: {mode: STRICT}
        """)
    )
    return "---\n".join(docs)


def envoy_for(workdir: Path, ca_dir: Path, xds_port: int, name: str) -> EnvoyProcess:
    ip = WORKLOADS[name]
    token = local_token_issuer(ca_dir).mint("default", name, ttl=timedelta(hours=1))
    admin_port = free_port()
    params = BootstrapParams(
        ip=ip,
        pod=f"{name}-0",
        namespace="default",
        service_account=name,
        workload_name=name,
        labels={"app": name},
        instance_ips=(ip,),
        xds_port=xds_port,
        xds_tls_root_pem=load_ca_folder(ca_dir, "cluster.local").bundle.pem,
        credential_token=token,
        admin_port=admin_port,
        extra_metadata={
            "INTERCEPTION_MODE": "NONE",
            "PROXY_CONFIG": {"proxyAdminPort": admin_port},
        },
    )
    return EnvoyProcess(render_bootstrap(params), workdir, name=name)


@dataclass
class OperatedMesh:
    cp: ServedControlPlane
    envoys: dict[str, EnvoyProcess]
    config_file: Path

    @property
    def monitoring_address(self) -> str:
        return f"127.0.0.1:{self.cp.monitoring_port}"

    def get_json(self, path: str) -> Any:
        status, body = self.cp.get(path)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics: (name, sorted labels) -> value."""
        status, text = self.cp.get("/metrics")
        assert status == 200
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)

    def syncz(self) -> dict[str, dict[str, Any]]:
        """Proxy name (pod.namespace) -> its stream entry."""
        return {entry["proxy"]: entry for entry in self.get_json("/debug/syncz")}

    def states(self, proxy: str) -> dict[str, str]:
        entry = self.syncz().get(proxy) or {}
        return {t: s["state"] for t, s in (entry.get("types") or {}).items()}

    def all_synced(self) -> bool:
        entries = self.syncz()
        return set(entries) == {f"{n}-0.default" for n in self.envoys} and all(
            set(self.states(p)) >= {"CDS", "EDS", "LDS", "RDS"}
            and set(self.states(p).values()) == {"SYNCED"}
            for p in entries
        )

    def write_config(self, text: str) -> None:
        """Replace the YAML atomically, so the watcher never reads a half-written file."""
        partial = self.config_file.with_suffix(".partial")
        partial.write_text(text)
        os.replace(partial, self.config_file)


@contextmanager
def operated_mesh(workdir: Path, *serve_args: str) -> Iterator[OperatedMesh]:
    config = workdir / "config"
    config.mkdir()
    config_file = config / "mesh.yaml"
    config_file.write_text(mesh_yaml())
    with ExitStack() as stack:
        cp = stack.enter_context(served_control_plane(workdir, config, *serve_args))
        envoys = {}
        for name in WORKLOADS:
            envoys[name] = stack.enter_context(envoy_for(workdir, cp.ca_dir, cp.xds_tls_port, name))
        for envoy in envoys.values():
            envoy.wait_ready()
        mesh = OperatedMesh(cp, envoys, config_file)
        wait_for(mesh.all_synced, message="both proxies SYNCED on every type")
        yield mesh


@contextmanager
def port_taken(host: str, port: int) -> Iterator[socket.socket]:
    """Another program listening on host:port (no SO_REUSEPORT, so Envoy cannot share it)."""
    sock = socket.socket()
    try:
        sock.bind((host, port))
        sock.listen()
        yield sock
    finally:
        sock.close()


# --- a second kind of client on the same TLS port: raw gRPC -----------------------------------


@contextmanager
def xds_channel(cp: ServedControlPlane) -> Iterator[grpc.Channel]:
    ca = load_ca_folder(cp.ca_dir, "cluster.local")
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.bundle.pem.encode())
    options = (("grpc.ssl_target_name_override", "istiod.istio-system.svc"),)
    with grpc.secure_channel(f"127.0.0.1:{cp.xds_tls_port}", credentials, options) as channel:
        yield channel


def fetch_workload_secret(cp: ServedControlPlane, service_account: str) -> secret_pb2.Secret:
    """The SDS secret ``default`` as a proxy proving ``service_account`` receives it (with
    its private key): what the endpoints must never show."""
    token = local_token_issuer(cp.ca_dir).mint("default", service_account, ttl=timedelta(hours=1))
    node = base_pb2.Node(id="sidecar~127.0.60.9~secret-probe-0.default~default.svc.cluster.local")
    node.metadata.update(
        {
            "NAMESPACE": "default",
            "SERVICE_ACCOUNT": service_account,
            "LABELS": {"app": service_account},
            "INTERCEPTION_MODE": "NONE",
        }
    )
    request = discovery_pb2.DiscoveryRequest(
        node=node, type_url=SECRET_TYPE, resource_names=["default"]
    )
    done = threading.Event()

    def requests() -> Iterator[discovery_pb2.DiscoveryRequest]:
        yield request
        done.wait(15)

    with xds_channel(cp) as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        responses = stub.StreamAggregatedResources(
            requests(), metadata=(("authorization", f"Bearer {token}"),), timeout=15
        )
        try:
            response = next(responses)
        finally:
            done.set()
            responses.cancel()
    (resource,) = response.resources
    secret = secret_pb2.Secret()
    resource.Unpack(secret)
    return secret


def request_certificate(
    cp: ServedControlPlane, service_account: str, token: str
) -> grpc.StatusCode:
    """One CSR to the Istio certificate service on the xDS TLS port; its status code."""
    spiffe_id = SpiffeId.for_workload("cluster.local", "default", service_account)
    request = ca_pb2.IstioCertificateRequest(csr=build_csr(generate_key(), spiffe_id).decode())
    with xds_channel(cp) as channel:
        stub = ca_pb2_grpc.IstioCertificateServiceStub(channel)
        try:
            stub.CreateCertificate(
                request, metadata=(("authorization", f"Bearer {token}"),), timeout=10
            )
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK
