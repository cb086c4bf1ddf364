"""Host names as Istio compares them: the one implementation is ``controlplane.model.hosts``.

Kept as a re-export for code not yet moved to the model module; import from there.
"""

from __future__ import annotations

from controlplane.model.hosts import (
    host_matches,
    hosts_overlap,
    normalize_host,
    resolve_short_name,
    specificity,
)

hosts_intersect = hosts_overlap  # the model's name for Istio's host.Name.Matches

__all__ = [
    "host_matches",
    "hosts_intersect",
    "hosts_overlap",
    "normalize_host",
    "resolve_short_name",
    "specificity",
]
