"""The mesh shared by the mTLS tests of this package: `controlplane serve` over TLS, a client
sidecar and three server sidecars (STRICT, PERMISSIVE by default, DISABLE), each with a token
for its own service account. See test_sidecars.py for the topology."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.ca import load_ca_folder
from tests.harness.control_plane import served_control_plane
from tests.mtls.mesh import (
    CLIENT,
    PORT,
    SERVERS,
    Workload,
    client_sidecar_doc,
    dump,
    endpoint_slice,
    pod,
    service_docs,
    sidecar,
    workload_docs,
)
from tests.translate.fast_upstream import FastUpstream


@pytest.fixture(scope="package")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir: Path = tmp_path_factory.mktemp("mtls")
    config = workdir / "config"
    config.mkdir()
    with contextlib.ExitStack() as stack:
        apps = {name: stack.enter_context(FastUpstream(name)) for name in [*SERVERS, "legacy"]}
        workloads = {
            name: Workload(name, address, sa, apps[name].port, mode) for name, (address, sa, mode) in SERVERS.items()
        }
        docs = [client_sidecar_doc(CLIENT)]
        for w in workloads.values():
            docs += workload_docs(w)
        docs += service_docs("legacy", {"app": "legacy"}) + [endpoint_slice("legacy", "127.0.0.1", apps["legacy"].port, None)]
        docs += service_docs("spoofed", {"app": "spoofed"}) + [
            pod("spoofed-0", {"app": "spoofed"}, "expected"),
            endpoint_slice("spoofed", SERVERS["permissive"][0], PORT, "spoofed-0"),
        ]
        (config / "mesh.yaml").write_text(dump(docs))
        cp = stack.enter_context(served_control_plane(workdir, config))
        envoys = {"client": sidecar(workdir, cp.ca_dir, cp.xds_tls_port, name="client", address=CLIENT,
                                    service_account="client", labels={"app": "client"})}
        for w in workloads.values():
            envoys[w.name] = sidecar(workdir, cp.ca_dir, cp.xds_tls_port, name=w.name, address=w.address,
                                     service_account=w.service_account, labels=w.labels)
        for envoy in envoys.values():
            stack.enter_context(envoy)
        for envoy in envoys.values():
            envoy.wait_ready()
        yield {"cp": cp, "apps": apps, "envoys": envoys, "workloads": workloads,
               "ca": load_ca_folder(cp.ca_dir, "cluster.local"), "workdir": workdir}


