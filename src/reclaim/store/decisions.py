"""The person's decisions on items ("it's me", "not me", "unsure"): append-only, the latest
one counts.

What a decision means, who may take it and its custody entry belong to ``reclaim.decisions``;
this part only appends and reads the rows.
"""

from __future__ import annotations

from typing import Any

from reclaim.store.base import CaseBase


class DecisionStore(CaseBase):
    """Decisions on items."""

    def add_decision(
        self,
        item_sha256: str,
        enrollment: str | None,
        decision: str,
        note: str,
        actor: str,
        decided_at: str,
    ) -> None:
        """Append a decision on an item (committed before returning)."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO decisions(item_sha256, enrollment, decision, note, actor, "
                "decided_at) VALUES (?,?,?,?,?,?)",
                (item_sha256, enrollment, decision, note, actor, decided_at),
            )

    def latest_decisions(self) -> list[dict[str, Any]]:
        """The latest decision per item (item_sha256, decision, note, actor, decided_at,
        enrollment)."""
        return self._dicts(
            "SELECT item_sha256, decision, note, actor, decided_at, enrollment FROM decisions d "
            "WHERE id = (SELECT MAX(id) FROM decisions WHERE item_sha256 = d.item_sha256)"
        )
