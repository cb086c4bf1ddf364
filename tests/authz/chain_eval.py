"""A chain of Envoy authorization filters evaluated for one request, for tests: RBAC filters
(HTTP or network) and ext_authz filters, in order, as Envoy runs them.

An RBAC filter's shadow engine writes, when one of its policies matches, the first matching
policy's name (Envoy keeps policies sorted by name) to dynamic metadata (namespace
``envoy.filters.http.rbac`` or ``envoy.filters.network.rbac`` whatever the filter is named) under
``<shadow_rules_stat_prefix>shadow_effective_policy_id``, and the engine result under
``<prefix>shadow_engine_result``; its enforced engine refuses or not. An ext_authz filter runs
only where its ``filter_enabled_metadata`` matches that metadata: the outcome lists the
authorizers consulted (their configs, serialized), taken to allow; what they answer is the
authorizer's business, not the config's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.ext_authz.v3 import ext_authz_pb2 as net_ext_authz_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from tests.authz.rbac_eval import Context, Request, engine_allows, metadata_matches, policy_matches

HTTP_RBAC, NETWORK_RBAC = "envoy.filters.http.rbac", "envoy.filters.network.rbac"
_TYPES: tuple[type[Message], ...] = (
    http_rbac_pb2.RBAC,
    network_rbac_pb2.RBAC,
    ext_authz_pb2.ExtAuthz,
    net_ext_authz_pb2.ExtAuthz,
)

Filter = tuple[str, Message]  # (filter name, its config)


def unpack(name: str, typed_config: any_pb2.Any) -> Filter:
    """A filter of the chain from its name and ``typed_config``."""
    for kind in _TYPES:
        if typed_config.Is(kind.DESCRIPTOR):
            config = kind()
            typed_config.Unpack(config)
            return name, config
    raise ValueError(f"{name}: {typed_config.type_url} is not an authorization filter")


@dataclass(frozen=True)
class ChainOutcome:
    allowed: bool  # False: an RBAC filter refused the request
    consulted: tuple[bytes, ...]  # the ext_authz configs that ran, serialized, in order


def _effective_policy(rbac: rbac_pb2.RBAC, ctx: Context) -> str | None:
    for name in sorted(rbac.policies):
        if policy_matches(rbac.policies[name], ctx):
            return name
    return None


def run(chain: Iterable[Filter], request: Request, jwt_key: str) -> ChainOutcome:
    metadata: dict[str, Any] = request.dynamic_metadata(jwt_key)
    ctx = Context(request, metadata)
    consulted: list[bytes] = []
    for _, config in chain:
        if isinstance(config, http_rbac_pb2.RBAC | network_rbac_pb2.RBAC):
            if config.HasField("shadow_rules"):
                effective = _effective_policy(config.shadow_rules, ctx)
                written = metadata.setdefault(
                    HTTP_RBAC if isinstance(config, http_rbac_pb2.RBAC) else NETWORK_RBAC, {}
                )
                prefix = config.shadow_rules_stat_prefix
                written[f"{prefix}shadow_engine_result"] = (
                    "allowed" if engine_allows(config.shadow_rules, ctx) else "denied"
                )
                if effective is not None:
                    written[f"{prefix}shadow_effective_policy_id"] = effective
            if (
                config.HasField("rules")
                and config.rules.action != rbac_pb2.RBAC.LOG
                and not engine_allows(config.rules, ctx)
            ):
                return ChainOutcome(False, tuple(consulted))
        else:
            assert isinstance(config, ext_authz_pb2.ExtAuthz | net_ext_authz_pb2.ExtAuthz)
            if not config.HasField("filter_enabled_metadata") or metadata_matches(
                config.filter_enabled_metadata, metadata
            ):
                consulted.append(config.SerializeToString(deterministic=True))
    return ChainOutcome(True, tuple(consulted))
