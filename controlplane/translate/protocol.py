"""Which protocol a port speaks, from appProtocol or the port name prefix (as Istio)."""

from __future__ import annotations

HTTP = "HTTP"
HTTP2 = "HTTP2"
GRPC = "GRPC"
GRPC_WEB = "GRPC-Web"
HTTPS = "HTTPS"
TLS = "TLS"
TCP = "TCP"
MONGO = "Mongo"
REDIS = "Redis"
MYSQL = "MySQL"
UNSUPPORTED = "UNSUPPORTED"  # sniffed by Istio; we treat it as TCP

_BY_PREFIX = {
    "http": HTTP,
    "http2": HTTP2,
    "grpc": GRPC,
    "grpc-web": GRPC_WEB,
    "https": HTTPS,
    "tls": TLS,
    "tcp": TCP,
    "mongo": MONGO,
    "redis": REDIS,
    "mysql": MYSQL,
    "h2c": HTTP2,
}


def parse_protocol(value: str) -> str:
    """Protocol from a name such as ``http``, ``HTTP2``, ``grpc-web``, ``kubernetes.io/h2c``."""
    v = (value or "").strip().lower()
    if v.startswith("kubernetes.io/"):
        v = v.removeprefix("kubernetes.io/")
        if v in ("h2c",):
            return HTTP2
        if v in ("ws", "wss"):
            return HTTP
    return _BY_PREFIX.get(v, UNSUPPORTED)


def port_protocol(name: str | None, app_protocol: str | None = None) -> str:
    """Istio's rule: appProtocol wins, else the name's prefix before the first '-'."""
    if app_protocol:
        proto = parse_protocol(app_protocol)
        if proto != UNSUPPORTED:
            return proto
    if not name:
        return UNSUPPORTED
    lname = name.lower()
    if lname.startswith("grpc-web"):
        return GRPC_WEB
    prefix = lname.split("-", 1)[0]
    return _BY_PREFIX.get(prefix, UNSUPPORTED)


def is_http(protocol: str) -> bool:
    return protocol in (HTTP, HTTP2, GRPC, GRPC_WEB)


def is_http2(protocol: str) -> bool:
    return protocol in (HTTP2, GRPC)


def is_tls(protocol: str) -> bool:
    return protocol in (HTTPS, TLS)
