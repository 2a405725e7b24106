"""What every part of the case store shares: the connection, opening a case, the kernel case
lock and ``writing()``, transactions, the ``meta`` table, and rows read by column name.

``CaseBase`` is what the parts (``items``, ``faces``, ``checks``, ``decisions``) are subclasses
of; each only adds methods, so ``CaseStore`` (``case``) is their union and a part never calls
another. The one thing the base needs from a part, the run a refused writer is told to wait for,
is the abstract ``running_scan`` (the ``items`` part keeps the runs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

from reclaim import __version__
from reclaim.errors import CaseBusy, StoreError
from reclaim.store.schema import DB_NAME, SCHEMA_VERSION, apply_schema

R = TypeVar("R")

#: What wrote a row (items, faces, checks, consents and the case's ``created_by``).
TOOL = f"reclaim {__version__}"

#: Case lock files this process holds: (st_dev, st_ino) → pid (a forked child inherits the table
#: but not the locks; the pid says whose they are). See CaseBase.acquire_lock.
_HELD: dict[tuple[int, int], int] = {}
_HELD_LOCK = threading.Lock()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def named(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    """The cursor's remaining rows, each as ``{column name (or alias): value}``."""
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


@dataclasses.dataclass(frozen=True)
class Group:
    """A field filled from several columns: ``build(*their values, in this order)``."""

    columns: tuple[str, ...]
    build: Callable[..., Any]


class Columns(Generic[R]):
    """A SELECT list whose rows become ``cls`` records by column name (as the platform store's
    ``Columns``, plus fields made of several columns).

    Each column of ``sql`` is named (or aliased, ``… AS field``) after the dataclass field it
    fills, in any order; fields it leaves out take their defaults. ``casts`` convert a stored
    value into the field's type (None is left None), or are a ``Group`` of columns that one field
    is built from (a face box from its four sides). A column that fills no field is an error,
    so a renamed field cannot silently be left at its default."""

    def __init__(self, cls: type[R], sql: str, **casts: Callable[[Any], Any] | Group) -> None:
        self.cls = cls
        self.sql = sql
        self.casts = casts
        self.fields = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]

    def read(self, cur: sqlite3.Cursor) -> list[R]:
        """The cursor's remaining rows as records (names matched to fields once per query)."""
        names = [d[0] for d in cur.description]
        if len(set(names)) < len(names):
            raise TypeError(f"{self.cls.__name__}: a column is named twice in {names}")
        grouped = {c for g in self.casts.values() if isinstance(g, Group) for c in g.columns}
        unknown = set(names) - grouped - self.fields
        if unknown:
            raise TypeError(f"{self.cls.__name__} has no field {', '.join(sorted(unknown))}")
        plan: list[tuple[str, Callable[[tuple[Any, ...]], Any]]] = []
        for name, cast in self.casts.items():
            if isinstance(cast, Group):
                missing = [c for c in cast.columns if c not in names]
                if missing:
                    raise TypeError(f"{self.cls.__name__}.{name}: no column {', '.join(missing)}")
                plan.append((name, _grouped([names.index(c) for c in cast.columns], cast.build)))
        for i, name in enumerate(names):
            if name not in grouped:
                plan.append((name, _single(i, self.casts.get(name))))
        return [self.cls(**{f: get(row) for f, get in plan}) for row in cur.fetchall()]


def _single(i: int, cast: Callable[[Any], Any] | Group | None) -> Callable[[tuple[Any, ...]], Any]:
    if cast is None:
        return lambda row: row[i]
    assert not isinstance(cast, Group)
    return lambda row: None if row[i] is None else cast(row[i])


def _grouped(idx: list[int], build: Callable[..., Any]) -> Callable[[tuple[Any, ...]], Any]:
    return lambda row: build(*(row[i] for i in idx))


class CaseBase(ABC):
    """A case directory: its connection and its lock (see the module docstring)."""

    def __init__(self, root: Path, conn: sqlite3.Connection) -> None:
        self.root = root
        self.conn = conn
        self._lock_fd: int | None = None
        self._lock_id: tuple[int, int] = (0, 0)

    @abstractmethod
    def running_scan(self) -> dict[str, Any] | None:
        """The run in progress in this case, if any (``items.ItemStore``)."""

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path, *, create: bool = False) -> Self:
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
            version = apply_schema(conn)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{db}: not a readable case database ({e})") from e
        if version is None:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?), ('created_at', ?), "
                "('created_by', ?)",
                (str(SCHEMA_VERSION), now_iso(), TOOL),
            )
        elif int(version) > SCHEMA_VERSION:
            conn.close()
            raise StoreError(f"{root} was written by a newer reclaim (schema {version}); upgrade")
        return cls(root, conn)

    def close(self) -> None:
        self.release_lock()
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the case lock -----------------------------------------------------------------------
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

    def holds_lock(self) -> bool:
        """True while this store holds the case lock."""
        return self._lock_fd is not None

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

    # -- transactions and reading ------------------------------------------------------------
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

    def _records(self, cols: Columns[R], sql: str, args: tuple[Any, ...] = ()) -> list[R]:
        """``cols``' records from one query (``sql`` selects ``cols.sql``)."""
        return cols.read(self.conn.execute(sql, args))

    def _dicts(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """One query's rows as dicts keyed by column name."""
        return named(self.conn.execute(sql, args))

    def _count(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        return int(self.conn.execute(sql, args).fetchone()[0])

    # -- meta --------------------------------------------------------------------------------
    def meta_get(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def meta_set(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )
