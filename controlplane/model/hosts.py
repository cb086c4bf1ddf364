"""Host names with Istio's semantics: one implementation for validation, analysis and translation.

- Names compare case-insensitively: Istio lower-cases hosts where it compares them
  (``host.Name(strings.ToLower(h))`` when selecting VirtualServices, DestinationRules, Sidecar
  egress hosts), and DNS does too. ``normalize_host`` is that rule; ``resolve_short_name``
  returns normalized names, so indexes keyed by them match whatever case a user wrote.
- Wildcards follow ``host.Name.SubsetOf`` / ``Matches`` (pkg/config/host/name.go).
- The domain suffix is Istio's ``domainSuffix`` (``cluster.local``); a Service's FQDN is
  ``<name>.<namespace>.svc.<domainSuffix>``.
"""

from __future__ import annotations

from controlplane.model.checks import is_ip

DEFAULT_DOMAIN_SUFFIX = "cluster.local"


def normalize_host(host: str) -> str:
    """The form hosts are compared and indexed in (lower case)."""
    return host.lower()


def normalize_domain_suffix(value: str) -> str:
    """A domain suffix as Istio's ``domainSuffix`` (``cluster.local``). The older spelling
    ``svc.cluster.local`` (what ``analyze --domain-suffix`` once took) is accepted: the ``svc``
    label is what the FQDN builder inserts, so it is stripped here."""
    return normalize_host(value.strip().strip(".")).removeprefix("svc.")


def is_wildcard(host: str) -> bool:
    return host.startswith("*")


def host_matches(pattern: str, host: str) -> bool:
    """Is ``host`` (concrete or wildcard) covered by ``pattern``? Istio's ``host.SubsetOf``.

    ``*.example.com`` covers ``a.example.com``, ``a.b.example.com`` and ``*.a.example.com``,
    not ``example.com``; ``*`` covers everything.
    """
    pattern, host = normalize_host(pattern), normalize_host(host)
    if is_wildcard(host):
        return is_wildcard(pattern) and len(host) >= len(pattern) and host[1:].endswith(pattern[1:])
    if is_wildcard(pattern):
        return host.endswith(pattern[1:])
    return pattern == host


def hosts_overlap(a: str, b: str) -> bool:
    """Istio's ``host.Name.Matches``: do two (possibly wildcard) hosts share any name?"""
    return host_matches(a, b) or host_matches(b, a)


def specificity(pattern: str) -> tuple[int, int]:
    """Sort key, most specific first: exact names, then longer wildcards."""
    return (1 if is_wildcard(pattern) else 0, -len(pattern))


def resolve_short_name(
    host: str, namespace: str, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX
) -> str:
    """Istio's ResolveShortnameToFQDN, normalized: ``reviews`` in ``default`` ->
    ``reviews.default.svc.cluster.local``.

    Names with a dot (``reviews.prod``), ``*`` and IP addresses are returned unchanged (but
    normalized), exactly as Istio does (it never expands ``name.namespace``).
    """
    host = normalize_host(host)
    if not host or host == "*" or "." in host or is_ip(host):
        return host
    out = f"{host}.{namespace}" if namespace else host
    return f"{out}.svc.{domain_suffix}" if domain_suffix else out


def service_fqdn(name: str, namespace: str, domain_suffix: str = DEFAULT_DOMAIN_SUFFIX) -> str:
    """The host name of a Kubernetes Service: ``name.namespace.svc.cluster.local``."""
    return normalize_host(f"{name}.{namespace}.svc.{domain_suffix}")


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
    tail = f".svc.{domain_suffix}"
    if not fqdn.endswith(tail):
        return (fqdn,)
    name_ns = fqdn[: -len(tail)]
    name, _, service_namespace = name_ns.partition(".")
    out = [fqdn, f"{name_ns}.svc", name_ns]
    if service_namespace == namespace:
        out.append(name)
    return tuple(out)
