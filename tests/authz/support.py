"""Translate YAML for one proxy and read back the RBAC its inbound chains carry (filter
configs served over ECDS resolved by name, as Envoy does)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

from envoy.config.core.v3 import extension_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from google.protobuf import any_pb2

from controlplane.translate import (
    EXTENSION_CONFIG_TYPE,
    LISTENER_TYPE,
    MeshConfig,
    Proxy,
    push_context,
    translate,
)
from controlplane.translate.index.context import PushContext
from tests.authz.rbac_eval import FilterConfig, Outcome, Request, evaluate
from tests.translate.support import load_documents, snapshot_of

HCM = "envoy.filters.network.http_connection_manager"
HTTP_RBAC = "envoy.filters.http.rbac"
NETWORK_RBAC = "envoy.filters.network.rbac"
JWT_KEY = "jwt_payload"

# httpbin in foo: HTTP on 8000, TCP on 5432.
WORKLOAD = """
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: foo}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000}, {name: tcp-db, port: 5432}]
"""
HTTPBIN = {"app": "httpbin", "version": "v1"}


def context(policies: str, mesh: MeshConfig | None = None) -> PushContext:
    text = WORKLOAD + "\n---\n" + textwrap.dedent(policies)
    return push_context(snapshot_of(load_documents(text)), mesh or MeshConfig())


def proxy(namespace: str = "foo", labels: dict[str, str] | None = None, sa: str = "httpbin") -> Proxy:
    return Proxy.make("sidecar", namespace, labels=HTTPBIN if labels is None else labels, ips=["10.1.1.1"],
                      service_account=sa)  # fmt: skip


@dataclass
class Chains:
    """The inbound chains of a proxy, by filter chain name, with their RBAC filters."""

    listeners: list[listener_pb2.Listener]
    extensions: dict[str, extension_pb2.TypedExtensionConfig] = field(default_factory=dict)

    def typed_config(self, f: hcm_pb2.HttpFilter | lc.Filter) -> any_pb2.Any:
        """A filter's config: inline, or the ECDS resource its ``config_discovery`` names
        (which must exist and be of a type the filter accepts)."""
        if not f.HasField("config_discovery"):
            return f.typed_config
        served = self.extensions[f.name].typed_config
        assert served.type_url in f.config_discovery.type_urls, (f.name, served.type_url)
        return served

    def chain(self, name: str) -> listener_pb2.FilterChain:
        for lst in self.listeners:
            if lst.name == "virtualInbound":
                for fc in [*lst.filter_chains, lst.default_filter_chain]:
                    if fc.name == name:
                        return fc
        raise KeyError(name)

    def http_filters(self, name: str = "inbound|8000||-mtls") -> list[hcm_pb2.HttpFilter]:
        for f in self.chain(name).filters:
            if f.name == HCM:
                hcm = hcm_pb2.HttpConnectionManager()
                f.typed_config.Unpack(hcm)
                return list(hcm.http_filters)
        raise KeyError(f"no HCM on {name}")

    def http_rbac(self, name: str = "inbound|8000||-mtls") -> list[FilterConfig]:
        out: list[FilterConfig] = []
        for f in self.http_filters(name):
            config = http_rbac_pb2.RBAC()
            if self.typed_config(f).Unpack(config):
                out.append(config)
        return out

    def tcp_rbac(self, name: str = "inbound|5432||-mtls") -> list[FilterConfig]:
        out: list[FilterConfig] = []
        for f in self.chain(name).filters:
            config = network_rbac_pb2.RBAC()
            if self.typed_config(f).Unpack(config):
                out.append(config)
        return out

    def kinds(self, filters: list[hcm_pb2.HttpFilter] | list[lc.Filter]) -> list[str]:
        """The filters' kinds (``envoy.filters.http.rbac``, ...), whatever their names."""
        return [_KINDS.get(self.typed_config(f).type_url, f.name) for f in filters]


_KINDS = {
    "type.googleapis.com/" + http_rbac_pb2.RBAC.DESCRIPTOR.full_name: HTTP_RBAC,
    "type.googleapis.com/" + network_rbac_pb2.RBAC.DESCRIPTOR.full_name: NETWORK_RBAC,
}


def chains(ctx: PushContext, p: Proxy | None = None) -> Chains:
    out = translate(ctx, p or proxy())
    return Chains(list(out[LISTENER_TYPE]), {e.name: e for e in out.get(EXTENSION_CONFIG_TYPE, [])})


def http(ctx: PushContext, request: Request, p: Proxy | None = None) -> Outcome:
    return evaluate(chains(ctx, p).http_rbac(), request, JWT_KEY)


def tcp(ctx: PushContext, request: Request, p: Proxy | None = None, chain: str = "inbound|5432||-mtls") -> Outcome:
    return evaluate(chains(ctx, p).tcp_rbac(chain), request, JWT_KEY)


def get(path: str = "/", *, principal: str | None = "spiffe://cluster.local/ns/foo/sa/sleep", method: str = "GET",
        host: str = "httpbin.foo", port: int = 8000, headers: dict[str, str] | None = None, **kw: object) -> Request:
    """An HTTP request (mTLS from sleep in foo unless ``principal`` says otherwise)."""
    all_headers = {":method": method, ":path": path, ":authority": host, **(headers or {})}
    return Request(principal=principal, port=port, headers=all_headers, **kw)  # type: ignore[arg-type]


def connect(*, principal: str | None = "spiffe://cluster.local/ns/foo/sa/sleep", port: int = 5432,
            **kw: object) -> Request:
    return Request(principal=principal, port=port, **kw)  # type: ignore[arg-type]


def policy(name: str, spec: str, namespace: str = "foo", annotations: str = "") -> str:
    meta = f"{{name: {name}, namespace: {namespace}{', annotations: ' + annotations if annotations else ''}}}"
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    return f"---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {meta}\nspec:\n{body}\n"
