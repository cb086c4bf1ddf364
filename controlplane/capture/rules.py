"""The nat-table rules of Istio's ``istio-iptables`` (REDIRECT mode, IPv4) as
``iptables-restore`` input. Pure: a ``CaptureSpec`` in, text out.

Outbound: ``OUTPUT -> ISTIO_OUTPUT``; the proxy's own traffic (its UID/GID), loopback,
excluded ports and ranges ``RETURN``; the rest goes to ``ISTIO_REDIRECT`` (15001).
Inbound: ``PREROUTING -> ISTIO_INBOUND``; excluded ports ``RETURN``, the rest to
``ISTIO_IN_REDIRECT`` (15006). As Istio, an app calling its own pod IP over ``lo`` is sent
through the inbound side, and 127.0.0.6 (the proxy's inbound passthrough source) is never
captured again.
"""

from __future__ import annotations

from controlplane.capture.spec import INBOUND_TUNNEL_PORT, CaptureError, CaptureSpec

CHAINS = ("ISTIO_INBOUND", "ISTIO_IN_REDIRECT", "ISTIO_OUTPUT", "ISTIO_REDIRECT")
INBOUND_PASSTHROUGH_SOURCE = "127.0.0.6/32"


def _v4(ranges: tuple[str, ...]) -> list[str]:
    return [r for r in ranges if r != "*" and ":" not in r]


def nat_rules(spec: CaptureSpec) -> list[str]:
    """The ``-A`` lines of the nat table, in the order istio-iptables appends them."""
    if spec.mode == "NONE":
        return []
    if spec.mode != "REDIRECT":
        raise CaptureError(f"-m {spec.mode}: only REDIRECT capture is implemented here")
    rules = [
        f"-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports {spec.proxy_port}",
        f"-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports {spec.inbound_capture_port}",
    ]
    inbound_all = spec.include_inbound_ports == ("*",)
    if spec.include_inbound_ports:
        rules.append("-A PREROUTING -p tcp -j ISTIO_INBOUND")
        if inbound_all:
            excluded = (str(INBOUND_TUNNEL_PORT), *spec.exclude_inbound_ports)
            rules += [f"-A ISTIO_INBOUND -p tcp --dport {p} -j RETURN" for p in dict.fromkeys(excluded)]
            rules.append("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT")
        else:
            rules += [
                f"-A ISTIO_INBOUND -p tcp --dport {p} -j ISTIO_IN_REDIRECT"
                for p in spec.include_inbound_ports
                if p not in spec.exclude_inbound_ports
            ]
    rules.append("-A OUTPUT -p tcp -j ISTIO_OUTPUT")
    rules += [f"-A ISTIO_OUTPUT -p tcp --dport {p} -j RETURN" for p in spec.exclude_outbound_ports]
    rules.append(f"-A ISTIO_OUTPUT -s {INBOUND_PASSTHROUGH_SOURCE} -o lo -j RETURN")
    for owner, ids in (("--uid-owner", spec.uids), ("--gid-owner", spec.gids)):
        for ident in ids:
            if spec.include_inbound_ports:
                # The app calling its own pod IP (over lo) goes through the inbound side.
                rules.append(
                    f"-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp ! --dport {INBOUND_TUNNEL_PORT}"
                    f" -m owner {owner} {ident} -j ISTIO_IN_REDIRECT"
                )
            rules.append(f"-A ISTIO_OUTPUT -o lo -m owner ! {owner} {ident} -j RETURN")
            rules.append(f"-A ISTIO_OUTPUT -m owner {owner} {ident} -j RETURN")
    rules.append("-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN")
    rules += [f"-A ISTIO_OUTPUT -d {cidr} -j RETURN" for cidr in _v4(spec.exclude_outbound_ranges)]
    if spec.include_outbound_ports:
        rules += [
            f"-A ISTIO_OUTPUT -p tcp --dport {p} -j ISTIO_REDIRECT" for p in spec.include_outbound_ports
        ]
    if spec.include_outbound_ranges == ("*",):
        rules.append("-A ISTIO_OUTPUT -j ISTIO_REDIRECT")
    else:
        rules += [
            f"-A ISTIO_OUTPUT -d {cidr} -j ISTIO_REDIRECT" for cidr in _v4(spec.include_outbound_ranges)
        ]
    return rules


def restore_input(spec: CaptureSpec) -> str:
    """The whole ``iptables-restore --noflush`` input: the nat table, Istio's chains declared
    (and so emptied), the rules, ``COMMIT``. Applied atomically: all or nothing."""
    rules = nat_rules(spec)
    if not rules:
        return ""
    lines = ["*nat", *(f":{chain} - [0:0]" for chain in CHAINS), *rules, "COMMIT"]
    return "\n".join(lines) + "\n"
