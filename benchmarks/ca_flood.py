"""A CreateCertificate flood against a real ``controlplane serve``: what one client gets through.

    .venv/bin/python benchmarks/ca_flood.py [--seconds 5] [--concurrency 16]

Starts the control plane on free loopback ports, then for each case (one valid token, no
token, a forged token) sends CSRs as fast as it can over the plaintext port and reports
answers per second by status, and how many log lines the server wrote meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import time
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controlplane._proto.istio.security.v1alpha1 import ca_pb2, ca_pb2_grpc
from controlplane.auth import TokenIssuer, local_token_issuer
from controlplane.ca import SpiffeId, build_csr, generate_key
from tests.harness.control_plane import served_control_plane


async def flood(
    port: int, token: str | None, seconds: float, concurrency: int
) -> collections.Counter[str]:
    csr = build_csr(
        generate_key(), SpiffeId.for_workload("cluster.local", "default", "reviews")
    ).decode()
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    counts: collections.Counter[str] = collections.Counter()
    deadline = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = ca_pb2_grpc.IstioCertificateServiceStub(channel)

        async def worker() -> None:
            while time.monotonic() < deadline:
                try:
                    await stub.CreateCertificate(
                        ca_pb2.IstioCertificateRequest(csr=csr), metadata=metadata, timeout=10
                    )
                    counts["OK"] += 1
                except grpc.aio.AioRpcError as error:
                    counts[error.code().name] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "config").mkdir()
        with served_control_plane(workdir, workdir / "config") as cp:
            cases = {
                "one token": local_token_issuer(cp.ca_dir).mint("default", "reviews"),
                "no token": None,
                "forged token": TokenIssuer(ec.generate_private_key(ec.SECP256R1())).mint(
                    "default", "reviews"
                ),
            }
            for name, token in cases.items():
                lines_before = len(cp.log().splitlines())
                counts = asyncio.run(
                    flood(cp.xds_plaintext_port, token, args.seconds, args.concurrency)
                )
                lines = cp.log().splitlines()[lines_before:]
                rates = ", ".join(
                    f"{code} {n / args.seconds:.0f}/s" for code, n in sorted(counts.items())
                )
                print(f"{name:13s} {rates}; {len(lines)} log lines in {args.seconds:.0f} s")
                for line in lines[-2:]:
                    print(f"    {line[:200]}")


if __name__ == "__main__":
    main()
