"""What she sets up in a case for the watch: the sources to watch and the hashes of her
private photos. (Where alerts go: ``reclaim.alerts.add_target``.)

Each call takes the case lock for its one write and writes its custody entry, whichever front
end calls it (the command line, the web app).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reclaim.errors import InputError
from reclaim.hashes import by_exchange_name
from reclaim.report.custody import CustodyLog
from reclaim.store import CaseStore
from reclaim.store.watch import ProtectedHash, UrlState, WatchEvent, WatchSource
from reclaim.watch.sources import kind_of

__all__ = [
    "WatchOverview",
    "add_source",
    "import_protected_hashes",
    "overview",
    "read_hash_file",
    "remove_source",
]

#: Largest protected-hash file read (a few thousand photos' hashes fit in well under this).
MAX_HASH_FILE = 16 * 1024 * 1024


def add_source(store: CaseStore, spec: str | Path) -> WatchSource:
    """Watch a folder (where she drops Telegram exports or files), an export, an archive or a
    URL list from now on. InputError when it cannot be read or holds the case itself,
    StoreError when it is watched already."""
    path = Path(spec).expanduser().resolve()
    kind = kind_of(str(path))
    case = store.root.resolve()
    if path == case or case.is_relative_to(path) or path.is_relative_to(case):
        raise InputError(
            f"{path} holds the case folder (or is inside it): keep the case in a folder of its "
            "own, outside what you watch"
        )
    with store.writing(wait_s=5.0):
        added = store.add_watch_source(str(path), kind)
    CustodyLog(store.root).append("watch.source", {"added": str(path), "kind": kind})
    return added


def remove_source(store: CaseStore, spec: str | Path) -> None:
    """Stop watching ``spec`` (what was found stays in the case). InputError when it was not
    watched."""
    path = str(Path(spec).expanduser().resolve())
    with store.writing(wait_s=5.0):
        known = {s.spec for s in store.watch_sources()}
        target = path if path in known else str(spec)
        if not store.remove_watch_source(target):
            raise InputError(f"{spec} is not watched in this case (reclaim watch list)")
    CustodyLog(store.root).append("watch.source", {"removed": target})


def import_protected_hashes(store: CaseStore, text: str) -> tuple[int, int]:
    """Keep the hashes of a ``reclaim protect`` CSV (numbers only) so that the watch
    recognises her private photos: (new hashes, hashes the case had already). InputError when
    the text is not such a file or holds no usable hash."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    fields = set(reader.fieldnames or [])
    if not {"signal_type", "signal"} <= fields:
        raise InputError(
            "not a file written by reclaim protect (it needs the columns signal_type and signal)"
        )
    hashes: list[ProtectedHash] = []
    bad: list[int] = []
    for n, row in enumerate(reader, start=2):
        name = (row.get("signal_type") or "").strip()
        sig = by_exchange_name(name)
        try:
            if sig is None:
                raise ValueError(name)
            value = sig.validate((row.get("signal") or "").strip())
            q = (row.get("quality") or "").strip()
            hashes.append(ProtectedHash(name, value, int(q) if q else None))
        except (ValueError, TypeError):
            bad.append(n)
    if not hashes:
        raise InputError(
            "no usable hash in this file"
            + (f" (lines {', '.join(map(str, bad[:10]))} are not valid)" if bad else "")
        )
    if bad:
        raise InputError(
            f"lines {', '.join(map(str, bad[:10]))} of this file are not valid hashes; "
            "write it again with reclaim protect"
        )
    with store.writing(wait_s=5.0):
        new = store.add_protected_hashes(hashes)
    CustodyLog(store.root).append("watch.source", {"protected_hashes": len(hashes), "new": new})
    return new, len(hashes) - new


def read_hash_file(path: Path) -> str:
    """The text of a protected-hash CSV. InputError when it cannot be read."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_HASH_FILE + 1)
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror or e})") from e
    if len(raw) > MAX_HASH_FILE:
        raise InputError(f"{path}: larger than {MAX_HASH_FILE} bytes; not a reclaim protect file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text; not a reclaim protect file") from e


@dataclass(frozen=True)
class WatchOverview:
    """The watch of a case at a glance (a web page, ``reclaim watch list``): what is watched,
    where alerts go (without secrets), what each URL answered last, the last run's counts and
    the latest changes. Places and URLs are for her screen, never for an alert."""

    sources: list[WatchSource]
    alert_targets: list[tuple[int, str, str]]  # (id, shown without secrets, language)
    protected_hashes: int
    urls: list[UrlState]
    last_run: dict[str, Any] | None  # the runs table's record of the last watch run
    recent: list[WatchEvent]  # newest first


def overview(store: CaseStore, recent: int = 50) -> WatchOverview:
    """The watch of ``store`` at a glance (reads only; no case lock)."""
    from reclaim.alerts import shown

    runs = [r for r in store.runs() if r["command"] == "watch"]
    events = store.watch_events()
    return WatchOverview(
        sources=store.watch_sources(),
        alert_targets=[(t.id, shown(t.target), t.lang) for t in store.alert_targets()],
        protected_hashes=len(store.protected_hashes()),
        urls=sorted(store.url_states().values(), key=lambda u: u.url),
        last_run=runs[-1] if runs else None,
        recent=events[::-1][:recent],
    )
