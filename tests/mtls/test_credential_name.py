"""DestinationRule ``credentialName`` with real Envoy: the client sidecar originates TLS
(MUTUAL) to a loopback HTTPS server that requires a client certificate, with the certificate,
key and CA of a Kubernetes Secret that the control plane serves over SDS.

Also: a proxy of another namespace is not given the Secret; a rotated Secret reaches the
sidecar; a broken one is reported by name and field (never its content) while the sidecar
keeps working with what it has; no key of the Secret shows in logs or debug output.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import struct_pb2

from controlplane.auth import local_token_issuer
from controlplane.ca import load_ca_folder
from controlplane.translate import CLUSTER_TYPE, SECRET_TYPE
from tests.harness.control_plane import served_control_plane
from tests.harness.pki import LocalCA
from tests.harness.tls_upstream import TlsUpstream
from tests.harness.wait import eventually, wait_for
from tests.harness.xds_client import XdsClientStream
from tests.mtls.mesh import PORT, client_sidecar_doc, dump, http_request, sidecar

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

CLIENT = "127.0.34.1"
HOST = "tls.example.internal"
CREDENTIAL = "tls-client"
NAMES = [CREDENTIAL, f"{CREDENTIAL}-cacert"]


def _doc(kind: str, api: str, name: str, namespace: str = "default", **body: Any) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": namespace}, **body}


def secret_doc(data: dict[str, bytes]) -> dict[str, Any]:
    return _doc("Secret", "v1", CREDENTIAL, type="kubernetes.io/tls",
                data={k: base64.b64encode(v).decode() for k, v in data.items()})


def _config(server_port: int) -> list[dict[str, Any]]:
    return [
        client_sidecar_doc(CLIENT),
        _doc("ServiceEntry", "networking.istio.io/v1", "tls-server", spec={
            "hosts": [HOST], "ports": [{"number": PORT, "name": "http", "protocol": "HTTP"}],
            "resolution": "STATIC", "location": "MESH_EXTERNAL",
            "endpoints": [{"address": "127.0.0.1", "ports": {"http": server_port}}],
        }),
        _doc("DestinationRule", "networking.istio.io/v1", "tls-server", spec={
            "host": HOST, "trafficPolicy": {"tls": {"mode": "MUTUAL", "credentialName": CREDENTIAL, "sni": HOST}},
        }),
    ]


@pytest.fixture(scope="module")
def tls_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir: Path = tmp_path_factory.mktemp("credential-name")
    config = workdir / "config"
    config.mkdir()
    server_ca, client_ca = LocalCA("server-ca"), LocalCA("client-ca")
    client_pem = client_ca.issue("client-one", server=False)
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(TlsUpstream(workdir, "server", server_ca.issue(HOST, dns=(HOST,)), client_ca.pem))
        (config / "mesh.yaml").write_text(dump(_config(server.port)))
        (config / "secret.yaml").write_text(dump([secret_doc(
            {"tls.crt": client_pem.cert, "tls.key": client_pem.key, "ca.crt": server_ca.pem}
        )]))
        cp = stack.enter_context(served_control_plane(workdir, config))
        envoy = stack.enter_context(sidecar(workdir, cp.ca_dir, cp.xds_tls_port, name="client", address=CLIENT,
                                            service_account="client", labels={"app": "client"}))
        envoy.wait_ready()
        yield {"cp": cp, "envoy": envoy, "config": config, "server_ca": server_ca, "client_ca": client_ca,
               "keys": [client_pem.key]}


def call() -> tuple[int, dict[str, Any]]:
    status, _, echo = http_request(CLIENT, PORT, host_header=HOST)
    return status, echo


def test_sidecar_originates_mutual_tls_with_the_secret(tls_mesh: dict[str, Any]) -> None:
    status, echo = wait_for(lambda: (r := call())[0] == 200 and r, message="the TLS server through the sidecar")
    assert status == 200 and echo["client"] == "client-one"  # the Secret's client certificate


def _node(namespace: str) -> base_pb2.Node:
    node = base_pb2.Node(id=f"sidecar~127.0.34.9~onlooker-0.{namespace}~{namespace}.svc.cluster.local")
    metadata = struct_pb2.Struct()
    metadata.update({"NAMESPACE": namespace, "SERVICE_ACCOUNT": "client", "INTERCEPTION_MODE": "NONE",
                     "INSTANCE_IPS": "127.0.34.9", "LABELS": {"app": "onlooker"}})
    node.metadata.CopyFrom(metadata)
    return node


async def _secrets_for(mesh: dict[str, Any], namespace: str) -> dict[str, secret_pb2.Secret]:
    """The SDS secrets an authenticated proxy of ``namespace`` gets when it asks for the
    credential's names (and its own), once its clusters came."""
    cp = mesh["cp"]
    token = local_token_issuer(cp.ca_dir).mint(namespace, "client")
    root = load_ca_folder(cp.ca_dir, "cluster.local").bundle.pem.encode()
    credentials = grpc.ssl_channel_credentials(root_certificates=root)
    options = (("grpc.ssl_target_name_override", "istiod.istio-system.svc"),)
    secrets: dict[str, secret_pb2.Secret] = {}
    types: set[str] = set()
    names = ["default", "ROOTCA", *NAMES]
    async with grpc.aio.secure_channel(f"127.0.0.1:{cp.xds_tls_port}", credentials, options) as channel:
        stream = XdsClientStream(channel, metadata=(("authorization", f"Bearer {token}"),))

        async def read() -> None:
            with contextlib.suppress(EOFError, grpc.aio.AioRpcError):
                while True:
                    response = await stream.recv()
                    types.add(response.type_url)
                    for resource in response.resources:
                        if resource.type_url == SECRET_TYPE:
                            secret = secret_pb2.Secret()
                            resource.Unpack(secret)
                            secrets[secret.name] = secret
                    await stream.send(discovery_pb2.DiscoveryRequest(
                        type_url=response.type_url, version_info=response.version_info, response_nonce=response.nonce,
                        resource_names=names if response.type_url == SECRET_TYPE else [],
                    ))

        reader = asyncio.get_running_loop().create_task(read())
        node = _node(namespace)
        await stream.send(discovery_pb2.DiscoveryRequest(node=node, type_url=SECRET_TYPE, resource_names=names))
        await stream.send(discovery_pb2.DiscoveryRequest(node=node, type_url=CLUSTER_TYPE))
        try:
            await eventually(lambda: CLUSTER_TYPE in types and "default" in secrets, message="clusters and SVID")
            await eventually(lambda: namespace != "default" or set(NAMES) <= set(secrets), message="credentials")
            await asyncio.sleep(1.0)  # late responses, if any, would show here
        finally:
            await stream.close()
            reader.cancel()
    return secrets


