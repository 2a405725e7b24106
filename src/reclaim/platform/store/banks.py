"""Banks, their content items and signals, and the change log the matchers follow.

A content item is one piece of media a tenant banked: its metadata and its signals (signal type,
value, quality). Every signal added or removed appends to ``changes`` (and a bank edit appends a
``bank`` entry), so matchers in any process follow bank edits incrementally; writers append under
one lock (``tx(log_lock=True)``) so sequence numbers commit in order. The matcher's own reads
(``all_banks``, ``live_signals``, ``last_change``, ``changes_since``) are system-wide: the matcher
filters every result by the asking tenant's banks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reclaim.platform.store.base import Columns, Conflict, NotFound, StoreBase, named, system_wide


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
    op: str  # "add" | "del" | "bank"
    signal_id: int
    signal_type: str | None = None
    value: str | None = None
    quality: int | None = None
    bank_id: int | None = None
    content_id: int | None = None


BANK = Columns(Bank, "id, tenant_id, name, enabled_ratio, pdq_distance")
CONTENT = Columns(
    Content,
    "c.id, c.bank_id, b.name AS bank, c.tenant_id, c.metadata, c.enabled, c.created_at",
    metadata=json.loads,
    enabled=bool,
)
#: a current signal, as a change that adds it (a matcher's initial load)
LIVE = Columns(
    Change,
    "0 AS seq, 'add' AS op, id AS signal_id, signal_type, value, quality, bank_id, content_id",
)
CHANGE = Columns(
    Change,
    "c.seq, c.op, c.signal_id, s.signal_type, s.value, s.quality, s.bank_id, s.content_id",
)


class BankStore(StoreBase):
    """The tenant's banks, content and signals; the change log."""

    # -- banks --------------------------------------------------------------------------------

    def create_bank(
        self, tenant_id: int, name: str, enabled_ratio: float = 1.0, pdq_distance: int = 31
    ) -> Bank:
        try:
            with self.tx() as cur:
                return BANK.read(
                    self._q(
                        cur,
                        "INSERT INTO banks (tenant_id, name, enabled_ratio, pdq_distance, "
                        f"created_at) VALUES (?, ?, ?, ?, ?) RETURNING {BANK.sql}",
                        (tenant_id, name, enabled_ratio, pdq_distance, time.time()),
                    )
                )[0]
        except Exception as e:
            if self._is_integrity_error(e):
                raise Conflict(f"bank {name!r} already exists") from e
            raise

    def list_banks(self, tenant_id: int) -> list[Bank]:
        return self._records(
            BANK, f"SELECT {BANK.sql} FROM banks WHERE tenant_id = ? ORDER BY name", (tenant_id,)
        )

    @system_wide
    def all_banks(self) -> list[Bank]:
        """The matcher: every tenant's banks."""
        return self._records(BANK, f"SELECT {BANK.sql} FROM banks")

    def get_bank(self, tenant_id: int, name: str) -> Bank | None:
        rows = self._records(
            BANK,
            f"SELECT {BANK.sql} FROM banks WHERE tenant_id = ? AND name = ?",
            (tenant_id, name),
        )
        return rows[0] if rows else None

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
                updated = BANK.read_one(
                    self._q(
                        cur,
                        "UPDATE banks SET name = ?, enabled_ratio = ?, pdq_distance = ? "
                        f"WHERE id = ? AND tenant_id = ? RETURNING {BANK.sql}",
                        (
                            bank.name if name is None else name,
                            bank.enabled_ratio if enabled_ratio is None else enabled_ratio,
                            bank.pdq_distance if pdq_distance is None else pdq_distance,
                            bank.id,
                            tenant_id,
                        ),
                    )
                )
                if updated is None:
                    return None
                self._log_bank_edit(cur)
                return updated
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
            self._log_bank_edit(cur)
            return int(n)

    # -- content and signals ------------------------------------------------------------------

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
            items = CONTENT.read(
                self._q(
                    cur,
                    f"SELECT {CONTENT.sql} FROM contents c "
                    "JOIN banks b ON b.id = c.bank_id AND b.tenant_id = c.tenant_id "
                    f"WHERE c.tenant_id = ? AND c.id IN ({marks}) ORDER BY c.id",
                    (tenant_id, *ids),
                )
            )
            out = {c.id: c for c in items}
            if out:
                sig_marks = ",".join("?" * len(out))
                for s in named(
                    self._q(
                        cur,
                        "SELECT content_id, signal_type, value, quality FROM signals "
                        f"WHERE tenant_id = ? AND content_id IN ({sig_marks}) ORDER BY id",
                        (tenant_id, *out),
                    )
                ):
                    signal = (s["signal_type"], s["value"], s["quality"])
                    out[s["content_id"]].signals.append(signal)
        return list(out.values())

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

    # -- the change log -----------------------------------------------------------------------

    def _log_changes(self, cur: Any, signal_ids: Sequence[int], op: str) -> None:
        if not signal_ids:
            return
        now = time.time()
        cur.executemany(
            self._sql("INSERT INTO changes (signal_id, op, at) VALUES (?, ?, ?)"),
            [(sid, op, now) for sid in signal_ids],
        )

    def _log_bank_edit(self, cur: Any) -> None:
        """A ``bank`` entry: matchers reload the banks' settings."""
        self._q(
            cur,
            "INSERT INTO changes (signal_id, op, at) VALUES (?, ?, ?)",
            (0, "bank", time.time()),
        )

    @system_wide
    def last_change(self) -> int:
        row = self._one("SELECT MAX(seq) FROM changes")
        return int(row[0] or 0)

    @system_wide
    def live_signals(
        self, signal_types: Sequence[str], after_id: int = 0, limit: int = 200_000
    ) -> list[Change]:
        """Current signals of these types (for a matcher's initial load), by id, paged."""
        marks = ",".join("?" * len(signal_types))
        return self._records(
            LIVE,
            f"SELECT {LIVE.sql} FROM signals "
            f"WHERE signal_type IN ({marks}) AND id > ? ORDER BY id LIMIT ?",
            (*signal_types, after_id, limit),
        )

    @system_wide
    def changes_since(self, seq: int, limit: int = 100_000) -> list[Change]:
        """The change log after ``seq``; a removed signal's entry carries only its id."""
        return self._records(
            CHANGE,
            f"SELECT {CHANGE.sql} FROM changes c LEFT JOIN signals s ON s.id = c.signal_id "
            "WHERE c.seq > ? ORDER BY c.seq LIMIT ?",
            (seq, limit),
        )
