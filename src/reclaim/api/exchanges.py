"""Signal exchanges (HMA's ``/c/exchanges``, ``/c/exchange/NAME``, ``/c/exchanges/api/...``) and
bank feeds (``/c/bank/NAME/feed``), per tenant.

HMA's routes and shapes (token scope ``curate``):

- ``GET /c/exchanges/apis``: the exchange types offered (``reclaim.platform.exchanges``);
- ``GET|POST /c/exchanges/api/TYPE``: whether the type takes credentials and whether the tenant
  has set them; POST ``{"credential_json": {…}}`` sets them (``{}`` removes them). They are
  stored server-side and never echoed back, in any answer or the audit log;
- ``GET /c/exchanges/api/TYPE/schema``: the fields of the type's ``api_json`` and credentials;
- ``POST /c/exchanges`` ``{"api": TYPE, "bank": NAME, "api_json": {…}}``: an exchange ``NAME``
  importing into a new bank ``NAME`` (HMA: an exchange imports into a bank named like it; 403
  when the tenant has a bank of that name); ``GET /c/exchanges``: the tenant's exchange names;
- ``GET|PUT /c/exchange/NAME``: its configuration (``enabled`` may be changed);
  ``DELETE``: the exchange and, unless ``?delete_bank=false``, its bank (a missing one is
  "deleted" too, as HMA); deleting the bank with ``DELETE /c/bank/NAME`` deletes the exchange;
- ``GET /c/exchange/NAME/status``: HMA's ``FetchStatus`` (``checkpoint_ts``,
  ``running_fetch_start_ts``, ``last_fetch_complete_ts``, ``last_fetch_succeeded``,
  ``up_to_date``, ``fetched_items``: the records in the bank so far, growing while a fetch runs)
  plus reclaim's ``last_fetch_error`` and ``running_fetch_progress``.

reclaim's own:

- ``POST /c/exchange/NAME/fetch``: start a fetch now, in the background (202; 409 when one is
  running or the exchange is disabled). With ``exchange_fetch_interval_s`` set, the service also
  fetches every enabled exchange on that period;
- ``GET /c/bank/NAME/feed?after=SEQ&limit=N`` (scope ``fetch``): the bank's items added, changed
  or removed after ``SEQ``, each with its current signals and never its metadata — what the
  ``reclaim`` exchange type of python-threatexchange (``reclaim.pytx``) pulls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from reclaim.api.curation import _json  # one JSON-object body reader
from reclaim.api.deps import Platform, PlatformDep, require
from reclaim.platform.exchanges import (
    BANK_NAME,
    ClientSettings,
    ExchangeFetcher,
    ExchangeRefused,
    ExchangesUnavailable,
    ExchangeType,
    config_from_json,
    config_to_json,
    credentials_from_json,
    local_file,
    schema,
)
from reclaim.platform.store import Bank, Conflict, Content, ExchangeRow, Token
from reclaim.platform.store.banks import DISABLED

CurateToken = Annotated[Token, Depends(require("curate"))]
FetchToken = Annotated[Token, Depends(require("fetch"))]
#: Feed entries per answer, at most.
MAX_FEED_PAGE = 5000
_lock = threading.Lock()


def fetcher(platform: Platform) -> ExchangeFetcher:
    """The service's fetcher (made on first use, one per service)."""
    with _lock:
        f: ExchangeFetcher | None = getattr(platform, "exchange_fetcher", None)
        if f is None:
            s = platform.settings
            f = ExchangeFetcher(
                platform.store,
                ClientSettings(
                    files_dir=s.exchange_files_dir,
                    endpoints=dict(s.exchange_endpoints),
                    allow_private=s.allow_private_addresses,
                ),
                fetch_max_s=s.exchange_fetch_max_s,
                workers=s.exchange_workers,
                on_change=lambda: platform.matcher.refresh(force=True),
            )
            platform.exchange_fetcher = f  # type: ignore[attr-defined]
        return f


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """With the service: periodic fetches (when set), and running fetches stopped at the end."""
    platform: Platform = app.state.platform
    s = platform.settings
    if s.start_workers and s.exchange_fetch_interval_s > 0:
        fetcher(platform).start_periodic(s.exchange_fetch_interval_s)
    yield
    f: ExchangeFetcher | None = getattr(platform, "exchange_fetcher", None)
    if f is not None:
        await run_in_threadpool(f.stop)


router = APIRouter(prefix="/c", tags=["exchanges"], lifespan=lifespan)


def _types(platform: Platform) -> dict[str, ExchangeType]:
    try:
        return fetcher(platform).types()
    except ExchangesUnavailable as e:
        raise HTTPException(501, str(e)) from e


def _type(platform: Platform, api_name: str) -> ExchangeType:
    xtype = _types(platform).get(api_name)
    if xtype is None:
        raise HTTPException(400, f"no such Exchange API '{api_name[:100]}'")
    return xtype


def _exchange(platform: Platform, token: Token, name: str) -> ExchangeRow:
    ex = platform.store.get_exchange(token.tenant_id, name)
    if ex is None:
        raise HTTPException(404, f"Exchange '{name[:100]}' not found")
    return ex


