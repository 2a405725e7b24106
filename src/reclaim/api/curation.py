"""Curation (HMA ``/c``): banks and their content, bulk import and export.

Bank names follow HMA (``UPPER_WITH_UNDERSCORE``) and belong to the token's tenant; another
tenant's bank of the same name is a different bank and is never visible. Every change is written
to the audit log; so is an attempt to change or remove content that is not in the named bank of
the token's tenant (404, nothing changed).

Objects are HMA's, key for key: a bank is ``{"name", "matching_enabled_ratio"}`` (HMA's clients
and tests compare whole bank objects), a content item is HMA's ``BankContentResponse``. reclaim's
own keys (a bank's ``pdq_distance`` and ``pdq_flavour``, and ``content_count`` for one bank; a
content item's ``created_at``, signal ``quality`` and ``pdq_flavour``) are added with
``include_reclaim=true`` on any of these routes — the ``include_*`` query flag is how HMA itself
adds optional parts (``include_signals``, ``include_metadata``, ``include_distance``). Writes
accept ``pdq_distance`` and ``pdq_flavour`` in the body either way (HMA ignores keys it does not
know).

PDQ flavours (``reclaim.hashes.pdq``): a bank's ``pdq_flavour`` is how uploads are hashed to
match it: ``pytx`` (python-threatexchange's, what HMA computes; the default, as for exchange
banks) or ``reference`` (Meta's reference hasher, as ``reclaim scan``). A file added to a bank is
hashed in the bank's flavour, or in the one its metadata names (``json.pdq_flavour``); hashes
added as such (``/signal``, ``/import``) follow the bank unless their metadata names a flavour
(the ``pdq_flavour`` column of ``reclaim protect``'s CSV: ``reference``, ``pytx``, or ``both``
for a hash that either matches).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse

from reclaim.api.deps import Platform, PlatformDep, RowId, require
from reclaim.api.hashing import (
    SERVICE_PDQ_FLAVOUR,
    content_type_hint,
    hash_bytes,
    hash_url,
    json_field,
    pick_types,
    read_upload,
)
from reclaim.platform.signals import (
    SignalRejected,
    check_metadata,
    export_csv,
    load_json,
    parse_bulk,
    signals_from_mapping,
)
from reclaim.platform.store import Bank, Conflict, Content, Token
from reclaim.platform.store.banks import (
    BANK_FLAVOURS,
    DISABLED,
    ENABLED,
    MAX_NOTE,
    pdq_flavour_of,
)

router = APIRouter(prefix="/c", tags=["curation"])

CurateToken = Annotated[Token, Depends(require("curate"))]
BANK_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,99}")
MAX_IMPORT_ITEMS = 200_000
#: HMA's ``BankedContentMetadata`` (no other key): each key's JSON type.
HMA_METADATA: dict[str, type] = {
    "content_id": str,
    "content_uri": str,
    "json": dict,
    "collab": dict,
}
#: HMA refuses a ``disable_until_ts`` further ahead than this.
MAX_DISABLE_AHEAD_S = 5 * 365 * 24 * 3600

IncludeReclaim = Annotated[
    bool,
    Query(
        description="Add reclaim's own keys to HMA's objects (a bank's pdq_distance, "
        "pdq_flavour and, for one bank, content_count; a content item's created_at, signal "
        "quality and pdq_flavour)."
    ),
]


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


def _flavour(data: dict[str, Any], default: str) -> str:
    """A bank's ``pdq_flavour`` from a request body (``default`` when absent); 400 otherwise."""
    if "pdq_flavour" not in data:
        return default
    f = data["pdq_flavour"]
    if not isinstance(f, str) or f.strip().lower() not in BANK_FLAVOURS:
        raise HTTPException(
            400,
            "pdq_flavour must be pytx (python-threatexchange's PDQ, what HMA computes: the "
            "default) or reference (Meta's reference hasher, as reclaim scan): how uploads are "
            "hashed to match this bank",
        )
    return f.strip().lower()


