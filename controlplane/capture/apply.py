"""Apply capture rules inside a pod's network namespace (``ip netns exec NAME
iptables-restore --noflush``), as Istio's init container does in the pod. Needs root and
iptables; errors name the namespace and what iptables said."""

from __future__ import annotations

import shutil
import subprocess

from controlplane.capture.rules import restore_input
from controlplane.capture.spec import CaptureError, CaptureSpec


def missing_tools() -> list[str]:
    return [tool for tool in ("ip", "iptables-restore") if shutil.which(tool) is None]


def apply_capture(spec: CaptureSpec, netns: str | None, *, timeout: float = 30.0) -> str:
    """Install the rules (in ``netns``, or the current namespace when None); returns them."""
    text = restore_input(spec)
    if not text:
        return text
    if missing := missing_tools():
        raise CaptureError(f"capture needs {', '.join(missing)} on PATH")
    command = ["iptables-restore", "--noflush", "-w", "5"]
    if netns:
        command = ["ip", "netns", "exec", netns, *command]
    result = subprocess.run(
        command, input=text, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        where = f"network namespace {netns}" if netns else "this network namespace"
        raise CaptureError(f"iptables-restore in {where} failed: {result.stderr.strip()[:2000]}")
    return text
