"""DestinationRule ``credentialName``: Kubernetes Secrets -> the SDS secrets ``<name>`` and
``<name>-cacert`` (Istio's keys and lookups), who is given them (the proxy's own namespace,
a proven identity), clear problems for missing or malformed Secrets, and no key material in
problems, reprs, logs or the debug config dump."""

from __future__ import annotations

import base64
import dataclasses
import logging
from typing import Any

import pytest
import yaml
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from controlplane.auth import ProvenIdentity
from controlplane.model.destination_rule import ClientTLSSettings
from controlplane.model.parse import parse
from controlplane.server.config_dump import config_dump_dict
from controlplane.server.push import Pusher
from controlplane.sources.memory import MemorySource
from controlplane.store import Store
from controlplane.translate import (
    CLUSTER_TYPE,
    SECRET_TYPE,
    MeshConfig,
    Proxy,
    push_context,
    translate,
)
from controlplane.translate.credentials import CredentialProblem, credential_resource_names, resolve
from controlplane.xds import SnapshotCache
from tests.harness.pki import LocalCA, Pem
from tests.harness.xds_double import node
from tests.translate.support import load_documents, snapshot_of

SERVER_CA = LocalCA("server-ca")
CLIENT_CA = LocalCA("client-ca")
CLIENT = CLIENT_CA.issue("client", server=False)
OTHER_CLIENT = CLIENT_CA.issue("other-client", server=False)


def secret_doc(name: str, data: dict[str, bytes], namespace: str = "default", type_: str = "kubernetes.io/tls") -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "type": type_, "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


def tls_data(pem: Pem = CLIENT, ca: bytes | None = SERVER_CA.pem) -> dict[str, bytes]:
    return {"tls.crt": pem.cert, "tls.key": pem.key, **({"ca.crt": ca} if ca is not None else {})}


def _resolve(docs: list[dict], resource: str, namespace: str = "default") -> Any:
    secrets = {(s.meta.namespace, s.meta.name): s for s in (parse(d) for d in docs)}
    return resolve(lambda ns, name: secrets.get((ns, name)), namespace, resource)


def _body(pem: bytes) -> str:
    return "".join(pem.decode().splitlines()[1:-1])


# --- Secret -> SDS ---------------------------------------------------------------------------------


def test_resource_names_follow_the_mode() -> None:
    def tls(mode: str, credential: str, **more: Any) -> ClientTLSSettings:
        return ClientTLSSettings(mode=mode, credential_name=credential, **more)  # type: ignore[arg-type]

    assert credential_resource_names(tls("MUTUAL", "cred")) == ("cred", "cred-cacert")
    assert credential_resource_names(tls("SIMPLE", "cred")) == ("cred-cacert",)
    assert credential_resource_names(tls("ISTIO_MUTUAL", "cred")) == ()
    # no CA named: the system's (VERIFY_CERTIFICATE_AT_CLIENT), unless another CA or no check is asked
    assert credential_resource_names(tls("MUTUAL", "")) == ("file-root:system",)
    assert credential_resource_names(tls("SIMPLE", "", ca_certificates="/etc/ca.pem")) == ()
    assert credential_resource_names(tls("SIMPLE", "", insecure_skip_verify=True)) == ()
    assert credential_resource_names(None) == ()


def test_the_system_bundle_is_served_where_a_rule_names_no_ca_and_the_server_found_one() -> None:
    docs = [{"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
             "metadata": {"name": "api", "namespace": "default"},
             "spec": {"host": "api.example.com", "trafficPolicy": {"tls": {"mode": "SIMPLE"}}}},
            {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
             "metadata": {"name": "api", "namespace": "default"},
             "spec": {"hosts": ["api.example.com"], "resolution": "DNS",
                      "ports": [{"number": 443, "name": "https", "protocol": "HTTPS"}]}}]
    proxy = Proxy.make("sidecar", "default", ips=["10.0.0.9"])
    for bundle, served in ((SERVER_CA.pem, True), (b"", False)):
        ctx = push_context(snapshot_of([parse(d) for d in docs]), MeshConfig(system_ca_bundle=bundle))
        secrets = _secrets(translate(ctx, proxy))
        assert ("file-root:system" in secrets) is served
        if served:
            assert secrets["file-root:system"].validation_context.trusted_ca.inline_bytes == SERVER_CA.pem


def test_kubernetes_tls_secret() -> None:
    docs = [secret_doc("cred", tls_data())]
    cert = _resolve(docs, "cred")
    assert isinstance(cert, secret_pb2.Secret) and cert.name == "cred"
    assert cert.tls_certificate.certificate_chain.inline_bytes == CLIENT.cert
    assert cert.tls_certificate.private_key.inline_bytes == CLIENT.key
    ca = _resolve(docs, "cred-cacert")
    assert isinstance(ca, secret_pb2.Secret) and ca.name == "cred-cacert"
    assert ca.validation_context.trusted_ca.inline_bytes == SERVER_CA.pem