def _row_flavour(metadata: dict[str, Any], what: str = "") -> str | None:
    """The PDQ flavour a content item's metadata names (``json.pdq_flavour``); 400 when it is
    not one (``what``: which item, for the message)."""
    try:
        return pdq_flavour_of(metadata)
    except ValueError as e:
        raise HTTPException(400, f"{what}{e}") from e


def _bank_json(bank: Bank, extras: bool) -> dict[str, Any]:
    return bank.as_reclaim() if extras else bank.as_hma()


def _hma_metadata(metadata: Any) -> dict[str, Any]:
    """Metadata checked as HMA checks it (only ``content_id``, ``content_uri``, ``json`` and
    ``collab``, each of its type), within reclaim's size and nesting caps; 400 otherwise."""
    try:
        meta = check_metadata(metadata)
    except SignalRejected as e:
        raise HTTPException(400, str(e)) from e
    unexpected = sorted(set(meta) - set(HMA_METADATA))
    if unexpected:
        raise HTTPException(
            400,
            f"metadata contains unexpected keys: {', '.join(k[:40] for k in unexpected[:10])}; "
            "use content_id, content_uri, json (any JSON object) and collab",
        )
    for key, kind in HMA_METADATA.items():
        v = meta.get(key)
        if v is not None and not isinstance(v, kind):
            what = "a string" if kind is str else "a JSON object"
            raise HTTPException(400, f"metadata {key} must be {what}")
    collab = meta.get("collab")
    if collab is not None and not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in collab.values()
    ):
        raise HTTPException(400, "metadata collab must map names to lists of strings")
    return {k: v for k, v in meta.items() if v is not None}


def _note(note: Any) -> str:
    """HMA's note: a string of at most 255 characters ("" or null: no note); 400 otherwise."""
    if note is None:
        return ""
    if not isinstance(note, str):
        raise HTTPException(400, "note must be a string")
    if len(note) > MAX_NOTE:
        raise HTTPException(400, f"note is longer than {MAX_NOTE} characters")
    return note


def _content_json(
    c: Content, bank: Bank, *, signals: bool, metadata: bool, extras: bool
) -> dict[str, Any]:
    """HMA's ``BankContentResponse``: ``signals`` only when asked, ``metadata`` and ``note``
    only when the item has them (``metadata`` unless ``include_metadata=false``)."""
    out: dict[str, Any] = {
        "id": c.id,
        "disable_until_ts": c.disable_until_ts,
        "original_media_uri": None,
        "bank": _bank_json(bank, extras),
    }
    if signals and c.signals:
        out["signals"] = {st: v for st, v, _ in c.signals}
    if metadata and c.metadata:
        out["metadata"] = c.metadata
    if c.note:
        out["note"] = c.note
    if extras:
        out["created_at"] = c.created_at
        if signals:
            out["quality"] = {st: q for st, _, q in c.signals if q is not None}
        if any(st == "pdq" for st, _, _ in c.signals):
            out["pdq_flavour"] = c.pdq_flavour or bank.pdq_flavour
    return out


def _content(platform: Platform, token: Token, bank: Bank, content_id: int) -> Content:
    got = [
        c
        for c in platform.store.get_contents(token.tenant_id, [content_id])
        if c.bank_id == bank.id
    ]
    if not got:
        raise HTTPException(404, f"content {content_id} not found in bank '{bank.name}'")
    return got[0]


def _distance(data: dict[str, Any], default: int) -> int:
    if "pdq_distance" not in data:
        return default
    d = data["pdq_distance"]
    if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 96:
        raise HTTPException(400, "pdq_distance must be an integer in 0..96 (default 31)")
    return d


@router.get("/banks")
def banks_index(
    platform: PlatformDep, token: CurateToken, include_reclaim: IncludeReclaim = False
) -> list[dict[str, Any]]:
    return [_bank_json(b, include_reclaim) for b in platform.store.list_banks(token.tenant_id)]


