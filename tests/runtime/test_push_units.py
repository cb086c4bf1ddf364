"""Full pushes reuse translation units across snapshots (translate/units.py) and the bytes of
the messages they reuse: after every kind of routing change, each group holds exactly what a
fresh control plane translates from the same snapshot, every type and resource, byte for byte."""

from __future__ import annotations

import zlib
from collections.abc import Callable

from envoy.config.core.v3 import base_pb2
from google.protobuf import struct_pb2

from controlplane import translate
from controlplane.auth import ProvenIdentity
from controlplane.server.push import Pusher
from controlplane.sources.memory import MemorySource
from controlplane.store import ChangeSet, Snapshot, Store
from controlplane.translate import CLUSTER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE, MeshConfig
from controlplane.xds import SnapshotCache
from controlplane.xds.resources import name_of


def cluster_ip(name: str) -> str:
    """One per name (checked for the names below), the same whatever the ports."""
    digest = zlib.crc32(name.encode())
    return f"10.96.{digest % 250}.{digest // 250 % 250}"


def service(name: str, ns: str = "default", ports: tuple[int, ...] = (9080,)) -> dict:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"app": name}, "clusterIP": cluster_ip(name),
                 "ports": [{"name": f"http-{p}", "port": p} for p in ports]},
    }


def pod(name: str, app: str, ip: str, version: str = "v1", ns: str = "default") -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns,
                     "labels": {"app": app, "version": version, "security.istio.io/tlsMode": "istio"}},
        "spec": {"serviceAccountName": app},
        "status": {"podIP": ip, "phase": "Running"},
    }


def endpoint_slice(svc: str, *members: tuple[str, str], ns: str = "default", ports: tuple[int, ...] = (9080,)) -> dict:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{svc}-1", "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4", "ports": [{"name": f"http-{p}", "port": p} for p in ports],
        "endpoints": [{"addresses": [ip], "targetRef": {"kind": "Pod", "name": name, "namespace": ns}}
                      for name, ip in members],
    }


def rule(host: str, *subsets: str, ns: str = "default", **policy: object) -> dict:
    spec: dict = {"host": host, "subsets": [{"name": s, "labels": {"version": s}} for s in subsets]}
    if policy:
        spec["trafficPolicy"] = policy
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": host, "namespace": ns}, "spec": spec}


def weighted(host: str, v1: int, ns: str = "default", **extra: object) -> dict:
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": host, "namespace": ns},
        "spec": {"hosts": [host], "http": [
            {"route": [{"destination": {"host": host, "subset": "v1"}, "weight": v1},
                       {"destination": {"host": host, "subset": "v2"}, "weight": 100 - v1}], **extra},
        ]},
    }


def node(pod_name: str, ns: str, app: str, ip: str) -> base_pb2.Node:
    metadata = struct_pb2.Struct()
    metadata.update({"NAMESPACE": ns, "SERVICE_ACCOUNT": app, "LABELS": {"app": app, "version": "v1"},
                     "INSTANCE_IPS": ip, "WORKLOAD_NAME": app})
    return base_pb2.Node(id=f"sidecar~{ip}~{pod_name}.{ns}~{ns}.svc.cluster.local", metadata=metadata)


# (node, proven identity): one with a certificate, so auto mTLS and PeerAuthentication matter
PROXIES = (
    (node("productpage-0", "default", "productpage", "10.0.9.1"),
     ProvenIdentity("cluster.local", "default", "productpage")),
    (node("reviews-0", "default", "reviews", "10.0.9.2"), None),
    (node("client-0", "other", "client", "10.0.9.3"), None),
    (node("tester-0", "default", "tester", "10.0.9.4"), None),
    (node("auditor-0", "third", "auditor", "10.0.9.5"), None),
)

INITIAL = (
    service("reviews"), service("ratings"), service("details"), service("client", "other"),
    pod("reviews-1", "reviews", "10.0.0.1"), pod("reviews-2", "reviews", "10.0.0.2", "v2"),
    pod("ratings-1", "ratings", "10.0.1.1"), pod("details-1", "details", "10.0.2.1"),
    pod("client-1", "client", "10.0.3.1", ns="other"),
    endpoint_slice("reviews", ("reviews-1", "10.0.0.1"), ("reviews-2", "10.0.0.2")),
    endpoint_slice("ratings", ("ratings-1", "10.0.1.1")),
    endpoint_slice("details", ("details-1", "10.0.2.1")),
    endpoint_slice("client", ("client-1", "10.0.3.1"), ns="other"),
    rule("reviews", "v1", "v2"), weighted("reviews", 90),
)

