"""``controlplane serve`` end to end: a real Envoy gets its config over TLS with a token,
traffic flows, a YAML edit is applied live, and proxies must prove who they are."""

from __future__ import annotations

import json
import textwrap
import threading
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import struct_pb2

from controlplane.auth import local_token_issuer
from controlplane.ca import load_ca_folder
from controlplane.translate.bootstrap import BootstrapParams, render_bootstrap
from tests.harness.control_plane import served_control_plane
from tests.harness.envoy import EnvoyProcess, http_get
from tests.harness.ports import free_port
from tests.harness.upstream import HttpUpstream
from tests.harness.wait import wait_for

pytestmark = pytest.mark.envoy

# The client's own loopback address; its egress listener serves port 9080 there, as an
# Istio egress listener on port X serves the services on port X.
CLIENT_IP = "127.0.30.1"
EGRESS_PORT = 9080


def mesh_yaml(upstream_port: int, egress_port: int) -> str:
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Service
        metadata: {{name: reviews, namespace: default}}
        spec:
          selector: {{app: reviews}}
          ports: [{{name: http, port: 9080, targetPort: {upstream_port}}}]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: reviews-1
          namespace: default
          labels: {{kubernetes.io/service-name: reviews}}
        addressType: IPv4
        ports: [{{name: http, port: {upstream_port}}}]
        endpoints:
        - addresses: [127.0.0.1]
        ---
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {{name: client, namespace: default}}
        spec:
          workloadSelector: {{labels: {{app: client}}}}
          egress:
          - port: {{number: {egress_port}, protocol: HTTP, name: http}}
            bind: {CLIENT_IP}
            captureMode: NONE
            hosts: ["./*"]
        """)


def client_envoy(workdir: Path, ca_dir: Path, xds_port: int, service_account: str = "client") -> EnvoyProcess:
    token = local_token_issuer(ca_dir).mint("default", service_account, ttl=timedelta(hours=1))
    params = BootstrapParams(
        ip=CLIENT_IP, pod="client-0", namespace="default", service_account="client",
        workload_name="client", labels={"app": "client"}, instance_ips=(CLIENT_IP,),
        xds_port=xds_port, xds_tls_root_pem=load_ca_folder(ca_dir, "cluster.local").bundle.pem,
        credential_token=token, admin_port=free_port(),
        extra_metadata={"INTERCEPTION_MODE": "NONE"},
    )
    return EnvoyProcess(render_bootstrap(params), workdir, name="client")


def test_envoy_over_tls_routes_and_follows_live_edits(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    egress_port = EGRESS_PORT
    with HttpUpstream("v1") as v1, HttpUpstream("v2") as v2:
        (config / "mesh.yaml").write_text(mesh_yaml(v1.port, egress_port))
        with served_control_plane(tmp_path, config) as cp:
            with client_envoy(tmp_path, cp.ca_dir, cp.xds_tls_port) as envoy:
                def reaches(name: str) -> bool:
                    status, headers, _ = http_get(CLIENT_IP, egress_port, headers={"Host": "reviews:9080"})
                    return status == 200 and headers.get("x-upstream") == name

                wait_for(lambda: reaches("v1"), message="request through Envoy reaches v1")
                # The proxy proved its identity with its token over TLS.
                status, syncz = cp.get("/debug/syncz")
                assert status == 200
                (stream,) = json.loads(syncz)
                assert "service_account='client'" in stream["identity"]

                # A live edit of the YAML moves the endpoint; Envoy follows without a restart.
                (config / "mesh.yaml").write_text(mesh_yaml(v2.port, egress_port))
                wait_for(lambda: reaches("v2"), message="request reaches v2 after the edit")
                assert envoy.alive()
                assert envoy.stat("cluster_manager.cds.update_rejected") == 0
            assert cp.stop() == 0, "SIGTERM shuts the control plane down cleanly"


def _ads_request(
    channel: grpc.Channel,
    token: str,
    claimed_sa: str,
    node_id: str = "sidecar~127.0.30.9~x-0.default~default.svc.cluster.local",
) -> grpc.RpcError | None:
    node = base_pb2.Node(id=node_id)
    node.metadata.CopyFrom(struct_pb2.Struct(fields={
        "NAMESPACE": struct_pb2.Value(string_value="default"),
        "SERVICE_ACCOUNT": struct_pb2.Value(string_value=claimed_sa),
    }))
    request = discovery_pb2.DiscoveryRequest(
        node=node, type_url="type.googleapis.com/envoy.config.cluster.v3.Cluster"
    )
    answered = threading.Event()

    def requests():  # keep the stream open until answered, as a proxy does
        yield request
        answered.wait(10)

    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    responses = stub.StreamAggregatedResources(requests(), metadata=metadata, timeout=10)
    try:
        next(responses)
        return None
    except grpc.RpcError as error:
        return error
    finally:
        answered.set()
        responses.cancel()


def test_a_proxy_must_prove_the_identity_it_claims(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "mesh.yaml").write_text(mesh_yaml(9, EGRESS_PORT))
    with served_control_plane(tmp_path, config) as cp:
        ca = load_ca_folder(cp.ca_dir, "cluster.local")
        credentials = grpc.ssl_channel_credentials(root_certificates=ca.bundle.pem.encode())
        options = (("grpc.ssl_target_name_override", "istiod.istio-system.svc"),)
        issuer = local_token_issuer(cp.ca_dir)
        with grpc.secure_channel(f"127.0.0.1:{cp.xds_tls_port}", credentials, options) as channel:
            # A token for service account "a" while the node claims "b".
            error = _ads_request(channel, issuer.mint("default", "a"), claimed_sa="b")
            assert error is not None and error.code() == grpc.StatusCode.PERMISSION_DENIED
            # A token that does not verify.
            error = _ads_request(channel, "not-a-token", claimed_sa="b")
            assert error is not None and error.code() == grpc.StatusCode.UNAUTHENTICATED
            # Metadata claims "default" as the token proves, the node id names "prod": config
            # would be for the node id's namespace, so it is refused.
            prod = "sidecar~127.0.30.9~x-0.prod~prod.svc.cluster.local"
            error = _ads_request(channel, issuer.mint("default", "b"), claimed_sa="b", node_id=prod)
            assert error is not None and error.code() == grpc.StatusCode.PERMISSION_DENIED
            # The right token is served.
            assert _ads_request(channel, issuer.mint("default", "b"), claimed_sa="b") is None
