"""The Kubernetes Gateway API (gateway.networking.k8s.io): GatewayClass, Gateway, ListenerSet,
HTTPRoute, GRPCRoute, TLSRoute, TCPRoute and ReferenceGrant, as typed frozen models.

The Gateway API ``Gateway`` is stored as ``KubernetesGateway`` (Istio's internal name for it),
since ``Gateway`` is the Istio kind. Enumerations the API server would check (protocols, match
types, filter types) are plain strings here: Istio accepts unknown values and reports them in
status (``UnsupportedProtocol``, ``InvalidFilter``, ...), and so does the conversion.
Experimental fields the conversion does not read are kept as opaque JSON (``object``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import ClassVar

from controlplane.model.base import ObjectMeta, Resource
from controlplane.model.decode import jfield
from controlplane.model.frozen import EMPTY

GROUP = "gateway.networking.k8s.io"

# --- shared references -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParentReference:
    name: str
    group: str | None = None  # None: gateway.networking.k8s.io
    kind: str | None = None  # None: Gateway
    namespace: str | None = None  # None: the route's namespace
    section_name: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class BackendObjectReference:
    name: str
    group: str | None = None  # None: core ("")
    kind: str | None = None  # None: Service
    namespace: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class SecretObjectReference:
    name: str
    group: str | None = None
    kind: str | None = None  # None: Secret
    namespace: str | None = None


@dataclass(frozen=True, slots=True)
class LabelSelectorRequirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KubeLabelSelector:
    """A Kubernetes ``metav1.LabelSelector`` (matchLabels and matchExpressions)."""

    match_labels: Mapping[str, str] = field(default=EMPTY)
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()


# --- GatewayClass ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayClassSpec:
    controller_name: str
    parameters_ref: object = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class GatewayClass(Resource):
    KIND: ClassVar[str] = "GatewayClass"
    meta: ObjectMeta
    spec: GatewayClassSpec


# --- Gateway ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteNamespaces:
    from_: str = jfield("from", default="Same")  # Same, All, Selector (None for allowedListeners)
    selector: KubeLabelSelector | None = None


@dataclass(frozen=True, slots=True)
class RouteGroupKind:
    kind: str
    group: str | None = None  # None: gateway.networking.k8s.io


@dataclass(frozen=True, slots=True)
class AllowedRoutes:
    namespaces: RouteNamespaces | None = None
    kinds: tuple[RouteGroupKind, ...] = ()


@dataclass(frozen=True, slots=True)
class GatewayTLSConfig:
    mode: str = "Terminate"  # Terminate, Passthrough
    certificate_refs: tuple[SecretObjectReference, ...] = ()
    options: Mapping[str, str] = field(default=EMPTY)
    frontend_validation: object = None


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    port: int
    protocol: str
    hostname: str | None = None
    tls: GatewayTLSConfig | None = None
    allowed_routes: AllowedRoutes | None = None


@dataclass(frozen=True, slots=True)
class GatewayAddress:
    value: str
    type: str = "IPAddress"  # IPAddress, Hostname, NamedAddress


@dataclass(frozen=True, slots=True)
class ObjectReference:
    """A reference to any object (``caCertificateRefs``: a ConfigMap or Secret)."""

    group: str
    kind: str
    name: str
    namespace: str | None = None


@dataclass(frozen=True, slots=True)
class FrontendTLSValidation:
    """How a Gateway checks its clients' certificates (GEP-91)."""

    ca_certificate_refs: tuple[ObjectReference, ...] = ()
    mode: str = "AllowValidOnly"  # AllowValidOnly, AllowInsecureFallback


@dataclass(frozen=True, slots=True)
class FrontendTLSConfig:
    validation: FrontendTLSValidation | None = None


@dataclass(frozen=True, slots=True)
class FrontendTLSPort:
    port: int
    tls: FrontendTLSConfig


@dataclass(frozen=True, slots=True)
class FrontendTLS:
    default: FrontendTLSConfig = field(default_factory=FrontendTLSConfig)
    per_port: tuple[FrontendTLSPort, ...] = ()

    def for_port(self, port: int) -> FrontendTLSConfig:
        """The port's own settings, else the default (per-port ones replace the default)."""
        return next((p.tls for p in self.per_port if p.port == port), self.default)


@dataclass(frozen=True, slots=True)
class GatewayTLS:
    frontend: FrontendTLS | None = None
    backend: object = None


