"""The person's decisions on items ("it's me", "not me", "unsure"): append-only, the latest
one counts.

What a decision means, who may take it and its custody entry belong to ``reclaim.decisions``;
this part only appends the rows and reads them back, by column name, as ``Decision`` records.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reclaim.errors import StoreError
from reclaim.store.base import CaseBase, Columns


class DecisionKind(StrEnum):
    """What the person decided about an item. The values are the strings stored in cases
    (``decisions.decision``), written to the custody log and the evidence pack, and typed by
    ``reclaim decide``: a ``StrEnum`` compares equal to its string, so cases made before read
    the same."""

    #: It is her: the item goes into the evidence pack by default.
    CONFIRMED = "confirmed"
    #: It is not her.
    NOT_ME = "not_me"
    #: She cannot tell (yet).
    UNSURE = "unsure"


@dataclass(frozen=True)
class Decision:
    """One decision on an item: what, with which note, by whom, when (ISO 8601, UTC), and for
    which enrollment when the front end knew it."""

    item_sha256: str
    decision: DecisionKind
    note: str
    actor: str
    decided_at: str
    enrollment: str | None = None

    def as_pack_record(self) -> dict[str, Any]:
        """The object an evidence pack's manifest keeps for the item (its ``decision``)."""
        return {
            "decision": self.decision.value,
            "note": self.note,
            "by": self.actor,
            "at": self.decided_at,
        }


def _kind(stored: str) -> DecisionKind:
    try:
        return DecisionKind(stored)
    except ValueError:
        raise StoreError(f"this case holds an unknown decision {stored!r}") from None


DECISION = Columns(
    Decision, "item_sha256, decision, note, actor, decided_at, enrollment", decision=_kind
)


class DecisionStore(CaseBase):
    """Decisions on items."""

    def add_decision(self, d: Decision) -> None:
        """Append a decision on an item (committed before returning)."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO decisions(item_sha256, enrollment, decision, note, actor, "
                "decided_at) VALUES (?,?,?,?,?,?)",
                (d.item_sha256, d.enrollment, d.decision.value, d.note, d.actor, d.decided_at),
            )

    def latest_decisions(self) -> list[Decision]:
        """The latest decision per item, oldest first."""
        return self._records(
            DECISION,
            f"SELECT {DECISION.sql} FROM decisions d "
            "WHERE id = (SELECT MAX(id) FROM decisions WHERE item_sha256 = d.item_sha256) "
            "ORDER BY id",
        )