@router.post("/banks", status_code=201)
async def bank_create(
    request: Request,
    platform: PlatformDep,
    token: CurateToken,
    include_reclaim: IncludeReclaim = False,
) -> dict[str, Any]:
    """Create a bank: ``{"name": "UPPER_WITH_UNDERSCORE"}``, optional ``enabled_ratio`` (or
    ``enabled``) and reclaim's ``pdq_distance`` (0..96, default 31) and ``pdq_flavour``
    (``pytx``, the default, or ``reference``: how uploads are hashed to match the bank)."""
    data = await _json(request)
    name = data.get("name")
    if not isinstance(name, str) or not BANK_NAME.fullmatch(name):
        raise HTTPException(400, "Bank names must be UPPER_WITH_UNDERSCORE")
    ratio, distance = _ratio(data, 1.0), _distance(data, 31)
    flavour = _flavour(data, SERVICE_PDQ_FLAVOUR)

    def work() -> dict[str, Any]:  # the store's I/O, off the event loop
        try:
            bank = platform.store.create_bank(token.tenant_id, name, ratio, distance, flavour)
        except Conflict as e:
            raise HTTPException(403, "Bank already exists") from e
        platform.matcher.refresh(force=True)
        platform.audit(token, "bank.create", f"bank:{name}", **bank.as_reclaim())
        return _bank_json(bank, include_reclaim)

    return await asyncio.to_thread(work)


@router.get("/bank/{bank_name}")
def bank_show(
    bank_name: str,
    platform: PlatformDep,
    token: CurateToken,
    include_reclaim: IncludeReclaim = False,
) -> dict[str, Any]:
    bank = _bank(platform, token, bank_name)
    if not include_reclaim:
        return bank.as_hma()
    return {
        **bank.as_reclaim(),
        "content_count": platform.store.count_contents(token.tenant_id, bank),
    }


@router.put("/bank/{bank_name}")
async def bank_update(
    bank_name: str,
    request: Request,
    platform: PlatformDep,
    token: CurateToken,
    include_reclaim: IncludeReclaim = False,
) -> dict[str, Any]:
    """Rename (``name``), enable (``enabled``, ``enabled_ratio``) or set reclaim's
    ``pdq_distance`` or ``pdq_flavour``; keys left out are left as they are."""
    data = await _json(request)
    new_name = data.get("name")
    if new_name is not None and (
        not isinstance(new_name, str) or not BANK_NAME.fullmatch(new_name)
    ):
        raise HTTPException(400, "Bank names must be UPPER_WITH_UNDERSCORE")

    def work() -> dict[str, Any]:  # the store's I/O, off the event loop
        bank = _bank(platform, token, bank_name)
        try:
            updated = platform.store.update_bank(
                token.tenant_id,
                bank,
                name=new_name,
                enabled_ratio=_ratio(data, bank.enabled_ratio),
                pdq_distance=_distance(data, bank.pdq_distance),
                pdq_flavour=_flavour(data, bank.pdq_flavour),
            )
        except Conflict as e:
            raise HTTPException(403, "Bank already exists") from e
        if updated is None:  # deleted since it was looked up
            raise HTTPException(404, f"bank '{bank_name[:100]}' not found")
        platform.matcher.refresh(force=True)
        platform.audit(token, "bank.update", f"bank:{bank_name}", **updated.as_reclaim())
        return _bank_json(updated, include_reclaim)

    return await asyncio.to_thread(work)


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
    note: str = "",
    pdq_flavour: str | None = None,
) -> dict[str, Any]:
    (cid,) = platform.store.add_contents(
        token.tenant_id, bank, [(signals, metadata)], note=note or None, pdq_flavour=pdq_flavour
    )
    platform.matcher.refresh(force=True)
    platform.audit(
        token,
        "content.add",
        f"bank:{bank.name}/content:{cid}",
        signal_types=sorted({s[0] for s in signals}),
    )
    return {"id": cid, "signals": {st: v for st, v, _ in signals}}


async def _json_body(request: Request) -> dict[str, Any]:
    """A JSON object body if the request has one (HMA reads ``metadata`` and ``note`` from it
    beside ``?url=``); {} when there is no JSON body."""
    if "json" not in request.headers.get("content-type", ""):
        return {}
    if not await request.body():
        return {}
    return await _json(request)


