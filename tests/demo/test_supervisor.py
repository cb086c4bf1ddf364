"""The process supervisor: readiness, logs, and that nothing it started survives."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from controlplane.demo.supervisor import (
    HttpReady,
    ProcessFailed,
    ProcessSpec,
    Supervisor,
    TcpReady,
    group_alive,
    group_members,
    poll_until,
)

PY = sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _app(name: str, port: int) -> ProcessSpec:
    argv = (PY, "-m", "controlplane.demo.apps", "--service", name, "--listen", f"127.0.0.1:{port}")
    return ProcessSpec(name=name, argv=argv, ready=HttpReady(f"http://127.0.0.1:{port}/healthz"))


def _started_groups(workdir: Path) -> list[int]:
    lines = (workdir / "started.jsonl").read_text().splitlines()
    return [json.loads(line)["pgid"] for line in lines]


def test_starts_apps_until_ready_and_stops_them(tmp_path: Path) -> None:
    with Supervisor(tmp_path, grace_seconds=2) as sup:
        sup.start_all([_app("details", _free_port()), _app("ratings", _free_port())], timeout=20)
        state = json.loads((tmp_path / "processes.json").read_text())
        assert {p["name"] for p in state} == {"details", "ratings"}
        groups = _started_groups(tmp_path)
        assert all(group_alive(g) for g in groups)
    assert not any(group_alive(g) for g in groups)
    assert json.loads((tmp_path / "processes.json").read_text()) == []
    assert "listening on 127.0.0.1" in (tmp_path / "logs" / "details.log").read_text()


def test_stops_grandchildren_and_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    stubborn = "trap '' TERM; sleep 60 & sleep 60 & wait"
    sup = Supervisor(tmp_path, grace_seconds=0.5)
    try:
        sup.start(ProcessSpec(name="stubborn", argv=("sh", "-c", stubborn)))
        (group,) = _started_groups(tmp_path)
        assert poll_until(lambda: len(group_members(group)) >= 3, timeout=10)
    finally:
        sup.stop_all()
    assert not group_alive(group)


def test_process_that_dies_before_ready_is_reported_with_its_log(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as sup:
        sup.start(
            ProcessSpec(
                name="broken",
                argv=(PY, "-c", "import sys; print('no config here'); sys.exit(3)"),
                ready=TcpReady("127.0.0.1", _free_port()),
            )
        )
        with pytest.raises(ProcessFailed, match="(?s)exited with 3.*no config here"):
            sup.wait_ready(timeout=20)


def test_not_ready_in_time_names_the_check(tmp_path: Path) -> None:
    port = _free_port()
    with Supervisor(tmp_path) as sup:
        sup.start(ProcessSpec(name="idle", argv=("sleep", "30"), ready=TcpReady("127.0.0.1", port)))
        with pytest.raises(ProcessFailed, match=f"idle \\(tcp 127.0.0.1:{port}\\)"):
            sup.wait_ready(timeout=0.3)


# A program that supervises two apps, says so, then waits to be interrupted.
_OWNER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from controlplane.demo.supervisor import HttpReady, ProcessSpec, Supervisor
    workdir, ports = Path(sys.argv[1]), sys.argv[2:]
    with Supervisor(workdir, grace_seconds=2) as sup:
        sup.start_all([
            ProcessSpec(name=f"app{i}", argv=(sys.executable, "-m", "controlplane.demo.apps",
                        "--service", f"app{i}", "--listen", f"127.0.0.1:{p}"),
                        ready=HttpReady(f"http://127.0.0.1:{p}/healthz"))
            for i, p in enumerate(ports)], timeout=20)
        print("ready", flush=True)
        time.sleep(60)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_the_owner_stops_every_child(tmp_path: Path, signum: int) -> None:
    owner = subprocess.Popen(
        [PY, "-c", _OWNER, str(tmp_path), str(_free_port()), str(_free_port())],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline().strip() == "ready"
        groups = _started_groups(tmp_path)
        assert len(groups) == 2 and all(group_alive(g) for g in groups)
        owner.send_signal(signum)
        owner.wait(timeout=20)
        assert not any(group_alive(g) for g in groups)
    finally:
        owner.kill()
        owner.wait()


def test_children_die_with_a_killed_owner(tmp_path: Path) -> None:
    """SIGKILL skips every cleanup path but PR_SET_PDEATHSIG."""
    if sys.platform != "linux":
        pytest.skip("PR_SET_PDEATHSIG is Linux only")
    owner = subprocess.Popen(
        [PY, "-c", _OWNER, str(tmp_path), str(_free_port())], stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline().strip() == "ready"
        (group,) = _started_groups(tmp_path)
        owner.kill()
        owner.wait(timeout=10)
        assert poll_until(lambda: not group_alive(group), timeout=10)
    finally:
        owner.kill()
        owner.wait()
