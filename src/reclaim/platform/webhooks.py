"""Signed webhooks with retries.

Each event is stored as one delivery per active webhook of the tenant, then POSTed by a worker
thread. The body is JSON; the signature header is

    X-Reclaim-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

(the timestamp is signed with the body, so a captured request cannot be replayed later with a
new time). A 2xx answer delivers it; anything else (status, timeout, refused connection) is
retried after ``backoff_s * 2**(attempt-1)`` seconds, up to ``max_attempts``, then marked failed.
Deliveries live in the database, so a restart resumes pending retries.

Receivers must be on public addresses (``reclaim.netguard``): the host is checked when the
webhook is registered and again at every attempt, so a tenant cannot make the server post to
its own loopback services, the private network or a cloud metadata endpoint. At an attempt the
check is made by the connection itself (``GuardedTransport``): the name is resolved once and the
request goes to an address of that answer, all of whose addresses were found public (a name
that answers public to a check and loopback to the connection gains nothing). A refused attempt
is recorded with its reason, and retried like any failure (DNS may change back).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import time
from typing import Any

import httpx

from reclaim import __version__
from reclaim.netguard import GuardedTransport, host_problem, refusal
from reclaim.platform.store import Delivery, PlatformStore

__all__ = ["WebhookSender", "sign", "url_problem", "verify"]

SIGNATURE_HEADER = "X-Reclaim-Signature"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, tolerance_s: float = 300.0) -> bool:
    """Receiver side: check a signature header (constant-time) and its freshness."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        ts = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs(time.time() - ts) > tolerance_s:
        return False
    expected = sign(secret, body, ts).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


def url_problem(url: str, *, allow_private: bool = False, resolve: bool = True) -> str | None:
    """None when ``url`` is an http(s) URL the server may post to, else a one-line reason.
    ``resolve=False``: its form only (the guarded transport checks the host as it connects)."""
    try:
        u = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as e:
        return f"not a valid URL: {e}"
    if u.scheme not in ("http", "https"):
        return "webhook url must be http:// or https://"
    if not u.host:
        return "webhook url has no host"
    if allow_private or not resolve:
        return None
    return host_problem(u.host)


class WebhookSender:
    def __init__(
        self,
        store: PlatformStore,
        *,
        max_attempts: int = 6,
        backoff_s: float = 5.0,
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
        allow_private: bool = False,
    ) -> None:
        self.store = store
        self.allow_private = allow_private
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        #: Only reclaim's own client pins connections; a client passed in connects as it likes,
        #: so its hosts are checked (one more lookup) before each attempt.
        self._pinned = client is None
        self.client = client or httpx.Client(
            timeout=timeout_s,
            follow_redirects=False,
            trust_env=False,
            transport=GuardedTransport(allow_private=allow_private),
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def emit(self, tenant_id: int, event: str, data: dict[str, Any]) -> list[int]:
        payload = json.dumps({"event": event, "sent_by": f"reclaim {__version__}", "data": data})
        ids = self.store.enqueue_deliveries(tenant_id, event, payload)
        if ids:
            self._wake.set()
        return ids

    def attempt(self, d: Delivery) -> bool:
        body = d.payload.encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(d.secret, body, int(time.time())),
            "X-Reclaim-Event": d.event,
            "X-Reclaim-Delivery": str(d.id),
            "User-Agent": f"reclaim/{__version__} webhooks",
        }
        status: int | None = None
        error: str | None = None
        refused = url_problem(d.url, allow_private=self.allow_private, resolve=not self._pinned)
        if refused is not None:
            ok, error = False, f"refused: {refused}"[:300]
        else:
            try:
                r = self.client.post(d.url, content=body, headers=headers)
                status = r.status_code
                ok = 200 <= status < 300
                if not ok:
                    error = f"HTTP {status}"
            except httpx.HTTPError as e:
                ok = False
                why = refusal(e)
                error = (f"refused: {why}" if why else f"{type(e).__name__}: {e}")[:300]
        attempts = d.attempts + 1
        retry_at = None
        if not ok and attempts < self.max_attempts:
            retry_at = time.time() + self.backoff_s * 2 ** (attempts - 1)
        self.store.record_attempt(
            d.id, ok=ok, http_status=status, error=error, next_attempt_at=retry_at
        )
        return ok

    def run_once(self) -> int:
        """Attempt every delivery that is due; returns how many were attempted."""
        due = self.store.due_deliveries(time.time())
        for d in due:
            self.attempt(d)
        return len(due)

    def run_until_idle(self, timeout_s: float = 10.0) -> None:
        """Tests and shutdown: keep delivering until nothing is pending or time runs out."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            self.run_once()
            if not self.store.pending_deliveries():
                return
            time.sleep(min(0.05, self.backoff_s))

    def start(self, poll_s: float = 1.0) -> None:
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.is_set():
                # keep the worker alive on a database hiccup; the delivery stays pending
                with contextlib.suppress(Exception):
                    self.run_once()
                self._wake.wait(poll_s)
                self._wake.clear()

        self._thread = threading.Thread(target=loop, name="reclaim-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
