"""Builders per proxy kind: each turns the index into one proxy's resources.

``BUILDERS`` maps the node's kind (``sidecar``, ``router``) to its builder; translate()
dispatches on it. A new kind of proxy is a new module here and one entry below.
"""

from __future__ import annotations

from controlplane.translate.builders.gateway import GATEWAY_BUILDER
from controlplane.translate.builders.output import Builder, ProxyConfig
from controlplane.translate.builders.sidecar import SIDECAR_BUILDER
from controlplane.translate.proxy import ROUTER, SIDECAR

BUILDERS: dict[str, Builder] = {SIDECAR: SIDECAR_BUILDER, ROUTER: GATEWAY_BUILDER}

__all__ = ["BUILDERS", "Builder", "ProxyConfig"]
