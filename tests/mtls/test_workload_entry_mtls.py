"""WorkloadEntries with a serviceAccount are mTLS endpoints, as in Istio (serviceentry
conversion's getTLSModeFromWorkloadEntry): auto mTLS reaches them under STRICT without any
``security.istio.io/tlsMode`` label, while an explicit ``disabled`` label still wins.

Unit level: the endpoint TLS mode of Pods, WorkloadEntries and ServiceEntry endpoints. Real
Envoy: a client sidecar calls two WorkloadEntries (each an app behind its own sidecar holding
the entry's service account certificate) under a namespace-wide STRICT PeerAuthentication.
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.translate import ENDPOINT_TYPE, MeshConfig, Proxy, push_context, translate
from tests.harness.control_plane import served_control_plane
from tests.harness.wait import wait_for
from tests.mtls.mesh import (
    PORT,
    client_sidecar_doc,
    dump,
    http_request,
    sidecar,
    spiffe_id,
    xfcc_uri,
)
from tests.translate.fast_upstream import FastUpstream
from tests.translate.support import load_documents, snapshot_of

SERVICE_ACCOUNT = "vm"
CLIENT = "127.0.33.1"
ENTRIES = {"vm-a": "127.0.33.11", "vm-b": "127.0.33.12"}  # WorkloadEntry name: address
TLS_MODE_KEY = "envoy.transport_socket_match"


# --- which endpoints are mTLS endpoints -----------------------------------------------------------


def _marked(yaml_text: str, cluster: str) -> dict[str, bool]:
    """Endpoint address -> marked ``tlsMode: istio`` in the cluster's assignment."""
    ctx = push_context(snapshot_of(load_documents(yaml_text)), MeshConfig())
    out = translate(ctx, Proxy.make("sidecar", "default", labels={"app": "client"}))
    (cla,) = [c for c in out[ENDPOINT_TYPE] if c.cluster_name == cluster]
    return {
        ep.endpoint.address.socket_address.address: TLS_MODE_KEY in ep.metadata.filter_metadata
        for group in cla.endpoints for ep in group.lb_endpoints
    }


def _entry(name: str, address: str, service_account: str = "", tls_mode: str = "") -> str:
    labels = {"app": "vm", **({"security.istio.io/tlsMode": tls_mode} if tls_mode else {})}
    sa = f", serviceAccount: {service_account}" if service_account else ""
    return (f"---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}}}\n"
            f"spec: {{address: {address}, labels: {labels}{sa}}}\n")


SERVICE = textwrap.dedent("""\
    apiVersion: v1
    kind: Service
    metadata: {name: vm}
    spec: {clusterIP: 10.96.9.1, selector: {app: vm}, ports: [{name: http, port: 9080}]}
    """)


def test_service_account_makes_a_workload_entry_an_mtls_endpoint() -> None:
    marked = _marked(
        SERVICE + _entry("sa", "10.9.0.1", "vm") + _entry("sa-disabled", "10.9.0.2", "vm", "disabled")
        + _entry("plain", "10.9.0.3") + _entry("labelled", "10.9.0.4", tls_mode="istio"),
        "outbound|9080||vm.default.svc.cluster.local",
    )
    assert marked == {"10.9.0.1": True, "10.9.0.2": False, "10.9.0.3": False, "10.9.0.4": True}


def test_service_entry_endpoints_follow_the_same_rule() -> None:
    marked = _marked(textwrap.dedent("""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: vms}
        spec:
          hosts: [vms.mesh.internal]
          ports: [{number: 9000, name: http, protocol: HTTP}]
          resolution: STATIC
          endpoints:
          - {address: 10.9.1.1, serviceAccount: vm}
          - {address: 10.9.1.2, serviceAccount: vm, labels: {security.istio.io/tlsMode: disabled}}
          - {address: 10.9.1.3}
        """), "outbound|9000||vms.mesh.internal")
    assert marked == {"10.9.1.1": True, "10.9.1.2": False, "10.9.1.3": False}


def test_a_pod_needs_the_label_whatever_its_service_account() -> None:
    marked = _marked(SERVICE + textwrap.dedent("""\
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: vm-0, labels: {app: vm}}
        spec: {serviceAccountName: vm}
        status: {podIP: 10.9.2.1}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: vm-1, labels: {kubernetes.io/service-name: vm}}
        addressType: IPv4
        ports: [{name: http, port: 9080}]
        endpoints: [{addresses: [10.9.2.1], targetRef: {kind: Pod, name: vm-0}}]
        """), "outbound|9080||vm.default.svc.cluster.local")
    assert marked == {"10.9.2.1": False}


# --- real Envoys -----------------------------------------------------------------------------------


def _doc(kind: str, api: str, name: str, **body: Any) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "default"}, **body}


def _config(app_ports: dict[str, int]) -> list[dict[str, Any]]:
    docs = [
        client_sidecar_doc(CLIENT),
        _doc("PeerAuthentication", "security.istio.io/v1", "default", spec={"mtls": {"mode": "STRICT"}}),
        _doc("Service", "v1", "vm", spec={"selector": {"app": "vm"}, "ports": [{"name": "http", "port": PORT}]}),
    ]
    for name, address in ENTRIES.items():
        labels = {"app": "vm", "instance": name}  # no security.istio.io/tlsMode label
        docs.append(_doc("WorkloadEntry", "networking.istio.io/v1", name, spec={
            "address": address, "labels": labels, "serviceAccount": SERVICE_ACCOUNT,
        }))
        docs.append(_doc("Sidecar", "networking.istio.io/v1", name, spec={
            "workloadSelector": {"labels": labels},
            "ingress": [{"port": {"number": PORT, "protocol": "HTTP", "name": "http"},
                         "captureMode": "NONE", "defaultEndpoint": f"127.0.0.1:{app_ports[name]}"}],
        }))
    return docs


@pytest.fixture(scope="module")
def vm_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir: Path = tmp_path_factory.mktemp("we-mtls")
    config = workdir / "config"
    config.mkdir()
    with contextlib.ExitStack() as stack:
        apps = {name: stack.enter_context(FastUpstream(name)) for name in ENTRIES}
        (config / "mesh.yaml").write_text(dump(_config({name: app.port for name, app in apps.items()})))
        cp = stack.enter_context(served_control_plane(workdir, config))
        envoys = [sidecar(workdir, cp.ca_dir, cp.xds_tls_port, name="client", address=CLIENT,
                          service_account="client", labels={"app": "client"})]
        envoys += [
            sidecar(workdir, cp.ca_dir, cp.xds_tls_port, name=name, address=address,
                    service_account=SERVICE_ACCOUNT, labels={"app": "vm", "instance": name})
            for name, address in ENTRIES.items()
        ]
        for envoy in envoys:
            stack.enter_context(envoy)
        for envoy in envoys:
            envoy.wait_ready()
        yield {"cp": cp, "apps": apps}


@pytest.mark.envoy
@pytest.mark.slow
def test_client_reaches_workload_entries_with_service_accounts_under_strict(vm_mesh: dict[str, Any]) -> None:
    def call() -> tuple[int, dict[str, Any]]:
        status, _, echo = http_request(CLIENT, PORT, host_header="vm")
        return status, echo

    wait_for(lambda: call()[0] == 200, message="vm through the client sidecar")
    seen: set[str] = set()
    for _ in range(20):  # round robin over both entries
        status, echo = call()
        assert status == 200
        assert xfcc_uri(echo) == spiffe_id("client")  # mTLS all the way: the server sidecar saw the client's SVID
        seen.add(echo["name"])
    assert seen == set(ENTRIES)
