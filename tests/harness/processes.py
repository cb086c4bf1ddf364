"""Stopping a subprocess a test started: politely, then for sure."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen[bytes], grace: float = 10.0) -> int:
    """SIGTERM, SIGKILL after ``grace`` seconds; returns the exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()
