"""Host name helpers with Istio's semantics: wildcard matching and short-name resolution."""

from __future__ import annotations

from controlplane.model.checks import is_ip

DEFAULT_DOMAIN_SUFFIX = "svc.cluster.local"


def is_wildcard(host: str) -> bool:
    return host.startswith("*")


def host_matches(pattern: str, host: str) -> bool:
    """Does ``pattern`` (maybe ``*`` or ``*.example.com`` or ``*x``) cover the concrete ``host``?

    As in Istio, ``*.example.com`` covers ``a.example.com`` and ``a.b.example.com``, not
    ``example.com``; names compare case-insensitively.
    """
    pattern, host = pattern.lower(), host.lower()
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        suffix = pattern[1:]
        return host.endswith(suffix) and len(host) > len(suffix)
    return pattern == host


def hosts_overlap(a: str, b: str) -> bool:
    """Istio's ``Name.Matches`` both ways: do two (possibly wildcard) hosts share any name?"""
    a, b = a.lower(), b.lower()
    if a == b or a == "*" or b == "*":
        return True
    if a.startswith("*") and b.startswith("*"):
        return a[1:].endswith(b[1:]) or b[1:].endswith(a[1:])
    if a.startswith("*"):
        return host_matches(a, b)
    if b.startswith("*"):
        return host_matches(b, a)
    return False


def resolve_short_name(
    host: str, namespace: str, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX
) -> str:
    """Istio's ResolveShortnameToFQDN: ``reviews`` in ``default`` -> ``reviews.default.svc.cluster.local``.

    Names with a dot (``reviews.prod``), ``*`` and IP addresses are returned unchanged, exactly
    as Istio does (it never expands ``name.namespace``).
    """
    if not host or host == "*" or "." in host or is_ip(host):
        return host
    out = f"{host}.{namespace}" if namespace else host
    return f"{out}.{domain_suffix}" if domain_suffix else out


def service_fqdn(name: str, namespace: str, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX) -> str:
    """The host name of a Kubernetes Service: ``name.namespace.svc.cluster.local``."""
    return f"{name}.{namespace}.{domain_suffix}"


def split_namespaced_host(value: str) -> tuple[str, str]:
    """Gateway/Sidecar ``namespace/host`` -> (namespace, host); a bare host means any namespace."""
    namespace, slash, host = value.partition("/")
    return (namespace, host) if slash else ("*", value)


def short_name_aliases(
    fqdn: str, namespace: str, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX
) -> tuple[str, ...]:
    """Names a client in ``namespace`` may use for a service FQDN (for virtual host domains).

    ``reviews.default.svc.cluster.local`` seen from ``default`` -> (fqdn, ``reviews.default.svc``,
    ``reviews.default``, ``reviews``); from another namespace the bare name is left out.
    """
    tail = f".{domain_suffix}"
    if not fqdn.endswith(tail):
        return (fqdn,)
    name_ns = fqdn[: -len(tail)]
    name, _, service_namespace = name_ns.partition(".")
    out = [fqdn, f"{name_ns}.svc", name_ns]
    if service_namespace == namespace:
        out.append(name)
    return tuple(out)
