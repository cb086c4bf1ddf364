"""A Gateway API listener's ``tls`` -> the Istio server's TLS settings (Istio's buildTLS,
buildSecretReference, IsAutoPassthrough): Terminate is SIMPLE (MUTUAL, OPTIONAL_MUTUAL,
ISTIO_SIMPLE or ISTIO_MUTUAL through the ``gateway.istio.io/tls-terminate-mode`` option) with
the certificateRefs as ``kubernetes-gateway://<ns>/<name>`` credentials, each a Secret that
exists, holds a usable key pair and, in another namespace, is opened by a ReferenceGrant;
Passthrough is PASSTHROUGH (AUTO_PASSTHROUGH when asked for, or on an east-west gateway's port).
"""

from __future__ import annotations

from dataclasses import replace

from controlplane.model.gateway import ServerTLSMode, ServerTLSSettings
from controlplane.model.gateway_api import GatewayTLSConfig, KubernetesGateway, Listener
from controlplane.translate.credentials import CredentialProblem, Lookup, resolve
from controlplane.translate.gateway_api.inputs import ConversionInputs
from controlplane.translate.gateway_api.references import ReferenceGrants
from controlplane.translate.gateway_api.status import ConfigError

TLS_TERMINATE_MODE = "gateway.istio.io/tls-terminate-mode"
LISTENER_PROTOCOL = "gateway.istio.io/listener-protocol"
CIPHER_SUITES = "gateway.istio.io/tls-cipher-suites"
# Istio's security.ValidCipherSuites (BoringSSL names Envoy accepts); others are dropped.
VALID_CIPHER_SUITES = frozenset({
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA", "AES256-SHA", "DES-CBC3-SHA",
})
CREDENTIAL_PREFIX = "kubernetes-gateway://"


def _secret_lookup(inputs: ConversionInputs) -> Lookup:
    return lambda namespace, name: inputs.secrets.get((namespace, name))


def build_tls(
    gw: KubernetesGateway, listener: Listener, inputs: ConversionInputs, grants: ReferenceGrants
) -> tuple[ServerTLSSettings | None, ConfigError | None]:
    """Istio's buildTLS: Terminate -> SIMPLE (MUTUAL etc. through the
    ``gateway.istio.io/tls-terminate-mode`` option) with ``kubernetes-gateway://ns/name``
    credentials; Passthrough -> PASSTHROUGH (AUTO_PASSTHROUGH when asked for)."""
    tls = listener.tls
    if tls is None:
        return None, None
    settings, error = _server_tls(gw, listener, tls, inputs, grants)
    ciphers = tuple(c.strip() for c in tls.options.get(CIPHER_SUITES, "").split(",") if c.strip() in VALID_CIPHER_SUITES)
    return (replace(settings, cipher_suites=ciphers) if ciphers and settings is not None else settings), error


def _auto_passthrough(gw: KubernetesGateway, listener: Listener) -> bool:
    """Istio's IsAutoPassthrough: asked for by the listener option, or the east-west
    gateway's port (15443, or the ``networking.istio.io/gatewayPort`` label) on a Gateway
    labelled with a network."""
    tls = listener.tls
    if tls is not None and LISTENER_PROTOCOL in tls.options:
        return tls.options[LISTENER_PROTOCOL] == "auto-passthrough"
    if "topology.istio.io/network" not in gw.meta.labels:
        return False
    return str(listener.port) == gw.meta.labels.get("networking.istio.io/gatewayPort", "15443")


def _server_tls(
    gw: KubernetesGateway, listener: Listener, tls: GatewayTLSConfig, inputs: ConversionInputs,
    grants: ReferenceGrants,
) -> tuple[ServerTLSSettings, ConfigError | None]:
    namespace = gw.meta.namespace
    if tls.mode == "Passthrough":
        passthrough: ServerTLSMode = "AUTO_PASSTHROUGH" if _auto_passthrough(gw, listener) else "PASSTHROUGH"
        return ServerTLSSettings(mode=passthrough), None
    if tls.mode != "Terminate":
        return ServerTLSSettings(mode="SIMPLE"), None
    option = tls.options.get(TLS_TERMINATE_MODE, "")
    mode: ServerTLSMode = "MUTUAL" if option == "MUTUAL" else "OPTIONAL_MUTUAL" if option == "OPTIONAL_MUTUAL" else "SIMPLE"
    if option == "ISTIO_SIMPLE":
        return ServerTLSSettings(mode="SIMPLE", credential_name="builtin://"), None
    if option == "ISTIO_MUTUAL":
        return ServerTLSSettings(mode="ISTIO_MUTUAL"), None
    if len(tls.certificate_refs) > 2:
        return ServerTLSSettings(mode=mode), ConfigError("InvalidCertificateRef", "TLS mode can only support up to 2 server certificates")
    names: list[str] = []
    problem: ConfigError | None = None
    for ref in tls.certificate_refs:
        ref_ns = ref.namespace or namespace
        described = f"{ref.group or ''}/{ref.kind or ''}/{ref.name}.{ref.namespace or ''}"
        error = None
        if (ref.group or "") not in ("", "core") or (ref.kind or "Secret") != "Secret":
            error = ConfigError("InvalidCertificateRef", f"invalid certificate reference {described}, only secret is allowed")
        elif (ref_ns, ref.name) not in inputs.secrets:
            error = ConfigError("InvalidCertificateRef",
                                f"invalid certificate reference {described}, secret {ref_ns}/{ref.name} not found")
        elif isinstance(found := resolve(_secret_lookup(inputs), ref_ns, ref.name), CredentialProblem):
            error = ConfigError("InvalidCertificateRef",
                                f"invalid certificate reference {described}, the certificate is malformed: "
                                f"{found.field or 'data'} {found.message}")
        elif not grants.allows("Gateway", namespace, "Secret", ref_ns, ref.name):
            error = ConfigError("RefNotPermitted",
                                f"certificateRef {ref.name}/{ref_ns} not accessible to a Gateway in namespace "
                                f'"{namespace}" (missing a ReferenceGrant?)')
        if error is not None:
            problem = error if problem is None else ConfigError(problem.reason, f"{problem.message}; {error.message}")
            continue
        names.append(f"{CREDENTIAL_PREFIX}{ref_ns}/{ref.name}")
    if not names:
        return ServerTLSSettings(mode=mode), problem
    if len(names) == 1:
        return ServerTLSSettings(mode=mode, credential_name=names[0]), None
    return ServerTLSSettings(mode=mode, credential_names=tuple(names)), None
