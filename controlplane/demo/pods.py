"""``controlplane demo --pods``: a cluster's data path on this machine (root and iptables).

Each pod is a network namespace on a bridge (198.18.0.0/15, never routed off the machine),
created as a cluster creates it: the pod is sent to the control plane's injection webhook,
the patched pod is stored (here: written to the control plane's watched folder, which plays
the API server), its ``istio-init`` args install the capture rules in its namespace and its
``istio-proxy`` args start ``controlplane agent``, which runs Envoy as UID 1337. The apps are
unmodified: ``productpage`` runs ``curl http://reviews:9080/`` and never hears of Envoy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

from controlplane.pods.admission import admit
from controlplane.pods.netns import Network, PodNetns, missing_requirements
from controlplane.pods.runner import RunningPod, real_envoy, run_pod
from controlplane.processes import stop_process

NS = "bookinfo"
XDS_NAME = "istiod.istio-system.svc"
APP = [sys.executable, "-m", "controlplane.pods.echo_app"]


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class PodsDemo:
    def __init__(self, stack: ExitStack, workdir: Path) -> None:
        self.stack, self.workdir = stack, workdir
        self.config = workdir / "config"
        self.config.mkdir()
        self.net = stack.enter_context(Network.create())
        self.pods: dict[str, RunningPod] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.monitoring = _free_port("127.0.0.1")
        self.webhook = _free_port("127.0.0.1")

    def write(self, name: str, *docs: Mapping[str, Any]) -> None:
        staged = self.config / f".{name}.tmp"
        staged.write_text(yaml.safe_dump_all([dict(d) for d in docs], sort_keys=False))
        os.replace(staged, self.config / f"{name}.yaml")  # the watcher sees whole files only

    def start_control_plane(self) -> None:
        log = open(self.workdir / "controlplane.log", "wb")  # noqa: SIM115 - handed to the child
        process = subprocess.Popen(
            [sys.executable, "-m", "controlplane", "serve", "--config-dir", str(self.config),
             "--ca-dir", str(self.workdir / "ca"), "--listen-host", self.net.gateway,
             "--monitoring-host", "127.0.0.1", "--monitoring-port", str(self.monitoring),
             "--xds-tls-port", "15012", "--injection-webhook-port", str(self.webhook), "--debounce-after", "0.05"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.stack.callback(stop_process, process)
        end = time.monotonic() + 60
        while not _ok(f"http://127.0.0.1:{self.monitoring}/healthz/ready"):
            if process.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"control plane did not start; see {self.workdir / 'controlplane.log'}")
            time.sleep(0.1)
        self.root = self.workdir / "ca" / "root-cert.pem"
        self.root.chmod(0o644)

    def service(self, name: str, port: int) -> None:
        self.services[name] = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
                               "spec": {"clusterIP": self.net.service_ip(), "selector": {"app": name},
                                        "ports": [{"name": "http", "port": port, "targetPort": port}]}}
        self.write(f"service-{name}", self.services[name])

    def pod(self, name: str, labels: Mapping[str, str], ports: tuple[int, ...], service_account: str,
            annotations: Mapping[str, str] | None = None) -> RunningPod:
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": NS, "labels": dict(labels),
                            **({"annotations": dict(annotations)} if annotations else {})},
               "spec": {"serviceAccountName": service_account,
                        "containers": [{"name": "app", "image": "echo",
                                        "ports": [{"containerPort": p} for p in ports]}]}}
        stored = admit(f"https://{self.net.gateway}:{self.webhook}/inject", pod, NS, self.root.read_text())
        netns = self.net.add_pod(name)
        stored["status"] = {"phase": "Running", "podIP": netns.ip, "podIPs": [{"ip": netns.ip}]}
        stored.setdefault("apiVersion", "v1")
        stored.setdefault("kind", "Pod")
        self.write(f"pod-{name}", stored)
        self._hosts(netns)
        workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))
        workdir.chmod(0o755)
        running = RunningPod(name, NS, netns, stored, workdir)
        self.pods[name] = running
        self.stack.callback(running.stop)
        from controlplane.auth import local_token_issuer

        run_pod(running, [*APP, name, *map(str, ports)],
                token=local_token_issuer(self.workdir / "ca").mint(NS, service_account),
                root_cert=self.root, envoy_binary=real_envoy(shutil.which("envoy") or "envoy"),
                host_ip=self.net.gateway)
        for svc in self.services:
            self._endpoints(svc)
        return running

    def _hosts(self, netns: PodNetns) -> None:
        entries = {self.net.gateway: [XDS_NAME]}
        for name, svc in self.services.items():
            entries[svc["spec"]["clusterIP"]] = [name, f"{name}.{NS}", f"{name}.{NS}.svc.cluster.local"]
        netns.write_hosts(entries)

    def _endpoints(self, service: str) -> None:
        members = sorted((p for p in self.pods.values() if p.stored["metadata"]["labels"].get("app") == service),
                         key=lambda p: p.name)
        port = self.services[service]["spec"]["ports"][0]["port"]
        self.write(f"endpoints-{service}", {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-slice", "namespace": NS, "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": port}],
            "endpoints": [{"addresses": [p.ip], "conditions": {"ready": True},
                           "targetRef": {"kind": "Pod", "name": p.name, "namespace": NS}} for p in members]})


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _calls(pod: RunningPod, url: str, count: int = 20) -> str:
    answers = [pod.curl(url, timeout=3) for _ in range(count)]
    by = Counter(a.get("name", f"HTTP {s}") if s == 200 else f"HTTP {s or 'refused'}" for s, a in answers)
    peers = {part[4:] for _, a in answers for part in a.get("headers", {}).get("x-forwarded-client-cert", "").split(";")
             if part.startswith("URI=")}
    return f"{dict(by)}  caller seen as {', '.join(sorted(peers)) or '(no client certificate)'}"


def _until(condition: Any, deadline: float = 30.0) -> float:
    """Wait for a change to reach the sidecars; returns the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > deadline:
            print(f"  (not seen after {deadline:.0f}s)")
            break
        time.sleep(0.1)
    return time.monotonic() - start


