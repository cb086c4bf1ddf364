"""Small validation predicates shared by the kind validators (after Istio's pkg/config/validation).

Each ``check_*`` returns an error message, or "" when the value is fine, so that the caller
decides the field path.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from functools import lru_cache

try:  # Envoy evaluates regexes with RE2; google-re2 refuses exactly what Envoy would.
    import re2 as _re2

    _RE2_OPTIONS = _re2.Options()
    _RE2_OPTIONS.log_errors = False  # we report the error; RE2 must not also write it to stderr
except ImportError:  # pragma: no cover - exercised only without the wheel
    _re2 = None

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Istio compares hosts case-insensitively, so its DNS label format allows upper case.
_ISTIO_LABEL = re.compile(r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
_WILDCARD_LABEL = re.compile(r"^(\*|(\*|\*-)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# Istio's validHeaderRegex (stricter than RFC 7230 tokens).
_HTTP_HEADER_NAME = re.compile(r"^[-_A-Za-z0-9]+$")
# Control characters other than horizontal tab are refused in header values (Envoy).
_HEADER_VALUE_BAD = re.compile("[\x00-\x08\x0a-\x1f\x7f]")

MIN_DURATION = timedelta(milliseconds=1)


# --- names -----------------------------------------------------------------------------------


def check_dns1123_label(value: str) -> str:
    if len(value) > 63 or not DNS1123_LABEL.match(value):
        return f"{value!r} is not a valid DNS-1123 label (lower case alphanumerics and '-', max 63)"
    return ""


def check_dns1123_subdomain(value: str) -> str:
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
        return (
            f"{value!r} is not a valid DNS-1123 subdomain (lower case alphanumerics, '-' and '.')"
        )
    return ""


def check_dns1035_label(value: str) -> str:
    if len(value) > 63 or not _DNS1035_LABEL.match(value):
        return f"{value!r} is not a valid DNS-1035 label (must start with a letter, max 63)"
    return ""


def check_label_key(key: str) -> str:
    """Kubernetes qualified name with optional DNS subdomain prefix: ``example.com/name``."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        return f"label key {key!r}: prefix must not be empty"
    if prefix and check_dns1123_subdomain(prefix):
        return f"label key {key!r}: prefix must be a DNS-1123 subdomain"
    if len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return (
            f"label key {key!r}: name must be 63 characters or less, alphanumerics with '-', '_'"
            " or '.' inside"
        )
    return ""


def check_label_value(value: str) -> str:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        return f"label value {value!r} must be 63 characters or less, alphanumerics with '-', '_' or '.' inside"
    return ""


def check_http_header_name(name: str) -> str:
    if not name:
        return "header name cannot be empty"
    if not _HTTP_HEADER_NAME.match(name):
        return f"header name {name!r} is not a valid header name"
    return ""


def check_http_header_value(value: str) -> str:
    if _HEADER_VALUE_BAD.search(value):
        return f"header value {value!r} contains control characters"
    return ""


# --- hosts -----------------------------------------------------------------------------------


def check_dns1123_labels(domain: str) -> str:
    """Istio's ValidateDNS1123Labels: dot-separated labels, last may be empty, TLD not numeric."""
    parts = domain.split(".")
    if parts[-1].isdigit():
        return (
            f"domain name {domain!r} invalid (top level domain {parts[-1]!r} cannot be all-numeric)"
        )
    for index, label in enumerate(parts):
        if index == len(parts) - 1 and label == "":
            return ""
        if len(label) > 63 or not _ISTIO_LABEL.match(label):
            return f"domain name {domain!r} invalid (label {label!r} invalid)"
    return ""


def check_wildcard_domain(domain: str) -> str:
    """Istio's ValidateWildcardDomain: a wildcard only in the first label (``*.example.com``)."""
    if not domain:
        return "domain name must not be empty"
    if len(domain) > 255:
        return f"domain name {domain!r} too long (max 255)"
    first, dot, rest = domain.partition(".")
    if len(first) > 63 or not _WILDCARD_LABEL.match(first):
        return f"domain name {domain!r} invalid (label {first!r} invalid)"
    if dot:
        return check_dns1123_labels(rest)
    return ""