SIDECAR = {
    "apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
    "metadata": {"name": "default", "namespace": "other"},
    "spec": {"egress": [{"hosts": ["./*", "default/reviews.default.svc.cluster.local"]}]},
}
SERVICE_ENTRY = {
    "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
    "metadata": {"name": "payments", "namespace": "default"},
    "spec": {"hosts": ["payments.example.com"], "location": "MESH_EXTERNAL", "resolution": "DNS",
             "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}],
             "endpoints": [{"address": "payments.example.com"}]},
}
RATINGS_BY_SOURCE = {  # routes that differ by the caller's labels, to a service by name alone
    "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
    "metadata": {"name": "ratings", "namespace": "default"},
    "spec": {"hosts": ["ratings"], "http": [
        {"match": [{"sourceLabels": {"app": "reviews"}}], "route": [{"destination": {"host": "details"}}],
         "mirror": {"host": "reviews", "subset": "v2"}},
        {"route": [{"destination": {"host": "ratings"}}]},
    ]},
}
AUDIT_BY_NAMESPACE = {  # routes that differ by the caller's namespace, to a host every namespace
    # names alike (no short name): the groups of two namespaces must not share its virtual host
    "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
    "metadata": {"name": "audit", "namespace": "third"},
    "spec": {"hosts": ["audit.third.svc.cluster.local"], "http": [
        {"match": [{"sourceNamespace": "other"}], "route": [{"destination": {"host": "details.default.svc.cluster.local"}}]},
        {"route": [{"destination": {"host": "audit.third.svc.cluster.local"}}]},
    ]},
}
def hashing_rule(name: str, host: str, ns: str, header: str, **spec: object) -> dict:
    """A DestinationRule whose hash policy shows in the routes of every proxy it applies to."""
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"host": host, "trafficPolicy": {"loadBalancer": {"consistentHash": {"httpHeaderName": header}}},
                     **spec}}


# Rules that make a namespace's proxies see the DestinationRules otherwise than the other
# namespaces' do (PushContext.destination_rule_view): for a host of another namespace, for
# some workloads alone, or exported to their own namespace alone.
FOREIGN_RULE = hashing_rule("reviews-from-other", "reviews.default.svc.cluster.local", "other", "x-other")
SELECTING_RULE = hashing_rule("details-for-tester", "details.default.svc.cluster.local", "default", "x-tester",
                              workloadSelector={"matchLabels": {"app": "tester"}})
LOCAL_RULE = hashing_rule("client-local", "client.other.svc.cluster.local", "other", "x-local", exportTo=["."])
DETAILS_HASHING = hashing_rule("details", "details.default.svc.cluster.local", "default", "x-details")
TO_BACKEND = {  # the destination's port comes from its service (one port), when there is one
    "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
    "metadata": {"name": "frontend", "namespace": "default"},
    "spec": {"hosts": ["frontend"], "http": [{"route": [{"destination": {"host": "backend"}}]}]},
}
WILDCARD_RULE = hashing_rule("everyone", "*.default.svc.cluster.local", "default", "x-everyone")
SAME_IP = {**service("aaa"), "spec": {**service("aaa")["spec"], "clusterIP": cluster_ip("reviews")}}
STRICT_OFF = {
    "apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
    "metadata": {"name": "default", "namespace": "default"}, "spec": {"mtls": {"mode": "DISABLE"}},
}

