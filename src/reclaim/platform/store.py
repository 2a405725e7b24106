"""The platform service's data layer: one interface, SQLite and PostgreSQL behind it.

``PlatformStore`` holds every query in portable SQL (``?`` placeholders, ``RETURNING``); the two
backends differ only in how they connect, open a transaction and spell a few column types (see
``migrations``). ``open_store("x.db")`` opens SQLite (WAL, one connection per thread);
``open_store("postgresql://…")`` opens PostgreSQL through psycopg 3.

Tenancy by construction: every method that reads, changes or deletes a tenant's data takes the
tenant id as its first argument, and every statement it runs filters on that id in the SQL itself
(and on the bank's id where a bank is named) — never on a row id alone, and never on a tenant id
taken from an object the caller hands in. A bank, content item, signal, review item, decision,
webhook or token of another tenant is simply "not found", and is left as it was. The schema
holds the same rule a second time (``migrations``: a row's tenant must be its parent's).

A few methods are system-wide by design and are called only by the service's own machinery,
never with a caller's ids: ``token_for_secret`` (authentication), ``all_banks``,
``live_signals``, ``changes_since`` and ``last_change`` (the matcher's index, which filters every
result by the asking tenant's banks), and ``due_deliveries``, ``record_attempt`` and
``pending_deliveries`` (the webhook worker).

Ids are 64-bit: an integer argument outside the signed 64-bit range is refused with
``OutOfRange`` before it reaches either database (SQLite raises OverflowError on it, PostgreSQL
would compare it as a numeric).

Tokens are stored as SHA-256 of the secret (they are 256-bit random, so a fast hash suffices)
and compared in constant time. The change log (``changes``) lets matchers in any process follow
bank edits incrementally: writers append under one lock so sequence numbers commit in order.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reclaim.errors import ReclaimError, StoreError
from reclaim.platform.migrations import LATEST, MIGRATIONS, POSTGRES, SQLITE, Dialect

__all__ = [
    "SCOPES",
    "Bank",
    "Change",
    "Conflict",
    "Content",
    "Delivery",
    "NotFound",
    "OutOfRange",
    "PlatformStore",
    "PostgresPlatformStore",
    "ReviewItem",
    "SqlitePlatformStore",
    "Token",
    "Webhook",
    "open_store",
]

SCOPES = ("hash", "match", "curate", "review", "tokens")
TOKEN_PREFIX = "rcl_"


class Conflict(ReclaimError):
    """The thing being created already exists (a bank name in the tenant, a tenant name)."""


class NotFound(ReclaimError):
    """The thing named is not the tenant's (or does not exist: the two are not told apart)."""


class OutOfRange(ReclaimError):
    """An id or number outside the signed 64-bit range both databases store."""


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Token:
    id: int
    tenant_id: int
    tenant: str
    name: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class Bank:
    id: int
    tenant_id: int
    name: str
    enabled_ratio: float
    pdq_distance: int

    def as_hma(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "matching_enabled_ratio": self.enabled_ratio,
            "pdq_distance": self.pdq_distance,
        }


@dataclass
class Content:
    id: int
    bank_id: int
    bank: str
    tenant_id: int
    metadata: dict[str, Any]
    enabled: bool
    created_at: float
    signals: list[tuple[str, str, int | None]] = field(default_factory=list)


@dataclass(frozen=True)
class Change:
    seq: int
    op: str  # "add" | "del"
    signal_id: int
    signal_type: str | None = None
    value: str | None = None
    quality: int | None = None
    bank_id: int | None = None
    content_id: int | None = None


@dataclass
class ReviewItem:
    id: int
    tenant_id: int
    created_at: float
    status: str
    reason: str
    sha256: str | None
    media_kind: str | None
    signals: dict[str, Any]
    matches: dict[str, Any]
    has_preview: bool
    submitted_by: str | None
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            "status": self.status,
            "reason": self.reason,
            "sha256": self.sha256,
            "media_kind": self.media_kind,
            "signals": self.signals,
            "matches": self.matches,
            "has_preview": self.has_preview,
            "submitted_by": self.submitted_by,
            "decisions": self.decisions,
        }


