"""Stopping a subprocess a test started: politely, then for sure (the project's own helper)."""

from __future__ import annotations

from controlplane.processes import stop_process, stop_processes

__all__ = ["stop_process", "stop_processes"]
