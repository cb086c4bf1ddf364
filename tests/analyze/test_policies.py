"""``analyze`` on AuthorizationPolicy and RequestAuthentication: the warnings Istio's
analyzers and istiod give (selects no workload, unknown namespace, unknown CUSTOM provider),
and the two this control plane adds where Istio fails silently (certificate fields on
workloads without mTLS, HTTP-only fields on TCP ports)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.analysis import analyze_paths
from controlplane.cli.analyze import main as analyze_main

MESH = """\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  selector: {app: db}
  ports: [{name: tcp-postgres, port: 5432}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: shop}
spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}, serviceAccount: reviews}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: shop, labels: {app: db}}
spec: {serviceAccountName: db, containers: [{name: db, image: postgres}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: curl, namespace: tools}
spec:
  selector: {matchLabels: {app: curl}}
  template:
    metadata: {labels: {app: curl}}
    spec: {containers: [{name: curl, image: curl}]}
"""


def warnings_for(tmp_path: Path, policies: str, *, mesh: str = MESH, **kwargs: object) -> list[str]:
    """The warnings on the policies file, as ``policies.yaml:LINE: ...`` lines."""
    (tmp_path / "mesh.yaml").write_text(mesh)
    policy_file = tmp_path / "policies.yaml"
    policy_file.write_text(policies)
    report = analyze_paths([tmp_path], **kwargs)  # type: ignore[arg-type]
    assert report.errors == (), "\n".join(map(str, report.errors))
    return [str(d).replace(str(policy_file), "policies.yaml") for d in report.warnings]


def policy(name: str, spec: str, namespace: str = "shop", kind: str = "AuthorizationPolicy") -> str:
    body = "\n".join("  " + line for line in spec.strip().splitlines())
    return f"apiVersion: security.istio.io/v1\nkind: {kind}\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{body}\n"


# --- selects no workload (IST0127) -------------------------------------------------------------


def test_a_selector_that_matches_no_workload(tmp_path: Path) -> None:
    text = "---\n".join(
        [
            policy("typo", "selector: {matchLabels: {app: reviewss}}\nrules: [{}]"),
            policy("ok", "selector: {matchLabels: {app: reviews}}\nrules: [{}]"),
            policy("db-by-pod", "selector: {matchLabels: {app: db}}\nrules: [{}]"),
        ]
    )
    assert warnings_for(tmp_path, text) == [
        (
            "policies.yaml:5: AuthorizationPolicy shop/typo: spec.selector.matchLabels: warning: selects no "
            "workload: no Pod, WorkloadEntry or pod template in namespace shop has the labels app=reviewss"
        ),
    ]


def test_a_selector_matches_only_in_its_own_namespace(tmp_path: Path) -> None:
    # app=curl runs in "tools" (a Deployment's template), not in "shop".
    text = policy("curl-here", "selector: {matchLabels: {app: curl}}\naction: DENY\nrules: [{}]")
    [warning] = warnings_for(tmp_path, text)
    assert (
        "no Pod, WorkloadEntry or pod template in namespace shop has the labels app=curl" in warning
    )


def test_namespace_wide_policies_need_a_workload_in_their_namespace(tmp_path: Path) -> None:
    text = "---\n".join(
        [
            policy("shop-wide", "rules: [{}]"),
            policy("empty-wide", "rules: [{}]", namespace="empty"),
        ]
    )
    assert warnings_for(tmp_path, text) == [
        (
            "policies.yaml:9: AuthorizationPolicy empty/empty-wide: metadata.namespace: warning: selects no "
            "workload: namespace empty has no Pod, WorkloadEntry or pod template"
        ),
    ]


def test_root_namespace_selectors_look_in_every_namespace(tmp_path: Path) -> None:
    text = "---\n".join(
        [
            policy(
                "mesh-curl",
                "selector: {matchLabels: {app: curl}}\nrules: [{}]",
                namespace="istio-system",
            ),
            policy(
                "mesh-none",
                "selector: {matchLabels: {app: none}}\nrules: [{}]",
                namespace="istio-system",
            ),
            policy("mesh-wide", "rules: [{}]", namespace="istio-system"),
        ]
    )
    assert warnings_for(tmp_path, text) == [
        (
            "policies.yaml:12: AuthorizationPolicy istio-system/mesh-none: spec.selector.matchLabels: warning: "
            "selects no workload: no Pod, WorkloadEntry or pod template in any namespace has the labels "
            "app=none (a selector in the root namespace istio-system applies mesh-wide)"
        ),
    ]


def test_the_mesh_configs_root_namespace_counts(tmp_path: Path) -> None:
    mesh_config = tmp_path / "mesh-config"
    mesh_config.mkdir()
    (mesh_config / "istio.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\n"
        "data:\n  mesh: |\n    rootNamespace: mesh-root\n"
    )
    text = policy(
        "mesh-curl", "selector: {matchLabels: {app: curl}}\nrules: [{}]", namespace="mesh-root"
    )
    assert warnings_for(tmp_path / "mesh-config", text) == []  # found in "tools": mesh-wide
    (mesh_config / "istio.yaml").unlink()
    [warning] = warnings_for(tmp_path / "mesh-config", text)
    assert "in namespace mesh-root has the labels app=curl" in warning


def test_request_authentication_selecting_nothing(tmp_path: Path) -> None:
    jwt = 'jwtRules: [{issuer: "https://issuer.example", jwks: \'{"keys": []}\'}]'
    text = "---\n".join(
        [
            policy(
                "jwt-typo",
                "selector: {matchLabels: {app: revews}}\n" + jwt,
                kind="RequestAuthentication",
            ),
            policy(
                "jwt-ok",
                "selector: {matchLabels: {app: reviews}}\n" + jwt,
                kind="RequestAuthentication",
            ),
        ]
    )
    [warning] = warnings_for(tmp_path, text)
    assert warning.startswith(
        "policies.yaml:5: RequestAuthentication shop/jwt-typo: spec.selector.matchLabels: warning: selects no workload"
    )


def test_nothing_is_said_about_workloads_when_the_input_has_none(tmp_path: Path) -> None:
    services_only = "---\n".join(d for d in MESH.split("---\n") if "kind: Service" in d)
    text = policy("typo", "selector: {matchLabels: {app: reviewss}}\nrules: [{}]")
    assert warnings_for(tmp_path, text, mesh=services_only) == []


def test_policies_attached_by_target_ref_are_not_judged_by_labels(tmp_path: Path) -> None:
    text = policy(
        "at-gateway",
        "targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: public}]\nrules: [{}]",
    )
    assert warnings_for(tmp_path, text) == []


# --- namespaces that do not exist (IST0101) ------------------------------------------------------


def test_source_namespaces_nothing_is_in(tmp_path: Path) -> None:
    text = policy(
        "from-namespaces",
        """
selector: {matchLabels: {app: reviews}}
rules:
- from:
  - source:
      namespaces: [tools, prod, "sh*", "*ols", "*"]
      notNamespaces: [staging]
""",
    )
    assert warnings_for(tmp_path, text) == [
        (
            "policies.yaml:9: AuthorizationPolicy shop/from-namespaces: spec.rules[0].from[0].source.namespaces[1]: "
            'warning: referenced namespace not found: "prod" (no Namespace and no resource of the input is in it)'
        ),
        (
            "policies.yaml:10: AuthorizationPolicy shop/from-namespaces: spec.rules[0].from[0].source.notNamespaces[0]: "
            'warning: referenced namespace not found: "staging" (no Namespace and no resource of the input is in it)'
        ),
    ]
    namespace = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: staging}\n"
    assert warnings_for(tmp_path, text + namespace) == []


# --- principals and namespaces without mTLS ---------------------------------------------------


def peer_authentication(name: str, spec: str) -> str:
    return policy(name, spec, kind="PeerAuthentication")


ALLOW_FROM_REVIEWS = """
selector: {matchLabels: {app: db}}
rules:
- from:
  - source:
      principals: [cluster.local/ns/shop/sa/reviews]
      notNamespaces: [tools]
      ipBlocks: [10.0.0.0/8]
  when:
  - key: source.namespace
    values: [shop]
"""


def test_certificate_fields_on_a_workload_without_mtls(tmp_path: Path) -> None:
    text = "---\n".join(
        [
            peer_authentication(
                "db-plaintext", "selector: {matchLabels: {app: db}}\nmtls: {mode: DISABLE}"
            ),
            policy("db-from-reviews", ALLOW_FROM_REVIEWS),
        ]
    )
    who = "for every workload this policy selects (Pod shop/db-0)"
    by = "mTLS is DISABLE by PeerAuthentication shop/db-plaintext"
    assert warnings_for(tmp_path, text) == [
        (
            f"policies.yaml:16: AuthorizationPolicy shop/db-from-reviews: spec.rules[0].from[0].source.principals: "
            f"warning: read from the caller's mTLS certificate, but {by} {who}: it never matches there"
        ),
        (
            f"policies.yaml:17: AuthorizationPolicy shop/db-from-reviews: spec.rules[0].from[0].source.notNamespaces: "
            f"warning: read from the caller's mTLS certificate, but {by} {who}: it then matches every request there"
        ),
        (
            f"policies.yaml:21: AuthorizationPolicy shop/db-from-reviews: spec.rules[0].when[0].values: "
            f"warning: read from the caller's mTLS certificate, but {by} {who}: it never matches there"
        ),
    ]


def test_certificate_fields_are_fine_with_mtls_permissive_or_strict(tmp_path: Path) -> None:
    for mode in ("PERMISSIVE", "STRICT"):
        text = "---\n".join(
            [
                peer_authentication("mesh", "mtls: {mode: DISABLE}").replace(
                    "namespace: shop", "namespace: istio-system"
                ),
                peer_authentication(
                    "db", f"selector: {{matchLabels: {{app: db}}}}\nmtls: {{mode: {mode}}}"
                ),
                policy("db-from-reviews", ALLOW_FROM_REVIEWS),
            ]
        )
        assert warnings_for(tmp_path, text) == [], mode


def test_mesh_wide_disable_and_port_level_modes(tmp_path: Path) -> None:
    mesh_off = peer_authentication("mesh", "mtls: {mode: DISABLE}").replace(
        "namespace: shop", "namespace: istio-system"
    )
    [*warnings] = warnings_for(
        tmp_path, mesh_off + "---\n" + policy("db-from-reviews", ALLOW_FROM_REVIEWS)
    )
    assert len(warnings) == 3 and all("PeerAuthentication istio-system/mesh" in w for w in warnings)
    # mTLS back on for the port the rule covers: nothing to say.
    port_on = peer_authentication(
        "db", "selector: {matchLabels: {app: db}}\nportLevelMtls: {'5432': {mode: STRICT}}"
    )
    on_port = ALLOW_FROM_REVIEWS + "  to:\n  - operation: {ports: ['5432']}\n"
    assert (
        warnings_for(
            tmp_path, "---\n".join([mesh_off, port_on, policy("db-from-reviews", on_port)])
        )
        == []
    )


# --- HTTP-only fields on TCP ports ------------------------------------------------------------


def test_http_fields_on_a_tcp_only_workload(tmp_path: Path) -> None:
    text = "---\n".join(
        [
            policy(
                "db-allow-get",
                """
selector: {matchLabels: {app: db}}
rules:
- from: [{source: {requestPrincipals: ["*"]}}]
  to: [{operation: {methods: [GET], ports: ["5432"]}}]
  when: [{key: "request.headers[x-user]", values: [admin]}, {key: destination.port, values: ["5432"]}]
""",
            ),
            policy(
                "db-deny-admin",
                "selector: {matchLabels: {app: db}}\naction: DENY\nrules: [{to: [{operation: {paths: [/admin]}}]}]",
            ),
        ]
    )
    ports = "every port this rule covers on the workloads it selects is TCP (5432)"
    allow = "Istio leaves the rule out there, so it allows nothing"
    deny = (
        "Istio ignores this field there, so the rule denies every connection its other fields match"
    )
    assert warnings_for(tmp_path, text) == [
        f"policies.yaml:7: AuthorizationPolicy shop/db-allow-get: spec.rules[0].from[0].source.requestPrincipals: warning: HTTP only, but {ports}: {allow}",
        f"policies.yaml:8: AuthorizationPolicy shop/db-allow-get: spec.rules[0].to[0].operation.methods: warning: HTTP only, but {ports}: {allow}",
        f"policies.yaml:9: AuthorizationPolicy shop/db-allow-get: spec.rules[0].when[0].values: warning: HTTP only, but {ports}: {allow}",
        f"policies.yaml:17: AuthorizationPolicy shop/db-deny-admin: spec.rules[0].to[0].operation.paths: warning: HTTP only, but {ports}: {deny}",
    ]


def test_http_fields_are_fine_where_some_covered_port_speaks_http(tmp_path: Path) -> None:
    namespace_wide = policy("shop-get", "rules: [{to: [{operation: {methods: [GET]}}]}]")
    on_http_port = policy(
        "reviews-get",
        "selector: {matchLabels: {app: reviews}}\nrules: [{to: [{operation: {methods: [GET], ports: ['9080']}}]}]",
    )
    assert warnings_for(tmp_path, namespace_wide + "---\n" + on_http_port) == []


def test_the_sidecars_ingress_protocol_decides(tmp_path: Path) -> None:
    """A Sidecar ingress port is what the sidecar serves, with its own protocol."""
    sidecar = """\
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: reviews, namespace: shop}
spec:
  workloadSelector: {labels: {app: reviews}}
  ingress:
  - port: {number: 9080, protocol: TCP, name: tcp}
    defaultEndpoint: 127.0.0.1:8080