@dataclass(frozen=True)
class Webhook:
    id: int
    tenant_id: int
    url: str
    secret: str
    active: bool


@dataclass(frozen=True)
class Delivery:
    id: int
    webhook_id: int
    tenant_id: int
    event: str
    payload: str
    status: str
    attempts: int
    url: str
    secret: str


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class PlatformStore(ABC):
    """Every query of the service, in SQL both backends speak."""

    dialect: Dialect

    def __init__(self) -> None:
        self._local = threading.local()

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

    # -- tenants and tokens ---------------------------------------------------------------------

    def create_tenant(self, name: str) -> int:
        try:
            with self.tx() as cur:
                row = self._q(
                    cur,
                    "INSERT INTO tenants (name, created_at) VALUES (?, ?) RETURNING id",
                    (name, time.time()),
                ).fetchone()
                return int(row[0])
        except Exception as e:
            if self._is_integrity_error(e):
                raise Conflict(f"tenant {name!r} already exists") from e
            raise

    def tenant_id(self, name: str) -> int | None:
        row = self._one("SELECT id FROM tenants WHERE name = ?", (name,))
        return int(row[0]) if row else None

    def ensure_tenant(self, name: str) -> int:
        tid = self.tenant_id(name)
        return tid if tid is not None else self.create_tenant(name)

    def create_token(self, tenant_id: int, name: str, scopes: Sequence[str]) -> str:
        """A new API token for the tenant; returns the secret (shown once, stored hashed)."""
        bad = sorted(set(scopes) - set(SCOPES))
        if bad or not scopes:
            raise ValueError(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(bad)}")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.tx() as cur:
            self._q(
                cur,
                "INSERT INTO tokens (tenant_id, name, token_hash, scopes, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (tenant_id, name, hash_token(secret), ",".join(sorted(set(scopes))), time.time()),
            )
        return secret

    def token_for_secret(self, secret: str) -> Token | None:
        """System-wide (authentication): the live token whose secret this is."""
        digest = hash_token(secret)
        row = self._one(
            "SELECT t.id, t.tenant_id, n.name, t.name, t.scopes, t.token_hash FROM tokens t "
            "JOIN tenants n ON n.id = t.tenant_id WHERE t.token_hash = ? AND t.revoked_at IS NULL",
            (digest,),
        )
        if row is None or not hmac.compare_digest(str(row[5]), digest):
            return None
        return Token(
            int(row[0]), int(row[1]), str(row[2]), str(row[3]), frozenset(row[4].split(","))
        )

    def list_tokens(self, tenant_id: int) -> list[dict[str, Any]]:
        """The tenant's tokens: id, name, scopes, created_at, revoked_at (never the secret or
        its hash)."""
        rows = self._all(
            "SELECT id, name, scopes, created_at, revoked_at FROM tokens WHERE tenant_id = ? "
            "ORDER BY id",
            (tenant_id,),
        )
        return [
            {
                "id": int(r[0]),
                "name": r[1],
                "scopes": sorted(str(r[2]).split(",")),
                "created_at": float(r[3]),
                "revoked_at": None if r[4] is None else float(r[4]),
            }
            for r in rows
        ]

    def revoke_token(self, tenant_id: int, token_id: int) -> bool:
        """Revoke one of the tenant's tokens; False when it is not the tenant's or was revoked."""
        with self.tx() as cur:
            cur = self._q(
                cur,
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND tenant_id = ? "
                "AND revoked_at IS NULL",
                (time.time(), token_id, tenant_id),
            )
            return bool(cur.rowcount)

    # -- banks --------------------------------------------------------------------------------

    _BANK_COLS = "id, tenant_id, name, enabled_ratio, pdq_distance"

    @staticmethod
    def _bank(row: Any) -> Bank:
        return Bank(int(row[0]), int(row[1]), str(row[2]), float(row[3]), int(row[4]))

    def create_bank(
        self, tenant_id: int, name: str, enabled_ratio: float = 1.0, pdq_distance: int = 31
    ) -> Bank:
        try:
            with self.tx() as cur:
                row = self._q(
                    cur,
                    "INSERT INTO banks (tenant_id, name, enabled_ratio, pdq_distance, created_at) "
                    f"VALUES (?, ?, ?, ?, ?) RETURNING {self._BANK_COLS}",
                    (tenant_id, name, enabled_ratio, pdq_distance, time.time()),
                ).fetchone()
                return self._bank(row)
        except Exception as e:
            if self._is_integrity_error(e):
                raise Conflict(f"bank {name!r} already exists") from e
            raise

    def list_banks(self, tenant_id: int) -> list[Bank]:
        rows = self._all(
            f"SELECT {self._BANK_COLS} FROM banks WHERE tenant_id = ? ORDER BY name", (tenant_id,)
        )
        return [self._bank(r) for r in rows]

    def all_banks(self) -> list[Bank]:
        """System-wide (the matcher): every tenant's banks."""
        return [self._bank(r) for r in self._all(f"SELECT {self._BANK_COLS} FROM banks")]

    def get_bank(self, tenant_id: int, name: str) -> Bank | None:
        row = self._one(
            f"SELECT {self._BANK_COLS} FROM banks WHERE tenant_id = ? AND name = ?",
            (tenant_id, name),
        )
        return self._bank(row) if row else None

    def update_bank(
        self,
        tenant_id: int,
        bank: Bank,
        *,
        name: str | None = None,
        enabled_ratio: float | None = None,
        pdq_distance: int | None = None,
    ) -> Bank | None:
        """Change the tenant's bank; None when ``bank`` is not the tenant's."""
        try:
            with self.tx(log_lock=True) as cur:
                row = self._q(
                    cur,
                    "UPDATE banks SET name = ?, enabled_ratio = ?, pdq_distance = ? "
                    f"WHERE id = ? AND tenant_id = ? RETURNING {self._BANK_COLS}",
                    (
                        bank.name if name is None else name,
                        bank.enabled_ratio if enabled_ratio is None else enabled_ratio,
                        bank.pdq_distance if pdq_distance is None else pdq_distance,
                        bank.id,
                        tenant_id,
                    ),
                ).fetchone()
                if row is None:
                    return None
                self._q(
                    cur,
                    "INSERT INTO changes (signal_id, op, at) VALUES (?, ?, ?)",
                    (0, "bank", time.time()),
                )
                return self._bank(row)
        except Exception as e:
            if self._is_integrity_error(e):
                raise Conflict(f"bank {name!r} already exists") from e
            raise

    def delete_bank(self, tenant_id: int, bank: Bank) -> int | None:
        """Delete the tenant's bank and its content; the number of content items removed, or
        None when ``bank`` is not the tenant's."""
        scope = (bank.id, tenant_id)
        with self.tx(log_lock=True) as cur:
            if not self._q(
                cur, "SELECT id FROM banks WHERE id = ? AND tenant_id = ?", scope
            ).fetchone():
                return None
            sids = [
                int(r[0])
                for r in self._q(
                    cur, "SELECT id FROM signals WHERE bank_id = ? AND tenant_id = ?", scope
                ).fetchall()
            ]
            n = self._q(
                cur, "SELECT COUNT(*) FROM contents WHERE bank_id = ? AND tenant_id = ?", scope
            ).fetchone()[0]
            self._log_changes(cur, sids, "del")
            self._q(cur, "DELETE FROM signals WHERE bank_id = ? AND tenant_id = ?", scope)
            self._q(cur, "DELETE FROM contents WHERE bank_id = ? AND tenant_id = ?", scope)
            self._q(cur, "DELETE FROM banks WHERE id = ? AND tenant_id = ?", scope)
            self._q(
                cur,
                "INSERT INTO changes (signal_id, op, at) VALUES (?, ?, ?)",
                (0, "bank", time.time()),
            )
            return int(n)

    # -- content ------------------------------------------------------------------------------

    def _log_changes(self, cur: Any, signal_ids: Sequence[int], op: str) -> None:
        if not signal_ids:
            return
        now = time.time()
        cur.executemany(
            self._sql("INSERT INTO changes (signal_id, op, at) VALUES (?, ?, ?)"),
            [(sid, op, now) for sid in signal_ids],
        )

    def add_contents(
        self,
        tenant_id: int,
        bank: Bank,
        items: Sequence[tuple[Sequence[tuple[str, str, int | None]], dict[str, Any]]],
    ) -> list[int]:
        """Add content items (each: its signals and metadata) to the tenant's bank in one
        transaction; their ids. NotFound when ``bank`` is not the tenant's."""
        now = time.time()
        out: list[int] = []
        scope = (bank.id, tenant_id)
        with self.tx(log_lock=True) as cur:
            if not self._q(
                cur, "SELECT id FROM banks WHERE id = ? AND tenant_id = ?", scope
            ).fetchone():
                raise NotFound(f"bank {bank.name!r} not found")
            for signals, metadata in items:
                cid = int(
                    self._q(
                        cur,
                        "INSERT INTO contents (bank_id, tenant_id, metadata, created_at) "
                        "VALUES (?, ?, ?, ?) RETURNING id",
                        (*scope, json.dumps(metadata, sort_keys=True), now),
                    ).fetchone()[0]
                )
                sids = []
                for st, value, quality in signals:
                    row = self._q(
                        cur,
                        "INSERT INTO signals (content_id, bank_id, tenant_id, signal_type, value, "
                        "quality) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                        (cid, *scope, st, value, quality),
                    ).fetchone()
                    sids.append(int(row[0]))
                self._log_changes(cur, sids, "add")
                out.append(cid)
        return out

    def remove_content(self, tenant_id: int, bank: Bank, content_id: int) -> int:
        """Remove one content item of the tenant's bank; 1, or 0 when it is not in that bank of
        that tenant (and then nothing at all is changed)."""
        scope = (content_id, bank.id, tenant_id)
        with self.tx(log_lock=True) as cur:
            sids = [
                int(r[0])
                for r in self._q(
                    cur,
                    "SELECT id FROM signals WHERE content_id = ? AND bank_id = ? AND tenant_id = ?",
                    scope,
                ).fetchall()
            ]
            self._log_changes(cur, sids, "del")
            self._q(
                cur,
                "DELETE FROM signals WHERE content_id = ? AND bank_id = ? AND tenant_id = ?",
                scope,
            )
            n = self._q(
                cur,
                "DELETE FROM contents WHERE id = ? AND bank_id = ? AND tenant_id = ?",
                scope,
            ).rowcount
            return int(n)

    def get_contents(self, tenant_id: int, ids: Sequence[int]) -> list[Content]:
        """The tenant's content items among ``ids`` (others' are left out), with signals."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        with self.tx(read=True) as cur:
            rows = self._q(
                cur,
                "SELECT c.id, c.bank_id, b.name, c.tenant_id, c.metadata, c.enabled, c.created_at "
                "FROM contents c JOIN banks b ON b.id = c.bank_id AND b.tenant_id = c.tenant_id "
                f"WHERE c.tenant_id = ? AND c.id IN ({marks}) ORDER BY c.id",
                (tenant_id, *ids),
            ).fetchall()
            out = {int(r[0]): self._content(r) for r in rows}
            if out:
                sig_marks = ",".join("?" * len(out))
                for r in self._q(
                    cur,
                    "SELECT content_id, signal_type, value, quality FROM signals "
                    f"WHERE tenant_id = ? AND content_id IN ({sig_marks}) ORDER BY id",
                    (tenant_id, *out),
                ).fetchall():
                    out[int(r[0])].signals.append((str(r[1]), str(r[2]), r[3]))
        return list(out.values())

    @staticmethod
    def _content(r: Any) -> Content:
        return Content(
            int(r[0]), int(r[1]), str(r[2]), int(r[3]), json.loads(r[4]), bool(r[5]), float(r[6])
        )

    def list_contents(
        self, tenant_id: int, bank: Bank, after_id: int = 0, limit: int = 1000
    ) -> list[Content]:
        ids = [
            int(r[0])
            for r in self._all(
                "SELECT id FROM contents WHERE bank_id = ? AND tenant_id = ? AND id > ? "
                "ORDER BY id LIMIT ?",
                (bank.id, tenant_id, after_id, limit),
            )
        ]
        return self.get_contents(tenant_id, ids)

    def count_contents(self, tenant_id: int, bank: Bank) -> int:
        row = self._one(
            "SELECT COUNT(*) FROM contents WHERE bank_id = ? AND tenant_id = ?",
            (bank.id, tenant_id),
        )
        return int(row[0])

    def exact_lookup(
        self, tenant_id: int, signal_type: str, value: str
    ) -> list[tuple[int, int, int]]:
        """(signal id, content id, bank id) of the tenant's signals equal to ``value`` (MD5 and
        SHA-256: a key lookup)."""
        rows = self._all(
            "SELECT id, content_id, bank_id FROM signals "
            "WHERE signal_type = ? AND value = ? AND tenant_id = ?",
            (signal_type, value, tenant_id),
        )
        return [(int(r[0]), int(r[1]), int(r[2])) for r in rows]

    def signal_counts(self, tenant_id: int, min_pdq_quality: int = 0) -> dict[str, int]:
        """How many signals of each type the tenant's banks hold (PDQ: those of at least
        ``min_pdq_quality``, or of unknown quality — the ones the matcher indexes)."""
        rows = self._all(
            "SELECT signal_type, COUNT(*) FROM signals WHERE tenant_id = ? "
            "AND (signal_type <> 'pdq' OR quality IS NULL OR quality >= ?) GROUP BY signal_type",
            (tenant_id, min_pdq_quality),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    # -- system-wide: the matcher and the webhook worker, never an endpoint ----------------------

    def last_change(self) -> int:
        row = self._one("SELECT MAX(seq) FROM changes")
        return int(row[0] or 0)

    def live_signals(
        self, signal_types: Sequence[str], after_id: int = 0, limit: int = 200_000
    ) -> list[Change]:
        """Current signals of these types (for a matcher's initial load), by id, paged."""
        marks = ",".join("?" * len(signal_types))
        rows = self._all(
            "SELECT id, signal_type, value, quality, bank_id, content_id FROM signals "
            f"WHERE signal_type IN ({marks}) AND id > ? ORDER BY id LIMIT ?",
            (*signal_types, after_id, limit),
        )
        return [
            Change(0, "add", int(r[0]), str(r[1]), str(r[2]), r[3], int(r[4]), int(r[5]))
            for r in rows
        ]

    def changes_since(self, seq: int, limit: int = 100_000) -> list[Change]:
        rows = self._all(
            "SELECT c.seq, c.op, c.signal_id, s.signal_type, s.value, s.quality, s.bank_id, "
            "s.content_id FROM changes c LEFT JOIN signals s ON s.id = c.signal_id "
            "WHERE c.seq > ? ORDER BY c.seq LIMIT ?",
            (seq, limit),
        )
        return [
            Change(
                int(r[0]),
                str(r[1]),
                int(r[2]),
                r[3],
                r[4],
                r[5],
                None if r[6] is None else int(r[6]),
                None if r[7] is None else int(r[7]),
            )
            for r in rows
        ]

    # -- review queue -------------------------------------------------------------------------

    def create_review_item(
        self,
        tenant_id: int,
        *,
        reason: str,
        sha256: str | None,
        media_kind: str | None,
        signals: dict[str, Any],
        matches: dict[str, Any],
        preview: bytes | None,
        submitted_by: str | None,
    ) -> int:
        with self.tx() as cur:
            row = self._q(
                cur,
                "INSERT INTO review_items (tenant_id, created_at, status, reason, sha256, "
                "media_kind, signals, matches, preview, submitted_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    tenant_id,
                    time.time(),
                    "pending",
                    reason,
                    sha256,
                    media_kind,
                    json.dumps(signals),
                    json.dumps(matches),
                    preview,
                    submitted_by,
                ),
            ).fetchone()
            return int(row[0])

    _REVIEW_COLS = (
        "id, tenant_id, created_at, status, reason, sha256, media_kind, signals, matches, "
        "preview IS NOT NULL, submitted_by"
    )

    @staticmethod
    def _review(r: Any) -> ReviewItem:
        return ReviewItem(
            int(r[0]),
            int(r[1]),
            float(r[2]),
            str(r[3]),
            str(r[4]),
            r[5],
            r[6],
            json.loads(r[7]),
            json.loads(r[8]),
            bool(r[9]),
            r[10],
        )

    def list_review_items(
        self, tenant_id: int, status: str | None = None, limit: int = 100, after_id: int = 0
    ) -> list[ReviewItem]:
        sql = f"SELECT {self._REVIEW_COLS} FROM review_items WHERE tenant_id = ? AND id > ?"
        args: list[Any] = [tenant_id, after_id]
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        rows = self._all(sql + " ORDER BY id LIMIT ?", (*args, limit))
        return [self._review(r) for r in rows]

    def get_review_item(self, tenant_id: int, item_id: int) -> ReviewItem | None:
        with self.tx(read=True) as cur:
            row = self._q(
                cur,
                f"SELECT {self._REVIEW_COLS} FROM review_items WHERE tenant_id = ? AND id = ?",
                (tenant_id, item_id),
            ).fetchone()
            if row is None:
                return None
            item = self._review(row)
            for d in self._q(
                cur,
                "SELECT id, action, note, actor, created_at FROM decisions "
                "WHERE review_item_id = ? AND tenant_id = ? ORDER BY id",
                (item_id, tenant_id),
            ).fetchall():
                item.decisions.append(
                    {
                        "id": int(d[0]),
                        "action": d[1],
                        "note": d[2],
                        "actor": d[3],
                        "created_at": float(d[4]),
                    }
                )
            return item

    def review_preview(self, tenant_id: int, item_id: int) -> bytes | None:
        row = self._one(
            "SELECT preview FROM review_items WHERE tenant_id = ? AND id = ?", (tenant_id, item_id)
        )
        return bytes(row[0]) if row and row[0] is not None else None

    def decide(
        self, tenant_id: int, item_id: int, action: str, note: str, actor: str, status: str
    ) -> int | None:
        """Record a decision and set the item's status; None when the item is not the tenant's."""
        with self.tx() as cur:
            n = self._q(
                cur,
                "UPDATE review_items SET status = ? WHERE id = ? AND tenant_id = ?",
                (status, item_id, tenant_id),
            ).rowcount
            if not n:
                return None
            row = self._q(
                cur,
                "INSERT INTO decisions (review_item_id, tenant_id, action, note, actor, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (item_id, tenant_id, action, note, actor, time.time()),
            ).fetchone()
            return int(row[0])

    # -- audit log ----------------------------------------------------------------------------

    def audit(
        self, tenant_id: int, actor: str, action: str, target: str, detail: dict[str, Any]
    ) -> None:
        with self.tx() as cur:
            self._q(
                cur,
                "INSERT INTO audit_log (tenant_id, at, actor, action, target, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (tenant_id, time.time(), actor, action, target, json.dumps(detail, sort_keys=True)),
            )

    def list_audit(
        self, tenant_id: int, limit: int = 100, after_id: int = 0
    ) -> list[dict[str, Any]]:
        rows = self._all(
            "SELECT id, at, actor, action, target, detail FROM audit_log "
            "WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?",
            (tenant_id, after_id, limit),
        )
        return [
            {
                "id": int(r[0]),
                "at": float(r[1]),
                "actor": r[2],
                "action": r[3],
                "target": r[4],
                "detail": json.loads(r[5]),
            }
            for r in rows
        ]

    # -- webhooks -----------------------------------------------------------------------------

    def create_webhook(self, tenant_id: int, url: str, secret: str) -> Webhook:
        with self.tx() as cur:
            row = self._q(
                cur,
                "INSERT INTO webhooks (tenant_id, url, secret, created_at) VALUES (?, ?, ?, ?) "
                "RETURNING id",
                (tenant_id, url, secret, time.time()),
            ).fetchone()
            return Webhook(int(row[0]), tenant_id, url, secret, True)

    def list_webhooks(self, tenant_id: int) -> list[Webhook]:
        rows = self._all(
            "SELECT id, tenant_id, url, secret, active FROM webhooks WHERE tenant_id = ? "
            "ORDER BY id",
            (tenant_id,),
        )
        return [Webhook(int(r[0]), int(r[1]), r[2], r[3], bool(r[4])) for r in rows]

    def delete_webhook(self, tenant_id: int, webhook_id: int) -> bool:
        with self.tx() as cur:
            return bool(
                self._q(
                    cur,
                    "DELETE FROM webhooks WHERE id = ? AND tenant_id = ?",
                    (webhook_id, tenant_id),
                ).rowcount
            )

    def enqueue_deliveries(self, tenant_id: int, event: str, payload: str) -> list[int]:
        """One pending delivery per active webhook of the tenant."""
        now = time.time()
        out = []
        with self.tx() as cur:
            hooks = self._q(
                cur, "SELECT id FROM webhooks WHERE tenant_id = ? AND active = 1", (tenant_id,)
            ).fetchall()
            for (hid,) in hooks:
                row = self._q(
                    cur,
                    "INSERT INTO deliveries (webhook_id, tenant_id, event, payload, status, "
                    "next_attempt_at, created_at) VALUES (?, ?, ?, ?, 'pending', ?, ?) "
                    "RETURNING id",
                    (hid, tenant_id, event, payload, now, now),
                ).fetchone()
                out.append(int(row[0]))
        return out

    def due_deliveries(self, now: float, limit: int = 50) -> list[Delivery]:
        """System-wide (the webhook worker): pending deliveries of every tenant that are due."""
        rows = self._all(
            "SELECT d.id, d.webhook_id, d.tenant_id, d.event, d.payload, d.status, d.attempts, "
            "w.url, w.secret FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id "
            "WHERE d.status = 'pending' AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at "
            "LIMIT ?",
            (now, limit),
        )
        return [
            Delivery(int(r[0]), int(r[1]), int(r[2]), r[3], r[4], r[5], int(r[6]), r[7], r[8])
            for r in rows
        ]

    def record_attempt(
        self,
        delivery_id: int,
        *,
        ok: bool,
        http_status: int | None,
        error: str | None,
        next_attempt_at: float | None,
    ) -> None:
        """System-wide (the webhook worker): after one attempt of a delivery it was handed by
        ``due_deliveries``: delivered, retry at ``next_attempt_at``, or failed (None)."""
        status = "delivered" if ok else ("pending" if next_attempt_at is not None else "failed")
        now = time.time()
        with self.tx() as cur:
            self._q(
                cur,
                "UPDATE deliveries SET attempts = attempts + 1, status = ?, last_status = ?, "
                "last_error = ?, next_attempt_at = ?, delivered_at = ? WHERE id = ?",
                (
                    status,
                    http_status,
                    error,
                    next_attempt_at if next_attempt_at is not None else now,
                    now if ok else None,
                    delivery_id,
                ),
            )

    def pending_deliveries(self) -> int:
        row = self._one("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'")
        return int(row[0])

    def list_deliveries(self, tenant_id: int, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._all(
            "SELECT id, webhook_id, event, status, attempts, last_status, last_error, "
            "created_at, delivered_at FROM deliveries WHERE tenant_id = ? ORDER BY id DESC LIMIT ?",
            (tenant_id, limit),
        )
        keys = (
            "id",
            "webhook_id",
            "event",
            "status",
            "attempts",
            "last_status",
            "last_error",
            "created_at",
            "delivered_at",
        )
        return [dict(zip(keys, r, strict=True)) for r in rows]


class SqlitePlatformStore(PlatformStore):
    dialect = SQLITE

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self._log_mutex = threading.Lock()

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
        return conn

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
