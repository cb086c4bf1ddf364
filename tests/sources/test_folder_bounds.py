"""The folder source under bad input (issue 19): a document too deep to read, symbolic link
loops, a 1 MB name, too many routes, a validator that crashes. Each is reported (file,
document, line) and the rest of the folder keeps flowing; what was accepted stays."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from controlplane.model.base import ResourceKey
from controlplane.sources import parsing
from controlplane.sources.folder import FolderSource, find_yaml_files
from controlplane.store import Store
from tests.sources.helpers import names, service_yaml, wait_for, write

DEEP_VS = (
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
    "metadata: {name: deep}\nspec:\n  hosts: [deep]\n  http: " + "[" * 400 + "]" * 400 + "\n"
)


def virtual_service(routes: int) -> str:
    head = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: many}\n"
    return head + "spec:\n  hosts: [alpha]\n  http:\n" + "".join(
        f"  - {{match: [{{uri: {{prefix: /{i}}}}}], route: [{{destination: {{host: alpha}}}}]}}\n"
        for i in range(routes)
    )


def load_in_thread(source: FolderSource, timeout: float = 30) -> bool:
    """Whether ``source.load()`` returned within ``timeout`` (the old walk never did)."""
    done = threading.Event()

    def load() -> None:
        source.load()
        done.set()

    threading.Thread(target=load, daemon=True).start()
    return done.wait(timeout)


def test_a_deep_document_at_startup_is_reported_and_the_rest_loads(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", service_yaml("alpha"))
    write(tmp_path / "deep.yaml", service_yaml("beta") + "---\n" + DEEP_VS)
    store = Store()
    source = FolderSource(store, tmp_path)
    source.load()
    assert names(store) == ["alpha", "beta"]
    [error] = source.errors
    assert str(error) == (
        f"{tmp_path / 'deep.yaml'}:18: error: document 2: nested more than 100 levels deep"
    )


def test_a_deep_document_while_watched_does_not_stop_the_folder(
    watched: tuple[Store, FolderSource, Path],
) -> None:
    store, source, folder = watched
    write(folder / "deep.yaml", DEEP_VS)
    wait_for(lambda: source.errors, what="the deep document reported")
    write(folder / "c.yaml", service_yaml("gamma"))
    wait_for(lambda: "gamma" in names(store), what="a later file read")
    assert [e.message for e in source.errors] == ["document 1: nested more than 100 levels deep"]


def test_symlink_loops_are_not_followed_and_each_is_warned_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "config"
    write(folder / "a.yaml", service_yaml("alpha"))
    write(folder / "sub" / "b.yaml", service_yaml("beta"))
    os.symlink(".", folder / "a")  # ln -s . a; ln -s . b: 2**n paths for os.walk
    os.symlink(".", folder / "b")
    os.symlink("..", folder / "sub" / "up")
    store = Store()
    source = FolderSource(store, folder)
    caplog.set_level(logging.INFO, logger="controlplane.sources.folder")
    assert load_in_thread(source), "loading a folder with symbolic link loops never ended"
    assert names(store) == ["alpha", "beta"]
    assert [str(e) for e in source.errors] == [
        f"{folder / link}: warning: symbolic link loop back to {folder}; not followed"
        for link in ("a", "b", "sub/up")
    ]
    for _ in range(3):
        source.rescan()
    warned = [r for r in caplog.records if "symbolic link loop" in r.getMessage()]
    assert len(warned) == 3  # once per loop, not once per scan

    for link in ("a", "b", "sub/up"):
        (folder / link).unlink()
    write(folder / "c.yaml", service_yaml("gamma"))
    source.rescan()
    assert names(store) == ["alpha", "beta", "gamma"] and source.errors == ()


def test_a_second_link_to_a_folder_is_read_once(tmp_path: Path) -> None:
    write(tmp_path / "real" / "x.yaml", service_yaml("alpha"))
    os.symlink("real", tmp_path / "alias")
    os.symlink("real", tmp_path / "zlias")
    assert find_yaml_files([tmp_path]) == [tmp_path / "alias" / "x.yaml"]
    store = Store()
    source = FolderSource(store, tmp_path)
    source.load()
    assert names(store) == ["alpha"] and source.errors == ()


def test_a_huge_name_is_cut_short_in_errors_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path / "a.yaml", service_yaml("alpha"))
    # Under the 1.5 MiB a resource may have: refused for its name, not its size.
    write(tmp_path / "huge.yaml", service_yaml("x" * 1_000_000, app="huge"))
    store = Store()
    source = FolderSource(store, tmp_path)
    with caplog.at_level(logging.WARNING, logger="controlplane.sources.folder"):
        source.load()
    assert names(store) == ["alpha"]
    [error] = source.errors
    assert error.path == "metadata.name"
    assert "chars cut]" in str(error) and len(str(error)) < 3_000
    assert error.key is not None and len(error.key.name) < 300  # nor is it kept whole
    assert caplog.records and all(len(r.getMessage()) < 3_000 for r in caplog.records)


def test_too_many_routes_are_refused_and_the_accepted_version_stays(
    watched: tuple[Store, FolderSource, Path],
) -> None:
    store, source, folder = watched
    key = ResourceKey("VirtualService", "default", "many")

    def routes() -> int | None:
        vs = store.snapshot.get(key)
        return None if vs is None else len(vs.spec.http)  # type: ignore[attr-defined]

    write(folder / "vs.yaml", virtual_service(2))
    wait_for(lambda: routes() == 2, what="the first version accepted")
    write(folder / "vs.yaml", virtual_service(10_001))
    error = wait_for(lambda: source.errors, what="the refusal reported")[0]
    assert str(error).endswith(
        "VirtualService default/many: spec.http: error: 10,001 routes: at most 10,000 are"
        " accepted"
    )
    write(folder / "c.yaml", service_yaml("gamma"))
    wait_for(lambda: "gamma" in names(store), what="a later file read")
    assert routes() == 2


def test_a_crashing_validator_fails_its_document_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = parsing._parse

    def crash_on_beta(body: dict[str, Any], *args: Any) -> Any:
        if body["metadata"]["name"] == "beta":
            raise TypeError("unforeseen")
        return real(body, *args)

    monkeypatch.setattr(parsing, "_parse", crash_on_beta)
    write(tmp_path / "a.yaml", service_yaml("alpha") + "---\n" + service_yaml("beta"))
    store = Store()
    source = FolderSource(store, tmp_path)
    source.load()
    assert names(store) == ["alpha"]
    assert [e.message for e in source.errors] == ["cannot be validated: TypeError: unforeseen"]
