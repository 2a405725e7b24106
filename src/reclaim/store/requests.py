"""Removal requests she makes for a confirmed item, and the history of each (issue 22).

What a request means, which destination suits a place, its letter, its clock and its custody
entries belong to ``reclaim.requests``; this part only writes the rows and reads them back, by
column name, as ``RequestRecord`` and ``RequestEvent`` records. A change is written with its
history event in one transaction, and only if the request is still in the status the caller
read (so two front ends marking the same request cannot both win).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reclaim.errors import StoreError
from reclaim.sources.base import Locator
from reclaim.store.base import CaseBase, Columns


class RequestStatus(StrEnum):
    """Where a request stands. The values are the strings stored in cases, written to the
    custody log and the evidence pack, and typed by ``reclaim request mark``."""

    #: Drafted, not sent yet.
    DRAFT = "draft"
    #: She sent it (the clock runs from here).
    SENT = "sent"
    #: The destination confirmed receipt (DSA Art. 16(5)).
    ACKNOWLEDGED = "acknowledged"
    #: The content is gone from that place.
    REMOVED = "removed"
    #: The destination refused.
    REFUSED = "refused"
    #: Removed, then seen again (by her or by ``reclaim watch``).
    REAPPEARED = "reappeared"


@dataclass(frozen=True)
class RequestRecord:
    """One stored request. Dates are ISO 8601 UTC strings (``…Z``)."""

    id: int
    item_sha256: str
    place_key: str
    place: Locator | None
    destination: str
    lang: str
    status: RequestStatus
    created_at: str
    sent_at: str | None
    deadline: str | None
    deadline_legal: bool
    escalation: int
    letter: str
    updated_at: str


@dataclass(frozen=True)
class RequestEvent:
    """One change to a request: what happened, the status and deadline after it, by whom."""

    request_id: int
    at: str
    event: str  # drafted | status | escalated
    status: RequestStatus
    deadline: str | None
    note: str
    actor: str

    def as_record(self) -> dict[str, Any]:
        """The event as JSON (``reclaim requests --json``, the evidence pack)."""
        return {
            "at": self.at,
            "event": self.event,
            "status": self.status.value,
            "deadline": self.deadline,
            "note": self.note,
            "by": self.actor,
        }


def _status(stored: str) -> RequestStatus:
    try:
        return RequestStatus(stored)
    except ValueError:
        raise StoreError(f"this case holds an unknown request status {stored!r}") from None


REQUEST = Columns(
    RequestRecord,
    "id, item_sha256, place_key, place, destination, lang, status, created_at, sent_at, "
    "deadline, deadline_legal, escalation, letter, updated_at",
    place=Locator.from_json,
    status=_status,
    deadline_legal=bool,
)
EVENT = Columns(
    RequestEvent,
    "request_id, at, event, status, deadline, note, actor",
    status=_status,
)


def _insert_event(c: sqlite3.Connection, e: RequestEvent) -> None:
    c.execute(
        "INSERT INTO request_events(request_id, at, event, status, deadline, note, actor) "
        "VALUES (?,?,?,?,?,?,?)",
        (e.request_id, e.at, e.event, e.status.value, e.deadline, e.note, e.actor),
    )


class RequestStore(CaseBase):
    """Removal requests and their history."""

    def add_request(self, r: RequestRecord, actor: str, note: str = "") -> RequestRecord:
        """Store a new request (``r.id`` is ignored) with its "drafted" event, committed before
        returning; the stored record comes back. StoreError when the case already holds a
        request for the same item, place and destination."""
        with self.transaction() as c:
            try:
                cur = c.execute(
                    "INSERT INTO requests(item_sha256, place_key, place, destination, lang, "
                    "status, created_at, sent_at, deadline, deadline_legal, escalation, letter, "
                    "updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        r.item_sha256, r.place_key,
                        None if r.place is None else r.place.to_json(),
                        r.destination, r.lang, r.status.value, r.created_at, r.sent_at,
                        r.deadline, int(r.deadline_legal), r.escalation, r.letter, r.updated_at,
                    ),
                )  # fmt: skip
            except sqlite3.IntegrityError as e:
                raise StoreError(
                    "this case already holds a request to that destination for that place"
                ) from e
            rid = int(cur.lastrowid or 0)
            _insert_event(
                c, RequestEvent(rid, r.created_at, "drafted", r.status, r.deadline, note, actor)
            )
        stored = self.request(rid)
        assert stored is not None
        return stored

    def request(self, request_id: int) -> RequestRecord | None:
        """The request with this id, or None."""
        rows = self._records(
            REQUEST, f"SELECT {REQUEST.sql} FROM requests WHERE id = ?", (request_id,)
        )
        return rows[0] if rows else None

    def find_request(self, item: str, place_key: str, destination: str) -> RequestRecord | None:
        """The request for this item, place and destination, or None."""
        rows = self._records(
            REQUEST,
            f"SELECT {REQUEST.sql} FROM requests "
            "WHERE item_sha256 = ? AND place_key = ? AND destination = ?",
            (item, place_key, destination),
        )
        return rows[0] if rows else None

    def requests(
        self, *, item: str | None = None, items: list[str] | None = None
    ) -> list[RequestRecord]:
        """Every request (of ``item``, or of any of ``items``), oldest first."""
        where: list[str] = []
        args: list[Any] = []
        if item is not None:
            where.append("item_sha256 = ?")
            args.append(item)
        if items is not None:
            where.append(f"item_sha256 IN ({','.join('?' * len(items))})")
            args.extend(items)
        return self._records(
            REQUEST,
            f"SELECT {REQUEST.sql} FROM requests "
            + (f"WHERE {' AND '.join(where)} " if where else "")
            + "ORDER BY id",
            tuple(args),
        )

    def update_request(
        self,
        request_id: int,
        expected: RequestStatus,
        event: RequestEvent,
        *,
        sent_at: str | None,
        deadline_legal: bool,
        escalation: int,
    ) -> bool:
        """Apply ``event`` (its status and deadline become the request's) with the fields given,
        and append it to the history, in one transaction, only while the request is still in
        status ``expected``. False when it is not (someone changed it meanwhile) or is gone."""
        with self.transaction() as c:
            cur = c.execute(
                "UPDATE requests SET status = ?, sent_at = ?, deadline = ?, deadline_legal = ?, "
                "escalation = ?, updated_at = ? WHERE id = ? AND status = ?",
                (
                    event.status.value, sent_at, event.deadline, int(deadline_legal), escalation,
                    event.at, request_id, expected.value,
                ),
            )  # fmt: skip
            if cur.rowcount != 1:
                return False
            _insert_event(c, event)
        return True

    def request_events(self, request_id: int | None = None) -> list[RequestEvent]:
        """The history of one request (or of all), oldest first."""
        if request_id is None:
            return self._records(EVENT, f"SELECT {EVENT.sql} FROM request_events ORDER BY id")
        return self._records(
            EVENT,
            f"SELECT {EVENT.sql} FROM request_events WHERE request_id = ? ORDER BY id",
            (request_id,),
        )
