"""Shared test helpers: YAML -> store Snapshot, proxy.yaml -> Proxy, output -> YAML,
and an Envoy validation of generated resources as a static bootstrap."""

from __future__ import annotations

import concurrent.futures
import copy
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml
from google.protobuf.json_format import MessageToDict

from controlplane.model.parse import UnsupportedKind, parse
from controlplane.store import Snapshot
from controlplane.translate import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    EXTENSION_CONFIG_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    Locality,
    MeshConfig,
    Proxy,
    push_context,
    translate,
)

REPO = Path(__file__).resolve().parents[2]
ENVOY = REPO / ".venv" / "bin" / "envoy"
OUTPUT_FILES = {
    CLUSTER_TYPE: "clusters.yaml",
    ENDPOINT_TYPE: "endpoints.yaml",
    LISTENER_TYPE: "listeners.yaml",
    ROUTE_TYPE: "routes.yaml",
}
# Written only for the cases whose output has the type (filter configs served over ECDS).
OPTIONAL_OUTPUT_FILES = {
    EXTENSION_CONFIG_TYPE: "extension_configs.yaml",
}


def load_documents(text: str, default_namespace: str = "default") -> list[Any]:
    out = []
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        if doc.get("kind") == "List":
            out.extend(load_documents(yaml.safe_dump_all(doc.get("items", []))))
            continue
        meta = doc.setdefault("metadata", {})
        if doc.get("kind") != "Namespace":
            meta.setdefault("namespace", default_namespace)
        try:
            out.append(parse(doc))
        except UnsupportedKind:
            continue
    return out


def snapshot_of(resources: list[Any]) -> Snapshot:
    by_kind: dict[str, dict[Any, Any]] = {}
    for r in resources:
        by_kind.setdefault(r.KIND, {})[r.key] = r
    return Snapshot(by_kind, version=1)


def proxy_from(spec: dict[str, Any]) -> Proxy:
    loc = spec.get("locality") or {}
    return Proxy.make(
        spec.get("kind", "sidecar"),
        spec.get("namespace", "default"),
        labels=spec.get("labels") or {},
        ips=spec.get("ips") or ["10.0.0.100"],
        service_account=spec.get("serviceAccount", "default"),
        workload_name=spec.get("workloadName", ""),
        interception_mode=spec.get("interceptionMode", "REDIRECT"),
        locality=Locality(loc.get("region", ""), loc.get("zone", ""), loc.get("subzone", "")),
    )


def mesh_from(spec: dict[str, Any]) -> MeshConfig:
    m = spec.get("mesh") or {}
    kwargs: dict[str, Any] = {}
    if "outboundTrafficPolicy" in m:
        kwargs["outbound_traffic_policy"] = m["outboundTrafficPolicy"]
    if "meshConfig" in spec:  # Istio's MeshConfig document, as `controlplane serve --mesh-config`
        from controlplane.model.mesh import apply_mesh_config, parse_document

        return apply_mesh_config(MeshConfig(**kwargs), parse_document(spec["meshConfig"]))
    return MeshConfig(**kwargs)


def to_dicts(messages: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(json.dumps(MessageToDict(m))) for m in messages]


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=True, default_flow_style=False, width=120)


# --- Envoy validation ------------------------------------------------------------------------


def inline_extension_configs(node: Any, configs: dict[str, dict[str, Any]]) -> None:
    """Replace every filter that takes its config over ECDS (``configDiscovery``) by the same
    filter with the config inline, as Envoy will run it. The named config must exist and be of
    a type the filter accepts."""
    if isinstance(node, dict):
        source = node.get("configDiscovery")
        if source is not None and "name" in node:
            name = node["name"]
            assert name in configs, f"filter {name!r} names an extension config nobody serves"
            typed = copy.deepcopy(configs[name]["typedConfig"])
            assert typed["@type"] in source.get("typeUrls", []), f"{name}: {typed['@type']} not allowed"
            node.pop("configDiscovery")
            node["typedConfig"] = typed
        for v in node.values():
            inline_extension_configs(v, configs)
    elif isinstance(node, list):
        for v in node:
            inline_extension_configs(v, configs)


