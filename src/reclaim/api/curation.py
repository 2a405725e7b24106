"""Curation (HMA ``/c``): banks and their content, bulk import and export.

Bank names follow HMA (``UPPER_WITH_UNDERSCORE``) and belong to the token's tenant; another
tenant's bank of the same name is a different bank and is never visible. Every change is written
to the audit log; so is an attempt to remove content that is not in the named bank of the
token's tenant (404, nothing changed).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import PlainTextResponse

from reclaim.api.deps import Platform, PlatformDep, RowId, require
from reclaim.api.hashing import hash_bytes, hash_url, json_field, read_upload
from reclaim.platform.signals import (
    SignalRejected,
    check_metadata,
    export_csv,
    load_json,
    parse_bulk,
    signals_from_mapping,
)
from reclaim.platform.store import Bank, Conflict, Token

router = APIRouter(prefix="/c", tags=["curation"])

CurateToken = Annotated[Token, Depends(require("curate"))]
BANK_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,99}")
MAX_IMPORT_ITEMS = 200_000


def _bank(platform: Platform, token: Token, name: str) -> Bank:
    bank = platform.store.get_bank(token.tenant_id, name)
    if bank is None:
        raise HTTPException(404, f"bank '{name[:100]}' not found")
    return bank


async def _json(request: Request) -> dict[str, Any]:
    try:
        data = load_json(await request.body(), "the request body")
    except SignalRejected as e:
        raise HTTPException(400, f"this endpoint expects a JSON object body: {e}") from e
    if not isinstance(data, dict):
        raise HTTPException(400, "this endpoint expects a JSON object body")
    return data


def _ratio(data: dict[str, Any], default: float) -> float:
    if "enabled_ratio" in data:
        try:
            r = float(data["enabled_ratio"])
        except (TypeError, ValueError, OverflowError) as e:
            raise HTTPException(400, "enabled_ratio must be a number in 0..1") from e
        if not 0.0 <= r <= 1.0:
            raise HTTPException(400, "enabled_ratio must be a number in 0..1")
        return r
    if "enabled" in data:
        return 1.0 if data["enabled"] in (True, 1, "1", "true", "True") else 0.0
    return default


def _distance(data: dict[str, Any], default: int) -> int:
    if "pdq_distance" not in data:
        return default
    d = data["pdq_distance"]
    if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 96:
        raise HTTPException(400, "pdq_distance must be an integer in 0..96 (default 31)")
    return d


@router.get("/banks")
def banks_index(platform: PlatformDep, token: CurateToken) -> list[dict[str, Any]]:
    return [b.as_hma() for b in platform.store.list_banks(token.tenant_id)]


@router.post("/banks", status_code=201)
async def bank_create(
    request: Request, platform: PlatformDep, token: CurateToken
) -> dict[str, Any]:
    data = await _json(request)
    name = data.get("name")
    if not isinstance(name, str) or not BANK_NAME.fullmatch(name):
        raise HTTPException(400, "Bank names must be UPPER_WITH_UNDERSCORE")
    try:
        bank = platform.store.create_bank(
            token.tenant_id, name, _ratio(data, 1.0), _distance(data, 31)
        )
    except Conflict as e:
        raise HTTPException(403, "Bank already exists") from e
    platform.matcher.refresh(force=True)
    platform.audit(token, "bank.create", f"bank:{name}", **bank.as_hma())
    return bank.as_hma()


@router.get("/bank/{bank_name}")
def bank_show(bank_name: str, platform: PlatformDep, token: CurateToken) -> dict[str, Any]:
    bank = _bank(platform, token, bank_name)
    return {
        **bank.as_hma(),
        "content_count": platform.store.count_contents(token.tenant_id, bank),
    }


@router.put("/bank/{bank_name}")
async def bank_update(
    bank_name: str, request: Request, platform: PlatformDep, token: CurateToken
) -> dict[str, Any]:
    bank = _bank(platform, token, bank_name)
    data = await _json(request)
    new_name = data.get("name")
    if new_name is not None and (
        not isinstance(new_name, str) or not BANK_NAME.fullmatch(new_name)
    ):
        raise HTTPException(400, "Bank names must be UPPER_WITH_UNDERSCORE")
    try:
        updated = platform.store.update_bank(
            token.tenant_id,
            bank,
            name=new_name,
            enabled_ratio=_ratio(data, bank.enabled_ratio),
            pdq_distance=_distance(data, bank.pdq_distance),
        )
    except Conflict as e:
        raise HTTPException(403, "Bank already exists") from e
    if updated is None:  # deleted since it was looked up
        raise HTTPException(404, f"bank '{bank_name[:100]}' not found")
    platform.matcher.refresh(force=True)
    platform.audit(token, "bank.update", f"bank:{bank_name}", **updated.as_hma())
    return updated.as_hma()


@router.delete("/bank/{bank_name}")
def bank_delete(bank_name: str, platform: PlatformDep, token: CurateToken) -> dict[str, str]:
    bank = platform.store.get_bank(token.tenant_id, bank_name)
    if bank is not None:  # HMA: deleting a missing bank is not an error
        n = platform.store.delete_bank(token.tenant_id, bank)
        if n is not None:
            platform.matcher.refresh(force=True)
            platform.audit(token, "bank.delete", f"bank:{bank_name}", contents=n)
    return {"message": "Done"}


def _add(
    platform: Platform,
    token: Token,
    bank: Bank,
    signals: list[tuple[str, str, int | None]],
    metadata: dict[str, Any],
) -> dict[str, Any]:
    (cid,) = platform.store.add_contents(token.tenant_id, bank, [(signals, metadata)])
    platform.matcher.refresh(force=True)
    platform.audit(
        token,
        "content.add",
        f"bank:{bank.name}/content:{cid}",
        signal_types=sorted({s[0] for s in signals}),
    )
    return {"id": cid, "signals": {st: v for st, v, _ in signals}}


@router.post("/bank/{bank_name}/content")
async def bank_add_file(
    bank_name: str,
    request: Request,
    platform: PlatformDep,
    token: CurateToken,
    url: str | None = None,
) -> dict[str, Any]:
    """Add content by uploading a file (multipart; optional ``metadata`` JSON form field)
    or, where the server fetches URLs, by ``?url=``. Returns ``{"id", "signals"}``."""
    bank = _bank(platform, token, bank_name)
    if url:
        hashed = await hash_url(url, platform)
        metadata: Any = None
    else:
        data, _hint, fields = await read_upload(request)
        hashed = await hash_bytes(data, platform)
        metadata = json_field(fields, "metadata")
    try:
        meta = check_metadata(metadata)
    except SignalRejected as e:
        raise HTTPException(400, str(e)) from e
    signals = [(st, v, hashed.quality.get(st)) for st, v in hashed.signals.items()]
    return _add(platform, token, bank, signals, meta)


@router.post("/bank/{bank_name}/signal")
async def bank_add_signals(
    bank_name: str, request: Request, platform: PlatformDep, token: CurateToken
) -> dict[str, Any]:
    """Add hashes directly: ``{"pdq": "…", "md5": "…"}`` (HMA); reclaim also reads optional
    ``"metadata": {…}`` and ``"quality": {"pdq": 90}`` keys."""
    bank = _bank(platform, token, bank_name)
    data = await _json(request)
    metadata = data.pop("metadata", None)
    quality = data.pop("quality", None) or {}
    try:
        if not isinstance(quality, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 100
            for v in quality.values()
        ):
            raise SignalRejected("quality must map signal types to integers in 0..100")
        signals = signals_from_mapping(data, quality)
        meta = check_metadata(metadata)
    except SignalRejected as e:
        raise HTTPException(400, str(e)) from e
    return _add(platform, token, bank, signals, meta)


@router.get("/bank/{bank_name}/content/{content_id}")
def bank_get_content(
    bank_name: str, content_id: RowId, platform: PlatformDep, token: CurateToken
) -> dict[str, Any]:
    bank = _bank(platform, token, bank_name)
    got = [
        c
        for c in platform.store.get_contents(token.tenant_id, [content_id])
        if c.bank_id == bank.id
    ]
    if not got:
        raise HTTPException(404, f"content {content_id} not found in bank '{bank_name}'")
    c = got[0]
    return {
        "id": c.id,
        "bank": c.bank,
        "enabled": c.enabled,
        "created_at": c.created_at,
        "metadata": c.metadata,
        "signals": {st: v for st, v, _ in c.signals},
    }


@router.delete("/bank/{bank_name}/content/{content_id}")
def bank_delete_content(
    bank_name: str, content_id: RowId, platform: PlatformDep, token: CurateToken
) -> dict[str, int]:
    """Remove one content item of the bank: ``{"deleted": 1}``; 404 when the bank has no such
    item (another bank's, or another tenant's: nothing is changed, the attempt is audited)."""
    bank = _bank(platform, token, bank_name)
    target = f"bank:{bank_name}/content:{content_id}"
    if not platform.store.remove_content(token.tenant_id, bank, content_id):
        platform.audit(token, "content.remove.not_found", target)
        raise HTTPException(404, f"content {content_id} not found in bank '{bank_name}'")
    platform.matcher.refresh(force=True)
    platform.audit(token, "content.remove", target)
    return {"deleted": 1}


@router.post("/bank/{bank_name}/import")
async def bank_import(
    bank_name: str, request: Request, platform: PlatformDep, token: CurateToken
) -> dict[str, Any]:
    """Bulk import (all or nothing): the CSV ``reclaim protect`` writes (any CSV with
    ``signal_type``/``signal`` columns; one item per row) or JSON
    ``{"items": [{"signals": {"pdq": "…"}, "metadata": {…}}]}``."""
    bank = _bank(platform, token, bank_name)
    body = await request.body()
    try:
        records = parse_bulk(body, request.headers.get("content-type", ""))
    except SignalRejected as e:
        raise HTTPException(400, f"nothing imported: {e}") from e
    if len(records) > MAX_IMPORT_ITEMS:
        raise HTTPException(413, f"import has more than {MAX_IMPORT_ITEMS} items; split it")
    ids = platform.store.add_contents(token.tenant_id, bank, records)
    platform.matcher.refresh(force=True)
    platform.audit(token, "content.import", f"bank:{bank_name}", items=len(ids))
    return {"imported": len(ids), "ids": ids}


@router.get("/bank/{bank_name}/export", response_model=None)
def bank_export(
    bank_name: str,
    platform: PlatformDep,
    token: CurateToken,
    format: str = "json",
) -> Any:
    """Every item of the bank, as JSON (HMA vocabulary, re-importable) or CSV."""
    if format not in ("json", "csv"):
        raise HTTPException(400, "format must be json or csv")
    bank = _bank(platform, token, bank_name)
    items = []
    after = 0
    while True:
        page = platform.store.list_contents(token.tenant_id, bank, after_id=after, limit=1000)
        if not page:
            break
        items.extend(page)
        after = page[-1].id
    platform.audit(token, "content.export", f"bank:{bank_name}", items=len(items), format=format)
    if format == "csv":
        rows = [(c.id, st, v, q, c.metadata) for c in items for st, v, q in c.signals]
        return PlainTextResponse(export_csv(rows), media_type="text/csv")
    return {
        "bank": bank.as_hma(),
        "items": [
            {
                "id": c.id,
                "signals": {st: v for st, v, _ in c.signals},
                "quality": {st: q for st, _, q in c.signals if q is not None},
                "metadata": c.metadata,
            }
            for c in items
        ],
    }
