"""Face shields (``/shield/v1``, issue 20): intake, revocation, the partners' routes, and the
matching of uploads' faces against the tenant's shields.

Routes for the people shields protect (no token: they have none), rate-limited per client
address and per tenant (429 with Retry-After):

- ``GET /shield/v1/{tenant}/intake-key``: the tenant's intake keys (one per active key epoch):
  what her reclaim makes a shield under. Stores and logs nothing.
- ``POST /shield/v1/{tenant}/intake``: a shield (``Shield.dumps()``, at most 1 MiB). Checked
  (``Shield.verify``: receipt signature, platform, epoch and key, template digest, age), then
  stored with the platform's secret layer applied to its templates; the audit log gets
  ``shield.intake`` with a keyed pseudonym of the client address, never the address.
- ``POST /shield/v1/{tenant}/revoke``: ``{"shield_id", "secret"}``. The secret must open the
  receipt's commitment; an unknown id and a wrong secret get the same 403. The shield, its codes
  and its index entries are deleted; audit ``shield.revoke``.

Routes for the tenant's trusted partners (token with the ``curate`` scope): ``POST
/shield/v1/shields`` (the same intake, for the token's tenant), ``GET /shield/v1/shields`` (the
tenant's shields: receipts, never codes) and ``DELETE /shield/v1/shields/{shield_id}``.

On uploads (``POST /h/hash``, ``GET /h/hash?url=``, ``POST /m/lookup``), when the token's tenant
holds a shield, the decoding worker also finds the faces (largest few per image or frame) and
their descriptors are matched here in memory, then dropped: never stored or logged. A match is
queued for review (reason ``shield``, ``matches.face_shield``: shield id, score, face box, with
the blurred preview), fires the ``shield.match`` webhook and is written to the audit log; it is
never acted on automatically, and the caller's response body is unchanged (no score, no
shield). Without shields the routes are off (404 with the reason) and uploads do no face work.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from pydantic import BaseModel, Field

from reclaim.api.deps import AfterId, Limit, Platform, PlatformDep, require
from reclaim.platform.shields import Shields, faces_matrix
from reclaim.platform.store import Conflict, Token
from reclaim.shield.protocol import (
    Shield,
    ShieldRefused,
    check_revocation,
    revocation_commitment,
)

if TYPE_CHECKING:
    from reclaim.api.hashing import Hashed
    from reclaim.faces.detect import FaceOptions

router = APIRouter(prefix="/shield/v1", tags=["shields"])

CurateToken = Annotated[Token, Depends(require("curate"))]
#: Largest shield accepted at intake.
MAX_SHIELD_BYTES = 1 << 20
#: A commitment no secret opens: unknown shield ids are checked against it, so that they take
#: the time a wrong secret takes.
_NO_COMMITMENT = revocation_commitment(b"\0" * 32)
_SHIELD_BODY = {
    "requestBody": {
        "required": True,
        "description": "A face shield as her reclaim exports it (Shield.dumps(), at most 1 MiB).",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
ShieldIdPath = Annotated[str, Path(max_length=64)]


class RevokeIn(BaseModel):
    shield_id: str = Field(max_length=64, description="The shield's id (32 hex digits).")
    secret: str = Field(
        max_length=200, description="Her revocation secret: base64 of its 32 bytes."
    )


# -- helpers ----------------------------------------------------------------------------------


def enabled(platform: Platform) -> Shields:
    if platform.shields is None:
        raise HTTPException(
            404,
            "face shields are not enabled on this server (its operator starts it with "
            "--shield-keys PATH)",
        )
    return platform.shields


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _limit(wait: float | None, what: str) -> None:
    if wait is not None:
        secs = max(1, math.ceil(wait))
        raise HTTPException(
            429,
            f"too many {what} requests from this address or for this platform; retry in {secs} s",
            headers={"Retry-After": str(secs)},
        )


def _tenant(platform: Platform, name: str) -> int:
    tid = platform.store.tenant_id(name)
    if tid is None:
        raise HTTPException(404, f"no platform named {name[:100]!r} here")
    return tid


async def _body(request: Request) -> bytes:
    """The request body, refused with 413 past MAX_SHIELD_BYTES (read no further)."""
    too_big = HTTPException(413, f"a shield is at most {MAX_SHIELD_BYTES} bytes")
    try:
        if int(request.headers.get("content-length", "0")) > MAX_SHIELD_BYTES:
            raise too_big
    except ValueError:
        pass
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > MAX_SHIELD_BYTES:
            raise too_big
    return bytes(buf)


def _take_in(
    platform: Platform,
    sh: Shields,
    tenant_id: int,
    tenant: str,
    body: bytes,
    source: str,
    actor: str,
) -> dict[str, Any]:
    """Check, protect and store one shield (in a thread: drawing the scheme takes ~0.2 s)."""

    def refuse(status: int, reason: str) -> HTTPException:
        reason = reason[:300]  # it may quote what the caller sent
        platform.store.audit(
            tenant_id, actor, "shield.intake.refused", "shield", {"reason": reason}
        )
        return HTTPException(status, f"shield refused: {reason}")

    try:
        shield = Shield.loads(body)
    except ShieldRefused as e:
        raise refuse(400, str(e)) from e
    epoch = shield.receipt.epoch
    secret = sh.keys.secret(epoch, active_only=True)
    if secret is None:
        raise refuse(
            422,
            f"it was made under key epoch {epoch}, which this platform does not take; fetch "
            f"/shield/v1/{tenant}/intake-key and make a new shield",
        )
    intake = secret.intake_key(tenant)
    try:
        shield.verify(intake)
        layer, seal = secret.layer(tenant), secret.code_seal(tenant_id)
        codes = [
            seal.seal(layer.protect(t, intake), shield.shield_id, i)
            for i, t in enumerate(shield.templates)
        ]
    except ShieldRefused as e:
        raise refuse(422, str(e)) from e
    target = f"shield:{shield.shield_id}"
    try:
        platform.store.add_shield(
            tenant_id,
            shield_id=shield.shield_id,
            epoch=epoch,
            source=source,
            receipt=shield.receipt.as_json(),
            revocation_commitment=shield.receipt.revocation_commitment,
            codes=codes,
        )
    except Conflict as e:
        raise HTTPException(
            409, "this shield is already held here; to replace it, revoke it and make a new one"
        ) from e
    sh.index.reload(tenant_id)
    platform.store.audit(
        tenant_id,
        actor,
        "shield.intake",
        target,
        {"epoch": epoch, "templates": len(codes), "source": source},
    )
    return {"shield_id": shield.shield_id, "epoch": epoch, "status": "active"}


# -- routes for the people shields protect ------------------------------------------------------


@router.get("/{tenant}/intake-key")
def intake_key(tenant: str, platform: PlatformDep) -> dict[str, Any]:
    """The tenant's intake keys, one per active key epoch: public parameters her reclaim makes a
    shield under (``reclaim shield create --for``). No token."""
    sh = enabled(platform)
    _tenant(platform, tenant)
    sh.index.refresh()  # picks up a rotated key file
    return {"platform": tenant, "keys": [s.intake_key(tenant).as_json() for s in sh.keys.active()]}


@router.post("/{tenant}/intake", status_code=201, openapi_extra=_SHIELD_BODY)
async def intake(tenant: str, request: Request, platform: PlatformDep) -> dict[str, Any]:
    """Take in a face shield sent by the person it protects (no token; rate-limited per address
    and per tenant). 201 ``{"shield_id", "epoch", "status": "active"}``; 400 or 422 with the
    reason when it is refused (malformed, forged, made for another platform or key, too old);
    409 when this shield is already held."""
    sh = enabled(platform)
    address = _address(request)
    _limit(sh.per_ip.hit(("intake", address)), "shield intake")
    tid = _tenant(platform, tenant)
    _limit(sh.per_tenant.hit(("intake", tid)), "shield intake")
    body = await _body(request)
    actor = f"intake:{sh.client_tag(address)}"
    return await asyncio.to_thread(_take_in, platform, sh, tid, tenant, body, "intake", actor)


@router.post("/{tenant}/revoke")
async def revoke(
    tenant: str, body: RevokeIn, request: Request, platform: PlatformDep
) -> dict[str, Any]:
    """Revoke a shield with her revocation secret (no token; rate-limited): the shield, its
    stored codes and its index entries are deleted. 403 (one answer for an unknown id and for
    a wrong secret) when they do not match."""
    sh = enabled(platform)
    address = _address(request)
    _limit(sh.per_ip.hit(("revoke", address)), "shield revocation")
    tid = _tenant(platform, tenant)
    _limit(sh.per_tenant.hit(("revoke", tid)), "shield revocation")
    actor = f"holder:{sh.client_tag(address)}"

    def work() -> None:
        commitment = platform.store.shield_commitment(tid, body.shield_id)
        opened = check_revocation(body.secret, commitment or _NO_COMMITMENT)
        if commitment is None or not opened:
            platform.store.audit(tid, actor, "shield.revoke.refused", "shield", {})
            raise HTTPException(403, "no shield here matches this shield id and secret")
        platform.store.delete_shield(tid, body.shield_id)
        sh.index.reload(tid)
        platform.store.audit(tid, actor, "shield.revoke", f"shield:{body.shield_id}", {})

    await asyncio.to_thread(work)
    return {"shield_id": body.shield_id, "status": "revoked"}


# -- routes for trusted partners (curate scope) -------------------------------------------------


@router.post("/shields", status_code=201, openapi_extra=_SHIELD_BODY)
async def partner_intake(
    request: Request, platform: PlatformDep, token: CurateToken
) -> dict[str, Any]:
    """Take in a shield for the token's tenant, sent by a trusted partner (a helpline) on her
    behalf; checked like the public intake."""
    sh = enabled(platform)
    body = await _body(request)
    actor = f"token:{token.id}:{token.name}"
    return await asyncio.to_thread(
        _take_in, platform, sh, token.tenant_id, token.tenant, body, actor, actor
    )


@router.get("/shields")
def list_shields(
    platform: PlatformDep, token: CurateToken, after_id: AfterId = 0, limit: Limit = 100
) -> dict[str, Any]:
    """The tenant's shields, oldest first: id, shield id, epoch, when, source, consent receipt.
    Never their codes."""
    enabled(platform)
    rows = platform.store.list_shields(token.tenant_id, max(1, min(limit, 500)), after_id)
    return {"shields": [r.as_json() for r in rows]}


@router.delete("/shields/{shield_id}")
def delete_shield(
    shield_id: ShieldIdPath, platform: PlatformDep, token: CurateToken
) -> dict[str, int]:
    """Remove one of the tenant's shields on the platform's side (her revocation is
    ``/{tenant}/revoke``): the shield, its codes and index entries. 404 when not the tenant's."""
    sh = enabled(platform)
    target = f"shield:{shield_id}"
    if not platform.store.delete_shield(token.tenant_id, shield_id):
        platform.audit(token, "shield.delete.not_found", target)
        raise HTTPException(404, f"shield {shield_id!r} not found")
    sh.index.reload(token.tenant_id)
    platform.audit(token, "shield.delete", target)
    return {"deleted": 1}


