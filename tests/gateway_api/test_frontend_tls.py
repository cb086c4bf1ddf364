"""Frontend validation's CAs over SDS: a router is served the CA of a ``caCertificateRef``
(``configmap://<ns>/<name>-cacert`` or ``kubernetes-gateway://<ns>/<name>-cacert``) from its own
namespace, or from another one a ReferenceGrant opens to Gateways there; and a ConfigMap
change reaches the push context."""

from __future__ import annotations

from typing import Any

from cryptography import x509

from controlplane.model.base import ResourceKey
from controlplane.translate import push_context
from controlplane.translate.builders.credentials import gateway_credentials
from controlplane.translate.index.context import update_push_context
from tests.translate.support import GOLDEN, load_documents, mesh_from, proxy_from, snapshot_of

CASE = GOLDEN / "gateway_api_frontend_tls"
CONFIG_MAP_CA, SECRET_CA = "configmap://infra/client-ca-cacert", "kubernetes-gateway://pki/partner-ca-cacert"


def _resources(drop: tuple[str, ...] = ()) -> list[Any]:
    return [r for r in load_documents((CASE / "input.yaml").read_text()) if r.KIND not in drop]


def _router(namespace: str = "infra") -> Any:
    return proxy_from({"kind": "router", "namespace": namespace})


def _ca_subject(secret: Any) -> str:
    cert = x509.load_pem_x509_certificate(secret.validation_context.trusted_ca.inline_bytes)
    return cert.subject.rfc4514_string()


def test_the_router_gets_the_config_map_ca_and_the_granted_secret_ca() -> None:
    ctx = push_context(snapshot_of(_resources()), mesh_from({}))
    served = gateway_credentials(ctx, _router(), (CONFIG_MAP_CA, SECRET_CA))
    assert {name: _ca_subject(s) for name, s in served.items()} == {
        CONFIG_MAP_CA: "CN=client-ca", SECRET_CA: "CN=partner-ca"}


def test_without_the_grant_or_from_another_namespace_nothing_is_served() -> None:
    ungranted = push_context(snapshot_of(_resources(drop=("ReferenceGrant",))), mesh_from({}))
    assert set(gateway_credentials(ungranted, _router(), (CONFIG_MAP_CA, SECRET_CA))) == {CONFIG_MAP_CA}
    ctx = push_context(snapshot_of(_resources()), mesh_from({}))
    assert gateway_credentials(ctx, _router("elsewhere"), (CONFIG_MAP_CA,)) == {}


def test_a_config_map_change_reaches_the_status_and_the_served_ca() -> None:
    resources = _resources()
    ctx = push_context(snapshot_of(resources), mesh_from({}))
    without = [r for r in resources if r.key != ResourceKey("ConfigMap", "infra", "client-ca")]
    updated = update_push_context(ctx, snapshot_of(without), {"ConfigMap"})
    assert gateway_credentials(updated, _router(), (CONFIG_MAP_CA,)) == {}
    status = updated.routing.gateway_api.status_of("Gateway", "infra", "edge")
    assert status is not None
    https = next(listener for listener in status.listeners if listener.name == "https")
    assert {c.type: c.reason for c in https.conditions}["Accepted"] == "NoValidCACertificate"
