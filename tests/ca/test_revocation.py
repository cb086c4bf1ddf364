"""Revoking one token, or all of them by rotating the token key; a running authenticator
follows the CA folder without being rebuilt."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from controlplane.auth import (
    Authenticator,
    Unauthenticated,
    build_authenticator,
    local_token_issuer,
)
from controlplane.auth.revocation import (
    REVOCATION_FILE,
    Revocation,
    read_revocations,
    revocation_of,
    revoke,
)
from controlplane.cli import main as cli


def _metadata(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def _jti(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["jti"]


def _touch_later(path: Path) -> None:
    """Filesystems with coarse timestamps: make sure the change is seen as one."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    return tmp_path / "certs"


@pytest.fixture
def authenticator(ca_dir: Path) -> Authenticator:
    local_token_issuer(ca_dir)  # creates the key
    return build_authenticator(ca_dir, "cluster.local")


@pytest.mark.parametrize("by", ["token", "id"])
async def test_revoke_by_token_or_id(
    ca_dir: Path, authenticator: Authenticator, by: str, capsys: pytest.CaptureFixture[str]
) -> None:
    issuer = local_token_issuer(ca_dir)
    revoked, kept = issuer.mint("default", "reviews"), issuer.mint("default", "reviews")
    await authenticator.authenticate(_metadata(revoked))
    argument = revoked if by == "token" else _jti(revoked)
    assert cli(["ca", "--ca-dir", str(ca_dir), "token", "--revoke", argument]) == 0
    assert _jti(revoked) in capsys.readouterr().out
    path = ca_dir / REVOCATION_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    _touch_later(path)
    with pytest.raises(Unauthenticated, match="revoked"):
        await authenticator.authenticate(_metadata(revoked))
    identity = await authenticator.authenticate(_metadata(kept))
    assert identity.service_account == "reviews"
    # Removing the list un-revokes (an operator's deliberate act).
    path.unlink()
    await authenticator.authenticate(_metadata(revoked))


async def test_minting_prints_the_id_to_revoke_on_stderr(
    ca_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["ca", "--ca-dir", str(ca_dir), "token", "-n", "default", "-s", "reviews"]) == 0
    out, err = capsys.readouterr()
    token = out.strip()  # stdout stays the token alone, for scripts
    assert f"--revoke {_jti(token)}" in err


def test_revoke_refuses_what_is_neither_token_nor_id(
    ca_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local_token_issuer(ca_dir)
    assert cli(["ca", "--ca-dir", str(ca_dir), "token", "--revoke", "not an id!"]) == 1
    assert "neither a token nor a token id" in capsys.readouterr().err
    assert cli(["ca", "--ca-dir", str(ca_dir), "token"]) == 2  # no identity, no --revoke


def test_the_list_drops_entries_long_expired(ca_dir: Path) -> None:
    ca_dir.mkdir()
    now = datetime(2026, 6, 1, tzinfo=UTC)
    revoke(ca_dir, Revocation("old", int((now - timedelta(days=2)).timestamp())), now)
    revoke(ca_dir, Revocation("forever", None), now)
    revoke(ca_dir, Revocation("new", int((now + timedelta(days=1)).timestamp())), now)
    later = now + timedelta(days=1)
    revoke(ca_dir, Revocation("another", None), later)
    assert set(read_revocations(ca_dir / REVOCATION_FILE)) == {"forever", "new", "another"}


def test_malformed_lines_are_skipped_and_the_others_apply(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / REVOCATION_FILE
    path.write_text("# revoked\nabc 123\nbad id with spaces\nxyz -  # comment\nq notanumber\n")
    assert read_revocations(path) == {"abc": 123, "xyz": None}
    assert "3: not '<token id> <expiry or ->'" in caplog.text


def test_revocation_of_a_token_reads_its_jti_and_exp(ca_dir: Path) -> None:
    token = local_token_issuer(ca_dir).mint("default", "reviews")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert revocation_of(token) == Revocation(claims["jti"], claims["exp"])


async def test_rotating_the_token_key_refuses_every_earlier_token(
    ca_dir: Path, authenticator: Authenticator, capsys: pytest.CaptureFixture[str]
) -> None:
    before = local_token_issuer(ca_dir).mint("default", "reviews")
    await authenticator.authenticate(_metadata(before))
    assert cli(["ca", "--ca-dir", str(ca_dir), "rotate", "token-key"]) == 0
    assert "every token minted before is refused" in capsys.readouterr().out
    key_file = ca_dir / "token-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    _touch_later(key_file)
    with pytest.raises(Unauthenticated, match="InvalidSignature"):
        await authenticator.authenticate(_metadata(before))
    after = local_token_issuer(ca_dir).mint("default", "reviews")
    assert (await authenticator.authenticate(_metadata(after))).service_account == "reviews"
    assert not list(ca_dir.glob(".token-key.pem.*"))  # no staged file left behind


async def test_an_unreadable_key_file_keeps_the_last_good_key(
    ca_dir: Path, authenticator: Authenticator, caplog: pytest.LogCaptureFixture
) -> None:
    token = local_token_issuer(ca_dir).mint("default", "reviews")
    key_file = ca_dir / "token-key.pem"
    key_file.write_text("half-written")
    _touch_later(key_file)
    assert (await authenticator.authenticate(_metadata(token))).service_account == "reviews"
    assert "still using the last one read" in caplog.text


def test_rotate_without_a_key_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "certs").mkdir()
    assert cli(["ca", "--ca-dir", str(tmp_path / "certs"), "rotate", "token-key"]) == 1
    assert "missing" in capsys.readouterr().err
