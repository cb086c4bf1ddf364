"""``controlplane ca init|show|issue|token|rotate``, run in-process through its parser."""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

import jwt
import pytest
from cryptography import x509

from controlplane.ca import fingerprint_sha256, load_ca_folder, load_certs_pem
from controlplane.cli import ca as ca_cli
from tests.ca.svid_rules import assert_openssl_accepts, assert_x509_svid


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="controlplane")
    ca_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "certs"
    assert run("ca", "--ca-dir", str(folder), "init") == 0
    return folder


def test_init_then_show(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert run("ca", "--ca-dir", str(ca_dir), "show") == 0
    out = capsys.readouterr().out
    authority = load_ca_folder(ca_dir, "cluster.local")
    assert fingerprint_sha256(authority.signer.root) in out
    assert "O=cluster.local" in out and "not after" in out and "ECDSA secp256r1" in out
    # Never key material.
    key_body = "".join((ca_dir / "ca-key.pem").read_text().splitlines()[1:-1])
    assert "PRIVATE" not in out and key_body[:40] not in out


def test_init_twice_changes_nothing(ca_dir: Path) -> None:
    before = (ca_dir / "ca-key.pem").read_bytes()
    assert run("ca", "--ca-dir", str(ca_dir), "init") == 1
    assert (ca_dir / "ca-key.pem").read_bytes() == before


def test_issue_writes_files(
    ca_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "reviews"
    code = run(
        "ca",
        "--ca-dir",
        str(ca_dir),
        "issue",
        "-n",
        "default",
        "-s",
        "reviews",
        "--out",
        str(out_dir),
        "--ttl",
        "1h",
    )
    assert code == 0
    assert stat.S_IMODE((out_dir / "key.pem").stat().st_mode) == 0o600
    assert "PRIVATE" not in capsys.readouterr().out
    leaf = x509.load_pem_x509_certificate((out_dir / "cert-chain.pem").read_bytes())
    roots = load_certs_pem((out_dir / "root-cert.pem").read_bytes())
    assert_x509_svid(
        leaf, spiffe_id="spiffe://cluster.local/ns/default/sa/reviews", issuer=roots[0]
    )
    assert_openssl_accepts(tmp_path, leaf, roots)
    # Issuing again into the same folder never overwrites the key.
    key = (out_dir / "key.pem").read_bytes()
    assert (
        run(
            "ca",
            "--ca-dir",
            str(ca_dir),
            "issue",
            "-n",
            "default",
            "-s",
            "reviews",
            "--out",
            str(out_dir),
        )
        == 1
    )
    assert (out_dir / "key.pem").read_bytes() == key


def test_token(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert (
        run(
            "ca",
            "--ca-dir",
            str(ca_dir),
            "token",
            "--namespace",
            "default",
            "--service-account",
            "reviews",
        )
        == 0
    )
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "system:serviceaccount:default:reviews"
    assert stat.S_IMODE((ca_dir / "token-key.pem").stat().st_mode) == 0o600


def test_rotate_steps(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old_root = load_ca_folder(ca_dir, "cluster.local").signer.root
    assert run("ca", "--ca-dir", str(ca_dir), "rotate", "stage") == 0
    assert run("ca", "--ca-dir", str(ca_dir), "rotate", "activate") == 0
    out = capsys.readouterr().out
    assert "trusted root (not signing)" in out
    assert run("ca", "--ca-dir", str(ca_dir), "rotate", "drop", fingerprint_sha256(old_root)) == 0
    assert len(load_ca_folder(ca_dir, "cluster.local").bundle.roots) == 1


def test_bad_duration_is_refused(ca_dir: Path) -> None:
    with pytest.raises(SystemExit):
        run("ca", "--ca-dir", str(ca_dir), "token", "-n", "a", "-s", "b", "--ttl", "forever")


def test_show_without_ca_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("ca", "--ca-dir", str(tmp_path / "none"), "show") == 1
    assert "missing" in capsys.readouterr().err


@pytest.mark.parametrize("ttl", ["99999999999999d", "99999999999999s"])
def test_an_absurd_duration_is_refused_not_a_traceback(ca_dir: Path, ttl: str) -> None:
    with pytest.raises(SystemExit):
        run("ca", "--ca-dir", str(ca_dir), "token", "-n", "a", "-s", "b", "--ttl", ttl)
