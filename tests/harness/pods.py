"""A cluster's data path on one machine, for tests (root and iptables): the Kubernetes API
test double holds Namespaces, Services, Pods, EndpointSlices and Istio resources; the control
plane reads it (``--kubernetes``) and serves xDS and the injection webhook on the bridge's
gateway address; every pod is created with the official client in the double, which sends it to
the webhook (AdmissionReview over TLS, JSON patch) as the API server does; it is then run in
its network namespace by ``controlplane.pods.runner`` (capture from its ``istio-init``
args, ``controlplane agent`` from its ``istio-proxy`` args, Envoy as UID 1337) with
``controlplane.pods.echo_app`` as its app. Everything is removed on exit, even when a test fails."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psutil
from kubernetes import client

from controlplane.auth import local_token_issuer
from controlplane.ca import load_ca_folder
from controlplane.pods.admission import Refused, admit
from controlplane.pods.netns import Network
from controlplane.pods.runner import RunningPod, real_envoy, run_pod
from tests.harness.control_plane import ServedControlPlane, served_control_plane
from tests.harness.envoy import envoy_binary
from tests.harness.kube import (
    DESTINATION_RULES,
    NAMESPACES,
    PODS,
    SECRETS,
    SERVICES,
    SLICES,
    VIRTUAL_SERVICES,
    api_client_for,
    kubeconfig,
)
from tests.harness.ports import free_port
from tests.harness.wait import wait_for
from tests.kube_double.server import KubeApiDouble

ECHO = ["-m", "controlplane.pods.echo_app"]
XDS_NAME = "istiod.istio-system.svc"
COLLECTIONS = {
    NAMESPACES: ("Namespace", "v1"),
    SERVICES: ("Service", "v1"),
    SLICES: ("EndpointSlice", "discovery.k8s.io/v1"),
    PODS: ("Pod", "v1"),
    SECRETS: ("Secret", "v1"),
    VIRTUAL_SERVICES: ("VirtualService", "networking.istio.io/v1"),
    DESTINATION_RULES: ("DestinationRule", "networking.istio.io/v1"),
    "/apis/security.istio.io/v1/peerauthentications": ("PeerAuthentication", "security.istio.io/v1"),
}
PLURALS = {kind: path for path, (kind, _) in COLLECTIONS.items()}
WEBHOOK_NAME = "namespace.sidecar-injector.istio.io"


class Pod(RunningPod):
    def envoy_uids(self) -> list[int]:
        """The real UIDs of the Envoys this pod's processes started."""
        uids = []
        for process in self.processes:
            try:
                children = psutil.Process(process.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            uids += [c.uids().real for c in children if c.name() == "envoy"]
        return uids


class PodCluster:
    def __init__(self, workdir: Path, kube: KubeApiDouble, net: Network, cp: ServedControlPlane,
                 webhook_port: int) -> None:
        self.workdir, self.kube, self.net, self.cp = workdir, kube, net, cp
        self.webhook_url = f"https://{net.gateway}:{webhook_port}/inject"
        self.root_pem = load_ca_folder(cp.ca_dir, "cluster.local").bundle.pem
        self.root_file = workdir / "root-cert.pem"
        self.root_file.write_text(self.root_pem)
        self.root_file.chmod(0o644)
        self.pods: dict[str, Pod] = {}
        self.services: dict[tuple[str, str], dict[str, Any]] = {}
        self.api = client.CoreV1Api(api_client_for(kube))
        # The API server sends every pod created to the control plane's webhook.
        kube.admission[PODS] = self._admit

    def _admit(self, pod: dict[str, Any]) -> dict[str, Any]:
        namespace = pod["metadata"]["namespace"]
        try:
            return admit(self.webhook_url, pod, namespace, self.root_pem, failure_policy="Fail",
                         webhook_name=WEBHOOK_NAME)
        except Refused as refused:
            raise ValueError(str(refused)) from None

    def apply(self, kind: str, obj: dict[str, Any]) -> None:
        self.kube.upsert(PLURALS[kind], obj)

    def namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        self.apply("Namespace", {"metadata": {"name": name, "labels": dict(labels or {})}})

    def service(self, name: str, namespace: str, port: int, selector: Mapping[str, str]) -> str:
        cluster_ip = self.net.service_ip()
        obj = {"metadata": {"name": name, "namespace": namespace},
               "spec": {"clusterIP": cluster_ip, "selector": dict(selector),
                        "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}]}}
        self.services[(namespace, name)] = obj
        self.apply("Service", obj)
        for pod in self.pods.values():
            self._write_hosts(pod)
        return cluster_ip

    def _endpoints(self, namespace: str, name: str) -> None:
        """As the endpoint controller: the Service's ready pods in an EndpointSlice."""
        svc = self.services[(namespace, name)]
        selector = svc["spec"]["selector"]
        ready = [p for p in self.pods.values() if p.namespace == namespace and
                 all((p.stored["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())]
        port = svc["spec"]["ports"][0]
        self.apply("EndpointSlice", {
            "metadata": {"name": f"{name}-slice", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": port["name"], "port": port["targetPort"], "protocol": "TCP"}],
            "endpoints": [{"addresses": [p.ip], "conditions": {"ready": True},
                           "targetRef": {"kind": "Pod", "name": p.name, "namespace": namespace}}
                          for p in sorted(ready, key=lambda p: p.name)],
        })

    def pod(self, name: str, namespace: str, labels: Mapping[str, str], *, ports: tuple[int, ...] = (9080,),
            annotations: Mapping[str, str] | None = None, service_account: str = "default") -> Pod:
        """Create the pod through the webhook, then run it; returns once its proxy is ready."""
        started = time.monotonic()
        model = client.V1Pod(
            metadata=client.V1ObjectMeta(name=name, namespace=namespace, labels=dict(labels),
                                         annotations=dict(annotations) if annotations else None),
            spec=client.V1PodSpec(service_account_name=service_account, containers=[client.V1Container(
                name="app", image="echo", ports=[client.V1ContainerPort(container_port=p) for p in ports])]),
        )
        self.api.create_namespaced_pod(namespace, model)  # through the webhook
        stored = self.kube.get(PODS, namespace, name)
        assert stored is not None
        admitted = time.monotonic()
        netns = self.net.add_pod(name)
        stored["status"] = {"phase": "Running", "podIP": netns.ip, "podIPs": [{"ip": netns.ip}],
                            "conditions": [{"type": "Ready", "status": "True"}]}
        workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))
        workdir.chmod(0o755)  # the proxy user walks through it to its own folder
        pod = Pod(name, namespace, netns, stored, workdir)
        pod.timings.update(created=started, admitted=admitted)
        self.pods[name] = pod
        self.apply("Pod", stored)  # as the kubelet reports the pod's address
        self._write_hosts(pod)
        token = local_token_issuer(self.cp.ca_dir).mint(namespace, service_account)
        run_pod(pod, [sys.executable, *ECHO, name, *map(str, ports)], token=token, root_cert=self.root_file,
                envoy_binary=real_envoy(envoy_binary()), host_ip=self.net.gateway)
        for (ns, svc) in self.services:
            if ns == namespace:
                self._endpoints(ns, svc)
        return pod

    def _write_hosts(self, pod: Pod) -> None:
        entries: dict[str, list[str]] = {self.net.gateway: [XDS_NAME, f"{XDS_NAME}.cluster.local"]}
        for (namespace, name), svc in self.services.items():
            names = [f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]
            if namespace == pod.namespace:
                names.insert(0, name)
            entries[svc["spec"]["clusterIP"]] = names
        pod.netns.write_hosts(entries)

    def stop(self) -> None:
        for pod in self.pods.values():
            pod.stop()


@contextmanager
def pod_cluster(tmp_path: Path) -> Iterator[PodCluster]:
    """The whole data path; everything it started or created is removed on exit."""
    with ExitStack() as stack:
        # A folder the proxy user can walk into (pytest's tmp_path is 0700).
        workdir = Path(tempfile.mkdtemp(prefix="cp-pods-"))
        workdir.chmod(0o755)
        stack.callback(shutil.rmtree, workdir, True)
        kube = KubeApiDouble()
        for path, (kind, api_version) in COLLECTIONS.items():
            kube.serve(path, kind, api_version)
        stack.enter_context(kube)
        net = stack.enter_context(Network.create())
        config = tmp_path / "config"
        config.mkdir(exist_ok=True)
        webhook_port = free_port()
        cp = stack.enter_context(served_control_plane(
            tmp_path, config, "--kubernetes", "--kubeconfig", str(kubeconfig(tmp_path / "kubeconfig", kube.url)),
            "--no-leader-election", "--listen-host", net.gateway, "--monitoring-host", "127.0.0.1",
            "--injection-webhook-port", str(webhook_port),
            ports={"tls": 15012, "plain": free_port(), "monitoring": free_port()},
        ))
        cluster = PodCluster(workdir, kube, net, cp, webhook_port)
        stack.callback(cluster.stop)
        try:
            yield cluster
        except BaseException:
            for pod in cluster.pods.values():
                print(pod.log_tail())
            raise


def wait_answer(pod: Pod, url: str, predicate: Any, deadline: float = 30.0) -> dict[str, Any]:
    last: list[Any] = []

    def ok() -> bool:
        status, answer = pod.curl(url)
        last[:] = [status, answer]
        return bool(predicate(status, answer))

    try:
        wait_for(ok, deadline=deadline, interval=0.2, message=f"{url} from {pod.name}")
    except Exception:
        print("last answer:", last)
        raise
    return last[1]
