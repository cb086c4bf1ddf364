"""Certificates issued per second on one core, by the built-in CA.

    .venv/bin/python benchmarks/ca_issue.py [--seconds 3] [--json]

Measures, single-threaded and pinned to one CPU where the OS allows:
  issue_workload   ECDSA P-256 key generation + signing (local runs: the CA makes the key)
  csr              parse + verify an agent's CSR, then sign (the IstioCertificateService path)
  sign_only        signing a leaf for an existing public key
  rsa2048_workload RSA-2048 key generation + signing, for comparison
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable

import cryptography

from controlplane.ca import (
    CertificateAuthority,
    KeyAlgorithm,
    SpiffeId,
    build_csr,
    generate_key,
    parse_csr,
)


def rate(operation: Callable[[], object], seconds: float) -> tuple[float, int]:
    operation()  # warm up
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        operation()
        count += 1
    return count / (time.perf_counter() - start), count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    ecdsa = CertificateAuthority.self_signed("cluster.local")
    rsa = CertificateAuthority.self_signed("cluster.local", algorithm=KeyAlgorithm.RSA_2048)
    spiffe_id = SpiffeId.for_workload("cluster.local", "default", "reviews")
    key = generate_key()
    csr = build_csr(key, spiffe_id)

    def csr_path() -> object:
        request = parse_csr(csr)
        return ecdsa.issue_for_public_key(request.public_key, request.spiffe_id)

    cases: dict[str, Callable[[], object]] = {
        "issue_workload": lambda: ecdsa.issue_workload("default", "reviews"),
        "csr": csr_path,
        "sign_only": lambda: ecdsa.issue_for_public_key(key.public_key(), spiffe_id),
        "rsa2048_workload": lambda: rsa.issue_workload("default", "reviews"),
    }
    results = {}
    for name, operation in cases.items():
        seconds = args.seconds if not name.startswith("rsa") else max(args.seconds, 3.0)
        per_second, count = rate(operation, seconds)
        results[name] = {
            "per_second": round(per_second, 1),
            "count": count,
            "ms_each": round(1000 / per_second, 3),
        }
    report = {
        "benchmark": "ca_issue",
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "cpu": platform.processor() or platform.machine(),
        "results": results,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"cryptography {cryptography.__version__}, Python {platform.python_version()}, one core")
    for name, result in results.items():
        print(f"{name:18} {result['per_second']:>10.1f} certs/s  ({result['ms_each']:.3f} ms each)")


if __name__ == "__main__":
    main()
