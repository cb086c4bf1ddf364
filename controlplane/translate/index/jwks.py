"""The JWKS part of the index: the keys the control plane fetched for RequestAuthentication
rules (``FetchedJwks``, fed by ``sources.jwks``), by where they were fetched from.

Its own part so that a key rotation rebuilds this map alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from controlplane.model.frozen import EMPTY
from controlplane.model.jwks import FetchedJwks, JwksTarget
from controlplane.translate.index.service_index import Snapshot

JWKS_KINDS = frozenset({FetchedJwks.KIND})


@dataclass(frozen=True, slots=True)
class JwksIndex:
    fetched: Mapping[JwksTarget, str] = field(default=EMPTY)

    def get(self, target: JwksTarget) -> str | None:
        """The last good document fetched for ``target``; None before any success."""
        return self.fetched.get(target)


def build_jwks_index(snapshot: Snapshot) -> JwksIndex:
    fetched: list[FetchedJwks] = snapshot.of_kind(FetchedJwks.KIND)
    return JwksIndex({r.spec.target: r.spec.jwks for r in fetched})
