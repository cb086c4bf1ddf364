"""Writes the input.yaml/proxy.yaml of most golden cases (hand-edit a case or add one here).

    .venv/bin/python tests/golden/make_cases.py && .venv/bin/pytest tests/translate --update-golden
"""




from builders import PP, R, bookinfo, dr, kind, pod, slice_, svc, vs, write_cases

cases = {}
def case(name, docs, proxy=None):
    cases[name] = (docs, proxy or PP)

B = bookinfo
case("bookinfo_default", B())
case("bookinfo_all_v1", B() + [dr("reviews"), dr("ratings", [("v1", "v1")]),
     vs("reviews", {"hosts": ["reviews"], "http": [{"route": [R("v1")]}]})])
case("header_match_exact_prefix_regex", B() + [dr("reviews"), vs("reviews", {"hosts": ["reviews"], "http": [
    {"match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [R("v2")]},
    {"match": [{"headers": {"x-group": {"prefix": "beta"}}}], "route": [R("v3")]},
    {"match": [{"headers": {"x-id": {"regex": "^[0-9]+$"}}}], "route": [R("v3")]},
    {"route": [R("v1")]}]})])
case("uri_method_authority_match", B() + [dr("reviews"), vs("reviews", {"hosts": ["reviews"], "http": [
    {"match": [{"uri": {"exact": "/health"}, "method": {"exact": "GET"}}], "route": [R("v1")]},
    {"match": [{"uri": {"prefix": "/api"}, "ignoreUriCase": True}], "route": [R("v2")]},
    {"match": [{"uri": {"regex": "/r/[a-z]+"}}, {"authority": {"prefix": "reviews.default"}}], "route": [R("v3")]},
    {"route": [R("v1")]}]})])
case("without_headers_query_params", B() + [dr("reviews"), vs("reviews", {"hosts": ["reviews"], "http": [
    {"match": [{"withoutHeaders": {"x-debug": {}}, "queryParams": {"version": {"exact": "2"}}}], "route": [R("v2")]},
    {"match": [{"queryParams": {"beta": {"prefix": "y"}}}], "route": [R("v3")]},
    {"route": [R("v1")]}]})])
case("source_labels_and_port_match", B() + [dr("reviews"), vs("reviews", {"hosts": ["reviews"], "http": [
    {"match": [{"sourceLabels": {"app": "productpage"}}], "route": [R("v2")]},
    {"match": [{"sourceLabels": {"app": "other"}}], "route": [R("v3")]},
    {"match": [{"port": 8080}], "route": [R("v3")]},
    {"route": [R("v1")]}]})])
case("weighted_90_10", B() + [dr("reviews"), vs("reviews", {"hosts": ["reviews"], "http": [
    {"route": [dict(R("v1"), weight=90), dict(R("v2"), weight=10)]}]})])
case("weighted_three_way_headers", B() + [dr("reviews"), vs("reviews", {"hosts": ["reviews"], "http": [
    {"route": [dict(R("v1"), weight=50, headers={"request": {"set": {"x-v": "1"}}}),
               dict(R("v2"), weight=30, headers={"response": {"add": {"x-served": "v2"}, "remove": ["server"]}}),
               dict(R("v3"), weight=20)]}]})])
case("redirect", B() + [vs("reviews", {"hosts": ["reviews"], "http": [
    {"match": [{"uri": {"prefix": "/old"}}], "redirect": {"uri": "/new", "authority": "ratings", "redirectCode": 302}},
    {"match": [{"uri": {"exact": "/moved"}}], "redirect": {"uri": "/here", "port": 9080, "scheme": "http"}},
    {"route": [{"destination": {"host": "reviews"}}]}]})])
case("direct_response", B() + [vs("reviews", {"hosts": ["reviews"], "http": [
    {"match": [{"uri": {"prefix": "/teapot"}}], "directResponse": {"status": 418, "body": {"string": "short and stout"}}},
    {"route": [{"destination": {"host": "reviews"}}]}]})])
case("rewrite_uri_authority", B() + [vs("reviews", {"hosts": ["reviews"], "http": [
    {"match": [{"uri": {"prefix": "/v1/reviews"}}], "rewrite": {"uri": "/reviews", "authority": "reviews.internal"},
     "route": [{"destination": {"host": "reviews"}}]},
    {"match": [{"uri": {"prefix": "/re"}}], "rewrite": {"uriRegexRewrite": {"match": "^/re/(.*)", "rewrite": "/\\1"}},
     "route": [{"destination": {"host": "reviews"}}]},
    {"route": [{"destination": {"host": "reviews"}}]}]})])
case("timeout_and_retries", B() + [vs("ratings", {"hosts": ["ratings"], "http": [
    {"timeout": "1.5s", "retries": {"attempts": 3, "perTryTimeout": "500ms", "retryOn": "gateway-error,connect-failure,503"},
     "route": [{"destination": {"host": "ratings"}}]}]}),
    vs("details", {"hosts": ["details"], "http": [{"retries": {"attempts": 0}, "route": [{"destination": {"host": "details"}}]}]})])
case("fault_delay_and_abort", B() + [dr("ratings", [("v1", "v1")]), vs("ratings", {"hosts": ["ratings"], "http": [
    {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
     "fault": {"delay": {"fixedDelay": "7s", "percentage": {"value": 100.0}}}, "route": [R("v1", "ratings")]},
    {"fault": {"abort": {"httpStatus": 500, "percentage": {"value": 12.5}}}, "route": [R("v1", "ratings")]}]})])
case("fault_grpc_abort", B() + [vs("ratings", {"hosts": ["ratings"], "http": [
    {"fault": {"abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 50}},
               "delay": {"fixedDelay": "100ms", "percent": 10}}, "route": [{"destination": {"host": "ratings"}}]}]})])
case("mirror", B() + [dr("reviews"), vs("reviews", {"hosts": ["reviews"], "http": [
    {"route": [R("v1")], "mirror": {"host": "reviews", "subset": "v2"}, "mirrorPercentage": {"value": 25.0}}]})])
case("mirrors_list", B() + [dr("reviews"), vs("reviews", {"hosts": ["reviews"], "http": [
    {"route": [R("v1")], "mirrors": [{"destination": {"host": "reviews", "subset": "v2"}},
                                     {"destination": {"host": "ratings"}, "percentage": {"value": 5}}]}]})])
case("header_operations", B() + [vs("reviews", {"hosts": ["reviews"], "http": [
    {"headers": {"request": {"set": {"x-mesh": "yes"}, "add": {"x-trace": "a"}, "remove": ["cookie"]},
                 "response": {"set": {"cache-control": "no-store"}, "remove": ["x-powered-by"]}},
     "route": [{"destination": {"host": "reviews"}, "headers": {"request": {"set": {"x-dest": "reviews"}}}}]}]})])
case("cors_policy", B() + [vs("productpage", {"hosts": ["productpage"], "http": [
    {"corsPolicy": {"allowOrigins": [{"exact": "https://example.com"}, {"regex": "https://.*\\.example\\.org"}],
                    "allowMethods": ["GET", "POST"], "allowHeaders": ["x-custom"], "exposeHeaders": ["x-served"],
                    "maxAge": "24h", "allowCredentials": True},
     "route": [{"destination": {"host": "productpage"}}]}]})])
case("lb_simple_policies", B() + [
    dr("reviews", policy={"loadBalancer": {"simple": "ROUND_ROBIN"}}, extra={"subsets": [
        {"name": "v1", "labels": {"version": "v1"}, "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}}},
        {"name": "v2", "labels": {"version": "v2"}}]}),
    dr("ratings", [], policy={"loadBalancer": {"simple": "LEAST_REQUEST"}}),
    dr("details", [], policy={"loadBalancer": {"simple": "PASSTHROUGH"}})])
case("consistent_hash_header_cookie", B() + [
    dr("reviews", [], policy={"loadBalancer": {"consistentHash": {"httpHeaderName": "x-user", "ringHash": {"minimumRingSize": 2048}}}}),
    dr("ratings", [], policy={"loadBalancer": {"consistentHash": {"httpCookie": {"name": "session", "path": "/", "ttl": "60s"}, "maglev": {"tableSize": 65537}}}}),
    dr("details", [], policy={"loadBalancer": {"consistentHash": {"useSourceIp": True}}}),
    dr("productpage", [], policy={"loadBalancer": {"consistentHash": {"httpQueryParameterName": "uid"}}})])
case("connection_pool", B() + [dr("reviews", [], policy={"connectionPool": {
    "tcp": {"maxConnections": 10, "connectTimeout": "250ms", "tcpKeepalive": {"probes": 3, "time": "30s", "interval": "5s"}},
    "http": {"http1MaxPendingRequests": 1, "http2MaxRequests": 20, "maxRequestsPerConnection": 5, "maxRetries": 2,
             "idleTimeout": "30s", "h2UpgradePolicy": "UPGRADE"}}})])
case("retry_budget", B() + [dr("reviews", [], policy={"retryBudget": {"percent": 25, "minRetryConcurrency": 5}}),
                            dr("ratings", [], policy={"retryBudget": {}})])
case("dr_warmup_keepalive_proxy_protocol", B() + [
    dr("reviews", [], policy={"loadBalancer": {"simple": "ROUND_ROBIN", "warmup": {"duration": "30s", "aggression": 2, "minimumPercent": 20}},
                              "connectionPool": {"http": {"h2UpgradePolicy": "UPGRADE", "http2KeepAlive": {"interval": "10s", "timeout": "3s"}}},
                              "proxyProtocol": {"version": "V2"}}),
    dr("ratings", [], policy={"loadBalancer": {"warmupDurationSecs": "15s"}, "proxyProtocol": {"version": "V1"},
                              "tls": {"mode": "SIMPLE", "sni": "ratings.example.com", "insecureSkipVerify": True}})])
case("outlier_detection", B() + [dr("reviews", [], policy={"outlierDetection": {
    "consecutive5xxErrors": 1, "consecutiveGatewayErrors": 2, "interval": "1s", "baseEjectionTime": "30s",
    "maxEjectionPercent": 100, "minHealthPercent": 0}})])

def locality_pods():
    docs = [svc("reviews", "10.96.0.12", [{"name": "http", "port": 9080}])]
    eps = []
    for i, (r, z) in enumerate([("us-east", "us-east-1a"), ("us-east", "us-east-1b"), ("eu-west", "eu-west-1a")]):
        pn = f"reviews-{i}"
        docs.append(pod(pn, "default", {"app": "reviews", "version": "v1", "topology.kubernetes.io/region": r,
                                        "topology.kubernetes.io/zone": z}, f"10.1.1.{i}"))
        eps.append((pn, f"10.1.1.{i}", z))
    docs.append(slice_("reviews", "default", "http", 9080, eps))
    return docs
LOCPROXY = dict(PP, locality={"region": "us-east", "zone": "us-east-1a"})
case("locality_failover", locality_pods() + [dr("reviews", [], policy={"outlierDetection": {"consecutive5xxErrors": 5},
    "loadBalancer": {"simple": "ROUND_ROBIN", "localityLbSetting": {"enabled": True, "failover": [{"from": "us-east", "to": "eu-west"}]}}})], LOCPROXY)
case("locality_distribute", locality_pods() + [dr("reviews", [], policy={"outlierDetection": {"consecutive5xxErrors": 5},
    "loadBalancer": {"localityLbSetting": {"enabled": True, "distribute": [
        {"from": "us-east/us-east-1a/*", "to": {"us-east/us-east-1a/*": 80, "eu-west/*": 20}}]}}})], LOCPROXY)
case("port_level_settings", [svc("multi", "10.96.1.1", [{"name": "http", "port": 80}, {"name": "grpc", "port": 9090}, {"name": "tcp-db", "port": 5432}]),
    dr("multi", [], policy={"loadBalancer": {"simple": "ROUND_ROBIN"}, "portLevelSettings": [
        {"port": {"number": 9090}, "loadBalancer": {"simple": "LEAST_REQUEST"}, "connectionPool": {"http": {"http2MaxRequests": 7}}},
        {"port": {"number": 5432}, "connectionPool": {"tcp": {"maxConnections": 3}}}]})], {"namespace": "default", "labels": {"app": "client"}})
case("tls_simple_mutual", [
    kind("ServiceEntry", "ext-api", {"hosts": ["api.example.com"], "ports": [{"number": 443, "name": "https", "protocol": "HTTPS"}], "resolution": "DNS", "location": "MESH_EXTERNAL"}),
    kind("ServiceEntry", "ext-http", {"hosts": ["plain.example.com"], "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}], "resolution": "DNS"}),
    dr("api.example.com", [], name="ext-api", policy={"tls": {"mode": "SIMPLE", "caCertificates": "/etc/certs/ca.pem", "sni": "api.example.com", "subjectAltNames": ["api.example.com"]}}),
    dr("plain.example.com", [], name="ext-plain", policy={"tls": {"mode": "MUTUAL", "clientCertificate": "/etc/certs/cert.pem", "privateKey": "/etc/certs/key.pem", "caCertificates": "/etc/certs/ca.pem"}})],
    {"namespace": "default", "labels": {"app": "client"}})
case("istio_mutual", B() + [dr("reviews", [("v1", "v1")], policy={"tls": {"mode": "ISTIO_MUTUAL"}})])
case("service_entry_static_dns_none", [
    kind("ServiceEntry", "static", {"hosts": ["db.internal"], "addresses": ["240.0.0.5"], "ports": [{"number": 3306, "name": "tcp", "protocol": "TCP"}],
        "resolution": "STATIC", "location": "MESH_INTERNAL", "endpoints": [{"address": "192.168.1.10", "labels": {"role": "primary"}, "locality": "us/a"}, {"address": "192.168.1.11", "ports": {"tcp": 3307}}]}),
    kind("ServiceEntry", "dns", {"hosts": ["httpbin.org"], "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}], "resolution": "DNS"}),
    kind("ServiceEntry", "rr", {"hosts": ["rr.example.com"], "ports": [{"number": 8080, "name": "http", "protocol": "HTTP"}], "resolution": "DNS_ROUND_ROBIN", "endpoints": [{"address": "a.example.com"}]}),
    kind("ServiceEntry", "none", {"hosts": ["*.wild.example.com"], "ports": [{"number": 8443, "name": "tls", "protocol": "TLS"}], "resolution": "NONE"})],
    {"namespace": "default", "labels": {"app": "client"}})
case("workload_entries", [
    svc("legacy", "10.96.2.1", [{"name": "http", "port": 8080, "targetPort": 80}], selector={"app": "legacy"}),
    kind("WorkloadEntry", "vm-1", {"address": "192.168.5.1", "labels": {"app": "legacy", "version": "v1"}, "serviceAccount": "legacy"}),
    kind("WorkloadEntry", "vm-2", {"address": "192.168.5.2", "labels": {"app": "legacy", "version": "v2"}, "ports": {"http": 8081}, "locality": "eu/west/a"}),
    kind("ServiceEntry", "vms", {"hosts": ["vms.mesh.internal"], "ports": [{"number": 9000, "name": "grpc", "protocol": "GRPC"}],
        "resolution": "STATIC", "location": "MESH_INTERNAL", "workloadSelector": {"labels": {"app": "legacy"}}}),
    dr("legacy", [("v1", "v1"), ("v2", "v2")])],
    {"namespace": "default", "labels": {"app": "client"}})
case("tcp_routes", [svc("mongo", "10.96.3.1", [{"name": "mongo", "port": 27017}]),
    pod("mongo-a", "default", {"app": "mongo", "version": "v1"}, "10.1.3.1"), pod("mongo-b", "default", {"app": "mongo", "version": "v2"}, "10.1.3.2"),
    slice_("mongo", "default", "mongo", 27017, [("mongo-a", "10.1.3.1", None), ("mongo-b", "10.1.3.2", None)]),
    dr("mongo", [("v1", "v1"), ("v2", "v2")]),
    vs("mongo", {"hosts": ["mongo"], "tcp": [{"match": [{"port": 27017}], "route": [
        {"destination": {"host": "mongo", "subset": "v1"}, "weight": 80}, {"destination": {"host": "mongo", "subset": "v2"}, "weight": 20}]}]})],
    {"namespace": "default", "labels": {"app": "client"}})
case("tls_sni_routes", [
    kind("ServiceEntry", "sni", {"hosts": ["a.example.com", "b.example.com"], "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}], "resolution": "DNS"}),
    vs("sni", {"hosts": ["a.example.com", "b.example.com"], "tls": [
        {"match": [{"port": 443, "sniHosts": ["a.example.com"]}], "route": [{"destination": {"host": "b.example.com", "port": {"number": 443}}}]}]})],
    {"namespace": "default", "labels": {"app": "client"}})
case("registry_only", B(), dict(PP, mesh={"outboundTrafficPolicy": "REGISTRY_ONLY"}))
case("protocol_detection", [svc("mixed", "10.96.4.1", [
    {"name": "http-web", "port": 80}, {"name": "grpc-api", "port": 9000}, {"name": "web2", "port": 8000, "appProtocol": "http"},
    {"name": "tcp-raw", "port": 7000}, {"name": "https", "port": 443}, {"name": "unnamed", "port": 6000}, {"name": "h2", "port": 8443, "appProtocol": "kubernetes.io/h2c"}])],
    {"namespace": "default", "labels": {"app": "mixed"}})
case("inbound_named_target_port", [svc("web", "10.96.5.1", [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "tcp-metrics", "port": 9100},
    {"name": "http-admin", "port": 81, "targetPort": "admin"}]),
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "namespace": "default", "labels": {"app": "web"}},
     "spec": {"containers": [{"name": "web", "ports": [{"name": "admin", "containerPort": 8081}]}]}}],
    {"namespace": "default", "labels": {"app": "web"}, "ips": ["10.1.5.1"], "workloadName": "web-0"})
case("exportto_and_namespaces", [
    svc("public", "10.96.6.1", [{"name": "http", "port": 80}], ns="team-a"),
    svc("private", "10.96.6.2", [{"name": "http", "port": 80}], ns="team-a", annotations={"networking.istio.io/exportTo": "."}),
    svc("other", "10.96.6.3", [{"name": "http", "port": 80}], ns="team-b", annotations={"networking.istio.io/exportTo": "team-c"}),
    dict(vs("public-vs", {"hosts": ["public.team-a.svc.cluster.local"], "exportTo": ["."], "http": [{"route": [{"destination": {"host": "public.team-a.svc.cluster.local"}}], "timeout": "3s"}]}, ns="team-a")),
    dr("public.team-a.svc.cluster.local", [], name="public-dr-root", ns="istio-system", policy={"loadBalancer": {"simple": "RANDOM"}}),
    dr("public.team-a.svc.cluster.local", [], name="public-dr-own", ns="team-b", policy={"loadBalancer": {"simple": "ROUND_ROBIN"}})],
    {"namespace": "team-b", "labels": {"app": "client"}})
case("sidecar_egress_scoping", [
    svc("a", "10.96.7.1", [{"name": "http", "port": 80}], ns="ns1"), svc("b", "10.96.7.2", [{"name": "http", "port": 80}], ns="ns2"),
    svc("c", "10.96.7.3", [{"name": "http", "port": 80}], ns="ns3"),
    kind("Sidecar", "default", {"egress": [{"hosts": ["./*", "ns2/b.ns2.svc.cluster.local", "~/*"]}]}, ns="ns1")],
    {"namespace": "ns1", "labels": {"app": "a"}})
case("sidecar_workload_selector", [
    svc("a", "10.96.7.1", [{"name": "http", "port": 80}], ns="ns1"), svc("b", "10.96.7.2", [{"name": "http", "port": 80}], ns="ns2"),
    kind("Sidecar", "default", {"egress": [{"hosts": ["./*"]}]}, ns="ns1"),
    kind("Sidecar", "special", {"workloadSelector": {"labels": {"app": "special"}}, "egress": [{"hosts": ["*/*"]}], "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}, ns="ns1")],
    {"namespace": "ns1", "labels": {"app": "special"}})
case("sidecar_root_namespace_default", [
    svc("a", "10.96.7.1", [{"name": "http", "port": 80}], ns="ns1"), svc("b", "10.96.7.2", [{"name": "http", "port": 80}], ns="ns2"),
    kind("Sidecar", "default", {"egress": [{"hosts": ["./*", "istio-system/*"]}]}, ns="istio-system")],
    {"namespace": "ns2", "labels": {"app": "b"}})
case("sidecar_inbound_connection_pool", B() + [
    kind("Sidecar", "reviews", {"workloadSelector": {"labels": {"app": "reviews"}},
        "inboundConnectionPool": {"tcp": {"maxConnections": 50}, "http": {"http1MaxPendingRequests": 5, "idleTimeout": "20s"}},
        "ingress": [{"port": {"number": 9080, "protocol": "HTTP", "name": "http"}, "defaultEndpoint": "127.0.0.1:9080"},
                    {"port": {"number": 9090, "protocol": "GRPC", "name": "grpc"}, "defaultEndpoint": "127.0.0.1:9090",
                     "connectionPool": {"http": {"http2MaxRequests": 7, "maxRequestsPerConnection": 3}}}]})],
    {"namespace": "default", "labels": {"app": "reviews", "version": "v1"}})
LOCAL = {"namespace": "default", "labels": {"app": "productpage", "version": "v1"}, "ips": ["127.0.10.1"], "interceptionMode": "NONE"}
case("explicit_bind_local_mesh", B() + [
    kind("Sidecar", "productpage", {"workloadSelector": {"labels": {"app": "productpage"}},
        "ingress": [{"port": {"number": 9080, "protocol": "HTTP", "name": "http"}, "defaultEndpoint": "127.0.0.1:19080", "captureMode": "NONE"}],
        "egress": [{"port": {"number": 9080, "protocol": "HTTP", "name": "http"}, "bind": "127.0.11.1", "captureMode": "NONE", "hosts": ["./*"]}]})], LOCAL)
case("explicit_bind_tcp_egress", [svc("db", "10.96.8.1", [{"name": "tcp", "port": 5432}]), svc("web", "10.96.8.2", [{"name": "http", "port": 8080}]),
    kind("Sidecar", "client", {"egress": [{"bind": "127.0.21.1", "captureMode": "NONE", "hosts": ["./*"]}],
        "ingress": [{"port": {"number": 8080, "protocol": "HTTP", "name": "http"}, "bind": "127.0.20.1", "defaultEndpoint": "127.0.0.1:18080"}]})],
    {"namespace": "default", "labels": {"app": "client"}, "ips": ["127.0.20.1"], "interceptionMode": "NONE"})
case("interception_none_defaults", B(), dict(PP, interceptionMode="NONE", ips=["127.0.30.1"]))
case("vs_gateways_ignored_for_sidecar", B() + [dr("reviews"),
    vs("gw-only", {"hosts": ["reviews"], "gateways": ["bookinfo-gateway"], "http": [{"route": [R("v3")]}]}),
    vs("mesh-and-gw", {"hosts": ["ratings"], "gateways": ["mesh", "bookinfo-gateway"], "http": [
        {"match": [{"gateways": ["bookinfo-gateway"], "uri": {"prefix": "/gw"}}], "route": [{"destination": {"host": "ratings"}}], "timeout": "9s"},
        {"route": [{"destination": {"host": "ratings"}}], "timeout": "2s"}]})])
case("endpoints_fallback_legacy", [svc("legacy", "10.96.9.1", [{"name": "http", "port": 80, "targetPort": 8080}]),
    {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "legacy", "namespace": "default"},
     "subsets": [{"addresses": [{"ip": "10.1.9.1"}, {"ip": "10.1.9.2"}], "ports": [{"name": "http", "port": 8080}]}]}],
    {"namespace": "default", "labels": {"app": "client"}})
case("headless_and_externalname", [
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "default"}, "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"name": "tcp", "port": 5432}]}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext", "namespace": "default"}, "spec": {"type": "ExternalName", "externalName": "example.com", "ports": [{"name": "http", "port": 80}]}}],
    {"namespace": "default", "labels": {"app": "client"}})
case("dr_subset_policy_tls_and_pool", B() + [dr("reviews", policy={"connectionPool": {"tcp": {"maxConnections": 100}}}, extra={"subsets": [
    {"name": "v1", "labels": {"version": "v1"}, "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 1}}, "outlierDetection": {"consecutive5xxErrors": 3}}},
    {"name": "v2", "labels": {"version": "v2"}, "trafficPolicy": {"tls": {"mode": "SIMPLE", "sni": "reviews.v2"}}}]})])

write_cases(cases)
print(len(cases))

# --- added later ---
more = {}
def pods_fp():
    docs = [svc("reviews", "10.96.0.12", [{"name": "http", "port": 9080}])]
    eps = []
    for i, (net, r) in enumerate([("net-a", "us-east"), ("net-b", "us-east"), ("net-a", "eu-west")]):
        pn = f"reviews-{i}"
        docs.append(pod(pn, "default", {"app": "reviews", "topology.istio.io/network": net,
                                        "topology.kubernetes.io/region": r}, f"10.1.2.{i}"))
        eps.append((pn, f"10.1.2.{i}", None))
    docs.append(slice_("reviews", "default", "http", 9080, eps))
    return docs
more["locality_failover_priority"] = (pods_fp() + [dr("reviews", [], policy={"outlierDetection": {"consecutive5xxErrors": 5},
    "loadBalancer": {"localityLbSetting": {"failoverPriority": ["topology.istio.io/network", "topology.kubernetes.io/region"]}}})],
    dict(PP, labels={"app": "productpage", "topology.istio.io/network": "net-a"}, locality={"region": "us-east"}))
more["use_client_protocol"] = (B() + [dr("reviews", [], policy={"connectionPool": {"http": {"useClientProtocol": True}}})], PP)
write_cases(more)

# --- VirtualService delegation (Istio's mergeVirtualServicesIfNeeded) ---
delegation = {}
REV = "reviews.default.svc.cluster.local"
delegation["vs_delegate_cross_namespace"] = (B() + [dr("reviews"),
    vs("reviews", {"hosts": ["reviews"], "http": [
        {"name": "v2-team", "match": [{"uri": {"prefix": "/v2"}}], "timeout": "5s",
         "headers": {"request": {"set": {"x-root": "reviews"}}},
         "delegate": {"name": "reviews-v2", "namespace": "team-reviews"}},
        {"match": [{"uri": {"prefix": "/missing"}}], "delegate": {"name": "missing", "namespace": "team-reviews"}},
        {"match": [{"uri": {"prefix": "/private"}}], "delegate": {"name": "private", "namespace": "team-reviews"}},
        {"route": [R("v1")]}]}),
    vs("reviews-v2", {"exportTo": ["default"], "http": [
        {"name": "beta", "match": [{"uri": {"prefix": "/v2/beta"}, "headers": {"end-user": {"exact": "jason"}}}],
         "route": [R("v3", REV)]},
        {"name": "outside", "match": [{"uri": {"prefix": "/other"}}], "route": [R("v3", REV)]},  # not within /v2: dropped
        {"timeout": "1s", "route": [R("v2", REV)]}]}, ns="team-reviews"),
    vs("private", {"exportTo": ["."], "http": [{"route": [R("v3", REV)]}]}, ns="team-reviews"),
    vs("ratings", {"hosts": ["ratings"], "http": [
        {"retries": {"attempts": 1, "retryOn": "5xx"}, "delegate": {"name": "ratings-routes"}}]}),
    vs("ratings-routes", {"http": [{"route": [{"destination": {"host": "ratings"}}]}]})], PP)
write_cases(delegation)