@router.post("/bank/{bank_name}/content")
async def bank_add_file(
    bank_name: str,
    request: Request,
    platform: PlatformDep,
    token: CurateToken,
    url: str | None = None,
    content_type: str | None = None,
    types: str | None = None,
) -> dict[str, Any]:
    """Add content by uploading a file (multipart; optional ``metadata`` JSON and ``note``
    form fields) or, where the server fetches URLs, by ``?url=`` (optional JSON body
    ``{"metadata": {...}, "note": "..."}``, as HMA). ``metadata`` takes HMA's keys only
    (``content_id``, ``content_uri``, ``json``, ``collab``); ``note`` at most 255 characters.

    The bank keeps the signals HMA's hasher makes for the kind (a photo's ``pdq``; a video's
    ``video_md5`` and ``vpdq``) unless ``types=`` names others (e.g. ``types=pdq,md5,sha256``).
    A photo's PDQ is computed in the bank's ``pdq_flavour``, or in the one the metadata names
    (``json.pdq_flavour``: ``pytx`` or ``reference``). Returns HMA's ``{"id", "signals"}``:
    exactly the signals kept."""
    bank = await asyncio.to_thread(_bank, platform, token, bank_name)
    content_type_hint(content_type)
    data = b""
    if url:
        body = await _json_body(request)
        meta = _hma_metadata(body.get("metadata"))
        note = _note(body.get("note"))
    else:
        data, _hint, fields = await read_upload(request)
        meta = _hma_metadata(json_field(fields, "metadata"))
        note = _note(fields.get("note"))
    flavour = _row_flavour(meta) or bank.pdq_flavour
    if flavour not in BANK_FLAVOURS:
        raise HTTPException(
            400,
            "metadata json.pdq_flavour 'both' is for hashes made elsewhere in both flavours; "
            "a file is hashed here in one: use pytx or reference (or leave it out: the bank's)",
        )
    if url:
        hashed = await hash_url(url, platform, pdq_flavours=(flavour,))
    else:
        hashed = await hash_bytes(data, platform, pdq_flavours=(flavour,))
    kept = pick_types(hashed, types, default_all=False)
    signals = [(st, v, hashed.quality.get(st)) for st, v in kept.items()]
    return await asyncio.to_thread(_add, platform, token, bank, signals, meta, note, flavour)


@router.post("/bank/{bank_name}/signal")
async def bank_add_signals(
    bank_name: str, request: Request, platform: PlatformDep, token: CurateToken
) -> dict[str, Any]:
    """Add hashes directly: ``{"pdq": "…", "md5": "…"}`` (HMA) with an optional ``"note"``
    (HMA) and ``"metadata": {…}`` (HMA's keys); reclaim also reads ``"quality": {"pdq": 90}``."""
    bank = await asyncio.to_thread(_bank, platform, token, bank_name)
    data = await _json(request)
    metadata = data.pop("metadata", None)
    note = _note(data.pop("note", None))
    quality = data.pop("quality", None) or {}
    meta = _hma_metadata(metadata)
    _row_flavour(meta)
    try:
        if not isinstance(quality, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 100
            for v in quality.values()
        ):
            raise SignalRejected("quality must map signal types to integers in 0..100")
        signals = signals_from_mapping(data, quality)
    except SignalRejected as e:
        raise HTTPException(400, str(e)) from e
    # the write, the matcher's refresh and the audit entry: off the event loop
    return await asyncio.to_thread(_add, platform, token, bank, signals, meta, note)