Step = Callable[[MemorySource], ChangeSet]
STEPS: tuple[tuple[str, Step], ...] = (
    ("VirtualService weights", lambda s: s.apply(weighted("reviews", 37))),
    ("VirtualService added, by source labels", lambda s: s.apply(RATINGS_BY_SOURCE)),
    ("VirtualService added, by source namespace", lambda s: s.apply(service("audit", "third"), AUDIT_BY_NAMESPACE)),
    ("DestinationRule hash policy for a host another VirtualService sends to", lambda s: s.apply(DETAILS_HASHING)),
    ("VirtualService to a service not there yet", lambda s: s.apply(service("frontend"), TO_BACKEND)),
    ("the service it sends to comes, on a port of its own", lambda s: s.apply(service("backend", ports=(7000,)))),
    ("that DestinationRule removed", lambda s: s.delete(DETAILS_HASHING)),
    ("DestinationRule subset added", lambda s: s.apply(rule("reviews", "v1", "v2", "v3"))),
    ("DestinationRule hash policy (routes to it change)", lambda s: s.apply(
        rule("reviews", "v1", "v2", "v3", loadBalancer={"consistentHash": {"httpHeaderName": "x-user"}}))),
    ("routed-to service changes its port", lambda s: s.apply(service("details", ports=(9081,)))),
    ("new Service with its DestinationRule", lambda s: s.apply(
        service("payments-api"), pod("payments-api-1", "payments-api", "10.0.4.1"),
        endpoint_slice("payments-api", ("payments-api-1", "10.0.4.1")), rule("payments-api", "v1"))),
    ("a new Service with another's cluster IP: the first by name takes the domain", lambda s: s.apply(SAME_IP)),
    ("that Service deleted: the domain back to its owner", lambda s: s.delete(SAME_IP)),
    ("a wildcard DestinationRule (a hash policy for every host it matches)", lambda s: s.apply(WILDCARD_RULE)),
    ("the wildcard DestinationRule removed", lambda s: s.delete(WILDCARD_RULE)),
    ("endpoint added (an endpoint push between routing pushes)", lambda s: s.apply(
        pod("reviews-3", "reviews", "10.0.0.3", "v2"),
        endpoint_slice("reviews", ("reviews-1", "10.0.0.1"), ("reviews-2", "10.0.0.2"), ("reviews-3", "10.0.0.3")))),
    ("VirtualService and endpoints in one change (a rewritten file)", lambda s: s.apply(
        weighted("reviews", 20), pod("reviews-4", "reviews", "10.0.0.4"),
        endpoint_slice("reviews", ("reviews-1", "10.0.0.1"), ("reviews-2", "10.0.0.2"), ("reviews-3", "10.0.0.3"),
                       ("reviews-4", "10.0.0.4")))),
    ("VirtualService removed", lambda s: s.delete(weighted("reviews", 37))),
    ("Service deleted", lambda s: s.delete(service("ratings"))),
    ("Sidecar narrows one namespace", lambda s: s.apply(SIDECAR)),
    ("ServiceEntry added", lambda s: s.apply(SERVICE_ENTRY)),
    ("PeerAuthentication DISABLE", lambda s: s.apply(STRICT_OFF)),
    ("DestinationRule removed", lambda s: s.delete(rule("reviews"))),
    ("Sidecar removed", lambda s: s.delete(SIDECAR)),
    ("DestinationRule in one namespace for another's host", lambda s: s.apply(FOREIGN_RULE)),
    ("DestinationRule selecting workloads", lambda s: s.apply(SELECTING_RULE)),
    ("the rule for another's host removed", lambda s: s.delete(FOREIGN_RULE)),
    ("DestinationRule exported to its own namespace alone", lambda s: s.apply(LOCAL_RULE)),
)


def assert_same_as_fresh(pusher: Pusher, cache: SnapshotCache, snapshot: Snapshot, step: str) -> None:
    """Each group's cache holds what translating its proxy alone, from a context of its own
    (nothing shared with other proxies or earlier snapshots), gives."""
    for group, proxy in pusher.groups().items():
        fresh = translate.translate(translate.push_context(snapshot, MeshConfig()), proxy)
        assert set(cache.group_versions(group)) == set(fresh), step
        for type_url, messages in fresh.items():
            got = cache.resources(group, type_url).by_name
            want = {name_of(m): m.SerializeToString(deterministic=True) for m in messages}
            assert sorted(got) == sorted(want), f"{step}: {group} {type_url}: names differ"
            for name, payload in want.items():
                assert got[name].payload == payload, f"{step}: {group} {type_url} {name}"


async def test_each_routing_change_leaves_every_group_as_a_fresh_translation_would() -> None:
    store, cache = Store(), SnapshotCache()
    source = MemorySource(store)
    source.apply(*INITIAL)
    pusher = Pusher(cache, lambda: store.snapshot, MeshConfig())
    groups = [pusher.group_of(proxy, identity) for proxy, identity in PROXIES]
    assert len(set(groups)) == len(PROXIES)
    await pusher.push(None)
    assert_same_as_fresh(pusher, cache, store.snapshot, "initial")
    for step, change in STEPS:
        report = await pusher.push(change(source))
        assert report is not None, step
        assert_same_as_fresh(pusher, cache, store.snapshot, step)


