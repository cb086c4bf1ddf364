"""The agent beside Envoy, as Istio's pilot-agent: it writes Envoy's bootstrap (xDS over a
Unix socket, no credential inside), starts Envoy, proxies Envoy's xDS streams to the control
plane attaching a fresh credential (the token file, re-read on every upstream stream), serves
Envoy's readiness (15021) and merged stats (15020), and stops Envoy when it stops."""

from __future__ import annotations

from controlplane.agent.runner import Agent, AgentError
from controlplane.agent.settings import AgentSettings

__all__ = ["Agent", "AgentError", "AgentSettings"]
