"""RBAC and jwt_authn configs served over ECDS: a policy change changes the filter configs and
never a listener, the names are stable, the source fails closed, and every name a chain uses
is served (and only those)."""

from __future__ import annotations

import json
import textwrap

import pytest
from envoy.config.core.v3 import extension_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from google.protobuf.json_format import MessageToDict

from controlplane.model.jwks import FetchedJwks, JwksTarget
from controlplane.server.config_dump import config_dump_dict
from controlplane.translate import (
    EXTENSION_CONFIG_TYPE,
    LISTENER_TYPE,
    MeshConfig,
    TranslationError,
    push_context,
    translate,
    update_push_context,
)
from controlplane.translate.filters.base import ExtensionConfigs
from controlplane.xds import SnapshotCache
from tests.authz.support import WORKLOAD, chains, connect, context, get, http, policy, proxy, tcp
from tests.translate.support import load_documents, snapshot_of

ALLOW_SLEEP = policy("caller", "rules: [{from: [{source: {principals: [cluster.local/ns/foo/sa/sleep]}}]}]")
ALLOW_OTHER = policy("caller", "rules: [{from: [{source: {principals: [cluster.local/ns/foo/sa/other]}}]}]")
DENY_ADMIN = "action: DENY\nrules: [{to: [{operation: {paths: [/admin]}}]}]"
DRY_RUN = '{"istio.io/dry-run": "true"}'
ELSEWHERE = policy("elsewhere", "{selector: {matchLabels: {app: other}}}")  # keeps RBAC on in the mesh
JWKS = json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "kid": "k"}]})


def request_authentication(issuer: str, *, jwks_uri: str = "") -> str:
    rule = f"{{issuer: {issuer}, jwksUri: {jwks_uri}}}" if jwks_uri else f"{{issuer: {issuer}, jwks: '{JWKS}'}}"
    return textwrap.dedent(f"""
        ---
        apiVersion: security.istio.io/v1
        kind: RequestAuthentication
        metadata: {{name: jwt, namespace: foo}}
        spec:
          selector: {{matchLabels: {{app: httpbin}}}}
          jwtRules: [{rule}]
        """)


def listeners_bytes(policies: str) -> list[bytes]:
    return [lst.SerializeToString(deterministic=True) for lst in translate(context(policies), proxy())[LISTENER_TYPE]]


def served(policies: str) -> dict[str, bytes]:
    out = translate(context(policies), proxy()).get(EXTENSION_CONFIG_TYPE, [])
    return {e.name: e.typed_config.SerializeToString(deterministic=True) for e in out}


@pytest.mark.parametrize("changed", [
    pytest.param(ALLOW_SLEEP + policy("block", DENY_ADMIN), id="add-a-deny"),
    pytest.param(ALLOW_OTHER, id="switch-allow-principals"),
    pytest.param(ALLOW_SLEEP + policy("block", DENY_ADMIN, annotations=DRY_RUN), id="dry-run"),
    pytest.param(ALLOW_SLEEP + policy("audit", "action: AUDIT\nrules: [{}]"), id="add-an-audit"),
    pytest.param(ELSEWHERE, id="remove-the-workloads-policies"),
    pytest.param(policy("mesh-wide", "{}", namespace="istio-system"), id="a-root-namespace-policy"),
])
def test_a_policy_change_changes_filter_configs_never_listeners(changed: str) -> None:
    base = ALLOW_SLEEP + ELSEWHERE
    assert listeners_bytes(changed + ELSEWHERE) == listeners_bytes(base)
    assert served(changed + ELSEWHERE) != served(base)
    assert set(served(changed + ELSEWHERE)) == set(served(base))  # same names, new content


def test_a_request_authentication_change_or_key_rotation_never_changes_listeners() -> None:
    base = request_authentication("https://a.test")
    assert listeners_bytes(request_authentication("https://b.test")) == listeners_bytes(base)
    assert served(request_authentication("https://b.test")) != served(base)
    # Fetched keys arriving (jwksUri) reach the config alone.
    text = textwrap.dedent(WORKLOAD) + request_authentication("https://c.test", jwks_uri="https://c.test/jwks")
    ctx = push_context(snapshot_of(load_documents(text)), MeshConfig())
    fetched = FetchedJwks.of(JwksTarget(jwks_uri="https://c.test/jwks"), JWKS)
    rotated = update_push_context(ctx, snapshot_of([*load_documents(text), fetched]), {fetched.KIND})
    before, after = translate(ctx, proxy()), translate(rotated, proxy())
    assert before[LISTENER_TYPE] == after[LISTENER_TYPE]
    assert before[EXTENSION_CONFIG_TYPE] != after[EXTENSION_CONFIG_TYPE]


