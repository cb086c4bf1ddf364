"""Envoy as the agent's child: started with the bootstrap, as the proxy user when asked,
stopped (SIGTERM, then SIGKILL after a grace period) when the agent stops."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
from pathlib import Path


class EnvoyChild:
    def __init__(self, binary: str, bootstrap: Path, *, log_level: str, concurrency: int,
                 uid: int | None, gid: int | None, log_path: Path) -> None:
        self.command = [binary, "--config-path", str(bootstrap), "--disable-hot-restart",
                        "--log-level", log_level, "--concurrency", str(concurrency)]
        self.uid, self.gid, self.log_path = uid, gid, log_path
        self.process: asyncio.subprocess.Process | None = None

    def _launch(self) -> tuple[list[str], dict[str, object]]:
        """The command and the Popen options. The agent runs gRPC threads: a plain fork() of it
        may run gRPC's fork handlers in the child, which then dies before exec. Without a
        user change, Python spawns with vfork() (no fork handlers), so ``setpriv`` changes the
        user after exec instead; it also has Envoy stopped if the agent dies without stopping
        it (SIGKILL, a crash). Without setpriv, Popen changes the user (fork)."""
        gid = self.gid if self.gid is not None else self.uid
        setpriv = shutil.which("setpriv")
        if setpriv:
            user = [f"--reuid={self.uid}", f"--regid={gid}", "--clear-groups"] if self.uid is not None else []
            return [setpriv, *user, "--pdeathsig=SIGTERM", "--", *self.command], {}
        if self.uid is None:
            return self.command, {}
        return self.command, {"user": self.uid, "group": gid, "extra_groups": []}

    async def start(self) -> int:
        command, options = self._launch()
        log = open(self.log_path, "ab")  # noqa: SIM115, ASYNC230 - handed to the child, once
        try:
            self.process = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, **options,  # type: ignore[arg-type]
            )
        finally:
            log.close()
        return self.process.pid

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self, grace: float) -> int | None:
        if self.process is None or self.process.returncode is not None:
            return None if self.process is None else self.process.returncode
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            return await self.process.wait()
