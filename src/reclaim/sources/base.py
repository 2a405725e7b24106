"""What every source yields: entries, each with the locator saying exactly where it was seen."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

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

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.path is not None:
            return self.path.read_bytes()
        raise ValueError(f"entry {self.locator.display()} has no bytes: {self.error}")


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
