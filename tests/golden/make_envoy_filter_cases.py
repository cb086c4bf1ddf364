"""Writes the input.yaml/proxy.yaml of the envoy_filter_* golden cases (EnvoyFilter patches).

    .venv/bin/python tests/golden/make_envoy_filter_cases.py && .venv/bin/pytest tests/translate --update-golden
"""

import os

import yaml

G = os.path.dirname(os.path.abspath(__file__))
CONFORMANCE = "/work/shared/conformance/istio/samples-more/ratelimit/local-rate-limit-service.yaml"

from builders import PP, bookinfo, kind, pod, slice_, svc, write_cases


def ef(name, patches, ns="default", selector=None, priority=None):
    spec = {"configPatches": patches}
    if selector:
        spec["workloadSelector"] = {"labels": selector}
    if priority is not None:
        spec["priority"] = priority
    return kind("EnvoyFilter", name, spec, ns, api="networking.istio.io/v1alpha3")


def lua(code_header, value):
    return {"name": "envoy.filters.http.lua", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
        "inline_code": f'function envoy_on_response(h) h:headers():add("{code_header}", "{value}") end'}}


HCM_MATCH = {"filterChain": {"filter": {"name": "envoy.filters.network.http_connection_manager"}}}
ROUTER_MATCH = {"filterChain": {"filter": {"name": "envoy.filters.network.http_connection_manager",
                                           "subFilter": {"name": "envoy.filters.http.router"}}}}

RATE_LIMIT_CLUSTER = {
    "name": "rate_limit_cluster", "type": "STRICT_DNS", "connect_timeout": "10s", "lb_policy": "ROUND_ROBIN",
    "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}}}},
    "load_assignment": {"cluster_name": "rate_limit_cluster", "endpoints": [{"lb_endpoints": [{"endpoint": {
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 8081}}}}]}]},
}

cases = {}


def case(name, docs, proxy=None):
    cases[name] = (docs, proxy or PP)


def productpage_8000():
    return [svc("productpage", "10.96.0.10", [{"name": "http", "port": 8000}]),
            pod("productpage-v1", "default", {"app": "productpage", "version": "v1"}, "10.1.0.1",
                "bookinfo-productpage"),
            slice_("productpage", "default", "http", 8000, [("productpage-v1", "10.1.0.1", None)])]


# Istio's own sample, unchanged (istio-system is the root namespace).
with open(CONFORMANCE) as f:
    case("envoy_filter_local_ratelimit_sample", productpage_8000() + list(yaml.safe_load_all(f)))

# NETWORK_FILTER MERGE on the HTTP connection manager of the outbound 9080 listener.
case("envoy_filter_merge_hcm", bookinfo() + [ef("hcm-tuning", [{
    "applyTo": "NETWORK_FILTER",
    "match": {"context": "SIDECAR_OUTBOUND", "listener": {"portNumber": 9080, **HCM_MATCH}},
    "patch": {"operation": "MERGE", "value": {"typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "common_http_protocol_options": {"idle_timeout": "30s"},
        "stream_idle_timeout": "120s", "server_name": "mesh"}}},
}], selector={"app": "productpage"})])

# HTTP_FILTER INSERT_BEFORE the router: a Lua filter on inbound chains; a root-namespace filter
# and a namespace one, ordered by priority (the lower first).
case("envoy_filter_insert_before_router", bookinfo() + [
    ef("lua-late", [{"applyTo": "HTTP_FILTER", "match": {"context": "SIDECAR_INBOUND", "listener": ROUTER_MATCH},
                     "patch": {"operation": "INSERT_BEFORE", "value": lua("x-late", "1")}}], priority=10),
    ef("lua-early", [{"applyTo": "HTTP_FILTER", "match": {"context": "SIDECAR_INBOUND", "listener": ROUTER_MATCH},
                      "patch": {"operation": "INSERT_BEFORE", "value": lua("x-early", "1")}}],
       ns="istio-system", priority=-5),
])

# CLUSTER MERGE on the reviews clusters (every subset), and a cluster ADDed.
case("envoy_filter_cluster_merge", bookinfo() + [ef("cluster-tuning", [
    {"applyTo": "CLUSTER", "match": {"context": "SIDECAR_OUTBOUND",
                                     "cluster": {"service": "reviews.default.svc.cluster.local", "portNumber": 9080}},
     "patch": {"operation": "MERGE", "value": {"connect_timeout": "2.5s", "per_connection_buffer_limit_bytes": 32768,
                                               "circuit_breakers": {"thresholds": [{"max_connections": 7}]}}}},
    {"applyTo": "CLUSTER", "match": {"context": "SIDECAR_OUTBOUND"},
     "patch": {"operation": "ADD", "value": RATE_LIMIT_CLUSTER}},
])])

