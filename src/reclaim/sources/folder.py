"""Local folders, walked recursively. Archives found inside are opened in place.

Only regular files are read. Every other place is recorded with its reason and never opened:
FIFOs, sockets and devices (``not a regular file (a named pipe (FIFO)); not opened``: reading a
FIFO would block the scan for ever), symbolic links (files and folders alike: not followed),
and folders that cannot be listed (their contents were not scanned).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from reclaim.sources import archive
from reclaim.sources.base import Entry, Locator, SourceLimits, not_regular_reason


def detect(spec: str) -> bool:
    return Path(spec).is_dir()


def file_fingerprint(st: os.stat_result) -> str:
    return f"{st.st_size}:{st.st_mtime_ns}"


class FolderSource:
    name = "folder"

    def __init__(self, root: str, limits: SourceLimits) -> None:
        self.root = Path(root).resolve()
        self.limits = limits

    def describe(self) -> str:
        return f"folder {self.root}"

    def entries(self) -> Iterator[Entry]:
        yield from walk_entries(self.root, self.limits)


def walk_entries(root: Path, limits: SourceLimits) -> Iterator[Entry]:
    """Entries of every file under ``root``, in sorted order (the same folder always yields the
    same order: reproducible runs), with an error entry for each folder that cannot be listed
    and each symbolic link to a folder."""
    unreadable: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable.append, followlinks=False):
        # os.walk reports a folder it cannot list through onerror, before moving on
        yield from _unreadable_entries(unreadable)
        here = Path(dirpath)
        links = [d for d in dirnames if (here / d).is_symlink()]
        dirnames[:] = sorted(d for d in dirnames if d not in links)
        for name in sorted([*filenames, *links]):
            yield from file_entries(here / name, limits)
    yield from _unreadable_entries(unreadable)


def _unreadable_entries(errors: list[OSError]) -> Iterator[Entry]:
    for e in errors:
        where = str(e.filename) if e.filename is not None else "?"
        yield Entry(
            Locator("file", where),
            error=f"folder cannot be read ({e.strerror or e}); its contents were not scanned",
        )
    errors.clear()


def file_entries(p: Path, limits: SourceLimits) -> Iterator[Entry]:
    """Entries for one file on disk: the file itself, or its members when it is an archive."""
    loc = Locator("file", str(p))
    try:
        st = p.lstat()
    except OSError as e:
        yield Entry(loc, error=f"cannot read: {e.strerror or e}")
        return
    reason = not_regular_reason(st.st_mode)
    if reason is not None:  # FIFOs, sockets, devices, links: recorded, never opened
        yield Entry(loc, error=reason)
        return
    if archive.detect(str(p)):
        yield from archive.ArchiveSource(str(p), limits).entries()
        return
    if st.st_size > limits.max_file_bytes:
        yield Entry(loc, error=f"file too large ({st.st_size} bytes > cap {limits.max_file_bytes})")
        return
    yield Entry(loc, path=p, fingerprint=file_fingerprint(st))


def open_folder(spec: str, limits: SourceLimits) -> FolderSource:
    return FolderSource(spec, limits)


class FileSource:
    """A single file named on the command line (an image, a video, or an archive)."""

    name = "file"

    def __init__(self, path: str, limits: SourceLimits) -> None:
        self.path = Path(path).resolve()
        self.limits = limits

    def describe(self) -> str:
        return f"file {self.path}"

    def entries(self) -> Iterator[Entry]:
        yield from file_entries(self.path, self.limits)


def detect_file(spec: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(spec).st_mode)
    except OSError:
        return False


def open_file(spec: str, limits: SourceLimits) -> FileSource:
    return FileSource(spec, limits)
