"""Builders of the Kubernetes/Istio documents the golden case scripts share (Bookinfo and
friends): plain dicts, as users write them in YAML."""

def svc(name, ip, ports, ns="default", selector=None, annotations=None):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, **({"annotations": annotations} if annotations else {})},
            "spec": {"clusterIP": ip, "selector": selector or {"app": name}, "ports": ports}}

def pod(name, ns, labels, ip, sa="default"):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"serviceAccountName": sa}, "status": {"podIP": ip}}

def slice_(svcname, ns, port_name, port, eps):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{svcname}-abc", "namespace": ns, "labels": {"kubernetes.io/service-name": svcname}},
            "addressType": "IPv4", "ports": [{"name": port_name, "port": port}],
            "endpoints": [{"addresses": [ip], "targetRef": {"kind": "Pod", "name": pn, "namespace": ns},
                           **({"zone": z} if z else {})} for pn, ip, z in eps]}

def bookinfo(ns="default"):
    docs = []
    ip = {"productpage": "10.96.0.10", "details": "10.96.0.11", "reviews": "10.96.0.12", "ratings": "10.96.0.13"}
    n = 1
    for name in ["productpage", "details", "reviews", "ratings"]:
        docs.append(svc(name, ip[name], [{"name": "http", "port": 9080}], ns))
        versions = ["v1", "v2", "v3"] if name == "reviews" else ["v1"]
        eps = []
        for v in versions:
            pip = f"10.1.0.{n}"; n += 1
            pn = f"{name}-{v}"
            docs.append(pod(pn, ns, {"app": name, "version": v}, pip, f"bookinfo-{name}"))
            eps.append((pn, pip, None))
        docs.append(slice_(name, ns, "http", 9080, eps))
    return docs

def dr(host, subsets=(("v1", "v1"), ("v2", "v2"), ("v3", "v3")), policy=None, name=None, ns="default", extra=None):
    spec = {"host": host, "subsets": [{"name": s, "labels": {"version": v}} for s, v in subsets]}
    if policy: spec["trafficPolicy"] = policy
    if extra: spec.update(extra)
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": name or host.split(".")[0], "namespace": ns}, "spec": spec}

def vs(name, spec, ns="default"):
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}

def kind(k, name, spec, ns="default", api="networking.istio.io/v1"):
    return {"apiVersion": api, "kind": k, "metadata": {"name": name, "namespace": ns}, "spec": spec}

PP = {"namespace": "default", "labels": {"app": "productpage", "version": "v1"},
      "serviceAccount": "bookinfo-productpage", "ips": ["10.1.0.1"]}
R = lambda subset, host="reviews": {"destination": {"host": host, "subset": subset}}


def write_cases(cases):
    """Write each case's ``input.yaml`` and ``proxy.yaml`` under this folder; the golden
    test (``pytest --update-golden``) then writes the expected outputs beside them."""
    import os

    import yaml

    here = os.path.dirname(os.path.abspath(__file__))
    for name, (docs, proxy) in cases.items():
        d = os.path.join(here, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "input.yaml"), "w") as f:
            yaml.safe_dump_all(docs, f, sort_keys=False)
        with open(os.path.join(d, "proxy.yaml"), "w") as f:
            yaml.safe_dump(proxy, f, sort_keys=False)
    return len(cases)