def static_bootstrap(output: dict[str, list[Any]]) -> dict[str, Any]:
    """Generated resources as static resources: RDS inlined into listeners, ECDS configs
    inlined into their filters, EDS clusters made STATIC with their assignment, so
    `envoy --mode validate` checks all of it."""
    clusters = to_dicts(output[CLUSTER_TYPE])
    cla = {c["clusterName"]: c for c in to_dicts(output[ENDPOINT_TYPE])}
    routes = {r["name"]: r for r in to_dicts(output[ROUTE_TYPE])}
    for c in clusters:
        if c.get("type") == "EDS":
            c["type"] = "STATIC"
            c.pop("edsClusterConfig", None)
            c["loadAssignment"] = cla.get(c["name"], {"clusterName": c["name"]})
    listeners = to_dicts(output[LISTENER_TYPE])
    inline_extension_configs(listeners, {e["name"]: e for e in to_dicts(output.get(EXTENSION_CONFIG_TYPE, []))})

    def inline(filters: list[dict[str, Any]]) -> None:
        for f in filters:
            tc = f.get("typedConfig", {})
            if "rds" in tc:
                name = tc.pop("rds")["routeConfigName"]
                tc["routeConfig"] = copy.deepcopy(routes[name])

    for lst in listeners:
        for fc in lst.get("filterChains", []):
            inline(fc.get("filters", []))
        if "defaultFilterChain" in lst:
            inline(lst["defaultFilterChain"].get("filters", []))
    xds_cluster = {
        "name": "xds-grpc",
        "type": "STATIC",
        "connectTimeout": "1s",
        "typedExtensionProtocolOptions": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicitHttpConfig": {"http2ProtocolOptions": {}},
            }
        },
        "loadAssignment": {"clusterName": "xds-grpc", "endpoints": [{"lbEndpoints": [
            {"endpoint": {"address": {"socketAddress": {"address": "127.0.0.1", "portValue": 15010}}}}]}]},
    }
    return {
        "node": {"id": "sidecar~10.0.0.1~validate.default~default.svc.cluster.local", "cluster": "validate"},
        "static_resources": {"clusters": clusters + [xds_cluster], "listeners": listeners},
        "dynamic_resources": {"ads_config": {
            "api_type": "GRPC", "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]}},
    }


def envoy_validate(bootstrap: dict[str, Any]) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bootstrap.json"  # JSON: YAML would turn a value like y into true
        path.write_text(json.dumps(bootstrap))
        proc = subprocess.run(
            [str(ENVOY), "--mode", "validate", "-c", str(path), "--log-level", "error",
             "--disable-hot-restart"],
            check=False, capture_output=True, text=True, timeout=120,
        )
        text = proc.stdout + proc.stderr
        return proc.returncode == 0, text[:600] + (" ... " if len(text) > 600 else "")


_CLUSTER_REF_KEYS = {"name", "cluster", "clusterName", "serviceName", "collectorCluster"}


def _rename(node: Any, clusters: dict[str, str]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, str) and k in _CLUSTER_REF_KEYS and v in clusters:
                node[k] = clusters[v]
            else:
                _rename(v, clusters)
    elif isinstance(node, list):
        for v in node:
            _rename(v, clusters)


def merged_bootstrap(outputs: dict[str, dict[str, list[Any]]]) -> dict[str, Any]:
    """Many cases in one bootstrap: cluster and listener names prefixed with the case index,
    listener addresses moved to a per-case loopback range (Envoy refuses duplicates)."""
    merged: dict[str, Any] | None = None
    secrets: dict[str, Any] = {}
    for index, (name, out) in enumerate(sorted(outputs.items()), start=1):
        boot = localized_bootstrap(out)
        res = boot["static_resources"]
        prefix = f"c{index}~"
        renames = {c["name"]: prefix + c["name"] for c in res["clusters"] if c["name"] != "xds-grpc"}
        res["clusters"] = [c for c in res["clusters"] if c["name"] != "xds-grpc" or merged is None]
        _rename(res["clusters"], renames)
        addresses: dict[str, str] = {}
        for lst in res["listeners"]:
            _rename(lst, renames)
            lst["name"] = prefix + lst["name"]
            sa = lst["address"]["socketAddress"]
            sa["address"] = addresses.setdefault(
                sa["address"], f"127.{index // 250 + 1}.{index % 250}.{len(addresses) + 1}"
            )
        for sec in res.pop("secrets", []):
            secrets[sec["name"]] = sec
        if merged is None:
            merged = boot
            merged["static_resources"]["secrets"] = []
        else:
            merged["static_resources"]["clusters"] += res["clusters"]
            merged["static_resources"]["listeners"] += res["listeners"]
    assert merged is not None
    merged["static_resources"]["secrets"] = [secrets[k] for k in sorted(secrets)]
    return merged


def validate_many(outputs: dict[str, dict[str, list[Any]]]) -> dict[str, str]:
    """One Envoy validation of every output merged; if Envoy rejects it, validate each
    output alone (2 at a time) so that failures name their case."""
    ok, _ = envoy_validate(merged_bootstrap(outputs))
    if ok:
        return {}
    failures: dict[str, str] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {pool.submit(envoy_validate, localized_bootstrap(out)): name for name, out in outputs.items()}
        for fut in concurrent.futures.as_completed(futures):
            ok, log = fut.result()
            if not ok:
                failures[futures[fut]] = log
    return failures or {"<merged>": "the merged bootstrap was rejected but every case alone passed"}


# --- certificates for validation ---------------------------------------------------------------

_CERT_DIR: Path | None = None


def test_cert_dir() -> Path:
    """A self-signed CA and a leaf (ca.pem, cert.pem, key.pem) that golden cases reference
    as /etc/certs/*; made once per test session."""
    global _CERT_DIR
    if _CERT_DIR is not None:
        return _CERT_DIR
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.datetime(2025, 1, 1)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    d = Path(tempfile.mkdtemp(prefix="cp-test-certs-"))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (d / "ca.pem").write_bytes(pem)
    (d / "cert.pem").write_bytes(pem)
    (d / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    _CERT_DIR = d
    return d


def _localize(node: Any, certs: Path, secrets: set[str]) -> Any:
    """Point /etc/certs files at real ones; turn ADS-sourced SDS into static secrets
    (validate mode cannot use SDS over ADS)."""
    if isinstance(node, dict):
        if "sdsConfig" in node and "name" in node:
            secrets.add(node["name"])
            node.pop("sdsConfig")
        for k, v in list(node.items()):
            if k == "filename" and isinstance(v, str) and v.startswith("/etc/certs/"):
                node[k] = str(certs / v.removeprefix("/etc/certs/"))
            else:
                _localize(v, certs, secrets)
    elif isinstance(node, list):
        for v in node:
            _localize(v, certs, secrets)
    return node


def localized_bootstrap(output: dict[str, list[Any]]) -> dict[str, Any]:
    certs = test_cert_dir()
    boot = static_bootstrap(output)
    names: set[str] = set()
    _localize(boot["static_resources"], certs, names)
    secrets = []
    for n in sorted(names):
        if n == "ROOTCA" or n.endswith("-cacert"):
            secrets.append({"name": n, "validation_context": {"trusted_ca": {"filename": str(certs / "ca.pem")}}})
        else:
            secrets.append({"name": n, "tls_certificate": {
                "certificate_chain": {"filename": str(certs / "cert.pem")},
                "private_key": {"filename": str(certs / "key.pem")}}})
    boot["static_resources"]["secrets"] = secrets
    return boot


# The golden cases: tests/golden/<case>/{input,proxy}.yaml (see test_golden.py).
GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "input.yaml").is_file())


def run_case(name: str) -> dict:
    case = GOLDEN / name
    spec = yaml.safe_load((case / "proxy.yaml").read_text()) or {}
    mesh = mesh_from(spec)
    ctx = push_context(snapshot_of(load_documents((case / "input.yaml").read_text())), mesh)
    return translate(ctx, proxy_from(spec))


# --- documents of a small Kubernetes mesh (one namespace, port 9080) ---------------------------


def service(name: str, **spec) -> dict:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 9080}], **spec},
    }


def pod(name: str, app: str, ip: str, version: str = "v1", sa: str = "default") -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default",
                     "labels": {"app": app, "version": version,
                                "topology.kubernetes.io/zone": f"zone-{version}"}},
        "spec": {"serviceAccountName": sa},
        "status": {"podIP": ip, "phase": "Running"},
    }


def endpoint_slice(svc: str, *members: tuple[str | None, str]) -> dict:
    """Members are (pod name or None for no targetRef, address)."""
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{svc}-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 9080}],
        "endpoints": [
            {"addresses": [ip], **({"targetRef": {"kind": "Pod", "name": name, "namespace": "default"}}
                                   if name else {})}
            for name, ip in members
        ],
    }
