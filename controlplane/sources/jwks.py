"""Fetches the JWKS that RequestAuthentication ``jwtRules`` point at, as istiod's JWKS
resolver does, and feeds them into the store as ``FetchedJwks`` resources.

Translation inlines the keys into each sidecar's ``jwt_authn`` config (sidecars need no
route to the issuer); because translation is pure, the fetching lives here, and a key
rotation reaches the sidecars as an input change, through the usual debounce and push.

- What is fetched: each ``jwksUri`` a RequestAuthentication names (rules with an inline
  ``jwks`` need nothing), or, for a rule with neither, the ``jwks_uri`` of its issuer's
  OpenID discovery document (``<issuer>/.well-known/openid-configuration``).
- When: a new target at once (the runtime fetches everything once before its first push);
  then every ``refresh_interval`` (Istio: 20 minutes); after a failure sooner
  (``refresh_interval_on_failure``, doubling on each failure in a row, never beyond the
  refresh interval), as istiod does.
- A failed fetch, or a document that is not a JWKS, changes nothing: the last good keys
  stay in the store. Before any success there is no resource, and translation inlines a
  JWKS nobody holds the key to (every token fails, none passes unchecked).
- Bounds: at most ``max_targets`` targets (the rest, in sorted order, are not fetched and
  logged), ``max_bytes`` per document, ``timeout`` per request (a rule's own ``timeout``
  may ask for more, up to ``MAX_TIMEOUT_SECONDS``) for the whole request, http(s) only,
  redirects to http(s) only.
- A target no RequestAuthentication names any longer is dropped from the store.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from controlplane.model.base import ResourceKey
from controlplane.model.jwks import (
    FetchedJwks,
    JwksTarget,
    fetched_jwks_name,
    jwks_problem,
    jwks_target,
)
from controlplane.model.security import RequestAuthentication
from controlplane.store import ChangeSet, Store

log = logging.getLogger("controlplane.jwks")

SOURCE_ID = "jwks"
MAX_TIMEOUT_SECONDS = 30.0
_FETCH_WORKERS = 4
_READ_CHUNK = 64 * 1024
_MIN_WAIT_SECONDS = 0.05  # between rounds, however short the intervals


class FetchError(Exception):
    """A document could not be fetched (network, status, size, time or content)."""


# (url, timeout in seconds for the whole request, largest body accepted) -> body
Fetch = Callable[[str, float, int], bytes]


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if urlsplit(newurl).scheme not in ("http", "https"):
            raise FetchError(f"redirect to {newurl!r} refused: http(s) only")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects())


def http_get(url: str, timeout: float, max_bytes: int) -> bytes:
    """GET ``url`` with the standard library: 2xx only, at most ``max_bytes``, within
    ``timeout`` seconds overall. Raises FetchError."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise FetchError("only http and https URLs are fetched")
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": "controlplane-jwks-fetcher"}
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            body = bytearray()
            while True:
                if time.monotonic() > deadline:
                    raise FetchError(f"no complete answer within {timeout:g} s")
                chunk = response.read1(_READ_CHUNK)
                if not chunk:
                    return bytes(body)
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError(f"larger than {max_bytes} bytes")
    except urllib.error.HTTPError as error:
        raise FetchError(f"status {error.code}") from None
    except urllib.error.URLError as error:
        raise FetchError(str(error.reason)) from None
    except (OSError, http.client.HTTPException, ValueError) as error:
        raise FetchError(str(error) or type(error).__name__) from None


@dataclass
class _Entry:
    timeout: float
    next_due: float = 0.0  # monotonic time of the next fetch; 0: at once
    failures: int = 0  # in a row
    last_good: str | None = None
    error: str = ""


def wanted_targets(
    policies: Iterable[RequestAuthentication], default_timeout: float
) -> dict[JwksTarget, float]:
    """Every target the policies' rules need fetched, with the longest timeout a rule asks
    for (``default_timeout`` where none does), capped at ``MAX_TIMEOUT_SECONDS``."""
    out: dict[JwksTarget, float] = {}
    for policy in policies:
        for rule in policy.spec.jwt_rules:
            target = jwks_target(rule)
            if target is None:
                continue
            timeout = rule.timeout.total_seconds() if rule.timeout is not None else default_timeout
            out[target] = min(max(out.get(target, 0.0), timeout), MAX_TIMEOUT_SECONDS)
    return out


