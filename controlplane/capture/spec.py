"""What a pod's capture does, as the flags of Istio's ``istio-iptables`` (the init container's
arguments). The injector decides a ``CaptureSpec`` from the pod's annotations; ``rules.py``
turns it into iptables rules. Pure data, no I/O."""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

PROXY_UID = "1337"  # Istio's proxy user: its own traffic is never captured again
OUTBOUND_PORT = 15001  # virtualOutbound
INBOUND_PORT = 15006  # virtualInbound
INBOUND_TUNNEL_PORT = 15008  # HBONE; never redirected, as Istio's rules
INTERCEPTION_MODES = ("REDIRECT", "TPROXY", "NONE")


class CaptureError(ValueError):
    """A capture setting that cannot be applied; names the flag or annotation."""


@dataclass(frozen=True)
class CaptureSpec:
    """Istio's istio-iptables flags, already validated. Lists keep Istio's text forms:
    ``("*",)`` means every address or port, ``()`` none."""

    proxy_port: int = OUTBOUND_PORT  # -p
    inbound_capture_port: int = INBOUND_PORT  # -z
    proxy_uid: str = PROXY_UID  # -u (comma separated UIDs)
    proxy_gid: str = ""  # -g (defaults to the UIDs, as istio-iptables)
    mode: str = "REDIRECT"  # -m
    include_outbound_ranges: tuple[str, ...] = ("*",)  # -i
    exclude_outbound_ranges: tuple[str, ...] = ()  # -x
    include_inbound_ports: tuple[str, ...] = ("*",)  # -b
    exclude_inbound_ports: tuple[str, ...] = ()  # -d
    include_outbound_ports: tuple[str, ...] = ()  # -q
    exclude_outbound_ports: tuple[str, ...] = ()  # -o
    kube_virt_interfaces: tuple[str, ...] = ()  # -k
    exclude_interfaces: tuple[str, ...] = ()  # -c

    @property
    def uids(self) -> tuple[str, ...]:
        return _split(self.proxy_uid)

    @property
    def gids(self) -> tuple[str, ...]:
        return _split(self.proxy_gid) or self.uids

    def args(self) -> list[str]:
        """The istio-iptables arguments, in the order Istio's injection template writes them."""
        out = [
            "-p", str(self.proxy_port), "-z", str(self.inbound_capture_port),
            "-u", self.proxy_uid, "-m", self.mode,
            "-i", ",".join(self.include_outbound_ranges),
            "-x", ",".join(self.exclude_outbound_ranges),
            "-b", ",".join(self.include_inbound_ports),
            "-d", ",".join(self.exclude_inbound_ports),
        ]
        if self.proxy_gid:
            out += ["-g", self.proxy_gid]
        if self.include_outbound_ports:
            out += ["-q", ",".join(self.include_outbound_ports)]
        if self.exclude_outbound_ports:
            out += ["-o", ",".join(self.exclude_outbound_ports)]
        if self.kube_virt_interfaces:
            out += ["-k", ",".join(self.kube_virt_interfaces)]
        if self.exclude_interfaces:
            out += ["-c", ",".join(self.exclude_interfaces)]
        return out


def _split(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def parse_ports(text: str, what: str, *, wildcard: bool = False) -> tuple[str, ...]:
    """Istio's port lists: comma separated 1..65535 (``*`` where a wildcard is allowed)."""
    ports = _split(text)
    for port in ports:
        if wildcard and port == "*":
            continue
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise CaptureError(f"{what}: {port!r} is not a port (1-65535)")
    if wildcard and "*" in ports and len(ports) > 1:
        raise CaptureError(f"{what}: '*' cannot be combined with ports")
    return ports


def parse_ranges(text: str, what: str) -> tuple[str, ...]:
    """Istio's IP range lists: comma separated CIDRs, or ``*`` for every address."""
    ranges = _split(text)
    if ranges == ("*",):
        return ranges
    for cidr in ranges:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise CaptureError(f"{what}: {cidr!r} is not an IP range (CIDR)") from None
        if "/" not in cidr:
            raise CaptureError(f"{what}: {cidr!r} is not an IP range (CIDR)")
    return ranges


FLAGS = (  # istio-iptables flag, field, default
    ("-p", "proxy_port", str(OUTBOUND_PORT)),
    ("-z", "inbound_capture_port", str(INBOUND_PORT)),
    ("-u", "proxy_uid", PROXY_UID),
    ("-g", "proxy_gid", ""),
    ("-m", "mode", "REDIRECT"),
    ("-i", "include_outbound_ranges", ""),
    ("-x", "exclude_outbound_ranges", ""),
    ("-b", "include_inbound_ports", ""),
    ("-d", "exclude_inbound_ports", ""),
    ("-q", "include_outbound_ports", ""),
    ("-o", "exclude_outbound_ports", ""),
    ("-k", "kube_virt_interfaces", ""),
    ("-c", "exclude_interfaces", ""),
)


def add_flags(parser: argparse.ArgumentParser) -> None:
    """istio-iptables' flags on a parser (``controlplane capture`` takes the same)."""
    for flag, dest, default in FLAGS:
        parser.add_argument(flag, dest=dest, default=default, metavar=dest.upper())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="istio-iptables", add_help=False, exit_on_error=False)
    add_flags(p)
    return p


def spec_from_namespace(ns: argparse.Namespace) -> CaptureSpec:
    """The spec from parsed flags (see ``add_flags``), validated."""
    if ns.mode not in INTERCEPTION_MODES:
        raise CaptureError(f"-m: {ns.mode!r} is not one of {', '.join(INTERCEPTION_MODES)}")
    for flag, value in (("-p", ns.proxy_port), ("-z", ns.inbound_capture_port)):
        parse_ports(value, flag)
    return CaptureSpec(
        proxy_port=int(ns.proxy_port),
        inbound_capture_port=int(ns.inbound_capture_port),
        proxy_uid=ns.proxy_uid,
        proxy_gid=ns.proxy_gid,
        mode=ns.mode,
        include_outbound_ranges=parse_ranges(ns.include_outbound_ranges, "-i"),
        exclude_outbound_ranges=parse_ranges(ns.exclude_outbound_ranges, "-x"),
        include_inbound_ports=parse_ports(ns.include_inbound_ports, "-b", wildcard=True),
        exclude_inbound_ports=parse_ports(ns.exclude_inbound_ports, "-d"),
        include_outbound_ports=parse_ports(ns.include_outbound_ports, "-q"),
        exclude_outbound_ports=parse_ports(ns.exclude_outbound_ports, "-o"),
        kube_virt_interfaces=_split(ns.kube_virt_interfaces),
        exclude_interfaces=_split(ns.exclude_interfaces),
    )


def spec_from_args(args: Sequence[str]) -> CaptureSpec:
    """Read istio-iptables flags (Istio's own ``istio-init`` args, or ours); unknown long
    options such as ``--log_output_level`` are ignored, as they change no rule."""
    known = [a for a in args if not a.startswith("--") and a != "istio-iptables"]
    try:
        ns, rest = _parser().parse_known_args(known)
    except argparse.ArgumentError as error:
        raise CaptureError(str(error)) from None
    if rest:
        raise CaptureError(f"unexpected capture arguments {rest!r}")
    return spec_from_namespace(ns)
