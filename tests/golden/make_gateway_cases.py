"""Writes the input.yaml/proxy.yaml of the gateway golden cases (router proxies):

    .venv/bin/python tests/golden/make_gateway_cases.py && .venv/bin/pytest tests/translate -k gateway --update-golden
"""

import os
from pathlib import Path

import yaml

G = os.path.dirname(os.path.abspath(__file__))
CORPUS = Path(G).parents[2] / "shared" / "conformance" / "istio" / "samples" / "bookinfo" / "networking"

from builders import bookinfo, dr, kind, svc, vs, write_cases

INGRESS = {"kind": "router", "namespace": "istio-system", "labels": {"istio": "ingressgateway"},
           "serviceAccount": "istio-ingressgateway", "ips": ["10.1.9.1"]}
EGRESS = {"kind": "router", "namespace": "istio-system", "labels": {"istio": "egressgateway"},
          "serviceAccount": "istio-egressgateway", "ips": ["10.1.9.2"]}


def gw(name, servers, selector=None, ns="default"):
    return kind("Gateway", name, {"selector": selector or {"istio": "ingressgateway"}, "servers": servers}, ns)


def server(number, protocol, hosts, name=None, tls=None):
    out = {"port": {"number": number, "name": name or f"{protocol.lower()}-{number}", "protocol": protocol}, "hosts": hosts}
    if tls:
        out["tls"] = tls
    return out


def to(host, port=9080, subset=None):
    d = {"host": host, "port": {"number": port}}
    if subset:
        d["subset"] = subset
    return {"destination": d}


cases = {}
corpus = [d for d in yaml.safe_load_all((CORPUS / "bookinfo-gateway.yaml").read_text()) if d]
for d in corpus:
    d["metadata"].setdefault("namespace", "default")
cases["gateway_http"] = (bookinfo() + corpus + [
    vs("reviews-mesh-only", {"hosts": ["reviews"], "http": [{"route": [to("reviews", subset="v1")]}]}),
    dr("reviews"),
], INGRESS)

cases["gateway_https_credential"] = (bookinfo() + [
    gw("web", [
        server(80, "HTTP", ["bookinfo.example.com"], tls={"httpsRedirect": True}),
        server(443, "HTTPS", ["bookinfo.example.com"], name="https-bookinfo",
               tls={"mode": "SIMPLE", "credentialName": "bookinfo-cert", "minProtocolVersion": "TLSV1_2",
                    "cipherSuites": ["ECDHE-ECDSA-AES128-GCM-SHA256"]}),
        server(443, "HTTPS", ["mtls.example.com"], name="https-mtls",
               tls={"mode": "MUTUAL", "credentialName": "mtls-cert", "subjectAltNames": ["client.example.com"]}),
        server(443, "HTTPS", ["optional.example.com"], name="https-optional",
               tls={"mode": "OPTIONAL_MUTUAL", "credentialName": "optional-cert"}),
        server(8443, "HTTPS", ["files.example.com"], name="https-files",
               tls={"mode": "SIMPLE", "serverCertificate": "/etc/certs/cert.pem", "privateKey": "/etc/certs/key.pem"}),
        server(15443, "HTTPS", ["*.mesh.example.com"], name="https-istio", tls={"mode": "ISTIO_MUTUAL"}),
    ]),
    vs("bookinfo", {"hosts": ["bookinfo.example.com", "mtls.example.com", "optional.example.com", "files.example.com",
                              "*.mesh.example.com"],
                    "gateways": ["web"], "http": [
        {"match": [{"uri": {"prefix": "/reviews"}, "gateways": ["default/web"]}], "route": [to("reviews")]},
        {"match": [{"uri": {"prefix": "/mesh-only"}, "gateways": ["mesh"]}], "route": [to("ratings")]},
        {"route": [to("productpage")]}]}),
], INGRESS)

cases["gateway_tls_passthrough"] = (bookinfo() + [
    svc("secure", "10.96.0.40", [{"name": "tls", "port": 8443}]),
    gw("tls", [
        server(443, "TLS", ["secure.example.com", "other.example.com"], tls={"mode": "PASSTHROUGH"}),
        server(15443, "TLS", ["*.local"], name="tls-auto", tls={"mode": "AUTO_PASSTHROUGH"}),
    ]),
    vs("secure", {"hosts": ["secure.example.com"], "gateways": ["tls"], "tls": [
        {"match": [{"sniHosts": ["secure.example.com"]}], "route": [to("secure", 8443)]}]}),
    dr("reviews"),
], INGRESS)

