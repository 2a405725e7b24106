"""The person's decisions on findings: "it's me" / "not me" / "unsure", with notes.

Every decision is kept (append-only; the latest one counts) and also written to the custody log,
so an evidence pack shows who decided what and when.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reclaim.errors import InputError
from reclaim.report.custody import CustodyLog
from reclaim.store import CaseStore
from reclaim.store.case import now_iso

Verdict = Literal["confirmed", "not_me", "unsure"]
VERDICTS: tuple[Verdict, ...] = ("confirmed", "not_me", "unsure")


@dataclass(frozen=True)
class Decision:
    item_sha256: str
    decision: Verdict
    note: str
    actor: str
    decided_at: str
    enrollment: str | None = None


def decide(
    store: CaseStore,
    item_sha256: str,
    decision: str,
    note: str = "",
    *,
    actor: str,
    enrollment: str | None = None,
) -> Decision:
    """Record a decision (committed before returning) and its custody entry.

    Raises InputError for an unknown item or decision.
    """
    if decision not in VERDICTS:
        raise InputError(f"decision must be one of {', '.join(VERDICTS)}")
    if not store.known_item(item_sha256):
        raise InputError(f"item {item_sha256[:16]}… is not in this case")
    d = Decision(item_sha256, decision, note.strip()[:2000], actor, now_iso(), enrollment)
    with store.transaction() as c:
        c.execute(
            "INSERT INTO decisions(item_sha256, enrollment, decision, note, actor, decided_at) "
            "VALUES (?,?,?,?,?,?)",
            (d.item_sha256, d.enrollment, d.decision, d.note, d.actor, d.decided_at),
        )
    CustodyLog(store.root).append(
        "decision",
        {"item": item_sha256, "decision": d.decision, "note": d.note, "enrollment": enrollment},
        actor=actor,
    )
    return d


def current(store: CaseStore) -> dict[str, Decision]:
    """The latest decision per item."""
    rows = store.conn.execute(
        "SELECT item_sha256, decision, note, actor, decided_at, enrollment FROM decisions d "
        "WHERE id = (SELECT MAX(id) FROM decisions WHERE item_sha256 = d.item_sha256)"
    ).fetchall()
    return {r[0]: Decision(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows}


def confirmed_items(store: CaseStore) -> list[str]:
    return [sha for sha, d in current(store).items() if d.decision == "confirmed"]
