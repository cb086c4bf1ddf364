"""The SDS secrets of DestinationRule ``credentialName`` that one proxy is given.

Istio's rule for sidecars (pilot/pkg/xds/sds.go): only a proxy that proved its identity
(``has_certificate``: the runtime clears it for a stream without a credential), and only
from Secrets of that proxy's own namespace, which its proven identity must match; and the
CA ConfigMaps BackendTLSPolicies name, to any such proxy (a CA is public). A name
that cannot be served is left out; the index keeps the reason for the runtime to report.
"""

from __future__ import annotations

from functools import lru_cache

from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from controlplane.translate.gateway_api.tls import CONFIG_MAP_PREFIX
from controlplane.translate.gateway_tls import GATEWAY_SDS_PREFIX
from controlplane.translate.index.context import PushContext
from controlplane.translate.proxy import Proxy
from controlplane.translate.secrets import SYSTEM_CA_SECRET, validation_context_secret


def proxy_credentials(ctx: PushContext, proxy: Proxy, names: tuple[str, ...]) -> dict[str, secret_pb2.Secret]:
    if not proxy.has_certificate:
        return {}
    out: dict[str, secret_pb2.Secret] = {}
    for name in names:
        if name == SYSTEM_CA_SECRET:
            # the OS trust bundle the server found, for TLS to a backend that names no CA
            if ctx.mesh.system_ca_bundle:
                out[name] = _system_ca(ctx.mesh.system_ca_bundle)
            continue
        if name.startswith(CONFIG_MAP_PREFIX):
            # a BackendTLSPolicy's CA (configmap://<ns>/<name>-cacert): public, read from its ConfigMap
            config_map = ctx.routing.gateway_api.backend_config_map(name)
            resolved = ctx.credentials.resolve_config_map(*config_map, name) if config_map is not None else None
        else:
            resolved = ctx.credentials.resolve(proxy.namespace, name)
        if isinstance(resolved, secret_pb2.Secret):
            out[name] = resolved
    return out


@lru_cache(maxsize=2)
def _system_ca(bundle: bytes) -> secret_pb2.Secret:
    """One secret for every proxy (the bundle is ~0.2 MB; it changes only with the server)."""
    return validation_context_secret(bundle, name=SYSTEM_CA_SECRET)


def gateway_credentials(ctx: PushContext, proxy: Proxy, resources: tuple[str, ...]) -> dict[str, secret_pb2.Secret]:
    """The SDS secrets of Gateway ``credentialName`` (``kubernetes://<name>``): Istio's rule for
    gateways is the same, the Secret must be in the router's own namespace (for the Gateway
    API's ``kubernetes-gateway://<ns>/<name>`` and ``configmap://<ns>/<name>-cacert``, or one a
    ReferenceGrant opens to it)."""
    if not proxy.has_certificate:
        return {}
    out: dict[str, secret_pb2.Secret] = {}
    for resource in resources:
        namespace, name = proxy.namespace, resource.removeprefix(GATEWAY_SDS_PREFIX)
        if resource.startswith(CONFIG_MAP_PREFIX):
            # configmap://<ns>/<name>-cacert: a Gateway API frontend validation's CA
            config_map = ctx.routing.gateway_api.gateway_config_map(resource, proxy.namespace)
            if config_map is not None:
                ca = ctx.credentials.resolve_config_map(*config_map, resource)
                if isinstance(ca, secret_pb2.Secret):
                    out[resource] = ca
            continue
        if name == resource:
            # kubernetes-gateway://<ns>/<name>: a Gateway API certificateRef, another namespace's
            # only where a ReferenceGrant allows it
            secret = ctx.routing.gateway_api.gateway_secret(resource, proxy.namespace)
            if secret is None:
                continue  # another scheme (e.g. a file) is not served from Secrets
            namespace, name = secret
        resolved = ctx.credentials.resolve(namespace, name)
        if isinstance(resolved, secret_pb2.Secret):
            renamed = secret_pb2.Secret()
            renamed.CopyFrom(resolved)
            renamed.name = resource
            out[resource] = renamed
    return out
