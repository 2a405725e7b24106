"""Signal exchanges (HMA's ``/c/exchanges``): each tenant's exchange configurations, their fetch
state, the records each fetch brought and the bank content each record became; the tenant's
credentials per exchange API; and the bank feed (``content_log``) that lets others pull a bank.

An exchange imports into its own bank, named like it (HMA's semantics), created with it in one
transaction; deleting that bank deletes the exchange (a composite foreign key). A record of the
exchange (keyed as the exchange API keys it: a ``(signal type, value)`` pair, an NCMEC entry id,
a reclaim content id) becomes one content item of that bank holding the record's signals;
an update replaces that item (or only bumps its generation when its signals are unchanged), a
deletion removes it. Writes to the bank append to the change log the matchers follow, like the
bank part's own, under the same lock.

Credentials are stored as the exchange API's own JSON (like webhook secrets: in the database, in
the clear) and are only ever read back by the fetcher, never by an endpoint's answer.

Every method is the tenant's own except ``enabled_exchanges`` (the periodic fetcher's list).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reclaim.platform.store.base import Columns, Conflict, NotFound, StoreBase, system_wide

#: One record of a fetch: its key, then its signals (type, canonical value, quality) and the
#: content metadata, or None when the record is gone (the exchange deleted it).
ExchangeRecord = tuple[str, list[tuple[str, str, int | None]] | None, dict[str, Any]]


@dataclass(frozen=True)
class ExchangeRow:
    """A stored exchange: its configuration and fetch state."""

    id: int
    tenant_id: int
    name: str
    api: str
    config: dict[str, Any]
    bank_id: int
    enabled: bool
    created_at: float
    checkpoint: str | None
    checkpoint_ts: int | None
    generation: int
    running_since: float | None
    running_progress: int
    last_fetch_complete_at: float | None
    last_fetch_succeeded: bool | None
    up_to_date: bool
    last_error: str | None


EXCHANGE = Columns(
    ExchangeRow,
    "id, tenant_id, name, api, config, bank_id, enabled, created_at, checkpoint, checkpoint_ts, "
    "generation, running_since, running_progress, last_fetch_complete_at, last_fetch_succeeded, "
    "up_to_date, last_error",
    config=json.loads,
    enabled=bool,
    last_fetch_succeeded=bool,
    up_to_date=bool,
)


@dataclass(frozen=True)
class FeedEntry:
    """One entry of a bank's feed: a content item added, changed or removed."""

    seq: int
    content_id: int
    op: str  # "add" | "upd" | "del"
    at: float


FEED = Columns(FeedEntry, "id AS seq, content_id, op, at")


