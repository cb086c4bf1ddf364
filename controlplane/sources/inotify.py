"""Linux inotify through libc, for the folder source: a change wakes the watching thread at
once. A watcher that wakes in steps (watchfiles yields a change once a 10 ms step passes with
nothing new) adds 10-20 ms to every change; this one adds only the ``gather`` it waits for
the rest of a burst. Reads block outside the GIL (``select``), so watching costs nothing idle.

Only events that end a change are asked for: a file closed after writing, a rename in or
out, a deletion, a creation (a folder or a symbolic link: a new regular file is read once it
is closed). Watches are per folder (inotify is not recursive): the caller names the folders,
and adds those that appear.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

WATCH_MASK = (
    IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
)
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, name length
READ_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Batch:
    """What one burst of events changed: the paths to look at again, and whether the folder
    tree itself may have changed (a folder came or went, or events were lost), so the watches
    must be set again and everything rescanned."""

    paths: tuple[Path, ...]
    folders_changed: bool


class Inotify:
    """One inotify instance. ``OSError`` from the constructor where there is none (not Linux,
    or the per-user instance limit reached): the caller falls back to another watcher."""

    def __init__(self) -> None:
        if not sys.platform.startswith("linux"):
            raise OSError("inotify is Linux only")
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._fd = fd
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._folders: dict[int, Path] = {}  # watch descriptor -> the folder, as named
        self._watched: dict[Path, int] = {}

    def watch(self, folders: Iterable[Path]) -> None:
        """Watch each of ``folders`` not watched yet (links to folders are followed). A folder
        gone meanwhile is skipped: the scan that follows finds it missing."""
        for folder in folders:
            if folder in self._watched:
                continue
            wd = self._libc.inotify_add_watch(self._fd, os.fsencode(folder), WATCH_MASK)
            if wd < 0:
                continue
            self._folders[wd] = folder
            self._watched[folder] = wd

    def wake(self) -> None:
        """Make a waiting ``read`` return now (from another thread: stopping)."""
        try:
            os.write(self._wake_write, b"\0")
        except OSError:
            pass

    def read(self, timeout: float | None, gather: float = 0.001, longest: float = 0.1) -> Batch | None:
        """Wait up to ``timeout`` seconds (None: for ever) for events, then for more while they
        keep coming ``gather`` apart, for at most ``longest``. None when nothing came (or on
        ``wake``)."""
        if not self._ready(timeout):
            return None
        paths: dict[Path, None] = {}
        folders_changed = self._drain(paths)
        deadline = time.monotonic() + longest
        while (left := deadline - time.monotonic()) > 0 and self._ready(min(gather, left)):
            folders_changed |= self._drain(paths)
        if not paths and not folders_changed:
            return None
        return Batch(tuple(paths), folders_changed)

    def close(self) -> None:
        for fd in (self._fd, self._wake_read, self._wake_write):
            try:
                os.close(fd)
            except OSError:
                pass

    def _ready(self, timeout: float | None) -> bool:
        """Whether events can be read; False on timeout or on a wake (which it consumes)."""
        readable, _, _ = select.select([self._fd, self._wake_read], [], [], timeout)
        if self._wake_read in readable:
            try:
                os.read(self._wake_read, 64)
            except OSError:
                pass
            return False
        return bool(readable)

    def _drain(self, paths: dict[Path, None]) -> bool:
        """Read every pending event into ``paths``; whether the folder tree may have changed."""
        folders_changed = False
        while True:
            try:
                data = os.read(self._fd, READ_SIZE)
            except BlockingIOError:
                return folders_changed
            offset = 0
            while offset + _HEADER.size <= len(data):
                wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
                offset += _HEADER.size
                name = data[offset : offset + length].rstrip(b"\0")
                offset += length
                folders_changed |= self._event(wd, mask, os.fsdecode(name), paths)

    def _event(self, wd: int, mask: int, name: str, paths: dict[Path, None]) -> bool:
        if mask & IN_Q_OVERFLOW:
            return True  # events were lost: everything is looked at again
        folder = self._folders.get(wd)
        if mask & IN_IGNORED:  # the watch is gone (its folder deleted or unmounted)
            if folder is not None:
                del self._folders[wd]
                self._watched.pop(folder, None)
            return True
        if folder is None:
            return False
        if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
            return True
        path = folder / name
        if mask & IN_ISDIR:
            return True
        if mask & IN_CREATE and not path.is_symlink():
            return False  # a new file is read once it is closed after writing (IN_CLOSE_WRITE)
        if mask & (IN_CLOSE_WRITE | IN_MOVED_FROM) and name.startswith("."):
            return False  # a hidden file written or renamed away (an atomic rename's temporary)
        paths[path] = None
        # A link to a folder that appeared: a folder to watch.
        return bool(mask & (IN_CREATE | IN_MOVED_TO)) and path.is_dir()
