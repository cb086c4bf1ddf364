"""The inotify watcher (sources/inotify.py) on its own terms: a file is read once written,
never half-way; folders that appear while watched are watched, links to folders included.
The safety-net scan is put off for the test's length, so only the watch can see a change."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.sources.folder import FolderSource
from controlplane.store import Store
from tests.sources.helpers import service_yaml, wait_for

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/sys/fs/inotify"), reason="inotify is Linux only")


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Store, FolderSource, Path]]:
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "a.yaml").write_text(service_yaml("alpha"))
    store = Store()
    source = FolderSource(store, folder, watcher="inotify", full_scan_interval=3600)
    source.load()
    source.start()
    try:
        assert source.mode == "inotify"
        yield store, source, folder
    finally:
        source.stop()


def names(store: Store) -> list[str]:
    return sorted(k.name for k in store.snapshot)


def test_a_file_written_in_place_is_read_once_closed(
    watched: tuple[Store, FolderSource, Path], caplog: pytest.LogCaptureFixture
) -> None:
    store, source, folder = watched
    caplog.set_level(logging.WARNING, logger="controlplane.sources.folder")
    text = service_yaml("beta")
    with open(folder / "b.yaml", "w") as f:
        f.write(text[: len(text) // 2])  # half a document: not valid on its own
        f.flush()
        time.sleep(0.3)  # room for a watcher that reads on every write to read this half
        assert names(store) == ["alpha"] and not source.errors
        f.write(text[len(text) // 2 :])
    wait_for(lambda: names(store) == ["alpha", "beta"], what="the file read once closed")
    assert not source.errors
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "the half was never read"


def test_files_in_a_folder_made_while_watched_are_followed(watched: tuple[Store, FolderSource, Path]) -> None:
    store, _, folder = watched
    (folder / "team" / "deeper").mkdir(parents=True)
    (folder / "team" / "deeper" / "c.yaml").write_text(service_yaml("gamma"))
    wait_for(lambda: names(store) == ["alpha", "gamma"], what="a file in a new folder")
    (folder / "team" / "deeper" / "c.yaml").write_text(service_yaml("gamma", port=8080))
    wait_for(lambda: store.snapshot.get_typed("Service", "default", "gamma").spec.ports[0].port == 8080,
             what="an edit in the new folder")


def test_a_link_to_a_folder_made_while_watched_is_followed(
    watched: tuple[Store, FolderSource, Path], tmp_path: Path
) -> None:
    store, _, folder = watched
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "d.yaml").write_text(service_yaml("delta"))
    (folder / "linked").symlink_to(elsewhere, target_is_directory=True)
    wait_for(lambda: names(store) == ["alpha", "delta"], what="the linked folder's file")
    (elsewhere / "e.yaml").write_text(service_yaml("epsilon"))  # written through the target
    wait_for(lambda: names(store) == ["alpha", "delta", "epsilon"], what="a new file in the linked folder")


def test_a_deleted_folder_takes_its_resources_and_can_come_back(watched: tuple[Store, FolderSource, Path]) -> None:
    store, _, folder = watched
    (folder / "team").mkdir()
    (folder / "team" / "f.yaml").write_text(service_yaml("phi"))
    wait_for(lambda: names(store) == ["alpha", "phi"], what="the new folder's file")
    (folder / "team" / "f.yaml").unlink()
    (folder / "team").rmdir()
    wait_for(lambda: names(store) == ["alpha"], what="the folder's resources removed")
    (folder / "team").mkdir()
    (folder / "team" / "f.yaml").write_text(service_yaml("phi"))
    wait_for(lambda: names(store) == ["alpha", "phi"], what="the folder back")