@dataclass(frozen=True, slots=True)
class ListenerNamespaces:
    from_: str = jfield("from", default="None")  # None, Same, All, Selector
    selector: KubeLabelSelector | None = None


@dataclass(frozen=True, slots=True)
class AllowedListeners:
    """Which namespaces' ListenerSets may attach to the Gateway (none by default)."""

    namespaces: ListenerNamespaces | None = None


@dataclass(frozen=True, slots=True)
class LocalParametersReference:
    group: str
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class GatewayInfrastructure:
    """What the deployment made for the Gateway carries; ``parametersRef`` names a ConfigMap of
    the Gateway's namespace with its customizations (checked, not applied: no deployment here)."""

    labels: Mapping[str, str] = field(default=EMPTY)
    annotations: Mapping[str, str] = field(default=EMPTY)
    parameters_ref: LocalParametersReference | None = None


@dataclass(frozen=True, slots=True)
class GatewaySpec:
    gateway_class_name: str
    listeners: tuple[Listener, ...] = ()
    addresses: tuple[GatewayAddress, ...] = ()
    infrastructure: GatewayInfrastructure | None = None
    allowed_listeners: AllowedListeners | None = None
    tls: GatewayTLS | None = None
    backend_tls: object = jfield("backendTLS", default=None)


@dataclass(frozen=True, slots=True)
class KubernetesGateway(Resource):
    """The Gateway API ``Gateway`` (document kind ``Gateway``, store kind ``KubernetesGateway``)."""

    KIND: ClassVar[str] = "KubernetesGateway"
    meta: ObjectMeta
    spec: GatewaySpec


# --- ListenerSet -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListenerSetParentReference:
    name: str
    group: str | None = None  # None: gateway.networking.k8s.io
    kind: str | None = None  # None: Gateway
    namespace: str | None = None  # None: the ListenerSet's namespace


@dataclass(frozen=True, slots=True)
class ListenerEntry:
    """A ListenerSet's listener: a Gateway listener whose port may be left out (then the
    protocol's: 80 for HTTP, 443 for HTTPS and TLS)."""

    name: str
    protocol: str
    port: int = 0
    hostname: str | None = None
    tls: GatewayTLSConfig | None = None
    allowed_routes: AllowedRoutes | None = None

    def as_listener(self) -> Listener:
        port = self.port or (80 if self.protocol == "HTTP" else 443 if self.protocol in ("HTTPS", "TLS") else 0)
        return Listener(self.name, port, self.protocol, self.hostname, self.tls, self.allowed_routes)