def check_fqdn(domain: str) -> str:
    """A DNS name without wildcard (ServiceEntry endpoint addresses, JWKS hosts)."""
    if not domain:
        return "domain name must not be empty"
    if len(domain) > 255:
        return f"domain name {domain!r} too long (max 255)"
    return check_dns1123_labels(domain)


def check_namespaced_host(value: str, *, allow_tilde: bool = True) -> str:
    """Gateway/Sidecar hosts ``namespace/dnsName``; namespace ``*``, ``.``, ``~`` or a name."""
    namespace, slash, host = value.partition("/")
    if not slash:
        namespace, host = "*", value
    if not namespace:
        return f"host {value!r}: namespace must not be empty"
    special = namespace in ("*", ".") or (allow_tilde and namespace == "~")
    if not special and check_dns1123_label(namespace):
        return f"host {value!r}: invalid namespace {namespace!r}"
    if host == "*":
        return ""
    return check_wildcard_domain(host)


# --- addresses -------------------------------------------------------------------------------


_IPV4 = re.compile(r"^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$")


def is_ip(value: str) -> bool:
    if _IPV4.match(value):  # the common case, without ipaddress's slower parsing
        return True
    if ":" not in value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def check_ip(value: str) -> str:
    return "" if is_ip(value) else f"{value!r} is not a valid IP address"


def check_cidr_or_ip(value: str) -> str:
    try:
        if "/" in value:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        return f"{value!r} is not a valid IP address or CIDR block"
    return ""


def check_port(port: int, *, allow_zero: bool = False) -> str:
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        return (
            f"port number {port} must be between {low}-65535"
            if allow_zero
            else (f"port number {port}: port must be between 1-65535")
        )
    return ""


def check_port_name(name: str) -> str:
    """Istio port names (Gateway, ServiceEntry, Sidecar): a DNS-1123 label."""
    if not name:
        return "port name must not be empty"
    return check_dns1123_label(name)


# --- numbers and durations -------------------------------------------------------------------


def check_percent(value: float) -> str:
    if not 0.0 <= value <= 100.0:
        return f"percentage {value} is not in range 0..100"
    return ""


def check_duration(value: timedelta, *, minimum: timedelta = MIN_DURATION) -> str:
    """Istio's ValidateDuration: at least 1ms and whole milliseconds."""
    if value < minimum:
        return (
            f"duration {value.total_seconds():g}s must be greater than "
            f"{minimum.total_seconds() * 1000:g}ms"
        )
    if value.microseconds % 1000:
        return f"duration {value.total_seconds():g}s: only durations to ms precision are supported"
    return ""


def check_fractional_percent(value: float) -> str:
    """Istio's validatePercentage: 0, or in [0.0001, 100]."""
    if not (value == 0.0 or 0.0001 <= value <= 100.0):
        return f"percentage {value} is neither 0.0, nor in range [0.0001, 100.0]"
    return ""


# --- regular expressions ---------------------------------------------------------------------

# Constructs that Python accepts and RE2 refuses (used only without google-re2).
_RE2_UNSUPPORTED = re.compile(
    r"\(\?[=!<]|\(\?<[=!]|\\[1-9]|\(\?P=|\(\?>|\\[zZ](?![a-zA-Z])|\(\?\(|[*+?}]\+"
)


MAX_REGEX_LENGTH = 1024  # Istio's stand-in for Envoy's re2.max_program_size


@lru_cache(maxsize=4096)
def check_regex(pattern: str) -> str:
    """An RE2 regex (Envoy's ``safe_regex``); lookarounds and backreferences are refused."""
    if len(pattern) > MAX_REGEX_LENGTH:
        return f"regex is too large, max length allowed is {MAX_REGEX_LENGTH}"
    if _re2 is not None:
        try:
            _re2.compile(pattern, _RE2_OPTIONS)
        except _re2.error as exc:
            reason = exc.args[0] if exc.args else ""
            if isinstance(reason, bytes):
                reason = reason.decode(errors="replace")
            return f"invalid RE2 regex {pattern!r}: {reason}"
        return ""
    if _RE2_UNSUPPORTED.search(pattern):
        return f"invalid RE2 regex {pattern!r}: lookaround, backreference or possessive syntax"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"invalid regex {pattern!r}: {exc}"
    return ""
