"""``controlplane serve`` against hostile clients, with its default settings: a certificate
flood from one token and from no token, and a NACK that tries to forge a log line."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from controlplane._proto.istio.security.v1alpha1 import ca_pb2, ca_pb2_grpc
from controlplane.auth import local_token_issuer
from controlplane.ca import SpiffeId, build_csr, generate_key
from controlplane.server.settings import Settings
from controlplane.translate import CLUSTER_TYPE
from tests.harness.control_plane import ServedControlPlane, served_control_plane
from tests.harness.wait import wait_for
from tests.harness.xds_client import XdsClientStream

FORGED = "2026-01-01 00:00:00,000 INFO    controlplane.ca: issued certificate for spiffe://evil"


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedControlPlane]:
    workdir: Path = tmp_path_factory.mktemp("hostile")
    (workdir / "config").mkdir()
    with served_control_plane(workdir, workdir / "config") as served:
        yield served


async def _flood(cp: ServedControlPlane, token: str | None, count: int) -> Counter[str]:
    csr = build_csr(
        generate_key(), SpiffeId.for_workload("cluster.local", "default", "flood")
    ).decode()
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    codes: Counter[str] = Counter()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{cp.xds_plaintext_port}") as channel:
        stub = ca_pb2_grpc.IstioCertificateServiceStub(channel)

        async def one() -> None:
            try:
                await stub.CreateCertificate(
                    ca_pb2.IstioCertificateRequest(csr=csr), metadata=metadata, timeout=30
                )
                codes["OK"] += 1
            except grpc.aio.AioRpcError as error:
                codes[error.code().name] += 1

        for _ in range(count // 20):
            await asyncio.gather(*(one() for _ in range(20)))
    return codes


def test_a_flood_from_one_token_is_cut_to_the_burst(cp: ServedControlPlane) -> None:
    """Before: every request signed (631/s from one token). The burst allows a whole
    Deployment's restart; what goes beyond it is RESOURCE_EXHAUSTED."""
    token = local_token_issuer(cp.ca_dir).mint("default", "flood")
    codes = asyncio.run(_flood(cp, token, 300))
    assert set(codes) == {"OK", "RESOURCE_EXHAUSTED"}, codes
    # A few more than the burst may pass: the bucket refills while the flood runs.
    burst = Settings().csr_per_identity_burst
    assert burst == 200 and burst <= codes["OK"] < burst + 60, codes
    status, metrics = cp.get("/metrics")
    assert status == 200 and "citadel_server_csr_rate_limited_count{limit=" in metrics


def test_an_unauthenticated_flood_is_not_one_log_line_per_request(cp: ServedControlPlane) -> None:
    lines_before = len(cp.log().splitlines())
    codes = asyncio.run(_flood(cp, None, 400))
    assert codes == Counter(UNAUTHENTICATED=400)
    new_lines = cp.log().splitlines()[lines_before:]
    assert len(new_lines) <= 2, new_lines  # at most the summary of an interval ending now


async def _nack(cp: ServedControlPlane, token: str) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{cp.xds_plaintext_port}") as channel:
        stream = XdsClientStream(channel, metadata=(("authorization", f"Bearer {token}"),))
        try:
            node = base_pb2.Node(id="sidecar~127.0.31.5~nack-0.default~default.svc.cluster.local")
            await stream.send(discovery_pb2.DiscoveryRequest(node=node, type_url=CLUSTER_TYPE))
            response = await asyncio.wait_for(stream.recv(), 15)
            await stream.send(
                discovery_pb2.DiscoveryRequest(
                    type_url=CLUSTER_TYPE,
                    response_nonce=response.nonce,
                    error_detail=status_pb2.Status(code=3, message=f"rejected\n{FORGED}\r\x1b[2K"),
                )
            )
            await asyncio.to_thread(wait_for, lambda: "NACK" in cp.log(), message="NACK logged")
        finally:
            await stream.close()


def test_a_nack_cannot_forge_a_log_line(cp: ServedControlPlane) -> None:
    """Before: the error_detail went raw into the text log, a line of the attacker's own."""
    asyncio.run(_nack(cp, local_token_issuer(cp.ca_dir).mint("default", "nack")))
    lines = cp.log().splitlines()
    assert not any(line.startswith(FORGED[:23]) for line in lines)
    (nack,) = [line for line in lines if "NACK" in line]
    assert nack.endswith(f"rejected\\n{FORGED}\\r\\u001b[2K")
