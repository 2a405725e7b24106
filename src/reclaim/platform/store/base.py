"""What every part of the platform store shares: the connection per thread, transactions, the
one gate every statement passes (``_q``), migrations, and rows read by column name.

``StoreBase`` is abstract twice over: a backend (``backends``) supplies the connection and the
transaction, and the parts (tenants, banks, review, webhooks) supply the queries. Each part is a
subclass of it that only adds methods, so ``PlatformStore`` is their union and a part never
calls another.

The tenancy rule is checked when a part is defined: a public method takes ``tenant_id`` as its
first argument, or is marked ``@system_wide`` (called only by the service's own machinery, never
with a caller's ids). That its SQL then filters on the tenant is the part's to keep, and
``tests/test_tenant_isolation.py`` tries it.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from reclaim.errors import ReclaimError, StoreError
from reclaim.platform.migrations import LATEST, MIGRATIONS, Dialect

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


class Conflict(ReclaimError):
    """The thing being created already exists (a bank name in the tenant, a tenant name)."""


class NotFound(ReclaimError):
    """The thing named is not the tenant's (or does not exist: the two are not told apart)."""


class OutOfRange(ReclaimError):
    """An id or number outside the signed 64-bit range both databases store."""


def system_wide(fn: F) -> F:
    """Mark a store method that takes no tenant: it serves the service's own machinery
    (authentication, administration, the matcher, the webhook worker), never an endpoint's
    caller-supplied ids."""
    fn.__system_wide__ = True  # type: ignore[attr-defined]
    return fn


def named(cur: Any) -> list[dict[str, Any]]:
    """The cursor's remaining rows, each as ``{column name: value}`` (both drivers name a
    column by its alias, or by its own name without the table prefix)."""
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


class Columns(Generic[R]):
    """A SELECT list whose rows become ``cls`` records by name.

    Each column of ``sql`` is named (or aliased, ``… AS field``) after the dataclass field it
    fills, in any order; fields it leaves out take their defaults. ``casts`` convert a value the
    database stores encoded (JSON text, an INTEGER flag, a comma list) into the field's type;
    None is left None. Names are matched to fields once per query, not per row: the matcher
    loads its index through here, hundreds of thousands of rows at a time."""

    def __init__(self, cls: type[R], sql: str, **casts: Callable[[Any], Any]) -> None:
        self.cls = cls
        self.sql = sql
        self.casts = casts
        self.fields = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]

    def record(self, row: Mapping[str, Any]) -> R:
        values = dict(row)
        for name, cast in self.casts.items():
            if values[name] is not None:
                values[name] = cast(values[name])
        return self.cls(**values)

    def read(self, cur: Any) -> list[R]:
        names = [d[0] for d in cur.description]
        unknown = set(names) - set(self.fields)
        if len(set(names)) < len(names):
            raise TypeError(f"{self.cls.__name__}: a column is named twice in {names}")
        if unknown:
            raise TypeError(f"{self.cls.__name__} has no field {', '.join(sorted(unknown))}")
        order = [f for f in self.fields if f in names]  # the record's order
        pick = [names.index(f) for f in order]
        casts = [(i, self.casts[f]) for i, f in enumerate(order) if f in self.casts]
        positional = order == self.fields[: len(order)]
        out = []
        for row in cur.fetchall():
            values = [row[i] for i in pick]
            for i, cast in casts:
                if values[i] is not None:
                    values[i] = cast(values[i])
            out.append(
                self.cls(*values)
                if positional
                else self.cls(**dict(zip(order, values, strict=True)))
            )
        return out

    def read_one(self, cur: Any) -> R | None:
        rows = self.read(cur)
        return rows[0] if rows else None


class StoreBase(ABC):
    """The plumbing under every query; see the module docstring."""

    dialect: Dialect

    def __init__(self) -> None:
        self._local = threading.local()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, fn in vars(cls).items():
            if name.startswith("_") or not inspect.isfunction(fn):
                continue
            params = list(inspect.signature(fn).parameters)
            if params[1:2] != ["tenant_id"] and not getattr(fn, "__system_wide__", False):
                raise TypeError(
                    f"{cls.__name__}.{name} must take tenant_id first and filter on it in SQL, "
                    "or be marked @system_wide"
                )

    # -- backend hooks ------------------------------------------------------------------------

    @abstractmethod
    def _connect(self) -> Any: ...

    @abstractmethod
    @contextmanager
    def _transaction(
        self, conn: Any, *, log_lock: bool = False, read: bool = False
    ) -> Iterator[None]: ...

    @abstractmethod
    def _is_integrity_error(self, e: Exception) -> bool: ...

    def _sql(self, sql: str) -> str:
        return sql

    def _purge(self) -> None:
        """After a deletion that must leave the files (a revoked face shield): push it out of
        any journal the backend keeps. Best effort; nothing by default."""
        return

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- plumbing -----------------------------------------------------------------------------

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextmanager
    def tx(self, *, log_lock: bool = False, read: bool = False) -> Iterator[Any]:
        """A cursor inside one transaction (committed on success, rolled back on error).

        ``log_lock``: the transaction appends to the change log (serialised across writers);
        ``read``: it only reads (SQLite then does not take the write lock up front)."""
        conn = self._conn()
        with self._transaction(conn, log_lock=log_lock, read=read):
            cur = conn.cursor()
            try:
                yield cur
            finally:
                cur.close()

    def _q(self, cur: Any, sql: str, args: Sequence[Any] = ()) -> Any:
        """Run one statement on ``cur``; every query of the store passes here."""
        args = tuple(args)
        for a in args:
            if type(a) is int and not INT64_MIN <= a <= INT64_MAX:
                raise OutOfRange("an id or number is out of range (ids are below 2**63)")
        cur.execute(self._sql(sql), args)
        return cur

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        with self.tx(read=True) as cur:
            return self._q(cur, sql, args).fetchone()

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self.tx(read=True) as cur:
            return list(self._q(cur, sql, args).fetchall())

    def _records(self, cols: Columns[R], sql: str, args: Sequence[Any] = ()) -> list[R]:
        """``cols``' records from one read (``sql`` selects ``cols.sql``)."""
        with self.tx(read=True) as cur:
            return cols.read(self._q(cur, sql, args))

    def _dicts(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.tx(read=True) as cur:
            return named(self._q(cur, sql, args))

    def migrate(self) -> int:
        """Bring the schema to the latest version; returns the version."""
        with self.tx(log_lock=True) as cur:
            self._q(
                cur,
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                f"(version INTEGER PRIMARY KEY, applied_at {self.dialect.float} NOT NULL)",
            )
            row = self._q(cur, "SELECT MAX(version) FROM schema_migrations").fetchone()
            current = int(row[0] or 0)
            if current > LATEST:
                raise StoreError(
                    f"platform database has schema version {current}, newer than this reclaim "
                    f"knows ({LATEST}); upgrade reclaim"
                )
            for version in range(current + 1, LATEST + 1):
                for stmt in self.dialect.statements(MIGRATIONS[version - 1]):
                    self._q(cur, stmt)
                self._q(
                    cur,
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, time.time()),
                )
        return LATEST

    def schema_version(self) -> int:
        row = self._one("SELECT MAX(version) FROM schema_migrations")
        return int(row[0] or 0)
