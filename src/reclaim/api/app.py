"""The FastAPI application: the routers, limits and error shapes (settings, shared state and
auth are in ``reclaim.api.deps``, which the routers import).

Errors are always JSON ``{"message": "<one line>"}`` (HMA's shape) with a 4xx status for
anything the caller can fix; unexpected failures answer 500 ``{"message": "internal error"}``
and never leak a traceback. Request bodies over ``max_upload_bytes`` are refused with 413 before
they are read in full.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reclaim import __version__
from reclaim.api import curation, exchanges, hashing, matching, review, shields, tokens
from reclaim.api.deps import Platform, Settings
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

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"message": "internal error"}, 500)


#: What HMA's ``/status`` and ``/status/live`` answer (text/plain) when the service is up.
ALIVE = "I-AM-ALIVE"
#: The title HMA gives its API's schema (``/openapi/openapi.json``).
HMA_API_TITLE = "Open Media Match API"


def _status_routes(app: FastAPI) -> None:
    """HMA's status and schema routes (no token, as HMA)."""
    headers = {"X-Reclaim-Version": __version__}

    @app.get("/status", tags=["status"], response_class=PlainTextResponse)
    def status() -> PlainTextResponse:
        """Readiness, as HMA: 200 ``I-AM-ALIVE`` once the service can match. reclaim loads its
        match index before it accepts requests and brings it up to date on each lookup, so
        HMA's 503 ``INDEX-NOT-LOADED`` / ``INDEX-STALE`` never apply. reclaim's version is in
        the ``X-Reclaim-Version`` header."""
        return PlainTextResponse(ALIVE, headers=headers)

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


def create_app(store: PlatformStore, settings: Settings | None = None) -> FastAPI:
    """The service over a migrated store."""
    cfg = settings or Settings()
    platform = Platform(store, cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if cfg.start_workers:
            platform.webhooks.start()
            platform.decoders.start()
        yield
        platform.webhooks.stop()
        platform.decoders.close()

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

    _status_routes(app)

    app.add_middleware(BodyLimit, max_bytes=cfg.max_upload_bytes)
    return app