def test_generic_secret_keys_and_their_precedence() -> None:
    generic = {"cert": CLIENT.cert, "key": CLIENT.key, "cacert": SERVER_CA.pem}
    # Istio reads cert/key (and cacert) before tls.crt/tls.key (and ca.crt).
    both = {**generic, "tls.crt": OTHER_CLIENT.cert, "tls.key": OTHER_CLIENT.key, "ca.crt": CLIENT_CA.pem}
    for data in (generic, both):
        docs = [secret_doc("cred", data, type_="Opaque")]
        assert _resolve(docs, "cred").tls_certificate.certificate_chain.inline_bytes == CLIENT.cert
        assert _resolve(docs, "cred-cacert").validation_context.trusted_ca.inline_bytes == SERVER_CA.pem


def test_a_separate_cacert_secret_comes_first() -> None:
    docs = [secret_doc("cred", tls_data(ca=CLIENT_CA.pem)), secret_doc("cred-cacert", {"ca.crt": SERVER_CA.pem}, type_="Opaque")]
    assert _resolve(docs, "cred-cacert").validation_context.trusted_ca.inline_bytes == SERVER_CA.pem
    docs = [secret_doc("cred", tls_data(ca=None)), secret_doc("cred-cacert", {"cacert": SERVER_CA.pem}, type_="Opaque")]
    assert _resolve(docs, "cred-cacert").validation_context.trusted_ca.inline_bytes == SERVER_CA.pem