async def test_a_routing_change_reuses_the_units_and_bytes_it_cannot_affect(monkeypatch) -> None:
    store, cache = Store(), SnapshotCache()
    source = MemorySource(store)
    source.apply(*INITIAL)
    pusher = Pusher(cache, lambda: store.snapshot, MeshConfig())
    group = pusher.group_of(*PROXIES[0])
    await pusher.push(None)
    clusters = cache.resources(group, CLUSTER_TYPE).by_name
    routes = cache.resources(group, ROUTE_TYPE).by_name

    await pusher.push(source.apply(weighted("reviews", 37)))
    after = cache.resources(group, CLUSTER_TYPE).by_name
    assert after == clusters, "no cluster depends on a VirtualService"
    route = cache.resources(group, ROUTE_TYPE).by_name["9080"]
    assert route is not routes["9080"]
    reviews = next(v for v in route.message().virtual_hosts if v.name.startswith("reviews."))
    assert [c.weight.value for c in reviews.routes[0].route.weighted_clusters.clusters] == [37, 63]
    units = pusher.context().units
    misses = units.misses
    missed: list[tuple] = []
    get = units.get

    def recording(key: tuple, build: Callable[[], object]) -> object:
        def built() -> object:
            missed.append(key)
            return build()
        return get(key, built)

    monkeypatch.setattr(units, "get", recording)

    # A new DestinationRule rebuilds the clusters, assignments and virtual host of its host
    # alone (no other virtual host reads it): a new routing index (its rules' hosts, its
    # epoch, once), and that virtual host's keys and routes; no other one is looked up again.
    await pusher.push(source.apply(rule("ratings", "v1")))
    rebuilt = {key[2].obj.hostname for key in missed if key[0] == "virtual_host_in"}
    assert rebuilt == {"ratings.default.svc.cluster.local"}, rebuilt
    after = cache.resources(group, CLUSTER_TYPE).by_name
    assert "outbound|9080|v1|ratings.default.svc.cluster.local" in after
    for name, resource in after.items():
        if "ratings" not in name and name in clusters:
            assert resource is clusters[name], name
    assert units.misses - misses <= 2 + 3 + 3, "ratings' clusters, assignments, virtual host, routes"


async def test_a_route_configuration_outlives_changes_none_of_its_virtual_hosts_read() -> None:
    """The same message (serialized once) while its virtual hosts are the same units; a
    VirtualService change rebuilds its own virtual host alone."""
    store, cache = Store(), SnapshotCache()
    source = MemorySource(store)
    source.apply(*INITIAL, RATINGS_BY_SOURCE)
    pusher = Pusher(cache, lambda: store.snapshot, MeshConfig())
    group = pusher.group_of(*PROXIES[0])
    proxy = pusher.groups()[group]
    await pusher.push(None)  # an audit: the next pushes take the shortcuts

    def route_config() -> object:
        return next(m for m in translate.translate(pusher.context(), proxy)[ROUTE_TYPE] if name_of(m) == "9080")

    before = route_config()
    await pusher.push(source.apply(STRICT_OFF))
    assert route_config() is before, "a PeerAuthentication reads no route"
    await pusher.push(source.apply(weighted("reviews", 37)))
    after = route_config()
    assert after is not before
    changed = [a.name for a, b in zip(after.virtual_hosts, before.virtual_hosts, strict=True) if a != b]
    assert changed == ["reviews.default.svc.cluster.local:9080"]


async def settle(pusher: Pusher) -> None:
    """Full pushes until one audit (UnitCache.end_push) has swept the units."""
    units = pusher.context().units
    while not units.audit:
        await pusher.push(None)
    await pusher.push(None)


