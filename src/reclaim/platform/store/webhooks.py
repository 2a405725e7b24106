"""Webhooks and their deliveries.

A tenant registers webhooks; an event queues one delivery per active webhook of that tenant
(``enqueue_deliveries``). The webhook worker (``reclaim.platform.webhooks``) takes due
deliveries of every tenant and records each attempt: those three methods are system-wide.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from reclaim.platform.store.base import Columns, StoreBase, system_wide


@dataclass(frozen=True)
class Webhook:
    id: int
    tenant_id: int
    url: str
    secret: str
    active: bool


@dataclass(frozen=True)
class Delivery:
    id: int
    webhook_id: int
    tenant_id: int
    event: str
    payload: str
    status: str
    attempts: int
    url: str
    secret: str


WEBHOOK = Columns(Webhook, "id, tenant_id, url, secret, active", active=bool)
DELIVERY = Columns(
    Delivery,
    "d.id, d.webhook_id, d.tenant_id, d.event, d.payload, d.status, d.attempts, w.url, w.secret",
)


class WebhookStore(StoreBase):
    """The tenant's webhooks; deliveries (queued per tenant, sent by the worker)."""

    def create_webhook(self, tenant_id: int, url: str, secret: str) -> Webhook:
        with self.tx() as cur:
            return WEBHOOK.read(
                self._q(
                    cur,
                    "INSERT INTO webhooks (tenant_id, url, secret, created_at) "
                    f"VALUES (?, ?, ?, ?) RETURNING {WEBHOOK.sql}",
                    (tenant_id, url, secret, time.time()),
                )
            )[0]

    def list_webhooks(self, tenant_id: int) -> list[Webhook]:
        return self._records(
            WEBHOOK,
            f"SELECT {WEBHOOK.sql} FROM webhooks WHERE tenant_id = ? ORDER BY id",
            (tenant_id,),
        )

    def delete_webhook(self, tenant_id: int, webhook_id: int) -> bool:
        with self.tx() as cur:
            return bool(
                self._q(
                    cur,
                    "DELETE FROM webhooks WHERE id = ? AND tenant_id = ?",
                    (webhook_id, tenant_id),
                ).rowcount
            )

    def enqueue_deliveries(self, tenant_id: int, event: str, payload: str) -> list[int]:
        """One pending delivery per active webhook of the tenant."""
        now = time.time()
        out = []
        with self.tx() as cur:
            hooks = self._q(
                cur, "SELECT id FROM webhooks WHERE tenant_id = ? AND active = 1", (tenant_id,)
            ).fetchall()
            for (hid,) in hooks:
                row = self._q(
                    cur,
                    "INSERT INTO deliveries (webhook_id, tenant_id, event, payload, status, "
                    "next_attempt_at, created_at) VALUES (?, ?, ?, ?, 'pending', ?, ?) "
                    "RETURNING id",
                    (hid, tenant_id, event, payload, now, now),
                ).fetchone()
                out.append(int(row[0]))
        return out

    def list_deliveries(self, tenant_id: int, limit: int = 100) -> list[dict[str, Any]]:
        return self._dicts(
            "SELECT id, webhook_id, event, status, attempts, last_status, last_error, "
            "created_at, delivered_at FROM deliveries WHERE tenant_id = ? ORDER BY id DESC LIMIT ?",
            (tenant_id, limit),
        )

    # -- the webhook worker -------------------------------------------------------------------

    @system_wide
    def due_deliveries(self, now: float, limit: int = 50) -> list[Delivery]:
        """Pending deliveries of every tenant that are due."""
        return self._records(
            DELIVERY,
            f"SELECT {DELIVERY.sql} FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id "
            "WHERE d.status = 'pending' AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at "
            "LIMIT ?",
            (now, limit),
        )

    @system_wide
    def record_attempt(
        self,
        delivery_id: int,
        *,
        ok: bool,
        http_status: int | None,
        error: str | None,
        next_attempt_at: float | None,
    ) -> None:
        """After one attempt of a delivery that ``due_deliveries`` handed out: delivered, retry
        at ``next_attempt_at``, or failed (None)."""
        status = "delivered" if ok else ("pending" if next_attempt_at is not None else "failed")
        now = time.time()
        with self.tx() as cur:
            self._q(
                cur,
                "UPDATE deliveries SET attempts = attempts + 1, status = ?, last_status = ?, "
                "last_error = ?, next_attempt_at = ?, delivered_at = ? WHERE id = ?",
                (
                    status,
                    http_status,
                    error,
                    next_attempt_at if next_attempt_at is not None else now,
                    now if ok else None,
                    delivery_id,
                ),
            )

    @system_wide
    def pending_deliveries(self) -> int:
        row = self._one("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'")
        return int(row[0])
