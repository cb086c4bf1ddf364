"""Writes the input.yaml/proxy.yaml of the telemetry_* golden cases (access logs, tracing).

proxy.yaml carries ``meshConfig:``, Istio's MeshConfig document as ``--mesh-config`` reads it.

    .venv/bin/python tests/golden/make_telemetry_cases.py && .venv/bin/pytest tests/translate --update-golden
"""




from builders import PP, bookinfo, kind, pod, slice_, svc, write_cases


def telemetry(name, spec, ns="default"):
    return kind("Telemetry", name, spec, ns, api="telemetry.istio.io/v1")


def zipkin_service():
    # The Pod its slice names: an endpoint whose Pod is unknown is left out, as Istio does.
    return [svc("zipkin", "10.96.5.5", [{"name": "http-query", "port": 9411}], ns="istio-system"),
            pod("zipkin-0", "istio-system", {"app": "zipkin"}, "10.1.5.5", "zipkin"),
            slice_("zipkin", "istio-system", "http-query", 9411, [("zipkin-0", "10.1.5.5", None)])]


def mongo():
    return [svc("mongo", "10.96.6.6", [{"name": "tcp", "port": 27017}]),
            pod("mongo-0", "default", {"app": "mongo"}, "10.1.6.6", "mongo"),
            slice_("mongo", "default", "tcp", 27017, [("mongo-0", "10.1.6.6", None)])]


ZIPKIN = {"name": "zipkin", "zipkin": {"service": "zipkin.istio-system.svc.cluster.local", "port": 9411}}

cases = {}


def case(name, docs, mesh, proxy=None):
    cases[name] = (docs, {**(proxy or PP), "meshConfig": mesh})


case("telemetry_mesh_access_log_text", bookinfo() + mongo(), {"accessLogFile": "/dev/stdout"})
case("telemetry_mesh_access_log_json", bookinfo(),
     {"accessLogFile": "/dev/stderr", "accessLogEncoding": "JSON"})
case("telemetry_mesh_access_log_custom_format", bookinfo(),
     {"accessLogFile": "/dev/stdout", "accessLogFormat": "%START_TIME% %REQ(:METHOD)% %RESPONSE_CODE% %UPSTREAM_CLUSTER_RAW%"})
case("telemetry_provider_labels_and_filter", bookinfo() + mongo() + [
    telemetry("errors-only", {"accessLogging": [{"providers": [{"name": "json-file"}],
                                                  "filter": {"expression": "response.code >= 400"}}]})],
     {"extensionProviders": [{"name": "json-file", "envoyFileAccessLog": {
         "path": "/dev/stdout",
         "logFormat": {"labels": {"start": "%START_TIME%", "code": "%RESPONSE_CODE%", "cluster": "%UPSTREAM_CLUSTER_RAW%",
                                  "peer": "%DOWNSTREAM_PEER_URI_SAN%"}}}}]})
case("telemetry_workload_disables_server_logs", bookinfo() + [
    telemetry("mesh-default", {"accessLogging": [{"providers": [{"name": "envoy"}]}]}, ns="istio-system"),
    telemetry("productpage-quiet", {"selector": {"matchLabels": {"app": "productpage"}},
                                    "accessLogging": [{"match": {"mode": "SERVER"}, "disabled": True}]})], {})
case("telemetry_workload_disables_all_logs", bookinfo() + [
    telemetry("reviews-quiet", {"selector": {"matchLabels": {"app": "reviews"}},
                                "accessLogging": [{"disabled": True}]})],
     {"accessLogFile": "/dev/stdout"},
     {"namespace": "default", "labels": {"app": "reviews", "version": "v1"}, "ips": ["10.1.0.3"]})
case("telemetry_zipkin_mesh_service", bookinfo() + zipkin_service() + [
    telemetry("tracing", {"tracing": [{"randomSamplingPercentage": 100, "customTags": {
        "cluster": {"literal": {"value": "east"}},
        "user": {"header": {"name": "end-user", "defaultValue": "anonymous"}},
        "pod": {"environment": {"name": "POD_NAME"}}}}]})],
     {"extensionProviders": [ZIPKIN], "defaultProviders": {"tracing": ["zipkin"]}})
case("telemetry_zipkin_outside_sidecar_scope", bookinfo() + zipkin_service() + [
    kind("Sidecar", "default", {"egress": [{"hosts": ["./*"]}]})],
     {"extensionProviders": [{**ZIPKIN, "zipkin": {**ZIPKIN["zipkin"], "maxTagLength": 99}}],
      "defaultProviders": {"tracing": ["zipkin"]}, "defaultConfig": {"tracing": {"sampling": 10}}})
case("telemetry_opentelemetry_grpc_external", bookinfo() + [
    telemetry("otel", {"tracing": [{"providers": [{"name": "otel"}], "randomSamplingPercentage": 0}]})],
     {"extensionProviders": [{"name": "otel", "opentelemetry": {"service": "otel-collector.example.com", "port": 4317}}]})
case("telemetry_opentelemetry_http_ip", bookinfo() + [
    telemetry("otel", {"tracing": [{"providers": [{"name": "otel-http"}], "match": {"mode": "CLIENT"}}]})],
     {"extensionProviders": [{"name": "otel-http", "opentelemetry": {
         "service": "192.0.2.10", "port": 4318, "http": {"path": "/v1/traces", "timeout": "2s"}}}]})
case("telemetry_legacy_zipkin_address", bookinfo() + zipkin_service(),
     {"enableTracing": True, "defaultConfig": {"tracing": {"sampling": 1, "zipkin": {"address": "zipkin.istio-system:9411"}}}})
# Istio's metrics (filters/istio_stats.py): every sidecar reports them; these change what.
METRICS_PROXY = {**PP, "workloadName": "productpage-v1"}
case("telemetry_metrics_overrides", bookinfo() + mongo() + [
    telemetry("mesh-metrics", {"metrics": [{"overrides": [
        {"match": {"metric": "REQUEST_SIZE", "mode": "CLIENT"}, "disabled": True},
        {"match": {"metric": "RESPONSE_SIZE"}, "disabled": True},
        {"match": {"metric": "TCP_OPENED_CONNECTIONS", "mode": "SERVER"}, "disabled": True}]}]}, ns="istio-system"),
    telemetry("productpage-metrics", {"selector": {"matchLabels": {"app": "productpage"}}, "metrics": [{"overrides": [
        {"tagOverrides": {"request_protocol": {"operation": "REMOVE"},
                          "region": {"value": "'east'"}}},
        {"match": {"metric": "REQUEST_COUNT", "mode": "CLIENT"},
         "tagOverrides": {"request_host": {"value": "request.host"},
                          "user": {"value": "request.headers['end-user']"},
                          "destination_app": {"value": "upstream_peer.app"},
                          "refused": {"value": "size(request.path)"}}}]}]})],
     {}, METRICS_PROXY)
case("telemetry_metrics_disabled", bookinfo() + mongo() + [
    telemetry("reviews-no-metrics", {"selector": {"matchLabels": {"app": "reviews"}},
                                     "metrics": [{"overrides": [{"disabled": True}]}]})],
     {}, {"namespace": "default", "labels": {"app": "reviews", "version": "v1"}, "ips": ["10.1.0.3"],
          "workloadName": "reviews-v1"})

if __name__ == "__main__":
    write_cases(cases)
    print(f"wrote {len(cases)} cases")
