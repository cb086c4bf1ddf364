"""Writes the input.yaml/proxy.yaml of the authz_* golden cases (AuthorizationPolicy -> RBAC).

    .venv/bin/python tests/golden/make_authz_cases.py && .venv/bin/pytest tests/translate/test_golden.py -k authz --update-golden
"""




from builders import PP, bookinfo, kind, pod, slice_, svc, write_cases


def authz(name, spec, ns="default", annotations=None):
    doc = kind("AuthorizationPolicy", name, spec, ns, api="security.istio.io/v1")
    if annotations:
        doc["metadata"]["annotations"] = annotations
    return doc


REVIEWS = {"namespace": "default", "labels": {"app": "reviews", "version": "v1"},
           "serviceAccount": "bookinfo-reviews", "ips": ["10.1.0.3"]}
RATINGS = {"namespace": "default", "labels": {"app": "ratings", "version": "v1"},
           "serviceAccount": "bookinfo-ratings", "ips": ["10.1.0.7"]}
MONGO = {"namespace": "default", "labels": {"app": "mongo"}, "serviceAccount": "mongo", "ips": ["10.1.3.1"]}


def mongo():
    return [svc("mongo", "10.96.3.1", [{"name": "tcp-mongo", "port": 27017}]),
            pod("mongo-0", "default", {"app": "mongo"}, "10.1.3.1", "mongo"),
            slice_("mongo", "default", "tcp-mongo", 27017, [("mongo-0", "10.1.3.1", None)])]


cases = {
    # An ALLOW policy without rules: nothing is allowed (HTTP 403, TCP closed, passthrough too).
    "authz_deny_all": (bookinfo() + [authz("allow-nothing", {})], PP),
    # Only productpage's service account may GET reviews; others (and plaintext) get 403.
    "authz_allow_principal_method": (bookinfo() + [authz("reviews-viewer", {
        "selector": {"matchLabels": {"app": "reviews"}},
        "action": "ALLOW",
        "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/default/sa/bookinfo-productpage"]}}],
                   "to": [{"operation": {"methods": ["GET"]}}]}]})], REVIEWS),
    # DENY on paths (prefix, template), with a header condition; a mesh-wide ALLOW for the namespace.
    "authz_deny_path": (bookinfo() + [
        authz("ratings-no-admin", {
            "selector": {"matchLabels": {"app": "ratings"}},
            "action": "DENY",
            "rules": [{"to": [{"operation": {"paths": ["/admin*", "/ratings/{*}/internal"]}}]},
                      {"to": [{"operation": {"methods": ["DELETE"]}}],
                       "when": [{"key": "request.headers[x-debug]", "notValues": ["on"]}]}]}),
        authz("mesh-same-namespace", {
            "rules": [{"from": [{"source": {"namespaces": ["default", "istio-system"]}}]}]}, ns="istio-system")],
        RATINGS),
    # A TCP port allowed for one principal: the HTTP-only rule is dropped on TCP (Istio's rule).
    "authz_tcp_port_principal": (mongo() + [authz("mongo-clients", {
        "selector": {"matchLabels": {"app": "mongo"}},
        "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/default/sa/bookinfo-ratings"]}}],
                   "to": [{"operation": {"ports": ["27017"]}}]},
                  {"to": [{"operation": {"methods": ["GET"]}}]}]})], MONGO),
    # Dry-run DENY and ALLOW as shadow rules, beside an enforced ALLOW and an AUDIT.
    "authz_dry_run": (bookinfo() + [
        authz("try-deny-post", {"action": "DENY", "rules": [{"to": [{"operation": {"methods": ["POST"]}}]}]},
              annotations={"istio.io/dry-run": "true"}),
        authz("try-allow-jwt", {"rules": [{"from": [{"source": {"requestPrincipals": ["https://idp.example/*"]}}],
                                           "when": [{"key": "request.auth.claims[groups]", "values": ["admin"]}]}]},
              annotations={"istio.io/dry-run": "true"}),
        authz("allow-mesh", {"rules": [{"from": [{"source": {"principals": ["*"]}}]}]}),
        authz("audit-writes", {"action": "AUDIT", "rules": [{"to": [{"operation": {"methods": ["POST", "PUT"]}}]}]})],
        PP),
}

write_cases(cases)
print(len(cases))
