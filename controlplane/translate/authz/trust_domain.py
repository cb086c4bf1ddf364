"""Trust domain aliases in source principals (Istio's trustdomain.Bundle).

A principal ``<td>/ns/<ns>/sa/<sa>`` whose trust domain is the mesh's, one of its aliases, or
``cluster.local`` (which stands for the local trust domain) is expanded to the same identity
in the mesh's trust domain and in every alias, so that policies survive a trust domain
migration. Principals whose trust domain is ``*``, or that are not in that form, are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TRUST_DOMAIN = "cluster.local"


def _prefix_match(text: str, pattern: str) -> bool:
    return pattern.endswith("*") and text.startswith(pattern[:-1])


def _suffix_match(text: str, pattern: str) -> bool:
    return pattern.startswith("*") and text.endswith(pattern[1:])


def _matches_any(trust_domain: str, candidates: tuple[str, ...]) -> bool:
    """Istio's trustdomain.stringMatch: globs on either side."""
    return any(
        trust_domain == c or c == "*" or _prefix_match(trust_domain, c) or _prefix_match(c, trust_domain)
        or _suffix_match(trust_domain, c) or _suffix_match(c, trust_domain)
        for c in candidates
    )


@dataclass(frozen=True, slots=True)
class TrustDomainBundle:
    """The local trust domain first, then its aliases."""

    trust_domains: tuple[str, ...] = (DEFAULT_TRUST_DOMAIN,)

    @staticmethod
    def of(trust_domain: str, aliases: tuple[str, ...] = ()) -> TrustDomainBundle:
        return TrustDomainBundle((trust_domain, *aliases))

    def expand(self, principals: tuple[str, ...]) -> tuple[str, ...]:
        out: list[str] = []
        for principal in principals:
            parts = principal.split("/")
            if len(parts) != 5 or parts[0] == "*":
                out.append(principal)  # not a SPIFFE path, or any trust domain
                continue
            td = parts[0]
            if not (_matches_any(td, self.trust_domains) or td == DEFAULT_TRUST_DOMAIN):
                out.append(principal)
                continue
            expanded: list[str] = []
            for local in self.trust_domains:
                # "*-td" that matches an alias stays as written (it already covers it).
                candidate = principal if _suffix_match(local, td) else "/".join([local, *parts[1:]])
                if candidate not in expanded:
                    expanded.append(candidate)
            out.extend(expanded)
        return tuple(out)
