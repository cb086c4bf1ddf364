"""A folder (or files) of multi-document YAML, loaded into the store and watched.

Rules users can rely on:
- every ``*.yaml``/``*.yml`` below the given folders is read (hidden entries such as
  ``..data`` of a ConfigMap mount and editor files are skipped);
- a document that fails keeps the last valid version of the same resource, and a
  file that cannot be read or has an unnamed broken document keeps all of its last
  valid resources: a bad edit never removes good config. The problem is logged
  once and listed in ``errors`` until fixed;
- the good documents of a file are used even when another document of it is bad;
- deleting a file removes its resources; a rename moves them;
- the same resource in two files: the first in path order wins, the other is
  reported, whatever order the files were created in;
- symbolic links to folders are followed, each folder once: a link back to a folder
  above it (a loop) is reported once as a warning and not followed.

Changes are found with inotify on Linux (``sources/inotify.py``: a change is read as soon
as it is made), elsewhere with ``watchfiles`` when it is installed, with a full stat scan as
a safety net (every minute with inotify, every 5 s with watchfiles); or by polling alone.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Self

from controlplane.model.base import Origin, Resource, ResourceKey
from controlplane.sources.diagnostics import WARNING, Diagnostic
from controlplane.sources.inotify import Inotify
from controlplane.sources.parsing import parse_document
from controlplane.sources.yaml_loader import LoadResult, YamlProblem, load_file
from controlplane.store import ChangeSet, Store

log = logging.getLogger(__name__)

YAML_SUFFIXES = (".yaml", ".yml")

Signature = tuple[int, int, int]  # mtime_ns, size, inode
# Seconds between the safety-net scans of a watched folder, by watcher (unless given).
INOTIFY_FULL_SCAN_SECONDS = 60.0
WATCHFILES_FULL_SCAN_SECONDS = 5.0
# "auto": inotify, else watchfiles, else polling; the others insist (tests, benchmarks).
Watcher = Literal["auto", "inotify", "watchfiles", "polling"]


@dataclass(frozen=True)
class _FileState:
    signature: Signature | None
    # What this file contributes, in document order, including kept last-valid versions.
    resources: dict[ResourceKey, Resource] = field(default_factory=dict)
    origins: dict[ResourceKey, Origin] = field(default_factory=dict)
    diagnostics: tuple[Diagnostic, ...] = ()


@dataclass(frozen=True, slots=True, order=True)
class SymlinkLoop:
    """A link to a folder that contains it: following it would never end."""

    link: Path
    target: Path  # the folder above ``link`` that it leads back to

    def diagnostic(self) -> Diagnostic:
        message = f"symbolic link loop back to {self.target}; not followed"
        return Diagnostic(Origin(str(self.link)), None, "", message, WARNING)


@dataclass(frozen=True, slots=True)
class FoundFiles:
    files: list[Path]
    loops: list[SymlinkLoop]
    folders: list[Path] = field(default_factory=list)  # every folder entered (what to watch)


def find_yaml_files(paths: Iterable[Path]) -> list[Path]:
    """Every YAML file named or found below ``paths``, sorted, without hidden entries."""
    return scan_yaml_files(paths).files


def scan_yaml_files(paths: Iterable[Path]) -> FoundFiles:
    """``find_yaml_files``, and the symbolic link loops met on the way.

    Links to folders are followed, but each folder (device and inode) is entered once:
    ``os.walk(followlinks=True)`` walked ``ln -s . a; ln -s . b`` down 2**n paths."""
    found: set[Path] = set()
    loops: list[SymlinkLoop] = []
    entered: set[tuple[int, int]] = set()
    folders: list[Path] = []
    for path in paths:
        if path.is_file():
            found.add(path)
        else:
            _walk(path, found, loops, entered, folders)
    return FoundFiles(sorted(found), sorted(set(loops)), folders)


def _walk(
    root: Path,
    found: set[Path],
    loops: list[SymlinkLoop],
    entered: set[tuple[int, int]],
    folders: list[Path],
) -> None:
    try:
        st = root.stat()
    except OSError:
        return
    if (st.st_dev, st.st_ino) in entered:
        return
    entered.add((st.st_dev, st.st_ino))
    # Each folder with the folders above it (by identity), to tell a loop from a second
    # link to a folder already read elsewhere.
    stack: list[tuple[Path, dict[tuple[int, int], Path]]] = [
        (root, {(st.st_dev, st.st_ino): root})
    ]
    while stack:
        folder, above = stack.pop()
        folders.append(folder)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            ident = None
            try:
                if entry.is_dir():  # follows links
                    target = entry.stat()
                    ident = (target.st_dev, target.st_ino)
            except OSError:
                pass
            if ident is None:
                if entry.name.endswith(YAML_SUFFIXES):
                    found.add(Path(entry.path))
            elif ident in above:
                loops.append(SymlinkLoop(Path(entry.path), above[ident]))
            elif ident not in entered:
                entered.add(ident)
                stack.append((Path(entry.path), {**above, ident: Path(entry.path)}))


def _signature(path: Path) -> Signature | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def read_file(path: Path, previous: _FileState | None, default_namespace: str) -> _FileState:
    """Parse one file, keeping the last valid version of whatever now fails."""
    signature = _signature(path)
    try:
        result = load_file(path)
    except Exception as exc:  # a bug must not stop every later rescan
        log.exception("%s: reading failed", path)
        problem = YamlProblem(Origin(str(path)), f"cannot be read: {type(exc).__name__}: {exc}")
        result = LoadResult((), (problem,))
    resources: dict[ResourceKey, Resource] = {}
    origins: dict[ResourceKey, Origin] = {}
    diagnostics: list[Diagnostic] = [
        Diagnostic(p.origin, None, "", p.message) for p in result.problems
    ]
    failed_keys: list[ResourceKey] = []
    unnamed_failure = bool(result.problems)
    for document in result.documents:
        parsed = parse_document(document, default_namespace)
        diagnostics.extend(parsed.diagnostics)
        if parsed.unsupported:
            continue
        if parsed.resource is None:
            if parsed.key is None:
                unnamed_failure = True
            else:
                failed_keys.append(parsed.key)
            continue
        key = parsed.resource.key
        if key in resources:
            diagnostics.append(
                Diagnostic(
                    document.origin,
                    key,
                    "",
                    f"duplicate of the resource at line {origins[key].line}; ignored",
                    WARNING,
                )
            )
            continue
        resources[key] = parsed.resource
        origins[key] = document.origin
    if previous is not None:
        kept = [k for k in failed_keys if k in previous.resources and k not in resources]
        if unnamed_failure:
            kept += [k for k in previous.resources if k not in resources and k not in kept]
        for key in kept:
            resources[key] = previous.resources[key]
            origins[key] = previous.origins.get(key, Origin(str(path)))
    return _FileState(signature, resources, origins, tuple(diagnostics))


class FolderSource:
    """Feeds ``store`` (as ``source_id``) from YAML files and folders, and keeps it current."""

    def __init__(
        self,
        store: Store,
        paths: Path | str | Sequence[Path | str],
        *,
        source_id: str = "folder",
        default_namespace: str = "default",
        watcher: Watcher = "auto",
        poll_interval: float = 0.5,
        full_scan_interval: float | None = None,
    ) -> None:
        self.store = store
        self.paths = tuple(Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths))
        self.source_id = source_id
        self.default_namespace = default_namespace
        self.watcher = watcher
        self.poll_interval = poll_interval
        # The safety-net scan (10 ms of stats for 1,000 files, 60-150 ms for 5,000, holding the
        # GIL): inotify loses no event (an overflow is one, and rescans), so it needs it rarely.
        self.full_scan_interval = full_scan_interval
        self._files: dict[Path, _FileState] = {}
        self._missing: tuple[Path, ...] = ()
        self._loops: tuple[SymlinkLoop, ...] = ()
        self._errors: tuple[Diagnostic, ...] = ()
        # From the last merge: the file supplying each key, and keys more than one supplies.
        # With them a watcher's event on known files re-reads those alone (_rescan_known).
        self._owners: dict[ResourceKey, Path] = {}
        self._contested: frozenset[ResourceKey] = frozenset()
        self._resolved: dict[Path, Path] = {}  # known files by resolved path (what watchers report)
        self._resolved_files: frozenset[Path] = frozenset()
        self._folders: tuple[Path, ...] = ()  # every folder the last full scan entered
        self._inotify: Inotify | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.mode = ""  # "inotify", "watchfiles" or "polling" once started

    # --- public ------------------------------------------------------------------
    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        """Current problems (errors and warnings), sorted by file and line."""
        return self._errors

    def load(self) -> ChangeSet:
        """Read everything now (the initial load); also what a full rescan does."""
        return self.rescan()

    def rescan(self, changed: Iterable[Path] = ()) -> ChangeSet:
        """Reload files whose stat changed, plus ``changed``; drop files that are gone."""
        forced = {Path(p).resolve() for p in changed}
        forced_names = {p.name for p in forced}
        with self._lock:
            if forced:
                quick = self._rescan_known(forced)
                if quick is not None:
                    return quick
            missing = tuple(p for p in self.paths if not p.exists())
            scan = scan_yaml_files(p for p in self.paths if p not in missing)
            present = scan.files
            files: dict[Path, _FileState] = {}
            # A folder that vanished as a whole (unmounted, mistyped) is a problem to
            # report, not a request to delete everything it held.
            for path, state in self._files.items():
                if any(path == root or root in path.parents for root in missing):
                    files[path] = state
            touched = missing != self._missing or tuple(scan.loops) != self._loops
            self._missing = missing
            self._loops = tuple(scan.loops)  # reported once each, as long as they exist
            self._folders = tuple(scan.folders)
            for path in present:
                previous = self._files.get(path)
                is_forced = path.name in forced_names and path.resolve() in forced
                if (
                    previous is not None
                    and not is_forced
                    and previous.signature == _signature(path)
                ):
                    files[path] = previous
                    continue
                files[path] = read_file(path, previous, self.default_namespace)
                touched = True
            if not touched and files.keys() == self._files.keys():
                return ChangeSet({}, self.store.snapshot, self.store.snapshot, self.source_id)
            self._files = files
            effective, errors = self._merge()
            self._report(errors)
            return self.store.replace(self.source_id, effective)

    def start(self) -> None:
        """Watch for changes in a background thread (after ``load``)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._ready.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"folder-source-{self.source_id}", daemon=True
        )
        self._thread.start()
        # Return once changes are being watched, so that nothing written after
        # start() can be missed (what was written before is caught by a rescan).
        self._ready.wait(timeout=10)

    def stop(self) -> None:
        self._stop.set()
        inotify = self._inotify
        if inotify is not None:
            inotify.wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Self:
        self.load()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- internals ---------------------------------------------------------------
    def _rescan_known(self, forced: set[Path]) -> ChangeSet | None:
        """A watcher's event on files already known: re-read those alone and apply what they
        changed, so a change costs the same however many files the folder holds. None when a
        full rescan is needed: a new file or a folder, a key another file also supplies, a
        missing root or a link loop."""
        if self._missing or self._loops:
            return None
        self._resolve_known()
        paths: set[Path] = set()
        for changed in forced:
            known = self._resolved.get(changed)
            if known is not None:
                paths.add(known)
            elif changed.name.startswith("."):
                continue  # hidden (never read), e.g. the temporary file of an atomic rename
            else:
                return None  # a new file, or a folder
        if not paths or any(path in self.paths for path in paths):
            return None
        files = dict(self._files)
        upserts: list[Resource] = []
        deletes: list[ResourceKey] = []
        gone: set[Diagnostic] = set()
        added: list[Diagnostic] = []
        owners: dict[ResourceKey, Path | None] = {}
        for path in sorted(paths):
            previous = files[path]
            if _signature(path) is None:  # deleted
                state = _FileState(None)
                del files[path]
            else:
                state = files[path] = read_file(path, previous, self.default_namespace)
            for key in previous.resources.keys() | state.resources.keys():
                if key in self._contested or self._owners.get(key, path) != path:
                    return None  # several files supply it: the full merge decides
            upserts.extend(r for k, r in state.resources.items() if previous.resources.get(k) is not r)
            deletes.extend(k for k in previous.resources if k not in state.resources)
            owners.update({k: path for k in state.resources})
            owners.update({k: None for k in previous.resources if k not in state.resources})
            gone.update(previous.diagnostics)
            added.extend(state.diagnostics)
        self._files = files
        for key, owner in owners.items():
            if owner is None:
                self._owners.pop(key, None)
            else:
                self._owners[key] = owner
        errors = [d for d in self._errors if d not in gone] + added
        self._report(tuple(sorted(errors, key=Diagnostic.sort_key)))
        return self.store.apply(self.source_id, upserts, deletes)

    def _resolve_known(self) -> None:
        """Known files by resolved path, renewed when the files changed: the new ones are
        resolved (20-30 ms for 1,000 files, so not all again for each file added; one whose
        link moved meanwhile is not found, which costs a full rescan, never a wrong result)."""
        if self._resolved_files != self._files.keys():
            known = {path: resolved for resolved, path in self._resolved.items()}
            self._resolved = {known.get(path) or path.resolve(): path for path in self._files}
            self._resolved_files = frozenset(self._files)

    def _merge(self) -> tuple[list[Resource], tuple[Diagnostic, ...]]:
        owners: dict[ResourceKey, Origin] = {}
        owner_files: dict[ResourceKey, Path] = {}
        contested: set[ResourceKey] = set()
        effective: list[Resource] = []
        diagnostics: list[Diagnostic] = [
            Diagnostic(
                Origin(str(root)), None, "", "not found; its last valid resources stay in effect"
            )
            for root in self._missing
        ]
        diagnostics.extend(loop.diagnostic() for loop in self._loops)
        for path in sorted(self._files):
            state = self._files[path]
            diagnostics.extend(state.diagnostics)
            for key, resource in state.resources.items():
                origin = state.origins.get(key, Origin(str(path)))
                first = owners.get(key)
                if first is not None:
                    contested.add(key)
                    diagnostics.append(
                        Diagnostic(
                            origin,
                            key,
                            "",
                            f"duplicate of the resource at {first}; ignored",
                            WARNING,
                        )
                    )
                    continue
                owners[key] = origin
                owner_files[key] = path
                effective.append(resource)
        self._owners, self._contested = owner_files, frozenset(contested)
        return effective, tuple(sorted(diagnostics, key=Diagnostic.sort_key))

    def _report(self, errors: tuple[Diagnostic, ...]) -> None:
        old = set(self._errors)
        for diagnostic in errors:
            if diagnostic not in old:
                (log.error if diagnostic.is_error else log.warning)("%s", diagnostic)
        fixed = len(old - set(errors))
        if fixed:
            log.info(
                "%d earlier problem(s) in %s are fixed", fixed, ", ".join(map(str, self.paths))
            )
        self._errors = errors

    def _watch_roots(self) -> list[Path]:
        roots = {
            p if p.is_dir() else p.parent for p in self.paths if p.exists() or p.parent.exists()
        }
        return sorted(roots)

    def _run(self) -> None:
        where = ", ".join(map(str, self.paths))
        if self.watcher in ("auto", "inotify"):
            try:
                self._watch_with_inotify()
                return
            except OSError as error:  # not Linux, or no inotify instance left
                log.info("inotify is not available (%s); watching %s otherwise", error, where)
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("inotify watching failed; watching %s otherwise", where)
        if self.watcher in ("auto", "watchfiles"):
            try:
                self._watch_with_watchfiles()
                return
            except ImportError:
                log.info("watchfiles is not installed; polling %s", where)
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("file watching failed; polling %s instead", where)
        self.mode = "polling"
        self._rescan_logged()
        self._ready.set()
        while not self._stop.wait(self.poll_interval):
            self._rescan_logged()

    def _inotify_folders(self) -> list[Path]:
        """What inotify watches: every folder the last full scan entered, the folders of
        files named alone, and the parent of a missing root (to see it come back)."""
        with self._lock:
            folders = list(self._folders)
            missing = self._missing
        folders += [p.parent for p in self.paths if p.is_file()]
        folders += [p.parent for p in missing if p.parent.is_dir()]
        return folders

    def _watch_with_inotify(self) -> None:
        inotify = Inotify()
        try:
            self._inotify = inotify
            inotify.watch(self._inotify_folders())
            self.mode = "inotify"
            self._rescan_logged()  # what changed before the watches were set
            with self._lock:
                self._resolve_known()
            self._ready.set()
            last_full_scan = time.monotonic()
            while not self._stop.is_set():
                every = self.full_scan_interval or INOTIFY_FULL_SCAN_SECONDS
                left = last_full_scan + every - time.monotonic()
                batch = inotify.read(max(left, 0.0))
                if self._stop.is_set():
                    return
                if batch is None:
                    if time.monotonic() - last_full_scan >= every:
                        self._rescan_logged()  # the safety net
                        last_full_scan = time.monotonic()
                    continue
                if batch.folders_changed:
                    # A folder came or went: scan (which lists the folders), watch the new
                    # ones, and scan again for what was written before they were watched.
                    self._rescan_logged()
                    inotify.watch(self._inotify_folders())
                    self._rescan_logged()
                if batch.paths:
                    self._rescan_logged(batch.paths)
        finally:
            self._inotify = None
            inotify.close()

    def _watch_with_watchfiles(self) -> None:
        import watchfiles

        roots = self._watch_roots()
        if not roots:
            raise FileNotFoundError(f"nothing to watch in {self.paths}")
        self.mode = "watchfiles"
        last_full_scan = 0.0
        for changes in watchfiles.watch(
            *roots,
            watch_filter=None,
            stop_event=self._stop,
            # A change is yielded once a step passes with nothing new (1-2 steps after it);
            # watchfiles' default 50 ms step made that 50-100 ms of every change's latency.
            # `debounce` caps how long a storm of events is gathered before it is yielded.
            debounce=100,
            step=10,
            rust_timeout=250,  # an empty yield this often: readiness and the safety-net scan
            yield_on_timeout=True,
            raise_interrupt=False,
        ):
            if self._stop.is_set():
                return
            if changes:
                self._rescan_logged(Path(path) for _, path in changes)
            elif (
                not self._ready.is_set()
                or time.monotonic() - last_full_scan > (self.full_scan_interval or WATCHFILES_FULL_SCAN_SECONDS)
            ):
                self._rescan_logged()
                last_full_scan = time.monotonic()
                self._ready.set()  # the watcher exists once it has timed out once

    def _rescan_logged(self, changed: Iterable[Path] = ()) -> None:
        try:
            self.rescan(changed)
        except Exception:  # keep watching whatever happened to one scan
            log.exception("rescanning %s failed", ", ".join(map(str, self.paths)))
