"""Matching (HMA ``/m``): look up hashes or uploads in the tenant's banks.

Response shapes follow Meta's OpenMediaMatch ``matching`` blueprint:

- ``GET /m/raw_lookup`` → ``{"matches": [content_id, …]}``, or with ``include_distance=true``
  ``{"matches": [{"bank_content_id": 1, "distance": "4"}, …]}``;
- ``GET /m/lookup`` (one signal) → ``{"BANK": [{"bank_content_id": 1, "distance": "4"}]}``;
- ``POST /m/lookup`` (file) → ``{"pdq": {"BANK": […]}, "md5": {…}}`` keyed by signal type.

Like HMA, ``/m/lookup`` applies each bank's ``matching_enabled_ratio`` (a coin flip seeded by
``seed``; ``bypass_coinflip=true`` skips it), ``raw_lookup`` does not. A file lookup with any
match is put in the review queue (its id in the ``X-Reclaim-Review-Item`` header), and so is one
whose faces match one of the tenant's face shields (``reclaim.api.shields``).
"""

from __future__ import annotations

import random
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from reclaim.api import shields
from reclaim.api.deps import Platform, PlatformDep, require
from reclaim.api.hashing import hash_bytes, read_upload
from reclaim.platform.matcher import Match
from reclaim.platform.signals import SignalRejected, canonical
from reclaim.platform.store import Token

router = APIRouter(prefix="/m", tags=["matching"])

MatchToken = Annotated[Token, Depends(require("match"))]


def _banks(param: str | None) -> set[str] | None:
    if not param:
        return None
    return {b.strip() for b in param.split(",") if b.strip()}


def _lookup(
    platform: Platform,
    token: Token,
    signal_type: str,
    signal: str,
    banks: set[str] | None,
    quality: int | None = None,
) -> list[Match]:
    try:
        value = canonical(signal_type, signal)
    except SignalRejected as e:
        raise HTTPException(400, str(e)) from e
    return platform.matcher.lookup(token.tenant_id, signal_type, value, banks, quality)


def _by_bank(
    platform: Platform, matches: list[Match], seed: str | None, bypass: bool
) -> dict[str, list[dict[str, Any]]]:
    coin = 0.0 if bypass else random.Random(seed).random()
    out: dict[str, list[dict[str, Any]]] = {}
    for m in matches:
        bank = platform.matcher.banks.get(m.bank_id)
        if bank is None or bank.enabled_ratio < coin:
            continue
        out.setdefault(m.bank, []).append({"bank_content_id": m.content_id, "distance": m.distance})
    return out


@router.get("/raw_lookup")
def raw_lookup(
    signal: str,
    signal_type: str,
    platform: PlatformDep,
    token: MatchToken,
    banks: str | None = None,
    include_distance: bool = False,
) -> dict[str, list[Any]]:
    """Look up one hash in the similarity index (bank enable ratios are not applied)."""
    found = _lookup(platform, token, signal_type, signal, _banks(banks))
    if include_distance:
        return {
            "matches": [{"bank_content_id": m.content_id, "distance": m.distance} for m in found]
        }
    return {"matches": [m.content_id for m in found]}


@router.get("/lookup")
def lookup_get(
    signal: str,
    signal_type: str,
    platform: PlatformDep,
    token: MatchToken,
    banks: str | None = None,
    seed: str | None = None,
    bypass_coinflip: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """Matching banks for one hash: ``{bank: [{bank_content_id, distance}]}``."""
    found = _lookup(platform, token, signal_type, signal, _banks(banks))
    return _by_bank(platform, found, seed, bypass_coinflip)


@router.post("/lookup")
async def lookup_post(
    request: Request,
    response: Response,
    platform: PlatformDep,
    token: MatchToken,
    banks: str | None = None,
    seed: str | None = None,
    bypass_coinflip: bool = False,
    review: bool = True,
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Hash an uploaded file and look up every signal: ``{signal_type: {bank: [...]}}``.

    Its faces are also matched against the tenant's face shields (``reclaim.api.shields``); a
    bank match or a shield match queues it for review (``review=false``: neither). The body
    holds the bank matches only."""
    data, _hint, _ = await read_upload(request)
    faces = review and await shields.wants_faces(platform, token)
    hashed = await hash_bytes(data, platform, faces=faces)
    wanted = _banks(banks)
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for st, value in hashed.signals.items():
        found = platform.matcher.lookup(
            token.tenant_id, st, value, wanted, hashed.quality.get(st) if st == "pdq" else None
        )
        out[st] = _by_bank(platform, found, seed, bypass_coinflip)
    hits = await shields.match_upload(platform, token, hashed)
    banked = review and platform.settings.review_on_match and any(out.values())
    if banked or hits:
        reason = "match+shield" if banked and hits else "match" if banked else "shield"
        await shields.queue_upload(
            platform,
            token,
            response,
            hashed,
            reason=reason,
            matches=dict(out) if banked else {},
            hits=hits,
        )
    return out


@router.get("/index/status")
def index_status(platform: PlatformDep, token: MatchToken) -> dict[str, dict[str, object]]:
    """HMA's index status: ``{signal_type: {present, built_to, size}}``; ``size`` counts the
    token's tenant's hashes only."""
    platform.matcher.refresh()
    return platform.matcher.status(token.tenant_id)
