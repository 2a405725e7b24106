"""SQLite (WAL) case store.

One case directory = one person's (or one investigation's) material: ``case.sqlite`` plus
``blobs/`` for bytes reclaim downloaded itself. Items are keyed by SHA-256 (the same bytes are
one item); every place an item was seen is a *sighting*. Each analysed item is written with its
signals and its sighting in one transaction, so a scan killed at any instant leaves either all of
an item or none of it, and a rerun neither loses nor duplicates anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reclaim import __version__
from reclaim.errors import StoreError
from reclaim.sources.base import Locator

SCHEMA_VERSION = 1
DB_NAME = "case.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    command TEXT NOT NULL,
    sources TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,           -- running | done | failed (interrupted = running, owner gone)
    pid INTEGER,
    stats TEXT
);
CREATE TABLE IF NOT EXISTS items (
    sha256 TEXT PRIMARY KEY,
    md5 TEXT NOT NULL,
    size INTEGER NOT NULL,
    kind TEXT NOT NULL,             -- photo | video | other
    format TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    duration_s REAL,
    info TEXT,
    error TEXT,                     -- decode error: the item is kept, its pixels could not be read
    blob TEXT,                      -- path under the case dir when reclaim holds its own copy
    first_seen_at TEXT NOT NULL,
    analyzed_at TEXT NOT NULL,
    analyzer TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS signals (
    item_sha256 TEXT NOT NULL REFERENCES items(sha256),
    signal TEXT NOT NULL,
    value TEXT NOT NULL,
    quality INTEGER,
    PRIMARY KEY (item_sha256, signal)
);
CREATE TABLE IF NOT EXISTS sightings (
    id INTEGER PRIMARY KEY,
    locator_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    locator TEXT NOT NULL,
    item_sha256 TEXT REFERENCES items(sha256),
    fingerprint TEXT,
    error TEXT,                     -- set when no bytes could be had (missing, refused, unreadable)
    run_id INTEGER REFERENCES runs(id),
    first_seen_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS sightings_place
    ON sightings(locator_key, COALESCE(item_sha256, ''));
CREATE INDEX IF NOT EXISTS sightings_item ON sightings(item_sha256);
CREATE INDEX IF NOT EXISTS signals_value ON signals(signal, value);
"""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


@dataclass
class SightingRecord:
    locator: Locator
    item_sha256: str | None
    fingerprint: str | None = None
    error: str | None = None


class CaseStore:
    """A case directory. Open with ``CaseStore.open(dir, create=True)``; close when done."""

    def __init__(self, root: Path, conn: sqlite3.Connection) -> None:
        self.root = root
        self.conn = conn
        self._lock_fd: int | None = None

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path, *, create: bool = False) -> CaseStore:
        """Open (or create) the case at ``root``.

        Raises StoreError when ``root`` is not a case (and ``create`` is false), is a file, or
        was written by a newer reclaim.
        """
        root = Path(root)
        db = root / DB_NAME
        if root.exists() and not root.is_dir():
            raise StoreError(f"{root} is a file, not a case directory")
        if not db.exists():
            if not create:
                raise StoreError(f"{root} is not a reclaim case (no {DB_NAME}); run a scan first")
            if root.exists() and any(root.iterdir()):
                raise StoreError(
                    f"{root} exists and is not empty; choose a new folder for the case"
                )
            root.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(db, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.executescript(_SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{db}: not a readable case database ({e})") from e
        if row is None:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?), ('created_at', ?), "
                "('created_by', ?)",
                (str(SCHEMA_VERSION), now_iso(), f"reclaim {__version__}"),
            )
        elif int(row[0]) > SCHEMA_VERSION:
            conn.close()
            raise StoreError(f"{root} was written by a newer reclaim (schema {row[0]}); upgrade")
        return cls(root, conn)

    def close(self) -> None:
        self.release_lock()
        self.conn.close()

    def __enter__(self) -> CaseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def acquire_lock(self) -> None:
        """Exclusive writer lock (one scan per case at a time); freed by the OS if we die."""
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(fd)
            raise StoreError(
                f"another reclaim process is writing to {self.root}; wait for it"
            ) from e
        self._lock_fd = fd

    def release_lock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    # -- runs --------------------------------------------------------------------------------
    def start_run(self, command: str, sources: list[str]) -> int:
        cur = self.conn.execute(
            "INSERT INTO runs(command, sources, started_at, status, pid) VALUES (?,?,?,?,?)",
            (command, json.dumps(sources), now_iso(), "running", os.getpid()),
        )
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, stats: dict[str, Any]) -> None:
        self.conn.execute(
            "UPDATE runs SET finished_at=?, status=?, stats=? WHERE id=?",
            (now_iso(), status, json.dumps(stats), run_id),
        )

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
                            f"reclaim {__version__}",
                        ),
                    )
                    new_items += cur.rowcount
                    c.executemany(
                        "INSERT OR IGNORE INTO signals(item_sha256, signal, value, quality) "
                        "VALUES (?,?,?,?)",
                        [(item.sha256, n, v, q) for n, v, q in item.signals],
                    )
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
        q = self.conn.execute
        return {
            "items": q("SELECT COUNT(*) FROM items").fetchone()[0],
            "photos": q(
                "SELECT COUNT(*) FROM items WHERE kind='photo' AND error IS NULL"
            ).fetchone()[0],
            "videos": q(
                "SELECT COUNT(*) FROM items WHERE kind='video' AND error IS NULL"
            ).fetchone()[0],
            "undecodable_items": q("SELECT COUNT(*) FROM items WHERE error IS NOT NULL").fetchone()[
                0
            ],
            "sightings": q(
                "SELECT COUNT(*) FROM sightings WHERE item_sha256 IS NOT NULL"
            ).fetchone()[0],
            "missing_or_refused": q(
                "SELECT COUNT(*) FROM sightings WHERE item_sha256 IS NULL"
            ).fetchone()[0],
            "runs": q("SELECT COUNT(*) FROM runs").fetchone()[0],
        }

    def errors(self, limit: int = 1000) -> list[tuple[str, str]]:
        """(where, reason) for every place that produced no usable item, newest first."""
        rows = self.conn.execute(
            "SELECT s.locator, COALESCE(s.error, i.error) FROM sightings s "
            "LEFT JOIN items i ON i.sha256 = s.item_sha256 "
            "WHERE s.error IS NOT NULL OR i.error IS NOT NULL ORDER BY s.id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [(Locator.from_json(r[0]).display(), r[1]) for r in rows]

    def runs(self) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT id, command, sources, started_at, finished_at, status, pid, stats "
            "FROM runs ORDER BY id"
        ).fetchall()
        out = []
        for r in rows:
            status = r[5]
            if status == "running" and not _pid_alive(r[6]):
                status = "interrupted"
            out.append(
                {
                    "id": r[0],
                    "command": r[1],
                    "sources": json.loads(r[2]),
                    "started_at": r[3],
                    "finished_at": r[4],
                    "status": status,
                    "stats": json.loads(r[7]) if r[7] else None,
                }
            )
        return out

    def item_signals(self, sha256: str) -> dict[str, tuple[str, int | None]]:
        rows = self.conn.execute(
            "SELECT signal, value, quality FROM signals WHERE item_sha256=?", (sha256,)
        ).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def sightings_of(self, sha256: str) -> list[Locator]:
        rows = self.conn.execute(
            "SELECT locator FROM sightings WHERE item_sha256=? ORDER BY id", (sha256,)
        ).fetchall()
        return [Locator.from_json(r[0]) for r in rows]


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
