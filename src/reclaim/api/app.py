"""The FastAPI application: settings, shared state, auth, limits and error shapes.

Errors are always JSON ``{"message": "<one line>"}`` (HMA's shape) with a 4xx status for
anything the caller can fix; unexpected failures answer 500 ``{"message": "internal error"}``
and never leak a traceback. Request bodies over ``max_upload_bytes`` are refused with 413 before
they are read in full. Ids in paths and queries are typed ``RowId``/``AfterId`` (0 … 2**63-1),
so a number no database can hold is a 422 with the reason, not an overflow deep in a driver; the
store refuses one too (``OutOfRange``, 400) for any caller that is not an endpoint.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reclaim import __version__
from reclaim.media.sandbox import DecodePool
from reclaim.platform.matcher import Matcher
from reclaim.platform.store import INT64_MAX, NotFound, OutOfRange, PlatformStore, Token
from reclaim.platform.webhooks import WebhookSender

log = logging.getLogger("reclaim.api")

#: A row id in a path (content, review item, webhook, token): what both databases can store.
RowId = Annotated[int, Path(ge=0, le=INT64_MAX)]
#: Paging: the last id seen, and how many to return (each endpoint clamps ``limit`` further).
AfterId = Annotated[int, Query(ge=0, le=INT64_MAX)]
Limit = Annotated[int, Query(ge=0, le=INT64_MAX)]


@dataclass
class Settings:
    max_upload_bytes: int = 32 * 1024 * 1024
    allow_url_fetch: bool = False
    #: Let webhooks and URL fetches reach loopback/private/link-local addresses (a local
    #: receiver on one machine, tests). Off: public addresses only (``reclaim.netguard``).
    allow_private_addresses: bool = False
    poll_interval_s: float = 1.0
    webhook_max_attempts: int = 6
    webhook_backoff_s: float = 5.0
    start_workers: bool = True
    review_on_match: bool = True
    token_cache_s: float = 5.0
    flat_max: int | None = None
    #: Hashing and checking run in ``hash_workers`` worker processes (``DecodePool``): each
    #: within ``hash_memory_bytes`` (RLIMIT_DATA) and killed after ``hash_timeout_s``. At most
    #: ``hash_queue`` more requests wait; beyond that the answer is 503 with Retry-After.
    hash_workers: int = 2
    hash_queue: int = 8
    hash_timeout_s: float = 30.0
    hash_memory_bytes: int = 2 << 30


class Platform:
    """Everything a request handler needs, built once per app."""

    def __init__(self, store: PlatformStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.matcher = Matcher(store, settings.poll_interval_s, settings.flat_max)
        self.webhooks = WebhookSender(
            store,
            max_attempts=settings.webhook_max_attempts,
            backoff_s=settings.webhook_backoff_s,
            allow_private=settings.allow_private_addresses,
        )
        self._tokens: dict[str, tuple[Token | None, float]] = {}
        self._tokens_lock = threading.Lock()
        #: Decoding workers; started with the service (lifespan), else on first use, and
        #: killed when the service stops or this object is collected.
        self.decoders = DecodePool(
            settings.hash_workers, settings.hash_queue, settings.hash_memory_bytes
        )
        weakref.finalize(self, self.decoders.close)
        self._revoked: set[int] = set()  # revoked here: refused even if a lookup raced it

    def token(self, secret: str) -> Token | None:
        """Token for a presented secret, cached for ``token_cache_s``. A revocation through this
        process (``forget_token``) applies at once; one made elsewhere (the CLI, another
        worker) within the TTL."""
        key = hashlib.sha256(secret.encode()).hexdigest()
        now = time.monotonic()
        with self._tokens_lock:
            hit = self._tokens.get(key)
            if hit is not None and hit[1] > now:
                return hit[0]
        tok = self.store.token_for_secret(secret)
        with self._tokens_lock:
            if tok is not None and tok.id in self._revoked:
                tok = None
            if len(self._tokens) > 10_000:
                self._tokens.clear()
            self._tokens[key] = (tok, now + self.settings.token_cache_s)
        return tok

    def forget_token(self, token_id: int) -> None:
        """Drop a (revoked) token from the cache, so that its next request is refused."""
        with self._tokens_lock:
            self._revoked.add(token_id)
            for key in [k for k, (t, _) in self._tokens.items() if t and t.id == token_id]:
                del self._tokens[key]

    def audit(self, token: Token, event: str, target: str, **detail: Any) -> None:
        self.store.audit(token.tenant_id, f"token:{token.id}:{token.name}", event, target, detail)


def get_platform(request: Request) -> Platform:
    p: Platform = request.app.state.platform
    return p


PlatformDep = Annotated[Platform, Depends(get_platform)]


def require(scope: str) -> Callable[[Request], Token]:
    """Dependency: a valid bearer token holding ``scope``."""

    def check(request: Request) -> Token:
        auth = request.headers.get("authorization", "")
        scheme, _, secret = auth.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise HTTPException(
                401,
                "missing API token: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        tok = get_platform(request).token(secret.strip())
        if tok is None:
            raise HTTPException(
                401, "invalid or revoked API token", headers={"WWW-Authenticate": "Bearer"}
            )
        if scope not in tok.scopes:
            raise HTTPException(403, f"this token lacks the '{scope}' scope")
        return tok

    return check


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
    from reclaim.api import curation, hashing, matching, review, tokens

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
            "(/h hashing, /m matching, /c curation) plus a review queue (/review) and the "
            "tenant's own API tokens (/tokens)."
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

    @app.get("/status", tags=["status"])
    def status() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    app.add_middleware(BodyLimit, max_bytes=cfg.max_upload_bytes)
    return app
