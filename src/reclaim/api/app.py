"""The FastAPI application: the routers, limits and error shapes (settings, shared state and
auth are in ``reclaim.api.deps``, which the routers import).

Errors are always JSON ``{"message": "<one line>"}`` (HMA's shape) with a 4xx status for
anything the caller can fix; unexpected failures answer 500 ``{"message": "internal error"}``
and never leak a traceback. Request bodies over ``max_upload_bytes`` are refused with 413 before
they are read in full.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reclaim import __version__
from reclaim.api import curation, exchanges, hashing, matching, review, shields, tokens
from reclaim.api.deps import Platform, Settings
from reclaim.platform.matcher import IndexNotReady
from reclaim.platform.store import NotFound, OutOfRange, PlatformStore

__all__ = ["Settings", "create_app"]

log = logging.getLogger("reclaim.api")


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 (by Content-Length, or while reading)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        reason = f"request body exceeds the {self.max_bytes} byte upload limit"
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    too_big = int(v) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await JSONResponse({"message": reason}, 413)(scope, receive, send)
                    return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, reason)
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited, tracking_send)
        except HTTPException as e:
            if e.status_code != 413 or started:
                raise
            await JSONResponse({"message": reason}, 413)(scope, receive, send)


def _error_handlers(app: FastAPI) -> None:
    # Starlette's base class: FastAPI raises it too (an unparsable body, an unknown path, a
    # wrong method), and those answer {"message": ...} like every other error.
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"message": str(exc.detail)}, exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return JSONResponse({"message": "invalid request: " + "; ".join(parts)}, 422)

    @app.exception_handler(OutOfRange)
    async def out_of_range(request: Request, exc: OutOfRange) -> JSONResponse:
        return JSONResponse({"message": str(exc)}, 400)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"message": str(exc)}, 404)

    @app.exception_handler(IndexNotReady)
    async def not_ready(request: Request, exc: IndexNotReady) -> JSONResponse:
        return JSONResponse({"message": str(exc)}, 503, headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"message": "internal error"}, 500)


#: What HMA's ``/status`` and ``/status/live`` answer (text/plain) when the service is up.
ALIVE = "I-AM-ALIVE"
#: The title HMA gives its API's schema (``/openapi/openapi.json``).
HMA_API_TITLE = "Open Media Match API"


def _health(platform: Platform) -> dict[str, Any]:
    """The matcher's readiness (``Matcher.health``), after a poll when no background poller
    runs (an app whose lifespan did not start polls on demand)."""
    m = platform.matcher
    try:
        m.refresh()
    except Exception as e:  # the database away: not ready, and say so
        log.warning("change log poll failed: %s", str(e).splitlines()[0][:200] if str(e) else e)
        m.last_error = type(e).__name__
    return m.health(platform.settings.ready_max_lag_s)


def _status_routes(app: FastAPI, platform: Platform) -> None:
    """HMA's status and schema routes, and the load balancer's (no token, as HMA)."""
    headers = {"X-Reclaim-Version": __version__}

    @app.get("/status", tags=["status"], response_class=PlainTextResponse)
    def status() -> PlainTextResponse:
        """Readiness, as HMA: 200 ``I-AM-ALIVE`` once the service can match; 503
        ``INDEX-NOT-LOADED`` while the match index loads, ``INDEX-STALE`` when it is more than
        ``ready_max_lag_s`` behind the change log (``/health/ready`` says the same in JSON, with
        the reason). reclaim's version is in the ``X-Reclaim-Version`` header."""
        h = _health(platform)
        if h["ready"]:
            return PlainTextResponse(ALIVE, headers=headers)
        word = "INDEX-STALE" if h["index"]["loaded"] else "INDEX-NOT-LOADED"
        return PlainTextResponse(word, 503, headers=headers)

    @app.get("/health/live", tags=["status"])
    def health_live() -> JSONResponse:
        """Liveness for a load balancer or orchestrator: 200 while the process serves requests,
        whatever the index's state (a restart would only start loading again)."""
        return JSONResponse({"live": True, "replica": platform.matcher.replica}, headers=headers)

    @app.get("/health/ready", tags=["status"])
    def health_ready() -> JSONResponse:
        """Readiness for a load balancer: 200 when the match index is loaded and at most
        ``ready_max_lag_s`` behind the change log; else 503 with ``reason``. Both carry the
        index's size and memory, the feed's lag and sequence gaps, and the process's RSS
        (counts over all tenants, no tenant's data)."""
        h = _health(platform)
        return JSONResponse(h, 200 if h["ready"] else 503, headers=headers)

    @app.get("/metrics", tags=["status"], response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """The same numbers in Prometheus' text format."""
        return PlainTextResponse(_prometheus(_health(platform)), headers=headers)

    @app.get("/status/live", tags=["status"], response_class=PlainTextResponse)
    def status_live() -> PlainTextResponse:
        """Liveness, as HMA: always 200 ``I-AM-ALIVE`` while the process serves requests."""
        return PlainTextResponse(ALIVE, headers=headers)

    @app.get("/openapi/openapi.json", include_in_schema=False)
    def hma_openapi() -> JSONResponse:
        """The schema where HMA serves its own, under HMA's title (the API it describes is the
        Open Media Match API, as reclaim implements it); ``/openapi.json`` has the same paths
        under reclaim's title."""
        schema = copy.deepcopy(app.openapi())
        info = schema.setdefault("info", {})
        info["description"] = (
            f"The Open Media Match (HMA) API as served by {info.get('title', 'reclaim')} "
            f"{__version__}. " + str(info.get("description", ""))
        )
        info["title"] = HMA_API_TITLE
        info["x-implementation"] = {"name": "reclaim", "version": __version__}
        return JSONResponse(schema)

    @app.get("/site-map", tags=["status"])
    def site_map() -> list[str]:
        """Every path the service answers (HMA's ``/site-map``)."""
        return sorted({p for p in app.openapi().get("paths", {})} | {"/openapi/openapi.json"})


def _prometheus(h: dict[str, Any]) -> str:
    idx, feed = h["index"], h["feed"]
    lines = [
        "# HELP reclaim_ready 1 when the match index is loaded and the change feed within bound.",
        "# TYPE reclaim_ready gauge",
        f"reclaim_ready {int(h['ready'])}",
        "# TYPE reclaim_index_loaded gauge",
        f"reclaim_index_loaded {int(idx['loaded'])}",
        "# HELP reclaim_index_memory_bytes Match index arrays, id map and kept vPDQ values.",
        "# TYPE reclaim_index_memory_bytes gauge",
        f"reclaim_index_memory_bytes {idx['memory_bytes']}",
        "# TYPE reclaim_index_hashes gauge",
        *(f'reclaim_index_hashes{{signal_type="{k}"}} {v}' for k, v in idx["hashes"].items()),
        "# TYPE reclaim_index_delta gauge",
        *(f'reclaim_index_delta{{signal_type="{k}"}} {v}' for k, v in idx["delta"].items()),
        "# TYPE reclaim_index_merges_total counter",
        *(f'reclaim_index_merges_total{{signal_type="{k}"}} {v}' for k, v in idx["merges"].items()),
        "# HELP reclaim_feed_lag_seconds Since the last poll that read the change log to its end.",
        "# TYPE reclaim_feed_lag_seconds gauge",
        f"reclaim_feed_lag_seconds {feed['lag_s'] if feed['lag_s'] is not None else 'NaN'}",
        "# TYPE reclaim_feed_seq gauge",
        f"reclaim_feed_seq {feed['seq']}",
        "# TYPE reclaim_feed_gaps_open gauge",
        f"reclaim_feed_gaps_open {feed['gaps_open']}",
        "# TYPE reclaim_feed_gaps_filled_total counter",
        f"reclaim_feed_gaps_filled_total {feed['gaps_filled']}",
        "# TYPE reclaim_feed_gaps_expired_total counter",
        f"reclaim_feed_gaps_expired_total {feed['gaps_expired']}",
    ]
    rss = h["process"]["rss_bytes"]
    if rss is not None:
        lines += ["# TYPE reclaim_process_rss_bytes gauge", f"reclaim_process_rss_bytes {rss}"]
    return "\n".join(lines) + "\n"


def create_app(store: PlatformStore, settings: Settings | None = None) -> FastAPI:
    """The service over a migrated store."""
    cfg = settings or Settings()
    platform = Platform(store, cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The match index's own thread: loads it (background_load) and follows the change log
        # whether or not requests come.
        platform.matcher.start()
        if cfg.start_workers:
            platform.webhooks.start()
            platform.decoders.start()
        yield
        platform.webhooks.stop()
        platform.decoders.close()
        await asyncio.to_thread(platform.matcher.stop)

    app = FastAPI(
        title="reclaim platform service",
        version=__version__,
        description=(
            "Hash banks, match-on-upload, review queue and signed webhooks against "
            "non-consensual intimate imagery. Speaks Meta's Hasher-Matcher-Actioner API "
            "(/h hashing, /m matching, /c curation) plus a review queue (/review), the "
            "tenant's own API tokens (/tokens) and face shields (/shield/v1: intake and "
            "revocation by the people they protect, matching of uploads' faces)."
        ),
        lifespan=lifespan,
    )
    app.state.platform = platform
    _error_handlers(app)
    app.include_router(hashing.router)
    app.include_router(matching.router)
    app.include_router(curation.router)
    app.include_router(review.router)
    app.include_router(tokens.router)
    app.include_router(shields.router)
    app.include_router(exchanges.router)

    _status_routes(app, platform)

    app.add_middleware(BodyLimit, max_bytes=cfg.max_upload_bytes)
    return app
