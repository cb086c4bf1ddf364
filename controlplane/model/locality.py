"""Istio's locality (``region/zone/subzone``) and where a proxy's or an endpoint's comes from.

One place for Istio's rules, used by node parsing, the endpoint index and the bootstrap:

- label ``topology.istio.io/locality``, else ``istio-locality``: ``region.zone.subzone``
  (Kubernetes label values cannot hold ``/``; a value that has one is taken as is);
- Kubernetes topology labels ``topology.kubernetes.io/region`` / ``zone`` (before them the
  deprecated ``failure-domain.beta.kubernetes.io/*``) and ``topology.istio.io/subzone``;
- a WorkloadEntry's ``locality`` field, ``region/zone/subzone``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

LOCALITY_LABEL = "topology.istio.io/locality"  # Istio reads it before the older label
ISTIO_LOCALITY_LABEL = "istio-locality"
REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
SUBZONE_LABEL = "topology.istio.io/subzone"
REGION_LABEL_BETA = "failure-domain.beta.kubernetes.io/region"
ZONE_LABEL_BETA = "failure-domain.beta.kubernetes.io/zone"


@dataclass(frozen=True, slots=True)
class Locality:
    region: str = ""
    zone: str = ""
    subzone: str = ""

    def __str__(self) -> str:
        """Istio's LocalityToString: ``region[/zone[/subzone]]``."""
        if not self.zone:
            return self.region
        return f"{self.region}/{self.zone}" + (f"/{self.subzone}" if self.subzone else "")


def split_locality(text: str) -> Locality:
    """``region/zone/subzone`` with missing parts empty (Istio's SplitLocalityLabel)."""
    parts = text.split("/") if text else []
    parts += [""] * (3 - len(parts))
    return Locality(parts[0], parts[1], parts[2])


def sanitize_locality_label(value: str) -> str:
    """A label's ``region.zone.subzone`` as ``region/zone/subzone`` (SanitizeLocalityLabel)."""
    return value if "/" in value else value.replace(".", "/")


def locality_label(labels: Mapping[str, str]) -> str:
    """The locality a workload's labels name, sanitized; "" when none does.

    As Istio's GetLocalityLabel, a present ``topology.istio.io/locality`` wins even if empty.
    """
    for key in (LOCALITY_LABEL, ISTIO_LOCALITY_LABEL):
        if key in labels:
            return sanitize_locality_label(labels[key])
    return ""


def topology_labels_locality(labels: Mapping[str, str]) -> Locality | None:
    """Locality from the topology labels, None when none of them is present."""
    keys = (REGION_LABEL, REGION_LABEL_BETA, ZONE_LABEL, ZONE_LABEL_BETA, SUBZONE_LABEL)
    if not any(k in labels for k in keys):
        return None
    return Locality(
        labels.get(REGION_LABEL) or labels.get(REGION_LABEL_BETA, ""),
        labels.get(ZONE_LABEL) or labels.get(ZONE_LABEL_BETA, ""),
        labels.get(SUBZONE_LABEL, ""),
    )


def proxy_locality(labels: Mapping[str, str], node_locality: Locality | None) -> Locality:
    """A connected proxy's locality, in istiod's order (xds ``setTopologyLabels``): its topology
    labels, else its locality label, else the Envoy node's ``locality``.

    Labels win because they come from the registry, which istiod trusts more than what one
    proxy says of itself; pilot-agent writes the node's locality from the same label anyway.
    """
    found = topology_labels_locality(labels)
    if found is not None:
        return found
    label = locality_label(labels)
    if label:
        return split_locality(label)
    return node_locality or Locality()


def pod_locality(labels: Mapping[str, str]) -> Locality:
    """An endpoint Pod's locality (istiod's ``getPodLocality``): its locality label, else its
    Node's topology labels. Nodes are not among our inputs: the Pod's own topology labels
    stand in for them (Kubernetes' PodTopologyLabels admission, beta in 1.35, copies region
    and zone from the Node)."""
    label = locality_label(labels)
    if label:
        return split_locality(label)
    return topology_labels_locality(labels) or Locality()


def workload_entry_locality(locality: str, labels: Mapping[str, str]) -> Locality:
    """A WorkloadEntry's (or ServiceEntry endpoint's) ``locality`` field, else its label."""
    return split_locality(locality or locality_label(labels))
