"""networking.istio.io VirtualService: how requests to a host are routed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import ClassVar, Literal

from controlplane.model.base import ObjectMeta, Resource
from controlplane.model.common import Percent, PortSelector, StringMatch
from controlplane.model.frozen import EMPTY


@dataclass(frozen=True, slots=True)
class Destination:
    host: str = ""
    subset: str = ""
    port: PortSelector | None = None


@dataclass(frozen=True, slots=True)
class HeaderOperations:
    set: Mapping[str, str] = field(default=EMPTY)
    add: Mapping[str, str] = field(default=EMPTY)
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Headers:
    request: HeaderOperations | None = None
    response: HeaderOperations | None = None


@dataclass(frozen=True, slots=True)
class HTTPMatchRequest:
    name: str = ""
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: Mapping[str, StringMatch] = field(default=EMPTY)
    port: int = 0
    source_labels: Mapping[str, str] = field(default=EMPTY)
    gateways: tuple[str, ...] = ()
    query_params: Mapping[str, StringMatch] = field(default=EMPTY)
    ignore_uri_case: bool = False
    without_headers: Mapping[str, StringMatch] = field(default=EMPTY)
    source_namespace: str = ""
    stat_prefix: str = ""


@dataclass(frozen=True, slots=True)
class HTTPRouteDestination:
    destination: Destination | None = None
    weight: int = 0
    headers: Headers | None = None


@dataclass(frozen=True, slots=True)
class RouteDestination:
    destination: Destination | None = None
    weight: int = 0


# A redirect ``uri`` starting with this replaces only the matched prefix (``%PREFIX()%/new``),
# as Istio's translateRedirect; the Gateway API's ReplacePrefixMatch converts to it.
PREFIX_REDIRECT = "%PREFIX()%"


@dataclass(frozen=True, slots=True)
class HTTPRedirect:
    uri: str = ""
    authority: str = ""
    port: int = 0
    derive_port: Literal["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"] | None = None
    scheme: str = ""
    redirect_code: int = 0  # 0 means 301


@dataclass(frozen=True, slots=True)
class HTTPBody:
    string: str | None = None
    bytes: str | None = None  # base64, as in proto JSON


@dataclass(frozen=True, slots=True)
class HTTPDirectResponse:
    status: int = 0
    body: HTTPBody | None = None


@dataclass(frozen=True, slots=True)
class Delegate:
    name: str = ""
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class RegexRewrite:
    match: str = ""
    rewrite: str = ""


@dataclass(frozen=True, slots=True)
class HTTPRewrite:
    uri: str = ""
    authority: str = ""
    uri_regex_rewrite: RegexRewrite | None = None


@dataclass(frozen=True, slots=True)
class HTTPRetry:
    attempts: int = 0
    per_try_timeout: timedelta | None = None
    retry_on: str = ""
    retry_remote_localities: bool | None = None
    retry_ignore_previous_hosts: bool | None = None
    backoff: timedelta | None = None


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    allow_origins: tuple[StringMatch, ...] = ()
    allow_origin: tuple[str, ...] = ()  # deprecated, exact origins
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: timedelta | None = None
    allow_credentials: bool | None = None
    unmatched_preflights: Literal["UNSPECIFIED", "FORWARD", "IGNORE"] = "UNSPECIFIED"


@dataclass(frozen=True, slots=True)
class FaultDelay:
    fixed_delay: timedelta | None = None
    exponential_delay: timedelta | None = None
    percentage: Percent | None = None
    percent: int | None = None  # deprecated integer percentage


@dataclass(frozen=True, slots=True)
class FaultAbort:
    http_status: int | None = None
    grpc_status: str | None = None
    http2_error: str | None = None
    percentage: Percent | None = None


@dataclass(frozen=True, slots=True)
class HTTPFaultInjection:
    delay: FaultDelay | None = None
    abort: FaultAbort | None = None


@dataclass(frozen=True, slots=True)
class HTTPMirrorPolicy:
    destination: Destination | None = None
    percentage: Percent | None = None


@dataclass(frozen=True, slots=True)
class HTTPRoute:
    name: str = ""
    match: tuple[HTTPMatchRequest, ...] = ()
    route: tuple[HTTPRouteDestination, ...] = ()
    redirect: HTTPRedirect | None = None
    direct_response: HTTPDirectResponse | None = None
    delegate: Delegate | None = None
    rewrite: HTTPRewrite | None = None
    timeout: timedelta | None = None
    retries: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None
    mirror: Destination | None = None
    mirrors: tuple[HTTPMirrorPolicy, ...] = ()
    mirror_percent: int | None = None  # deprecated
    mirror_percentage: Percent | None = None
    cors_policy: CorsPolicy | None = None
    headers: Headers | None = None


@dataclass(frozen=True, slots=True)
class TLSMatchAttributes:
    sni_hosts: tuple[str, ...] = ()
    destination_subnets: tuple[str, ...] = ()
    port: int = 0
    source_labels: Mapping[str, str] = field(default=EMPTY)
    gateways: tuple[str, ...] = ()
    source_namespace: str = ""


@dataclass(frozen=True, slots=True)
class L4MatchAttributes:
    destination_subnets: tuple[str, ...] = ()
    port: int = 0
    source_subnet: str = ""  # deprecated
    source_labels: Mapping[str, str] = field(default=EMPTY)
    gateways: tuple[str, ...] = ()
    source_namespace: str = ""


@dataclass(frozen=True, slots=True)
class TLSRoute:
    match: tuple[TLSMatchAttributes, ...] = ()
    route: tuple[RouteDestination, ...] = ()


@dataclass(frozen=True, slots=True)
class TCPRoute:
    match: tuple[L4MatchAttributes, ...] = ()
    route: tuple[RouteDestination, ...] = ()


@dataclass(frozen=True, slots=True)
class VirtualServiceSpec:
    hosts: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    http: tuple[HTTPRoute, ...] = ()
    tls: tuple[TLSRoute, ...] = ()
    tcp: tuple[TCPRoute, ...] = ()
    export_to: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VirtualService(Resource):
    KIND: ClassVar[str] = "VirtualService"
    meta: ObjectMeta
    spec: VirtualServiceSpec
