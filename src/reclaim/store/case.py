"""SQLite (WAL) case store.

One case directory = one person's (or one investigation's) material: ``case.sqlite`` plus
``blobs/`` for bytes reclaim downloaded itself. Items are keyed by SHA-256 (the same bytes are
one item); every place an item was seen is a *sighting*. Each analysed item is written with its
signals and its sighting in one transaction, so a scan killed at any instant leaves either all of
an item or none of it, and a rerun neither loses nor duplicates anything.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reclaim import __version__
from reclaim.detectors.record import CheckResult
from reclaim.errors import CaseBusy, StoreError
from reclaim.sources.base import Locator
from reclaim.verdicts import CheckLevel

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
-- the person's decisions on items (append-only; the latest counts): reclaim.decisions
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    item_sha256 TEXT NOT NULL REFERENCES items(sha256),
    enrollment TEXT,
    decision TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL,
    decided_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_item ON decisions(item_sha256, id);
"""

# Faces and face search (issue 3). New tables only: older cases gain them when opened.
_FACE_SCHEMA = """
CREATE TABLE IF NOT EXISTS face_scans (   -- items whose faces were looked for
    item_sha256 TEXT PRIMARY KEY REFERENCES items(sha256),
    faces INTEGER NOT NULL,
    frames INTEGER NOT NULL,        -- frames looked at (1 for a still photo)
    error TEXT,                     -- why faces could not be looked for (item decoded fine)
    analyzer TEXT NOT NULL,
    analyzed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY,
    item_sha256 TEXT NOT NULL REFERENCES items(sha256),
    frame INTEGER,                  -- video/animation frame (NULL for a still photo)
    timestamp_s REAL,
    left INTEGER NOT NULL, top INTEGER NOT NULL, right INTEGER NOT NULL, bottom INTEGER NOT NULL,
    size INTEGER NOT NULL,
    detector TEXT NOT NULL,
    confidence REAL NOT NULL,
    blur REAL NOT NULL,
    pose REAL NOT NULL,
    quality REAL NOT NULL,
    descriptor BLOB NOT NULL        -- 384 little-endian float32 (descriptor v3)
);
CREATE INDEX IF NOT EXISTS faces_item ON faces(item_sha256);
CREATE TABLE IF NOT EXISTS enrollments (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS consents (
    enrollment_id INTEGER PRIMARY KEY REFERENCES enrollments(id) ON DELETE CASCADE,
    consented_by TEXT NOT NULL,
    consented_at TEXT NOT NULL,
    consent_text TEXT NOT NULL,     -- the exact text shown
    tool TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS templates (   -- face templates only, never the photos
    id INTEGER PRIMARY KEY,
    enrollment_id INTEGER NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
    descriptor BLOB NOT NULL,
    size INTEGER NOT NULL,
    blur REAL NOT NULL,
    pose REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS findings (    -- best matching face per (enrollment, item)
    id INTEGER PRIMARY KEY,
    enrollment_id INTEGER NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
    item_sha256 TEXT NOT NULL REFERENCES items(sha256),
    face_id INTEGER NOT NULL REFERENCES faces(id),
    distance REAL NOT NULL,         -- (nearest + mean) / 2 over the enrollment's templates
    nearest REAL NOT NULL,
    mean REAL NOT NULL,
    score REAL NOT NULL,
    faces_matched INTEGER NOT NULL,
    found_at TEXT NOT NULL,
    UNIQUE (enrollment_id, item_sha256)
);
CREATE TABLE IF NOT EXISTS checks (      -- is it manipulated or generated, and why (issue 6)
    item_sha256 TEXT PRIMARY KEY REFERENCES items(sha256),
    verdict TEXT NOT NULL,
    score REAL NOT NULL,            -- fused, calibrated: higher = more likely manipulated
    level TEXT NOT NULL,            -- which signals ran: "metadata" | "faces" | "full"
    record TEXT NOT NULL,           -- the check as JSON (signals with fr/en evidence)
    analyzer TEXT NOT NULL,
    checked_at TEXT NOT NULL
);
"""