# -- uploads ----------------------------------------------------------------------------------


def face_options(platform: Platform) -> FaceOptions:
    from reclaim.faces.detect import FaceOptions

    cfg = platform.settings
    fast = cfg.shield_detect == "fast"
    return FaceOptions(
        max_faces=cfg.shield_max_faces,
        max_video_frames=cfg.shield_video_frames,
        hog=not fast,
        cnn="off" if fast else "fallback",
    )


async def wants_faces(platform: Platform, token: Token) -> bool:
    """Does an upload of this token's tenant need its faces found (the tenant holds shields)?"""
    sh = platform.shields
    if sh is None:
        return False
    return await asyncio.to_thread(sh.index.count, token.tenant_id) > 0


async def match_upload(platform: Platform, token: Token, hashed: Hashed) -> list[dict[str, Any]]:
    """The tenant's shields matched by the upload's faces, best first, as review entries
    (shield id, score, face box). The descriptors are dropped from ``hashed`` here."""
    faces, hashed.faces = hashed.faces, []
    sh = platform.shields
    if not faces or sh is None:
        return []
    x = faces_matrix([f.descriptor for f in faces])
    hits = await asyncio.to_thread(
        sh.index.match, token.tenant_id, token.tenant, x, platform.settings.shield_threshold
    )
    del x
    out = []
    for h in hits:
        f = faces[h.face]
        entry: dict[str, Any] = {
            "shield_id": h.shield_id,
            "score": round(h.score, 4),
            "face_box": list(f.box),
        }
        if f.frame is not None:
            entry["frame"] = f.frame
            entry["timestamp_s"] = f.timestamp_s
        out.append(entry)
    return out


