"""What every source yields: entries, each with the locator saying exactly where it was seen."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

LocatorKind = Literal["file", "archive", "telegram", "url"]


@dataclass(frozen=True)
class Locator:
    """Where an item was seen, precise enough to find it again and to cite it as evidence.

    - ``file``: ``path`` is the absolute file path.
    - ``archive``: ``path`` is the outermost archive (or file) path, ``member`` the member path,
      nested archives joined with ``!`` (``outer.zip!inner.tar!photo.jpg``).
    - ``telegram``: ``path`` is the export's root folder, ``member`` the file inside it (absent for
      a missing file); ``meta`` holds chat name/type/id, message id, date, sender, forwarded_from.
    - ``url``: ``path`` is the URL as listed; ``meta`` holds final URL, status, content type, time.
    """

    kind: LocatorKind
    path: str
    member: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """Unique text of this place: the same place always gives the same key."""
        parts = [self.kind, self.path]
        if self.member is not None:
            parts.append(self.member)
        if self.kind == "telegram":
            parts.append(f"chat={self.meta.get('chat_id', '')}")
            parts.append(f"msg={self.meta.get('message_id', '')}")
        return "|".join(str(p) for p in parts)

    def display(self) -> str:
        """Short human-readable form for tables and error lines."""
        if self.kind == "file":
            return self.path
        if self.kind == "archive":
            return f"{self.path}!{self.member}"
        if self.kind == "telegram":
            chat = self.meta.get("chat_name") or self.meta.get("chat_id") or "?"
            return (
                f"telegram:{chat}#{self.meta.get('message_id', '?')} {self.member or '(missing)'}"
            )
        return self.path

    def to_json(self) -> str:
        return json.dumps(
            {"kind": self.kind, "path": self.path, "member": self.member, "meta": self.meta},
            ensure_ascii=False,
            sort_keys=True,
            default=str,
        )

    @classmethod
    def from_json(cls, text: str) -> Locator:
        d = json.loads(text)
        return cls(kind=d["kind"], path=d["path"], member=d.get("member"), meta=d.get("meta") or {})


@dataclass
class Entry:
    """One thing a source found. Exactly one of ``path``, ``data`` or ``error`` is set.

    ``path``: a regular file the analysing worker reads itself (cheap to ship between processes).
    ``data``: bytes already read (archive members, downloads).
    ``error``: the entry is known bad without bytes (missing file, refused member); it is
    recorded as an error and the scan goes on.
    ``fingerprint``: cheap identity of the bytes at this place (size, mtime) so a rerun can skip
    places already done without reading them again.
    """

    locator: Locator
    path: Path | None = None
    data: bytes | None = None
    error: str | None = None
    fingerprint: str | None = None

    def read(self, max_bytes: int | None = None) -> bytes:
        """The entry's bytes. A path is opened with :func:`open_regular` (never a FIFO, device
        or symbolic link); over ``max_bytes`` raises :class:`FileTooLarge`."""
        if self.data is not None:
            return self.data
        if self.path is not None:
            return read_regular(self.path, max_bytes)
        raise ValueError(f"entry {self.locator.display()} has no bytes: {self.error}")


# -- opening local files --------------------------------------------------------------------------

_KIND_NAMES = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISLNK, "a symbolic link"),
)


def not_regular_reason(mode: int) -> str | None:
    """Why a file of this ``st_mode`` is refused (one line), or None for a regular file.

    Reading a FIFO blocks until someone writes to it (a scan would hang for ever), a device can
    be endless or have side effects: sources record such places with this reason, unopened.
    """
    if stat.S_ISREG(mode):
        return None
    for test, name in _KIND_NAMES:
        if test(mode):
            if test is stat.S_ISLNK:
                return "symbolic link not followed"
            return f"not a regular file ({name}); not opened"
    return "not a regular file; not opened"


class NotRegularFile(OSError):
    """Refused: the path is not a regular file (FIFO, socket, device, folder, link)."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(reason)
        self.strerror = reason
        self.filename = str(path)

    def __str__(self) -> str:
        return str(self.strerror)


class FileTooLarge(OSError):
    """The file holds more bytes than the cap it was read under."""

    def __init__(self, path: Path | str, size: int, cap: int) -> None:
        reason = f"file of {size} bytes exceeds the {cap} cap"
        super().__init__(reason)
        self.strerror = reason
        self.filename = str(path)
        self.size = size
        self.cap = cap

    def __str__(self) -> str:
        return str(self.strerror)


def open_regular(
    path: Path | str, *, follow_links: bool = False
) -> tuple[BinaryIO, os.stat_result]:
    """Open a regular file for reading, and its ``fstat``; anything else raises NotRegularFile.

    The open never blocks and never follows a final symbolic link (unless ``follow_links``):
    ``O_NONBLOCK`` makes opening a FIFO return at once instead of waiting for a writer, and
    ``O_NOFOLLOW`` fails on a link. The type is checked with ``fstat`` on the opened descriptor,
    so a file swapped for a FIFO between an earlier ``lstat`` and this open is still refused
    (no check-then-use race). Other ``OSError`` (missing, permission denied) pass through.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if not follow_links and e.errno == getattr(os, "ELOOP", -1):
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                raise e from None
            if stat.S_ISLNK(mode):
                raise NotRegularFile(path, "symbolic link not followed") from None
        raise
    try:
        st = os.fstat(fd)
        reason = not_regular_reason(st.st_mode)
        if reason is not None:
            raise NotRegularFile(path, reason)
        os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return f, st


def read_regular(
    path: Path | str, max_bytes: int | None = None, *, follow_links: bool = False
) -> bytes:
    """All bytes of a regular file opened with :func:`open_regular`, at most ``max_bytes``
    (FileTooLarge past it, checked on the open file and again while reading: it may grow)."""
    f, st = open_regular(path, follow_links=follow_links)
    with f:
        if max_bytes is None:
            return f.read()
        if st.st_size > max_bytes:
            raise FileTooLarge(path, st.st_size, max_bytes)
        data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise FileTooLarge(path, len(data), max_bytes)
        return data


@dataclass(frozen=True)
class SourceLimits:
    """Guards applied while reading sources. Defaults suit a laptop scanning untrusted material."""

    max_file_bytes: int = 512 * 1024 * 1024  # one item
    max_archive_total_bytes: int = 8 * 1024 * 1024 * 1024  # all members' uncompressed sizes
    max_archive_ratio: float = 200.0  # uncompressed / compressed, per member
    max_archive_members: int = 200_000
    max_archive_depth: int = 3  # archives inside archives
    # URL lists
    url_max_bytes: int = 64 * 1024 * 1024
    url_timeout_s: float = 30.0
    url_max_redirects: int = 5
    #: Fetch only hosts on public addresses, redirects included (the platform service's
    #: ``?url=`` fetches; ``reclaim.netguard``). A person's own scan is not restricted.
    url_public_only: bool = False


class Source(Protocol):
    """A collection reclaim can scan. ``entries()`` yields every item, errors included."""

    name: str

    def entries(self) -> Iterator[Entry]: ...

    def describe(self) -> str:
        """One line for progress bars and run records."""
        ...
