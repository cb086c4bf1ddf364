"""Host names as Istio compares them: short names, wildcards, specificity."""

from __future__ import annotations


def resolve_short_name(host: str, namespace: str, domain_suffix: str) -> str:
    """``reviews`` in namespace ``default`` -> ``reviews.default.svc.cluster.local``."""
    if host == "*" or "." in host or host.startswith("*"):
        return host
    return f"{host}.{namespace}.svc.{domain_suffix}"


def host_matches(pattern: str, host: str) -> bool:
    """Does ``pattern`` (exact or ``*.suffix`` or ``*``) cover ``host``?"""
    if pattern == "*" or pattern == host:
        return True
    if pattern.startswith("*"):
        suffix = pattern[1:]
        if host.startswith("*"):
            return host[1:].endswith(suffix)
        return host.endswith(suffix)
    return False


def specificity(pattern: str) -> tuple[int, int]:
    """Sort key: exact names first, then longer wildcards."""
    return (1 if pattern.startswith("*") else 0, -len(pattern))


def hosts_intersect(a: str, b: str) -> bool:
    return host_matches(a, b) or host_matches(b, a)
