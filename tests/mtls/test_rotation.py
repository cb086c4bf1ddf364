"""Certificate rotation under traffic: with a lifetime of a few seconds, the runtime renews each
sidecar's SVID at half life and pushes it over SDS; Envoy swaps it in while every request
(each on a new mTLS connection) keeps succeeding. And the CA's clock-skew backdate no longer
makes short lifetimes renew in a loop."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controlplane.ca import CertificateAuthority, certificate_renewal_time
from controlplane.ca.certs import CLOCK_SKEW_ALLOWANCE
from controlplane.ca.renewal import RenewalPolicy
from tests.harness.control_plane import served_control_plane
from tests.harness.wait import wait_for
from tests.mtls.mesh import (
    PORT,
    Workload,
    _doc,
    cert_serials,
    client_sidecar_doc,
    dump,
    http_request,
    sidecar,
    spiffe_id,
    workload_docs,
    xfcc_uri,
)
from tests.translate.fast_upstream import FastUpstream

CLIENT = "127.0.32.1"
SERVER = "127.0.32.11"
CERT_TTL_SECONDS = 4
ROTATIONS = 2  # each sidecar must show this many new certificates
MAX_REQUESTS = 1000  # the loop's bound; ten times what two rotations need


def test_short_lifetimes_renew_in_the_future() -> None:
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    authority = CertificateAuthority.self_signed("cluster.local", clock=lambda: now)
    for ttl in (timedelta(seconds=4), timedelta(minutes=1), timedelta(hours=24)):
        cert = authority.issue_workload("default", "a", ttl=ttl).cert
        backdate = now - cert.not_valid_before_utc
        assert backdate <= min(CLOCK_SKEW_ALLOWANCE, ttl)
        for jitter in (RenewalPolicy(jitter_fraction=0.05), RenewalPolicy(jitter_fraction=0.0)):
            renew_at = certificate_renewal_time(cert, random.Random(7), jitter)
            assert now < renew_at < cert.not_valid_after_utc, ttl
    # A day-long certificate keeps the full five minutes for clock skew.
    cert = authority.issue_workload("default", "a", ttl=timedelta(hours=24)).cert
    assert now - cert.not_valid_before_utc == CLOCK_SKEW_ALLOWANCE


@pytest.fixture(scope="module")
def rotating_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir: Path = tmp_path_factory.mktemp("rotation")
    config = workdir / "config"
    config.mkdir()
    with contextlib.ExitStack() as stack:
        app = stack.enter_context(FastUpstream("server"))
        server = Workload("server", SERVER, "server", app.port, "STRICT")
        # One request per upstream connection: every request is a fresh mTLS handshake, so a
        # stale or expired certificate on either side would fail it.
        one_request_per_connection = _doc("DestinationRule", "networking.istio.io/v1", "server", spec={
            "host": "server", "trafficPolicy": {"connectionPool": {"http": {"maxRequestsPerConnection": 1}}},
        })
        (config / "mesh.yaml").write_text(
            dump([client_sidecar_doc(CLIENT), *workload_docs(server), one_request_per_connection])
        )
        cp = stack.enter_context(served_control_plane(workdir, config, "--cert-ttl", str(CERT_TTL_SECONDS)))
        envoys = {
            "client": sidecar(workdir, cp.ca_dir, cp.xds_tls_port, name="client", address=CLIENT,
                              service_account="client", labels={"app": "client"}),
            "server": sidecar(workdir, cp.ca_dir, cp.xds_tls_port, name="server", address=SERVER,
                              service_account="server", labels=server.labels),
        }
        for envoy in envoys.values():
            stack.enter_context(envoy)
        for envoy in envoys.values():
            envoy.wait_ready()
        yield {"cp": cp, "envoys": envoys, "app": app}


def test_certificates_rotate_while_every_request_succeeds(rotating_mesh: dict[str, Any]) -> None:
    client, server = rotating_mesh["envoys"]["client"], rotating_mesh["envoys"]["server"]

    def call() -> tuple[int, dict[str, Any]]:
        status, _, echo = http_request(CLIENT, PORT, host_header="server")
        return status, echo

    wait_for(lambda: call()[0] == 200, message="first request through both sidecars")
    seen: dict[str, list[str]] = {"client": [], "server": []}
    failures: list[Any] = []
    requests = 0
    while requests < MAX_REQUESTS and min(len(s) for s in seen.values()) <= ROTATIONS:
        try:
            status, echo = call()
            if status != 200 or xfcc_uri(echo) != spiffe_id("client"):
                failures.append((status, echo.get("headers", {}).get("x-forwarded-client-cert")))
        except OSError as error:
            failures.append(error)
        requests += 1
        if requests % 10 == 0:
            for name, envoy in (("client", client), ("server", server)):
                serials = cert_serials(envoy)
                if len(serials) == 1 and (not seen[name] or seen[name][-1] not in serials):
                    seen[name].append(serials.pop())
        time.sleep(0.005)
    assert failures == [], f"{len(failures)} of {requests} requests failed: {failures[:5]}"
    for name, serials in seen.items():
        assert len(serials) > ROTATIONS, f"{name} saw certificates {serials} in {requests} requests"
    new_handshakes = client.stat("cluster.outbound|9080||server.default.svc.cluster.local.ssl.handshake") or 0
    assert new_handshakes >= requests  # each request really made a new mTLS connection
