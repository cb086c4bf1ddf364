"""deploy/: every manifest is valid for the official client's models, and says what the
issue asks (replicas, non-root, probes, internal debug port, least-privilege RBAC)."""

from __future__ import annotations

import re

import pytest

from controlplane.cli import build_parser
from controlplane.cli.serve import settings_from
from controlplane.cluster.ca_secret import SELF_SIGNED_SECRET
from controlplane.cluster.leader import DEFAULT_LEASE_NAME
from controlplane.cluster.root_configmap import ROOT_CONFIGMAP
from controlplane.inject.webhook import INJECT_PATH
from tests.deploy.manifests import DEPLOY, MANIFESTS, documents, find, model_problems

CONTROLPLANE = DEPLOY / "kubernetes" / "controlplane.yaml"
WEBHOOK = DEPLOY / "kubernetes" / "webhook.yaml"
CASES = [(path, index, doc) for path in MANIFESTS for index, doc in enumerate(documents(path))]


@pytest.mark.parametrize(
    ("path", "index", "document"), CASES,
    ids=[f"{p.parent.name}/{p.name}:{i}:{d['kind']}" for p, i, d in CASES],
)
def test_manifest_is_valid_for_the_official_client(path, index, document):
    assert model_problems(document) == []


def test_the_model_check_catches_mistakes():
    deployment = find(CONTROLPLANE, "Deployment", "istiod")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    assert model_problems(deployment) == [
        ".spec.template.spec.containers[0].readinessProbes: not a field of the API"
    ]
    deployment = find(CONTROLPLANE, "Deployment", "istiod")
    deployment["spec"]["replicas"] = "three"
    assert model_problems(deployment)


def container():
    return find(CONTROLPLANE, "Deployment", "istiod")["spec"]["template"]["spec"]["containers"][0]


def test_three_non_root_replicas_with_probes():
    deployment = find(CONTROLPLANE, "Deployment", "istiod")
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container()["securityContext"]["allowPrivilegeEscalation"] is False
    assert container()["readinessProbe"]["tcpSocket"]["port"] == 15012
    assert container()["livenessProbe"]


def test_the_arguments_are_ones_serve_accepts_and_keep_debug_internal():
    args = [a.replace("$(POD_NAMESPACE)", "istio-system").replace("$(POD_NAME)", "istiod-0")
            for a in container()["args"]]
    settings = settings_from(build_parser().parse_args(args))
    assert settings.kubernetes and settings.listen_host == "0.0.0.0"
    assert settings.monitoring_host == "127.0.0.1"  # debug and config dumps stay in the pod
    assert settings.ca_from_secret and settings.leader_election
    assert settings.system_namespace == "istio-system" and settings.replica_name == "istiod-0"
    # The Service's 443 goes to the webhook's port.
    service = find(CONTROLPLANE, "Service", "istiod")
    webhook_port = next(p for p in service["spec"]["ports"] if p["port"] == 443)
    assert settings.injection_webhook_port == webhook_port["targetPort"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container()["env"]}
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}


def test_the_service_exposes_xds_and_the_webhook_not_the_debug_port():
    service = find(CONTROLPLANE, "Service", "istiod")
    ports = {p["port"]: p["targetPort"] for p in service["spec"]["ports"]}
    assert ports == {15012: 15012, 443: 15017}
    webhook = find(WEBHOOK, "MutatingWebhookConfiguration", "istio-sidecar-injector")
    config = webhook["webhooks"][0]["clientConfig"]["service"]
    assert (config["name"], config["namespace"], config["port"]) == ("istiod", "istio-system", 443)
    assert config["path"] == INJECT_PATH


WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def writes() -> set[tuple[str, str, str]]:
    """(resource, name or "*", verb) for every write any role grants."""
    granted = set()
    for kind in ("ClusterRole", "Role"):
        for role in (d for d in documents(CONTROLPLANE) if d["kind"] == kind):
            for rule in role["rules"]:
                for verb in set(rule["verbs"]) & WRITE_VERBS:
                    for resource in rule["resources"]:
                        for name in rule.get("resourceNames", ["*"]):
                            granted.add((resource, name, verb))
    return granted


def test_rbac_writes_only_what_the_control_plane_owns():
    assert writes() == {
        ("tokenreviews", "*", "create"),  # reviewing proxies' tokens
        ("*/status", "*", "update"), ("*/status", "*", "patch"),
        ("configmaps", "*", "create"), ("configmaps", "*", "update"),  # istio-ca-root-cert
        ("mutatingwebhookconfigurations", "istio-sidecar-injector", "update"),
        ("mutatingwebhookconfigurations", "istio-sidecar-injector", "patch"),
        ("leases", "*", "create"), ("leases", DEFAULT_LEASE_NAME, "update"),
        ("secrets", "*", "create"), ("secrets", SELF_SIGNED_SECRET, "update"),
    }
    # Leases and Secrets only in the control plane's own namespace (a Role, not a ClusterRole).
    role = find(CONTROLPLANE, "Role", "istiod")
    assert role["metadata"]["namespace"] == "istio-system"
    assert {r for rule in role["rules"] for r in rule["resources"]} == {"leases", "secrets"}
    assert ROOT_CONFIGMAP == "istio-ca-root-cert"


def test_the_image_is_non_root_on_a_pinned_base():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert base is not None
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base.group(1))
    # Each image (the control plane, the injected proxy) ends as the non-root user 1337.
    for stage in re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[2:]:
        users = re.findall(r"^USER (\S+)$", stage, re.MULTILINE)
        assert users and users[-1] == "1337:1337", stage.splitlines()[0]
