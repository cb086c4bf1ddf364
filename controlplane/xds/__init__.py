"""xDS server: snapshot cache of serialized resources, ADS (SotW and delta), per-stream state.

See DESIGN.md section 4. Never imports Kubernetes types or controlplane.model.
"""

from __future__ import annotations

from controlplane.xds import types
from controlplane.xds.auth import (
    Authenticate,
    CallInfo,
    GroupOf,
    PermissionDenied,
    Unauthenticated,
    group_by_node_id,
    no_authentication,
)
from controlplane.xds.cache import SnapshotCache
from controlplane.xds.callbacks import StreamInfo, XdsCallbacks
from controlplane.xds.core import XdsCore
from controlplane.xds.limits import InvalidArgument, Refused, ResourceExhausted, XdsLimits
from controlplane.xds.server import XdsServer
from controlplane.xds.status import Counters, NackRecord

__all__ = [
    "Authenticate",
    "CallInfo",
    "Counters",
    "GroupOf",
    "InvalidArgument",
    "NackRecord",
    "PermissionDenied",
    "Refused",
    "ResourceExhausted",
    "SnapshotCache",
    "StreamInfo",
    "Unauthenticated",
    "XdsCallbacks",
    "XdsCore",
    "XdsLimits",
    "XdsServer",
    "group_by_node_id",
    "no_authentication",
    "types",
]
