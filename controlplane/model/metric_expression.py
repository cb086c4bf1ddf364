"""The value expressions of Telemetry ``tagOverrides`` that stock Envoy can evaluate.

Istio evaluates a tag value as CEL inside its own stats filter, with its own attributes
(``upstream_peer``, ``node``, ...). Here a tag is an Envoy access-log format string, so only
this subset is accepted, each mapped by ``translate/istio_metrics`` to a format:

- a string literal: ``'v1'`` or ``"v1"``;
- a path over Envoy's CEL attributes: ``request.host``, ``request.headers['x-user']``,
  ``response.code``, ``connection.mtls``, ``upstream.address``, ``xds.cluster_name``, ...
  (served by Envoy's built-in ``%CEL(...)%`` formatter);
- the peer's workload facts: ``upstream_peer.<field>`` / ``downstream_peer.<field>`` with a
  field of ``PEER_FIELDS``.

Anything else (operators, function calls, other roots) is refused with a message that says
why; the caller names the field path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Roots of Envoy's CEL attribute vocabulary (docs: "Attributes").
ENVOY_ROOTS = frozenset(
    {"request", "response", "connection", "upstream", "source", "destination", "xds", "metadata", "filter_state"}
)
PEER_ROOTS = frozenset({"upstream_peer", "downstream_peer"})
# Istio's peer attributes (WorkloadMetadataObject) that the sidecars exchange here.
PEER_FIELDS = frozenset({"workload", "namespace", "app", "version", "service", "revision", "cluster"})

_TOKEN = re.compile(
    r"\s*(?:(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<str>'[^'\\%]*'|\"[^\"\\%]*\")|(?P<punct>[.\[\]]))"
)


@dataclass(frozen=True, slots=True)
class LiteralValue:
    text: str


@dataclass(frozen=True, slots=True)
class EnvoyAttribute:
    """A path over Envoy's CEL attributes, kept in canonical form (``request.headers['x']``)."""

    path: str


@dataclass(frozen=True, slots=True)
class PeerAttribute:
    peer: str  # "upstream_peer" or "downstream_peer"
    field: str  # one of PEER_FIELDS


MetricExpression = LiteralValue | EnvoyAttribute | PeerAttribute


class UnsupportedExpression(ValueError):
    """The expression is valid CEL (perhaps) but not one stock Envoy evaluates here."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise UnsupportedExpression(
                f"unsupported expression {text!r} at offset {pos}: only string literals and "
                "attribute paths (request.host, request.headers['x'], upstream_peer.app) are supported"
            )
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def parse_metric_expression(text: str) -> MetricExpression:
    """The expression of one tag override; ``UnsupportedExpression`` when it is not one of the
    forms above."""
    tokens = _tokens(text)
    if not tokens:
        raise UnsupportedExpression("empty expression")
    if len(tokens) == 1 and tokens[0][0] == "str":
        return LiteralValue(tokens[0][1][1:-1])
    kind, root = tokens[0]
    if kind != "ident":
        raise UnsupportedExpression(f"unsupported expression {text!r}: must start with an attribute")
    parts: list[str] = [root]
    keys: list[str] = []  # the path's steps, names or quoted keys, for peer attributes
    i = 1
    while i < len(tokens):
        kind, value = tokens[i]
        if value == "." and i + 1 < len(tokens) and tokens[i + 1][0] == "ident":
            parts.append("." + tokens[i + 1][1])
            keys.append(tokens[i + 1][1])
            i += 2
        elif value == "[" and i + 2 < len(tokens) and tokens[i + 1][0] == "str" and tokens[i + 2][1] == "]":
            key = tokens[i + 1][1][1:-1]
            parts.append(f"['{key}']")
            keys.append(key)
            i += 3
        else:
            raise UnsupportedExpression(
                f"unsupported expression {text!r}: only field access (.name) and map keys (['key']) "
                "are supported, no operators or function calls"
            )
    if root in PEER_ROOTS:
        if not keys or keys[0] not in PEER_FIELDS:
            raise UnsupportedExpression(
                f"unsupported expression {text!r}: {root} has the fields {', '.join(sorted(PEER_FIELDS))}"
            )
        if len(keys) != 1:
            raise UnsupportedExpression(f"unsupported expression {text!r}: {root}.{keys[0]} has no fields")
        return PeerAttribute(root, keys[0])
    if root not in ENVOY_ROOTS:
        raise UnsupportedExpression(
            f"unsupported expression {text!r}: {root!r} is not an attribute stock Envoy knows "
            f"({', '.join(sorted(ENVOY_ROOTS | PEER_ROOTS))})"
        )
    if not keys:
        raise UnsupportedExpression(f"unsupported expression {text!r}: name an attribute of {root}")
    return EnvoyAttribute("".join(parts))
