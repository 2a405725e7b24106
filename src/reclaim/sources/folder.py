"""Local folders, walked recursively. Archives found inside are opened in place."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from reclaim.sources import archive
from reclaim.sources.base import Entry, Locator, SourceLimits


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
        # Sorted walk: the same folder always yields the same order (reproducible runs).
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            dirnames.sort()
            for fn in sorted(filenames):
                p = Path(dirpath) / fn
                yield from file_entries(p, self.limits)


def file_entries(p: Path, limits: SourceLimits) -> Iterator[Entry]:
    """Entries for one file on disk: the file itself, or its members when it is an archive."""
    loc = Locator("file", str(p))
    try:
        st = p.lstat()
    except OSError as e:
        yield Entry(loc, error=f"cannot read: {e.strerror or e}")
        return
    if p.is_symlink():
        yield Entry(loc, error="symbolic link not followed")
        return
    if not p.is_file():
        return  # sockets, fifos, devices: not content
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
    return Path(spec).is_file()


def open_file(spec: str, limits: SourceLimits) -> FileSource:
    return FileSource(spec, limits)
