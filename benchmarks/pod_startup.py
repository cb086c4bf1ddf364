"""Time from creating a pod in the Kubernetes API test double to its first captured request
served (root and iptables; see tests/harness/pods.py for the data path).

    .venv/bin/python -m benchmarks.pod_startup [--pods 3]

Each new pod goes through the injection webhook (AdmissionReview, JSON patch), becomes a
network namespace with the injected capture rules, and its agent starts Envoy as UID 1337;
the clock stops when an unmodified curl in the pod gets 200 from ``http://reviews:9080/``
through its sidecar (mTLS to the server's sidecar). Prints the steps' medians and the total.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from controlplane.pods.netns import missing_requirements
from tests.harness.pods import pod_cluster


def first_served(pod, url: str, deadline: float = 60.0) -> float:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        status, answer = pod.curl(url, timeout=2)
        if status == 200 and answer.get("name", "").startswith("reviews"):
            return time.monotonic()
        time.sleep(0.02)
    raise TimeoutError(f"{pod.name}: no answer from {url} in {deadline}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=3)
    args = parser.parse_args()
    if missing := missing_requirements():
        print(f"pod_startup: needs {', '.join(missing)}")
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp, pod_cluster(Path(tmp)) as cluster:
        cluster.namespace("shop", {"istio-injection": "enabled"})
        cluster.service("reviews", "shop", 9080, {"app": "reviews"})
        cluster.pod("reviews-v1", "shop", {"app": "reviews", "version": "v1"}, service_account="reviews")
        for n in range(args.pods):
            pod = cluster.pod(f"client-{n}", "shop", {"app": "client"}, ports=(8000,), service_account="client")
            served = first_served(pod, "http://reviews:9080/")
            t = pod.timings
            rows.append({"admission": t["admitted"] - t["created"], "netns+capture": t["captured"] - t["admitted"],
                         "agent+envoy ready": t["ready"] - t["captured"], "first request": served - t["ready"],
                         "total": served - t["created"]})
    print(f"{'step':<20}" + "".join(f"{f'pod {n}':>10}" for n in range(len(rows))) + f"{'median':>10}")
    for step in rows[0]:
        values = [r[step] for r in rows]
        print(f"{step:<20}" + "".join(f"{v * 1000:>8.0f}ms" for v in values)
              + f"{statistics.median(values) * 1000:>8.0f}ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
