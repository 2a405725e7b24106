"""The web app answers this machine only: loopback Host, same-origin posts and redirects.

A page on another site can make the browser send requests to 127.0.0.1; the Host check stops a
DNS-rebinding name from reaching the app, the Origin check stops cross-site form posts, and
:func:`back_path` keeps "send me back" redirects on this app (no open redirect).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


async def loopback_only(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """HTTP middleware: 421 for a Host that is not a loopback name, 403 for a cross-site post."""
    host = (request.headers.get("host") or "").lower()
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    if name not in LOOPBACK_HOSTS:
        return Response("refused: this server only answers to 127.0.0.1", status_code=421)
    if request.method not in ("GET", "HEAD"):
        origin = request.headers.get("origin")
        if origin and origin.split("://", 1)[-1].lower() != host:
            return Response("refused: cross-site request", status_code=403)
    return await call_next(request)


def back_path(request: Request) -> str:
    """Where to send the person back to: the Referer's path and query when it is a page of
    this app (same scheme, host and port, or a path from the root), else "/". Never
    another site (open redirect): no "//host", no backslash (browsers read it as "/"), no
    whitespace or control character (browsers drop tabs and newlines, so "/", a tab,
    "/evil.com" would become "//evil.com")."""
    ref = request.headers.get("referer") or ""
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in ref):
        return "/"
    try:
        parts = urlsplit(ref)
    except ValueError:
        return "/"
    if parts.scheme or parts.netloc:
        own = (request.url.scheme, (request.headers.get("host") or "").lower())
        if (parts.scheme.lower(), parts.netloc.lower()) != own:
            return "/"
    path = parts.path
    if not path.startswith("/") or path.startswith("//"):
        return "/"
    return path + (f"?{parts.query}" if parts.query else "")
