"""Per-stream, per-type protocol state: subscriptions, what was sent, ACKs and NACKs."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from controlplane.xds import types
from controlplane.xds.resources import PreparedResource, TypeResources
from controlplane.xds.status import NackRecord


@dataclass
class TypeState:
    type_url: str
    requested: bool = False  # a request for this type arrived on the stream
    wildcard: bool = False  # legacy (empty first request) or explicit "*"
    names: set[str] = field(default_factory=set)  # explicitly subscribed names, never "*"
    ever_named: bool = False  # a name was sent once: an empty list is no longer a wildcard
    # SotW: name -> version the client holds or has in flight (EDS/RDS/SDS responses carry only
    # names whose version differs; LDS/CDS: the last full set). Delta: what the client has.
    sent: dict[str, str] = field(default_factory=dict)
    # SotW: the names in responses not yet answered -> the version the client held before
    # (None: none), so what it holds (``held``) needs no map of its own; and name -> version
    # it NACKed (not resent in a loop; a newer version goes out).
    in_flight: dict[str, str | None] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    version_sent: str | None = None
    client_version: str | None = None  # SotW: version_info of a reconnecting client's first request
    nonce_sent: str = ""
    sent_at: float | None = None
    pending: bool = False  # a response waits for its ACK/NACK
    version_acked: str | None = None
    acked_at: float | None = None
    last_nack: NackRecord | None = None
    nacked_versions: set[str] = field(default_factory=set)  # logged once each
    # EDS: names to resend although unchanged because their cluster changed (Envoy re-warms it),
    # and names the listeners must wait for (owed since the last CDS response).
    force: set[str] = field(default_factory=set)
    owed: set[str] = field(default_factory=set)
    # CDS: what the client was last given, so a removed cluster can be kept until the listeners
    # and routes that used it have been replaced ("remove only after the replacement").
    # SotW: the snapshot's own map when the client was given all of it (shared, never mutated).
    resources: Mapping[str, PreparedResource] = field(default_factory=dict)
    # Delta: names newly subscribed, to be answered with removed_resources if they do not exist.
    check_missing: set[str] = field(default_factory=set)
    # Delta: the first request said what the client already holds (a reconnect).
    resumed: bool = False
    # (the view, the CDS view for EDS, whether the client is to hold all of the view) against
    # which nothing more is due: the stream skips planning while they are the cache's current
    # ones. Reset by any change of what the client asked for or holds other than the
    # response just built (see Stream._build).
    synced: tuple[TypeResources, TypeResources | None, bool] | None = None

    # --- SotW -------------------------------------------------------------------------------

    @property
    def held(self) -> dict[str, str]:
        """SotW: name -> version the client ACKed (what it holds)."""
        held = dict(self.sent)
        for name, before in self.in_flight.items():
            if before is None:
                held.pop(name, None)
            else:
                held[name] = before
        return held

    def apply_sotw_names(self, resource_names: list[str]) -> None:
        names = set(resource_names)
        if self.type_url in types.FULL_STATE_TYPES and not self.ever_named and not names:
            wildcard = True  # legacy wildcard
        else:
            if names:
                self.ever_named = True
            wildcard = types.WILDCARD in names
            names.discard(types.WILDCARD)
        if names != self.names or wildcard != self.wildcard or not self.requested:
            self.synced = None  # an ACK repeats the names: it changes nothing
            if not wildcard:
                # A name dropped and asked again later must be sent again: the client forgot it.
                self.sent = {n: v for n, v in self.sent.items() if n in names}
                self.in_flight = {n: v for n, v in self.in_flight.items() if n in names}
                self.rejected = {n: v for n, v in self.rejected.items() if n in names}
            # Interned: every stream asking for a name holds the same string.
            self.names = {sys.intern(n) for n in names}
        self.wildcard = wildcard
        self.requested = True

    def record_sotw_sent(self, sent: dict[str, str]) -> None:
        """Names and versions a SotW response carried: in flight until ACKed. LDS/CDS: each
        response replaces the whole set, so ``sent`` becomes it (it may be the snapshot's own
        map, shared by every stream of the group: replaced, never mutated)."""
        if self.type_url in types.FULL_STATE_TYPES:
            self.sent = sent
            return
        for name in sent:
            if name not in self.in_flight:
                self.in_flight[name] = self.sent.get(name)
            self.rejected.pop(name, None)
        self.sent.update(sent)

    def sotw_acked(self) -> None:
        self.in_flight.clear()

    def sotw_nacked(self) -> None:
        """The client kept its last good resources: what was in flight is not held, and is
        remembered as rejected so the same versions are not sent again in a loop."""
        for name, before in self.in_flight.items():  # partial-state types only (see above)
            self.rejected[name] = self.sent[name]
            if before is None:
                self.sent.pop(name, None)
            else:
                self.sent[name] = before
        self.in_flight.clear()
        self.synced = None

    def sotw_due(self, name: str, version: str) -> bool:
        """Whether a SotW response for a partial-state type must carry this resource."""
        if name in self.force:
            return True
        return self.sent.get(name) != version and self.rejected.get(name) != version

    # --- Delta ------------------------------------------------------------------------------

    def apply_delta_subscriptions(
        self,
        subscribe: list[str],
        unsubscribe: list[str],
        initial_versions: dict[str, str] | None,
    ) -> None:
        first = not self.requested
        if first:
            self.sent = dict(initial_versions or {})
            self.resumed = bool(initial_versions)
            if self.type_url in types.FULL_STATE_TYPES and not subscribe:
                self.wildcard = True  # legacy wildcard: first request names nothing
        for name in subscribe:
            if name == types.WILDCARD:
                self.wildcard = True
                continue
            self.ever_named = True
            name = sys.intern(name)
            self.names.add(name)
            self.check_missing.add(name)
            if not (first and name in (initial_versions or {})):
                # Always send what is subscribed, unless the client says it has this version.
                self.sent.pop(name, None)
        for name in unsubscribe:
            if name == types.WILDCARD:
                # The client forgets what only the wildcard brought it.
                self.wildcard = False
                self.sent = {n: v for n, v in self.sent.items() if n in self.names}
                continue
            self.names.discard(name)
            self.check_missing.discard(name)
            if not self.wildcard:
                self.sent.pop(name, None)
        if first or subscribe or unsubscribe:
            self.synced = None
        self.requested = True

    # --- Operators --------------------------------------------------------------------------

    def sync_status(self) -> dict[str, object]:
        """What was sent when and whether it was ACKed or NACKed: cheap (no names), for
        convergence tracking while a push is in flight."""
        nack = self.last_nack
        return {
            "version_sent": self.version_sent,
            "sent_at": self.sent_at,
            "pending_ack": self.pending,
            "version_acked": self.version_acked,
            "acked_at": self.acked_at,
            "last_nack": None
            if nack is None
            else {"version": nack.rejected_version, "error": nack.error, "at": nack.at},
        }

    def status(self) -> dict[str, object]:
        return {
            "type_url": self.type_url,
            "type": types.short_name(self.type_url),
            "wildcard": self.wildcard,
            "subscribed": sorted(self.names),
            "nonce_sent": self.nonce_sent,
            "resources_sent": len(self.sent),
            **self.sync_status(),
        }
