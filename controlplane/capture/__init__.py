"""Transparent capture: the iptables rules Istio's init container installs in a pod's network
namespace (outbound to 15001, inbound to 15006, the proxy's UID/GID and excluded ports and
ranges let through), as ``iptables-restore`` input, and the command that applies them."""

from __future__ import annotations

from controlplane.capture.rules import restore_input
from controlplane.capture.spec import CaptureSpec, spec_from_args

__all__ = ["CaptureSpec", "restore_input", "spec_from_args"]
