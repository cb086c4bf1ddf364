from __future__ import annotations

import os
from pathlib import Path

from controlplane.model.base import ResourceKey
from controlplane.sources.folder import FolderSource
from controlplane.store import ChangeSet, Store
from tests.sources.helpers import names, service_yaml, wait_for, write


def svc(name: str, ns: str = "default") -> ResourceKey:
    return ResourceKey("Service", ns, name)


def port_of(store: Store, name: str) -> int | None:
    resource = store.snapshot.get(svc(name))
    if resource is None:
        return None
    return resource.spec.ports[0].port  # type: ignore[attr-defined]


def test_initial_load_reads_all_documents_recursively(tmp_path: Path) -> None:
    write(
        tmp_path / "a.yaml",
        service_yaml("alpha") + "---\n" + service_yaml("beta", namespace="other"),
    )
    write(tmp_path / "sub" / "deeper" / "c.yml", service_yaml("gamma"))
    write(tmp_path / "notes.txt", service_yaml("ignored"))
    write(tmp_path / ".hidden" / "h.yaml", service_yaml("hidden"))
    store = Store()
    FolderSource(store, tmp_path).load()
    assert sorted(store.snapshot) == [svc("alpha"), svc("gamma"), svc("beta", "other")]
    assert store.snapshot[svc("gamma")].meta.origin.line == 1


def test_edit_is_picked_up(watched: tuple[Store, FolderSource, Path]) -> None:
    store, _, folder = watched
    write(folder / "a.yaml", service_yaml("alpha", port=8080) + "---\n" + service_yaml("beta"))
    wait_for(lambda: port_of(store, "alpha") == 8080, what="edited port")
    assert names(store) == ["alpha", "beta"]


def test_new_file_in_new_subfolder_and_deletion(watched: tuple[Store, FolderSource, Path]) -> None:
    store, _, folder = watched
    write(folder / "team" / "b.yml", service_yaml("gamma"))
    wait_for(lambda: names(store) == ["alpha", "beta", "gamma"], what="new file")
    (folder / "a.yaml").unlink()
    wait_for(lambda: names(store) == ["gamma"], what="deleted file's resources removed")


def test_rename_moves_resources_and_non_yaml_name_removes_them(
    watched: tuple[Store, FolderSource, Path],
) -> None:
    store, _, folder = watched
    seen: list[ChangeSet] = []
    store.subscribe(seen.append)
    os.rename(folder / "a.yaml", folder / "renamed.yml")
    # Same content under another name: nothing changes for consumers.
    wait_for(
        lambda: [p.name for p in source_files(folder)] == ["renamed.yml"], what="rename on disk"
    )
    (folder / "marker.yaml").write_text(service_yaml("marker"))
    wait_for(lambda: "marker" in names(store), what="later change seen")
    assert names(store) == ["alpha", "beta", "marker"]
    assert all(not cs.removed for cs in seen)
    os.rename(folder / "renamed.yml", folder / "renamed.txt")
    wait_for(lambda: names(store) == ["marker"], what="resources gone with the .txt rename")


def source_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml"))


def test_broken_yaml_keeps_last_valid_resources_and_reports_error(
    watched: tuple[Store, FolderSource, Path],
) -> None:
    store, source, folder = watched
    before = store.snapshot
    write(
        folder / "a.yaml",
        service_yaml("alpha", port=9090) + "---\nkind: Service\nmetadata: [oops\n",
    )
    # The good document is applied; the broken one is reported; nothing is removed.
    wait_for(lambda: port_of(store, "alpha") == 9090, what="good document of a half-broken file")
    assert names(store) == ["alpha", "beta"]
    assert store.snapshot[svc("beta")] is before[svc("beta")]
    errors = wait_for(lambda: [e for e in source.errors if e.is_error], what="error listed")
    assert str(errors[0]).startswith(f"{folder / 'a.yaml'}:")
    assert errors[0].origin.line == 14  # the line of the unclosed "["
    # Fixing the file clears the error and applies the file as written (beta is gone).
    write(folder / "a.yaml", service_yaml("alpha", port=9090))
    wait_for(lambda: names(store) == ["alpha"] and not source.errors, what="fix applied")


def test_invalid_document_keeps_its_last_valid_version_and_others_update(
    watched: tuple[Store, FolderSource, Path],
) -> None:
    store, source, folder = watched
    write(
        folder / "a.yaml",
        service_yaml("alpha", port="not-a-port") + "---\n" + service_yaml("beta", port=7070),
    )
    wait_for(lambda: port_of(store, "beta") == 7070, what="the valid neighbour updated")
    assert port_of(store, "alpha") == 80  # the last valid version stays
    error = wait_for(lambda: [e for e in source.errors if e.is_error], what="error listed")[0]
    assert error.key == svc("alpha")
    assert error.path == "spec.ports[0].port"
    assert error.origin.line == 11  # the line of "port: not-a-port"
    assert "a.yaml:11: Service default/alpha: spec.ports[0].port: error:" in str(error)


def test_unreadable_file_keeps_everything(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", service_yaml("alpha"))
    store = Store()
    source = FolderSource(store, tmp_path)
    source.load()
    (tmp_path / "a.yaml").write_bytes(b"\xff\xfe not utf-8")
    source.rescan()
    assert names(store) == ["alpha"]
    assert "cannot read file" in str(source.errors[0])


def test_duplicates_first_in_path_order_wins_whatever_the_creation_order(tmp_path: Path) -> None:
    write(tmp_path / "b.yaml", service_yaml("dup", port=2))
    store = Store()
    source = FolderSource(store, tmp_path)
    source.load()
    assert port_of(store, "dup") == 2
    write(tmp_path / "a.yaml", service_yaml("dup", port=1))
    source.rescan()
    assert port_of(store, "dup") == 1
    (warning,) = source.errors
    assert warning.origin.file.endswith("b.yaml") and "duplicate" in warning.message
    assert not warning.is_error
    (tmp_path / "a.yaml").unlink()
    source.rescan()
    assert port_of(store, "dup") == 2 and source.errors == ()


def test_touch_without_content_change_does_not_notify(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", service_yaml("alpha"))
    store = Store()
    source = FolderSource(store, tmp_path)
    source.load()
    seen: list[ChangeSet] = []
    store.subscribe(seen.append)
    write(tmp_path / "a.yaml", "# a comment now\n" + service_yaml("alpha"))
    source.rescan()
    assert seen == []


def test_unsupported_kinds_are_skipped_without_error(tmp_path: Path) -> None:
    write(
        tmp_path / "a.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n---\n"
        + service_yaml("alpha"),
    )
    store = Store()
    source = FolderSource(store, tmp_path)
    source.load()
    assert names(store) == ["alpha"]
    assert source.errors == ()


def test_a_vanished_folder_is_reported_and_keeps_its_resources(tmp_path: Path) -> None:
    folder = tmp_path / "config"
    write(folder / "a.yaml", service_yaml("alpha"))
    store = Store()
    source = FolderSource(store, folder)
    source.load()
    folder.rename(tmp_path / "elsewhere")
    source.rescan()
    assert names(store) == ["alpha"]
    assert "not found" in str(source.errors[0])
    (tmp_path / "elsewhere").rename(folder)
    (folder / "a.yaml").unlink()
    source.rescan()
    assert names(store) == [] and source.errors == ()