@router.get("/bank/{bank_name}/content/{content_id}")
def bank_get_content(
    bank_name: str,
    content_id: RowId,
    platform: PlatformDep,
    token: CurateToken,
    include_signals: bool = False,
    include_metadata: bool = True,
    include_reclaim: IncludeReclaim = False,
) -> dict[str, Any]:
    """HMA's content object: ``id``, ``disable_until_ts``, ``original_media_uri``, ``bank``;
    ``signals`` with ``include_signals=true``; ``metadata`` (unless ``include_metadata=false``)
    and ``note`` when the item has them."""
    bank = _bank(platform, token, bank_name)
    c = _content(platform, token, bank, content_id)
    return _content_json(
        c, bank, signals=include_signals, metadata=include_metadata, extras=include_reclaim
    )


def _disable_until(value: Any) -> int:
    """HMA's ``disable_until_ts``: an integer (or its text) from 0 (disabled) and 1 (enabled)
    to a Unix time at most five years ahead; 400 otherwise."""
    bad = (
        f"disable_until_ts must be {DISABLED} (disabled), {ENABLED} (enabled) or a Unix time "
        "(seconds) when matching resumes"
    )
    if isinstance(value, bool):
        raise HTTPException(400, bad)
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,20}", value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise HTTPException(400, bad)
    if value < 0:
        raise HTTPException(400, "disable_until_ts must be a non-negative integer")
    if value > time.time() + MAX_DISABLE_AHEAD_S:
        raise HTTPException(400, "disable_until_ts must be less than 5 years in the future")
    return value


@router.put("/bank/{bank_name}/content/{content_id}")
async def bank_update_content(
    bank_name: str,
    content_id: RowId,
    request: Request,
    platform: PlatformDep,
    token: CurateToken,
    include_reclaim: IncludeReclaim = False,
) -> dict[str, Any]:
    """Change one content item (HMA): ``disable_until_ts`` (0 disabled, 1 enabled, or the Unix
    time until which ``/m/lookup`` leaves it out) and ``note`` ("" removes it). Returns the
    item as ``GET`` does; 404 (audited) when the bank has no such item."""
    data = await _json(request)
    disable = _disable_until(data["disable_until_ts"]) if "disable_until_ts" in data else None
    note = _note(data["note"]) if "note" in data else None
    target = f"bank:{bank_name}/content:{content_id}"

    def work() -> dict[str, Any]:  # the store's I/O, off the event loop
        bank = _bank(platform, token, bank_name)
        updated = platform.store.update_content(
            token.tenant_id, bank, content_id, disable_until_ts=disable, note=note
        )
        if updated is None:
            platform.audit(token, "content.update.not_found", target)
            raise HTTPException(404, f"content {content_id} not found in bank '{bank_name}'")
        changed: dict[str, Any] = {}
        if disable is not None:
            changed["disable_until_ts"] = disable
        if note is not None:
            changed["note"] = "set" if note else "removed"
        platform.audit(token, "content.update", target, **changed)
        return _content_json(updated, bank, signals=False, metadata=True, extras=include_reclaim)

    return await asyncio.to_thread(work)


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
    ``signal_type``/``signal`` columns; one item per row; its ``pdq_flavour`` column is kept in
    the metadata and decides how uploads are hashed to match that row) or JSON
    ``{"items": [{"signals": {"pdq": "…"}, "metadata": {…}}]}``."""
    body = await request.body()
    kind = request.headers.get("content-type", "")

    def work() -> dict[str, Any]:  # parsing (CPU) and the store's I/O, off the event loop
        bank = _bank(platform, token, bank_name)
        try:
            records = parse_bulk(body, kind)
        except SignalRejected as e:
            raise HTTPException(400, f"nothing imported: {e}") from e
        if len(records) > MAX_IMPORT_ITEMS:
            raise HTTPException(413, f"import has more than {MAX_IMPORT_ITEMS} items; split it")
        for n, (_signals, meta) in enumerate(records, start=1):
            _row_flavour(meta, f"nothing imported: item {n}: ")
        ids = platform.store.add_contents(token.tenant_id, bank, records)
        platform.matcher.refresh(force=True)
        platform.audit(token, "content.import", f"bank:{bank_name}", items=len(ids))
        return {"imported": len(ids), "ids": ids}

    return await asyncio.to_thread(work)


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
        "bank": bank.as_reclaim(),
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
