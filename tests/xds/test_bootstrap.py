"""The Envoy bootstrap: Istio-shaped node, ADS SotW/delta, TLS to xDS, credential, 15090/15021."""

from __future__ import annotations

import asyncio
import subprocess

import grpc
import pytest

from controlplane.cli.bootstrap import write_bootstrap
from controlplane.translate.bootstrap import BootstrapParams, node_id, render_bootstrap
from controlplane.xds import types
from tests.harness.envoy import EnvoyProcess, envoy_binary, http_get
from tests.harness.ports import free_port
from tests.harness.wait import eventually
from tests.harness.xds_server import running_xds_server
from tests.xds.support import self_signed


def test_node_follows_istio_conventions():
    params = BootstrapParams(
        ip="127.0.10.1",
        pod="reviews-v1-0",
        namespace="bookinfo",
        service_account="reviews",
        workload_name="reviews-v1",
        labels={"version": "v1", "app": "reviews"},
    )
    node = render_bootstrap(params)["node"]
    assert node["id"] == "sidecar~127.0.10.1~reviews-v1-0.bookinfo~bookinfo.svc.cluster.local"
    assert node["metadata"]["NAMESPACE"] == "bookinfo"
    assert node["metadata"]["SERVICE_ACCOUNT"] == "reviews"
    assert node["metadata"]["LABELS"] == {"app": "reviews", "version": "v1"}
    assert node["metadata"]["INSTANCE_IPS"] == "127.0.10.1"
    assert node["metadata"]["WORKLOAD_NAME"] == "reviews-v1"
    assert node_id("10.0.0.1", "gw-0", "istio-system", kind="router").startswith("router~10.0.0.1~")


def test_domain_suffix_is_istios_in_node_id_and_stats_tags():
    """``domain_suffix`` is Istio's domainSuffix (``cluster.local``): ``.svc.`` is inserted in
    the node id, and the stats tags read ``<name>.<ns>.svc.<suffix>`` cluster names."""
    import re

    params = BootstrapParams(ip="10.0.0.1", pod="a-0", namespace="prod", domain_suffix="corp.internal")
    bootstrap = render_bootstrap(params)
    assert bootstrap["node"]["id"] == "sidecar~10.0.0.1~a-0.prod~prod.svc.corp.internal"
    tags = {t["tag_name"]: t["regex"] for t in bootstrap["stats_config"]["stats_tags"] if "regex" in t}
    stat = "cluster.outbound|9080|v1|reviews.shop.svc.corp.internal.upstream_rq_200"
    found = re.search(tags["destination_service"], stat)
    assert found is not None and found.group(2) == "reviews.shop.svc.corp.internal"
    default = render_bootstrap(BootstrapParams(ip="10.0.0.1", pod="a-0", namespace="prod"))
    assert default["node"]["id"].endswith("~prod.svc.cluster.local")
    regexes = [t.get("regex", "") for t in default["stats_config"]["stats_tags"]]
    assert any(r"svc\.cluster\.local" in r for r in regexes)
    assert not any(r"svc\.svc" in r for r in regexes)


@pytest.mark.parametrize("delta", [False, True])
def test_envoy_validates_the_bootstrap(tmp_path, delta):
    cert, _ = self_signed("istiod.istio-system.svc")
    params = BootstrapParams(
        ip="127.0.0.1",
        pod="a-0",
        namespace="default",
        delta=delta,
        xds_tls_root_pem=cert.decode(),
        credential_token="secret-token",
        stats_port=15090,
        health_port=15021,
    )
    bootstrap = render_bootstrap(params)
    ads = bootstrap["dynamic_resources"]["ads_config"]
    assert ads["api_type"] == ("DELTA_GRPC" if delta else "GRPC")
    path = write_bootstrap(bootstrap, tmp_path / "bootstrap.yaml")
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.mark.envoy
async def test_envoy_connects_over_tls_with_its_credential_and_serves_stats_and_health(tmp_path):
    cert, key = self_signed("istiod.istio-system.svc")
    seen = []

    async def authenticate(call, node):
        seen.append(call.metadata_value("authorization"))
        if call.metadata_value("authorization") != "Bearer secret-token":
            from controlplane.xds import Unauthenticated

            raise Unauthenticated("bad token")
        return "spiffe://cluster.local/ns/default/sa/default"

    credentials = grpc.ssl_server_credentials([(key, cert)])
    async with running_xds_server(
        credentials=credentials, authenticate=authenticate, group_of=lambda n, i: "g"
    ) as xds:
        xds.cache.set_snapshot("g", {types.CLUSTER: [], types.LISTENER: []})
        stats_port, health_port = free_port(), free_port()
        envoy = EnvoyProcess.for_xds(
            tmp_path,
            xds_port=xds.port,
            xds_tls_root_pem=cert.decode(),
            credential_token="secret-token",
            stats_port=stats_port,
            health_port=health_port,
        )
        with envoy:
            await envoy.until_ready()
            status = xds.streams_status()
            assert status[0]["identity"] == "spiffe://cluster.local/ns/default/sa/default"
            assert seen[0] == "Bearer secret-token"
            code, _, body = await asyncio.to_thread(
                http_get, "127.0.0.1", stats_port, "/stats/prometheus"
            )
            assert code == 200 and b"envoy_server_live" in body
            await eventually(
                lambda: http_get("127.0.0.1", health_port, "/healthz/ready")[0] == 200,
                message="health port ready",
            )