async def test_units_of_removed_inputs_are_dropped() -> None:
    store, cache = Store(), SnapshotCache()
    source = MemorySource(store)
    source.apply(*INITIAL)
    pusher = Pusher(cache, lambda: store.snapshot, MeshConfig())
    for proxy, identity in PROXIES:
        pusher.group_of(proxy, identity)
    await pusher.push(None)
    units = pusher.context().units
    await settle(pusher)
    baseline = len(units)
    for i in range(30):  # services come and go, each version pushed
        name = f"churn-{i}"
        await pusher.push(source.apply(service(name), rule(name, "v1"), weighted(name, 50)))
        await pusher.push(source.delete(service(name), rule(name), weighted(name, 50)))
    assert pusher.context().units is units
    assert len(units) > baseline, "the churned services' units were cached"
    await settle(pusher)
    # Pushes between audits look up the virtual hosts a change reaches alone, so the first
    # audit after the last change also looks up the full key of each (a new routing epoch);
    # the next audit drops those again.
    await settle(pusher)
    assert len(units) <= baseline


async def _after_an_endpoint_push() -> tuple[Store, SnapshotCache, MemorySource, Pusher, list[str]]:
    """Every group translated by an audit push, then an endpoint push (a new reviews Pod),
    which updates assignments in place and not the parts kept per service; the next full
    push is no audit (it takes the shortcuts)."""
    store, cache = Store(), SnapshotCache()
    source = MemorySource(store)
    source.apply(*INITIAL)
    pusher = Pusher(cache, lambda: store.snapshot, MeshConfig())
    groups = [pusher.group_of(proxy, identity) for proxy, identity in PROXIES]
    await pusher.push(None)  # an audit: the pushes below take the shortcuts
    reviews = ("reviews-1", "10.0.0.1"), ("reviews-2", "10.0.0.2"), ("reviews-3", "10.0.0.3")
    report = await pusher.push(source.apply(pod("reviews-3", "reviews", "10.0.0.3", "v2"),
                                            endpoint_slice("reviews", *reviews)))
    assert report is not None and report.endpoints_only
    assert not pusher.context().units.audit, "an audit takes no shortcut: the next push must not be one"
    return store, cache, source, pusher, groups


async def test_a_routing_change_that_brings_endpoints_rebuilds_their_hosts_parts_alone() -> None:
    """A rewritten file brings a VirtualService with its service's Pods and slice: the new
    service index descends from the one the scope's clusters and assignments were made from,
    so those of the hosts whose endpoints changed (since, across endpoint pushes too) are
    built again, and every other one is the very same message."""
    store, cache, source, pusher, groups = await _after_an_endpoint_push()
    assignments = {g: cache.resources(g, ENDPOINT_TYPE).by_name for g in groups}
    await pusher.push(source.apply(pod("ratings-2", "ratings", "10.0.1.2"),
                                   endpoint_slice("ratings", ("ratings-1", "10.0.1.1"), ("ratings-2", "10.0.1.2")),
                                   weighted("reviews", 20)))
    assert_same_as_fresh(pusher, cache, store.snapshot, "VirtualService with endpoints")
    for group in groups:
        after = cache.resources(group, ENDPOINT_TYPE).by_name
        changed = {name for name, r in after.items() if r is not assignments[group][name]}
        assert changed and all("|ratings." in n for n in changed), changed
        assert "10.0.1.2" in str(after["outbound|9080||ratings.default.svc.cluster.local"].message())
        assert "10.0.0.3" in str(after["outbound|9080||reviews.default.svc.cluster.local"].message())


async def test_a_new_destination_rule_after_an_endpoint_push_rebuilds_what_either_changed() -> None:
    """Parts are kept per service while its service, its DestinationRule and its endpoints
    stay: after an endpoint push (which updates assignments in place, not the kept parts) a
    DestinationRule for another host must still rebuild the first host's parts."""
    store, cache, source, pusher, groups = await _after_an_endpoint_push()
    await pusher.push(source.apply(rule("ratings", "v1")))
    assert_same_as_fresh(pusher, cache, store.snapshot, "DestinationRule after an endpoint push")
    for group in groups:
        after = cache.resources(group, ENDPOINT_TYPE).by_name
        assert "outbound|9080|v1|ratings.default.svc.cluster.local" in after
        assert "10.0.0.3" in str(after["outbound|9080||reviews.default.svc.cluster.local"].message())


