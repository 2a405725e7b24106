"""What a scan records: runs, items with their signals, and sightings (the places items were
seen), plus reclaim's own copies of bytes it fetched (``blobs/``).

Items are keyed by SHA-256 (the same bytes are one item); every place an item was seen is a
*sighting*. Each analysed item is written with its signals, its faces, its check and its sighting
in one transaction (``record``), so a scan killed at any instant leaves either all of an item or
none of it, and a rerun neither loses nor duplicates anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reclaim.detectors.record import CheckResult
from reclaim.sources.base import Locator
from reclaim.store.base import TOOL, CaseBase, now_iso
from reclaim.store.checks import insert_check
from reclaim.store.faces import FaceRecord, insert_faces


@dataclass
class ItemRecord:
    """An analysed item, ready to store."""

    sha256: str
    md5: str
    size: int
    kind: str
    format: str
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    signals: list[tuple[str, str, int | None]] = field(default_factory=list)
    blob: str | None = None
    faces: list[FaceRecord] | None = None  # None: faces were not looked for
    face_frames: int = 0
    face_error: str | None = None
    check: CheckResult | None = None  # None: not checked (reclaim.detectors.check.check_media)


@dataclass
class SightingRecord:
    locator: Locator
    item_sha256: str | None
    fingerprint: str | None = None
    error: str | None = None


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ItemStore(CaseBase):
    """Runs, items, signals, sightings and blobs."""

    # -- runs --------------------------------------------------------------------------------
    def start_run(self, command: str, sources: list[str]) -> int:
        cur = self.conn.execute(
            "INSERT INTO runs(command, sources, started_at, status, pid) VALUES (?,?,?,?,?)",
            (command, json.dumps(sources), now_iso(), "running", os.getpid()),
        )
        return int(cur.lastrowid or 0)

    def finish_run(
        self, run_id: int, status: str, stats: dict[str, Any], *, at: str | None = None
    ) -> None:
        """``at``: when it finished (ISO 8601 UTC; default now): a front end's own clock."""
        self.conn.execute(
            "UPDATE runs SET finished_at=?, status=?, stats=? WHERE id=?",
            (at or now_iso(), status, json.dumps(stats), run_id),
        )

    def runs(self) -> list[dict[str, Any]]:
        """Every run, oldest first; a run left "running" by a process that is gone reads as
        "interrupted"."""
        rows = self._dicts(
            "SELECT id, command, sources, started_at, finished_at, status, pid, stats "
            "FROM runs ORDER BY id"
        )
        out = []
        for r in rows:
            status = r["status"]
            if status == "running" and not _pid_alive(r["pid"]):
                status = "interrupted"
            out.append(
                {
                    "id": r["id"],
                    "command": r["command"],
                    "sources": json.loads(r["sources"]),
                    "started_at": r["started_at"],
                    "finished_at": r["finished_at"],
                    "status": status,
                    "stats": json.loads(r["stats"]) if r["stats"] else None,
                }
            )
        return out

    def running_scan(self) -> dict[str, Any] | None:
        """The run (scan, fetch, faces backfill) in progress in this case, if any: its owner
        process is alive and it has not finished."""
        return next((r for r in reversed(self.runs()) if r["status"] == "running"), None)

    # -- writing -----------------------------------------------------------------------------
    def has_done(self, locator_key: str, fingerprint: str) -> bool:
        """True when this place, with these bytes (by fingerprint), is already fully recorded."""
        row = self.conn.execute(
            "SELECT 1 FROM sightings WHERE locator_key=? AND fingerprint=? LIMIT 1",
            (locator_key, fingerprint),
        ).fetchone()
        return row is not None

    def known_item(self, sha256: str) -> bool:
        return (
            self.conn.execute("SELECT 1 FROM items WHERE sha256=?", (sha256,)).fetchone()
            is not None
        )

    def record(
        self,
        batch: Iterable[tuple[ItemRecord | None, SightingRecord]],
        run_id: int | None,
    ) -> int:
        """Write analysed items and sightings atomically; returns how many items were new."""
        new_items = 0
        ts = now_iso()
        with self.transaction() as c:
            for item, s in batch:
                if item is not None:
                    cur = c.execute(
                        "INSERT OR IGNORE INTO items(sha256, md5, size, kind, format, width, "
                        "height, duration_s, info, error, blob, first_seen_at, analyzed_at, "
                        "analyzer) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            item.sha256,
                            item.md5,
                            item.size,
                            item.kind,
                            item.format,
                            item.width,
                            item.height,
                            item.duration_s,
                            json.dumps(item.info, default=str),
                            item.error,
                            item.blob,
                            ts,
                            ts,
                            TOOL,
                        ),
                    )
                    new_items += cur.rowcount
                    c.executemany(
                        "INSERT OR IGNORE INTO signals(item_sha256, signal, value, quality) "
                        "VALUES (?,?,?,?)",
                        [(item.sha256, n, v, q) for n, v, q in item.signals],
                    )
                    if item.faces is not None or item.face_error is not None:
                        insert_faces(
                            c, item.sha256, item.faces or [], item.face_frames, item.face_error, ts
                        )
                    if item.check is not None:
                        insert_check(c, item.sha256, item.check, ts, replace=False)
                c.execute(
                    "INSERT INTO sightings(locator_key, kind, locator, item_sha256, fingerprint, "
                    "error, run_id, first_seen_at, last_seen_at) VALUES (?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT(locator_key, COALESCE(item_sha256, '')) DO UPDATE SET "
                    "last_seen_at=excluded.last_seen_at, fingerprint=excluded.fingerprint, "
                    "error=excluded.error, locator=excluded.locator",
                    (
                        s.locator.key,
                        s.locator.kind,
                        s.locator.to_json(),
                        s.item_sha256,
                        s.fingerprint,
                        s.error,
                        run_id,
                        ts,
                        ts,
                    ),
                )
        return new_items

    def record_faces(self, items: Iterable[ItemRecord]) -> int:
        """Store faces found for items already in the case (backfill); returns faces added."""
        ts = now_iso()
        with self.transaction() as c:
            return sum(
                insert_faces(c, it.sha256, it.faces or [], it.face_frames, it.face_error, ts)
                for it in items
                if it.faces is not None or it.face_error is not None
            )

    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def keep_blob(self, sha256: str, data: bytes) -> str:
        """Keep reclaim's own copy of bytes it fetched (atomic: temp file then rename)."""
        p = self.blob_path(sha256)
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_suffix(f".tmp{os.getpid()}")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        return str(p.relative_to(self.root))

    # -- reading -----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        n = self._count
        return {
            "items": n("SELECT COUNT(*) FROM items"),
            "photos": n("SELECT COUNT(*) FROM items WHERE kind='photo' AND error IS NULL"),
            "videos": n("SELECT COUNT(*) FROM items WHERE kind='video' AND error IS NULL"),
            "undecodable_items": n("SELECT COUNT(*) FROM items WHERE error IS NOT NULL"),
            "sightings": n("SELECT COUNT(*) FROM sightings WHERE item_sha256 IS NOT NULL"),
            "missing_or_refused": n("SELECT COUNT(*) FROM sightings WHERE item_sha256 IS NULL"),
            "runs": n("SELECT COUNT(*) FROM runs"),
        }

    def errors(self, limit: int = 1000) -> list[tuple[str, str]]:
        """(where, reason) for every place that produced no usable item, newest first."""
        rows = self._dicts(
            "SELECT s.locator, COALESCE(s.error, i.error) AS reason FROM sightings s "
            "LEFT JOIN items i ON i.sha256 = s.item_sha256 "
            "WHERE s.error IS NOT NULL OR i.error IS NOT NULL ORDER BY s.id DESC LIMIT ?",
            (limit,),
        )
        return [(Locator.from_json(r["locator"]).display(), r["reason"]) for r in rows]

    def item_signals(self, sha256: str) -> dict[str, tuple[str, int | None]]:
        rows = self._dicts(
            "SELECT signal, value, quality FROM signals WHERE item_sha256=?", (sha256,)
        )
        return {r["signal"]: (r["value"], r["quality"]) for r in rows}

    def sightings_of(self, sha256: str) -> list[Locator]:
        rows = self.conn.execute(
            "SELECT locator FROM sightings WHERE item_sha256=? ORDER BY id", (sha256,)
        ).fetchall()
        return [Locator.from_json(r[0]) for r in rows]

    def item_blob(self, sha256: str) -> str | None:
        row = self.conn.execute("SELECT blob FROM items WHERE sha256=?", (sha256,)).fetchone()
        return row[0] if row else None

    def item_row(self, sha256: str) -> dict[str, Any] | None:
        """An item's stored columns (sha256, md5, size, kind, format, width, height,
        duration_s, first_seen_at, blob, error); None when it is not in the case."""
        rows = self._dicts(
            "SELECT sha256, md5, size, kind, format, width, height, duration_s, first_seen_at, "
            "blob, error FROM items WHERE sha256=?",
            (sha256,),
        )
        return rows[0] if rows else None

    def items_with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        """SHA-256s of items that start with ``prefix`` (lower-case hex), at most ``limit``."""
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return []
        rows = self.conn.execute(
            "SELECT sha256 FROM items WHERE sha256 >= ? AND sha256 < ? ORDER BY sha256 LIMIT ?",
            (prefix, prefix + "g", limit),
        ).fetchall()
        return [r[0] for r in rows]

    def pdq_signals(self, exclude: str | None = None) -> list[dict[str, Any]]:
        """Every item's PDQ (item_sha256, value, quality), but ``exclude``'s."""
        return self._dicts(
            "SELECT item_sha256, value, quality FROM signals WHERE signal='pdq' "
            "AND item_sha256 IS NOT ?",
            (exclude,),
        )