class JwksSource:
    """Keeps one ``FetchedJwks`` per target in ``store`` (source ``jwks``), fresh."""

    def __init__(
        self,
        store: Store,
        *,
        refresh_interval: float = 20 * 60,
        refresh_interval_on_failure: float = 60.0,
        timeout: float = 5.0,
        max_bytes: int = 512 * 1024,
        max_targets: int = 100,
        fetch: Fetch = http_get,
        on_fetch: Callable[[bool], None] = lambda ok: None,
        clock: Callable[[], float] = time.monotonic,
        source_id: str = SOURCE_ID,
    ) -> None:
        self.store = store
        self.refresh_interval = refresh_interval
        self.refresh_interval_on_failure = min(refresh_interval_on_failure, refresh_interval)
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_targets = max_targets
        self.source_id = source_id
        self._fetch = fetch
        self._on_fetch = on_fetch
        self._clock = clock
        self._entries: dict[JwksTarget, _Entry] = {}
        self._skipped: frozenset[JwksTarget] = frozenset()
        self._sync_lock = threading.Lock()  # one round at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._unsubscribe: Callable[[], None] = lambda: None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Follow the store's RequestAuthentications and refresh in a background thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._unsubscribe = self.store.subscribe(self._input_changed)
        self._thread = threading.Thread(target=self._run, name="jwks-fetcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._unsubscribe()
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            # A fetch in flight ends by its timeout; the daemon thread then sees the stop.
            self._thread.join(timeout=5)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def errors(self) -> dict[str, str]:
        """Targets whose last fetch failed: target -> why (for debug output)."""
        with self._sync_lock:
            return {str(t): e.error for t, e in sorted(self._entries.items()) if e.error}

    # --- one round ----------------------------------------------------------------------------

    def sync(self) -> ChangeSet:
        """Reconcile the targets with the store's RequestAuthentications, fetch those due (new
        ones at once), and apply what changed. Returns the store's change set."""
        with self._sync_lock:
            deletes = self._reconcile()
            now = self._clock()
            due = sorted(t for t, e in self._entries.items() if e.next_due <= now)
            results = self._fetch_all(due)
            upserts: list[FetchedJwks] = []
            now = self._clock()
            for target, result in zip(due, results):
                document = self._record(target, result, now)
                if document is not None:
                    upserts.append(FetchedJwks.of(target, document))
            return self.store.apply(self.source_id, upserts, deletes)

    def seconds_until_due(self) -> float | None:
        """How long until the next target is due; None with no target."""
        with self._sync_lock:
            if not self._entries:
                return None
            return max(0.0, min(e.next_due for e in self._entries.values()) - self._clock())

    # --- internals ----------------------------------------------------------------------------

    def _reconcile(self) -> list[ResourceKey]:
        policies: list[RequestAuthentication] = self.store.snapshot.of_kind(RequestAuthentication)
        wanted = wanted_targets(policies, self.timeout)
        kept = sorted(wanted)[: self.max_targets]
        skipped = frozenset(wanted) - frozenset(kept)
        if skipped and skipped != self._skipped:
            log.warning(
                "%d JWKS locations over the limit of %d are not fetched (tokens of their issuers "
                "are refused): %s", len(skipped), self.max_targets, ", ".join(str(t) for t in sorted(skipped)),
            )
        self._skipped = skipped
        deletes: list[ResourceKey] = []
        for target in [t for t in self._entries if t not in kept]:
            del self._entries[target]
            deletes.append(ResourceKey(FetchedJwks.KIND, "", fetched_jwks_name(target)))
        for target in kept:
            entry = self._entries.get(target)
            if entry is None:
                self._entries[target] = _Entry(timeout=wanted[target])
            else:
                entry.timeout = wanted[target]
        return deletes

    def _fetch_all(self, targets: list[JwksTarget]) -> list[str | FetchError]:
        if not targets:
            return []
        if len(targets) == 1:
            return [self._fetch_one(targets[0], self._entries[targets[0]].timeout)]
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(_FETCH_WORKERS, thread_name_prefix="jwks-fetch")
        timeouts = [self._entries[t].timeout for t in targets]
        return list(self._pool.map(self._fetch_one, targets, timeouts))

    def _fetch_one(self, target: JwksTarget, timeout: float) -> str | FetchError:
        """The JWKS document of ``target``, or why not."""
        try:
            url = target.jwks_uri or self._discover(target, timeout)
            text = self._get(url, timeout).decode("utf-8")
            problem = jwks_problem(text)
            if problem:
                raise FetchError(problem)
            return text
        except UnicodeDecodeError:
            return FetchError("not UTF-8 text")
        except FetchError as error:
            return error

    def _discover(self, target: JwksTarget, timeout: float) -> str:
        """The ``jwks_uri`` of the issuer's OpenID discovery document."""
        url = target.discovery_url
        if urlsplit(url).scheme not in ("http", "https"):
            raise FetchError(f"issuer {target.issuer!r} is not an http(s) URL: no OpenID discovery")
        try:
            document = json.loads(self._get(url, timeout))
        except ValueError as error:
            raise FetchError(f"OpenID discovery document {url}: {error}") from None
        jwks_uri = document.get("jwks_uri") if isinstance(document, dict) else None
        if not isinstance(jwks_uri, str) or urlsplit(jwks_uri).scheme not in ("http", "https"):
            raise FetchError(f"OpenID discovery document {url}: no http(s) jwks_uri")
        return jwks_uri

    def _get(self, url: str, timeout: float) -> bytes:
        try:
            body = self._fetch(url, timeout, self.max_bytes)
        except FetchError:
            self._on_fetch(False)
            raise
        except Exception as error:  # noqa: BLE001 - an injected fetch that raised something else
            self._on_fetch(False)
            raise FetchError(str(error) or type(error).__name__) from None
        self._on_fetch(True)
        return body

    def _record(self, target: JwksTarget, result: str | FetchError, now: float) -> str | None:
        """Note one fetch; returns the document when the store must change."""
        entry = self._entries.get(target)
        if entry is None:
            return None
        if isinstance(result, FetchError):
            entry.failures += 1
            entry.error = str(result)
            backoff = self.refresh_interval_on_failure * 2 ** min(entry.failures - 1, 16)
            entry.next_due = now + min(backoff, self.refresh_interval)
            kept = "keeping the last good keys" if entry.last_good is not None else "no keys yet: its tokens are refused"
            log.warning("JWKS %s: fetch failed (%s); %s", target, result, kept)
            return None
        entry.failures = 0
        entry.error = ""
        entry.next_due = now + self.refresh_interval
        if result == entry.last_good:
            return None
        log.info("JWKS %s: %s", target, "fetched" if entry.last_good is None else "keys changed")
        entry.last_good = result
        return result

    def _input_changed(self, changes: ChangeSet) -> None:
        if RequestAuthentication.KIND in changes.kinds:
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.sync()
            except Exception:  # never let the fetcher die: the next round tries again
                log.exception("JWKS refresh failed")
            wait = self.seconds_until_due()
            self._wake.wait(timeout=None if wait is None else max(wait, _MIN_WAIT_SECONDS))
