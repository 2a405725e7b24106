"""The review queue, the decisions taken on its items, and the audit log.

A review item is media a tenant's caller sent for a person to look at (with its signals, its
matches and, optionally, a preview); a decision closes or re-files it and is kept with it. The
audit log records what each actor did in the tenant. Every method here is the tenant's own.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from reclaim.platform.store.base import Columns, StoreBase, named


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


REVIEW_ITEM = Columns(
    ReviewItem,
    "id, tenant_id, created_at, status, reason, sha256, media_kind, signals, matches, "
    "preview IS NOT NULL AS has_preview, submitted_by",
    signals=json.loads,
    matches=json.loads,
    has_preview=bool,
)


class ReviewStore(StoreBase):
    """The tenant's review queue, decisions and audit log."""

    # -- review queue and decisions -------------------------------------------------------------

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

    def list_review_items(
        self, tenant_id: int, status: str | None = None, limit: int = 100, after_id: int = 0
    ) -> list[ReviewItem]:
        sql = f"SELECT {REVIEW_ITEM.sql} FROM review_items WHERE tenant_id = ? AND id > ?"
        args: list[Any] = [tenant_id, after_id]
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        return self._records(REVIEW_ITEM, sql + " ORDER BY id LIMIT ?", (*args, limit))

    def get_review_item(self, tenant_id: int, item_id: int) -> ReviewItem | None:
        """The tenant's review item with its decisions, oldest first."""
        with self.tx(read=True) as cur:
            item = REVIEW_ITEM.read_one(
                self._q(
                    cur,
                    f"SELECT {REVIEW_ITEM.sql} FROM review_items WHERE tenant_id = ? AND id = ?",
                    (tenant_id, item_id),
                )
            )
            if item is None:
                return None
            item.decisions = named(
                self._q(
                    cur,
                    "SELECT id, action, note, actor, created_at FROM decisions "
                    "WHERE review_item_id = ? AND tenant_id = ? ORDER BY id",
                    (item_id, tenant_id),
                )
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
        rows = self._dicts(
            "SELECT id, at, actor, action, target, detail FROM audit_log "
            "WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?",
            (tenant_id, after_id, limit),
        )
        return [{**r, "detail": json.loads(r["detail"])} for r in rows]
