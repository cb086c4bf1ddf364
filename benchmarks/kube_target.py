"""The ``controlplane-kube`` target: ``controlplane serve --kubernetes`` fed by the Kubernetes
API test double in its own process (``benchmarks/kube_api.py``), so that changes reach the
control plane as watch events, the production path, instead of file renames.

The mesh's objects are in the double before the server starts. A change is made by HTTP
writes to the double, one per object that differs, as ``kubectl apply`` would make them:
new Pods first (a pod runs before an EndpointSlice lists it), then the other creates and
replaces in the mesh's document order (Service, EndpointSlice, DestinationRule,
VirtualService), then deletes (an EndpointSlice stops listing a pod before the pod goes).
An endpoint change is thus a Pod created, its EndpointSlice replaced and a Pod deleted; a
routing change one VirtualService replaced; a new service its Pods, Service, EndpointSlice
and DestinationRule created. The change's moment is when the double acknowledged its first
write (the response was read), so the writes that follow count in its convergence time.

The server's CPU and RSS are measured as for the folder target (its process and children);
the double is a process of the benchmark's, not of the server's, so neither counts it.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks import expected as exp
from benchmarks import mesh
from benchmarks.kube_api import object_path
from benchmarks.targets import REPO, ControlPlaneTarget, Target, read_event
from tests.harness.kube import kubeconfig

# As DEFAULT_CP_COMMAND, with the Kubernetes source instead of a folder; leader election, the
# CA Secret and the root ConfigMaps stay on, as in a cluster.
DEFAULT_KUBE_CP_COMMAND = (
    "{python} -m controlplane serve --kubernetes --kubeconfig {kubeconfig} "
    "--xds-plaintext-port {port} --no-xds-tls --monitoring-port {monitoring_port} "
    "--ca-dir {workdir}/certs --log-level warning --xds-max-streams-per-peer 0"
)

Write = tuple[str, str, bytes | None]  # method, path, JSON body


def writes(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[Write]:
    """The API writes that turn objects ``before`` into ``after`` (see the module doc)."""

    def key(document: dict[str, Any]) -> tuple[str, str, str]:
        meta = document["metadata"]
        return document["kind"], meta.get("namespace", ""), meta["name"]

    old = {key(d): d for d in before}
    new = {key(d): d for d in after}
    pods: list[Write] = []
    others: list[Write] = []
    deletes: list[Write] = []
    for k, document in new.items():
        body = json.dumps(document).encode()
        if k not in old:
            (pods if k[0] == "Pod" else others).append(
                ("POST", object_path(document, named=False), body))
        elif old[k] != document:
            others.append(("PUT", object_path(document), body))
    for k, document in reversed(old.items()):
        if k not in new:
            deletes.append(("DELETE", object_path(document), None))
    return pods + others + deletes


class ApiWriter:
    """One keep-alive HTTP connection to the double, used from one thread."""

    def __init__(self, port: int) -> None:
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kube-api-writer")

    def _send(self, write: Write) -> float:
        method, path, body = write
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self._connection.request(method, path, body=body, headers=headers)
        response = self._connection.getresponse()
        data = response.read()
        acknowledged = time.monotonic()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {response.status} {data[:300]!r}")
        return acknowledged

    async def apply(self, batch: list[Write]) -> list[float]:
        """Send every write in order; the moment each one was acknowledged."""
        if not batch:
            raise ValueError("a change with no API write")
        loop = asyncio.get_running_loop()
        return [await loop.run_in_executor(self._thread, self._send, w) for w in batch]

    def close(self) -> None:
        self._connection.close()
        self._thread.shutdown(wait=False)


class ApiDoubleProcess:
    """``python -m benchmarks.kube_api`` holding ``documents``: started, written to, stopped."""

    WHAT = "the Kubernetes API double"

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.port = 0
        self.writer: ApiWriter | None = None
        self.requests: dict[str, Any] = {}  # its summary of what it was asked, once stopped

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, documents: list[dict[str, Any]], workdir: Path) -> None:
        documents_file = workdir / "documents.json"
        documents_file.write_text(json.dumps(documents))
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.kube_api", "--documents", str(documents_file),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=REPO,
        )
        self.port = (await read_event(self.process, "listening", 120, self.WHAT))["port"]
        self.writer = ApiWriter(self.port)

    async def stop(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        process = self.process
        if process is None or process.returncode is not None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            stopped = await read_event(process, "stopped", 10, self.WHAT)
            self.requests = stopped.get("requests", {})
        except (TimeoutError, RuntimeError, ValueError):
            process.kill()
        await process.wait()


class KubernetesTarget(ControlPlaneTarget):
    name = "controlplane-kube"

    def __init__(self, command: str = DEFAULT_KUBE_CP_COMMAND, **kwargs: Any) -> None:
        super().__init__(command, **kwargs)
        self.api = ApiDoubleProcess()
        self._state: mesh.MeshState | None = None

    async def start(self, state: mesh.MeshState, expected: exp.Expected) -> None:
        try:
            await self.api.start(list(mesh.documents(state)), self.workdir)
            self._state = state
            await self._launch(kubeconfig=kubeconfig(self.workdir / "kubeconfig", self.api.url))
        except BaseException:
            await self.stop()  # a session that did not start does not stop its target
            raise

    async def _write_services(self, state: mesh.MeshState, indexes: list[int]) -> float:
        assert self.api.writer is not None and self._state is not None
        before = self._state
        batch = []
        for index in indexes:
            old = mesh.service_documents(before, index) if index < len(before.services) else []
            batch += writes(old, mesh.service_documents(state, index))
        self._state = state
        return (await self.api.writer.apply(batch))[0]  # the change's first write

    async def apply_state(self, state, changed, expected) -> float:
        return await self._write_services(state, changed)

    async def apply_endpoints(self, state, index, prepared) -> float:
        return await self._write_services(state, [index])

    def notes(self) -> dict[str, Any]:
        """What the double answered 404 (collections not served), once stopped."""
        requests = self.api.requests
        return {"api_not_found": requests.get("not_found", [])} if requests else {}

    async def stop(self) -> None:
        try:
            await Target.stop(self)  # the server first: it must not see its API go away
        finally:
            await self.api.stop()
            await super().stop()
