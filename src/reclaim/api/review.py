"""Review queue (``/review``): matched or flagged uploads, moderator decisions, webhooks, audit.

Moderators see a small, heavily blurred preview (``/review/items/{id}/preview``), never the
upload itself (only its hashes and the blurred thumbnail are kept). A decision — ``remove``,
``keep`` or ``escalate`` — sets the item's status, is written to the audit log, and fires the
tenant's webhooks (event ``review.decision``, HMAC-signed, retried).
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from reclaim.api.deps import AfterId, Limit, PlatformDep, RowId, require
from reclaim.api.hashing import blurred_preview, hash_bytes, read_upload
from reclaim.platform.store import Token
from reclaim.platform.webhooks import url_problem

router = APIRouter(prefix="/review", tags=["review"])

ReviewToken = Annotated[Token, Depends(require("review"))]
STATUS_OF = {"remove": "removed", "keep": "kept", "escalate": "escalated"}
STATUSES = ("pending", *STATUS_OF.values())


class DecisionIn(BaseModel):
    action: str = Field(description="remove | keep | escalate")
    note: str = Field(default="", max_length=2000)


class WebhookIn(BaseModel):
    url: str = Field(max_length=2000)


@router.post("/flag", status_code=201)
async def flag_upload(
    request: Request,
    platform: PlatformDep,
    token: Annotated[Token, Depends(require("match"))],
) -> dict[str, Any]:
    """Put an upload in the queue without a bank match (e.g. users reported it). Form field
    ``reason`` (free text, up to 500 characters)."""
    data, _hint, fields = await read_upload(request)
    reason = (fields.get("reason") or "flagged").strip()[:500]
    hashed = await hash_bytes(data, platform)
    item_id = platform.store.create_review_item(
        token.tenant_id,
        reason=f"flag: {reason}",
        sha256=hashed.sha256,
        media_kind=hashed.kind,
        signals={k: v for k, v in hashed.signals.items() if k != "vpdq"},
        matches={},
        preview=await blurred_preview(hashed, platform),
        submitted_by=f"token:{token.id}:{token.name}",
    )
    platform.audit(token, "review.queued", f"review_item:{item_id}", reason="flag")
    return {"id": item_id, "status": "pending"}


@router.get("/items")
def list_items(
    platform: PlatformDep,
    token: ReviewToken,
    status: str | None = "pending",
    after_id: AfterId = 0,
    limit: Limit = 100,
) -> dict[str, Any]:
    if status is not None and status not in (*STATUSES, "all"):
        raise HTTPException(400, f"status must be one of {', '.join(STATUSES)} or all")
    items = platform.store.list_review_items(
        token.tenant_id, None if status == "all" else status, max(1, min(limit, 500)), after_id
    )
    return {"items": [i.as_json() for i in items]}


@router.get("/items/{item_id}")
def get_item(item_id: RowId, platform: PlatformDep, token: ReviewToken) -> dict[str, Any]:
    item = platform.store.get_review_item(token.tenant_id, item_id)
    if item is None:
        raise HTTPException(404, f"review item {item_id} not found")
    return item.as_json()


@router.get("/items/{item_id}/preview")
def get_preview(item_id: RowId, platform: PlatformDep, token: ReviewToken) -> Response:
    """The blurred thumbnail (JPEG). 404 when the item has none (videos, undecodable)."""
    data = platform.store.review_preview(token.tenant_id, item_id)
    if data is None:
        raise HTTPException(404, f"review item {item_id} has no preview")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.post("/items/{item_id}/decision")
def decide(
    item_id: RowId, body: DecisionIn, platform: PlatformDep, token: ReviewToken
) -> dict[str, Any]:
    if body.action not in STATUS_OF:
        raise HTTPException(400, "action must be remove, keep or escalate")
    actor = f"token:{token.id}:{token.name}"
    status = STATUS_OF[body.action]
    did = platform.store.decide(token.tenant_id, item_id, body.action, body.note, actor, status)
    if did is None:
        platform.audit(token, "review.decision.not_found", f"review_item:{item_id}")
        raise HTTPException(404, f"review item {item_id} not found")
    platform.audit(
        token, "review.decision", f"review_item:{item_id}", action=body.action, note=body.note
    )
    item = platform.store.get_review_item(token.tenant_id, item_id)
    assert item is not None
    deliveries = platform.webhooks.emit(
        token.tenant_id,
        "review.decision",
        {
            "review_item_id": item_id,
            "decision_id": did,
            "action": body.action,
            "status": status,
            "note": body.note,
            "actor": actor,
            "sha256": item.sha256,
            "signals": item.signals,
            "matches": item.matches,
        },
    )
    return {"id": did, "review_item_id": item_id, "status": status, "webhooks": len(deliveries)}


@router.get("/audit")
def audit_log(
    platform: PlatformDep, token: ReviewToken, after_id: AfterId = 0, limit: Limit = 100
) -> dict[str, Any]:
    return {
        "entries": platform.store.list_audit(token.tenant_id, max(1, min(limit, 1000)), after_id)
    }


@router.post("/webhooks", status_code=201)
def add_webhook(body: WebhookIn, platform: PlatformDep, token: ReviewToken) -> dict[str, Any]:
    """Register a receiver; the answer holds its signing secret (shown once)."""
    problem = url_problem(body.url, allow_private=platform.settings.allow_private_addresses)
    if problem is not None:
        raise HTTPException(400, f"webhook url refused: {problem}")
    secret = "whsec_" + secrets.token_urlsafe(32)
    hook = platform.store.create_webhook(token.tenant_id, body.url, secret)
    platform.audit(token, "webhook.create", f"webhook:{hook.id}", url=body.url)
    return {"id": hook.id, "url": hook.url, "secret": secret}


@router.get("/webhooks")
def list_webhooks(platform: PlatformDep, token: ReviewToken) -> list[dict[str, Any]]:
    return [
        {"id": h.id, "url": h.url, "active": h.active}
        for h in platform.store.list_webhooks(token.tenant_id)
    ]


@router.delete("/webhooks/{webhook_id}")
def delete_webhook(webhook_id: RowId, platform: PlatformDep, token: ReviewToken) -> dict[str, Any]:
    if not platform.store.delete_webhook(token.tenant_id, webhook_id):
        platform.audit(token, "webhook.delete.not_found", f"webhook:{webhook_id}")
        raise HTTPException(404, f"webhook {webhook_id} not found")
    platform.audit(token, "webhook.delete", f"webhook:{webhook_id}")
    return {"deleted": 1}


@router.get("/deliveries")
def list_deliveries(platform: PlatformDep, token: ReviewToken) -> list[dict[str, Any]]:
    return platform.store.list_deliveries(token.tenant_id)