# Istio's global rate limit task: the ratelimit filter, and the rate_limits of a virtual host.
case("envoy_filter_vhost_rate_limits", bookinfo() + [ef("global-ratelimit", [
    {"applyTo": "HTTP_FILTER", "match": {"context": "SIDECAR_OUTBOUND", "listener": ROUTER_MATCH},
     "patch": {"operation": "INSERT_BEFORE", "value": {"name": "envoy.filters.http.ratelimit", "typed_config": {
         "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
         "domain": "bookinfo-ratelimit", "failure_mode_deny": True, "timeout": "10s",
         "rate_limit_service": {"grpc_service": {"envoy_grpc": {"cluster_name": "rate_limit_cluster"}},
                                "transport_api_version": "V3"}}}}},
    {"applyTo": "CLUSTER", "match": {"cluster": {"service": "ratelimit.default.svc.cluster.local"}},
     "patch": {"operation": "ADD", "value": RATE_LIMIT_CLUSTER}},
    {"applyTo": "VIRTUAL_HOST", "match": {"context": "SIDECAR_OUTBOUND", "routeConfiguration": {
        "vhost": {"name": "reviews.default.svc.cluster.local:9080", "route": {"action": "ANY"}}}},
     "patch": {"operation": "MERGE", "value": {"rate_limits": [
         {"actions": [{"request_headers": {"header_name": ":path", "descriptor_key": "PATH"}}]}]}}},
], selector={"app": "productpage"})])

# REMOVE: the fault filter from every HTTP chain, the CORS filter from inbound ones only, and
# the passthrough filter chain of virtualInbound.
case("envoy_filter_remove", bookinfo() + [ef("slim", [
    {"applyTo": "HTTP_FILTER", "match": {"listener": {"filterChain": {"filter": {
        "name": "envoy.filters.network.http_connection_manager", "subFilter": {"name": "envoy.filters.http.fault"}}}}},
     "patch": {"operation": "REMOVE"}},
    {"applyTo": "HTTP_FILTER", "match": {"context": "SIDECAR_INBOUND", "listener": {"filterChain": {"filter": {
        "name": "envoy.filters.network.http_connection_manager", "subFilter": {"name": "envoy.filters.http.cors"}}}}},
     "patch": {"operation": "REMOVE"}},
    {"applyTo": "HTTP_ROUTE", "match": {"context": "SIDECAR_OUTBOUND", "routeConfiguration": {
        "portNumber": 9080, "vhost": {"name": "ratings.default.svc.cluster.local:9080"}}},
     "patch": {"operation": "INSERT_FIRST", "value": {"name": "blocked", "match": {"prefix": "/admin"},
                                                       "direct_response": {"status": 403}}}},
])])

# Bad patches are left out and every other part stays: an HTTP filter ADDed after the router
# (Envoy would refuse the listener), an unknown @type, a cluster MERGE that empties the name.
case("envoy_filter_bad_patch_left_out", bookinfo() + [ef("broken", [
    {"applyTo": "HTTP_FILTER", "match": {"context": "SIDECAR_INBOUND", "listener": HCM_MATCH},
     "patch": {"operation": "ADD", "value": lua("x-after-router", "1")}},
    {"applyTo": "HTTP_FILTER", "match": {"context": "SIDECAR_INBOUND", "listener": ROUTER_MATCH},
     "patch": {"operation": "INSERT_BEFORE", "value": {"name": "mystery", "typed_config": {
         "@type": "type.googleapis.com/example.com.NoSuchFilter"}}}},
    {"applyTo": "HTTP_FILTER", "match": {"context": "SIDECAR_INBOUND", "listener": ROUTER_MATCH},
     "patch": {"operation": "INSERT_BEFORE", "value": lua("x-good", "1")}},
])])

# EXTENSION_CONFIG ADD: a filter config served over ECDS, named by an HTTP filter's config_discovery.
case("envoy_filter_extension_config", bookinfo() + [ef("ecds-lua", [
    {"applyTo": "EXTENSION_CONFIG", "patch": {"operation": "ADD", "value": {
        "name": "default.lua-ecds", "typed_config": lua("x-ecds", "1")["typed_config"]}}},
    {"applyTo": "HTTP_FILTER", "match": {"context": "SIDECAR_INBOUND", "listener": ROUTER_MATCH},
     "patch": {"operation": "INSERT_BEFORE", "value": {"name": "default.lua-ecds", "config_discovery": {
         "config_source": {"ads": {}, "resource_api_version": "V3"},
         "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"]}}}},
])])

# GATEWAY: Istio's ingress gateway for Bookinfo; the sidecar-only patch does not reach it.
INGRESS = {"kind": "router", "namespace": "istio-system", "labels": {"istio": "ingressgateway"},
           "serviceAccount": "istio-ingressgateway", "ips": ["10.1.9.1"]}
with open(os.path.join(G, "gateway_http", "input.yaml")) as f:
    gateway_docs = [d for d in yaml.safe_load_all(f) if d]
case("envoy_filter_gateway", gateway_docs + [ef("ingress-tuning", [
    {"applyTo": "HTTP_FILTER", "match": {"context": "GATEWAY", "listener": {"portNumber": 8080, **ROUTER_MATCH}},
     "patch": {"operation": "INSERT_BEFORE", "value": lua("x-gateway", "1")}},
    {"applyTo": "VIRTUAL_HOST", "match": {"context": "GATEWAY", "routeConfiguration": {"portNumber": 8080}},
     "patch": {"operation": "MERGE", "value": {"response_headers_to_add": [
         {"header": {"key": "x-via", "value": "ingress"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]}}},
    {"applyTo": "HTTP_FILTER", "match": {"context": "SIDECAR_OUTBOUND", "listener": ROUTER_MATCH},
     "patch": {"operation": "INSERT_BEFORE", "value": lua("x-sidecar-only", "1")}},
], ns="istio-system", selector={"istio": "ingressgateway"})], INGRESS)

if __name__ == "__main__":
    write_cases(cases)
    print(f"wrote {len(cases)} cases")
