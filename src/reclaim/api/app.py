"""The FastAPI application: the routers, limits and error shapes (settings, shared state and
auth are in ``reclaim.api.deps``, which the routers import).

Errors are always JSON ``{"message": "<one line>"}`` (HMA's shape) with a 4xx status for
anything the caller can fix; unexpected failures answer 500 ``{"message": "internal error"}``
and never leak a traceback. Request bodies over ``max_upload_bytes`` are refused with 413 before
they are read in full.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reclaim import __version__
from reclaim.api import curation, hashing, matching, review, shields, tokens
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

    @app.get("/status", tags=["status"])
    def status() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    app.add_middleware(BodyLimit, max_bytes=cfg.max_upload_bytes)
    return app
