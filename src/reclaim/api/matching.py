"""Matching (HMA ``/m``): look up hashes or uploads in the tenant's banks.

Response shapes follow Meta's OpenMediaMatch ``matching`` blueprint:

- ``GET /m/raw_lookup`` → ``{"matches": [content_id, …]}``, or with ``include_distance=true``
  ``{"matches": [{"bank_content_id": 1, "distance": "4"}, …]}``;
- ``GET /m/lookup`` (one signal) → ``{"BANK": [{"bank_content_id": 1, "distance": "4"}]}``;
- ``POST /m/lookup`` (file) and ``GET /m/lookup?url=`` → ``{"pdq": {"BANK": […]}, "md5": {…}}``
  keyed by signal type (with ``signal_type=`` too: that type's part only);
- ``POST /m/compare`` ``{"pdq": [a, b]}`` → ``{"pdq": [true, {"distance": 9}]}``.

Like HMA, ``/m/lookup`` applies each bank's ``matching_enabled_ratio`` (a coin flip seeded by
``seed``; ``bypass_coinflip=true`` skips it) and leaves out content disabled by its
``disable_until_ts``; ``raw_lookup`` does neither. A file (or URL) lookup with any match is put in
the review queue (its id in the ``X-Reclaim-Review-Item`` header), and so is one whose faces
match one of the tenant's face shields (``reclaim.api.shields``).

A file (or URL) is hashed the way the tenant's banks were (``reclaim.hashes.pdq`` flavours): its
PDQ in each flavour those banks use (``Matcher.pdq_flavours``; one for a tenant whose banks all
use one), all in one call to the decoding pool; each hash is looked up, and a PDQ hit counts only
when the signal's flavour (its own, or its bank's) is the hash's. A content item matched in more
than one flavour is listed once, at its smallest distance.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from reclaim.api import shields
from reclaim.api.deps import Platform, PlatformDep, require
from reclaim.api.hashing import (
    SERVICE_PDQ_FLAVOUR,
    Hashed,
    content_type_hint,
    hash_bytes,
    hash_url,
    pick_types,
    read_upload,
)
from reclaim.hashes import Index, by_exchange_name, exchange_names
from reclaim.platform.matcher import Match
from reclaim.platform.signals import SignalRejected, canonical, load_json
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
    platform: Platform, token: Token, matches: list[Match], seed: str | None, bypass: bool
) -> dict[str, list[dict[str, Any]]]:
    """HMA's ``lookup``: matches by bank, without disabled content and banks that lose the
    coin flip."""
    coin = 0.0 if bypass else random.Random(seed).random()
    disabled = platform.store.disabled_contents(
        token.tenant_id, sorted({m.content_id for m in matches}), time.time()
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for m in matches:
        bank = platform.matcher.banks.get(m.bank_id)
        if bank is None or bank.enabled_ratio < coin or m.content_id in disabled:
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
async def lookup_get(
    platform: PlatformDep,
    token: MatchToken,
    response: Response,
    signal: str | None = None,
    signal_type: str | None = None,
    url: str | None = None,
    content_type: str | None = None,
    types: str | None = None,
    banks: str | None = None,
    seed: str | None = None,
    bypass_coinflip: bool = False,
    review: bool = True,
) -> dict[str, Any]:
    """Matching banks for one hash (``signal`` + ``signal_type``): ``{bank: [{bank_content_id,
    distance}]}``; or, where the server fetches URLs, for the media at ``url``: ``{signal_type:
    {bank: [...]}}`` as a file lookup (``signal_type=`` then keeps that type's part only)."""
    if url:
        content_type_hint(content_type)
        faces = review and await shields.wants_faces(platform, token)
        flavours = await _upload_flavours(platform, token, banks)
        hashed = await hash_url(url, platform, faces=faces, pdq_flavours=flavours)
        hashed.signals = pick_types(hashed, types, default_all=True)
        out = await _lookup_hashed(
            platform, token, response, hashed, banks, seed, bypass_coinflip, review
        )
        if signal_type is not None:
            return out.get(signal_type, {})
        return out
    if not signal or not signal_type:
        raise HTTPException(400, "Either url or both signal and signal_type are required")
    return await asyncio.to_thread(
        _lookup_by_bank, platform, token, signal_type, signal, banks, seed, bypass_coinflip
    )


def _lookup_by_bank(
    platform: Platform,
    token: Token,
    signal_type: str,
    signal: str,
    banks: str | None,
    seed: str | None,
    bypass: bool,
) -> dict[str, list[dict[str, Any]]]:
    found = _lookup(platform, token, signal_type, signal, _banks(banks))
    return _by_bank(platform, token, found, seed, bypass)


async def _upload_flavours(platform: Platform, token: Token, banks: str | None) -> list[str]:
    """The PDQ flavours to hash an upload in for this tenant's banks (``banks=``: those);
    the service's own when none needs one."""
    need = await asyncio.to_thread(platform.matcher.pdq_flavours, token.tenant_id, _banks(banks))
    return need or [SERVICE_PDQ_FLAVOUR]


def _pdq_matches(
    platform: Platform, token: Token, hashed: Hashed, wanted: set[str] | None
) -> list[Match]:
    """The upload's PDQ hits: each flavour's hash among the signals of that flavour; a content
    item found in several flavours once, at its smallest distance."""
    best: dict[int, Match] = {}
    for flavour, (value, quality) in hashed.pdq.items():
        for m in platform.matcher.lookup(
            token.tenant_id, "pdq", value, wanted, quality, pdq_flavour=flavour
        ):
            have = best.get(m.content_id)
            if have is None or int(m.distance) < int(have.distance):
                best[m.content_id] = m  # (keeps its first place: dicts keep insertion order)
    return list(best.values())


def _match_signals(
    platform: Platform,
    token: Token,
    hashed: Hashed,
    banks: str | None,
    seed: str | None,
    bypass: bool,
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    wanted = _banks(banks)
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for st, value in hashed.signals.items():
        if st == "pdq" and hashed.pdq:
            found = _pdq_matches(platform, token, hashed, wanted)
        else:
            found = platform.matcher.lookup(
                token.tenant_id, st, value, wanted, hashed.quality.get(st) if st == "pdq" else None
            )
        out[st] = _by_bank(platform, token, found, seed, bypass)
    return out


async def _lookup_hashed(
    platform: Platform,
    token: Token,
    response: Response,
    hashed: Hashed,
    banks: str | None,
    seed: str | None,
    bypass: bool,
    review: bool,
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Look up every signal of an upload (or a fetched URL); queue it for review on a bank or
    face-shield match (``review=false``: never)."""
    out = await asyncio.to_thread(_match_signals, platform, token, hashed, banks, seed, bypass)
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
    flavours = await _upload_flavours(platform, token, banks)
    hashed = await hash_bytes(data, platform, faces=faces, pdq_flavours=flavours)
    return await _lookup_hashed(
        platform, token, response, hashed, banks, seed, bypass_coinflip, review
    )


def _similarity(signal_type: str, a: str, b: str) -> list[Any]:
    """pytx's ``compare_hash`` result as HMA answers it: ``[match, similarity]``, similarity
    ``{"distance": bits}`` for PDQ, the two match shares for vPDQ, ``{}`` for exact types."""
    sig = by_exchange_name(signal_type)
    if sig is None:
        raise HTTPException(
            400,
            f"No such SignalType '{signal_type[:40]}'; use one of {', '.join(exchange_names())}",
        )
    try:
        cmp = sig.compare(canonical(signal_type, a), canonical(signal_type, b))
    except (SignalRejected, ValueError) as e:
        raise HTTPException(400, f"Invalid {signal_type[:40]} hash: {e}") from e
    if sig.index is Index.PDQ:
        return [cmp.match, {"distance": int(cmp.distance)}]
    if sig.index is Index.PDQ_FRAMES:
        query, _, compared = cmp.hma_distance().partition(",")
        return [
            cmp.match,
            {"query_match_percent": float(query), "compared_match_percent": float(compared)},
        ]
    return [cmp.match, {}]


@router.post("/compare")
async def compare(
    request: Request, platform: PlatformDep, token: MatchToken
) -> dict[str, list[Any]]:
    """Compare pairs of hashes (HMA): ``{"pdq": [a, b], ...}`` → ``{"pdq": [true, {"distance":
    9}], ...}``, at each type's default threshold (PDQ: 31 bits). 400 unless every value is a
    list of exactly two valid hashes of a known type."""
    try:
        data = load_json(await request.body(), "the request body")
    except SignalRejected as e:
        raise HTTPException(400, str(e)) from e
    if not isinstance(data, dict):
        raise HTTPException(400, "Request input was not a dict")
    out: dict[str, list[Any]] = {}
    for st, pair in data.items():
        if not isinstance(pair, list):
            raise HTTPException(400, f"Comparison hashes for {st[:40]} was not a list")
        if len(pair) != 2:
            raise HTTPException(400, "Comparison hash list length must be exactly 2")
        if not all(isinstance(h, str) for h in pair):
            raise HTTPException(400, f"Invalid {st[:40]} hash: hashes must be strings")
        out[st] = await asyncio.to_thread(_similarity, st, pair[0], pair[1])
    return out


@router.get("/index/status")
def index_status(
    platform: PlatformDep, token: MatchToken, signal_type: str | None = None
) -> dict[str, dict[str, object]]:
    """HMA's index status: ``{signal_type: {present, built_to, size}}`` (``signal_type=``: that
    type's only); ``size`` counts the token's tenant's hashes only."""
    platform.matcher.refresh()
    status = platform.matcher.status(token.tenant_id)
    if signal_type is None:
        return status
    if signal_type not in status:
        raise HTTPException(400, f"No such signal type '{signal_type[:40]}'")
    return {signal_type: status[signal_type]}
