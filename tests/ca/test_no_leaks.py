"""Key material never reaches logs, reprs or error messages."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from controlplane.auth import local_token_issuer
from controlplane.ca import activate_staged_root, load_or_init_ca, private_key_pem, stage_new_root


def _key_body(pem: bytes) -> str:
    return "".join(pem.decode().splitlines()[1:-1])


def test_ca_lifecycle_logs_hold_no_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "certs"
    with caplog.at_level(logging.DEBUG):
        authority = load_or_init_ca(folder, "cluster.local")
        issued = authority.issue_workload("default", "reviews")
        token = local_token_issuer(folder).mint("default", "reviews")
        stage_new_root(folder, "cluster.local")
        activate_staged_root(folder)
    assert "created a new root CA" in caplog.text  # the logs were captured
    secrets = [
        _key_body(private_key_pem(authority.signer.key)),
        _key_body(issued.private_key_pem),
        _key_body((folder / "ca-key.pem").read_bytes()),  # the new signing key
        _key_body((folder / "token-key.pem").read_bytes()),
        token,
    ]
    for secret in secrets:
        # any 32-character slice of a key would be a leak; the whole body is the simple check
        assert secret[:32] not in caplog.text
    for value in (authority, authority.signer, issued):
        text = repr(value)
        assert all(secret[:32] not in text for secret in secrets)
        assert "PRIVATE KEY" not in text
