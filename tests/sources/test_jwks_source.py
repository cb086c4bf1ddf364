"""The JWKS fetcher: RequestAuthentication jwksUri in, FetchedJwks resources in the store,
against a JWKS server on loopback. Schedules are checked with an injected clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from controlplane.model.jwks import FetchedJwks, JwksTarget
from controlplane.sources.jwks import (
    MAX_TIMEOUT_SECONDS,
    FetchError,
    JwksSource,
    http_get,
    wanted_targets,
)
from controlplane.sources.memory import MemorySource
from controlplane.store import Store
from controlplane.translate.index.jwks import build_jwks_index
from tests.harness.jwt_issuer import JwksServer, TestIssuer
from tests.sources.helpers import wait_for


def request_authentication(name: str, *rules: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
    return {"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"jwtRules": list(rules)}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer() -> TestIssuer:
    return TestIssuer()


@pytest.fixture
def server(issuer: TestIssuer) -> Iterator[JwksServer]:
    with JwksServer(issuer) as s:
        yield s


def fetched(store: Store) -> dict[JwksTarget, str]:
    return dict(build_jwks_index(store.snapshot).fetched)


def make(store: Store, clock: Clock | None = None, **kwargs: Any) -> JwksSource:
    kwargs.setdefault("timeout", 2.0)
    return JwksSource(store, clock=clock or Clock(), **kwargs)


def test_fetches_each_jwks_uri_once_and_feeds_the_store(server: JwksServer, issuer: TestIssuer) -> None:
    store = Store()
    memory = MemorySource(store)
    memory.apply(
        request_authentication("a", {"issuer": issuer.issuer, "jwksUri": server.jwks_uri}),
        request_authentication("b", {"issuer": "other", "jwksUri": server.jwks_uri}, namespace="x"),
        request_authentication("inline", {"issuer": "c", "jwks": issuer.jwks()}),  # nothing to fetch
    )
    source = make(store)
    changes = source.sync()
    assert [k.kind for k in changes.added] == ["FetchedJwks"]
    assert fetched(store) == {JwksTarget(jwks_uri=server.jwks_uri): issuer.jwks()}
    assert server.requests == 1
    # Not due yet: nothing fetched, nothing changed.
    assert not source.sync()
    assert server.requests == 1


def test_rotation_is_an_input_change_and_an_unchanged_document_is_not(
    server: JwksServer, issuer: TestIssuer
) -> None:
    store, clock = Store(), Clock()
    MemorySource(store).apply(request_authentication("a", {"issuer": issuer.issuer, "jwksUri": server.jwks_uri}))
    source = make(store, clock, refresh_interval=60)
    source.sync()
    clock.now += 60
    assert not source.sync()  # refetched, same keys: no change, no push
    assert server.requests == 2
    issuer.rotate()
    clock.now += 60
    changes = source.sync()
    assert [str(k) for k in changes.updated] == [str(next(iter(changes.changes)))]
    assert json.loads(fetched(store)[JwksTarget(jwks_uri=server.jwks_uri)])["keys"][0]["kid"] == "key-2"


@pytest.mark.parametrize("failure", ["status", "not json", "not a jwks", "too large", "hang"])
def test_a_failed_refresh_keeps_the_last_good_keys(server: JwksServer, issuer: TestIssuer, failure: str) -> None:
    store, clock = Store(), Clock()
    MemorySource(store).apply(request_authentication("a", {"issuer": issuer.issuer, "jwksUri": server.jwks_uri}))
    source = make(store, clock, refresh_interval=60, refresh_interval_on_failure=5, max_bytes=4096, timeout=0.5)
    source.sync()
    good = fetched(store)
    issuer.rotate()
    if failure == "status":
        server.status = 503
    elif failure == "not json":
        server.override = b"<html>oops</html>"
    elif failure == "not a jwks":
        server.override = json.dumps({"keys": "none"}).encode()
    elif failure == "too large":
        server.override = json.dumps({"keys": [issuer.jwk()] * 20}).encode()
    else:
        server.hang = True
    clock.now += 60
    assert not source.sync()
    assert fetched(store) == good
    assert list(source.errors()) == [server.jwks_uri]
    # Retried sooner than the refresh interval; once it answers again, the new keys arrive.
    server.status, server.override, server.hang = 200, None, False
    clock.now += 5
    assert source.sync()
    assert json.loads(fetched(store)[JwksTarget(jwks_uri=server.jwks_uri)])["keys"][0]["kid"] == "key-2"
    assert source.errors() == {}


def test_before_any_success_there_is_no_document(server: JwksServer, issuer: TestIssuer) -> None:
    store = Store()
    server.status = 500
    MemorySource(store).apply(request_authentication("a", {"issuer": issuer.issuer, "jwksUri": server.jwks_uri}))
    source = make(store)
    source.sync()
    assert fetched(store) == {}  # translation inlines a JWKS no token verifies against


def test_failures_back_off_doubling_up_to_the_refresh_interval(server: JwksServer, issuer: TestIssuer) -> None:
    store, clock = Store(), Clock()
    server.status = 500
    MemorySource(store).apply(request_authentication("a", {"issuer": issuer.issuer, "jwksUri": server.jwks_uri}))
    source = make(store, clock, refresh_interval=100, refresh_interval_on_failure=10)
    waits = []
    for _ in range(6):
        source.sync()
        wait = source.seconds_until_due()
        assert wait is not None
        waits.append(wait)
        clock.now += wait
    assert waits == [10, 20, 40, 80, 100, 100]
    server.status = 200
    source.sync()
    assert source.seconds_until_due() == 100


def test_a_target_no_policy_names_is_dropped(server: JwksServer, issuer: TestIssuer) -> None:
    store = Store()
    memory = MemorySource(store)
    memory.apply(request_authentication("a", {"issuer": issuer.issuer, "jwksUri": server.jwks_uri}))
    source = make(store)
    source.sync()
    assert fetched(store)
    memory.apply(request_authentication("a", {"issuer": issuer.issuer, "jwks": issuer.jwks()}))
    changes = source.sync()
    assert [k.kind for k in changes.removed] == ["FetchedJwks"]
    assert fetched(store) == {} and source.seconds_until_due() is None


def test_the_number_of_locations_is_bounded(server: JwksServer, issuer: TestIssuer) -> None:
    store = Store()
    uris = [f"{server.jwks_uri}?n={i}" for i in range(5)]
    MemorySource(store).apply(
        request_authentication("a", *({"issuer": f"i{i}", "jwksUri": u} for i, u in enumerate(uris)))
    )
    source = make(store, max_targets=3)
    source.sync()
    assert sorted(t.jwks_uri for t in fetched(store)) == sorted(uris)[:3]
    assert server.requests == 3


def test_openid_discovery_when_a_rule_names_no_keys(server: JwksServer, issuer: TestIssuer) -> None:
    store = Store()
    MemorySource(store).apply(
        request_authentication("a", {"issuer": server.base_url}, {"issuer": "not-a-url@example.com"})
    )
    source = make(store)
    source.sync()
    assert fetched(store) == {JwksTarget(issuer=server.base_url): issuer.jwks()}
    assert list(source.errors()) == ["OpenID discovery of not-a-url@example.com"]


def test_rule_timeouts_ask_for_more_time_up_to_a_bound() -> None:
    policies = [
        MemorySource(Store()).to_resource(request_authentication(
            "a", {"issuer": "a", "jwksUri": "https://a/jwks"},
            {"issuer": "b", "jwksUri": "https://b/jwks", "timeout": "12s"},
            {"issuer": "b2", "jwksUri": "https://b/jwks", "timeout": "2s"},
            {"issuer": "c", "jwksUri": "https://c/jwks", "timeout": "600s"},
        ))
    ]
    assert wanted_targets(policies, 5.0) == {  # type: ignore[arg-type]
        JwksTarget(jwks_uri="https://a/jwks"): 5.0,
        JwksTarget(jwks_uri="https://b/jwks"): 12.0,
        JwksTarget(jwks_uri="https://c/jwks"): MAX_TIMEOUT_SECONDS,
    }


def test_http_get_refuses_other_schemes_and_oversized_bodies(server: JwksServer) -> None:
    with pytest.raises(FetchError, match="http and https"):
        http_get("file:///etc/passwd", 1.0, 1000)
    with pytest.raises(FetchError, match="larger than"):
        http_get(server.jwks_uri, 2.0, 10)
    with pytest.raises(FetchError, match="status 404"):
        http_get(server.base_url + "/missing", 2.0, 1000)
    assert json.loads(http_get(server.jwks_uri, 2.0, 100_000))["keys"]


def test_in_the_background_it_follows_new_policies_and_rotations(server: JwksServer, issuer: TestIssuer) -> None:
    store = Store()
    memory = MemorySource(store)
    source = JwksSource(store, refresh_interval=0.2, timeout=2.0)
    source.start()
    try:
        memory.apply(request_authentication("a", {"issuer": issuer.issuer, "jwksUri": server.jwks_uri}))
        wait_for(lambda: fetched(store), what="first fetch")
        issuer.rotate()
        wait_for(lambda: "key-2" in next(iter(fetched(store).values()), ""), what="rotated keys")
    finally:
        source.stop()
    assert isinstance(store.snapshot.of_kind(FetchedJwks)[0], FetchedJwks)
