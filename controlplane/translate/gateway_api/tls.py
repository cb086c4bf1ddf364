"""A Gateway API listener's ``tls`` -> the Istio server's TLS settings (Istio's buildTLS,
buildSecretReference, IsAutoPassthrough): Terminate is SIMPLE (MUTUAL, OPTIONAL_MUTUAL,
ISTIO_SIMPLE or ISTIO_MUTUAL through the ``gateway.istio.io/tls-terminate-mode`` option) with
the certificateRefs as ``kubernetes-gateway://<ns>/<name>`` credentials, each a Secret that
exists, holds a usable key pair and, in another namespace, is opened by a ReferenceGrant;
Passthrough is PASSTHROUGH (AUTO_PASSTHROUGH when asked for, or on an east-west gateway's port).

The Gateway's frontend validation (``spec.tls.frontend``, GEP-91: the port's own settings, else
the default) makes a terminating listener MUTUAL (OPTIONAL_MUTUAL stays so) with the CA of its
first ``caCertificateRef`` as ``caCertCredentialName``: ``configmap://<ns>/<name>-cacert`` or
``kubernetes-gateway://<ns>/<name>-cacert``. A reference of another kind, in another namespace
without a ReferenceGrant (checked first, so a missing object is not told apart from a
forbidden one), missing, or without ``ca.crt`` leaves the listener not Accepted
(NoValidCACertificate), as does a certificateRef another namespace did not grant.
"""

from __future__ import annotations

from dataclasses import replace

from controlplane.model.gateway import ServerTLSMode, ServerTLSSettings
from controlplane.model.gateway_api import (
    FrontendTLSValidation,
    GatewayTLSConfig,
    KubernetesGateway,
    Listener,
    ObjectReference,
)
from controlplane.translate.credentials import CA_SUFFIX, CredentialProblem, Lookup, resolve
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
CONFIG_MAP_PREFIX = "configmap://"
# A listener's Accepted reason when its clients' CA cannot be used.
NO_VALID_CA = "NoValidCACertificate"


def _secret_lookup(inputs: ConversionInputs) -> Lookup:
    return lambda namespace, name: inputs.secrets.get((namespace, name))


def build_tls(
    gw: KubernetesGateway, listener: Listener, inputs: ConversionInputs, grants: ReferenceGrants,
    owner_kind: str = "Gateway",
) -> tuple[ServerTLSSettings | None, ConfigError | None]:
    """Istio's buildTLS: Terminate -> SIMPLE (MUTUAL etc. through the
    ``gateway.istio.io/tls-terminate-mode`` option) with ``kubernetes-gateway://ns/name``
    credentials; Passthrough -> PASSTHROUGH (AUTO_PASSTHROUGH when asked for)."""
    tls = listener.tls
    if tls is None:
        return None, None
    settings, error = _server_tls(gw, listener, tls, inputs, grants, owner_kind)
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
    grants: ReferenceGrants, owner_kind: str,
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
        elif not grants.allows(owner_kind, namespace, "Secret", ref_ns, ref.name):
            # Checked before existence, so a missing Secret is not told apart from a forbidden one.
            error = ConfigError("RefNotPermitted",
                                f"certificateRef {ref.name}/{ref_ns} not accessible to a Gateway in namespace "
                                f'"{namespace}" (missing a ReferenceGrant?)', NO_VALID_CA)
        elif (ref_ns, ref.name) not in inputs.secrets:
            error = ConfigError("InvalidCertificateRef",
                                f"invalid certificate reference {described}, secret {ref_ns}/{ref.name} not found")
        elif isinstance(found := resolve(_secret_lookup(inputs), ref_ns, ref.name), CredentialProblem):
            error = ConfigError("InvalidCertificateRef",
                                f"invalid certificate reference {described}, the certificate is malformed: "
                                f"{found.field or 'data'} {found.message}")
        if error is not None:
            problem = error if problem is None else ConfigError(
                problem.reason, f"{problem.message}; {error.message}", problem.accepted_reason
            )
            continue
        names.append(f"{CREDENTIAL_PREFIX}{ref_ns}/{ref.name}")
    if not names:
        return ServerTLSSettings(mode=mode), problem
    credentials = {"credential_name": names[0]} if len(names) == 1 else {"credential_names": tuple(names)}
    frontend = _frontend_validation(gw, listener)
    if frontend is None:
        return ServerTLSSettings(mode=mode, **credentials), None
    ca, error = _client_ca(gw, frontend, inputs, grants, owner_kind)
    if error is not None:
        return ServerTLSSettings(mode=mode, **credentials), error
    return ServerTLSSettings(
        mode="OPTIONAL_MUTUAL" if mode == "OPTIONAL_MUTUAL" else "MUTUAL",
        ca_cert_credential_name=ca,
        insecure_skip_verify=frontend.mode == "AllowInsecureFallback",
        **credentials,
    ), None