@dataclass(frozen=True, slots=True)
class ListenerSetSpec:
    parent_ref: ListenerSetParentReference
    listeners: tuple[ListenerEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class ListenerSet(Resource):
    """Listeners added to a Gateway from another object (and namespace) than the Gateway's."""

    KIND: ClassVar[str] = "ListenerSet"
    meta: ObjectMeta
    spec: ListenerSetSpec


# --- HTTPRoute -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HTTPPathMatch:
    type: str = "PathPrefix"  # Exact, PathPrefix, RegularExpression
    value: str = "/"


@dataclass(frozen=True, slots=True)
class HTTPHeaderMatch:
    name: str
    value: str
    type: str = "Exact"  # Exact, RegularExpression


@dataclass(frozen=True, slots=True)
class HTTPRouteMatch:
    path: HTTPPathMatch | None = None
    headers: tuple[HTTPHeaderMatch, ...] = ()
    query_params: tuple[HTTPHeaderMatch, ...] = ()
    method: str | None = None


@dataclass(frozen=True, slots=True)
class HTTPHeader:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class HTTPHeaderFilter:
    set: tuple[HTTPHeader, ...] = ()
    add: tuple[HTTPHeader, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HTTPPathModifier:
    type: str  # ReplaceFullPath, ReplacePrefixMatch
    replace_full_path: str | None = None
    replace_prefix_match: str | None = None


@dataclass(frozen=True, slots=True)
class HTTPRequestRedirectFilter:
    scheme: str | None = None
    hostname: str | None = None
    path: HTTPPathModifier | None = None
    port: int | None = None
    status_code: int | None = None


@dataclass(frozen=True, slots=True)
class HTTPURLRewriteFilter:
    hostname: str | None = None
    path: HTTPPathModifier | None = None


@dataclass(frozen=True, slots=True)
class Fraction:
    numerator: int
    denominator: int = 100


@dataclass(frozen=True, slots=True)
class HTTPRequestMirrorFilter:
    backend_ref: BackendObjectReference
    percent: int | None = None
    fraction: Fraction | None = None


@dataclass(frozen=True, slots=True)
class HTTPCORSFilter:
    allow_origins: tuple[str, ...] = ()
    allow_credentials: bool = False
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int = 0  # seconds; 0: unset


@dataclass(frozen=True, slots=True)
class LocalObjectReference:
    group: str
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class HTTPRouteFilter:
    type: str
    request_header_modifier: HTTPHeaderFilter | None = None
    response_header_modifier: HTTPHeaderFilter | None = None
    request_mirror: HTTPRequestMirrorFilter | None = None
    request_redirect: HTTPRequestRedirectFilter | None = None
    url_rewrite: HTTPURLRewriteFilter | None = None
    cors: HTTPCORSFilter | None = None
    extension_ref: LocalObjectReference | None = None
    external_auth: object = None


@dataclass(frozen=True, slots=True)
class HTTPBackendRef:
    name: str
    group: str | None = None
    kind: str | None = None
    namespace: str | None = None
    port: int | None = None
    weight: int | None = None  # None: 1
    filters: tuple[HTTPRouteFilter, ...] = ()

    @property
    def ref(self) -> BackendObjectReference:
        return BackendObjectReference(self.name, self.group, self.kind, self.namespace, self.port)


@dataclass(frozen=True, slots=True)
class HTTPRouteTimeouts:
    request: timedelta | None = None
    backend_request: timedelta | None = None


@dataclass(frozen=True, slots=True)
class HTTPRouteRetry:
    codes: tuple[int, ...] = ()
    attempts: int | None = None
    backoff: timedelta | None = None


@dataclass(frozen=True, slots=True)
class HTTPRouteRule:
    name: str | None = None
    matches: tuple[HTTPRouteMatch, ...] = ()
    filters: tuple[HTTPRouteFilter, ...] = ()
    backend_refs: tuple[HTTPBackendRef, ...] = ()
    timeouts: HTTPRouteTimeouts | None = None
    retry: HTTPRouteRetry | None = None
    session_persistence: object = None


@dataclass(frozen=True, slots=True)
class HTTPRouteSpec:
    parent_refs: tuple[ParentReference, ...] = ()
    hostnames: tuple[str, ...] = ()
    rules: tuple[HTTPRouteRule, ...] = ()


@dataclass(frozen=True, slots=True)
class HTTPRoute(Resource):
    KIND: ClassVar[str] = "HTTPRoute"
    meta: ObjectMeta
    spec: HTTPRouteSpec


# --- GRPCRoute -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GRPCMethodMatch:
    type: str = "Exact"  # Exact, RegularExpression
    service: str | None = None
    method: str | None = None


@dataclass(frozen=True, slots=True)
class GRPCRouteMatch:
    method: GRPCMethodMatch | None = None
    headers: tuple[HTTPHeaderMatch, ...] = ()


@dataclass(frozen=True, slots=True)
class GRPCRouteRule:
    name: str | None = None
    matches: tuple[GRPCRouteMatch, ...] = ()
    filters: tuple[HTTPRouteFilter, ...] = ()
    backend_refs: tuple[HTTPBackendRef, ...] = ()
    session_persistence: object = None


@dataclass(frozen=True, slots=True)
class GRPCRouteSpec:
    parent_refs: tuple[ParentReference, ...] = ()
    hostnames: tuple[str, ...] = ()
    rules: tuple[GRPCRouteRule, ...] = ()


@dataclass(frozen=True, slots=True)
class GRPCRoute(Resource):
    KIND: ClassVar[str] = "GRPCRoute"
    meta: ObjectMeta
    spec: GRPCRouteSpec


# --- TLSRoute and TCPRoute -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackendRef:
    name: str
    group: str | None = None
    kind: str | None = None
    namespace: str | None = None
    port: int | None = None
    weight: int | None = None

    @property
    def ref(self) -> BackendObjectReference:
        return BackendObjectReference(self.name, self.group, self.kind, self.namespace, self.port)


@dataclass(frozen=True, slots=True)
class L4RouteRule:
    name: str | None = None
    backend_refs: tuple[BackendRef, ...] = ()


@dataclass(frozen=True, slots=True)
class TLSRouteSpec:
    parent_refs: tuple[ParentReference, ...] = ()
    hostnames: tuple[str, ...] = ()
    rules: tuple[L4RouteRule, ...] = ()


@dataclass(frozen=True, slots=True)
class TLSRoute(Resource):
    KIND: ClassVar[str] = "TLSRoute"
    meta: ObjectMeta
    spec: TLSRouteSpec


@dataclass(frozen=True, slots=True)
class TCPRouteSpec:
    parent_refs: tuple[ParentReference, ...] = ()
    rules: tuple[L4RouteRule, ...] = ()


@dataclass(frozen=True, slots=True)
class TCPRoute(Resource):
    KIND: ClassVar[str] = "TCPRoute"
    meta: ObjectMeta
    spec: TCPRouteSpec


# --- ReferenceGrant --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReferenceGrantFrom:
    group: str
    kind: str
    namespace: str


@dataclass(frozen=True, slots=True)
class ReferenceGrantTo:
    group: str
    kind: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ReferenceGrantSpec:
    from_: tuple[ReferenceGrantFrom, ...] = jfield("from", default=())
    to: tuple[ReferenceGrantTo, ...] = ()


@dataclass(frozen=True, slots=True)
class ReferenceGrant(Resource):
    KIND: ClassVar[str] = "ReferenceGrant"
    meta: ObjectMeta
    spec: ReferenceGrantSpec


# --- BackendTLSPolicy -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyTargetReference:
    """A Service or ServiceEntry of the policy's namespace, optionally one port by name."""

    group: str
    kind: str
    name: str
    section_name: str | None = None


@dataclass(frozen=True, slots=True)
class SubjectAltName:
    type: str  # Hostname or URI
    hostname: str = ""
    uri: str = ""


@dataclass(frozen=True, slots=True)
class BackendTLSPolicyValidation:
    """How the gateway or sidecar checks the backend's certificate: against the CA of the
    first ``caCertificateRefs`` (a ConfigMap's ``ca.crt``) or the system's, for ``hostname``
    (also the SNI sent), or any of ``subjectAltNames``."""

    hostname: str = ""
    ca_certificate_refs: tuple[ObjectReference, ...] = ()
    well_known_ca_certificates: str | None = jfield("wellKnownCACertificates", default=None)
    subject_alt_names: tuple[SubjectAltName, ...] = ()


@dataclass(frozen=True, slots=True)
class BackendTLSPolicySpec:
    target_refs: tuple[PolicyTargetReference, ...] = ()
    validation: BackendTLSPolicyValidation = field(default_factory=BackendTLSPolicyValidation)
    options: Mapping[str, str] = field(default=EMPTY)


@dataclass(frozen=True, slots=True)
class BackendTLSPolicy(Resource):
    """TLS from gateways and sidecars to a backend Service or ServiceEntry (GEP-1897)."""

    KIND: ClassVar[str] = "BackendTLSPolicy"
    meta: ObjectMeta
    spec: BackendTLSPolicySpec


# --- XBackendTrafficPolicy (gateway.networking.x-k8s.io, experimental) -------------------------

X_GROUP = "gateway.networking.x-k8s.io"


@dataclass(frozen=True, slots=True)
class BudgetDetails:
    percent: int | None = None  # of active requests that may be retries
    interval: timedelta | None = None


@dataclass(frozen=True, slots=True)
class RequestRate:
    count: int | None = None
    interval: timedelta | None = None


@dataclass(frozen=True, slots=True)
class RetryConstraint:
    budget: BudgetDetails = field(default_factory=BudgetDetails)
    min_retry_rate: RequestRate | None = None


@dataclass(frozen=True, slots=True)
class XBackendTrafficPolicySpec:
    target_refs: tuple[PolicyTargetReference, ...] = ()
    retry_constraint: RetryConstraint | None = None
    session_persistence: object = None  # not supported (Istio's status says so)


@dataclass(frozen=True, slots=True)
class XBackendTrafficPolicy(Resource):
    """How gateways and sidecars treat calls to a Service: a retry budget (GEP-3388)."""

    KIND: ClassVar[str] = "XBackendTrafficPolicy"
    meta: ObjectMeta
    spec: XBackendTrafficPolicySpec


ROUTE_KINDS = (HTTPRoute.KIND, GRPCRoute.KIND, TLSRoute.KIND, TCPRoute.KIND)
GATEWAY_API_KINDS = frozenset(
    {GatewayClass.KIND, KubernetesGateway.KIND, ListenerSet.KIND, ReferenceGrant.KIND, BackendTLSPolicy.KIND,
     XBackendTrafficPolicy.KIND, *ROUTE_KINDS}
)
AnyRoute = HTTPRoute | GRPCRoute | TLSRoute | TCPRoute
