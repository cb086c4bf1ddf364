"""What a hostile proxy or an onlooker can get: only its own certificate over SDS, and never
any key material from the control plane's logs, metrics or debug endpoints.

(Claiming another identity than the token proves is refused in tests/runtime/test_serve.py;
forged, expired and alg-none tokens in tests/ca.)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from cryptography import x509
from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import struct_pb2

from controlplane.auth import local_token_issuer
from controlplane.translate import CLUSTER_TYPE, LISTENER_TYPE, SECRET_TYPE
from tests.harness.xds_client import XdsClientStream
from tests.mtls.mesh import spiffe_id

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

OTHER_WORKLOADS_SECRETS = [
    spiffe_id("strict"), "strict", "kubernetes://strict", "default/strict", "file-cert:/etc/certs/key.pem",
]


def _node(service_account: str, pod: str, ip: str = "127.0.31.99", labels: dict[str, str] | None = None) -> base_pb2.Node:
    node = base_pb2.Node(id=f"sidecar~{ip}~{pod}.default~default.svc.cluster.local")
    metadata = struct_pb2.Struct()
    metadata.update({"NAMESPACE": "default", "SERVICE_ACCOUNT": service_account, "INTERCEPTION_MODE": "NONE",
                     "INSTANCE_IPS": ip, "LABELS": labels or {}})
    node.metadata.CopyFrom(metadata)
    return node


@contextlib.asynccontextmanager
async def ads_stream(mesh: dict[str, Any], token: str | None, plaintext: bool = False) -> AsyncIterator[XdsClientStream]:
    """An ADS stream over TLS to port 15012's stand-in (with a token when given), or over the
    plaintext development port."""
    cp = mesh["cp"]
    credentials = grpc.ssl_channel_credentials(root_certificates=mesh["ca"].bundle.pem.encode())
    options = (("grpc.ssl_target_name_override", "istiod.istio-system.svc"),)
    if plaintext:
        opened = grpc.aio.insecure_channel(f"127.0.0.1:{cp.xds_plaintext_port}")
    else:
        opened = grpc.aio.secure_channel(f"127.0.0.1:{cp.xds_tls_port}", credentials, options)
    async with opened as channel:
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        stream = XdsClientStream(channel, metadata=metadata)
        try:
            yield stream
        finally:
            await stream.close()


class Responses:
    """Reads an ADS stream in the background, ACKing each response (a cancelled read would
    cancel the whole call, so reading goes on until the stream closes)."""

    def __init__(self, stream: XdsClientStream, names: dict[str, list[str]]) -> None:
        self.stream = stream
        self.names = names
        self.secrets: dict[str, secret_pb2.Secret] = {}
        self.listeners: dict[str, listener_pb2.Listener] = {}
        self.types: set[str] = set()
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(EOFError, grpc.aio.AioRpcError, asyncio.CancelledError):
            while True:
                response = await self.stream.recv()
                self.types.add(response.type_url)
                for resource in response.resources:
                    if resource.type_url == SECRET_TYPE:
                        secret = secret_pb2.Secret()
                        resource.Unpack(secret)
                        self.secrets[secret.name] = secret
                    elif resource.type_url == LISTENER_TYPE:
                        listener = listener_pb2.Listener()
                        resource.Unpack(listener)
                        self.listeners[listener.name] = listener
                await self.stream.send(discovery_pb2.DiscoveryRequest(
                    type_url=response.type_url, version_info=response.version_info,
                    response_nonce=response.nonce, resource_names=self.names.get(response.type_url, []),
                ))

    async def until(self, condition: Any, then_wait: float = 0.0) -> None:
        """Until ``condition(self)`` holds, then ``then_wait`` seconds more for late responses."""
        async with asyncio.timeout(30):
            while not condition(self):
                await asyncio.sleep(0.02)
        await asyncio.sleep(then_wait)


async def _ask(stream: XdsClientStream, node: base_pb2.Node, names: list[str], listeners: bool = False) -> Responses:
    responses = Responses(stream, {SECRET_TYPE: names})
    await stream.send(discovery_pb2.DiscoveryRequest(node=node, type_url=SECRET_TYPE, resource_names=names))
    await stream.send(discovery_pb2.DiscoveryRequest(node=node, type_url=CLUSTER_TYPE))
    if listeners:
        await stream.send(discovery_pb2.DiscoveryRequest(node=node, type_url=LISTENER_TYPE))
    return responses


async def test_a_proxy_gets_only_its_own_secrets(mesh: dict[str, Any]) -> None:
    token = local_token_issuer(mesh["cp"].ca_dir).mint("default", "client")
    async with ads_stream(mesh, token) as stream:
        responses = await _ask(stream, _node("client", "attacker"), ["default", "ROOTCA", *OTHER_WORKLOADS_SECRETS])
        await responses.until(lambda r: "default" in r.secrets and CLUSTER_TYPE in r.types, then_wait=1.0)
    secrets = responses.secrets
    assert set(secrets) == {"default", "ROOTCA"}
    leaf = x509.load_pem_x509_certificate(secrets["default"].tls_certificate.certificate_chain.inline_bytes)
    uris = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier
    )
    assert uris == [spiffe_id("client")]


async def test_a_proxy_without_credential_gets_nothing_over_tls(mesh: dict[str, Any]) -> None:
    """As istiod: on the TLS port a proxy that proves no identity is refused (UNAUTHENTICATED)
    before anything is served, whatever namespace it claims. Before: it was given the full
    non-secret config of the namespace it claimed."""
    async with ads_stream(mesh, None) as stream:
        node = _node("strict", "anonymous")
        # One request: the refusal may end the call before a second one could be written.
        await stream.send(discovery_pb2.DiscoveryRequest(node=node, type_url=CLUSTER_TYPE))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await asyncio.wait_for(stream.recv(), 15)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "credential" in (refused.value.details() or "")


async def test_a_proxy_without_credential_gets_no_secret_on_the_plaintext_port(mesh: dict[str, Any]) -> None:
    async with ads_stream(mesh, None, plaintext=True) as stream:
        responses = await _ask(stream, _node("strict", "anonymous"), ["default", "ROOTCA", *OTHER_WORKLOADS_SECRETS])
        # Once clusters came, the stream is being served; secrets never come.
        await responses.until(lambda r: CLUSTER_TYPE in r.types, then_wait=2.0)
    assert responses.secrets == {}


async def test_a_proxy_without_credential_is_given_plaintext_config(mesh: dict[str, Any]) -> None:
    """Only on the plaintext development port (as Istio's 15010): it can never hold a
    certificate, so PERMISSIVE is plaintext for it (no SDS to wait for), while the same
    workload with its token over TLS gets the mTLS chain too."""
    node = _node("permissive", "permissive-9", ip="127.0.31.12", labels={"app": "permissive"})
    name = "127.0.31.12_9080"

    async def chains(token: str | None, plaintext: bool) -> list[tuple[str, bool]]:
        async with ads_stream(mesh, token, plaintext=plaintext) as stream:
            responses = await _ask(stream, node, ["default", "ROOTCA"], listeners=True)
            await responses.until(lambda r: name in r.listeners)
        return [(c.filter_chain_match.transport_protocol, c.HasField("transport_socket"))
                for c in responses.listeners[name].filter_chains]

    assert await chains(None, plaintext=True) == [("", False)]
    token = local_token_issuer(mesh["cp"].ca_dir).mint("default", "permissive")
    assert await chains(token, plaintext=False) == [("tls", True), ("raw_buffer", False)]


def _key_body(pem: bytes) -> str:
    return "".join(pem.decode().splitlines()[1:-1])


async def test_no_key_material_in_logs_metrics_or_debug_output(mesh: dict[str, Any]) -> None:
    cp = mesh["cp"]
    token = local_token_issuer(cp.ca_dir).mint("default", "client")
    async with ads_stream(mesh, token) as stream:
        # A connected proxy, so the debug views hold its secrets (as the sidecars' do).
        responses = await _ask(stream, _node("client", "onlooker"), ["default", "ROOTCA"])
        await responses.until(lambda r: "default" in r.secrets)
        workload_key = responses.secrets["default"].tls_certificate.private_key.inline_bytes
        paths = ["/metrics", "/debug", "/debug/syncz", "/debug/configz", "/debug/push_status",
                 "/debug/config_dump?proxyID=onlooker.default"]
        paths += [f"/debug/config_dump?proxyID={name}-0.default" for name in mesh["envoys"]]
        outputs = {path: await asyncio.to_thread(cp.get, path) for path in paths}
    for path, (status, _) in outputs.items():
        assert status == 200, path
    dump = outputs["/debug/config_dump?proxyID=onlooker.default"][1]
    assert '"ROOTCA"' in dump and "[redacted]" in dump.replace("W3JlZGFjdGVkXQ==", "[redacted]")
    pems = {
        "CA signing key": (cp.ca_dir / "ca-key.pem").read_bytes(),
        "token signing key": (cp.ca_dir / "token-key.pem").read_bytes(),
        "workload key": workload_key,
    }
    keys = {"token": token}
    for what, pem in pems.items():  # as PEM text, and as JSON shows bytes fields (base64 of the PEM)
        keys[what] = _key_body(pem)
        keys[f"{what} (base64)"] = base64.b64encode(pem).decode()
    texts = {**{path: body for path, (_, body) in outputs.items()}, "control plane log": cp.log()}
    for where, text in texts.items():
        assert "PRIVATE KEY" not in text, where
        for what, secret in keys.items():
            # Any 32-character slice of a key would be a leak; check slices along the body.
            for start in range(0, max(1, len(secret) - 32), 32):
                assert secret[start:start + 32] not in text, f"{what} in {where}"