class ExchangeStore(StoreBase):
    """The tenant's exchanges, their records and credentials; bank feeds."""

    # -- configurations -----------------------------------------------------------------------

    def create_exchange(
        self, tenant_id: int, name: str, api: str, config: dict[str, Any]
    ) -> ExchangeRow:
        """The exchange and its bank ``name``, in one transaction. Conflict when the tenant
        already has a bank (or an exchange) of that name."""
        now = time.time()
        try:
            with self.tx() as cur:
                bank_id = int(
                    self._q(
                        cur,
                        "INSERT INTO banks (tenant_id, name, created_at) VALUES (?, ?, ?) "
                        "RETURNING id",
                        (tenant_id, name, now),
                    ).fetchone()[0]
                )
                return EXCHANGE.read(
                    self._q(
                        cur,
                        "INSERT INTO exchanges (tenant_id, name, api, config, bank_id, created_at) "
                        f"VALUES (?, ?, ?, ?, ?, ?) RETURNING {EXCHANGE.sql}",
                        (tenant_id, name, api, json.dumps(config, sort_keys=True), bank_id, now),
                    )
                )[0]
        except Exception as e:
            if self._is_integrity_error(e):
                raise Conflict(f"a bank named {name!r} already exists") from e
            raise

    def list_exchanges(self, tenant_id: int) -> list[ExchangeRow]:
        return self._records(
            EXCHANGE,
            f"SELECT {EXCHANGE.sql} FROM exchanges WHERE tenant_id = ? ORDER BY name",
            (tenant_id,),
        )

    def get_exchange(self, tenant_id: int, name: str) -> ExchangeRow | None:
        rows = self._records(
            EXCHANGE,
            f"SELECT {EXCHANGE.sql} FROM exchanges WHERE tenant_id = ? AND name = ?",
            (tenant_id, name),
        )
        return rows[0] if rows else None

    def get_exchange_by_id(self, tenant_id: int, exchange_id: int) -> ExchangeRow | None:
        rows = self._records(
            EXCHANGE,
            f"SELECT {EXCHANGE.sql} FROM exchanges WHERE tenant_id = ? AND id = ?",
            (tenant_id, exchange_id),
        )
        return rows[0] if rows else None

    def set_exchange_enabled(self, tenant_id: int, exchange_id: int, enabled: bool) -> bool:
        with self.tx() as cur:
            n = self._q(
                cur,
                "UPDATE exchanges SET enabled = ? WHERE id = ? AND tenant_id = ?",
                (int(enabled), exchange_id, tenant_id),
            ).rowcount
        return bool(n)

    def delete_exchange(self, tenant_id: int, exchange_id: int) -> bool:
        """Delete the exchange and its records (not its bank, nor the bank's content)."""
        with self.tx() as cur:
            self._q(
                cur,
                "DELETE FROM exchange_items WHERE exchange_id = ? AND tenant_id = ?",
                (exchange_id, tenant_id),
            )
            n = self._q(
                cur,
                "DELETE FROM exchanges WHERE id = ? AND tenant_id = ?",
                (exchange_id, tenant_id),
            ).rowcount
        return bool(n)

    @system_wide
    def enabled_exchanges(self) -> list[tuple[int, int]]:
        """The periodic fetcher: (tenant id, exchange id) of every enabled exchange."""
        rows = self._all("SELECT tenant_id, id FROM exchanges WHERE enabled = 1 ORDER BY id")
        return [(int(r[0]), int(r[1])) for r in rows]

    def tenant_name(self, tenant_id: int) -> str | None:
        """The tenant's own name (its folder of local exchange files)."""
        row = self._one("SELECT name FROM tenants WHERE id = ?", (tenant_id,))
        return None if row is None else str(row[0])

    # -- credentials --------------------------------------------------------------------------

    def set_exchange_credentials(
        self, tenant_id: int, api: str, credentials: dict[str, Any] | None
    ) -> None:
        """Store (or, with None, remove) the tenant's credentials for exchange API ``api``."""
        with self.tx() as cur:
            self._q(
                cur,
                "DELETE FROM exchange_credentials WHERE tenant_id = ? AND api = ?",
                (tenant_id, api),
            )
            if credentials is not None:
                self._q(
                    cur,
                    "INSERT INTO exchange_credentials (tenant_id, api, credentials, updated_at) "
                    "VALUES (?, ?, ?, ?)",
                    (tenant_id, api, json.dumps(credentials, sort_keys=True), time.time()),
                )

    def get_exchange_credentials(self, tenant_id: int, api: str) -> dict[str, Any] | None:
        """The tenant's credentials for ``api`` (the fetcher only: never in an answer)."""
        row = self._one(
            "SELECT credentials FROM exchange_credentials WHERE tenant_id = ? AND api = ?",
            (tenant_id, api),
        )
        if row is None:
            return None
        value: dict[str, Any] = json.loads(row[0])
        return value

    def has_exchange_credentials(self, tenant_id: int, api: str) -> bool:
        row = self._one(
            "SELECT COUNT(*) FROM exchange_credentials WHERE tenant_id = ? AND api = ?",
            (tenant_id, api),
        )
        return bool(row[0])

    # -- fetch state --------------------------------------------------------------------------

    def claim_exchange_fetch(self, tenant_id: int, exchange_id: int, stale_after_s: float) -> bool:
        """Mark a fetch of the exchange as running, unless one is (in any process: a claim
        older than ``stale_after_s`` is taken to be from a process that died). True: claimed."""
        now = time.time()
        with self.tx() as cur:
            n = self._q(
                cur,
                "UPDATE exchanges SET running_since = ?, running_progress = 0 "
                "WHERE id = ? AND tenant_id = ? AND (running_since IS NULL OR running_since < ?)",
                (now, exchange_id, tenant_id, now - stale_after_s),
            ).rowcount
        return bool(n)

    def start_exchange_generation(self, tenant_id: int, exchange_id: int) -> int:
        """A fetch from scratch begins: forget the checkpoint, and number the records it brings
        with a new generation (the older ones are removed when it completes). The generation."""
        with self.tx() as cur:
            row = self._q(
                cur,
                "UPDATE exchanges SET generation = generation + 1, checkpoint = NULL, "
                "checkpoint_ts = NULL WHERE id = ? AND tenant_id = ? RETURNING generation",
                (exchange_id, tenant_id),
            ).fetchone()
        if row is None:
            raise NotFound(f"exchange {exchange_id} not found")
        return int(row[0])

    def save_exchange_checkpoint(
        self,
        tenant_id: int,
        exchange_id: int,
        checkpoint: str,
        checkpoint_ts: int | None,
        progress: int,
    ) -> None:
        with self.tx() as cur:
            self._q(
                cur,
                "UPDATE exchanges SET checkpoint = ?, checkpoint_ts = ?, running_progress = ? "
                "WHERE id = ? AND tenant_id = ?",
                (checkpoint, checkpoint_ts, progress, exchange_id, tenant_id),
            )

    def finish_exchange_fetch(
        self,
        tenant_id: int,
        exchange_id: int,
        *,
        succeeded: bool,
        up_to_date: bool,
        error: str | None = None,
    ) -> None:
        with self.tx() as cur:
            self._q(
                cur,
                "UPDATE exchanges SET running_since = NULL, last_fetch_complete_at = ?, "
                "last_fetch_succeeded = ?, up_to_date = ?, last_error = ? "
                "WHERE id = ? AND tenant_id = ?",
                (
                    time.time(),
                    int(succeeded),
                    int(up_to_date),
                    error,
                    exchange_id,
                    tenant_id,
                ),
            )

    def count_exchange_items(self, tenant_id: int, exchange_id: int) -> int:
        row = self._one(
            "SELECT COUNT(*) FROM exchange_items WHERE exchange_id = ? AND tenant_id = ?",
            (exchange_id, tenant_id),
        )
        return int(row[0])

    # -- records into the bank ----------------------------------------------------------------

    def apply_exchange_records(
        self,
        tenant_id: int,
        exchange_id: int,
        generation: int,
        records: Sequence[ExchangeRecord],
    ) -> tuple[int, int]:
        """Bring the exchange's bank up to date with fetched records, in one transaction:
        each record's content item is added, replaced (its signals changed), kept (the same
        signals: only its generation moves on) or removed. (changed items, removed items).
        NotFound when the exchange is not the tenant's (deleted during the fetch)."""
        now = time.time()
        changed = removed = 0
        with self.tx(log_lock=True) as cur:
            row = self._q(
                cur,
                "SELECT bank_id FROM exchanges WHERE id = ? AND tenant_id = ?",
                (exchange_id, tenant_id),
            ).fetchone()
            if row is None:
                raise NotFound(f"exchange {exchange_id} not found")
            bank_id = int(row[0])
            for key, signals, metadata in records:
                item = self._q(
                    cur,
                    "SELECT id, content_id FROM exchange_items "
                    "WHERE exchange_id = ? AND tenant_id = ? AND record_key = ?",
                    (exchange_id, tenant_id, key),
                ).fetchone()
                old_content = None if item is None or item[1] is None else int(item[1])
                if signals is not None and old_content is not None:
                    have = sorted(
                        (str(r[0]), str(r[1]))
                        for r in self._q(
                            cur,
                            "SELECT signal_type, value FROM signals "
                            "WHERE content_id = ? AND bank_id = ? AND tenant_id = ?",
                            (old_content, bank_id, tenant_id),
                        ).fetchall()
                    )
                    if have and have == sorted((st, v) for st, v, _ in signals):
                        self._q(
                            cur,
                            "UPDATE exchange_items SET generation = ? "
                            "WHERE id = ? AND tenant_id = ?",
                            (generation, int(item[0]), tenant_id),
                        )
                        continue
                if old_content is not None:
                    self._drop_content(cur, tenant_id, bank_id, old_content, now)
                if signals is None:
                    if item is not None:
                        self._q(
                            cur,
                            "DELETE FROM exchange_items WHERE id = ? AND tenant_id = ?",
                            (int(item[0]), tenant_id),
                        )
                        removed += 1
                    continue
                cid = int(
                    self._q(
                        cur,
                        "INSERT INTO contents (bank_id, tenant_id, metadata, created_at) "
                        "VALUES (?, ?, ?, ?) RETURNING id",
                        (bank_id, tenant_id, json.dumps(metadata, sort_keys=True), now),
                    ).fetchone()[0]
                )
                for st, value, quality in signals:
                    sid = self._q(
                        cur,
                        "INSERT INTO signals (content_id, bank_id, tenant_id, signal_type, value, "
                        "quality) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                        (cid, bank_id, tenant_id, st, value, quality),
                    ).fetchone()[0]
                    self._q(
                        cur,
                        "INSERT INTO changes (signal_id, op, at) VALUES (?, ?, ?)",
                        (int(sid), "add", now),
                    )
                if item is None:
                    self._q(
                        cur,
                        "INSERT INTO exchange_items (exchange_id, tenant_id, record_key, "
                        "content_id, generation) VALUES (?, ?, ?, ?, ?)",
                        (exchange_id, tenant_id, key, cid, generation),
                    )
                else:
                    self._q(
                        cur,
                        "UPDATE exchange_items SET content_id = ?, generation = ? "
                        "WHERE id = ? AND tenant_id = ?",
                        (cid, generation, int(item[0]), tenant_id),
                    )
                changed += 1
        return changed, removed

    def sweep_exchange(self, tenant_id: int, exchange_id: int, generation: int) -> int:
        """After a fetch from scratch completed: remove the records (and their content) that
        it did not bring again. The number removed."""
        now = time.time()
        with self.tx(log_lock=True) as cur:
            row = self._q(
                cur,
                "SELECT bank_id FROM exchanges WHERE id = ? AND tenant_id = ?",
                (exchange_id, tenant_id),
            ).fetchone()
            if row is None:
                return 0
            bank_id = int(row[0])
            stale = self._q(
                cur,
                "SELECT id, content_id FROM exchange_items "
                "WHERE exchange_id = ? AND tenant_id = ? AND generation < ?",
                (exchange_id, tenant_id, generation),
            ).fetchall()
            for item_id, content_id in stale:
                if content_id is not None:
                    self._drop_content(cur, tenant_id, bank_id, int(content_id), now)
                self._q(
                    cur,
                    "DELETE FROM exchange_items WHERE id = ? AND tenant_id = ?",
                    (int(item_id), tenant_id),
                )
        return len(stale)

    def _drop_content(
        self, cur: Any, tenant_id: int, bank_id: int, content_id: int, now: float
    ) -> None:
        """Remove one content item of the tenant's bank and its signals (logged as removed)."""
        scope = (content_id, bank_id, tenant_id)
        sids = [
            int(r[0])
            for r in self._q(
                cur,
                "SELECT id FROM signals WHERE content_id = ? AND bank_id = ? AND tenant_id = ?",
                scope,
            ).fetchall()
        ]
        for sid in sids:
            self._q(
                cur, "INSERT INTO changes (signal_id, op, at) VALUES (?, ?, ?)", (sid, "del", now)
            )
        self._q(
            cur, "DELETE FROM signals WHERE content_id = ? AND bank_id = ? AND tenant_id = ?", scope
        )
        self._q(cur, "DELETE FROM contents WHERE id = ? AND bank_id = ? AND tenant_id = ?", scope)

    # -- bank feeds ---------------------------------------------------------------------------

    def bank_feed(
        self, tenant_id: int, bank_id: int, after_seq: int, limit: int
    ) -> list[FeedEntry]:
        """The tenant's bank's content log after ``after_seq``: what was added, changed or
        removed, in order (``limit`` entries at most)."""
        return self._records(
            FEED,
            f"SELECT {FEED.sql} FROM content_log "
            "WHERE tenant_id = ? AND bank_id = ? AND id > ? ORDER BY id LIMIT ?",
            (tenant_id, bank_id, after_seq, limit),
        )