async def test_a_proxy_of_another_namespace_is_not_given_the_secret(tls_mesh: dict[str, Any]) -> None:
    assert set(await _secrets_for(tls_mesh, "default")) == {"default", "ROOTCA", *NAMES}
    assert set(await _secrets_for(tls_mesh, "other")) == {"default", "ROOTCA"}


def test_rotation_reaches_the_sidecar_and_a_broken_secret_is_reported_not_served(tls_mesh: dict[str, Any]) -> None:
    cp, config = tls_mesh["cp"], tls_mesh["config"]
    wait_for(lambda: call()[0] == 200, message="the TLS server through the sidecar")
    rotated = tls_mesh["client_ca"].issue("client-two", server=False)
    tls_mesh["keys"].append(rotated.key)
    good = {"tls.crt": rotated.cert, "tls.key": rotated.key, "ca.crt": tls_mesh["server_ca"].pem}
    (config / "secret.yaml").write_text(dump([secret_doc(good)]))
    wait_for(lambda: (r := call())[0] == 200 and r[1]["client"] == "client-two", message="the rotated certificate")

    broken = dict(good, **{"tls.key": tls_mesh["client_ca"].issue("x", server=False).key})
    (config / "secret.yaml").write_text(dump([secret_doc(broken)]))
    expected = (f"credentialName '{CREDENTIAL}': Secret default/{CREDENTIAL} data[tls.key]: "
                "does not match the certificate in data[tls.crt]")
    wait_for(lambda: expected in cp.log(), message="the broken Secret reported")
    status, echo = call()  # the sidecar keeps the last good certificate
    assert status == 200 and echo["client"] == "client-two"
    envoy = tls_mesh["envoy"]
    assert envoy.stat(f"sds.{CREDENTIAL}.update_success")
    assert not envoy.stat(f"sds.{CREDENTIAL}.update_rejected")  # never sent, so never NACKed


def test_no_secret_key_in_logs_or_debug_output(tls_mesh: dict[str, Any]) -> None:
    cp = tls_mesh["cp"]
    wait_for(lambda: call()[0] == 200, message="the TLS server through the sidecar")
    paths = ["/metrics", "/debug/syncz", "/debug/configz", "/debug/push_status",
             "/debug/config_dump?proxyID=client-0.default"]
    outputs = {path: cp.get(path) for path in paths}
    dump_text = outputs["/debug/config_dump?proxyID=client-0.default"][1]
    assert f'"{CREDENTIAL}"' in dump_text and "W3JlZGFjdGVkXQ==" in dump_text  # listed, key redacted
    texts = {**{path: body for path, (_, body) in outputs.items()}, "control plane log": cp.log()}
    for key in tls_mesh["keys"]:
        body = "".join(key.decode().splitlines()[1:-1])
        encoded = base64.b64encode(key).decode()
        for where, text in texts.items():
            assert "PRIVATE KEY" not in text, where
            for secret in (body, encoded):
                for start in range(0, max(1, len(secret) - 32), 32):
                    assert secret[start:start + 32] not in text, where
