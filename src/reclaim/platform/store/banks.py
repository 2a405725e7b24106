"""Banks, their content items and signals, and the change log the matchers follow.

A content item is one piece of media a tenant banked: its metadata and its signals (signal type,
value, quality). Every signal added or removed appends to ``changes`` (and a bank edit appends a
``bank`` entry), so matchers in any process follow bank edits incrementally; writers append under
one lock (``tx(log_lock=True)``) so sequence numbers commit in order. Matchers do not rely on it
alone: a number skipped (a rolled-back transaction, a writer without the lock) is asked for again
(``changes_at``) until it appears or times out (``reclaim.platform.matcher``). The matcher's own
reads (``all_banks``, ``live_signals``, ``last_change``, ``trim_horizon``, ``change_stamp``,
``change_seqs``, ``changes_since``, ``changes_at``; ``trim_changes`` deletes old entries) are
system-wide: the matcher filters every result by the asking tenant's banks.

PDQ flavours (``reclaim.hashes.pdq``): a bank's ``pdq_flavour`` says how an upload is hashed to
match its PDQ signals (``pytx``, what HMA computes, by default; ``reference``); a PDQ signal may
carry its own (``signals.pdq_flavour``: ``reference``, ``pytx`` or ``both``, NULL for the
bank's): the flavour an uploaded file was hashed in, or the one its content's metadata names
(``json.pdq_flavour``, as the CSV of ``reclaim protect`` gives it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reclaim.platform.store.base import Columns, Conflict, NotFound, StoreBase, named, system_wide

#: A bank's flavours: how uploads are hashed to match it. New banks: ``pytx`` (HMA's).
BANK_FLAVOURS = ("pytx", "reference")
DEFAULT_BANK_FLAVOUR = "pytx"
#: A PDQ signal's own flavour: ``both`` when the two flavours gave the same hash (a photo of at
#: most 512 px), so that either matches it.
ROW_FLAVOURS = ("reference", "pytx", "both")


def pdq_flavour_of(metadata: dict[str, Any]) -> str | None:
    """The PDQ flavour a content item's metadata names (``json.pdq_flavour``, the column
    ``reclaim protect`` writes), lower-cased; None when it names none (absent or empty).
    ValueError when it names something else."""
    kept = metadata.get("json") if isinstance(metadata, dict) else None
    value = kept.get("pdq_flavour") if isinstance(kept, dict) else None
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or value.strip().lower() not in ROW_FLAVOURS:
        raise ValueError(
            f"metadata json.pdq_flavour {str(value)[:40]!r} is not a PDQ flavour: use "
            f"{', '.join(ROW_FLAVOURS)} (or leave it out: the bank's flavour)"
        )
    return value.strip().lower()


@dataclass(frozen=True)
class Bank:
    id: int
    tenant_id: int
    name: str
    enabled_ratio: float
    pdq_distance: int
    #: How uploads are hashed to match this bank's PDQ signals (``BANK_FLAVOURS``).
    pdq_flavour: str = DEFAULT_BANK_FLAVOUR

    def as_hma(self) -> dict[str, Any]:
        """HMA's bank object, exactly (its clients compare whole objects)."""
        return {"name": self.name, "matching_enabled_ratio": self.enabled_ratio}

    def as_reclaim(self) -> dict[str, Any]:
        """HMA's bank object plus reclaim's own settings (``?include_reclaim=true``, export,
        audit)."""
        return {
            **self.as_hma(),
            "pdq_distance": self.pdq_distance,
            "pdq_flavour": self.pdq_flavour,
        }


#: HMA's magic values of ``disable_until_ts``.
DISABLED, ENABLED = 0, 1
#: Longest note HMA accepts on a content item.
MAX_NOTE = 255


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
    #: HMA's ``disable_until_ts``: 0 disabled, 1 enabled, else disabled until that Unix time
    #: (``/m/lookup`` leaves disabled content out; ``/m/raw_lookup`` does not, as HMA).
    disable_until_ts: int = ENABLED
    #: HMA's note on a content item (at most ``MAX_NOTE`` characters); None: none.
    note: str | None = None
    #: The PDQ flavour its PDQ signal carries (``ROW_FLAVOURS``); None: its bank's.
    pdq_flavour: str | None = None


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
    #: A PDQ signal's own flavour (``ROW_FLAVOURS``); None: its bank's.
    pdq_flavour: str | None = None


