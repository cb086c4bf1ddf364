"""An outage of the Kubernetes API (test double): take it away, change things meanwhile,
forget the history (so the clients' resourceVersion expires: 410 Gone), bring it back; and
compare what a store holds with what the API serves, object for object.

The outage lasts ``KUBE_OUTAGE_SECONDS`` (default 3, so the suite stays short; the issue's
figure is for 60: ``KUBE_OUTAGE_SECONDS=60 pytest tests/kube_double/test_api_outage.py
tests/faults/test_kubernetes_outage.py -s``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping

from controlplane.model.base import Origin, Resource, ResourceKey
from controlplane.sources.parsing import parse_document
from controlplane.sources.yaml_loader import Document
from controlplane.store import Store
from tests.kube_double.server import KubeApiDouble

OUTAGE_SECONDS = float(os.environ.get("KUBE_OUTAGE_SECONDS", "3"))


def outage(
    kube: KubeApiDouble, mode: str, changes: Callable[[], None], seconds: float = OUTAGE_SECONDS
) -> float:
    """The API goes away ("refuse" or "hang") for ``seconds``; ``changes`` are made meanwhile;
    its history is compacted before it comes back. Returns when it came back (monotonic)."""
    kube.go_away(mode)
    started = time.monotonic()
    changes()
    time.sleep(max(0.0, seconds - (time.monotonic() - started)))
    kube.compact()
    kube.come_back()
    return time.monotonic()


def served(kube: KubeApiDouble, paths: Mapping[str, str]) -> dict[ResourceKey, Resource]:
    """What the API serves on ``paths`` (path -> kind), parsed as the Kubernetes source
    parses it."""
    out: dict[ResourceKey, Resource] = {}
    for path, kind in paths.items():
        for obj in kube.objects(path):
            obj["kind"] = kind
            parsed = parse_document(Document(obj, Origin()), "default")
            assert parsed.resource is not None, parsed.diagnostics
            out[parsed.resource.key] = parsed.resource
    return out


def held(store: Store, kinds: Iterable[str]) -> dict[ResourceKey, Resource]:
    wanted = set(kinds)
    snapshot = store.snapshot
    return {key: snapshot[key] for key in snapshot if key.kind in wanted}


def differences(store: Store, kube: KubeApiDouble, paths: Mapping[str, str]) -> list[str]:
    """Empty when the store holds exactly what the API serves (resourceVersion aside: the model
    does not compare it)."""
    want, have = served(kube, paths), held(store, paths.values())
    out = [f"missing {k}" for k in sorted(want.keys() - have.keys())]
    out += [f"not deleted {k}" for k in sorted(have.keys() - want.keys())]
    out += [
        f"stale {k} (resourceVersion {have[k].meta.resource_version}, "
        f"API has {want[k].meta.resource_version})"
        for k in sorted(want.keys() & have.keys())
        if want[k] != have[k]
    ]
    return out
