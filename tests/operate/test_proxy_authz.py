"""``controlplane proxy-config authz``: the policies a proxy enforces, per inbound port, read
from a served control plane and from the live Envoy, with real AuthorizationPolicies and a
RequestAuthentication applied to ``beta`` (and, to show they are the enforced ones, requests
from ``alpha`` through both sidecars)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator

import pytest

from controlplane.cli import main as cli
from controlplane.translate.filters.jwt_authn import FAKE_JWKS
from tests.harness.envoy import http_get
from tests.harness.wait import wait_for
from tests.operate.mesh import EGRESS, SERVICE_PORT, OperatedMesh, mesh_yaml, operated_mesh

pytestmark = pytest.mark.envoy

ALPHA, BETA = "alpha-0.default", "beta-0.default"
ISSUER = "https://issuer.example"

POLICIES = textwrap.dedent(f"""\
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {{name: beta-from-alpha, namespace: default}}
    spec:
      selector: {{matchLabels: {{app: beta}}}}
      action: ALLOW
      rules:
      - from: [{{source: {{principals: [cluster.local/ns/default/sa/alpha]}}}}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {{name: beta-deny-admin, namespace: default}}
    spec:
      selector: {{matchLabels: {{app: beta}}}}
      action: DENY
      rules:
      - to: [{{operation: {{paths: [/admin, /admin/*]}}}}]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata:
      name: beta-try-deny-post
      namespace: default
      annotations: {{istio.io/dry-run: "true"}}
    spec:
      selector: {{matchLabels: {{app: beta}}}}
      action: DENY
      rules:
      - to: [{{operation: {{methods: [POST]}}}}]
    ---
    apiVersion: security.istio.io/v1
    kind: RequestAuthentication
    metadata: {{name: beta-jwt, namespace: default}}
    spec:
      selector: {{matchLabels: {{app: beta}}}}
      jwtRules:
      - issuer: {ISSUER}
        audiences: [beta]
        jwks: '{FAKE_JWKS}'
    """)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli(list(argv))
    return code, capsys.readouterr().out


def rows(table_text: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.split("   ") if c.strip()]
        for line in table_text.strip().splitlines()
    ]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatedMesh]:
    with operated_mesh(tmp_path_factory.mktemp("authz")) as m:
        # The Services' targetPort is each sidecar's inbound listener (9080), as in a pod, so
        # that alpha's calls to beta pass beta's sidecar and its policies.
        inbound = mesh_yaml().replace("targetPort: 8080", f"targetPort: {SERVICE_PORT}")
        m.write_config(inbound + "---\n" + POLICIES)
        yield m


def authz(capsys: pytest.CaptureFixture[str], mesh: OperatedMesh, proxy: str, *extra: str) -> str:
    code, out = run(
        capsys,
        "proxy-config",
        "authz",
        proxy,
        "--monitoring-address",
        mesh.monitoring_address,
        *extra,
    )
    assert code == 0
    return out


def live(capsys: pytest.CaptureFixture[str], mesh: OperatedMesh, name: str, *extra: str) -> str:
    code, out = run(
        capsys, "proxy-config", "authz", "--envoy-admin", mesh.envoys[name].admin_url, *extra
    )
    assert code == 0
    return out


def test_the_control_plane_and_the_live_envoy_show_the_same_policies(
    mesh: OperatedMesh, capsys: pytest.CaptureFixture[str]
) -> None:
    def served_with_policies() -> str | None:
        out = authz(capsys, mesh, BETA)
        return out if "beta-from-alpha" in out else None

    served = wait_for(
        served_with_policies, message="the control plane's view of beta holds the policies"
    )
    wait_for(lambda: live(capsys, mesh, "beta") == served, message="beta's Envoy holds the same")
    sections = served.split("\n\n")
    jwt, policies = rows(sections[0]), rows(sections[-1])
    assert jwt[0] == ["RequestAuthentication (jwt_authn):"]
    assert jwt[1] == ["LISTENER", "PORT", "PROVIDER", "ISSUER", "AUDIENCES", "KEYS"]
    assert jwt[2:] == [["127.0.60.2_9080", "9080", "origins-0", ISSUER, "beta", "inline"]]
    assert policies[0] == ["AuthorizationPolicy (RBAC, in the order Envoy applies them):"]
    assert policies[1] == ["LISTENER", "PORT", "FILTER", "ACTION", "DRY-RUN", "POLICY"]
    listener = ["127.0.60.2_9080", "9080", "HTTP"]
    assert policies[2:] == [
        [*listener, "DENY", "no", "ns[default]-policy[beta-deny-admin]-rule[0]"],
        [*listener, "DENY", "yes", "ns[default]-policy[beta-try-deny-post]-rule[0]"],
        [*listener, "ALLOW", "no", "ns[default]-policy[beta-from-alpha]-rule[0]"],
    ]


def test_a_proxy_without_policies_says_so(
    mesh: OperatedMesh, capsys: pytest.CaptureFixture[str]
) -> None:
    wait_for(lambda: "beta-from-alpha" in authz(capsys, mesh, BETA), message="policies served")
    out = authz(capsys, mesh, ALPHA)
    assert out == "AuthorizationPolicy: no RBAC filter on any inbound port (no policy applies)\n"
    assert live(capsys, mesh, "alpha") == out


def test_json_output(mesh: OperatedMesh, capsys: pytest.CaptureFixture[str]) -> None:
    data = wait_for(
        lambda: (d := json.loads(authz(capsys, mesh, BETA, "-o", "json")))["policies"] and d,
        message="policies served",
    )
    assert {(p["action"], p["dry_run"], p["policy"]) for p in data["policies"]} == {
        ("DENY", False, "ns[default]-policy[beta-deny-admin]-rule[0]"),
        ("DENY", True, "ns[default]-policy[beta-try-deny-post]-rule[0]"),
        ("ALLOW", False, "ns[default]-policy[beta-from-alpha]-rule[0]"),
    }
    [provider] = data["request_authentication"]
    assert provider["issuer"] == ISSUER and provider["audiences"] == ["beta"]
    assert data["ext_authz"] == []


def test_the_listed_policies_are_the_enforced_ones(
    mesh: OperatedMesh, capsys: pytest.CaptureFixture[str]
) -> None:
    """alpha -> beta through both sidecars (mTLS): /admin is refused by the DENY; / passes
    RBAC (the ALLOW names alpha) and fails further on, as beta has no app behind it."""

    def get(path: str) -> tuple[int, bytes]:
        status, _, body = http_get(
            EGRESS["alpha"], SERVICE_PORT, path, headers={"Host": f"beta:{SERVICE_PORT}"}
        )
        return status, body

    wait_for(
        lambda: get("/admin") == (403, b"RBAC: access denied"),
        message="/admin refused by beta's DENY",
    )
    status, body = get("/")
    assert status == 503 and b"RBAC" not in body  # allowed: on to beta's (absent) app