#: Case lock files this process holds: (st_dev, st_ino) → pid (a forked child inherits the table
#: but not the locks; the pid says whose they are). See CaseStore.acquire_lock.
_HELD: dict[tuple[int, int], int] = {}
_HELD_LOCK = threading.Lock()


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
    faces: list[FaceRecord] | None = None  # None: faces were not looked for
    face_frames: int = 0
    face_error: str | None = None
    check: CheckResult | None = None  # None: not checked (reclaim.detectors.check.check_media)


@dataclass
class FaceRecord:
    """One detected face, ready to store (``descriptor``: 1,024 bytes, 256 float32 LE)."""

    box: tuple[int, int, int, int]
    size: int
    detector: str
    confidence: float
    blur: float
    pose: float
    quality: float
    descriptor: bytes
    frame: int | None = None
    timestamp_s: float | None = None


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
        self._lock_id: tuple[int, int] = (0, 0)

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
            conn.executescript(_FACE_SCHEMA)
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
        """Exclusive writer lock (one writer per case at a time), a kernel lock on ``.lock``
        that is released the instant the process holding it dies, kill -9 included.

        A POSIX record lock (``fcntl.lockf``, ``F_SETLK``), not ``flock``: a ``flock`` lock
        belongs to the open file, which the scan's forked worker processes share, so workers
        outliving a killed scan kept the case locked and the rerun was refused. A record lock
        belongs to the process: forked children never hold it, and it goes with its holder.

        Record locks do not exclude the same process, and closing *any* descriptor of the file
        drops them; so the process keeps a table of the lock files it holds (by device and inode,
        looked up without opening the file) and refuses a second writer of its own before
        touching the file. Raises StoreError when the case is being written.
        """
        path = self.root / ".lock"
        busy = StoreError(f"another reclaim process is writing to {self.root}; wait for it")
        with _HELD_LOCK:
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(path)
                if _HELD.get((st.st_dev, st.st_ino)) == os.getpid():
                    raise busy
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EACCES, errno.EAGAIN):
                    raise busy from e
                raise StoreError(f"{path}: cannot lock ({e.strerror or e})") from e
            st = os.fstat(fd)
            _HELD[(st.st_dev, st.st_ino)] = os.getpid()
            self._lock_fd = fd
            self._lock_id = (st.st_dev, st.st_ino)

    def release_lock(self) -> None:
        with _HELD_LOCK:
            if self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    fcntl.lockf(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = None
                _HELD.pop(self._lock_id, None)

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
                    if item.faces is not None or item.face_error is not None:
                        self._insert_faces(c, item.sha256, item, ts)
                    if item.check is not None:
                        self._insert_check(c, item.sha256, item.check, ts, replace=False)
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

    # -- faces and face search (issue 3) ---------------------------------------------------------
    def _insert_faces(self, c: sqlite3.Connection, sha256: str, item: ItemRecord, ts: str) -> int:
        """Record the faces of one item once (a later analysis of the same bytes adds nothing)."""
        faces = item.faces or []
        cur = c.execute(
            "INSERT OR IGNORE INTO face_scans(item_sha256, faces, frames, error, analyzer, "
            "analyzed_at) VALUES (?,?,?,?,?,?)",
            (sha256, len(faces), item.face_frames, item.face_error, f"reclaim {__version__}", ts),
        )
        if cur.rowcount == 0 or not faces:
            return 0
        c.executemany(
            "INSERT INTO faces(item_sha256, frame, timestamp_s, left, top, right, bottom, size, "
            "detector, confidence, blur, pose, quality, descriptor) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (sha256, f.frame, f.timestamp_s, *f.box, f.size, f.detector, f.confidence,
                 f.blur, f.pose, f.quality, f.descriptor)
                for f in faces
            ],
        )  # fmt: skip
        return len(faces)

    @staticmethod
    def _insert_check(
        c: sqlite3.Connection, sha256: str, check: CheckResult, ts: str, *, replace: bool
    ) -> None:
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        c.execute(
            f"{verb} INTO checks(item_sha256, verdict, score, level, record, analyzer, "
            "checked_at) VALUES (?,?,?,?,?,?,?)",
            (
                sha256,
                check.verdict.value,
                float(check.score),
                (check.level or CheckLevel.METADATA).value,
                json.dumps(check.to_json(), ensure_ascii=False, default=str),
                f"reclaim {__version__}",
                ts,
            ),
        )

    def record_checks(self, checks: Iterable[tuple[str, CheckResult]]) -> int:
        """Store (or replace) checks of items already in the case; returns how many."""
        ts = now_iso()
        n = 0
        with self.transaction() as c:
            for sha, rec in checks:
                self._insert_check(c, sha, rec, ts, replace=True)
                n += 1
        return n

    def item_check(self, sha256: str) -> CheckResult | None:
        row = self.conn.execute(
            "SELECT record FROM checks WHERE item_sha256=?", (sha256,)
        ).fetchone()
        return CheckResult.from_json(json.loads(row[0])) if row else None

    def checks_summary(self) -> dict[str, dict[str, Any]]:
        """Verdict, score and level of every checked item, by SHA-256."""
        rows = self.conn.execute("SELECT item_sha256, verdict, score, level FROM checks")
        return {r[0]: {"verdict": r[1], "score": r[2], "level": r[3]} for r in rows}

    def items_to_check(self, level: str) -> list[str]:
        """Decoded photos and videos not yet checked at ``level`` (or a fuller one)."""
        order = {"metadata": 0, "faces": 1, "full": 2}
        rows = self.conn.execute(
            "SELECT i.sha256, c.level FROM items i LEFT JOIN checks c ON c.item_sha256 = i.sha256 "
            "WHERE i.kind IN ('photo', 'video') AND i.error IS NULL "
            "ORDER BY i.first_seen_at, i.sha256"
        ).fetchall()
        want = order[level]
        return [r[0] for r in rows if r[1] is None or order.get(r[1], -1) < want]

    def record_faces(self, items: Iterable[ItemRecord]) -> int:
        """Store faces found for items already in the case (backfill); returns faces added."""
        ts = now_iso()
        with self.transaction() as c:
            return sum(
                self._insert_faces(c, it.sha256, it, ts)
                for it in items
                if it.faces is not None or it.face_error is not None
            )

    def items_without_faces(self) -> list[str]:
        """Decoded photos and videos whose faces were never looked for, oldest first."""
        rows = self.conn.execute(
            "SELECT sha256 FROM items i WHERE kind IN ('photo', 'video') AND error IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM face_scans f WHERE f.item_sha256 = i.sha256) "
            "ORDER BY first_seen_at, sha256"
        ).fetchall()
        return [r[0] for r in rows]

    def item_blob(self, sha256: str) -> str | None:
        row = self.conn.execute("SELECT blob FROM items WHERE sha256=?", (sha256,)).fetchone()
        return row[0] if row else None

    def face_counts(self) -> dict[str, int]:
        q = self.conn.execute
        return {
            "items_searched_for_faces": q("SELECT COUNT(*) FROM face_scans").fetchone()[0],
            "faces": q("SELECT COUNT(*) FROM faces").fetchone()[0],
            "enrollments": q("SELECT COUNT(*) FROM enrollments").fetchone()[0],
            "findings": q("SELECT COUNT(*) FROM findings").fetchone()[0],
        }

    def max_face_id(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM faces").fetchone()[0])

    def count_faces_upto(self, face_id: int) -> int:
        return int(
            self.conn.execute("SELECT COUNT(*) FROM faces WHERE id <= ?", (face_id,)).fetchone()[0]
        )

    def iter_face_descriptors(
        self, after_id: int = 0, batch: int = 20_000
    ) -> Iterator[list[tuple[int, bytes]]]:
        """(face id, descriptor bytes) of faces with id > ``after_id``, in id order, in batches."""
        last = after_id
        while True:
            rows = self.conn.execute(
                "SELECT id, descriptor FROM faces WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            yield [(int(r[0]), bytes(r[1])) for r in rows]
            last = int(rows[-1][0])

    def face_items(self, face_ids: Iterable[int]) -> dict[int, str]:
        """Item sha256 of each face id."""
        ids = list(face_ids)
        out: dict[int, str] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            q = ",".join("?" * len(part))
            for fid, sha in self.conn.execute(
                f"SELECT id, item_sha256 FROM faces WHERE id IN ({q})", part
            ):
                out[int(fid)] = sha
        return out

    def item_faces(self, sha256: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT id, frame, timestamp_s, left, top, right, bottom, size, detector, confidence, "
            "blur, pose, quality FROM faces WHERE item_sha256=? ORDER BY id",
            (sha256,),
        ).fetchall()
        return [
            {
                "face_id": r[0],
                "frame": r[1],
                "timestamp_s": r[2],
                "box": [r[3], r[4], r[5], r[6]],
                "size": r[7],
                "detector": r[8],
                "confidence": r[9],
                "blur": r[10],
                "pose": r[11],
                "quality": r[12],
            }
            for r in rows
        ]

    def meta_get(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def meta_set(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    def has_enrollments(self) -> bool:
        return self.conn.execute("SELECT 1 FROM enrollments LIMIT 1").fetchone() is not None

    def add_enrollment(
        self,
        name: str,
        consented_by: str,
        consent_text: str,
        templates: list[tuple[bytes, int, float, float]],
    ) -> int:
        """Store an enrollment, its consent record and its templates (descriptor, size, blur,
        pose) in one transaction. Raises StoreError when the name is taken."""
        ts = now_iso()
        with self.transaction() as c:
            if c.execute("SELECT 1 FROM enrollments WHERE name=?", (name,)).fetchone():
                raise StoreError(
                    f"{name!r} is already enrolled in this case; unenroll first to replace it"
                )
            cur = c.execute("INSERT INTO enrollments(name, created_at) VALUES (?, ?)", (name, ts))
            eid = int(cur.lastrowid or 0)
            c.execute(
                "INSERT INTO consents(enrollment_id, consented_by, consented_at, consent_text, "
                "tool) VALUES (?,?,?,?,?)",
                (eid, consented_by, ts, consent_text, f"reclaim {__version__}"),
            )
            c.executemany(
                "INSERT INTO templates(enrollment_id, descriptor, size, blur, pose) "
                "VALUES (?,?,?,?,?)",
                [(eid, d, size, blur, pose) for d, size, blur, pose in templates],
            )
        return eid

    def enrollments(self) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT e.id, e.name, e.created_at, c.consented_by, c.consented_at, c.consent_text, "
            "(SELECT COUNT(*) FROM templates t WHERE t.enrollment_id = e.id), "
            "(SELECT COUNT(*) FROM findings f WHERE f.enrollment_id = e.id) "
            "FROM enrollments e LEFT JOIN consents c ON c.enrollment_id = e.id ORDER BY e.id"
        ).fetchall()
        return [
            {
                "id": r[0],
                "name": r[1],
                "created_at": r[2],
                "consented_by": r[3],
                "consented_at": r[4],
                "consent_text": r[5],
                "templates": r[6],
                "findings": r[7],
            }
            for r in rows
        ]

    def enrollment_templates(self, enrollment_id: int) -> list[bytes]:
        rows = self.conn.execute(
            "SELECT descriptor FROM templates WHERE enrollment_id=? ORDER BY id", (enrollment_id,)
        ).fetchall()
        return [bytes(r[0]) for r in rows]

    def delete_enrollment(self, name: str) -> bool:
        """Delete an enrollment for good: templates, consent record and findings.

        ``secure_delete`` overwrites the freed content with zeros, then the WAL is checkpointed
        and truncated and the database rebuilt (VACUUM), so no copy of the templates is left in
        ``case.sqlite`` or its ``-wal`` file. Returns False when no such enrollment exists.
        Raises StoreError when another connection keeps the WAL from being emptied.
        """
        self.conn.execute("PRAGMA secure_delete=ON")
        with self.transaction() as c:
            row = c.execute("SELECT id FROM enrollments WHERE name=?", (name,)).fetchone()
            if row is None:
                return False
            eid = int(row[0])
            for table in ("findings", "templates", "consents"):
                c.execute(f"DELETE FROM {table} WHERE enrollment_id=?", (eid,))
            c.execute("DELETE FROM enrollments WHERE id=?", (eid,))
        self._wipe_wal()
        self.conn.execute("VACUUM")
        self._wipe_wal()
        return True

    def _wipe_wal(self) -> None:
        busy, _, _ = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise StoreError(
                "the deletion is done but another program still reads this case, so old copies "
                "remain in its write-ahead log; close it and run the command again"
            )

    def upsert_findings(
        self, rows: Iterable[tuple[int, str, int, float, float, float, float, int]]
    ) -> int:
        """Write findings (enrollment id, item sha256, face id, distance, nearest, mean, score,
        faces matched), keeping the closest face per (enrollment, item). Returns how many
        (enrollment, item) pairs were new."""
        ts = now_iso()
        new = 0
        with self.transaction() as c:
            for eid, sha, fid, dist, nearest, mean, score, n in rows:
                existed = c.execute(
                    "SELECT 1 FROM findings WHERE enrollment_id=? AND item_sha256=?", (eid, sha)
                ).fetchone()
                c.execute(
                    "INSERT INTO findings(enrollment_id, item_sha256, face_id, distance, nearest, "
                    "mean, score, faces_matched, found_at) VALUES (?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT(enrollment_id, item_sha256) DO UPDATE SET "
                    "faces_matched=MAX(faces_matched, excluded.faces_matched), "
                    "face_id=CASE WHEN excluded.distance < distance THEN excluded.face_id "
                    "ELSE face_id END, "
                    "nearest=CASE WHEN excluded.distance < distance THEN excluded.nearest "
                    "ELSE nearest END, "
                    "mean=CASE WHEN excluded.distance < distance THEN excluded.mean ELSE mean END, "
                    "score=CASE WHEN excluded.distance < distance THEN excluded.score "
                    "ELSE score END, "
                    "distance=MIN(distance, excluded.distance)",
                    (eid, sha, fid, dist, nearest, mean, score, n, ts),
                )
                new += existed is None
        return new

    def findings(self, name: str | None = None) -> list[dict[str, Any]]:
        """Findings, best (highest score, then smallest distance) first."""
        sql = (
            "SELECT e.name, f.item_sha256, f.face_id, f.distance, f.nearest, f.mean, f.score, "
            "f.faces_matched, f.found_at, i.kind, i.format, fa.left, fa.top, fa.right, "
            "fa.bottom, fa.frame, fa.timestamp_s, fa.size, fa.detector, "
            "(SELECT s.locator FROM sightings s WHERE s.item_sha256 = f.item_sha256 "
            " ORDER BY s.id LIMIT 1), "
            "(SELECT COUNT(*) FROM sightings s WHERE s.item_sha256 = f.item_sha256) "
            "FROM findings f JOIN enrollments e ON e.id = f.enrollment_id "
            "JOIN items i ON i.sha256 = f.item_sha256 JOIN faces fa ON fa.id = f.face_id "
        )
        args: tuple[Any, ...] = ()
        if name is not None:
            sql += "WHERE e.name = ? "
            args = (name,)
        sql += "ORDER BY f.score DESC, f.distance ASC, f.item_sha256"
        out = []
        for r in self.conn.execute(sql, args).fetchall():
            out.append(
                {
                    "enrollment": r[0],
                    "item_sha256": r[1],
                    "face_id": r[2],
                    "distance": r[3],
                    "nearest": r[4],
                    "mean": r[5],
                    "score": r[6],
                    "faces_matched": r[7],
                    "found_at": r[8],
                    "kind": r[9],
                    "format": r[10],
                    "box": [r[11], r[12], r[13], r[14]],
                    "frame": r[15],
                    "timestamp_s": r[16],
                    "face_size": r[17],
                    "detector": r[18],
                    "locator": Locator.from_json(r[19]) if r[19] else None,
                    "sightings": r[20],
                }
            )
        return out

    # -- for the domain operations (issue 19): their SQL, moved here from decisions.py,
    # report/pack.py and web/app.py, and the case lock as they take it. One block, so that the
    # file can be split by concern later. ---------------------------------------------------------
    def holds_lock(self) -> bool:
        """True while this store holds the case lock."""
        return self._lock_fd is not None

    def running_scan(self) -> dict[str, Any] | None:
        """The run (scan, fetch, faces backfill) in progress in this case, if any: its owner
        process is alive and it has not finished."""
        return next((r for r in reversed(self.runs()) if r["status"] == "running"), None)

    @contextlib.contextmanager
    def writing(self, wait_s: float = 0.0) -> Iterator[None]:
        """Hold the case lock for one write of a domain operation, then release it.

        Re-entrant: a store that holds the lock already keeps it (and keeps holding it after).
        Waits up to ``wait_s`` seconds for a short holder (another enrollment, a deletion). A
        scan holds the lock for its whole run: then CaseBusy names the run, so the person
        knows what to wait for. Any other refusal is acquire_lock's StoreError.
        """
        if self.holds_lock():
            yield
            return
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self.acquire_lock()
                break
            except StoreError as e:
                if time.monotonic() >= deadline:
                    run = self.running_scan()
                    if run is None:
                        raise
                    raise CaseBusy(
                        f"a scan is running in this case (run #{run['id']}, {run['command']}, "
                        f"started {run['started_at']}); try again when it has finished"
                    ) from e
                time.sleep(0.05)
        try:
            yield
        finally:
            self.release_lock()

    def add_decision(
        self,
        item_sha256: str,
        enrollment: str | None,
        decision: str,
        note: str,
        actor: str,
        decided_at: str,
    ) -> None:
        """Append a decision on an item (committed before returning)."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO decisions(item_sha256, enrollment, decision, note, actor, "
                "decided_at) VALUES (?,?,?,?,?,?)",
                (item_sha256, enrollment, decision, note, actor, decided_at),
            )

    def latest_decisions(self) -> list[dict[str, Any]]:
        """The latest decision per item (item_sha256, decision, note, actor, decided_at,
        enrollment)."""
        cur = self.conn.execute(
            "SELECT item_sha256, decision, note, actor, decided_at, enrollment FROM decisions d "
            "WHERE id = (SELECT MAX(id) FROM decisions WHERE item_sha256 = d.item_sha256)"
        )
        return self._dicts(cur)

    def item_row(self, sha256: str) -> dict[str, Any] | None:
        """An item's stored columns (sha256, md5, size, kind, format, width, height,
        duration_s, first_seen_at, blob, error); None when it is not in the case."""
        cur = self.conn.execute(
            "SELECT sha256, md5, size, kind, format, width, height, duration_s, first_seen_at, "
            "blob, error FROM items WHERE sha256=?",
            (sha256,),
        )
        rows = self._dicts(cur)
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
        cur = self.conn.execute(
            "SELECT item_sha256, value, quality FROM signals WHERE signal='pdq' "
            "AND item_sha256 IS NOT ?",
            (exclude,),
        )
        return self._dicts(cur)

    @staticmethod
    def _dicts(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
        """A query's rows as dicts keyed by column name."""
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


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
