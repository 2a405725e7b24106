"""A local web server the test controls, and what an alert may hold (shared by the watch tests,
the web app's request tests and the browser journey).

- ``server`` (fixture): serves ``state.routes`` (path → bytes, content type, status; others
  404), keeps every GET path in ``state.hits`` and every POST (path, body) in ``state.posts``,
  answering POSTs with ``state.answer``. ``receiver`` is a second, separate one: the alert
  receiver.
- ``assert_clean_alert``: an alert body holds counts and the case's name, and no URL, host,
  path, base64 (an image), SHA-256 or JPEG bytes.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest


@dataclass
class Served:
    """What the server serves: path → (bytes, content type, status); others 404."""

    routes: dict[str, tuple[bytes, str, int]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    posts: list[tuple[str, bytes]] = field(default_factory=list)
    answer: int = 200  # what a POST gets

    def serve(self, path: str, data: bytes, ctype: str = "image/jpeg", status: int = 200) -> None:
        self.routes[path] = (data, ctype, status)

    def stop(self, path: str) -> None:
        self.routes.pop(path, None)


def _handler(state: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            got = state.routes.get(self.path)
            if got is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data, ctype, status = got
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            state.posts.append((self.path, self.rfile.read(n)))
            self.send_response(state.answer)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@dataclass
class Server:
    state: Served
    base: str

    def listed(self, path: str, data: bytes, url_list: Path) -> tuple[str, Path]:
        """Serve ``data`` at ``path`` and write its address, alone, in the URL list file
        ``url_list``: (the address, the list)."""
        self.state.serve(path, data)
        url = f"{self.base}{path}"
        url_list.write_text(url + "\n")
        return url, url_list


@pytest.fixture
def server() -> Iterator[Server]:
    state = Served()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield Server(state, f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
        httpd.server_close()


receiver = server  # a second, separate server: the alert receiver


#: What an alert must never hold: a URL, a host, a path, base64 (an image), a SHA-256.
URLISH = re.compile(r"https?://|www\.|127\.0\.0\.1|/[\w.-]+/|\.jpe?g|\.png", re.IGNORECASE)
BASE64 = re.compile(r"[A-Za-z0-9+/=]{40,}")
HEX64 = re.compile(r"[0-9a-f]{64}")


def assert_clean_alert(body: bytes, case: Path) -> dict[str, Any]:
    """An alert holds counts and the case's name: no URL, path, image or hash."""
    text = body.decode("utf-8")
    assert not URLISH.search(text), text
    assert not BASE64.search(text), text
    assert not HEX64.search(text), text
    assert str(case) not in text and str(case.parent) not in text
    assert b"\xff\xd8" not in body  # no JPEG bytes
    parsed: dict[str, Any] = json.loads(text)
    return parsed
