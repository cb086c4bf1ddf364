"""Istio's own samples (Bookinfo, httpbin, helloworld), a sidecar per workload: Envoy accepts all.

Deployments give each workload its labels and service account; the test makes a Pod and
an EndpointSlice entry per Deployment so that subsets have endpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.translate import MeshConfig, Proxy, push_context, translate
from controlplane.translate.walk import Request, walk
from tests.translate.support import load_documents, snapshot_of, validate_many


def _workloads(texts: list[str]) -> list[dict[str, Any]]:
    out = []
    for text in texts:
        for doc in yaml.safe_load_all(text):
            if doc and doc.get("kind") == "Deployment":
                tmpl = doc["spec"]["template"]
                out.append({
                    "name": doc["metadata"]["name"],
                    "labels": tmpl["metadata"].get("labels", {}),
                    "sa": tmpl["spec"].get("serviceAccountName", "default"),
                    "ports": [p["containerPort"] for c in tmpl["spec"]["containers"] for p in c.get("ports", [])],
                })
    return out


def _synthetic(workloads: list[dict[str, Any]], services: list[Any]) -> tuple[list[dict], dict[str, str]]:
    """A Pod per Deployment and EndpointSlices joining them to the Services that select them."""
    docs, ips = [], {}
    for i, w in enumerate(workloads):
        ip = f"10.2.{i // 200}.{i % 200 + 1}"
        ips[w["name"]] = ip
        docs.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": w["name"], "namespace": "default", "labels": w["labels"]},
                     "spec": {"serviceAccountName": w["sa"]}, "status": {"podIP": ip}})
    for s in services:
        sel = dict(s.spec.selector)
        members = [w for w in workloads if sel and all(w["labels"].get(k) == v for k, v in sel.items())]
        if not members:
            continue
        docs.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{s.meta.name}-x", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": s.meta.name}},
            "addressType": "IPv4",
            "ports": [{"name": p.name, "port": p.target_port if isinstance(p.target_port, int) else p.port}
                      for p in s.spec.ports],
            "endpoints": [{"addresses": [ips[w["name"]]], "targetRef": {"kind": "Pod", "name": w["name"]}}
                          for w in members],
        })
    return docs, ips


SAMPLES = {
    "bookinfo": ["bookinfo/platform/kube/bookinfo.yaml", "bookinfo/networking/*.yaml"],
    "httpbin": ["httpbin/*.yaml", "sleep/sleep.yaml"],
    "helloworld": ["helloworld/*.yaml", "curl/curl.yaml"],
}


def _texts(root: Path, patterns: list[str]) -> list[str]:
    return [p.read_text() for pat in patterns for p in sorted(root.glob(pat))]


def _build(conformance_dir: Path, sample: str, networking_file: str | None = None):
    root = conformance_dir / "samples"
    texts = _texts(root, SAMPLES[sample])
    if networking_file is not None:  # bookinfo: the platform plus one networking file at a time
        texts = _texts(root, ["bookinfo/platform/kube/bookinfo.yaml"]) + [(root / networking_file).read_text()]
        texts += _texts(root, ["bookinfo/networking/destination-rule-all.yaml"])  # the subsets
    resources = [r for t in texts for r in load_documents(t)]
    workloads = _workloads(texts)
    services = [r for r in resources if r.KIND == "Service"]
    extra, ips = _synthetic(workloads, services)
    resources += [r for d in extra for r in load_documents(yaml.safe_dump(d))]
    seen: dict[Any, Any] = {}
    for r in resources:  # several files define the same VirtualService names
        seen.setdefault(r.key, r)
    ctx = push_context(snapshot_of(list(seen.values())), MeshConfig())
    outs = {}
    for w in workloads:
        proxy = Proxy.make("sidecar", "default", labels=w["labels"], ips=[ips[w["name"]]],
                           service_account=w["sa"], workload_name=w["name"])
        outs[w["name"]] = translate(ctx, proxy)
    return outs


def _bookinfo_files(conformance_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(conformance_dir / "samples"))
                  for p in (conformance_dir / "samples/bookinfo/networking").glob("*.yaml"))


@pytest.mark.envoy
def test_every_sample_workload_config_is_accepted_by_envoy(conformance_dir: Path) -> None:
    outputs = {}
    for sample in ("httpbin", "helloworld"):
        for workload, out in _build(conformance_dir, sample).items():
            outputs[f"{sample}/{workload}"] = out
    for f in _bookinfo_files(conformance_dir):
        for workload, out in _build(conformance_dir, "bookinfo", f).items():
            if workload in ("productpage-v1", "reviews-v2"):  # callers of every Bookinfo service
                outputs[f"{f}/{workload}"] = out
    assert len(outputs) > 40
    failures = validate_many(outputs)
    assert not failures, "Envoy rejected: " + "\n".join(f"[{k}] {v[:400]}" for k, v in sorted(failures.items()))


def test_bookinfo_jason_sample_routes_to_v2(conformance_dir: Path) -> None:
    outs = _build(conformance_dir, "bookinfo", "bookinfo/networking/virtual-service-reviews-test-v2.yaml")
    out = outs["productpage-v1"]
    jason = walk(out, Request(9080, "reviews:9080", headers={"end-user": "jason"}))
    assert jason.cluster == "outbound|9080|v2|reviews.default.svc.cluster.local"
    other = walk(out, Request(9080, "reviews:9080"))
    assert other.cluster == "outbound|9080|v1|reviews.default.svc.cluster.local"


def test_bookinfo_80_20_sample_split(conformance_dir: Path) -> None:
    out = _build(conformance_dir, "bookinfo", "bookinfo/networking/virtual-service-reviews-80-20.yaml")["productpage-v1"]
    assert walk(out, Request(9080, "reviews")).weighted_clusters == {
        "outbound|9080|v1|reviews.default.svc.cluster.local": 80,
        "outbound|9080|v2|reviews.default.svc.cluster.local": 20,
    }
