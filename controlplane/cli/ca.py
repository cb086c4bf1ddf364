"""``controlplane ca``: the CA folder by hand. Prints certificates and fingerprints, never
key material (``issue`` writes the workload key to a 0600 file, not to the terminal)."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import timedelta
from pathlib import Path

from cryptography import x509

from controlplane.server.settings import Settings

_DURATION = re.compile(r"^(\d+)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number and s, m, h or d (e.g. 24h)")
    seconds = int(match.group(1)) * _SECONDS[match.group(2)]
    if seconds > 100 * 365 * 86400:  # and a timedelta cannot overflow
        raise argparse.ArgumentTypeError(f"{text!r}: at most 100 years")
    return timedelta(seconds=seconds)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    defaults = Settings()
    parser = subparsers.add_parser("ca", help="manage the built-in certificate authority")
    parser.add_argument("--ca-dir", type=Path, default=defaults.ca_dir, help="the CA folder")
    parser.add_argument("--trust-domain", default=defaults.trust_domain)
    commands = parser.add_subparsers(dest="ca_command", required=True, metavar="ACTION")

    init = commands.add_parser("init", help="create the root CA in the CA folder (once)")
    init.add_argument(
        "--key-algorithm", choices=["ecdsa-p256", "rsa-2048", "rsa-3072"], default="ecdsa-p256"
    )
    init.set_defaults(func=run_init)

    show = commands.add_parser("show", help="the CA's subject, validity and fingerprints")
    show.set_defaults(func=run_show)

    issue = commands.add_parser("issue", help="issue a workload certificate to files (debugging)")
    _identity_arguments(issue)
    issue.add_argument(
        "--out", type=Path, required=True, help="folder for cert-chain.pem, key.pem, root-cert.pem"
    )
    issue.add_argument("--ttl", type=parse_duration, default=timedelta(hours=24))
    issue.set_defaults(func=run_issue)

    token = commands.add_parser(
        "token", help="mint a local proxy token (printed to stdout), or revoke one"
    )
    _identity_arguments(token, required=False)
    # 30 days: an Envoy bootstrap carries the token and cannot refresh it. Shorter lifetimes
    # need an agent beside Envoy that fetches fresh credentials.
    token.add_argument("--ttl", type=parse_duration, default=timedelta(days=30))
    token.add_argument(
        "--revoke",
        metavar="TOKEN_OR_ID",
        help="revoke a token (the token itself, or the id `token` printed for it); "
        "a running server refuses it from its next request",
    )
    token.set_defaults(func=run_token)

    rotate = commands.add_parser("rotate", help="root rotation: stage, activate, drop")
    steps = rotate.add_subparsers(dest="rotate_step", required=True, metavar="STEP")
    steps.add_parser(
        "stage", help="create a new root and trust it; keep signing with the old"
    ).set_defaults(func=run_rotate_stage)
    steps.add_parser("activate", help="sign with the staged root").set_defaults(
        func=run_rotate_activate
    )
    drop = steps.add_parser("drop", help="stop trusting an old root")
    drop.add_argument("fingerprint", help="SHA-256 fingerprint as `ca show` prints it")
    drop.set_defaults(func=run_rotate_drop)
    steps.add_parser(
        "token-key", help="new token signing key: every token minted before stops working"
    ).set_defaults(func=run_rotate_token_key)


def _identity_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument("--namespace", "-n", required=required)
    parser.add_argument("--service-account", "-s", required=required)


def run_init(args: argparse.Namespace) -> int:
    from controlplane.ca import CAError, KeyAlgorithm, load_or_init_ca
    from controlplane.ca.folder import CA_KEY

    if (args.ca_dir / CA_KEY).exists():
        print(f"{args.ca_dir} already holds a CA; nothing changed", file=sys.stderr)
        return 1
    try:
        load_or_init_ca(args.ca_dir, args.trust_domain, algorithm=KeyAlgorithm(args.key_algorithm))
    except CAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return run_show(args)


def _load(args: argparse.Namespace):  # -> CertificateAuthority
    from controlplane.ca import load_ca_folder

    return load_ca_folder(args.ca_dir, args.trust_domain)


def _describe(label: str, cert: x509.Certificate) -> list[str]:
    from controlplane.ca import fingerprint_sha256

    return [
        f"{label}:",
        f"  subject:     {cert.subject.rfc4514_string() or '(empty)'}",
        f"  issuer:      {cert.issuer.rfc4514_string() or '(empty)'}",
        f"  serial:      {cert.serial_number:x}",
        f"  not before:  {cert.not_valid_before_utc.isoformat()}",
        f"  not after:   {cert.not_valid_after_utc.isoformat()}",
        f"  key:         {_key_description(cert)}",
        f"  SHA-256:     {fingerprint_sha256(cert)}",
    ]


def _key_description(cert: x509.Certificate) -> str:
    key = cert.public_key()
    curve = getattr(key, "curve", None)
    return (
        f"ECDSA {curve.name}" if curve is not None else f"RSA {getattr(key, 'key_size', '?')} bits"
    )


def run_show(args: argparse.Namespace) -> int:
    from controlplane.ca import CAError

    try:
        ca = _load(args)
    except CAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    lines = [f"CA folder:    {args.ca_dir}", f"trust domain: {ca.trust_domain}"]
    if ca.signer.cert != ca.signer.root:
        lines += _describe("signing certificate (intermediate)", ca.signer.cert)
    for intermediate in ca.signer.intermediates[1:]:
        lines += _describe("intermediate", intermediate)
    for root in ca.bundle.roots:
        role = "signing root" if root == ca.signer.root else "trusted root (not signing)"
        lines += _describe(role, root)
    print("\n".join(lines))
    return 0


def run_issue(args: argparse.Namespace) -> int:
    from controlplane.ca import CAError
    from controlplane.ca.keys import write_new_file

    try:
        ca = _load(args)
        issued = ca.issue_workload(args.namespace, args.service_account, ttl=args.ttl)
        args.out.mkdir(parents=True, exist_ok=True)
        assert issued.private_key_pem is not None
        write_new_file(args.out / "key.pem", issued.private_key_pem, 0o600)
        write_new_file(args.out / "cert-chain.pem", issued.chain_pem.encode(), 0o644)
        write_new_file(args.out / "root-cert.pem", issued.bundle.pem.encode(), 0o644)
    except CAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(_describe(issued.spiffe_id, issued.cert)))
    print(f"wrote {args.out}/cert-chain.pem, key.pem (mode 600), root-cert.pem")
    return 0


def run_token(args: argparse.Namespace) -> int:
    import jwt

    from controlplane.auth import local_token_issuer
    from controlplane.ca import CAError

    if args.revoke is not None:
        return _revoke_token(args)
    if not args.namespace or not args.service_account:
        print("error: give --namespace and --service-account (or --revoke)", file=sys.stderr)
        return 2
    try:
        token = local_token_issuer(args.ca_dir).mint(
            args.namespace, args.service_account, ttl=args.ttl
        )
    except CAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(token)
    token_id = jwt.decode(token, options={"verify_signature": False})["jti"]
    print(f"token id {token_id}: revoke with `controlplane ca token --revoke {token_id}`",
          file=sys.stderr)
    return 0


def _revoke_token(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from controlplane.auth.revocation import revocation_of, revoke
    from controlplane.ca import CAError

    if not args.ca_dir.is_dir():
        print(f"error: {args.ca_dir} is not a CA folder", file=sys.stderr)
        return 1
    try:
        revocation = revocation_of(args.revoke)
        path = revoke(args.ca_dir, revocation, datetime.now(UTC))
    except (CAError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"revoked token id {revocation.token_id} (listed in {path})")
    return 0


def run_rotate_token_key(args: argparse.Namespace) -> int:
    from controlplane.auth import rotate_token_key
    from controlplane.auth.tokens import key_id
    from controlplane.ca import CAError

    try:
        key = rotate_token_key(args.ca_dir)
    except (CAError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"new token key {key_id(key.public_key())}: every token minted before is refused from "
        "now on; mint new ones (`controlplane ca token`, `controlplane bootstrap`)"
    )
    return 0


def run_rotate_stage(args: argparse.Namespace) -> int:
    from controlplane.ca import CAError, fingerprint_sha256, stage_new_root

    try:
        root = stage_new_root(args.ca_dir, args.trust_domain)
    except CAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"staged root SHA-256 {fingerprint_sha256(root)}: trusted now, signing after `activate`")
    return 0


def run_rotate_activate(args: argparse.Namespace) -> int:
    from controlplane.ca import CAError, activate_staged_root

    try:
        activate_staged_root(args.ca_dir)
    except CAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return run_show(args)


def run_rotate_drop(args: argparse.Namespace) -> int:
    from controlplane.ca import CAError, drop_trusted_root

    try:
        drop_trusted_root(args.ca_dir, args.fingerprint)
    except CAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return run_show(args)