cases["gateway_tcp"] = (bookinfo() + [
    svc("mongo", "10.96.0.50", [{"name": "tcp-mongo", "port": 27017}]),
    gw("tcp", [server(31400, "TCP", ["*"]),
               server(31443, "TLS", ["mongo.example.com"], name="tls-mongo",
                      tls={"mode": "SIMPLE", "credentialName": "mongo-cert"})]),
    vs("mongo", {"hosts": ["*"], "gateways": ["tcp"], "tcp": [
        {"match": [{"port": 31400}], "route": [to("mongo", 27017)]},
        {"match": [{"port": 31443}], "route": [to("mongo", 27017)]}]}),
], INGRESS)

# Two Gateways claim port 443 and one host: the first by namespace/name wins; a TCP server
# on an HTTP port is dropped; HTTP servers of both merge into http.80; a Gateway for other
# routers and a VirtualService exported elsewhere are not seen.
cases["gateway_conflicts"] = (bookinfo() + [
    gw("a-first", [server(443, "HTTPS", ["shop.example.com"], name="https-shop",
                          tls={"mode": "SIMPLE", "credentialName": "shop-a"}),
                   server(80, "HTTP", ["a.example.com"])]),
    gw("b-second", [server(443, "HTTPS", ["shop.example.com"], name="https-shop",
                           tls={"mode": "SIMPLE", "credentialName": "shop-b"}),
                    server(80, "HTTP", ["./b.example.com"]),
                    server(80, "TCP", ["*"], name="tcp-80")]),
    gw("elsewhere", [server(80, "HTTP", ["*"])], selector={"istio": "egressgateway"}),
    vs("a", {"hosts": ["a.example.com", "shop.example.com"], "gateways": ["a-first", "b-second"],
             "http": [{"route": [to("productpage")]}]}),
    vs("b", {"hosts": ["b.example.com"], "gateways": ["b-second"], "http": [{"route": [to("details")]}]}),
    vs("hidden", {"hosts": ["a.example.com"], "gateways": ["a-first"], "exportTo": ["."],
                  "http": [{"route": [to("ratings")]}]}),
    vs("other-ns", {"hosts": ["b.example.com"], "gateways": ["default/b-second"],
                    "http": [{"route": [to("ratings.default.svc.cluster.local")]}]}, ns="team"),
], INGRESS)

# Istio's egress gateway pattern: a ServiceEntry for an external host, the egress Gateway,
# a VirtualService for the mesh and the gateway, TLS origination at the gateway.
EXTERNAL = "edition.example.com"
cases["gateway_egress_tls_origination"] = ([
    svc("istio-egressgateway", "10.96.0.60", [{"name": "http", "port": 80}], ns="istio-system",
        selector={"istio": "egressgateway"}),
    kind("ServiceEntry", "external", {"hosts": [EXTERNAL], "location": "MESH_EXTERNAL", "resolution": "DNS",
                                       "ports": [{"number": 80, "name": "http", "protocol": "HTTP"},
                                                 {"number": 443, "name": "https", "protocol": "HTTPS"}]}),
    gw("egress", [server(80, "HTTP", [EXTERNAL])], selector={"istio": "egressgateway"}, ns="istio-system"),
    vs("external-through-egress", {"hosts": [EXTERNAL], "gateways": ["istio-system/egress", "mesh"], "http": [
        {"match": [{"gateways": ["mesh"], "port": 80}],
         "route": [to("istio-egressgateway.istio-system.svc.cluster.local", 80)]},
        {"match": [{"gateways": ["istio-system/egress"], "port": 80}], "route": [to(EXTERNAL, 443)]}]}),
    dr("external-tls", subsets=(), name="external-tls", extra={"host": EXTERNAL, "trafficPolicy": {
        "portLevelSettings": [{"port": {"number": 443}, "tls": {"mode": "SIMPLE", "sni": EXTERNAL}}]}}),
], EGRESS)

write_cases(cases)
