"""Writes the input.yaml/proxy.yaml of the authz_custom_* golden cases (AuthorizationPolicy
CUSTOM -> RBAC shadow rules + ext_authz). proxy.yaml carries ``meshConfig:`` with the
``extensionProviders``, as ``--mesh-config`` reads it.

    .venv/bin/python tests/golden/make_ext_authz_cases.py && .venv/bin/pytest tests/translate/test_golden.py -k authz_custom --update-golden
"""




from builders import PP, bookinfo, kind, pod, slice_, svc, write_cases


def authz(name, spec, ns="default"):
    return kind("AuthorizationPolicy", name, spec, ns, api="security.istio.io/v1")


REVIEWS = {"namespace": "default", "labels": {"app": "reviews", "version": "v1"},
           "serviceAccount": "bookinfo-reviews", "ips": ["10.1.0.3"]}
MONGO = {"namespace": "default", "labels": {"app": "mongo"}, "serviceAccount": "mongo", "ips": ["10.1.3.1"]}


def ext_authz_service():
    """Istio's samples/extauthz/ext-authz.yaml: HTTP on 8000, gRPC on 9000."""
    return [svc("ext-authz", "10.96.7.7", [{"name": "http", "port": 8000}, {"name": "grpc", "port": 9000}]),
            pod("ext-authz-0", "default", {"app": "ext-authz"}, "10.1.7.7", "ext-authz"),
            slice_("ext-authz", "default", "grpc", 9000, [("ext-authz-0", "10.1.7.7", None)]),
            {**slice_("ext-authz", "default", "http", 8000, [("ext-authz-0", "10.1.7.7", None)]),
             "metadata": {"name": "ext-authz-http", "namespace": "default",
                          "labels": {"kubernetes.io/service-name": "ext-authz"}}}]


def mongo():
    return [svc("mongo", "10.96.3.1", [{"name": "tcp-mongo", "port": 27017}]),
            pod("mongo-0", "default", {"app": "mongo"}, "10.1.3.1", "mongo"),
            slice_("mongo", "default", "tcp-mongo", 27017, [("mongo-0", "10.1.3.1", None)])]


# Istio's external authorization task, its two providers.
TASK_PROVIDERS = {"extensionProviders": [
    {"name": "sample-ext-authz-grpc", "envoyExtAuthzGrpc": {"service": "ext-authz.default.svc.cluster.local", "port": "9000"}},
    {"name": "sample-ext-authz-http", "envoyExtAuthzHttp": {
        "service": "default/ext-authz.default.svc.cluster.local", "port": "8000",
        "includeRequestHeadersInCheck": ["x-ext-authz"]}},
]}

cases = {
    # The task's gRPC provider (a registry service: its outbound cluster) on reviews, for /headers
    # only, before a DENY; a dry-run CUSTOM policy is left out.
    "authz_custom_grpc_mesh_service": (bookinfo() + ext_authz_service() + [
        authz("ext-authz", {"selector": {"matchLabels": {"app": "reviews"}}, "action": "CUSTOM",
                            "provider": {"name": "sample-ext-authz-grpc"},
                            "rules": [{"to": [{"operation": {"paths": ["/headers"]}}]}]}),
        authz("no-delete", {"selector": {"matchLabels": {"app": "reviews"}}, "action": "DENY",
                            "rules": [{"to": [{"operation": {"methods": ["DELETE"]}}]}]}),
    ], {**REVIEWS, "meshConfig": TASK_PROVIDERS}),
    # An HTTP authorizer outside the registry (127.0.0.1: a static cluster), every option set.
    "authz_custom_http_local": (bookinfo() + [
        authz("ext-authz", {"selector": {"matchLabels": {"app": "productpage"}}, "action": "CUSTOM",
                            "provider": {"name": "local-http"},
                            "rules": [{"to": [{"operation": {"notPaths": ["/health*"]}}],
                                       "when": [{"key": "request.headers[x-tenant]", "notValues": ["internal"]}]}]}),
    ], {**PP, "meshConfig": {"extensionProviders": [{"name": "local-http", "envoyExtAuthzHttp": {
        "service": "127.0.0.1", "port": 9191, "timeout": "2s", "pathPrefix": "/check", "failOpen": False,
        "statusOnError": "503", "includeRequestHeadersInCheck": ["authorization", "x-tenant", "x-b3-*"],
        "includeAdditionalHeadersInCheck": {"x-ext-authz-source": "sidecar"},
        "includeRequestBodyInCheck": {"maxRequestBytes": 8192, "allowPartialMessage": True},
        "headersToUpstreamOnAllow": ["x-user-*"], "headersToDownstreamOnDeny": ["www-authenticate"],
        "headersToDownstreamOnAllow": ["set-cookie"]}}]}}),
    # An unknown provider on a TCP workload: the rules it would send to the authorizer are denied.
    "authz_custom_bad_provider_tcp": (mongo() + [
        authz("ext-authz", {"selector": {"matchLabels": {"app": "mongo"}}, "action": "CUSTOM",
                            "provider": {"name": "not-in-the-mesh-config"},
                            "rules": [{"from": [{"source": {"ipBlocks": ["10.2.0.0/16"]}}],
                                       "to": [{"operation": {"ports": ["27017"]}}]}]}),
    ], {**MONGO, "meshConfig": TASK_PROVIDERS}),
}

write_cases(cases)
print(len(cases))
