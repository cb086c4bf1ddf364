"""The demo's workloads, read from its own YAML: who listens where and calls whom.

Addresses, labels and service accounts come from the WorkloadEntries; where each
sidecar listens comes from the Sidecar resource selecting that workload (ingress
``bind``/``port``/``defaultEndpoint``, egress ``bind``/``port``). Only the call
graph (Bookinfo's: productpage calls details and reviews, reviews v2 and v3 call
ratings) is code. The YAML in the repository uses the block 127.0.10.0/24;
``copy_config`` moves it to another block so two demos can run side by side.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controlplane.model.labels import selector_matches
from controlplane.model.node import SIDECAR, node_id

CONFIG_ROOT = Path(__file__).resolve().parent / "config"
BASE_DIR = CONFIG_ROOT / "base"
PHASES_DIR = CONFIG_ROOT / "phases"
DEFAULT_BLOCK = "127.0.10"
SERVICE_PORT = 9080
ENVOY_ADMIN_PORT = 15000
TRUST_DOMAIN = "cluster.local"
LOADGEN = "loadgen"

# Bookinfo's call graph: service -> downstream services, per version when it differs.
_CALLS: dict[str, dict[str, tuple[str, ...]]] = {
    "productpage": {"*": ("details", "reviews")},
    "reviews": {"v1": (), "*": ("ratings",)},
}


@dataclass(frozen=True)
class Workload:
    name: str
    namespace: str
    address: str
    service: str  # the ``app`` label
    version: str
    service_account: str
    labels: tuple[tuple[str, str], ...]
    app_host: str | None = None  # where the app listens (from the ingress defaultEndpoint)
    app_port: int | None = None
    inbound_port: int | None = None  # the sidecar's inbound listener, on ``address``
    egress_address: str | None = None  # the sidecar's outbound listener the app calls
    egress_port: int | None = None
    admin_port: int = ENVOY_ADMIN_PORT  # Envoy's admin API, on ``address``
    kind: str = SIDECAR  # or ROUTER: the ingress gateway (ingress.py)

    @property
    def spiffe_id(self) -> str:
        return f"spiffe://{TRUST_DOMAIN}/ns/{self.namespace}/sa/{self.service_account}"

    @property
    def node_id(self) -> str:
        return node_id(self.kind, self.address, self.name, self.namespace)

    @property
    def admin_url(self) -> str:
        return f"http://{self.address}:{self.admin_port}"

    @property
    def has_app(self) -> bool:
        return self.app_port is not None

    @property
    def calls(self) -> tuple[str, ...]:
        by_version = _CALLS.get(self.service, {})
        return by_version.get(self.version, by_version.get("*", ()))


def _documents(folder: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(folder.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict):
                yield doc


def _endpoint(default_endpoint: str, instance_ip: str) -> tuple[str, int]:
    """Istio's defaultEndpoint: ``127.0.0.1:PORT`` (localhost) or ``0.0.0.0:PORT`` (instance IP)."""
    host, _, port = default_endpoint.rpartition(":")
    host = host.strip("[]")
    return (instance_ip if host in ("0.0.0.0", "::") else host), int(port)


def load_workloads(config_dir: Path) -> list[Workload]:
    docs = list(_documents(config_dir))
    sidecars = [d for d in docs if d.get("kind") == "Sidecar"]
    workloads = []
    for doc in docs:
        if doc.get("kind") != "WorkloadEntry":
            continue
        meta, spec = doc["metadata"], doc["spec"]
        namespace = meta.get("namespace", "default")
        labels = dict(spec.get("labels") or {})
        fields: dict[str, Any] = {}
        for sidecar in sidecars:
            selector = ((sidecar["spec"].get("workloadSelector") or {}).get("labels")) or {}
            same_ns = sidecar["metadata"].get("namespace", "default") == namespace
            if not same_ns or not selector or not selector_matches(selector, labels):
                continue
            for ingress in sidecar["spec"].get("ingress") or ():
                fields["inbound_port"] = int(ingress["port"]["number"])
                app_host, app_port = _endpoint(ingress["defaultEndpoint"], spec["address"])
                fields.update(app_host=app_host, app_port=app_port)
            for egress in sidecar["spec"].get("egress") or ():
                fields["egress_address"] = egress["bind"]
                fields["egress_port"] = int(egress["port"]["number"])
        workloads.append(
            Workload(
                name=meta["name"],
                namespace=namespace,
                address=spec["address"],
                service=labels.get("app", meta["name"]),
                version=labels.get("version", "v1"),
                service_account=spec.get("serviceAccount", "default"),
                labels=tuple(sorted(labels.items())),
                **fields,
            )
        )
    return workloads


def service_workloads(workloads: list[Workload], service: str) -> list[Workload]:
    return [w for w in workloads if w.service == service]


def rewrite_block(text: str, block: str) -> str:
    """Move every 127.0.10.x address of the repository's YAML to ``<block>.x``."""
    if block == DEFAULT_BLOCK:
        return text
    return re.sub(r"\b127\.0\.10\.(\d{1,3})\b", lambda m: f"{block}.{m.group(1)}", text)


def validate_block(block: str) -> str:
    parts = block.split(".")
    if len(parts) != 3 or parts[0] != "127" or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise ValueError(
            f"address block {block!r}: want three octets in 127.0.0.0/8, e.g. 127.0.10"
        )
    return block


def write_atomically(path: Path, text: str) -> None:
    """Write beside the target under a name a YAML watcher ignores, then rename over it."""
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    tmp.replace(path)


def copy_config(source: Path, dest: Path, block: str) -> list[Path]:
    """Copy the YAML files of ``source`` into ``dest`` (atomically each), addresses moved."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source.glob("*.yaml")):
        target = dest / path.name
        write_atomically(target, rewrite_block(path.read_text(), block))
        written.append(target)
    return written


def reset_config_dir(dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
