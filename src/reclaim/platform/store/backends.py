"""``PlatformStore`` (every part composed) and its two backends, SQLite and PostgreSQL.

The backends differ only in how they connect, open a transaction, recognise an integrity error
and write a placeholder; the column types they spell differently are in ``migrations``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reclaim.errors import StoreError
from reclaim.platform.migrations import POSTGRES, SQLITE
from reclaim.platform.store.banks import BankStore
from reclaim.platform.store.base import system_wide
from reclaim.platform.store.exchanges import ExchangeStore
from reclaim.platform.store.review import ReviewStore
from reclaim.platform.store.shields import ShieldStore
from reclaim.platform.store.tenants import TenantStore
from reclaim.platform.store.webhooks import WebhookStore


class PlatformStore(TenantStore, BankStore, ReviewStore, WebhookStore, ShieldStore, ExchangeStore):
    """Every query of the service, in SQL both backends speak."""


class SqlitePlatformStore(PlatformStore):
    dialect = SQLITE

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
        except sqlite3.Error as e:
            raise StoreError(f"cannot open platform database {self.path}: {e}") from e
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten in the file, not left in free pages (a revoked shield).
        conn.execute("PRAGMA secure_delete=ON")
        return conn

    def _purge(self) -> None:
        # Copy the WAL into the database file and empty it, so that the overwritten pages are
        # the only ones left; skipped (not an error) while another connection holds it.
        with contextlib.suppress(sqlite3.Error):
            self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextmanager
    def _transaction(
        self, conn: Any, *, log_lock: bool = False, read: bool = False
    ) -> Iterator[None]:
        # One writer at a time (IMMEDIATE): change-log sequence numbers commit in order, and a
        # deferred transaction never fails upgrading to a write lock.
        conn.execute("BEGIN" if read else "BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _is_integrity_error(self, e: Exception) -> bool:
        return isinstance(e, sqlite3.IntegrityError)


class PostgresPlatformStore(PlatformStore):
    """PostgreSQL through psycopg 3. ``schema`` (optional) confines tables to one schema."""

    dialect = POSTGRES
    LOG_LOCK = 7_402_301  # advisory lock key: change-log writers commit in sequence order

    def __init__(self, dsn: str, schema: str | None = None) -> None:
        super().__init__()
        self.dsn = dsn
        self.schema = schema

    def _connect(self) -> Any:
        try:
            import psycopg
        except ImportError as e:  # pragma: no cover - depends on the install
            raise StoreError("PostgreSQL needs psycopg: pip install 'psycopg[binary]'") from e
        try:
            conn = psycopg.connect(self.dsn, autocommit=True)
        except psycopg.Error as e:
            raise StoreError(f"cannot connect to PostgreSQL: {str(e).splitlines()[0]}") from e
        if self.schema:
            from psycopg import sql

            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        return conn

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    @contextmanager
    def _transaction(
        self, conn: Any, *, log_lock: bool = False, read: bool = False
    ) -> Iterator[None]:
        with conn.transaction():
            if log_lock:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.LOG_LOCK,))
            yield

    def _is_integrity_error(self, e: Exception) -> bool:
        import psycopg

        return isinstance(e, psycopg.IntegrityError)

    @system_wide
    def drop_schema(self) -> None:
        """Tests: drop this store's schema and everything in it."""
        if not self.schema:
            raise StoreError("drop_schema needs a schema")
        from psycopg import sql

        conn = self._conn()
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
        )


def open_store(db: str) -> PlatformStore:
    """SQLite for a path, PostgreSQL for a ``postgresql://`` / ``postgres://`` URL; migrated."""
    store: PlatformStore
    if db.startswith(("postgresql://", "postgres://")):
        store = PostgresPlatformStore(db)
    else:
        store = SqlitePlatformStore(db)
    store.migrate()
    return store
