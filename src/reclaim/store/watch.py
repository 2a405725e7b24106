"""Keeping watch (issue 22): the sources she registered, the last answer of each watched URL,
what each watch run found changed, where alerts go, and the hashes of her private photos.

What a watch run means (which URL counts as removed or back, which new place needs her
attention) and its custody entries belong to ``reclaim.watch`` and ``reclaim.alerts``; this part
only writes the rows and reads them back as records. A run's findings (URL answers, events and
how far it looked) are written in one transaction, so a run killed at any instant leaves all of
them or none, and the next run looks again from where the last finished one stopped.

Two marks in ``meta`` say how far the watch has looked at the places the case records
(``sightings.id``): ``watch_baseline``, the last place recorded before the first source was
registered (places before it are hers already, never "new"), and ``watch_hashes_upto``, the last
place compared with her protected hashes and confirmed pictures (hash comparisons cost more than
a lookup, so each place is compared once; importing new hashes starts again from the baseline).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass

from reclaim.errors import StoreError
from reclaim.sources.base import Locator
from reclaim.store.base import CaseBase, Columns, now_iso

WATCH_BASELINE = "watch_baseline"
WATCH_HASHES_UPTO = "watch_hashes_upto"


@dataclass(frozen=True)
class WatchSource:
    """A source she asked to watch: an absolute path and what it is."""

    id: int
    spec: str
    kind: str  # folder | telegram | archive | file | urllist
    added_at: str


@dataclass(frozen=True)
class UrlState:
    """The last answer of a watched URL."""

    url: str
    state: str  # online | gone | unreachable
    item_sha256: str | None
    detail: str | None
    checked_at: str
    changed_at: str
    run_id: int | None = None


@dataclass(frozen=True)
class WatchEvent:
    """Something a watch run found changed. ``id`` and ``alerted_at`` are the store's."""

    run_id: int
    kind: str  # new_place | reappeared | removed | replaced
    at: str
    reason: str | None = None
    sighting_id: int | None = None
    url: str | None = None
    item_sha256: str | None = None
    request_id: int | None = None
    detail: str | None = None
    id: int = 0
    alerted_at: str | None = None


@dataclass(frozen=True)
class NewPlace:
    """A place recorded since the watch began that shows an item she may need to act on."""

    sighting_id: int
    item_sha256: str
    locator: Locator
    confirmed: bool  # she had confirmed the item is her before it was seen here
    has_finding: bool  # an enrolled face was found in it


@dataclass(frozen=True)
class PlaceSignal:
    """One signal of the item seen at a place (for comparing with protected hashes)."""

    sighting_id: int
    item_sha256: str
    locator: Locator
    signal: str
    value: str
    quality: int | None


@dataclass(frozen=True)
class AlertTargetRecord:
    """Where alerts go. ``target`` may hold credentials: never logged, never shown whole."""

    id: int
    target: str
    lang: str
    added_at: str


@dataclass(frozen=True)
class ProtectedHash:
    signal_type: str  # the HMA name: md5, video_md5, pdq, vpdq
    signal: str
    quality: int | None


SOURCE = Columns(WatchSource, "id, spec, kind, added_at")
URL_STATE = Columns(UrlState, "url, state, item_sha256, detail, checked_at, changed_at, run_id")
EVENT = Columns(
    WatchEvent,
    "id, run_id, kind, reason, sighting_id, url, item_sha256, request_id, detail, at, alerted_at",
)
TARGET = Columns(AlertTargetRecord, "id, target, lang, added_at")
PROTECTED = Columns(ProtectedHash, "signal_type, signal, quality")

#: Her latest decision on the item seen at sighting ``s``.
_DECISION = (
    "(SELECT d.decision FROM decisions d WHERE d.item_sha256 = s.item_sha256 "
    "ORDER BY d.id DESC LIMIT 1)"
)
_NOT_FLAGGED = (
    "NOT EXISTS (SELECT 1 FROM watch_events w WHERE w.kind = 'new_place' AND w.sighting_id = s.id)"
)


