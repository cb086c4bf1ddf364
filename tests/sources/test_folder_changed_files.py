"""A watcher's event on known files re-reads those files alone; what it decides is what a
full rescan of the folder decides (errors, duplicates across files, deletions)."""

from __future__ import annotations

from pathlib import Path

from controlplane.model.base import ResourceKey
from controlplane.sources.folder import FolderSource
from controlplane.store import Store
from tests.sources.helpers import service_yaml, write


def port(store: Store, name: str) -> int | None:
    svc = store.snapshot.get(ResourceKey("Service", "default", name))
    return None if svc is None else svc.spec.ports[0].port  # type: ignore[attr-defined]


def test_changed_files_alone_are_read_and_agree_with_a_full_rescan(tmp_path: Path, monkeypatch) -> None:
    write(tmp_path / "a.yaml", service_yaml("alpha"))
    write(tmp_path / "b.yaml", service_yaml("beta"))
    for i in range(20):
        write(tmp_path / "more" / f"s{i}.yaml", service_yaml(f"s{i}"))
    store = Store()
    source = FolderSource(store, tmp_path)
    source.load()
    read: list[Path] = []
    real_read = __import__("controlplane.sources.folder", fromlist=["read_file"]).read_file

    def counting(path, *args):
        read.append(path)
        return real_read(path, *args)

    monkeypatch.setattr("controlplane.sources.folder.read_file", counting)

    # An edit, as editors write it: a hidden temporary file renamed over the file.
    write(tmp_path / "a.yaml", service_yaml("alpha", port=81))
    changes = source.rescan([tmp_path / ".a.yaml.tmp", tmp_path / "a.yaml"])
    assert [c.name for c in changes.changes] == ["alpha"] and port(store, "alpha") == 81
    assert read == [tmp_path / "a.yaml"], "the other 21 files are not read again"

    # A broken document is reported with its file; fixed, the report goes.
    write(tmp_path / "a.yaml", service_yaml("alpha", port=81) + "---\nkind: Service\n")
    source.rescan([tmp_path / "a.yaml"])
    assert [str(e.origin).split(":")[0] for e in source.errors] == [str(tmp_path / "a.yaml")]
    assert port(store, "alpha") == 81
    write(tmp_path / "a.yaml", service_yaml("alpha", port=81))
    source.rescan([tmp_path / "a.yaml"])
    assert source.errors == ()

    # A key another file also supplies: the first file (by path) keeps it, with a warning...
    write(tmp_path / "b.yaml", service_yaml("beta") + "---\n" + service_yaml("alpha", port=82))
    source.rescan([tmp_path / "b.yaml"])
    assert port(store, "alpha") == 81
    assert any("duplicate" in e.message for e in source.errors)
    # ...and when it drops it, the other file's copy shows through.
    write(tmp_path / "a.yaml", service_yaml("gamma"))
    source.rescan([tmp_path / "a.yaml"])
    assert port(store, "alpha") == 82 and port(store, "gamma") == 80
    assert source.errors == ()

    # A deleted file takes its resources along.
    (tmp_path / "more" / "s3.yaml").unlink()
    source.rescan([tmp_path / "more" / "s3.yaml"])
    assert port(store, "s3") is None and port(store, "s4") == 80

    # Whatever the events said, a full rescan finds nothing left to change.
    assert not source.rescan()
