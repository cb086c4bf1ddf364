"""Network namespaces and their links, named uniquely per run and always removed.

One run is a bridge ``cpb<run>`` holding the gateway address ``198.18.<n>.1/24``; each pod is
a namespace ``cp<run>-<pod>`` joined to it by a veth pair (``eth0`` inside), with its address
from the same /24 and its default route through the bridge. Services' cluster IPs come from
``198.19.<n>.0/24`` and are written in ``/etc/netns/<namespace>/hosts``, which ``ip netns exec``
shows the pod as its ``/etc/hosts``."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

POD_RANGE = ipaddress.IPv4Network("198.18.0.0/16")  # 198.18.0.0/15: benchmarking, never routed
SERVICE_RANGE = ipaddress.IPv4Network("198.19.0.0/16")
NETNS_ETC = Path("/etc/netns")


class NetnsError(Exception):
    pass


def _slash24(within: ipaddress.IPv4Network, index: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network((int(within.network_address) + (index << 8), 24))


def missing_requirements() -> list[str]:
    """Why pods cannot run here ([] when they can)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    missing += [tool for tool in ("ip", "iptables", "iptables-restore") if shutil.which(tool) is None]
    return missing


def _run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    if check and result.returncode != 0:
        raise NetnsError(f"{' '.join(command)}: {result.stderr.strip()[:500]}")
    return result


@dataclass
class PodNetns:
    name: str  # the pod's name
    netns: str  # the network namespace
    ip: str
    host_link: str

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns]

    def write_hosts(self, entries: Mapping[str, Sequence[str]]) -> Path:
        """``/etc/hosts`` as the pod sees it: address → names."""
        directory = NETNS_ETC / self.netns
        directory.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost", f"{self.ip} {self.name}"]
        lines += [f"{address} {' '.join(names)}" for address, names in sorted(entries.items())]
        path = directory / "hosts"
        path.write_text("\n".join(lines) + "\n")
        return path


@dataclass
class Network:
    """One run's bridge and pods. ``with Network.create() as net:`` removes everything."""

    run_id: str
    subnet: ipaddress.IPv4Network
    service_subnet: ipaddress.IPv4Network
    pods: dict[str, PodNetns] = field(default_factory=dict)
    _next_host: int = 2
    _next_service: int = 10

    @classmethod
    def create(cls, run_id: str | None = None) -> Network:
        if missing := missing_requirements():
            raise NetnsError(f"pods in network namespaces need {', '.join(missing)}")
        run_id = run_id or secrets.token_hex(3)
        index = int(run_id, 16) % 250 + 2  # a /24 per run: concurrent runs rarely collide
        net = cls(run_id, _slash24(POD_RANGE, index), _slash24(SERVICE_RANGE, index))
        try:
            _run("ip", "link", "add", "name", net.bridge, "type", "bridge")
            _run("ip", "addr", "add", f"{net.gateway}/24", "dev", net.bridge)
            _run("ip", "link", "set", net.bridge, "up")
        except BaseException:
            net.destroy()
            raise
        return net

    @property
    def bridge(self) -> str:
        return f"cpb{self.run_id}"

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)

    def add_pod(self, name: str) -> PodNetns:
        if name in self.pods:
            raise NetnsError(f"pod {name} exists")
        ip = str(self.subnet.network_address + self._next_host)
        host_link = f"cv{self.run_id}{self._next_host:03d}"  # at most 15 characters
        self._next_host += 1
        pod = PodNetns(name, f"cp{self.run_id}-{name}", ip, host_link)
        self.pods[name] = pod  # registered first: destroy() removes whatever was made
        _run("ip", "netns", "add", pod.netns)
        _run("ip", "link", "add", host_link, "type", "veth", "peer", "name", "eth0", "netns", pod.netns)
        _run("ip", "link", "set", host_link, "master", self.bridge, "up")
        for command in (["ip", "addr", "add", f"{ip}/24", "dev", "eth0"], ["ip", "link", "set", "eth0", "up"],
                        ["ip", "link", "set", "lo", "up"], ["ip", "route", "add", "default", "via", self.gateway]):
            _run(*pod.exec_prefix(), *command)
        return pod

    def service_ip(self) -> str:
        ip = str(self.service_subnet.network_address + self._next_service)
        self._next_service += 1
        return ip

    def destroy(self) -> None:
        """Remove every namespace, link and hosts file of the run (errors ignored: best effort
        for whatever exists)."""
        for pod in list(self.pods.values()):
            with contextlib.suppress(Exception):
                _kill_netns_processes(pod.netns)
            _run("ip", "netns", "del", pod.netns, check=False)
            _run("ip", "link", "del", pod.host_link, check=False)
            shutil.rmtree(NETNS_ETC / pod.netns, ignore_errors=True)
        self.pods.clear()
        _run("ip", "link", "del", self.bridge, check=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()


def _kill_netns_processes(netns: str) -> None:
    result = _run("ip", "netns", "pids", netns, check=False)
    for pid in result.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), 9)
