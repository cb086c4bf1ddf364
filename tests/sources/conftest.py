"""The folder source watched by each watcher in turn (``watched``), for the folder tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.sources.folder import FolderSource
from controlplane.store import Store
from tests.sources.helpers import service_yaml, write


@pytest.fixture(params=["inotify", "watchfiles", "polling"])
def watched(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Store, FolderSource, Path]]:
    folder = tmp_path / "config"
    folder.mkdir()
    write(folder / "a.yaml", service_yaml("alpha") + "---\n" + service_yaml("beta"))
    store = Store()
    source = FolderSource(
        store, folder, watcher=request.param, poll_interval=0.1,
        full_scan_interval=3600,  # changes are seen by the watcher, not by the safety-net scan
    )
    source.load()
    source.start()
    try:
        assert source.mode == request.param  # no silent fallback to polling
        yield store, source, folder
    finally:
        source.stop()