def _show(ex: ExchangeRow) -> dict[str, Any]:
    return {**ex.config, "name": ex.name, "api": ex.api, "enabled": ex.enabled}


def _status(platform: Platform, ex: ExchangeRow) -> dict[str, Any]:
    def ts(v: float | None) -> int | None:
        return None if v is None else int(v)

    return {
        "checkpoint_ts": ex.checkpoint_ts,
        "running_fetch_start_ts": ts(ex.running_since),
        "last_fetch_complete_ts": ts(ex.last_fetch_complete_at),
        "last_fetch_succeeded": ex.last_fetch_succeeded,
        "up_to_date": ex.up_to_date,
        "fetched_items": platform.store.count_exchange_items(ex.tenant_id, ex.id),
        "last_fetch_error": ex.last_error,
        "running_fetch_progress": ex.running_progress if ex.running_since else 0,
    }


def _auth_state(platform: Platform, token: Token, xtype: ExchangeType) -> dict[str, bool]:
    return {
        "supports_authentification": xtype.supports_auth,
        "has_set_authentification": xtype.supports_auth
        and platform.store.has_exchange_credentials(token.tenant_id, xtype.name),
    }


# -- exchange APIs and the tenant's credentials ------------------------------------------------


@router.get("/exchanges/apis")
def exchange_api_list(platform: PlatformDep, token: CurateToken) -> list[str]:
    return list(_types(platform))


@router.get("/exchanges/api/{api_name}")
def exchange_api_get(api_name: str, platform: PlatformDep, token: CurateToken) -> dict[str, bool]:
    return _auth_state(platform, token, _type(platform, api_name))


@router.post("/exchanges/api/{api_name}")
async def exchange_api_update(
    api_name: str, request: Request, platform: PlatformDep, token: CurateToken
) -> dict[str, bool]:
    """``{"credential_json": {…}}`` sets the tenant's credentials for this exchange type,
    ``{"credential_json": {}}`` removes them. The answer never holds them."""
    data = await _json(request)
    creds = data.get("credential_json")
    if creds is not None and not isinstance(creds, dict):
        raise HTTPException(400, "credential_json must be a JSON object")

    def work() -> dict[str, bool]:
        xtype = _type(platform, api_name)
        if creds is not None:
            if not creds:
                platform.store.set_exchange_credentials(token.tenant_id, xtype.name, None)
                platform.audit(token, "exchange.credentials.remove", f"exchange_api:{api_name}")
            else:
                try:
                    stored = credentials_from_json(xtype, creds)
                except ExchangeRefused as e:
                    raise HTTPException(400, str(e)) from e
                platform.store.set_exchange_credentials(token.tenant_id, xtype.name, stored)
                platform.audit(
                    token,
                    "exchange.credentials.set",
                    f"exchange_api:{api_name}",
                    fields=sorted(stored),
                )
        return _auth_state(platform, token, xtype)

    return await run_in_threadpool(work)


@router.get("/exchanges/api/{api_name}/schema")
def exchange_api_schema(api_name: str, platform: PlatformDep, token: CurateToken) -> dict[str, Any]:
    return schema(_type(platform, api_name))


# -- exchanges ----------------------------------------------------------------------------------


@router.post("/exchanges", status_code=201)
async def exchange_create(
    request: Request, platform: PlatformDep, token: CurateToken
) -> dict[str, str]:
    data = await _json(request)
    bank = data.get("bank")
    api_name = data.get("api")
    api_json = data.get("api_json", {})
    if not isinstance(bank, str) or not BANK_NAME.fullmatch(bank):
        raise HTTPException(400, "Field `bank` must be a bank name: UPPER_WITH_UNDERSCORE")
    if not isinstance(api_json, dict):
        raise HTTPException(400, "Field `api_json` must be object")
    if not isinstance(api_name, str):
        raise HTTPException(400, "Field `api` is required: one of GET /c/exchanges/apis")

    def work() -> dict[str, str]:
        xtype = _types(platform).get(api_name)
        if xtype is None:
            raise HTTPException(400, f"No such exchange type '{api_name[:100]}'")
        try:
            cfg = config_from_json(xtype, bank, api_json)
            if xtype.name == "local_file":
                local_file(
                    platform.settings.exchange_files_dir,
                    token.tenant_id,
                    token.tenant,
                    str(cfg.filename),
                )
        except ExchangeRefused as e:
            raise HTTPException(400, str(e)) from e
        config = config_to_json(cfg)
        try:
            ex = platform.store.create_exchange(token.tenant_id, bank, xtype.name, config)
        except Conflict as e:
            raise HTTPException(
                403, f"Bank already exists: '{bank}' (an exchange imports into a new bank)"
            ) from e
        platform.matcher.refresh(force=True)
        platform.audit(token, "exchange.create", f"exchange:{bank}", **_show(ex))
        return {"message": "Created successfully"}

    return await run_in_threadpool(work)


@router.get("/exchanges")
def exchange_list(platform: PlatformDep, token: CurateToken) -> list[str]:
    return [ex.name for ex in platform.store.list_exchanges(token.tenant_id)]