class WatchStore(CaseBase):
    """Watched sources, URL answers, watch events, alert targets and protected hashes."""

    # -- sources -----------------------------------------------------------------------------
    def add_watch_source(self, spec: str, kind: str) -> WatchSource:
        """Register a source (committed before returning). The first one also sets where the
        watch begins: places already recorded are never reported as new. StoreError when it is
        registered already."""
        ts = now_iso()
        with self.transaction() as c:
            try:
                cur = c.execute(
                    "INSERT INTO watch_sources(spec, kind, added_at) VALUES (?,?,?)",
                    (spec, kind, ts),
                )
            except sqlite3.IntegrityError as e:
                raise StoreError(f"{spec} is watched already in this case") from e
            _begin_watch(c)
            sid = int(cur.lastrowid or 0)
        return WatchSource(sid, spec, kind, ts)

    def remove_watch_source(self, spec: str) -> bool:
        """Stop watching ``spec``; False when it was not watched. What was found stays."""
        with self.transaction() as c:
            return c.execute("DELETE FROM watch_sources WHERE spec = ?", (spec,)).rowcount > 0

    def watch_sources(self) -> list[WatchSource]:
        return self._records(SOURCE, f"SELECT {SOURCE.sql} FROM watch_sources ORDER BY id")

    def watch_marks(self) -> tuple[int, int]:
        """(baseline, hashes compared up to): see the module docstring. Set here, to the last
        place recorded, when the watch has not begun yet (no source registered, no run)."""
        if self.meta_get(WATCH_BASELINE) is None:
            with self.transaction() as c:
                _begin_watch(c)
        base = int(self.meta_get(WATCH_BASELINE) or 0)
        return base, max(base, int(self.meta_get(WATCH_HASHES_UPTO) or 0))

    def max_sighting_id(self) -> int:
        return self._count("SELECT COALESCE(MAX(id), 0) FROM sightings")

    def sighting_locator(self, sighting_id: int) -> Locator | None:
        """Where place ``sighting_id`` is, or None."""
        row = self.conn.execute(
            "SELECT locator FROM sightings WHERE id = ?", (sighting_id,)
        ).fetchone()
        return None if row is None else Locator.from_json(row[0])

    def last_run_id(self) -> int:
        return self._count("SELECT COALESCE(MAX(id), 0) FROM runs")

    def run_of(self, command: str, *, after: int) -> int:
        """The id of the first run of ``command`` this process started after run ``after``
        (the scan a watch run made). StoreError when there is none."""
        row = self.conn.execute(
            "SELECT id FROM runs WHERE id > ? AND command = ? AND pid = ? ORDER BY id LIMIT 1",
            (after, command, os.getpid()),
        ).fetchone()
        if row is None:
            raise StoreError(f"the {command} run of this process is not in the case")
        return int(row[0])

    # -- what a run looks at -----------------------------------------------------------------
    def url_states(self) -> dict[str, UrlState]:
        """The last answer of every watched URL, by URL."""
        rows = self._records(URL_STATE, f"SELECT {URL_STATE.sql} FROM watch_urls")
        return {r.url: r for r in rows}

    def new_place_candidates(self, after: int) -> list[NewPlace]:
        """Places recorded after sighting ``after``, not reported yet, where an enrolled face
        was found in the item, or whose item she had confirmed is her before it was seen
        there (an item she said is not her is left out)."""
        rows = self.conn.execute(
            f"SELECT s.id, s.item_sha256, s.locator, {_DECISION} AS decision, "
            "EXISTS (SELECT 1 FROM findings f WHERE f.item_sha256 = s.item_sha256) AS found, "
            "EXISTS (SELECT 1 FROM decisions d WHERE d.item_sha256 = s.item_sha256 "
            "AND d.decision = 'confirmed' AND d.decided_at <= s.first_seen_at) AS known "
            "FROM sightings s WHERE s.id > ? AND s.item_sha256 IS NOT NULL "
            f"AND {_NOT_FLAGGED} "
            "AND (EXISTS (SELECT 1 FROM findings f WHERE f.item_sha256 = s.item_sha256) "
            "OR EXISTS (SELECT 1 FROM decisions d WHERE d.item_sha256 = s.item_sha256)) "
            "ORDER BY s.id",
            (after,),
        ).fetchall()
        out = []
        for sid, sha, loc, decision, found, known in rows:
            confirmed = decision == "confirmed" and bool(known)
            if decision == "not_me" or not (confirmed or found):
                continue
            out.append(NewPlace(int(sid), sha, Locator.from_json(loc), confirmed, bool(found)))
        return out

    def place_signals(self, after: int, upto: int, signals: tuple[str, ...]) -> list[PlaceSignal]:
        """The ``signals`` of the items seen at places ``after`` < id <= ``upto`` not reported
        yet (an item she said is not her is left out)."""
        if not signals:
            return []
        q = ",".join("?" * len(signals))
        rows = self.conn.execute(
            "SELECT s.id, s.item_sha256, s.locator, g.signal, g.value, g.quality "
            "FROM sightings s JOIN signals g ON g.item_sha256 = s.item_sha256 "
            f"WHERE s.id > ? AND s.id <= ? AND g.signal IN ({q}) AND {_NOT_FLAGGED} "
            f"AND COALESCE({_DECISION}, '') != 'not_me' ORDER BY s.id",
            (after, upto, *signals),
        ).fetchall()
        return [
            PlaceSignal(int(sid), sha, Locator.from_json(loc), sig, val, q_)
            for sid, sha, loc, sig, val, q_ in rows
        ]

    def confirmed_signals(self, signal: str) -> list[tuple[str, str, int | None]]:
        """(item, value, quality) of ``signal`` for every item she confirmed is her."""
        rows = self.conn.execute(
            "SELECT g.item_sha256, g.value, g.quality FROM signals g "
            "WHERE g.signal = ? AND (SELECT d.decision FROM decisions d "
            "WHERE d.item_sha256 = g.item_sha256 ORDER BY d.id DESC LIMIT 1) = 'confirmed'",
            (signal,),
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    # -- what a run found --------------------------------------------------------------------
    def record_watch(
        self, urls: list[UrlState], events: list[WatchEvent], hashes_upto: int | None
    ) -> list[WatchEvent]:
        """Write a run's URL answers, its events and how far it compared hashes, in one
        transaction. A place already reported is not reported again. Returns the events
        written, with their ids."""
        written: list[WatchEvent] = []
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO watch_urls(url, state, item_sha256, detail, checked_at, changed_at, "
                "run_id) VALUES (?,?,?,?,?,?,?) ON CONFLICT(url) DO UPDATE SET "
                "state=excluded.state, item_sha256=excluded.item_sha256, detail=excluded.detail, "
                "checked_at=excluded.checked_at, changed_at=excluded.changed_at, "
                "run_id=excluded.run_id",
                [
                    (u.url, u.state, u.item_sha256, u.detail, u.checked_at, u.changed_at, u.run_id)
                    for u in urls
                ],
            )
            for e in events:
                cur = c.execute(
                    "INSERT OR IGNORE INTO watch_events(run_id, kind, reason, sighting_id, url, "
                    "item_sha256, request_id, detail, at) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        e.run_id, e.kind, e.reason, e.sighting_id, e.url, e.item_sha256,
                        e.request_id, e.detail, e.at,
                    ),
                )  # fmt: skip
                if cur.rowcount:
                    written.append(
                        WatchEvent(
                            e.run_id, e.kind, e.at, e.reason, e.sighting_id, e.url,
                            e.item_sha256, e.request_id, e.detail, int(cur.lastrowid or 0),
                        )
                    )  # fmt: skip
            if hashes_upto is not None:
                c.execute(
                    "INSERT INTO meta(key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (WATCH_HASHES_UPTO, str(hashes_upto)),
                )
        return written

    def watch_events(
        self, *, run_id: int | None = None, url: str | None = None, unalerted: bool = False
    ) -> list[WatchEvent]:
        """Events (of a run, of a URL, not yet counted by an alert), oldest first."""
        where: list[str] = []
        args: list[object] = []
        if run_id is not None:
            where.append("run_id = ?")
            args.append(run_id)
        if url is not None:
            where.append("url = ?")
            args.append(url)
        if unalerted:
            where.append("alerted_at IS NULL AND kind IN ('new_place', 'reappeared')")
        return self._records(
            EVENT,
            f"SELECT {EVENT.sql} FROM watch_events "
            + (f"WHERE {' AND '.join(where)} " if where else "")
            + "ORDER BY id",
            tuple(args),
        )

    def mark_alerted(self, event_ids: list[int], at: str) -> None:
        with self.transaction() as c:
            c.executemany(
                "UPDATE watch_events SET alerted_at = ? WHERE id = ? AND alerted_at IS NULL",
                [(at, i) for i in event_ids],
            )

    # -- alert targets -----------------------------------------------------------------------
    def add_alert_target(self, target: str, lang: str) -> AlertTargetRecord:
        """StoreError when the target is there already."""
        ts = now_iso()
        with self.transaction() as c:
            try:
                cur = c.execute(
                    "INSERT INTO alert_targets(target, lang, added_at) VALUES (?,?,?)",
                    (target, lang, ts),
                )
            except sqlite3.IntegrityError as e:
                raise StoreError("alerts already go there in this case") from e
        return AlertTargetRecord(int(cur.lastrowid or 0), target, lang, ts)

    def remove_alert_target(self, target_id: int) -> bool:
        with self.transaction() as c:
            return c.execute("DELETE FROM alert_targets WHERE id = ?", (target_id,)).rowcount > 0

    def alert_targets(self) -> list[AlertTargetRecord]:
        return self._records(TARGET, f"SELECT {TARGET.sql} FROM alert_targets ORDER BY id")

    # -- protected hashes --------------------------------------------------------------------
    def add_protected_hashes(self, hashes: list[ProtectedHash]) -> int:
        """Keep hashes of her private photos; returns how many were new. New ones are compared
        with every place recorded since the watch began (the comparison starts again)."""
        ts = now_iso()
        with self.transaction() as c:
            new = 0
            for h in hashes:
                cur = c.execute(
                    "INSERT OR IGNORE INTO protected_hashes(signal_type, signal, quality, "
                    "added_at) VALUES (?,?,?,?)",
                    (h.signal_type, h.signal, h.quality, ts),
                )
                new += cur.rowcount
            if new:  # compared again from the baseline (watch_marks never goes below it)
                c.execute("DELETE FROM meta WHERE key = ?", (WATCH_HASHES_UPTO,))
        return new

    def protected_hashes(self) -> list[ProtectedHash]:
        return self._records(
            PROTECTED, f"SELECT {PROTECTED.sql} FROM protected_hashes ORDER BY rowid"
        )


def _begin_watch(c: sqlite3.Connection) -> None:
    """Set the watch's marks to the last place recorded, unless it has begun already."""
    top = int(c.execute("SELECT COALESCE(MAX(id), 0) FROM sightings").fetchone()[0])
    for key in (WATCH_BASELINE, WATCH_HASHES_UPTO):
        c.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (key, str(top)))
