"""RequestAuthentication -> jwt_authn: Istio's conversion (convertToEnvoyJwtConfig), which
policies apply to which workload, where the keys come from, and the memo."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf.json_format import MessageToDict

from controlplane.model.jwks import FetchedJwks, JwksTarget
from controlplane.translate import (
    EXTENSION_CONFIG_TYPE,
    LISTENER_TYPE,
    MeshConfig,
    Proxy,
    push_context,
    translate,
    update_push_context,
)
from controlplane.translate.filters.jwt_authn import (
    FAKE_JWKS,
    PAYLOAD_IN_METADATA,
    workload_jwt_config,
)
from controlplane.translate.index.context import PushContext
from tests.translate.support import load_documents, snapshot_of

ISSUER_JWKS = json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "kid": "k"}]})
REVIEWS = {"app": "reviews", "version": "v1"}


def ra(name: str, rules: list[dict[str, Any]], *, namespace: str = "default",
       selector: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"jwtRules": rules, **extra}
    if selector is not None:
        spec["selector"] = {"matchLabels": selector}
    return {"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def service(name: str, namespace: str = "default") -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
             "spec": {"clusterIP": "10.96.0.12", "selector": {"app": name}, "ports": [{"name": "http", "port": 9080}]}}]


def context(*docs: dict[str, Any], extra: list[Any] | None = None) -> PushContext:
    resources = load_documents(yaml.safe_dump_all([*service("reviews"), *service("reviews", "other"), *docs]))
    return push_context(snapshot_of(resources + list(extra or [])), MeshConfig())


def jwt_config(ctx: PushContext, namespace: str = "default", labels: dict[str, str] | None = None) -> jwt_pb2.JwtAuthentication | None:
    return workload_jwt_config(ctx, namespace, REVIEWS if labels is None else labels)


def as_dict(config: jwt_pb2.JwtAuthentication | None) -> dict[str, Any]:
    assert config is not None
    return MessageToDict(config, preserving_proto_field_name=True)


def served_jwt_config(ctx: PushContext, proxy: Proxy, name: str = "default.jwt-authn") -> jwt_pb2.JwtAuthentication:
    """The jwt_authn config ECDS serves ``proxy`` under ``name``."""
    served = {e.name: e for e in translate(ctx, proxy).get(EXTENSION_CONFIG_TYPE, [])}
    config = jwt_pb2.JwtAuthentication()
    assert served[name].typed_config.Unpack(config)
    return config


def inbound_http_filters(ctx: PushContext, proxy: Proxy) -> dict[str, list[str]]:
    """Listener name -> the HTTP filter names of its first HTTP connection manager."""
    out: dict[str, list[str]] = {}
    for lst in translate(ctx, proxy)[LISTENER_TYPE]:
        for fc in lst.filter_chains:
            for f in fc.filters:
                if f.name == "envoy.filters.network.http_connection_manager":
                    hcm = hcm_pb2.HttpConnectionManager()
                    f.typed_config.Unpack(hcm)
                    out.setdefault(lst.name, [h.name for h in hcm.http_filters])
    return out


# --- conversion ----------------------------------------------------------------------------


def test_one_rule_every_field_as_istio_converts_it() -> None:
    ctx = context(ra("jwt", [{
        "issuer": "https://issuer.example", "audiences": ["bookinfo", "reviews"], "jwks": ISSUER_JWKS,
        "fromHeaders": [{"name": "x-jwt", "prefix": "Token "}, {"name": "x-raw"}],
        "fromParams": ["token"], "fromCookies": ["session"],
        "outputPayloadToHeader": "x-jwt-payload", "forwardOriginalToken": True,
        "outputClaimToHeaders": [{"header": "x-sub", "claim": "sub"}, {"header": "x-group", "claim": "groups"}],
        "spaceDelimitedClaims": ["roles", "scope"],
    }]))
    assert as_dict(jwt_config(ctx)) == {
        "providers": {"origins-0": {
            "issuer": "https://issuer.example",
            "audiences": ["bookinfo", "reviews"],
            "local_jwks": {"inline_string": ISSUER_JWKS},
            "forward": True,
            "from_headers": [{"name": "x-jwt", "value_prefix": "Token "}, {"name": "x-raw"}],
            "from_params": ["token"],
            "from_cookies": ["session"],
            "forward_payload_header": "x-jwt-payload",
            "payload_in_metadata": PAYLOAD_IN_METADATA,
            "normalize_payload_in_metadata": {"space_delimited_claims": ["permission", "roles", "scope"]},
            "claim_to_headers": [{"header_name": "x-sub", "claim_name": "sub"},
                                 {"header_name": "x-group", "claim_name": "groups"}],
        }},
        # A token must be valid if present; no token passes (requestPrincipals is RBAC's job).
        "rules": [{"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": [
            {"provider_name": "origins-0"}, {"allow_missing": {}}]}}}],
        "bypass_cors_preflight": True,
    }


def test_no_location_given_leaves_envoys_defaults_which_are_istios() -> None:
    provider = as_dict(jwt_config(context(ra("jwt", [{"issuer": "i", "jwks": ISSUER_JWKS}]))))["providers"]["origins-0"]
    # Envoy then reads ``Authorization: Bearer <token>`` and the ``access_token`` parameter.
    assert not {"from_headers", "from_params", "from_cookies", "forward", "forward_payload_header"} & set(provider)
    assert provider["payload_in_metadata"] == "jwt_payload"
    assert provider["normalize_payload_in_metadata"] == {"space_delimited_claims": ["permission", "scope"]}


def test_several_rules_sorted_by_issuer_and_each_token_present_must_be_valid() -> None:
    ctx = context(
        ra("b", [{"issuer": "zeta", "jwks": ISSUER_JWKS}, {"issuer": "alpha", "jwks": ISSUER_JWKS}]),
        ra("a", [{"issuer": "mid", "jwks": ISSUER_JWKS}], selector={"app": "reviews"}),
    )
    config = as_dict(jwt_config(ctx))
    assert {name: p["issuer"] for name, p in config["providers"].items()} == {
        "origins-0": "alpha", "origins-1": "mid", "origins-2": "zeta",
    }
    either = [{"requires_any": {"requirements": [{"provider_name": f"origins-{i}"}, {"allow_missing": {}}]}}
              for i in range(3)]
    assert config["rules"] == [{"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": [
        {"provider_name": "origins-0"}, {"provider_name": "origins-1"}, {"provider_name": "origins-2"},
        {"requires_all": {"requirements": either}},
    ]}}}]


# --- keys ----------------------------------------------------------------------------------


def test_jwks_uri_inlines_the_fetched_keys_and_a_fake_jwks_before_any_fetch() -> None:
    uri = "https://issuer.example/.well-known/jwks.json"
    rules = [{"issuer": "https://issuer.example", "jwksUri": uri}, {"issuer": "https://z-inline", "jwksUri": uri, "jwks": ISSUER_JWKS}]
    unfetched = as_dict(jwt_config(context(ra("jwt", rules))))["providers"]
    assert unfetched["origins-0"]["local_jwks"] == {"inline_string": FAKE_JWKS}
    assert unfetched["origins-1"]["local_jwks"] == {"inline_string": ISSUER_JWKS}  # inline jwks wins
    document = json.dumps({"keys": [{"kty": "RSA", "n": "x", "e": "AQAB", "kid": "fetched"}]})
    fetched = FetchedJwks.of(JwksTarget(jwks_uri=uri), document)
    providers = as_dict(jwt_config(context(ra("jwt", rules), extra=[fetched])))["providers"]
    assert providers["origins-0"]["local_jwks"] == {"inline_string": document}
    assert "remote_jwks" not in providers["origins-0"]  # sidecars need no route to the issuer


def test_a_rule_without_keys_uses_its_issuers_discovered_jwks() -> None:
    document = json.dumps({"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]})
    ctx = context(ra("jwt", [{"issuer": "https://accounts.example"}]),
                  extra=[FetchedJwks.of(JwksTarget(issuer="https://accounts.example"), document)])
    assert as_dict(jwt_config(ctx))["providers"]["origins-0"]["local_jwks"] == {"inline_string": document}


def test_fake_jwks_is_a_public_key_only() -> None:
    keys = json.loads(FAKE_JWKS)["keys"]
    assert [sorted(k) for k in keys] == [["alg", "e", "kid", "kty", "n", "use"]]


def test_a_key_rotation_rebuilds_the_jwks_part_alone() -> None:
    uri = "https://issuer.example/jwks"
    docs = load_documents(yaml.safe_dump_all([*service("reviews"), ra("jwt", [{"issuer": "i", "jwksUri": uri}])]))
    first = FetchedJwks.of(JwksTarget(jwks_uri=uri), json.dumps({"keys": [{"kty": "RSA", "kid": "1"}]}))
    second = FetchedJwks.of(JwksTarget(jwks_uri=uri), json.dumps({"keys": [{"kty": "RSA", "kid": "2"}]}))
    before = push_context(snapshot_of([*docs, first]), MeshConfig())
    after = update_push_context(before, snapshot_of([*docs, second]), {"FetchedJwks"})
    assert after.policies is before.policies and after.service_index is before.service_index
    assert '"2"' in as_dict(jwt_config(after))["providers"]["origins-0"]["local_jwks"]["inline_string"]


# --- which policies apply ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "namespace", "labels", "applies"),
    [
        (ra("ns", [{"issuer": "i", "jwks": ISSUER_JWKS}]), "default", REVIEWS, True),
        (ra("ns", [{"issuer": "i", "jwks": ISSUER_JWKS}]), "other", REVIEWS, False),
        (ra("wl", [{"issuer": "i", "jwks": ISSUER_JWKS}], selector={"app": "reviews"}), "default", REVIEWS, True),
        (ra("wl", [{"issuer": "i", "jwks": ISSUER_JWKS}], selector={"app": "ratings"}), "default", REVIEWS, False),
        # The root namespace: without a selector for every workload; with one, for the
        # workloads it selects in every namespace (Istio's rule for RequestAuthentication).
        (ra("mesh", [{"issuer": "i", "jwks": ISSUER_JWKS}], namespace="istio-system"), "other", REVIEWS, True),
        (ra("root-wl", [{"issuer": "i", "jwks": ISSUER_JWKS}], namespace="istio-system",
            selector={"app": "reviews"}), "other", REVIEWS, True),
        (ra("root-wl", [{"issuer": "i", "jwks": ISSUER_JWKS}], namespace="istio-system",
            selector={"app": "ratings"}), "other", REVIEWS, False),
        # targetRef(s) attach to gateways, not to workloads.
        (ra("gw", [{"issuer": "i", "jwks": ISSUER_JWKS}], targetRefs=[{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}]),
         "default", REVIEWS, False),
        (ra("no-rules", []), "default", REVIEWS, False),
    ],
)
def test_which_workloads_a_policy_applies_to(policy: dict, namespace: str, labels: dict, applies: bool) -> None:
    assert (jwt_config(context(policy), namespace, labels) is not None) == applies


def test_inbound_http_chains_only_first_in_the_chain() -> None:
    ctx = context(ra("jwt", [{"issuer": "i", "jwks": ISSUER_JWKS}], selector=REVIEWS))
    reviews = Proxy.make("sidecar", "default", labels=REVIEWS)
    chains = inbound_http_filters(ctx, reviews)
    policy_filters = [n for n in chains["virtualInbound"] if not n.startswith("istio.")]  # after the exchange
    assert policy_filters[0] == "default.jwt-authn"  # its config comes over ECDS
    assert list(served_jwt_config(ctx, reviews).providers) == ["origins-0"]
    outbound = [names for name, names in chains.items() if name != "virtualInbound"]
    assert outbound and not any("default.jwt-authn" in names for names in outbound)
    # A workload no rule applies to has the filter too (the mesh has a RequestAuthentication),
    # with nothing to check: a policy added for it later changes that config, not its listeners.
    other = Proxy.make("sidecar", "default", labels={"app": "reviews", "version": "v2"})
    assert inbound_http_filters(ctx, other)["virtualInbound"][2] == "default.jwt-authn"
    assert served_jwt_config(ctx, other) == jwt_pb2.JwtAuthentication()
    # A mesh without any RequestAuthentication has no jwt_authn filter at all.
    assert not any("default.jwt-authn" in names for names in inbound_http_filters(context(), reviews).values())


def test_computed_once_per_namespace_when_labels_do_not_matter() -> None:
    ctx = context(ra("jwt", [{"issuer": "i", "jwks": ISSUER_JWKS}]))
    a = workload_jwt_config(ctx, "default", {"app": "reviews"})
    b = workload_jwt_config(ctx, "default", {"app": "ratings"})
    assert a is not None and a is b
    assert list(ctx.memo.jwt_authn) == [("default", None, False)]
    selective = context(ra("jwt", [{"issuer": "i", "jwks": ISSUER_JWKS}], selector={"app": "reviews"}))
    assert workload_jwt_config(selective, "default", {"app": "reviews"}) is not None
    assert workload_jwt_config(selective, "default", {"app": "ratings"}) is None
    assert len(selective.memo.jwt_authn) == 2