@router.get("/exchange/{exchange_name}")
def exchange_show(exchange_name: str, platform: PlatformDep, token: CurateToken) -> dict[str, Any]:
    return _show(_exchange(platform, token, exchange_name))


@router.put("/exchange/{exchange_name}")
async def exchange_update(
    exchange_name: str, request: Request, platform: PlatformDep, token: CurateToken
) -> dict[str, Any]:
    """``{"enabled": true|false}`` (HMA: the one field that may change)."""
    data = await _json(request)
    enabled = data.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise HTTPException(400, "enabled must be true or false")

    def work() -> dict[str, Any]:
        ex = _exchange(platform, token, exchange_name)
        if enabled is not None and enabled != ex.enabled:
            platform.store.set_exchange_enabled(token.tenant_id, ex.id, enabled)
            platform.audit(token, "exchange.update", f"exchange:{ex.name}", enabled=enabled)
            ex = _exchange(platform, token, exchange_name)
        return _show(ex)

    return await run_in_threadpool(work)


@router.delete("/exchange/{exchange_name}")
def exchange_delete(
    exchange_name: str,
    platform: PlatformDep,
    token: CurateToken,
    delete_bank: bool = True,
) -> dict[str, str]:
    """Delete the exchange and (unless ``delete_bank=false``) its bank with what it fetched;
    a missing exchange is not an error (HMA)."""
    ex = platform.store.get_exchange(token.tenant_id, exchange_name)
    if ex is None:
        return {"message": "Exchange deleted"}
    bank: Bank | None = None
    if delete_bank:
        bank = next(
            (b for b in platform.store.list_banks(token.tenant_id) if b.id == ex.bank_id), None
        )
    platform.store.delete_exchange(token.tenant_id, ex.id)
    removed = platform.store.delete_bank(token.tenant_id, bank) if bank is not None else None
    platform.matcher.refresh(force=True)
    platform.audit(
        token,
        "exchange.delete",
        f"exchange:{ex.name}",
        bank_deleted=bank is not None,
        contents=removed,
    )
    return {"message": "Exchange deleted"}


@router.get("/exchange/{exchange_name}/status")
def exchange_status(
    exchange_name: str, platform: PlatformDep, token: CurateToken
) -> dict[str, Any]:
    return _status(platform, _exchange(platform, token, exchange_name))


@router.post("/exchange/{exchange_name}/fetch", status_code=202)
def exchange_fetch(exchange_name: str, platform: PlatformDep, token: CurateToken) -> dict[str, Any]:
    """Start a fetch now, in the background; follow it with ``GET …/status``."""
    ex = _exchange(platform, token, exchange_name)
    if not ex.enabled:
        raise HTTPException(
            409, f"exchange '{ex.name}' is disabled: enable it with PUT /c/exchange/{ex.name}"
        )
    f = fetcher(platform)
    _types(platform)
    if not f.start(token.tenant_id, ex.id):
        raise HTTPException(409, f"a fetch of '{ex.name}' is already running")
    platform.audit(token, "exchange.fetch", f"exchange:{ex.name}")
    return {"started": True, "status": _status(platform, _exchange(platform, token, ex.name))}


# -- bank feeds ---------------------------------------------------------------------------------


@router.get("/bank/{bank_name}/feed")
def bank_feed(
    bank_name: str,
    platform: PlatformDep,
    token: FetchToken,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_FEED_PAGE)] = 1000,
) -> dict[str, Any]:
    """The bank's content items added, changed (``add``) or removed (``del``) after ``after``,
    each once, in order of its last change, with its current signals (never its metadata).
    Page on with ``after=next`` while ``has_more``."""
    bank = platform.store.get_bank(token.tenant_id, bank_name)
    if bank is None:
        raise HTTPException(404, f"bank '{bank_name[:100]}' not found")
    entries = platform.store.bank_feed(token.tenant_id, bank.id, after, limit)
    last: dict[int, int] = {}
    for e in entries:
        last.pop(e.content_id, None)
        last[e.content_id] = e.seq
    now = time.time()
    live = {
        c.id: c
        for c in platform.store.get_contents(token.tenant_id, list(last))
        if c.bank_id == bank.id and _enabled(c, now)
    }
    updates: list[dict[str, Any]] = []
    for cid, seq in last.items():
        c = live.get(cid)
        if c is None or not c.signals:
            updates.append({"seq": seq, "content_id": cid, "op": "del"})
        else:
            signals = {st: v for st, v, _ in c.signals}
            updates.append({"seq": seq, "content_id": cid, "op": "add", "signals": signals})
    return {
        "bank": bank.name,
        "updates": updates,
        "next": entries[-1].seq if entries else after,
        "at": int(entries[-1].at) if entries else 0,
        "has_more": len(entries) == limit,
    }


def _enabled(content: Content, now: float) -> bool:
    """Whether the item is matched now (HMA's ``disable_until_ts``: 0, or a time still to
    come, disables it; a disabled item is given as removed)."""
    until = content.disable_until_ts
    return content.enabled and until != DISABLED and until <= now
