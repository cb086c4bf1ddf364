"""SPIFFE IDs (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md).

Istio's workload identity is ``spiffe://<trust domain>/ns/<namespace>/sa/<service account>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from controlplane.ca.errors import CAError

SCHEME = "spiffe://"
# The standard allows only these characters: lowercase trust domains, path segments of
# letters, digits, dot, dash and underscore. No percent-encoding, no port, no userinfo.
_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]+$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
_MAX_ID_LENGTH = 2048


def validate_trust_domain(trust_domain: str) -> str:
    if not trust_domain or len(trust_domain) > 255 or not _TRUST_DOMAIN.match(trust_domain):
        raise CAError(
            f"invalid SPIFFE trust domain {trust_domain!r}: "
            "lowercase letters, digits, '.', '-' and '_' only"
        )
    return trust_domain


def _validate_segment(segment: str, what: str) -> str:
    if not segment or segment in (".", "..") or not _SEGMENT.match(segment):
        raise CAError(f"invalid SPIFFE path segment for {what}: {segment!r}")
    return segment


@dataclass(frozen=True, order=True)
class SpiffeId:
    """A parsed SPIFFE ID; ``path`` is the list of segments after the trust domain."""

    trust_domain: str
    path: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        validate_trust_domain(self.trust_domain)
        for segment in self.path:
            _validate_segment(segment, "path")
        if len(self.uri) > _MAX_ID_LENGTH:
            raise CAError("SPIFFE ID longer than 2048 bytes")

    @property
    def uri(self) -> str:
        return SCHEME + self.trust_domain + "".join("/" + s for s in self.path)

    def __str__(self) -> str:
        return self.uri

    @classmethod
    def for_workload(cls, trust_domain: str, namespace: str, service_account: str) -> SpiffeId:
        _validate_segment(namespace, "namespace")
        _validate_segment(service_account, "service account")
        return cls(trust_domain, ("ns", namespace, "sa", service_account))

    @property
    def is_workload(self) -> bool:
        return len(self.path) == 4 and self.path[0] == "ns" and self.path[2] == "sa"

    @property
    def namespace(self) -> str:
        self._require_workload()
        return self.path[1]

    @property
    def service_account(self) -> str:
        self._require_workload()
        return self.path[3]

    def _require_workload(self) -> None:
        if not self.is_workload:
            raise CAError(f"{self.uri} is not of the form spiffe://<td>/ns/<ns>/sa/<sa>")


def parse_spiffe_id(uri: str) -> SpiffeId:
    """Parse and validate; raise CAError on anything the standard forbids."""
    if not isinstance(uri, str) or not uri.startswith(SCHEME):
        raise CAError(f"not a SPIFFE ID (scheme must be lowercase 'spiffe://'): {uri!r}")
    if len(uri) > _MAX_ID_LENGTH:
        raise CAError("SPIFFE ID longer than 2048 bytes")
    rest = uri[len(SCHEME) :]
    if any(c in rest for c in "?#%@:"):
        raise CAError(
            f"SPIFFE ID must not have query, fragment, port, userinfo or escapes: {uri!r}"
        )
    trust_domain, slash, path = rest.partition("/")
    if slash and not path:
        raise CAError(f"SPIFFE ID must not end with '/': {uri!r}")
    segments = tuple(path.split("/")) if path else ()
    return SpiffeId(validate_trust_domain(trust_domain), segments)


def parse_workload_id(uri: str) -> SpiffeId:
    """Parse a workload SPIFFE ID and require the Istio ``/ns/<ns>/sa/<sa>`` form."""
    spiffe_id = parse_spiffe_id(uri)
    spiffe_id._require_workload()
    return spiffe_id
