"""An Istio-compatible control plane for Envoy, written in Python."""

from __future__ import annotations

__version__ = "0.1.0"