async def test_namespaces_share_outbound_clusters_while_they_see_the_same_rules() -> None:
    """Outbound clusters and assignments are built once for the namespaces whose proxies see
    the same services and DestinationRules (PushContext.destination_rule_view), not once per
    namespace; a namespace whose rules make its proxies see another rule gets its own."""
    store, cache = Store(), SnapshotCache()
    source = MemorySource(store)
    source.apply(*INITIAL)
    pusher = Pusher(cache, lambda: store.snapshot, MeshConfig())
    # plaintext proxies of three namespaces: "default" holds a rule for its own service alone
    reviews, client, auditor = (pusher.group_of(*PROXIES[i]) for i in (1, 2, 4))
    await pusher.push(None)
    memo = pusher.context().memo
    assert len(memo.outbound_clusters) == 1 and len(memo.assignments) == 1, "one build for all three"
    assert_same_as_fresh(pusher, cache, store.snapshot, "equal views")
    name = "outbound|9080||reviews.default.svc.cluster.local"
    clusters = {g: cache.resources(g, CLUSTER_TYPE).by_name[name] for g in (reviews, client, auditor)}
    assert clusters[client] is clusters[auditor] is clusters[reviews]

    # A rule in "other" for the reviews host: its proxies take it before the service's own.
    await pusher.push(source.apply(FOREIGN_RULE))
    memo = pusher.context().memo
    assert len(memo.outbound_clusters) == 2 and len(memo.assignments) == 2
    assert_same_as_fresh(pusher, cache, store.snapshot, "a view of its own")
    lb = {g: cache.resources(g, CLUSTER_TYPE).by_name[name].message().lb_policy for g in (reviews, client, auditor)}
    assert lb[client] != lb[auditor] == lb[reviews], lb

    # Removed again: the views are equal, and the namespaces share one build again.
    await pusher.push(source.delete(FOREIGN_RULE))
    memo = pusher.context().memo
    assert len(memo.outbound_clusters) == 1 and len(memo.assignments) == 1
    assert_same_as_fresh(pusher, cache, store.snapshot, "equal views again")


def zoned(item: dict | base_pb2.Node, zone: str) -> dict | base_pb2.Node:
    """A Pod or a proxy's node in zone ``zone`` of region r1."""
    label = {"topology.istio.io/locality": f"r1.{zone}"}
    if isinstance(item, base_pb2.Node):
        item.metadata.fields["LABELS"].struct_value.update(label)
    else:
        item["metadata"]["labels"].update(label)
    return item


async def test_proxies_of_every_locality_share_assignments_until_a_rule_reads_it() -> None:
    """A proxy's locality orders endpoints only under a DestinationRule with outlier
    detection or a locality setting: without one, proxies of two zones share one build of
    their assignments; with one, each zone gets its own priorities."""
    store, cache = Store(), SnapshotCache()
    source = MemorySource(store)
    source.apply(service("ratings"), zoned(pod("ratings-1", "ratings", "10.0.1.1"), "z1"),
                 zoned(pod("ratings-2", "ratings", "10.0.1.2"), "z2"),
                 endpoint_slice("ratings", ("ratings-1", "10.0.1.1"), ("ratings-2", "10.0.1.2")))
    pusher = Pusher(cache, lambda: store.snapshot, MeshConfig())
    groups = [pusher.group_of(zoned(node(f"client-{z}", "other", "client", ip), z), None)
              for z, ip in (("z1", "10.0.9.3"), ("z2", "10.0.9.4"))]
    await pusher.push(None)
    assert len(pusher.context().memo.assignments) == 1, "one build for both zones"
    assert_same_as_fresh(pusher, cache, store.snapshot, "no rule reads the locality")
    name = "outbound|9080||ratings.default.svc.cluster.local"
    first, second = (cache.resources(g, ENDPOINT_TYPE).by_name[name] for g in groups)
    assert first is second

    # Outlier detection switches locality load balancing on: each zone's endpoint first.
    await pusher.push(source.apply(rule("ratings", outlierDetection={"consecutive5xxErrors": 1})))
    assert len(pusher.context().memo.assignments) == 2
    assert_same_as_fresh(pusher, cache, store.snapshot, "outlier detection")
    for group, near in zip(groups, ("10.0.1.1", "10.0.1.2")):
        cla = cache.resources(group, ENDPOINT_TYPE).by_name[name].message()
        first_priority = next(e for e in cla.endpoints if e.priority == 0)
        assert [lb.endpoint.address.socket_address.address for lb in first_priority.lb_endpoints] == [near]