def _envoy_routes(pod: RunningPod) -> str:
    return pod.envoy_admin("/config_dump?resource=dynamic_route_configs")


def run_pods_demo(workdir: Path | None, keep_running: bool) -> int:
    if missing := missing_requirements():
        print(f"demo --pods needs {', '.join(missing)}: pods are network namespaces with iptables capture")
        return 2
    with ExitStack() as stack:
        base = workdir or Path(tempfile.mkdtemp(prefix="cp-demo-pods-"))
        base.mkdir(parents=True, exist_ok=True)
        base.chmod(0o755)  # the proxy user (1337) reaches its own folder through it
        if workdir is None:
            stack.callback(shutil.rmtree, base, True)
        demo = PodsDemo(stack, base)
        print(f"bridge {demo.net.bridge}, pods in {demo.net.subnet}, services in {demo.net.service_subnet}")
        demo.write("namespace", {"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": NS, "labels": {"istio-injection": "enabled"}}})
        demo.start_control_plane()
        demo.service("reviews", 9080)
        excluded = {"traffic.sidecar.istio.io/excludeInboundPorts": "9090"}
        for version in ("v1", "v2"):
            pod = demo.pod(f"reviews-{version}", {"app": "reviews", "version": version}, (9080, 9090), "reviews", excluded)
            print(f"pod {pod.name} {pod.ip}: injected, captured, Envoy ready in "
                  f"{pod.timings['ready'] - pod.timings['captured']:.1f}s")
        page = demo.pod("productpage", {"app": "productpage"}, (9080,), "productpage")
        legacy = demo.pod("legacy", {"app": "legacy", "sidecar.istio.io/inject": "false"}, (9080,), "legacy")
        print(f"pod {page.name} {page.ip}: injected; pod {legacy.name} {legacy.ip}: no sidecar")
        url = "http://reviews:9080/"
        _until(lambda: page.curl(url, timeout=3)[0] == 200)
        print(f"\nproductpage$ curl {url}   (an unmodified client; its sidecar captures the call)")
        print("  baseline: ", _calls(page, url))
        demo.write("routing", {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                               "metadata": {"name": "reviews", "namespace": NS},
                               "spec": {"host": "reviews", "subsets": [{"name": v, "labels": {"version": v}} for v in ("v1", "v2")]}},
                   {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                    "metadata": {"name": "reviews", "namespace": NS},
                    "spec": {"hosts": ["reviews"], "http": [{"route": [
                        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 10},
                        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 90}]}]}})
        took = _until(lambda: "outbound|9080|v2|reviews" in _envoy_routes(page))
        print(f"  90% v2:    {_calls(page, url)}  (reached productpage's sidecar in {took:.1f}s)")
        target = demo.pods["reviews-v1"].ip
        print(f"\nlegacy$ curl http://{target}:9080/   (no sidecar, plaintext)")
        print("  permissive:", _calls(legacy, f"http://{target}:9080/", 3))
        demo.write("strict", {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                              "metadata": {"name": "default", "namespace": NS}, "spec": {"mtls": {"mode": "STRICT"}}})
        _until(lambda: legacy.curl(f"http://{target}:9080/", timeout=3)[0] != 200)
        print("  STRICT:    ", _calls(legacy, f"http://{target}:9080/", 3))
        print(f"  port 9090 (excluded by annotation, bypasses Envoy): {_calls(legacy, f'http://{target}:9090/', 3)}")
        print("  productpage under STRICT:", _calls(page, url, 5))
        if keep_running:
            print(f"\nrunning; e.g. `ip netns exec {page.netns.netns} curl {url}`; Ctrl-C stops everything")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    print("stopped: namespaces, links and processes removed")
    return 0
