"""URL lists: parsing, detection, and guarded downloads against a local HTTP server.

Everything here talks only to 127.0.0.1 (a ThreadingHTTPServer started by the tests).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from PIL import Image

from reclaim.errors import InputError, SourceError
from reclaim.sources import open_source
from reclaim.sources.base import Entry, SourceLimits
from reclaim.sources.urllist import (
    DEFAULT_USER_AGENT,
    UrlListSource,
    detect,
    open_url_list,
    parse_url_list,
    refuse_without_fetch,
    validate_url,
)

CAP = 100_000
LIMITS = SourceLimits(url_max_bytes=CAP, url_timeout_s=1.0, url_max_redirects=3)


def _image_bytes(fmt: str) -> bytes:
    img = Image.new("RGB", (64, 48))
    for x in range(64):
        for y in range(48):
            img.putpixel((x, y), (x * 4, y * 5, (x + y) % 256))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


JPEG = _image_bytes("JPEG")
PNG = _image_bytes("PNG")


class _Handler(BaseHTTPRequestHandler):
    """Routes for every case; each request's path and headers are logged on the server."""

    server: _Server
    routes: ClassVar[dict[str, str]] = {}

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self,
        body: bytes,
        ctype: str | None,
        status: int = 200,
        extra: dict[str, str] | None = None,
        length: int | None = -1,
    ) -> None:
        self.send_response(status)
        if ctype is not None:
            self.send_header("Content-Type", ctype)
        if length == -1:
            length = len(body)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)

    def _redirect(self, location: str, status: int = 302) -> None:
        self._send(b"", None, status=status, extra={"Location": location})

    def _drip(self, seconds: float, interval: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", "50000")
        self.end_headers()
        end = time.monotonic() + seconds
        try:
            self.wfile.write(JPEG[:3])
            self.wfile.flush()
            while time.monotonic() < end:
                time.sleep(interval)
                self.wfile.write(b"\x00")
                self.wfile.flush()
        except OSError:
            return

    def do_GET(self) -> None:
        self.server.log.append((self.path, dict(self.headers.items())))
        path = self.path
        if path == "/img.jpg":
            self._send(
                JPEG,
                "image/jpeg",
                extra={"ETag": '"abc123"', "Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT"},
            )
        elif path == "/png-octet":
            self._send(PNG, "application/octet-stream")
        elif path == "/png-no-type":
            self._send(PNG, None)
        elif path == "/junk-octet":
            junk = b"just some text, certainly not a picture\n" * 10
            self._send(junk, "application/octet-stream")
        elif path == "/missing":
            self.send_error(404)
        elif path == "/big-declared":
            self._send(JPEG, "image/jpeg", length=10_000_000)
        elif path == "/big-streamed":
            # No Content-Length: HTTP/1.0, the body ends when the connection closes.
            self._send(JPEG + b"\x00" * (3 * CAP), "image/jpeg", length=None)
        elif path == "/page.html":
            page = b'<html><body><img src="/img.jpg"><a href="/png-octet">x</a></body></html>'
            self._send(page, "text/html; charset=utf-8")
        elif path == "/slow":
            self._drip(seconds=8.0, interval=0.05)
        elif path == "/stall":
            self._drip(seconds=0.0, interval=0.0)
            time.sleep(2.0)
        elif path.startswith("/chain/"):
            n = int(path.rsplit("/", 1)[1])
            if n > 0:
                self._redirect(f"/chain/{n - 1}")  # relative Location
            else:
                self._send(JPEG, "image/jpeg")
        elif path == "/to-file":
            self._redirect("file:///etc/passwd")
        elif path == "/to-ftp":
            self._redirect("ftp://127.0.0.1/img.jpg", status=301)
        elif path == "/redir":
            host, port = self.server.server_address[:2]
            self._redirect(f"http://{host!s}:{port}/img.jpg")
        elif path == "/gzip-img":
            self._send(gzip.compress(JPEG), "image/jpeg", extra={"Content-Encoding": "gzip"})
        elif path == "/gzip-bomb":
            bomb = gzip.compress(b"\xff\xd8\xff" + b"\x00" * (20 * CAP))
            assert len(bomb) < CAP
            self._send(bomb, "image/jpeg", extra={"Content-Encoding": "gzip"})
        elif path == "/brotli":
            self._send(b"whatever", "image/jpeg", extra={"Content-Encoding": "br"})
        elif path == "/empty":
            self._send(b"", "image/jpeg")
        elif path == "/set-cookie":
            self._send(JPEG, "image/jpeg", extra={"Set-Cookie": "track=me; Path=/"})
        elif path == "/whoami":
            self._send(PNG, "image/png")
        else:
            self.send_error(500, "unknown test route")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    log: list[tuple[str, dict[str, str]]]


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.log = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def base(srv: _Server) -> str:
    host, port = srv.server_address[:2]
    return f"http://{host!s}:{port}"


def run_list(
    tmp_path: Path, lines: list[str], limits: SourceLimits = LIMITS, **kw: Any
) -> list[Entry]:
    f = tmp_path / "urls.txt"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return list(UrlListSource(str(f), limits, **kw).entries())


def fetch_one(tmp_path: Path, url: str, limits: SourceLimits = LIMITS) -> Entry:
    (entry,) = run_list(tmp_path, [url], limits)
    assert entry.locator.kind == "url"
    assert entry.locator.path == url
    return entry


# --- successful downloads ---------------------------------------------------------------


def test_jpeg_downloaded_with_fetch_record(server: _Server, tmp_path: Path) -> None:
    url = base(server) + "/img.jpg"
    before = datetime.now(UTC)
    e = fetch_one(tmp_path, url)
    after = datetime.now(UTC)
    assert e.error is None
    assert e.data == JPEG
    with Image.open(io.BytesIO(e.read())) as im:
        assert im.size == (64, 48)
    m = e.locator.meta
    assert m["final_url"] == url
    assert m["status"] == 200
    assert m["content_type"] == "image/jpeg"
    assert m["bytes"] == len(JPEG)
    assert m["redirects"] == []
    assert m["etag"] == '"abc123"'
    assert m["last_modified"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert m["fetched_at"].endswith("Z")
    fetched = datetime.fromisoformat(m["fetched_at"])
    assert fetched.tzinfo is not None
    assert before.replace(microsecond=0) <= fetched <= after


def test_octet_stream_accepted_when_bytes_are_an_image(server: _Server, tmp_path: Path) -> None:
    e = fetch_one(tmp_path, base(server) + "/png-octet")
    assert e.error is None
    assert e.data == PNG
    assert e.locator.meta["content_type"] == "application/octet-stream"
    assert "etag" not in e.locator.meta
    e2 = fetch_one(tmp_path, base(server) + "/png-no-type")
    assert e2.error is None
    assert e2.data == PNG


def test_octet_stream_refused_when_bytes_are_not_media(server: _Server, tmp_path: Path) -> None:
    e = fetch_one(tmp_path, base(server) + "/junk-octet")
    assert e.data is None
    assert e.error == (
        "not an image or video (content-type application/octet-stream, content not recognised)"
    )


def test_good_redirect_is_recorded(server: _Server, tmp_path: Path) -> None:
    url = base(server) + "/redir"
    e = fetch_one(tmp_path, url)
    assert e.error is None
    assert e.data == JPEG
    assert e.locator.path == url  # the URL as listed, not where it ended
    assert e.locator.meta["final_url"] == base(server) + "/img.jpg"
    assert e.locator.meta["redirects"] == [url]
    assert e.locator.meta["status"] == 200


def test_redirect_chain_at_the_cap_is_followed(server: _Server, tmp_path: Path) -> None:
    b = base(server)
    e = fetch_one(tmp_path, b + "/chain/3")
    assert e.error is None
    assert e.data == JPEG
    assert e.locator.meta["redirects"] == [b + "/chain/3", b + "/chain/2", b + "/chain/1"]
    assert e.locator.meta["final_url"] == b + "/chain/0"


def test_gzip_body_is_decoded(server: _Server, tmp_path: Path) -> None:
    e = fetch_one(tmp_path, base(server) + "/gzip-img")
    assert e.error is None
    assert e.data == JPEG
    assert e.locator.meta["bytes"] == len(JPEG)


# --- refusals ---------------------------------------------------------------------------


def test_http_error_status(server: _Server, tmp_path: Path) -> None:
    e = fetch_one(tmp_path, base(server) + "/missing")
    assert e.data is None
    assert e.error == "HTTP 404 Not Found"
    assert e.locator.meta["status"] == 404


def test_declared_length_over_cap(server: _Server, tmp_path: Path) -> None:
    e = fetch_one(tmp_path, base(server) + "/big-declared")
    assert e.data is None
    assert e.error == f"too large: Content-Length 10000000 bytes > cap {CAP}"


def test_streamed_length_over_cap(server: _Server, tmp_path: Path) -> None:
    e = fetch_one(tmp_path, base(server) + "/big-streamed")
    assert e.data is None
    assert e.error == f"too large: more than {CAP} bytes (cap {CAP})"
    # The same body is fine under a larger cap (so it was the cap, not something else).
    roomy = SourceLimits(url_max_bytes=10 * CAP, url_timeout_s=1.0)
    ok = fetch_one(tmp_path, base(server) + "/big-streamed", roomy)
    assert ok.error is None
    assert ok.data is not None and len(ok.data) == len(JPEG) + 3 * CAP


def test_gzip_bomb_stops_at_cap(server: _Server, tmp_path: Path) -> None:
    e = fetch_one(tmp_path, base(server) + "/gzip-bomb")
    assert e.data is None
    assert e.error == f"too large: more than {CAP} bytes (cap {CAP})"


def test_unsupported_content_encoding(server: _Server, tmp_path: Path) -> None:
    e = fetch_one(tmp_path, base(server) + "/brotli")
    assert e.error == "unsupported Content-Encoding 'br'"


def test_html_page_refused_and_not_crawled(server: _Server, tmp_path: Path) -> None:
    server.log.clear()
    e = fetch_one(tmp_path, base(server) + "/page.html")
    assert e.data is None
    assert e.error == "not an image or video (content-type text/html)"
    assert e.locator.meta["content_type"] == "text/html; charset=utf-8"
    assert [p for p, _ in server.log] == ["/page.html"]  # links in the page are not followed


def test_empty_body(server: _Server, tmp_path: Path) -> None:
    e = fetch_one(tmp_path, base(server) + "/empty")
    assert e.data is None
    assert e.error == "empty response body (HTTP 200 OK)"


def test_slow_drip_hits_deadline(server: _Server, tmp_path: Path) -> None:
    # Each byte comes well inside the read timeout; only the total deadline can stop this.
    limits = SourceLimits(url_max_bytes=CAP, url_timeout_s=0.5)  # deadline 4 x 0.5 = 2 s
    t0 = time.monotonic()
    e = fetch_one(tmp_path, base(server) + "/slow", limits)
    elapsed = time.monotonic() - t0
    assert e.data is None
    assert e.error == "took longer than 2 s (per-URL deadline); server too slow"
    assert 1.9 <= elapsed < 3.5


def test_explicit_deadline(server: _Server, tmp_path: Path) -> None:
    f = tmp_path / "urls.txt"
    f.write_text(base(server) + "/slow\n", encoding="utf-8")
    t0 = time.monotonic()
    (e,) = UrlListSource(str(f), LIMITS, deadline_s=0.7).entries()
    assert time.monotonic() - t0 < 2.0
    assert e.error == "took longer than 0.7 s (per-URL deadline); server too slow"


def test_stalled_server_hits_read_timeout(server: _Server, tmp_path: Path) -> None:
    limits = SourceLimits(url_max_bytes=CAP, url_timeout_s=0.5)
    t0 = time.monotonic()
    e = fetch_one(tmp_path, base(server) + "/stall", limits)
    assert time.monotonic() - t0 < 1.5
    assert e.error == "read timed out: no data for 0.5 s"


def test_too_many_redirects(server: _Server, tmp_path: Path) -> None:
    server.log.clear()
    e = fetch_one(tmp_path, base(server) + "/chain/10")
    assert e.data is None
    assert e.error == "too many redirects (more than 3)"
    assert len(e.locator.meta["redirects"]) == 4
    # The listed URL plus three followed redirects; the fourth target is never requested.
    assert [p for p, _ in server.log] == ["/chain/10", "/chain/9", "/chain/8", "/chain/7"]


def test_redirect_to_file_url_refused(server: _Server, tmp_path: Path) -> None:
    e = fetch_one(tmp_path, base(server) + "/to-file")
    assert e.data is None
    assert e.error == (
        "redirect to file:// refused (file:///etc/passwd): only http and https are followed"
    )


def test_redirect_to_ftp_refused(server: _Server, tmp_path: Path) -> None:
    e = fetch_one(tmp_path, base(server) + "/to-ftp")
    assert e.error is not None
    assert e.error.startswith("redirect to ftp:// refused")


def test_connection_refused(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    e = fetch_one(tmp_path, f"http://127.0.0.1:{port}/img.jpg")
    assert e.data is None
    assert e.error is not None and e.error.startswith("connection failed:")
    assert "\n" not in e.error


# --- privacy ----------------------------------------------------------------------------


def test_no_cookies_kept_and_user_agent_sent(server: _Server, tmp_path: Path) -> None:
    server.log.clear()
    b = base(server)
    entries = run_list(tmp_path, [b + "/set-cookie", b + "/whoami"])
    assert [e.error for e in entries] == [None, None]
    (_, headers) = server.log[-1]
    lowered = {k.lower(): v for k, v in headers.items()}
    assert "cookie" not in lowered
    assert lowered["user-agent"] == DEFAULT_USER_AGENT
    assert DEFAULT_USER_AGENT.startswith("reclaim/")


def test_proxy_environment_ignored(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there
    e = fetch_one(tmp_path, base(server) + "/img.jpg")
    assert e.error is None
    assert e.data == JPEG


def test_injected_client_used_and_left_open(tmp_path: Path) -> None:
    seen: list[str] = []
    agents: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        agents.append(request.headers["user-agent"])
        return httpx.Response(200, headers={"Content-Type": "image/png"}, content=PNG)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    entries = run_list(
        tmp_path, ["https://example.invalid/a.png"], client=client, user_agent="case-42"
    )
    assert seen == ["https://example.invalid/a.png"]
    assert agents == ["case-42"]
    assert entries[0].data == PNG
    assert not client.is_closed
    client.close()


# --- the list itself --------------------------------------------------------------------


def test_parse_url_list(tmp_path: Path) -> None:
    f = tmp_path / "list.txt"
    f.write_bytes(
        "\ufeff# evidence list\n"
        "  https://a.example/1.jpg  \n"
        "\n"
        "http://b.example/2.png\n"
        "   # indented comment\n"
        "https://a.example/1.jpg\n"
        "not a url\n"
        "ftp://c.example/3.jpg\r\n"
        "HTTPS://D.example/4.jpg\n".encode()
    )
    assert parse_url_list(f) == [
        "https://a.example/1.jpg",
        "http://b.example/2.png",
        "not a url",
        "ftp://c.example/3.jpg",
        "HTTPS://D.example/4.jpg",
    ]


def test_parse_url_list_not_utf8(tmp_path: Path) -> None:
    f = tmp_path / "list.txt"
    f.write_bytes(b"https://a.example/\xe9t\xe9.jpg\n")
    with pytest.raises(SourceError, match="not UTF-8"):
        parse_url_list(f)
    with pytest.raises(SourceError, match="cannot read"):
        parse_url_list(tmp_path / "absent.txt")


def test_validate_url() -> None:
    assert validate_url("https://a.example/x.jpg") is None
    assert validate_url("HTTP://A.example/x.jpg") is None
    assert validate_url("not a url") == "not a URL (contains spaces or control characters)"
    assert validate_url("a.example/x.jpg") == "not a URL (expected http://... or https://...)"
    assert validate_url("file:///etc/passwd") == (
        "unsupported scheme 'file' (only http:// and https:// URLs are fetched)"
    )
    assert validate_url("https://") is not None


def test_invalid_lines_become_error_entries(server: _Server, tmp_path: Path) -> None:
    server.log.clear()
    good = base(server) + "/img.jpg"
    entries = run_list(tmp_path, ["not a url", good, "ftp://c.example/3.jpg", good])
    assert [e.locator.path for e in entries] == ["not a url", good, "ftp://c.example/3.jpg"]
    assert entries[0].error == "not a URL (contains spaces or control characters)"
    assert entries[0].data is None
    assert entries[1].error is None and entries[1].data == JPEG
    assert entries[2].error == (
        "unsupported scheme 'ftp' (only http:// and https:// URLs are fetched)"
    )
    assert [p for p, _ in server.log] == ["/img.jpg"]  # fetched once, nothing else requested


def test_describe(tmp_path: Path) -> None:
    f = tmp_path / "urls.txt"
    f.write_text("https://a.example/1.jpg\nhttps://a.example/2.jpg\n", encoding="utf-8")
    src = UrlListSource(str(f), LIMITS)
    assert src.name == "urllist"
    assert src.describe() == f"url list {f} (2 URLs)"


def test_detect(tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("# list\n\nhttps://a.example/1.jpg\nhttp://b.example/2\n", encoding="utf-8")
    assert detect(str(urls))
    mostly = tmp_path / "mostly.txt"
    mostly.write_text("https://a/1\nhttps://a/2\nnote to self\n", encoding="utf-8")
    assert detect(str(mostly))
    half = tmp_path / "half.txt"
    half.write_text("https://a/1\nnote to self\n", encoding="utf-8")
    assert not detect(str(half))
    prose = tmp_path / "notes.txt"
    prose.write_text("see https://a.example for details\nand more text\n", encoding="utf-8")
    assert not detect(str(prose))
    only_comments = tmp_path / "comments.txt"
    only_comments.write_text("# https://a.example/1.jpg\n", encoding="utf-8")
    assert not detect(str(only_comments))
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert not detect(str(empty))
    jpeg = tmp_path / "photo.jpg"
    jpeg.write_bytes(JPEG)
    assert not detect(str(jpeg))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"https://a.example/caf\xe9.jpg\n")
    assert not detect(str(latin1))
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"https://a.example/1.jpg\n\x00\n")
    assert not detect(str(nul))
    assert not detect(str(tmp_path))  # a folder
    assert not detect(str(tmp_path / "absent.txt"))


def test_detect_multibyte_at_first_kb_boundary(tmp_path: Path) -> None:
    # A two-byte character cut by the 1 KiB mark must not make the list look binary.
    first = "https://a.example/" + "a" * (1023 - len("https://a.example/")) + "é.jpg\n"
    assert len(first.encode()[:1024].decode("utf-8", errors="ignore")) == 1023
    f = tmp_path / "urls.txt"
    f.write_text(first + "https://a.example/2.jpg\n", encoding="utf-8")
    assert detect(str(f))


def test_scan_refuses_url_list(tmp_path: Path) -> None:
    f = tmp_path / "list.txt"
    f.write_text("https://a.example/1.jpg\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"use `reclaim fetch .*list\.txt --case DIR`"):
        refuse_without_fetch(str(f), LIMITS)
    with pytest.raises(InputError, match="reclaim fetch"):
        open_source(str(f))


def test_open_url_list(tmp_path: Path) -> None:
    f = tmp_path / "list.txt"
    f.write_text("https://a.example/1.jpg\n", encoding="utf-8")
    assert open_url_list(str(f), LIMITS).urls == ["https://a.example/1.jpg"]
    prose = tmp_path / "prose.txt"
    prose.write_text("hello\n", encoding="utf-8")
    with pytest.raises(InputError, match="not a URL list"):
        open_url_list(str(prose), LIMITS)
    with pytest.raises(InputError, match="no such file"):
        open_url_list(str(tmp_path / "absent.txt"), LIMITS)