"""
    text = policy(
        "reviews-get",
        "selector: {matchLabels: {app: reviews}}\nrules: [{to: [{operation: {methods: [GET]}}]}]",
    )
    [warning] = warnings_for(tmp_path, text, mesh=MESH + sidecar)
    assert "spec.rules[0].to[0].operation.methods: warning: HTTP only, but every port" in warning
    assert "is TCP (9080)" in warning


# --- CUSTOM providers ---------------------------------------------------------------------------

CUSTOM = policy(
    "ext-authz",
    "selector: {matchLabels: {app: reviews}}\naction: CUSTOM\nprovider: {name: opa}\nrules: [{to: [{operation: {paths: [/admin]}}]}]",
)


def test_custom_provider_unknown_without_a_mesh_config(tmp_path: Path) -> None:
    assert warnings_for(tmp_path, CUSTOM) == [
        (
            'policies.yaml:7: AuthorizationPolicy shop/ext-authz: spec.provider.name: warning: unknown provider "opa": '
            "not an extensionProviders entry of the mesh config (known: none; no mesh config was given "
            "(--mesh-config FILE)); Istio then denies every request to the workloads this policy selects"
        ),
    ]


def test_custom_provider_checked_against_the_mesh_config(tmp_path: Path) -> None:
    from controlplane.model.mesh import parse_document

    def mesh_config(providers: str) -> object:
        import yaml

        return parse_document(yaml.safe_load(f"extensionProviders:\n{providers}"))

    known = mesh_config(
        "- name: opa\n  envoyExtAuthzGrpc: {service: opa.shop.svc.cluster.local, port: 9191}\n"
    )
    assert warnings_for(tmp_path, CUSTOM, mesh_config=known) == []
    other = mesh_config(
        "- name: authz\n  envoyExtAuthzHttp: {service: authz.shop.svc.cluster.local, port: 8000}\n"
        "- name: tracing\n  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}\n"
    )
    [warning] = warnings_for(tmp_path, CUSTOM, mesh_config=other)
    assert (
        'unknown provider "opa": not an extensionProviders entry of the mesh config (known: authz)'
        in warning
    )
    [warning] = warnings_for(
        tmp_path, CUSTOM.replace("name: opa", "name: tracing"), mesh_config=other
    )
    assert 'provider "tracing" is a zipkin provider, not an external authorizer' in warning


def test_cli_mesh_config_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "mesh.yaml").write_text(MESH)
    (config / "policies.yaml").write_text(CUSTOM)
    mesh_config = tmp_path / "mesh-config.yaml"
    mesh_config.write_text(
        "extensionProviders:\n- name: opa\n  envoyExtAuthzGrpc: {service: opa.shop.svc.cluster.local, port: 9191}\n"
    )
    assert analyze_main([str(config)]) == 0  # warnings only
    out = capsys.readouterr().out
    assert (
        f'{config / "policies.yaml"}:7: AuthorizationPolicy shop/ext-authz: spec.provider.name: warning: unknown provider "opa"'
        in out
    )
    assert analyze_main([str(config), "--mesh-config", str(mesh_config)]) == 0
    assert capsys.readouterr().out == ""
    assert analyze_main([str(config), "--mesh-config", str(tmp_path / "missing.yaml")]) == 1
    assert "--mesh-config" in capsys.readouterr().err
