"""``controlplane demo --pods`` end to end (root and iptables): pods injected by the webhook,
captured, Envoy run by the agent; the tour's results and the clean-up."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from controlplane.pods.netns import missing_requirements

pytestmark = [
    pytest.mark.envoy, pytest.mark.slow,
    pytest.mark.skipif(bool(missing_requirements()),
                       reason=f"needs {', '.join(missing_requirements())} (network namespaces, iptables)"),
]


def test_demo_pods_runs_the_tour_and_cleans_up() -> None:
    result = subprocess.run([sys.executable, "-m", "controlplane", "demo", "--pods"],
                            capture_output=True, text=True, timeout=300, check=False)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    bridge = re.search(r"bridge (cpb\w+)", out).group(1)  # type: ignore[union-attr]
    assert "caller seen as spiffe://cluster.local/ns/bookinfo/sa/productpage" in out
    assert re.search(r"90% v2: +\{[^}]*'reviews-v2': (1[2-9]|20)", out), out
    assert "STRICT:     {'HTTP refused': 3}" in out
    assert "bypasses Envoy): {'reviews-v1': 3}" in out
    links = subprocess.run(["ip", "link"], capture_output=True, text=True, check=True).stdout
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert bridge not in links and bridge[3:] not in namespaces
