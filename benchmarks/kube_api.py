"""The Kubernetes API TEST DOUBLE (``tests/kube_double/server.py``) in a process of its own, for
the ``controlplane-kube`` benchmark target: no kube-apiserver can run on these machines.

    python -m benchmarks.kube_api --documents FILE

``FILE`` is a JSON list of Kubernetes documents (Namespaces, Services, Pods, EndpointSlices,
VirtualServices, DestinationRules), loaded before anything connects; their history is then
compacted (a client lists first, then watches from the list's resourceVersion). The process
prints one JSON line ``{"ev": "listening", "port": N, "collections": [...]}`` and serves
until its stdin closes; it then prints ``{"ev": "stopped", "requests": {...}}``: per path,
how many lists, watches and writes it got, and which paths it answered 404.

Collections served are those the control plane needs and nothing more: the kinds its
Kubernetes source requires (``DEFAULT_KINDS`` not marked optional), the kinds of the loaded
documents, and what a replica writes in cluster mode (its Lease, the CA Secret, the root
ConfigMaps, the injector webhook's CA bundle). The optional Istio and Gateway API CRDs that
the mesh does not use answer 404, as on a cluster where they are not installed: the source
marks them missing and is ready without them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from controlplane.sources.kubernetes import DEFAULT_KINDS
from controlplane.sources.reflector import ApiResource
from tests.harness.kube import CONFIGMAPS, KINDS, LEASES, MUTATING_WEBHOOKS
from tests.kube_double.server import KubeApiDouble

# Cluster mode's writes (leader election, root ConfigMaps, the webhook's CA bundle).
WRITTEN_BY_REPLICAS = (LEASES, CONFIGMAPS, MUTATING_WEBHOOKS)
SYSTEM_NAMESPACES = ("istio-system", "default", "kube-system")


def _watched() -> dict[tuple[str, str], ApiResource]:
    """(kind, apiVersion) -> the collection the control plane lists and watches for it."""
    return {(c.kind, c.api_version): c for kind in DEFAULT_KINDS for c in kind.candidates}


def collection_of(document: dict[str, Any]) -> ApiResource:
    found = _watched().get((document["kind"], document["apiVersion"]))
    if found is None:
        raise ValueError(f"{document['kind']} {document['apiVersion']}: not a kind the "
                         "control plane watches")
    return found


def object_path(document: dict[str, Any], *, named: bool = True) -> str:
    """The URL path of ``document`` (``named``) or of its namespace's collection (a POST)."""
    collection = collection_of(document)
    prefix, plural = collection.path.rsplit("/", 1)
    meta = document["metadata"]
    namespace = meta.get("namespace")
    path = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else collection.path
    return f"{path}/{meta['name']}" if named else path


def served_collections(documents: Iterable[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Collection path -> (kind, apiVersion) for what the double must serve (see module doc)."""
    needed = [kind.candidates[0] for kind in DEFAULT_KINDS if not kind.optional]
    needed += [collection_of(d) for d in documents]
    served = {c.path: (c.kind, c.api_version) for c in needed}
    served.update({path: KINDS[path] for path in WRITTEN_BY_REPLICAS})
    return served


def namespaces(documents: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Namespace objects for every namespace the documents use, and the system ones."""
    names = {d["metadata"].get("namespace") for d in documents} | set(SYSTEM_NAMESPACES)
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            for name in sorted(n for n in names if n)]


def load(double: KubeApiDouble, documents: list[dict[str, Any]]) -> None:
    for path, (kind, api_version) in served_collections(documents).items():
        double.serve(path, kind, api_version)
    for document in namespaces(documents) + documents:
        double.upsert(collection_of(document).path, document)
    double.compact()  # nothing watches yet: no history to replay, every watch scans less


def request_summary(double: KubeApiDouble) -> dict[str, Any]:
    """Per path: lists, watches and writes; and the paths answered 404 (not served)."""
    counts: dict[str, Counter[str]] = {}
    not_found = set()
    for request in list(double.requests):
        verb = request.query.get("method") or ("watch" if request.watch else "list")
        counts.setdefault(request.path, Counter())[verb] += 1
        if verb in ("list", "watch") and not double.serves(request.path):
            not_found.add(request.path)
    return {"paths": {path: dict(c) for path, c in sorted(counts.items())},
            "not_found": sorted(not_found)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kube_api",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=Path, required=True, help="JSON list of documents")
    args = parser.parse_args(argv)
    documents = json.loads(args.documents.read_text())
    double = KubeApiDouble()
    load(double, documents)
    double.start()
    try:
        print(json.dumps({"ev": "listening", "port": int(double.url.rsplit(":", 1)[1]),
                          "collections": sorted(served_collections(documents))}), flush=True)
        sys.stdin.read()  # until the benchmark closes it
    finally:
        double.stop()
    print(json.dumps({"ev": "stopped", "requests": request_summary(double)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
