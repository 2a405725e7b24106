"""What the routers depend on: the service's settings and shared state (``Platform``), the
``require(scope)`` token check, and the typed ids of paths and queries.

Ids are typed ``RowId``/``AfterId`` (0 … 2**63-1), so a number no database can hold is a 422
with the reason, not an overflow deep in a driver; the store refuses one too (``OutOfRange``,
400) for any caller that is not an endpoint.
"""

from __future__ import annotations

import hashlib
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Query, Request

from reclaim.media.sandbox import DecodePool
from reclaim.platform.matcher import Matcher
from reclaim.platform.shields import Shields
from reclaim.platform.store import INT64_MAX, PlatformStore, Token
from reclaim.platform.webhooks import WebhookSender

__all__ = [
    "AfterId",
    "Limit",
    "Platform",
    "PlatformDep",
    "RowId",
    "Settings",
    "get_platform",
    "require",
]

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
    #: The match index follows the change log every ``poll_interval_s`` (a background thread
    #: while the app runs: writes through another replica are matchable here within about that
    #: long). ``background_load``: the index loads on that thread when the app starts (the
    #: service answers at once; lookups and ``/health/ready`` say 503 until it is loaded); else
    #: it loads in ``create_app``. ``/health/ready`` answers 503 when the feed is more than
    #: ``ready_max_lag_s`` behind. A change-log number skipped is asked for again for
    #: ``gap_timeout_s`` (docs/scale.md, "Platform replicas").
    poll_interval_s: float = 1.0
    background_load: bool = False
    ready_max_lag_s: float = 5.0
    gap_timeout_s: float = 120.0
    #: The match index's snapshots (``Matcher``'s ``snapshot_dir``): saved there every
    #: ``index_snapshot_every_s`` and after a load from the database; a replica starting with one
    #: there opens it and replays the change log from it instead of reading every signal
    #: (docs/scale.md, "100M hashes"). None: no snapshots.
    index_snapshot_dir: str | None = None
    index_snapshot_every_s: float = 900.0
    #: Change-log entries older than this many seconds are deleted (None: kept for ever). A
    #: replica cut off from the database for longer, or a snapshot older, loads again from the
    #: signals (docs/scale.md, "Platform replicas").
    change_log_keep_s: float | None = None
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
    #: Face shields (``reclaim.api.shields``): the key file (made on first use, mode 0600,
    #: never in the database). None: shields are off, their routes answer 404 and uploads do no
    #: face work.
    shield_keys: str | None = None
    #: Intake and revocation requests (no token) allowed per client address and per tenant in
    #: each window of ``shield_rate_window_s``; beyond: 429 with Retry-After.
    shield_rate_per_ip: int = 10
    shield_rate_per_tenant: int = 100
    shield_rate_window_s: float = 3600.0
    #: An upload's faces matched: the largest this many per image or video frame, and at most
    #: this many frames per video.
    shield_max_faces: int = 3
    shield_video_frames: int = 16
    #: How an upload's faces are found for face shields: "fast" (YuNet only, its boxes mapped to
    #: dlib's frame: ~3x cheaper per photo) or "full" (YuNet + dlib HOG + CNN fallback, as
    #: ``reclaim scan``). The descriptor is the same v3 either way; bench/shield_platform.py
    #: measures both (docs/shield.md, "Platform side").
    shield_detect: str = "fast"
    #: A face matches a shield at score ≥ this (None: the shipped operating point,
    #: ``population().threshold``, FPR ≤ 0.1 % per (face, shield) pair on the bench's sets).
    #: False review items per upload face grow with the number of shields (≈ shields × that
    #: rate): a platform holding many raises it (docs/shield.md, "Operating point at scale").
    shield_threshold: float | None = None
    #: (tenant, key epoch) schemes kept drawn in memory (25 MB each).
    shield_scheme_cache: int = 8
    #: Signal exchanges (``reclaim.api.exchanges``): local_file exchanges read only files in
    #: ``exchange_files_dir/<tenant>/`` (None: no local_file type); base URLs replacing an
    #: exchange API's own (``{"ncmec": "http://…"}``: a proxy, a test server; never a tenant's);
    #: every ``exchange_fetch_interval_s`` each enabled exchange is fetched (0: on request only,
    #: ``POST /c/exchange/NAME/fetch``); one fetch stops after ``exchange_fetch_max_s`` and
    #: resumes at the next; at most ``exchange_workers`` fetches run at once.
    exchange_files_dir: str | None = None
    exchange_endpoints: dict[str, str] = field(default_factory=dict)
    exchange_fetch_interval_s: float = 0.0
    exchange_fetch_max_s: float = 240.0
    exchange_workers: int = 2


class Platform:
    """Everything a request handler needs, built once per app."""

    def __init__(self, store: PlatformStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.matcher = Matcher(
            store,
            settings.poll_interval_s,
            settings.flat_max,
            load=not settings.background_load,
            gap_timeout_s=settings.gap_timeout_s,
            snapshot_dir=settings.index_snapshot_dir,
            snapshot_every_s=settings.index_snapshot_every_s,
            change_log_keep_s=settings.change_log_keep_s,
        )
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
        #: Face shields: key file, index and rate limits; None when off.
        self.shields: Shields | None = None
        if settings.shield_keys:
            self.shields = Shields(
                store,
                settings.shield_keys,
                poll_interval_s=settings.poll_interval_s,
                scheme_cache=settings.shield_scheme_cache,
                rate_per_ip=settings.shield_rate_per_ip,
                rate_per_tenant=settings.shield_rate_per_tenant,
                rate_window_s=settings.shield_rate_window_s,
            )

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
