"""What the xDS protocol tests share: the node, small snapshots, reading responses, the usual
CDS/EDS handshake, a core with tight limits, and a self-signed serving certificate."""

from __future__ import annotations

import datetime
from dataclasses import replace

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controlplane.xds import SnapshotCache, XdsCore, types
from controlplane.xds.limits import UNLIMITED, Refused, XdsLimits
from tests.harness import xds_resources as r
from tests.harness.xds_double import StreamDouble, ack, sotw_request

NODE = "sidecar~127.0.0.1~a.default~default.svc.cluster.local"
CLUSTERS = ("a", "b", "c")


def base_snapshot(*, timeout_ms: int = 1000, port: int = 8080, extra_cluster: bool = True):
    """Clusters a (and b), their assignments, one listener and two route configurations."""
    clusters = [r.cluster("a", timeout_ms=timeout_ms)]
    endpoints = [r.assignment("a", [("127.0.0.1", port)])]
    if extra_cluster:
        clusters.append(r.cluster("b"))
        endpoints.append(r.assignment("b", [("127.0.0.2", 8080)]))
    return r.snapshot(
        clusters=clusters,
        endpoints=endpoints,
        listeners=[r.http_listener("l1", "127.0.0.1", 10000, "routes")],
        routes=[r.route_config("routes", [("/", "a")]), r.route_config("other", [("/", "b")])],
    )


def snapshot(ports: dict[str, int] | None = None, *, timeouts: dict[str, int] | None = None):
    """Clusters a, b and c with their assignments (ports and timeouts overridable)."""
    ports = {name: 8080 for name in CLUSTERS} | (ports or {})
    timeouts = timeouts or {}
    return r.snapshot(
        clusters=[r.cluster(n, timeout_ms=timeouts.get(n, 1000)) for n in CLUSTERS],
        endpoints=[r.assignment(n, [("127.0.0.1", ports[n])]) for n in CLUSTERS],
        listeners=[r.http_listener("l1", "127.0.0.1", 10000, "routes")],
        routes=[r.route_config("routes", [("/", "a")]), r.route_config("other", [("/", "b")])],
    )


def names(response) -> list[str]:
    """The names of a SotW response's resources, sorted."""
    return sorted(r.decode_resources(response))


def port_of(response, name: str) -> int:
    assignment = r.decode_resources(response)[name]
    return assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value


async def connect_cds(ads: StreamDouble):
    """A SotW CDS request with the node, answered and ACKed; returns the response."""
    ads.send(sotw_request(types.CLUSTER, node_id=NODE))
    response = await ads.recv()
    ads.send(ack(response))
    return response


async def subscribe_all(ads: StreamDouble, eds_names=CLUSTERS):
    """CDS then EDS, both ACKed; returns the EDS response."""
    ads.send(sotw_request(types.CLUSTER, node_id=NODE))
    cds = await ads.recv()
    ads.send(ack(cds))
    ads.send(sotw_request(types.ENDPOINT, eds_names))
    eds = await ads.recv()
    assert names(eds) == sorted(eds_names)
    ads.send(ack(eds, eds_names))
    await ads.settle()
    return eds


def count_plans(stream, method: str = "_plan_delta") -> list[str]:
    """Record each full plan the stream makes (by type): delta's, or SotW's (``_plan_sotw``)."""
    planned: list[str] = []
    plan = getattr(stream, method)

    def counting(state, view):
        planned.append(types.short_name(state.type_url))
        return plan(state, view)

    setattr(stream, method, counting)
    return planned


# --- limits -----------------------------------------------------------------------------------

SMALL = replace(
    UNLIMITED,
    max_request_bytes=4000,
    max_names_per_subscription=10,
    max_names_per_stream=15,
    max_name_bytes=100,
    max_types_per_stream=4,
    max_streams_per_identity=2,
    max_streams_per_peer=2,
    max_kept_text=200,
)


def limited(cache: SnapshotCache, limits: XdsLimits = SMALL, **kwargs) -> XdsCore:
    cache.set_snapshot("g", base_snapshot())
    return XdsCore(cache, group_of=lambda node, identity: "g", limits=limits, **kwargs)


def eds_names(count: int, start: int = 0) -> list[str]:
    return [f"outbound|80||s{i}.default.svc.cluster.local" for i in range(start, start + count)]


async def refusal(ads: StreamDouble) -> Refused:
    error = await ads.ended()
    assert isinstance(error, Refused), error
    return error


# --- TLS --------------------------------------------------------------------------------------


def self_signed(host: str) -> tuple[bytes, bytes]:
    """A self-signed CA certificate for ``host`` and its key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