@pytest.mark.parametrize(
    ("docs", "resource", "expected"),
    [
        ([], "cred", "credentialName 'cred': Secret default/cred: not found"),
        ([], "cred-cacert", "credentialName 'cred-cacert': Secret default/cred: not found (nor Secret cred-cacert)"),
        ([secret_doc("cred", {"tls.crt": CLIENT.cert})], "cred",
         "credentialName 'cred': Secret default/cred data[tls.key]: missing or empty"),
        ([secret_doc("cred", {"tls.crt": CLIENT.cert, "tls.key": b""})], "cred",
         "credentialName 'cred': Secret default/cred data[tls.key]: missing or empty"),
        ([secret_doc("cred", {"token": b"x"}, type_="Opaque")], "cred",
         "credentialName 'cred': Secret default/cred data: has neither cert/key nor tls.crt/tls.key (keys: token)"),
        ([secret_doc("cred", tls_data(ca=None))], "cred-cacert",
         "credentialName 'cred-cacert': Secret default/cred data: has neither cacert nor ca.crt (keys: tls.crt, tls.key)"),
        ([secret_doc("cred", {**tls_data(), "tls.crt": b"not a certificate"})], "cred",
         "credentialName 'cred': Secret default/cred data[tls.crt]: is not a PEM certificate"),
        ([secret_doc("cred", {**tls_data(), "tls.key": b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"})],
         "cred", "credentialName 'cred': Secret default/cred data[tls.key]: is not an unencrypted PEM private key"),
        ([secret_doc("cred", {**tls_data(), "tls.key": OTHER_CLIENT.key})], "cred",
         "credentialName 'cred': Secret default/cred data[tls.key]: does not match the certificate in data[tls.crt]"),
        ([secret_doc("cred", {**tls_data(), "ca.crt": b"garbage"})], "cred-cacert",
         "credentialName 'cred-cacert': Secret default/cred data[ca.crt]: is not a PEM certificate"),
        ([secret_doc("default", tls_data())], "default",
         "credentialName 'default': Secret default/default: the name is reserved for the workload's own certificate"),
    ],
)
def test_missing_or_malformed_secrets_name_the_secret_and_field(docs: list[dict], resource: str, expected: str) -> None:
    problem = _resolve(docs, resource)
    assert isinstance(problem, CredentialProblem)
    assert str(problem) == expected


# --- who is given them -----------------------------------------------------------------------------

MESH = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls-server, namespace: default}
spec:
  hosts: [tls.example.internal]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  location: MESH_EXTERNAL
  endpoints: [{address: 127.0.0.1, ports: {http: 8443}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tls-server, namespace: default}
spec:
  host: tls.example.internal
  trafficPolicy:
    tls: {mode: MUTUAL, credentialName: cred, sni: tls.example.internal}
"""


def _ctx(*secrets: dict) -> Any:
    return push_context(snapshot_of(load_documents(MESH) + [parse(s) for s in secrets]), MeshConfig())


def _secrets(out: dict[str, list[Any]]) -> dict[str, secret_pb2.Secret]:
    return {s.name: s for s in out.get(SECRET_TYPE, [])}


def test_a_proxy_gets_the_secrets_of_its_own_namespace_only() -> None:
    ctx = _ctx(secret_doc("cred", tls_data()), secret_doc("cred", tls_data(OTHER_CLIENT), namespace="third"))
    mine = _secrets(translate(ctx, Proxy.make("sidecar", "default")))
    assert set(mine) == {"cred", "cred-cacert"}
    assert mine["cred"].tls_certificate.certificate_chain.inline_bytes == CLIENT.cert
    # The rule is exported everywhere, the Secret is not: another namespace gets its own or none.
    other = translate(ctx, Proxy.make("sidecar", "other"))
    assert SECRET_TYPE not in other and other[CLUSTER_TYPE]
    third = _secrets(translate(ctx, Proxy.make("sidecar", "third")))
    assert third["cred"].tls_certificate.certificate_chain.inline_bytes == OTHER_CLIENT.cert


def test_a_proxy_without_a_proven_identity_gets_none() -> None:
    proxy = dataclasses.replace(Proxy.make("sidecar", "default"), has_certificate=False)
    assert SECRET_TYPE not in translate(_ctx(secret_doc("cred", tls_data())), proxy)


def test_only_secrets_some_rule_names_are_read() -> None:
    ctx = _ctx(secret_doc("cred", tls_data()), secret_doc("unrelated", {"tls.crt": b"bad"}))
    translate(ctx, Proxy.make("sidecar", "default"))
    assert ctx.credentials.problems() == ()


def test_a_bad_secret_takes_nothing_else_down() -> None:
    ctx = _ctx(secret_doc("cred", {**tls_data(), "tls.key": b"broken"}))
    out = translate(ctx, Proxy.make("sidecar", "default"))
    assert set(_secrets(out)) == {"cred-cacert"}  # the CA is still good
    assert "outbound|9080||tls.example.internal" in {c.name for c in out[CLUSTER_TYPE]}
    assert [str(p) for p in ctx.credentials.problems()] == [
        "credentialName 'cred': Secret default/cred data[tls.key]: is not an unencrypted PEM private key"
    ]


def test_no_key_material_in_reprs_problems_or_the_config_dump() -> None:
    ctx = _ctx(secret_doc("cred", tls_data()), secret_doc("cred", {**tls_data(), "tls.key": OTHER_CLIENT.key}, namespace="bad"))
    out = translate(ctx, Proxy.make("sidecar", "default"))
    translate(ctx, Proxy.make("sidecar", "bad"))
    cache = SnapshotCache()
    cache.set_snapshot("g", out)
    dump = str(config_dump_dict(lambda type_url: cache.view("g", None, type_url)))
    assert "[redacted]" in dump or "W3JlZGFjdGVkXQ==" in dump
    texts = {"config dump": dump, "index repr": repr(ctx.credentials), "context repr": repr(ctx),
             "problems": " ".join(map(str, ctx.credentials.problems()))}
    for where, text in texts.items():
        for key in (CLIENT.key, OTHER_CLIENT.key):
            body = _body(key)
            assert body[:32] not in text and base64.b64encode(key).decode()[:32] not in text, where


# --- the runtime: pushes and reports ------------------------------------------------------------------


async def test_secret_changes_re_push_and_problems_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    store, cache = Store(), SnapshotCache()
    source = MemorySource(store)
    pusher = Pusher(cache, lambda: store.snapshot, MeshConfig())
    source.apply(*_yaml_docs(MESH), secret_doc("cred", tls_data()))
    proven = ProvenIdentity("cluster.local", "default", "app")
    group = pusher.group_of(node("sidecar~10.0.0.9~app-0.default~default.svc.cluster.local"), proven)
    await pusher.push(None)

    def served() -> dict[str, secret_pb2.Secret]:
        view = cache.view(group, proven, SECRET_TYPE)
        return {name: secret_pb2.Secret.FromString(r.payload) for name, r in view.by_name.items()}

    assert served()["cred"].tls_certificate.certificate_chain.inline_bytes == CLIENT.cert
    # A rotated Secret reaches the proxy.
    await pusher.push(source.apply(secret_doc("cred", tls_data(OTHER_CLIENT))))
    assert served()["cred"].tls_certificate.certificate_chain.inline_bytes == OTHER_CLIENT.cert
    # A broken one: the proxy keeps what it has, the log says why, once.
    with caplog.at_level(logging.WARNING, logger="controlplane.push"):
        await pusher.push(source.apply(secret_doc("cred", {**tls_data(OTHER_CLIENT), "tls.key": CLIENT.key})))
        await pusher.push(source.apply(*_yaml_docs(MESH.replace("sni: tls", "sni: www.tls"))))
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if "Secret default/cred" in m] == [(
        "credentialName 'cred': Secret default/cred data[tls.key]: does not match the certificate in data[tls.crt]; "
        "the proxies asking for it wait for it"
    )]
    assert _body(CLIENT.key)[:32] not in caplog.text and _body(OTHER_CLIENT.key)[:32] not in caplog.text
    assert "cred" not in served()  # the cache's group layer dropped it; Envoy keeps its last good one


def _yaml_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]
