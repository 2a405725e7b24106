"""Checks (issue 6): is an item manipulated or generated, and why.

A check is stored as the JSON ``CheckResult.to_json`` writes (``record``), beside its verdict,
score and level for queries that need no more. A scan writes an item's check in the item's own
transaction (``insert_check``, called by the ``items`` part); ``reclaim check-case`` adds or
deepens checks of items already in the case (``record_checks``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from reclaim.detectors.record import CheckResult
from reclaim.store.base import TOOL, CaseBase, now_iso
from reclaim.verdicts import CheckLevel

#: How much of the check ran, least first: an item checked at a level needs no check below it.
_DEPTH = {"metadata": 0, "faces": 1, "full": 2}


def insert_check(
    c: sqlite3.Connection, sha256: str, check: CheckResult, ts: str, *, replace: bool
) -> None:
    """Write one item's check (``replace``: over an earlier one; else an earlier one stays)."""
    verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
    c.execute(
        f"{verb} INTO checks(item_sha256, verdict, score, level, record, analyzer, "
        "checked_at) VALUES (?,?,?,?,?,?,?)",
        (
            sha256,
            check.verdict.value,
            float(check.score),
            (check.level or CheckLevel.METADATA).value,
            json.dumps(check.to_json(), ensure_ascii=False, default=str),
            TOOL,
            ts,
        ),
    )


class CheckStore(CaseBase):
    """Items' manipulation checks."""

    def record_checks(self, checks: Iterable[tuple[str, CheckResult]]) -> int:
        """Store (or replace) checks of items already in the case; returns how many."""
        ts = now_iso()
        n = 0
        with self.transaction() as c:
            for sha, rec in checks:
                insert_check(c, sha, rec, ts, replace=True)
                n += 1
        return n

    def item_check(self, sha256: str) -> CheckResult | None:
        row = self.conn.execute(
            "SELECT record FROM checks WHERE item_sha256=?", (sha256,)
        ).fetchone()
        return CheckResult.from_json(json.loads(row[0])) if row else None

    def checks_summary(self) -> dict[str, dict[str, Any]]:
        """Verdict, score and level of every checked item, by SHA-256."""
        rows = self._dicts("SELECT item_sha256, verdict, score, level FROM checks")
        return {
            r["item_sha256"]: {"verdict": r["verdict"], "score": r["score"], "level": r["level"]}
            for r in rows
        }

    def items_to_check(self, level: str) -> list[str]:
        """Decoded photos and videos not yet checked at ``level`` (or a fuller one)."""
        rows = self._dicts(
            "SELECT i.sha256, c.level FROM items i LEFT JOIN checks c ON c.item_sha256 = i.sha256 "
            "WHERE i.kind IN ('photo', 'video') AND i.error IS NULL "
            "ORDER BY i.first_seen_at, i.sha256"
        )
        want = _DEPTH[level]
        return [
            r["sha256"] for r in rows if r["level"] is None or _DEPTH.get(r["level"], -1) < want
        ]