BANK = Columns(Bank, "id, tenant_id, name, enabled_ratio, pdq_distance, pdq_flavour")
CONTENT = Columns(
    Content,
    "c.id, c.bank_id, b.name AS bank, c.tenant_id, c.metadata, c.enabled, c.created_at, "
    "c.disable_until_ts, c.note",
    metadata=json.loads,
    enabled=bool,
)
#: a current signal, as a change that adds it (a matcher's initial load)
LIVE = Columns(
    Change,
    "0 AS seq, 'add' AS op, id AS signal_id, signal_type, value, quality, bank_id, content_id, "
    "pdq_flavour",
)
CHANGE = Columns(
    Change,
    "c.seq, c.op, c.signal_id, s.signal_type, s.value, s.quality, s.bank_id, s.content_id, "
    "s.pdq_flavour",
)


class BankStore(StoreBase):
    """The tenant's banks, content and signals; the change log."""

    # -- banks --------------------------------------------------------------------------------

    def create_bank(
        self,
        tenant_id: int,
        name: str,
        enabled_ratio: float = 1.0,
        pdq_distance: int = 31,
        pdq_flavour: str = DEFAULT_BANK_FLAVOUR,
    ) -> Bank:
        if pdq_flavour not in BANK_FLAVOURS:
            raise ValueError(f"bank pdq_flavour must be one of {', '.join(BANK_FLAVOURS)}")
        try:
            with self.tx() as cur:
                return BANK.read(
                    self._q(
                        cur,
                        "INSERT INTO banks (tenant_id, name, enabled_ratio, pdq_distance, "
                        f"pdq_flavour, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING {BANK.sql}",
                        (tenant_id, name, enabled_ratio, pdq_distance, pdq_flavour, time.time()),
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
        pdq_flavour: str | None = None,
    ) -> Bank | None:
        """Change the tenant's bank; None when ``bank`` is not the tenant's."""
        if pdq_flavour is not None and pdq_flavour not in BANK_FLAVOURS:
            raise ValueError(f"bank pdq_flavour must be one of {', '.join(BANK_FLAVOURS)}")
        try:
            with self.tx(log_lock=True) as cur:
                updated = BANK.read_one(
                    self._q(
                        cur,
                        "UPDATE banks SET name = ?, enabled_ratio = ?, pdq_distance = ?, "
                        f"pdq_flavour = ? WHERE id = ? AND tenant_id = ? RETURNING {BANK.sql}",
                        (
                            bank.name if name is None else name,
                            bank.enabled_ratio if enabled_ratio is None else enabled_ratio,
                            bank.pdq_distance if pdq_distance is None else pdq_distance,
                            bank.pdq_flavour if pdq_flavour is None else pdq_flavour,
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
        *,
        note: str | None = None,
        pdq_flavour: str | None = None,
    ) -> list[int]:
        """Add content items (each: its signals and metadata; ``note`` on every one) to the
        tenant's bank in one transaction; their ids. NotFound when ``bank`` is not the
        tenant's.

        An item's PDQ signals carry ``pdq_flavour`` (the flavour the service hashed an upload
        in), else the one its metadata names (``pdq_flavour_of``), else none (the bank's).
        ValueError, before anything is written, when a metadata names an unknown flavour."""
        if pdq_flavour is not None and pdq_flavour not in ROW_FLAVOURS:
            raise ValueError(f"pdq_flavour must be one of {', '.join(ROW_FLAVOURS)}")
        flavours = [pdq_flavour or pdq_flavour_of(metadata) for _, metadata in items]
        now = time.time()
        out: list[int] = []
        scope = (bank.id, tenant_id)
        with self.tx(log_lock=True) as cur:
            if not self._q(
                cur, "SELECT id FROM banks WHERE id = ? AND tenant_id = ?", scope
            ).fetchone():
                raise NotFound(f"bank {bank.name!r} not found")
            for (signals, metadata), flavour in zip(items, flavours, strict=True):
                cid = int(
                    self._q(
                        cur,
                        "INSERT INTO contents (bank_id, tenant_id, metadata, created_at, note) "
                        "VALUES (?, ?, ?, ?, ?) RETURNING id",
                        (*scope, json.dumps(metadata, sort_keys=True), now, note or None),
                    ).fetchone()[0]
                )
                sids = []
                for st, value, quality in signals:
                    row = self._q(
                        cur,
                        "INSERT INTO signals (content_id, bank_id, tenant_id, signal_type, value, "
                        "quality, pdq_flavour) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                        (cid, *scope, st, value, quality, flavour if st == "pdq" else None),
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

    def update_content(
        self,
        tenant_id: int,
        bank: Bank,
        content_id: int,
        *,
        disable_until_ts: int | None = None,
        note: str | None = None,
    ) -> Content | None:
        """Change one content item of the tenant's bank (None: leave as is; ``note=""``
        removes the note); the item as it now is, or None when it is not in that bank of that
        tenant (and then nothing is changed)."""
        scope = (content_id, bank.id, tenant_id)
        sets: list[str] = []
        args: list[int | str | None] = []
        if disable_until_ts is not None:
            sets.append("disable_until_ts = ?")
            args.append(disable_until_ts)
        if note is not None:
            sets.append("note = ?")
            args.append(note or None)
        with self.tx() as cur:
            found = self._q(
                cur,
                "SELECT id FROM contents WHERE id = ? AND bank_id = ? AND tenant_id = ?",
                scope,
            ).fetchone()
            if found is None:
                return None
            if sets:
                self._q(
                    cur,
                    f"UPDATE contents SET {', '.join(sets)} "
                    "WHERE id = ? AND bank_id = ? AND tenant_id = ?",
                    (*args, *scope),
                )
        got = self.get_contents(tenant_id, [content_id])
        return got[0] if got else None

    def disabled_contents(self, tenant_id: int, ids: Sequence[int], now: float) -> set[int]:
        """Which of the tenant's content items among ``ids`` are disabled at ``now`` (HMA's
        ``disable_until_ts``: 0, or a time after ``now``)."""
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        rows = self._all(
            f"SELECT id FROM contents WHERE tenant_id = ? AND id IN ({marks}) "
            "AND (disable_until_ts = ? OR disable_until_ts > ?)",
            (tenant_id, *ids, DISABLED, int(now)),
        )
        return {int(r[0]) for r in rows}

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
                        "SELECT content_id, signal_type, value, quality, pdq_flavour FROM signals "
                        f"WHERE tenant_id = ? AND content_id IN ({sig_marks}) ORDER BY id",
                        (tenant_id, *out),
                    )
                ):
                    signal = (s["signal_type"], s["value"], s["quality"])
                    item = out[s["content_id"]]
                    item.signals.append(signal)
                    if s["pdq_flavour"] is not None and item.pdq_flavour is None:
                        item.pdq_flavour = str(s["pdq_flavour"])
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
    def trim_horizon(self) -> int:
        """The highest change-log number a trim deleted (0: never trimmed); see ``trim_changes``."""
        row = self._one("SELECT MAX(signal_id) FROM changes WHERE op = 'trim'")
        return int(row[0] or 0)

    @system_wide
    def trim_changes(self, before: float) -> int:
        """Delete the change-log entries written before ``before`` (seconds since the epoch),
        always keeping the newest, and append a ``trim`` entry naming the highest number deleted
        (its ``signal_id``): a matcher that had not read up to it missed entries, and says so
        (``reclaim.platform.matcher``). Returns how many were deleted."""
        newest = "(SELECT MAX(seq) FROM changes)"
        with self.tx(log_lock=True) as cur:
            row = self._q(
                cur, f"SELECT MAX(seq) FROM changes WHERE at < ? AND seq < {newest}", (before,)
            ).fetchone()
            if row is None or row[0] is None:
                return 0
            deleted = self._q(
                cur, f"DELETE FROM changes WHERE at < ? AND seq < {newest}", (before,)
            ).rowcount
            self._q(
                cur,
                "INSERT INTO changes (signal_id, op, at) VALUES (?, 'trim', ?)",
                (int(row[0]), time.time()),
            )
            return int(deleted or 0)

    @system_wide
    def change_stamp(self, seq: int) -> tuple[str, int, float] | None:
        """The change log's entry ``seq`` as (op, signal id, time written), or None: what a
        match index snapshot records to know this database's log again."""
        row = self._one("SELECT op, signal_id, at FROM changes WHERE seq = ?", (seq,))
        return None if row is None else (str(row[0]), int(row[1]), float(row[2]))

    @system_wide
    def live_signals(
        self, signal_types: Sequence[str], after_id: int = 0, limit: int = 200_000
    ) -> list[Change]:
        """Current signals of these types (for a matcher's initial load), by id, paged: those
        of the first window of ``limit`` ids after ``after_id`` that holds any; [] at the end.

        Read by primary-key ranges, so that every page costs its own rows whatever the table's
        size: with ``ORDER BY id LIMIT`` alone, PostgreSQL may scan and sort the whole table for
        a page, and SQLite chose the ``(signal_type, value)`` index and sorted every signal of
        the type (a 1M-signal load took ~5x longer); ``signal_type || ''`` keeps SQLite off that
        index."""
        marks = ",".join("?" * len(signal_types))
        top = int(self._one("SELECT MAX(id) FROM signals")[0] or 0)
        while after_id < top:
            rows = self._records(
                LIVE,
                f"SELECT {LIVE.sql} FROM signals WHERE signal_type || '' IN ({marks}) "
                "AND id > ? AND id <= ? ORDER BY id",
                (*signal_types, after_id, after_id + limit),
            )
            if rows:
                return rows
            after_id += limit
        return []

    @system_wide
    def change_seqs(self, after: int, upto: int) -> list[int]:
        """The change log's numbers in (``after``, ``upto``] (a matcher's load: which are
        missing, so that it watches them)."""
        rows = self._all(
            "SELECT seq FROM changes WHERE seq > ? AND seq <= ? ORDER BY seq", (after, upto)
        )
        return [int(r[0]) for r in rows]

    @system_wide
    def changes_at(self, seqs: Sequence[int]) -> list[Change]:
        """The change log's entries with these numbers, those committed by now, by number (a
        matcher asking again for numbers it saw skipped: they commit late, or never)."""
        runs: list[tuple[int, int]] = []
        for s in sorted(set(seqs)):
            if runs and s == runs[-1][1] + 1:
                runs[-1] = (runs[-1][0], s)
            else:
                runs.append((s, s))
        out: list[Change] = []
        for i in range(0, len(runs), 200):
            part = runs[i : i + 200]
            where = " OR ".join(["c.seq BETWEEN ? AND ?"] * len(part))
            out += self._records(
                CHANGE,
                f"SELECT {CHANGE.sql} FROM changes c LEFT JOIN signals s ON s.id = c.signal_id "
                f"WHERE {where} ORDER BY c.seq",
                [x for run in part for x in run],
            )
        return out

    @system_wide
    def changes_since(self, seq: int, limit: int = 100_000) -> list[Change]:
        """The change log after ``seq``; a removed signal's entry carries only its id."""
        return self._records(
            CHANGE,
            f"SELECT {CHANGE.sql} FROM changes c LEFT JOIN signals s ON s.id = c.signal_id "
            "WHERE c.seq > ? ORDER BY c.seq LIMIT ?",
            (seq, limit),
        )