def test_names_are_per_namespace_and_filter_and_every_one_used_is_served() -> None:
    out = translate(context(ALLOW_SLEEP + request_authentication("https://a.test")), proxy())
    names = {e.name for e in out[EXTENSION_CONFIG_TYPE]}
    assert names == {
        "foo.jwt-authn", "foo.rbac-audit", "foo.rbac-deny", "foo.rbac-allow",
        "foo.tcp-rbac-audit", "foo.tcp-rbac-deny", "foo.tcp-rbac-allow",
    }
    used = set()
    for lst in out[LISTENER_TYPE]:
        text = json.dumps(MessageToDict(lst))
        used |= {n for n in names if f'"name": "{n}"' in text}
    assert used == names  # nothing served that no chain names (the harness checks the converse)
    other_ns = translate(context(ALLOW_SLEEP + "---" + WORKLOAD.replace("namespace: foo", "namespace: bar")), proxy("bar"))
    assert "bar.rbac-allow" in {e.name for e in other_ns[EXTENSION_CONFIG_TYPE]}


def test_the_config_source_is_ads_and_fails_closed() -> None:
    c = chains(context(ALLOW_SLEEP))
    discovered = [f for f in c.http_filters() if f.HasField("config_discovery")]
    discovered += [f for f in c.chain("inbound|5432||-mtls").filters if f.HasField("config_discovery")]
    assert len(discovered) == 6
    for f in discovered:
        source = f.config_discovery
        assert source.config_source.HasField("ads") and len(source.type_urls) == 1
        # No default and no activation before the config arrives: a listener warms until it
        # has it, and a filter without its config refuses every request or connection.
        assert not source.HasField("default_config") and not source.apply_default_config_without_warming


def test_where_no_policy_applies_every_filter_lets_everything_through() -> None:
    ctx = context(ELSEWHERE)  # the mesh has a policy, for another workload
    assert [r for r in chains(ctx).http_rbac()] == [http_rbac_pb2.RBAC(shadow_rules_stat_prefix="istio_dry_run_allow_")] * 3
    assert http(ctx, get("/admin", principal=None)).allowed
    assert tcp(ctx, connect(principal=None), chain="inbound|5432||-plaintext").allowed
    # And a mesh without AuthorizationPolicy carries no RBAC filter at all.
    assert EXTENSION_CONFIG_TYPE not in translate(context(""), proxy())


def test_one_name_one_config() -> None:
    configs = ExtensionConfigs()
    configs.add("ns.x", http_rbac_pb2.RBAC())
    configs.add("ns.x", http_rbac_pb2.RBAC())  # the same config from another chain: fine
    with pytest.raises(TranslationError):
        configs.add("ns.x", http_rbac_pb2.RBAC(shadow_rules_stat_prefix="other"))
    assert isinstance(configs.resources()["ns.x"], extension_pb2.TypedExtensionConfig)


def test_the_debug_config_dump_shows_them_as_envoy_does() -> None:
    cache = SnapshotCache()
    cache.set_snapshot("g", translate(context(ALLOW_SLEEP), proxy()))
    dump = config_dump_dict(lambda type_url: cache.view("g", None, type_url))
    ecds = [c for c in dump["configs"] if c["@type"].endswith("EcdsConfigDump")]
    http_names = [e["ecds_filter"]["name"] for e in ecds[0]["ecds_filters"]]
    network_names = [e["ecds_filter"]["name"] for e in ecds[1]["ecds_filters"]]
    assert http_names == ["foo.rbac-allow", "foo.rbac-audit", "foo.rbac-deny"]
    assert network_names == ["foo.tcp-rbac-allow", "foo.tcp-rbac-audit", "foo.tcp-rbac-deny"]
    assert all(e["version_info"] for e in ecds[0]["ecds_filters"])
