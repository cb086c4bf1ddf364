"""SDS secrets ``default`` and ``ROOTCA`` from issued certificates, loaded by a real Envoy
that then requires and verifies client certificates (mutual TLS) with them."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict

from controlplane.ca import CertificateAuthority
from controlplane.translate.secrets import (
    tls_certificate_secret,
    validation_context_secret,
    workload_secrets,
)
from tests.harness.processes import stop_process

ENVOY = Path(sys.executable).with_name("envoy")


def test_secret_protos(authority: CertificateAuthority) -> None:
    issued = authority.issue_workload("default", "reviews")
    default, rootca = workload_secrets(
        issued.chain_pem, issued.private_key_pem, authority.bundle.pems
    )
    assert default.name == "default" and rootca.name == "ROOTCA"
    assert default.tls_certificate.certificate_chain.inline_bytes == issued.chain_pem.encode()
    assert default.tls_certificate.private_key.inline_bytes == issued.private_key_pem
    assert rootca.validation_context.trusted_ca.inline_bytes == authority.bundle.pem.encode()
    # A bundle given as one string or as a list of roots gives the same secret.
    assert validation_context_secret(authority.bundle.pem) == validation_context_secret(
        authority.bundle.pems
    )
    assert tls_certificate_secret("a", "b", name="x").name == "x"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bootstrap(secrets: list, admin_port: int, listener_port: int) -> dict:
    return {
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        },
        "static_resources": {
            "secrets": [MessageToDict(s, preserving_proto_field_name=True) for s in secrets],
            "listeners": [
                {
                    "name": "mtls",
                    "address": {
                        "socket_address": {"address": "127.0.0.1", "port_value": listener_port}
                    },
                    "filter_chains": [
                        {
                            "transport_socket": {
                                "name": "envoy.transport_sockets.tls",
                                "typed_config": {
                                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                                    "require_client_certificate": True,
                                    "common_tls_context": {
                                        "tls_certificate_sds_secret_configs": [{"name": "default"}],
                                        "validation_context_sds_secret_config": {"name": "ROOTCA"},
                                    },
                                },
                            },
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                        "stat_prefix": "mtls",
                                        "route_config": {
                                            "virtual_hosts": [
                                                {
                                                    "name": "all",
                                                    "domains": ["*"],
                                                    "routes": [
                                                        {
                                                            "match": {"prefix": "/"},
                                                            "direct_response": {
                                                                "status": 200,
                                                                "body": {
                                                                    "inline_string": "mtls-ok"
                                                                },
                                                            },
                                                        }
                                                    ],
                                                }
                                            ]
                                        },
                                        "http_filters": [
                                            {
                                                "name": "envoy.filters.http.router",
                                                "typed_config": {
                                                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                                                },
                                            }
                                        ],
                                    },
                                }
                            ],
                        }
                    ],
                }
            ],
        },
    }


@pytest.fixture
def envoy_with_secrets(authority: CertificateAuthority, tmp_path: Path) -> Iterator[int]:
    if not ENVOY.exists() and shutil.which("envoy") is None:
        pytest.skip("envoy binary not installed")
    server = authority.issue_workload("default", "reviews")
    secrets = list(
        workload_secrets(server.chain_pem, server.private_key_pem, authority.bundle.pems)
    )
    admin_port, listener_port = _free_port(), _free_port()
    config = tmp_path / "envoy.yaml"
    config.write_text(json.dumps(_bootstrap(secrets, admin_port, listener_port)))
    log = (tmp_path / "envoy.log").open("w")
    process = subprocess.Popen(
        [
            str(ENVOY if ENVOY.exists() else shutil.which("envoy")),
            "-c",
            str(config),
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "-l",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail("envoy exited:\n" + (tmp_path / "envoy.log").read_text())
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("envoy not ready:\n" + (tmp_path / "envoy.log").read_text())
            time.sleep(0.1)
        yield listener_port
    finally:
        stop_process(process)
        log.close()


def _client_context(
    authority: CertificateAuthority, tmp_path: Path, with_cert: bool
) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=authority.bundle.pem)
    context.check_hostname = False  # SPIFFE identities are URIs, not host names
    if with_cert:
        client = authority.issue_workload("default", "productpage")
        (tmp_path / "client.pem").write_text(client.chain_pem)
        (tmp_path / "client-key.pem").write_bytes(client.private_key_pem)
        context.load_cert_chain(tmp_path / "client.pem", tmp_path / "client-key.pem")
    return context


def _get(port: int, context: ssl.SSLContext) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := tls.recv(4096):
            data += chunk
        return data


@pytest.mark.envoy
def test_envoy_serves_mtls_with_the_secrets(
    envoy_with_secrets: int, authority: CertificateAuthority, tmp_path: Path
) -> None:
    response = _get(envoy_with_secrets, _client_context(authority, tmp_path, with_cert=True))
    assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"mtls-ok")
    # Without a client certificate Envoy refuses (require_client_certificate + ROOTCA).
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _get(envoy_with_secrets, _client_context(authority, tmp_path, with_cert=False))
    # A client certificate from another CA is refused too.
    stranger = CertificateAuthority.self_signed("cluster.local")
    context = ssl.create_default_context(cadata=authority.bundle.pem)
    context.check_hostname = False
    foreign = stranger.issue_workload("default", "productpage")
    (tmp_path / "foreign.pem").write_text(foreign.chain_pem)
    (tmp_path / "foreign-key.pem").write_bytes(foreign.private_key_pem)
    context.load_cert_chain(tmp_path / "foreign.pem", tmp_path / "foreign-key.pem")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _get(envoy_with_secrets, context)
