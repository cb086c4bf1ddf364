"""A cluster's data path on one machine: each pod a Linux network namespace on a bridge, with
an address from 198.18.0.0/15 (reserved for network benchmarks, never routed off the
machine), Services' cluster IPs in per-pod hosts files, Istio's capture installed inside, and
the agent starting Envoy as UID 1337. Needs root, ``ip`` and ``iptables``."""

from __future__ import annotations

from controlplane.pods.netns import Network, PodNetns, missing_requirements

__all__ = ["Network", "PodNetns", "missing_requirements"]
