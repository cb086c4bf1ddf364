"""Per-stream, per-type protocol state: subscriptions, what was sent, ACKs and NACKs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from controlplane.xds import types
from controlplane.xds.resources import PreparedResource, TypeResources
from controlplane.xds.status import NackRecord


@dataclass(slots=True)  # no __dict__ per type per stream
class TypeState:
    type_url: str
    requested: bool = False  # a request for this type arrived on the stream
    wildcard: bool = False  # legacy (empty first request) or explicit "*"
    # Explicitly subscribed names, never "*". Replaced, never changed in place: streams that
    # ask for the same names share one frozenset (shared.SubscriptionPool).
    names: AbstractSet[str] = frozenset()
    # SotW: the subscription bytes of the last request applied (shared.subscription_key): a
    # request with the same bytes (an ACK) changes nothing.
    subscription_key: bytes | None = None
    ever_named: bool = False  # a name was sent once: an empty list is no longer a wildcard
    # SotW: name -> version the client holds or has in flight (EDS/RDS/SDS responses carry only
    # names whose version differs; LDS/CDS: the last full set). Delta: what the client has.
    # Replaced, never changed in place: when it equals a view's ``versions`` it is that very
    # map, shared by the group's streams (``share_sent``), not a copy per stream.
    sent: Mapping[str, str] = field(default_factory=dict)
    # SotW: ``sent`` as it was when the oldest response not yet answered went out (None:
    # nothing in flight), so what the client holds (``held``) needs no map of its own; and
    # name -> version it NACKed (not resent in a loop; a newer version goes out).
    before: Mapping[str, str] | None = None
    rejected: dict[str, str] = field(default_factory=dict)
    version_sent: str | None = None
    client_version: str | None = None  # SotW: version_info of a reconnecting client's first request
    nonce_sent: str = ""
    # SotW: the serial of the newest set sent whole with the group's shared response (and
    # its nonce, "v<serial>"): a set is sent so once per stream (see Stream._send_sotw).
    whole_serial: int = 0
    sent_at: float | None = None
    pending: bool = False  # a response waits for its ACK/NACK
    version_acked: str | None = None
    acked_at: float | None = None
    last_nack: NackRecord | None = None
    # Sets below are replaced, never changed in place, so that the empty one is shared: four
    # empty sets of their own (216 bytes each) per type made ~3.4 KB of every stream.
    nacked_versions: AbstractSet[str] = frozenset()  # logged once each
    # EDS: names to resend although unchanged because their cluster changed (Envoy re-warms it),
    # and names the listeners must wait for (owed since the last CDS response).
    force: AbstractSet[str] = frozenset()
    owed: AbstractSet[str] = frozenset()
    # CDS: what the client was last given, so a removed cluster can be kept until the listeners
    # and routes that used it have been replaced ("remove only after the replacement").
    # SotW: the snapshot's own map when the client was given all of it (shared, never mutated).
    resources: Mapping[str, PreparedResource] = field(default_factory=dict)
    # Delta: names newly subscribed, to be answered with removed_resources if they do not exist.
    check_missing: AbstractSet[str] = frozenset()
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
        return dict(self.sent if self.before is None else self.before)

    @property
    def in_flight(self) -> dict[str, str | None]:
        """SotW: names sent in responses not yet answered -> the version held before (None:
        none); for operators and tests."""
        if self.before is None:
            return {}
        before = self.before
        return {n: before.get(n) for n, v in self.sent.items() if before.get(n) != v}

    def share_sent(self, versions: Mapping[str, str]) -> None:
        """Hold ``versions`` (a view's own map) instead of an equal ``sent`` of our own."""
        sent = self.sent
        if sent is not versions and len(sent) == len(versions) and sent == versions:
            self.sent = versions

    def apply_sotw_names(self, names: frozenset[str]) -> None:
        """The names of a request (shared.SubscriptionPool's frozenset, "*" included if asked)."""
        if self.type_url in types.FULL_STATE_TYPES and not self.ever_named and not names:
            wildcard = True  # legacy wildcard
        else:
            if names:
                self.ever_named = True
            wildcard = types.WILDCARD in names
            if wildcard:
                names = names - {types.WILDCARD}
        if (
            (names is not self.names and names != self.names)
            or wildcard != self.wildcard
            or not self.requested
        ):
            self.synced = None  # an ACK repeats the names: it changes nothing
            if not wildcard:
                # A name dropped and asked again later must be sent again: the client forgot it.
                self.sent = _only(self.sent, names)
                self.before = None if self.before is None else _only(self.before, names)
                self.rejected = {n: v for n, v in self.rejected.items() if n in names}
            self.names = names
        self.wildcard = wildcard
        self.requested = True

    def record_sotw_sent(
        self, sent: Mapping[str, str], view_versions: Mapping[str, str], *, exact: bool = False
    ) -> None:
        """Names and versions a SotW response carried: in flight until ACKed. LDS/CDS: each
        response replaces the whole set, so ``sent`` becomes it (it may be the snapshot's own
        map, shared by every stream of the group). EDS/RDS/SDS: added to what was sent, and
        that is the view's own ``view_versions`` when equal (``exact``: the caller knows so)."""
        if self.type_url in types.FULL_STATE_TYPES:
            self.sent = sent
            return
        if self.before is None:
            self.before = self.sent
        if self.rejected:
            for name in sent:
                self.rejected.pop(name, None)
        if exact:
            self.sent = view_versions
            return
        self.sent = {**self.sent, **sent} if self.sent else sent
        self.share_sent(view_versions)

    def sotw_acked(self) -> None:
        self.before = None

    def sotw_nacked(self) -> None:
        """The client kept its last good resources: what was in flight is not held, and is
        remembered as rejected so the same versions are not sent again in a loop."""
        before = self.before
        if before is not None:  # partial-state types only (see record_sotw_sent)
            self.rejected.update(self.sent.items() - before.items())
            self.sent = before
            self.before = None
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
        share: Callable[[AbstractSet[str]], frozenset[str]] = frozenset,
    ) -> None:
        """``share`` makes the new names the frozenset equal streams share."""
        first = not self.requested
        if not (first or subscribe or unsubscribe):
            return  # an ACK: nothing changes
        sent = dict(initial_versions or {}) if first else self.sent
        if first:
            self.resumed = bool(initial_versions)
            if self.type_url in types.FULL_STATE_TYPES and not subscribe:
                self.wildcard = True  # legacy wildcard: first request names nothing
        # Set operations, in C: a first EDS request names every EDS cluster (~1,400).
        subscribed = set(subscribe)
        if types.WILDCARD in subscribed:
            self.wildcard = True
            subscribed.discard(types.WILDCARD)
        self.ever_named = self.ever_named or bool(subscribed)
        names = self.names | subscribed
        self.check_missing |= subscribed
        # Always send what is subscribed (what the first request says the client has is
        # kept): dropped from a copy of ``sent`` at the end, as it may be shared.
        forget = set() if first else subscribed
        unsubscribed = set(unsubscribe)
        if types.WILDCARD in unsubscribed:
            unsubscribed.discard(types.WILDCARD)
            names -= unsubscribed
            # The client forgets what only the wildcard brought it.
            self.wildcard = False
            sent = _only(sent, names)
        else:
            names -= unsubscribed
            if not self.wildcard:
                forget = forget | unsubscribed
        self.check_missing -= unsubscribed
        if not sent.keys().isdisjoint(forget):
            sent = dict(sent)
            for name in forget:
                sent.pop(name, None)
        self.names = share(names)
        self.sent = sent
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


def _only(versions: Mapping[str, str], names: AbstractSet[str]) -> Mapping[str, str]:
    """``versions`` of ``names`` alone: the very map (shared, never mutated) when it holds no
    other, as after a subscription that only grew (a new cluster's EDS name)."""
    if versions.keys() <= names:  # in C; the map stays shared by the streams holding it
        return versions
    return {n: v for n, v in versions.items() if n in names}
