"""Writes the input.yaml/proxy.yaml of the request_authentication_* golden cases
(RequestAuthentication -> jwt_authn on the proxy's inbound HTTP chains).

    .venv/bin/python tests/golden/make_authn_cases.py && .venv/bin/pytest tests/translate/test_golden.py -k request_authentication --update-golden
"""

import json

from builders import PP, bookinfo, kind, write_cases

# A public key only (its private half was never kept).
JWKS = json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "kid": "golden", "alg": "ES256",
                             "x": "XudHWzVfG83aDEY1-lv5XvSqBiC4jz7U489mtthZGqk",
                             "y": "BTQQ-YA95Y6MADSXfSHgY9CT-WHhSQ0NfyfYhB_06Ws"}]})


def request_authentication(name, spec, ns="default"):
    return kind("RequestAuthentication", name, spec, ns, api="security.istio.io/v1")


cases = {}

# Every field of a rule, a jwksUri the control plane has not fetched (a JWKS nobody holds the
# key to stands in: its tokens get 401), a mesh-wide root-namespace policy selecting
# productpage, and policies that do not apply (another workload, another namespace, a gateway).
cases["request_authentication_jwt_rules"] = (bookinfo() + [
    request_authentication("productpage-jwt", {
        "selector": {"matchLabels": {"app": "productpage"}},
        "jwtRules": [{
            "issuer": "https://issuer.bookinfo.example",
            "audiences": ["bookinfo"],
            "jwks": JWKS,
            "fromHeaders": [{"name": "x-jwt-assertion", "prefix": "Bearer "}],
            "fromParams": ["token"],
            "fromCookies": ["session"],
            "outputPayloadToHeader": "x-jwt-payload",
            "outputClaimToHeaders": [{"header": "x-jwt-sub", "claim": "sub"}],
            "forwardOriginalToken": True,
            "spaceDelimitedClaims": ["roles"],
        }],
    }),
    request_authentication("mesh-productpage", {
        "selector": {"matchLabels": {"app": "productpage"}},
        "jwtRules": [{"issuer": "https://accounts.example", "jwksUri": "https://accounts.example/oauth2/v3/certs"}],
    }, ns="istio-system"),
    request_authentication("reviews-only", {
        "selector": {"matchLabels": {"app": "reviews"}},
        "jwtRules": [{"issuer": "https://reviews.example", "jwks": JWKS}],
    }),
    request_authentication("elsewhere", {"jwtRules": [{"issuer": "https://other.example", "jwks": JWKS}]}, ns="other"),
    request_authentication("gateway-only", {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "bookinfo-gateway"}],
        "jwtRules": [{"issuer": "https://gateway.example", "jwks": JWKS}],
    }),
], PP)

# One namespace-wide rule with no token location: Envoy's defaults, which are Istio's
# (Authorization: Bearer, then ?access_token=).
cases["request_authentication_namespace_defaults"] = (bookinfo() + [
    request_authentication("default-jwt", {"jwtRules": [{"issuer": "testing@secure.istio.io", "jwks": JWKS}]}),
], PP)

write_cases(cases)
print(len(cases))
