"""Free loopback ports (bind :0 and let the kernel choose)."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, 0))
        return s.getsockname()[1]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Several distinct free ports (sockets held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


# Addresses free_address() gave out in this run: two callers that pick before either binds
# (a client and its gateway, four workloads of one mesh) must not get the same one.
_handed_out: set[str] = set()


def free_address(prefix: str, ports: tuple[int, ...], first: int = 11, last: int = 250) -> str:
    """A loopback address ``<prefix>.N`` on which none of ``ports`` is bound (by this test run
    or another one on the machine: Envoy's listeners use SO_REUSEPORT, so two sidecars bound to
    one address:port would share its connections), and not given out before in this run
    unless every other one is. Tries N from a random start."""
    import random

    candidates = [f"{prefix}.{n}" for n in range(first, last + 1)]
    start = random.randrange(len(candidates))
    rotated = candidates[start:] + candidates[:start]
    fresh = [a for a in rotated if a not in _handed_out]
    for address in fresh + [a for a in rotated if a in _handed_out]:
        if _unbound(address, ports):
            _handed_out.add(address)
            return address
    raise RuntimeError(f"no free address in {prefix}.{first}-{last} for ports {ports}")


def _unbound(address: str, ports: tuple[int, ...]) -> bool:
    try:
        for port in ports:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((address, port))
    except OSError:
        return False
    return True