async def queue_upload(
    platform: Platform,
    token: Token,
    response: Response,
    hashed: Hashed,
    *,
    reason: str,
    matches: dict[str, Any],
    hits: list[dict[str, Any]],
) -> int:
    """Queue the upload for review (blurred preview, signals, matches); for shield hits also
    the ``shield.match`` audit entry and webhook. Sets ``X-Reclaim-Review-Item``."""
    from reclaim.api.hashing import blurred_preview

    preview = await blurred_preview(hashed, platform)
    if hits:
        matches = {**matches, "face_shield": hits}
    signals = {k: v for k, v in hashed.signals.items() if k != "vpdq"}
    actor = f"token:{token.id}:{token.name}"

    def work() -> int:
        item_id = platform.store.create_review_item(
            token.tenant_id,
            reason=reason,
            sha256=hashed.sha256,
            media_kind=hashed.kind,
            signals=signals,
            matches=matches,
            preview=preview,
            submitted_by=actor,
        )
        target = f"review_item:{item_id}"
        platform.audit(token, "review.queued", target, reason=reason)
        if hits:
            platform.audit(
                token,
                "shield.match",
                target,
                shields=[h["shield_id"] for h in hits],
                scores=[h["score"] for h in hits],
            )
            platform.webhooks.emit(
                token.tenant_id,
                "shield.match",
                {
                    "review_item_id": item_id,
                    "status": "pending",
                    "reason": reason,
                    "sha256": hashed.sha256,
                    "media_kind": hashed.kind,
                    "signals": signals,
                    "matches": matches,
                },
            )
        return item_id

    item_id = await asyncio.to_thread(work)
    response.headers["X-Reclaim-Review-Item"] = str(item_id)
    return item_id


async def review_hits(platform: Platform, token: Token, response: Response, hashed: Hashed) -> None:
    """Hashing routes: queue the upload when its faces match a shield of the tenant."""
    hits = await match_upload(platform, token, hashed)
    if hits:
        await queue_upload(
            platform, token, response, hashed, reason="shield", matches={}, hits=hits
        )