def _frontend_validation(gw: KubernetesGateway, listener: Listener) -> FrontendTLSValidation | None:
    frontend = gw.spec.tls.frontend if gw.spec.tls is not None else None
    validation = frontend.for_port(listener.port).validation if frontend is not None else None
    return validation if validation is not None and validation.ca_certificate_refs else None


def _client_ca(
    gw: KubernetesGateway, validation: FrontendTLSValidation, inputs: ConversionInputs, grants: ReferenceGrants,
    owner_kind: str,
) -> tuple[str, ConfigError | None]:
    """The SDS name of the first usable ``caCertificateRef``'s CA, or the first error."""
    errors: list[ConfigError] = []
    for ref in validation.ca_certificate_refs:
        name, error = _ca_reference(gw, ref, inputs, grants, owner_kind)
        if error is not None:
            errors.append(error)
        elif not errors:
            return name, None
    return "", errors[0]


def _ca_reference(
    gw: KubernetesGateway, ref: ObjectReference, inputs: ConversionInputs, grants: ReferenceGrants, owner_kind: str
) -> tuple[str, ConfigError | None]:
    namespace = ref.namespace or gw.meta.namespace
    described = f"{ref.group}/{ref.kind}/{ref.name}.{ref.namespace or ''}"
    if ref.group not in ("", "core") or ref.kind not in ("ConfigMap", "Secret"):
        return "", ConfigError("InvalidCACertificateKind",
                               f"invalid CA certificate reference {described}, only secret and configmap are allowed",
                               NO_VALID_CA)
    if not grants.allows(owner_kind, gw.meta.namespace, ref.kind, namespace, ref.name):
        return "", ConfigError("RefNotPermitted",
                               f"caCertificateRef {namespace}/{ref.name} not accessible to a Gateway in namespace "
                               f'"{gw.meta.namespace}" (missing a ReferenceGrant?)', NO_VALID_CA)
    if ref.kind == "ConfigMap":
        config_map = inputs.config_maps.get((namespace, ref.name))
        found, ca = config_map is not None, config_map.ca_certificate if config_map is not None else None
        prefix = CONFIG_MAP_PREFIX
    else:
        secret = inputs.secrets.get((namespace, ref.name))
        found, ca = secret is not None, secret.ca_certificate if secret is not None else None
        prefix = CREDENTIAL_PREFIX
    if not found:
        return "", ConfigError("InvalidCACertificateRef", f"invalid CA certificate reference {described}, "
                               f"{ref.kind.lower()} {namespace}/{ref.name} not found", NO_VALID_CA)
    if not ca:
        return "", ConfigError("InvalidCACertificateRef", f"invalid CA certificate reference {described}, "
                               f"{ref.kind.lower()} {namespace}/{ref.name} has no ca.crt", NO_VALID_CA)
    return f"{prefix}{namespace}/{ref.name}{CA_SUFFIX}", None
