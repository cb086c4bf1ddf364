"""``controlplane serve`` under xDS floods, with its default settings.

Before: a few 14 MB delta EDS subscriptions from a client with no credential grew the
server from 68 MB to about 1 GB (never released) and stalled /healthz for 15 s; such a
client was served the full non-secret config of any namespace it claimed. Now, as istiod,
the TLS port serves nothing without a credential, every request and subscription is bounded,
and each refusal is counted (``pilot_xds_refused_streams``) and logged in aggregate.
Figures: ``benchmarks/xds_flood.py``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2

from controlplane.auth import local_token_issuer
from controlplane.translate import CLUSTER_TYPE, ENDPOINT_TYPE, SECRET_TYPE
from controlplane.xds.limits import XdsLimits
from tests.harness.control_plane import ServedControlPlane, served_control_plane
from tests.harness.xds_client import XdsClientStream

NODE = base_pb2.Node(id="sidecar~127.0.32.1~flood-0.default~default.svc.cluster.local")


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedControlPlane]:
    workdir: Path = tmp_path_factory.mktemp("floods")
    (workdir / "config").mkdir()
    with served_control_plane(workdir, workdir / "config") as served:
        yield served


def names(count: int, start: int = 0) -> list[str]:
    return [f"outbound|8080||flood-{i:08d}.default.svc.cluster.local" for i in range(start, start + count)]


def refused_metric(cp: ServedControlPlane, reason: str) -> float:
    status, text = cp.get("/metrics")
    assert status == 200
    found = re.search(rf'^pilot_xds_refused_streams{{reason="{reason}"}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def _delta(cp: ServedControlPlane, token: str | None, requests: list[list[str]],
                 *, plaintext: bool = False) -> grpc.aio.AioRpcError | discovery_pb2.DeltaDiscoveryResponse:
    """A delta stream subscribing to EDS ``requests`` one after the other; what came back
    first: a response, or the error that ended the stream."""
    receive = (("grpc.max_receive_message_length", -1),)  # empty assignments for every name
    if plaintext:
        opened = grpc.aio.insecure_channel(f"127.0.0.1:{cp.xds_plaintext_port}", receive)
    else:
        credentials = grpc.ssl_channel_credentials((cp.ca_dir / "root-cert.pem").read_bytes())
        options = (("grpc.ssl_target_name_override", "istiod.istio-system.svc"), *receive)
        opened = grpc.aio.secure_channel(f"127.0.0.1:{cp.xds_tls_port}", credentials, options)
    async with opened as channel:
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        stream = XdsClientStream(channel, delta=True, metadata=metadata)
        try:
            for i, subscribe in enumerate(requests):
                request = discovery_pb2.DeltaDiscoveryRequest(
                    type_url=ENDPOINT_TYPE, resource_names_subscribe=subscribe
                )
                if i == 0:
                    request.node.CopyFrom(NODE)
                await stream.send(request)
            async with asyncio.timeout(30):
                while True:  # the last error, or a response once every request was applied
                    response = await stream.recv()
                    got = {r.name for r in response.resources} | set(response.removed_resources)
                    if requests[-1][-1] in got:
                        return response
        except grpc.aio.AioRpcError as error:
            return error
        finally:
            await stream.close()


def test_a_client_without_credential_gets_nothing_on_the_tls_port(cp: ServedControlPlane) -> None:
    before = refused_metric(cp, "unauthenticated")
    outcome = asyncio.run(_delta(cp, None, [names(10_000)]))
    assert isinstance(outcome, grpc.aio.AioRpcError)
    assert outcome.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused_metric(cp, "unauthenticated") == before + 1


def test_a_request_over_the_size_limit_is_refused(cp: ServedControlPlane) -> None:
    token = local_token_issuer(cp.ca_dir).mint("default", "flood")
    # About 14 MB, as in the finding: gRPC refuses it before the server reads it.
    outcome = asyncio.run(_delta(cp, token, [names(250_000)]))
    assert isinstance(outcome, grpc.aio.AioRpcError)
    assert outcome.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(XdsLimits().max_request_bytes) in (outcome.details() or "")


def test_subscriptions_beyond_the_name_cap_are_refused(cp: ServedControlPlane) -> None:
    """Each request under the size limit, together over the names a subscription may hold."""
    token = local_token_issuer(cp.ca_dir).mint("default", "flood")
    per_request = XdsLimits().max_names_per_subscription // 2 + 1
    before = refused_metric(cp, "names_per_subscription")
    outcome = asyncio.run(_delta(cp, token, [names(per_request), names(per_request, per_request)]))
    assert isinstance(outcome, grpc.aio.AioRpcError)
    assert outcome.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "a subscription may hold" in (outcome.details() or "")
    assert refused_metric(cp, "names_per_subscription") == before + 1
    # The server goes on serving everyone else.
    served = asyncio.run(_delta(cp, token, [names(3)]))
    assert isinstance(served, discovery_pb2.DeltaDiscoveryResponse)


def test_the_plaintext_development_port_serves_clients_without_credential(cp: ServedControlPlane) -> None:
    outcome = asyncio.run(_delta(cp, None, [names(3)], plaintext=True))
    assert isinstance(outcome, discovery_pb2.DeltaDiscoveryResponse)


def test_a_flood_of_refused_streams_is_not_a_log_line_each(cp: ServedControlPlane) -> None:
    lines_before = len(cp.log().splitlines())

    async def flood() -> list[object]:
        return await asyncio.gather(*(_delta(cp, None, [names(5)]) for _ in range(40)))

    outcomes = asyncio.run(flood())
    assert all(isinstance(o, grpc.aio.AioRpcError) for o in outcomes)
    new_lines = cp.log().splitlines()[lines_before:]
    assert len(new_lines) <= 2, new_lines  # at most the summary of an interval ending now


def test_allow_anonymous_serves_clients_without_credential_over_tls(tmp_path: Path) -> None:
    """The development flag: served over TLS without a credential, never given a secret."""
    (tmp_path / "config").mkdir()
    with served_control_plane(tmp_path, tmp_path / "config", "--xds-allow-anonymous") as served:
        outcome = asyncio.run(_delta(served, None, [names(3)]))
        assert isinstance(outcome, discovery_pb2.DeltaDiscoveryResponse)
        secrets = asyncio.run(_sotw_secrets(served))
    assert secrets == []


async def _sotw_secrets(cp: ServedControlPlane) -> list[str]:
    credentials = grpc.ssl_channel_credentials((cp.ca_dir / "root-cert.pem").read_bytes())
    options = (("grpc.ssl_target_name_override", "istiod.istio-system.svc"),)
    async with grpc.aio.secure_channel(f"127.0.0.1:{cp.xds_tls_port}", credentials, options) as channel:
        stream = XdsClientStream(channel)
        try:
            await stream.send(discovery_pb2.DiscoveryRequest(node=NODE, type_url=CLUSTER_TYPE))
            await stream.send(discovery_pb2.DiscoveryRequest(type_url=SECRET_TYPE, resource_names=["default", "ROOTCA"]))
            got: list[str] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while True:  # until clusters came (it is served), and a second more for secrets
                try:
                    response = await asyncio.wait_for(stream.recv(), deadline - loop.time())
                except TimeoutError:
                    return got
                if response.type_url == SECRET_TYPE:
                    got += [r.type_url for r in response.resources]
                if response.type_url == CLUSTER_TYPE:
                    deadline = min(deadline, loop.time() + 1.0)
        finally:
            await stream.close()
