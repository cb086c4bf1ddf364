"""The Istio certificate service over real gRPC on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from controlplane._proto.istio.security.v1alpha1 import ca_pb2, ca_pb2_grpc
from controlplane.auth import Authenticator, TokenIssuer
from controlplane.auth.ca_service import CertificateService, CsrLimits, add_certificate_service
from controlplane.auth.refusals import RefusalSummary
from controlplane.ca import (
    CAError,
    CertificateAuthority,
    SpiffeId,
    build_csr,
    build_intermediate,
    build_root,
    cert_pem,
    generate_key,
    load_ca_folder,
    load_certs_pem,
    new_root_signer,
    parse_csr,
    private_key_pem,
)
from controlplane.ca.keys import public_keys_equal
from controlplane.server.ca_service_metrics import MeteredCertificateService
from controlplane.server.metrics import Metrics
from tests.ca.svid_rules import assert_openssl_accepts, assert_x509_svid

REVIEWS = SpiffeId.for_workload("cluster.local", "default", "reviews")


@dataclass
class Harness:
    stub: ca_pb2_grpc.IstioCertificateServiceStub
    issuer: TokenIssuer
    holder: dict  # {"ca": CertificateAuthority}; replace to rotate

    @property
    def authority(self) -> CertificateAuthority:
        return self.holder["ca"]


async def _serve(authority: CertificateAuthority, issuer: TokenIssuer, credentials=None):
    holder = {"ca": authority}
    service = CertificateService(
        lambda: holder["ca"], Authenticator([issuer.verifier("cluster.local")])
    )
    server = grpc.aio.server()
    add_certificate_service(server, service)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    return server, port, holder


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    issuer = TokenIssuer(ec.generate_private_key(ec.SECP256R1()))
    server, port, holder = await _serve(CertificateAuthority.self_signed("cluster.local"), issuer)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Harness(ca_pb2_grpc.IstioCertificateServiceStub(channel), issuer, holder)
    finally:
        await channel.close()
        await server.stop(None)


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def _request(h: Harness, csr: bytes | str, token: str | None, validity: int = 0):
    request = ca_pb2.IstioCertificateRequest(
        csr=csr if isinstance(csr, str) else csr.decode(), validity_duration=validity
    )
    request.metadata.update({"WorkloadName": "reviews-v1", "ClusterID": "Kubernetes"})
    return await h.stub.CreateCertificate(
        request, metadata=_bearer(token) if token else None, timeout=10
    )


async def _status_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    return failure.value.code()


async def test_csr_is_signed_for_the_proven_identity(harness: Harness, tmp_path: Path) -> None:
    key = generate_key()
    response = await _request(
        harness, build_csr(key, REVIEWS), harness.issuer.mint("default", "reviews")
    )
    assert len(response.cert_chain) == 2  # leaf, root
    leaf = x509.load_pem_x509_certificate(response.cert_chain[0].encode())
    assert response.cert_chain[-1] == cert_pem(harness.authority.signer.root)
    assert public_keys_equal(leaf.public_key(), key.public_key())
    assert_x509_svid(leaf, spiffe_id=REVIEWS.uri, issuer=harness.authority.signer.root)
    assert_openssl_accepts(tmp_path, leaf, load_certs_pem(response.cert_chain[-1]))


async def test_requested_validity_is_honoured_up_to_the_maximum(harness: Harness) -> None:
    token = harness.issuer.mint("default", "reviews")
    short = await _request(harness, build_csr(generate_key(), REVIEWS), token, validity=3600)
    leaf = x509.load_pem_x509_certificate(short.cert_chain[0].encode())
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= timedelta(hours=1, minutes=5)
    long = await _request(harness, build_csr(generate_key(), REVIEWS), token, validity=90 * 86400)
    leaf = x509.load_pem_x509_certificate(long.cert_chain[0].encode())
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= timedelta(hours=24, minutes=5)


async def test_no_credential_is_unauthenticated(harness: Harness) -> None:
    code = await _status_of(_request(harness, build_csr(generate_key(), REVIEWS), None))
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_csr_for_another_identity_is_permission_denied(harness: Harness) -> None:
    token = harness.issuer.mint("default", "reviews")
    for other in (
        SpiffeId.for_workload("cluster.local", "default", "ratings"),
        SpiffeId.for_workload("cluster.local", "istio-system", "reviews"),
        SpiffeId.for_workload("other.domain", "default", "reviews"),
    ):
        code = await _status_of(_request(harness, build_csr(generate_key(), other), token))
        assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_csr_with_extra_dns_names_is_permission_denied(harness: Harness) -> None:
    from cryptography.hazmat.primitives import hashes, serialization

    key = generate_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier(REVIEWS.uri),
                    x509.DNSName("istiod.istio-system.svc"),
                ]
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    code = await _status_of(_request(harness, csr, harness.issuer.mint("default", "reviews")))
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_expired_token_is_unauthenticated(harness: Harness) -> None:
    past = TokenIssuer(harness.issuer.key, clock=lambda: datetime.now(UTC) - timedelta(days=3))
    token = past.mint("default", "reviews", ttl=timedelta(days=1))
    code = await _status_of(_request(harness, build_csr(generate_key(), REVIEWS), token))
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_forged_token_is_unauthenticated(harness: Harness) -> None:
    forger = TokenIssuer(ec.generate_private_key(ec.SECP256R1()))
    code = await _status_of(
        _request(harness, build_csr(generate_key(), REVIEWS), forger.mint("default", "reviews"))
    )
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_alg_none_token_is_unauthenticated(harness: Harness) -> None:
    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(datetime.now(UTC).timestamp())
    claims = {
        "iss": "controlplane",
        "aud": ["istio-ca"],
        "sub": "system:serviceaccount:default:reviews",
        "iat": now,
        "exp": now + 3600,
        "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "reviews"}},
    }
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    code = await _status_of(_request(harness, build_csr(generate_key(), REVIEWS), token))
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_csr_that_is_not_a_csr_is_invalid_argument(harness: Harness) -> None:
    code = await _status_of(
        _request(harness, "not a csr", harness.issuer.mint("default", "reviews"))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_rotation_applies_to_the_next_request(harness: Harness, tmp_path: Path) -> None:
    token = harness.issuer.mint("default", "reviews")
    old_root = harness.authority.signer.root
    new_signer = new_root_signer("cluster.local", now=datetime.now(UTC))
    harness.holder["ca"] = harness.authority.with_trusted_root(new_signer.root)
    overlap = await _request(harness, build_csr(generate_key(), REVIEWS), token)
    assert load_certs_pem(overlap.cert_chain[-1]) == [old_root, new_signer.root]
    harness.holder["ca"] = harness.authority.with_signer(new_signer)
    rotated = await _request(harness, build_csr(generate_key(), REVIEWS), token)
    leaf = x509.load_pem_x509_certificate(rotated.cert_chain[0].encode())
    assert_x509_svid(leaf, spiffe_id=REVIEWS.uri, issuer=new_signer.root)
    assert_openssl_accepts(tmp_path, leaf, load_certs_pem(rotated.cert_chain[-1]))


async def test_plugged_in_intermediate_chain_is_leaf_intermediate_root(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    root_key, ca_key = generate_key(), generate_key()
    root = build_root(root_key, trust_domain="cluster.local", now=now)
    intermediate = build_intermediate(
        ca_key, issuer_cert=root, issuer_key=root_key, trust_domain="cluster.local", now=now
    )
    folder = tmp_path / "cacerts"
    folder.mkdir()
    (folder / "ca-key.pem").write_bytes(private_key_pem(ca_key))
    (folder / "ca-key.pem").chmod(0o600)
    (folder / "ca-cert.pem").write_text(cert_pem(intermediate))
    (folder / "cert-chain.pem").write_text(cert_pem(intermediate) + cert_pem(root))
    (folder / "root-cert.pem").write_text(cert_pem(root))
    issuer = TokenIssuer(ec.generate_private_key(ec.SECP256R1()))
    server, port, _ = await _serve(load_ca_folder(folder, "cluster.local"), issuer)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = ca_pb2_grpc.IstioCertificateServiceStub(channel)
            response = await _request(
                Harness(stub, issuer, {}),
                build_csr(generate_key(), REVIEWS),
                issuer.mint("default", "reviews"),
            )
    finally:
        await server.stop(None)
    assert response.cert_chain[1:] == [cert_pem(intermediate), cert_pem(root)]
    leaf = x509.load_pem_x509_certificate(response.cert_chain[0].encode())
    assert_x509_svid(leaf, spiffe_id=REVIEWS.uri, issuer=intermediate, chain_above=(root,))
    assert_openssl_accepts(tmp_path, leaf, [root], intermediates=[intermediate])


async def test_served_over_tls_with_the_control_plane_server_certificate() -> None:
    authority = CertificateAuthority.self_signed("cluster.local")
    server_cert = authority.issue_server()
    credentials = grpc.ssl_server_credentials(
        [(server_cert.private_key_pem, server_cert.chain_pem.encode())]
    )
    issuer = TokenIssuer(ec.generate_private_key(ec.SECP256R1()))
    server, port, _ = await _serve(authority, issuer, credentials)
    try:
        trusted = grpc.ssl_channel_credentials(root_certificates=authority.bundle.pem.encode())
        for target, options in (
            (f"127.0.0.1:{port}", ()),  # the IP SAN
            (f"127.0.0.1:{port}", (("grpc.ssl_target_name_override", "istiod.istio-system.svc"),)),
        ):
            async with grpc.aio.secure_channel(target, trusted, options=options) as channel:
                stub = ca_pb2_grpc.IstioCertificateServiceStub(channel)
                response = await _request(
                    Harness(stub, issuer, {}),
                    build_csr(generate_key(), REVIEWS),
                    issuer.mint("default", "reviews"),
                )
                assert len(response.cert_chain) == 2
        # A client trusting another root refuses the handshake.
        stranger = CertificateAuthority.self_signed("cluster.local")
        untrusting = grpc.ssl_channel_credentials(root_certificates=stranger.bundle.pem.encode())
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", untrusting) as channel:
            stub = ca_pb2_grpc.IstioCertificateServiceStub(channel)
            call = _request(
                Harness(stub, issuer, {}),
                build_csr(generate_key(), REVIEWS),
                issuer.mint("default", "reviews"),
            )
            assert await _status_of(call) == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(None)


async def test_no_key_or_token_in_logs(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    ca_key_pem = private_key_pem(harness.authority.signer.key).decode()
    token = harness.issuer.mint("default", "reviews")
    with caplog.at_level(logging.DEBUG):
        await _request(harness, build_csr(generate_key(), REVIEWS), token)
        await _status_of(
            _request(
                harness,
                build_csr(generate_key(), SpiffeId.for_workload("cluster.local", "x", "y")),
                token,
            )
        )
        await _status_of(_request(harness, "garbage", token))
    assert "issued certificate" in caplog.text  # the log is captured, so the check means something
    key_body = "".join(ca_key_pem.splitlines()[1:-1])
    for secret in (key_body, token, "PRIVATE KEY"):
        assert secret not in caplog.text


# --- floods, bad input ---------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class CountingAuthenticator(Authenticator):
    """Counts credential checks: the expensive step (a signature, or a TokenReview call)."""

    def __init__(self, verifiers) -> None:
        super().__init__(verifiers)
        object.__setattr__(self, "checks", 0)

    async def authenticate_token(self, token: str):
        object.__setattr__(self, "checks", self.checks + 1)
        return await super().authenticate_token(token)


@dataclass
class Limited:
    stub: ca_pb2_grpc.IstioCertificateServiceStub
    issuer: TokenIssuer
    service: CertificateService
    authenticator: CountingAuthenticator
    clock: Clock
    metrics: Metrics


@pytest.fixture
async def limited() -> AsyncIterator[Limited]:
    """Per identity 1/s (burst 3), per peer 1/s (burst 6), on a clock moved by hand."""
    issuer = TokenIssuer(ec.generate_private_key(ec.SECP256R1()))
    authenticator = CountingAuthenticator([issuer.verifier("cluster.local")])
    clock, metrics = Clock(), Metrics()
    limits = CsrLimits.of(identity_rate=1, identity_burst=3, peer_rate=1, peer_burst=6,
                          max_tracked=100, clock=clock)
    refusals = RefusalSummary(logging.getLogger("controlplane.auth.ca_service"),
                              "certificate requests", clock=clock)
    service = MeteredCertificateService(CertificateAuthority.self_signed("cluster.local"),
                                        authenticator, limits=limits, refusals=refusals,
                                        metrics=metrics)
    server = grpc.aio.server()
    add_certificate_service(server, service)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Limited(ca_pb2_grpc.IstioCertificateServiceStub(channel), issuer, service,
                      authenticator, clock, metrics)
    finally:
        refusals.flush()
        await channel.close()
        await server.stop(None)


async def _code(stub, csr: bytes | str, token: str | None, validity: int = 0) -> grpc.StatusCode:
    try:
        await _request(Harness(stub, None, {}), csr, token, validity)  # type: ignore[arg-type]
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def _metric(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_one_identity_is_rate_limited(limited: Limited) -> None:
    token = limited.issuer.mint("default", "reviews")
    csr = build_csr(generate_key(), REVIEWS)
    codes = [await _code(limited.stub, csr, token) for _ in range(4)]
    assert codes == [grpc.StatusCode.OK] * 3 + [grpc.StatusCode.RESOURCE_EXHAUSTED]
    # Another identity has its own budget; this one gets one more per second.
    ratings = SpiffeId.for_workload("cluster.local", "default", "ratings")
    assert await _code(limited.stub, build_csr(generate_key(), ratings),
                       limited.issuer.mint("default", "ratings")) == grpc.StatusCode.OK
    limited.clock.now += 1.0
    assert [await _code(limited.stub, csr, token) for _ in range(2)] == [
        grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert _metric(limited.metrics, "citadel_server_csr_rate_limited_count", limit="identity") == 2
    assert _metric(limited.metrics, "citadel_server_success_cert_issuance_count") == 5


async def test_one_peer_is_rate_limited_before_its_credential_is_checked(limited: Limited) -> None:
    forged = TokenIssuer(ec.generate_private_key(ec.SECP256R1())).mint("default", "reviews")
    csr = build_csr(generate_key(), REVIEWS)
    codes = [await _code(limited.stub, csr, forged) for _ in range(20)]
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 6 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 14
    assert limited.authenticator.checks == 6
    assert _metric(limited.metrics, "citadel_server_csr_rate_limited_count", limit="peer") == 14
    assert _metric(limited.metrics, "citadel_server_authentication_failure_count") == 6


async def test_no_credential_costs_nothing_and_is_logged_in_aggregate(
    limited: Limited, caplog: pytest.LogCaptureFixture
) -> None:
    csr = build_csr(generate_key(), REVIEWS)
    with caplog.at_level(logging.DEBUG, logger="controlplane"):
        codes = {await _code(limited.stub, csr, None) for _ in range(200)}
        assert codes == {grpc.StatusCode.UNAUTHENTICATED}
        assert limited.authenticator.checks == 0
        assert caplog.records == []  # not one line per request
        limited.service.refusals.flush()
    (record,) = caplog.records
    assert record.getMessage().startswith(
        "refused 200 certificate requests in 0 s: no_credential 200; most from 127.0.0.1 (200)")
    assert _metric(limited.metrics, "citadel_server_authentication_failure_count") == 200


@pytest.mark.parametrize("validity", [2**62, 2**63 - 1, -1, -(2**63)])
async def test_absurd_validity_is_invalid_argument(harness: Harness, validity: int) -> None:
    token = harness.issuer.mint("default", "reviews")
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await _request(harness, build_csr(generate_key(), REVIEWS), token, validity=validity)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "validity_duration must be" in (failure.value.details() or "")


async def test_oversize_csr_is_invalid_argument(harness: Harness) -> None:
    token = harness.issuer.mint("default", "reviews")
    big = build_csr(generate_key(), REVIEWS).decode() + "x" * (1024 * 1024)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await _request(harness, big, token)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 65536" in (failure.value.details() or "")


def _mutated_csr(old: bytes, new: bytes) -> str:
    from cryptography.hazmat.primitives import serialization

    der = x509.load_pem_x509_csr(build_csr(generate_key(), REVIEWS)).public_bytes(
        serialization.Encoding.DER
    )
    assert der.count(old) == 1
    body = base64.encodebytes(der.replace(old, new)).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"\x02\x01\x00", b"\x02\x01\x4b"),  # version 75
        (b"\x2a\x86\x48\xce\x3d\x02\x01", b"\x2a\x86\x48\xce\x3d\x02\x6c"),  # unknown key type
        (b"\x03\x42\x00\x04", b"\x03\x42\x00\x07"),  # not an EC point encoding
    ],
    ids=["version", "key-type", "ec-point"],
)
async def test_malformed_csr_der_is_invalid_argument(harness: Harness, old: bytes, new: bytes) -> None:
    token = harness.issuer.mint("default", "reviews")
    code = await _status_of(_request(harness, _mutated_csr(old, new), token))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_parse_csr_raises_only_caerror_on_mutated_der() -> None:
    import random

    from cryptography.hazmat.primitives import serialization

    der = x509.load_pem_x509_csr(build_csr(generate_key(), REVIEWS)).public_bytes(
        serialization.Encoding.DER
    )
    rng = random.Random(19)
    for _ in range(500):
        mutated = bytearray(der)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        pem = b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bytes(mutated))
        try:
            parse_csr(pem + b"-----END CERTIFICATE REQUEST-----\n")
        except CAError:
            pass


async def test_token_with_a_non_numeric_exp_is_unauthenticated(harness: Harness) -> None:
    import jwt

    from controlplane.auth.tokens import key_id

    now = int(datetime.now(UTC).timestamp())
    claims = {
        "iss": "controlplane", "aud": ["istio-ca"], "sub": "system:serviceaccount:default:reviews",
        "iat": now, "exp": "tomorrow", "jti": "0" * 32,
        "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "reviews"}},
    }
    token = jwt.encode(claims, harness.issuer.key, algorithm="ES256",
                       headers={"kid": key_id(harness.issuer.key.public_key())})
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await _request(harness, build_csr(generate_key(), REVIEWS), token)
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "'exp' is not a number" in (failure.value.details() or "")


async def test_the_authenticator_may_be_replaced_while_serving() -> None:
    """The runtime adds the Kubernetes verifier after the service is built."""
    first = TokenIssuer(ec.generate_private_key(ec.SECP256R1()))
    second = TokenIssuer(ec.generate_private_key(ec.SECP256R1()))
    holder = {"auth": Authenticator([first.verifier("cluster.local")])}
    service = CertificateService(CertificateAuthority.self_signed("cluster.local"),
                                 lambda: holder["auth"])
    server = grpc.aio.server()
    add_certificate_service(server, service)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = ca_pb2_grpc.IstioCertificateServiceStub(channel)
            csr = build_csr(generate_key(), REVIEWS)
            token = second.mint("default", "reviews")
            assert await _code(stub, csr, token) == grpc.StatusCode.UNAUTHENTICATED
            holder["auth"] = Authenticator([second.verifier("cluster.local")])
            assert await _code(stub, csr, token) == grpc.StatusCode.OK
    finally:
        await server.stop(None)
