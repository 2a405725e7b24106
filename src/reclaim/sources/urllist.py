"""URL lists: text files of http(s) links, downloaded only by ``reclaim fetch``.

This is the only part of reclaim that touches the network, and only for the URLs the user
listed: no crawling, no following of links inside pages, no retries. Each URL gives exactly one
entry: its bytes with the fetch recorded in ``Locator.meta`` (final URL, status, content type,
UTC time, size, redirects, ETag/Last-Modified), or a one-line error.

Guards (all from ``SourceLimits``):

- only ``http``/``https``, for listed URLs and every redirect target (``file://``, ``ftp://``
  and the like are refused);
- redirects followed by hand, at most ``url_max_redirects``;
- ``url_public_only`` (the platform's ``?url=`` fetch): every hop's host resolved once, refused
  unless all its addresses are public, and connected to an address of that same answer
  (``reclaim.netguard.GuardedTransport``: no DNS-rebinding window);
- connect/read timeouts of ``url_timeout_s`` plus a total per-URL deadline (by default
  ``DEADLINE_FACTOR * url_timeout_s``) checked while streaming, so a server dribbling bytes
  cannot hold the scan;
- size cap ``url_max_bytes`` checked against Content-Length up front and counted while
  streaming (also for gzip/deflate bodies, counted after decoding, so a compression bomb stops
  at the cap);
- content type: ``image/*`` and ``video/*``; ``application/octet-stream`` (or none) only when
  the bytes themselves look like an image or video; anything else (HTML pages, text) refused.

Privacy: the client reclaim builds keeps no cookies between requests (every cookie is refused)
and ignores the environment (``trust_env=False``): no ``HTTP(S)_PROXY``/``ALL_PROXY``, no
``.netrc`` credentials, no ``SSL_CERT_FILE`` — the links go straight to their servers and
nothing leaks to a proxy configured for something else. A client passed in by the caller is
used as it is (its cookies, proxies and settings are the caller's choice) and is not closed.
"""

from __future__ import annotations

import codecs
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http import HTTPStatus
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any

import httpx

from reclaim import __version__
from reclaim.errors import FetchError, InputError, SourceError
from reclaim.media.sniff import sniff
from reclaim.netguard import GuardedTransport, host_problem, refusal
from reclaim.sources.base import (
    Entry,
    Locator,
    Source,
    SourceLimits,
    open_regular,
    read_regular,
)

__all__ = [
    "DEADLINE_FACTOR",
    "UrlListSource",
    "detect",
    "open_url_list",
    "parse_url_list",
    "refuse_without_fetch",
    "validate_url",
]

DEFAULT_USER_AGENT = f"reclaim/{__version__} (evidence collection)"
DEADLINE_FACTOR = 4.0  # total per-URL deadline = DEADLINE_FACTOR * url_timeout_s by default
MAX_LIST_BYTES = 16 * 1024 * 1024  # a URL list larger than this is refused as a whole
_DETECT_HEAD = 1024  # must decode as UTF-8
_DETECT_SCAN = 64 * 1024  # lines looked at to decide "mostly URLs"
_SNIFF_BYTES = 64
_SCHEMES = ("http", "https")
_SNIFFED_TYPES = ("", "application/octet-stream", "binary/octet-stream")
_ZLIB_ENCODINGS = ("gzip", "x-gzip", "deflate")
_REDIRECTS = (301, 302, 303, 307, 308)


def _looks_like_url(line: str) -> bool:
    low = line[:8].lower()
    return low.startswith(("http://", "https://"))


def _content_lines(text: str) -> Iterator[str]:
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            yield line


def detect(spec: str) -> bool:
    """True for a UTF-8 text file whose non-blank, non-comment lines are mostly http(s) URLs."""
    try:  # only a regular file is opened (a FIFO would block for ever): base.open_regular
        f, _ = open_regular(spec, follow_links=True)
        with f:
            head = f.read(_DETECT_SCAN)
    except OSError:
        return False
    first = head[:_DETECT_HEAD]
    if not first or b"\x00" in first:
        return False
    try:
        # Incremental decode: a multi-byte character cut at the 1 KiB mark is not an error.
        codecs.getincrementaldecoder("utf-8")("strict").decode(first, final=False)
    except UnicodeDecodeError:
        return False
    text = head.decode("utf-8", errors="replace").removeprefix("\ufeff")
    lines = list(_content_lines(text))
    if not lines:
        return False
    urls = sum(1 for line in lines if _looks_like_url(line))
    return urls * 2 > len(lines)


def parse_url_list(path: str | Path) -> list[str]:
    """Lines of a URL list, stripped, without blank and ``#`` comment lines, deduplicated in order.

    Lines are returned as listed, valid or not: ``validate_url`` tells which are usable, and
    the source turns the others into error entries (nothing is dropped silently).
    Raises SourceError when the file cannot be read, is too large, or is not UTF-8 text.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_LIST_BYTES:
            raise SourceError(
                f"{p}: URL list too large ({size} bytes > {MAX_LIST_BYTES}); split it into "
                "smaller lists"
            )
        raw = read_regular(p, MAX_LIST_BYTES, follow_links=True)
    except OSError as e:
        raise SourceError(f"{p}: cannot read URL list: {e.strerror or e}") from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SourceError(
            f"{p}: URL list is not UTF-8 text (bad byte at offset {e.start}); save it as UTF-8"
        ) from e
    seen: set[str] = set()
    out: list[str] = []
    for line in _content_lines(text):
        if line not in seen:
            seen.add(line)
            out.append(line)
    return out


def validate_url(line: str) -> str | None:
    """None when ``line`` is an http(s) URL reclaim can fetch, else a one-line reason."""
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in line):
        return "not a URL (contains spaces or control characters)"
    if "://" not in line:
        return "not a URL (expected http://... or https://...)"
    try:
        url = httpx.URL(line)
        # The host is decoded from IDNA when read: an invalid A-label ("xn--…") or a code point
        # IDNA refuses raises idna's errors (UnicodeError) here, not when the URL is parsed.
        host = url.host
    except (httpx.InvalidURL, ValueError, TypeError) as e:
        return _one_line(f"not a valid URL: {e}")
    if url.scheme not in _SCHEMES:
        return f"unsupported scheme '{url.scheme}' (only http:// and https:// URLs are fetched)"
    if not host:
        return "not a valid URL (no host)"
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _status_text(response: httpx.Response) -> str:
    reason = response.reason_phrase
    if not reason:
        try:
            reason = HTTPStatus(response.status_code).phrase
        except ValueError:
            reason = ""
    return _one_line(f"HTTP {response.status_code} {reason}")


class _Body:
    """Accumulates a response body under the size cap, decoding gzip/deflate when sent."""

    def __init__(self, encoding: str, cap: int) -> None:
        self.cap = cap
        self.buf = bytearray()
        self._z: Any = None
        if encoding in _ZLIB_ENCODINGS:
            self._z = zlib.decompressobj(wbits=47)  # 32 + 15: zlib or gzip header, detected
        elif encoding not in ("", "identity"):
            raise FetchError(f"unsupported Content-Encoding '{encoding}'")

    def _too_large(self) -> FetchError:
        return FetchError(f"too large: more than {self.cap} bytes (cap {self.cap})")

    def feed(self, chunk: bytes) -> None:
        if self._z is None:
            self.buf += chunk
            if len(self.buf) > self.cap:
                raise self._too_large()
            return
        data = chunk
        while data:
            try:
                # max_length >= 1 here (0 would mean "unlimited" to zlib).
                out = self._z.decompress(data, self.cap + 1 - len(self.buf))
            except zlib.error as e:
                raise FetchError(f"corrupt compressed body: {e}") from e
            self.buf += out
            if len(self.buf) > self.cap:
                raise self._too_large()
            data = self._z.unconsumed_tail
            if self._z.eof:
                break

    def finish(self) -> bytes:
        if self._z is not None:
            try:
                self.buf += self._z.flush()
            except zlib.error as e:
                raise FetchError(f"corrupt compressed body: {e}") from e
            if len(self.buf) > self.cap:
                raise self._too_large()
            if not self._z.eof:
                raise FetchError("truncated compressed body")
        return bytes(self.buf)


class UrlListSource:
    """Downloads each listed URL once, under the guards in ``SourceLimits``."""

    name = "urllist"

    def __init__(
        self,
        spec: str,
        limits: SourceLimits,
        *,
        client: httpx.Client | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        deadline_s: float | None = None,
    ) -> None:
        self.spec = spec
        self.limits = limits
        self.urls = parse_url_list(spec)
        self.user_agent = user_agent
        self.deadline_s = (
            deadline_s if deadline_s is not None else DEADLINE_FACTOR * limits.url_timeout_s
        )
        self._client = client
        self._pinned: httpx.Client | None = None  # the client _make_client built, if any

    def describe(self) -> str:
        return f"url list {self.spec} ({len(self.urls)} URLs)"

    def _make_client(self) -> httpx.Client:
        """reclaim's own client. Its transport resolves each host once and connects to an
        address of that answer; with ``url_public_only`` every address of it must be public
        (``reclaim.netguard``), so the check and the connection cannot disagree."""
        no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
        t = self.limits.url_timeout_s
        self._pinned = httpx.Client(
            follow_redirects=False,
            trust_env=False,
            cookies=no_cookies,
            timeout=httpx.Timeout(t),
            headers={"User-Agent": self.user_agent},
            transport=GuardedTransport(allow_private=not self.limits.url_public_only),
        )
        return self._pinned

    def entries(self) -> Iterator[Entry]:
        own = self._client is None
        client = self._make_client() if self._client is None else self._client
        try:
            for url in self.urls:
                yield self.fetch(client, url)
        finally:
            if own:
                client.close()

    def fetch(self, client: httpx.Client, listed: str) -> Entry:
        """One entry for one listed URL: the bytes with their fetch record, or an error."""
        problem = validate_url(listed)
        if problem is not None:
            return Entry(Locator("url", listed), error=problem)
        meta: dict[str, Any] = {"redirects": []}
        try:
            data = self._fetch(client, listed, meta)
        except FetchError as e:
            return Entry(Locator("url", listed, meta=meta), error=_one_line(str(e)))
        return Entry(Locator("url", listed, meta=meta), data=data)

    def _fetch(self, client: httpx.Client, listed: str, meta: dict[str, Any]) -> bytes:
        limits = self.limits
        start = time.monotonic()
        deadline = self.deadline_s

        def remaining() -> float:
            return deadline - (time.monotonic() - start)

        def over_deadline() -> FetchError:
            return FetchError(
                f"took longer than {deadline:g} s (per-URL deadline); server too slow"
            )

        url = httpx.URL(listed)
        redirects: list[str] = meta["redirects"]
        while True:
            left = remaining()
            if left <= 0:
                raise over_deadline()
            t = min(limits.url_timeout_s, left)
            if limits.url_public_only and client is not self._pinned:
                # A caller's own client connects as it likes: check the host beforehand (its
                # transport resolves again; reclaim's own client checks as it connects).
                refused = host_problem(url.host)
                if refused is not None:
                    raise FetchError(f"refused: {refused}")
            request = client.build_request(
                "GET",
                url,
                headers={
                    "User-Agent": self.user_agent,
                    "Accept": "image/*, video/*",
                    "Accept-Encoding": "identity",
                },
                timeout=httpx.Timeout(t),
            )
            try:
                response = client.send(request, stream=True, follow_redirects=False)
            except httpx.TimeoutException as e:
                raise self._timeout_refusal(e, remaining(), t, over_deadline) from e
            except httpx.HTTPError as e:
                raise FetchError(self._network_error(e)) from e
            try:
                meta["final_url"] = str(response.url)
                meta["status"] = response.status_code
                meta["fetched_at"] = _now_iso()
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    url = self._redirect_target(response, redirects, limits.url_max_redirects)
                    continue
                return self._read_body(response, meta, remaining, over_deadline)
            except httpx.TimeoutException as e:
                raise self._timeout_refusal(e, remaining(), t, over_deadline) from e
            except httpx.HTTPError as e:
                raise FetchError(self._network_error(e)) from e
            finally:
                response.close()

    @staticmethod
    def _redirect_target(response: httpx.Response, redirects: list[str], cap: int) -> httpx.URL:
        location = response.headers["location"]
        try:
            target = response.url.join(location)
        except (httpx.InvalidURL, ValueError, TypeError) as e:
            raise FetchError(
                f"bad redirect Location {location[:200]!r} ({_status_text(response)})"
            ) from e
        redirects.append(str(response.url))
        if target.scheme not in _SCHEMES:
            raise FetchError(
                f"redirect to {target.scheme}:// refused ({location[:200]}): "
                "only http and https are followed"
            )
        if not target.host:
            raise FetchError(f"bad redirect Location {location[:200]!r} (no host)")
        if len(redirects) > cap:
            raise FetchError(f"too many redirects (more than {cap})")
        return target

    def _read_body(
        self,
        response: httpx.Response,
        meta: dict[str, Any],
        remaining: Callable[[], float],
        over_deadline: Callable[[], FetchError],
    ) -> bytes:
        limits = self.limits
        status = response.status_code
        if not 200 <= status < 300:
            raise FetchError(_status_text(response))
        headers = response.headers
        content_type = headers.get("content-type", "")
        mime = content_type.split(";", 1)[0].strip().lower()
        meta["content_type"] = content_type
        if headers.get("etag"):
            meta["etag"] = headers["etag"]
        if headers.get("last-modified"):
            meta["last_modified"] = headers["last-modified"]
        media_type = mime.startswith(("image/", "video/"))
        must_sniff = mime in _SNIFFED_TYPES
        if not media_type and not must_sniff:
            raise FetchError(f"not an image or video (content-type {mime})")
        declared = headers.get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError as e:
                raise FetchError(f"bad Content-Length {declared[:40]!r}") from e
            if length > limits.url_max_bytes:
                raise FetchError(
                    f"too large: Content-Length {length} bytes > cap {limits.url_max_bytes}"
                )
        encoding = headers.get("content-encoding", "").strip().lower()
        chunks: Iterator[bytes]
        if response.is_stream_consumed:
            # Already read (an injected client's mock transport): httpx has decoded it.
            body = _Body("identity", limits.url_max_bytes)
            chunks = iter((response.content,))
        else:
            body = _Body(encoding, limits.url_max_bytes)
            # chunk_size=None: chunks come as the network delivers them, so the deadline is
            # checked after every read, however small (a slow drip sends a byte at a time).
            chunks = response.iter_raw()
        sniffed = False
        for chunk in chunks:
            body.feed(chunk)
            if remaining() <= 0:
                raise over_deadline()
            if must_sniff and not sniffed and len(body.buf) >= _SNIFF_BYTES:
                self._check_sniff(bytes(body.buf[:_SNIFF_BYTES]), mime)
                sniffed = True
        data = body.finish()
        if not data:
            raise FetchError(f"empty response body ({_status_text(response)})")
        if must_sniff and not sniffed:
            self._check_sniff(data[:_SNIFF_BYTES], mime)
        meta["bytes"] = len(data)
        meta["fetched_at"] = _now_iso()
        return data

    @staticmethod
    def _check_sniff(head: bytes, mime: str) -> None:
        kind, _fmt = sniff(head)
        if kind not in ("photo", "video"):
            shown = mime or "none"
            raise FetchError(
                f"not an image or video (content-type {shown}, content not recognised)"
            )

    @staticmethod
    def _timeout_refusal(
        e: httpx.TimeoutException, left: float, t: float, over_deadline: Callable[[], FetchError]
    ) -> FetchError:
        if left <= 0.05:
            return over_deadline()
        if isinstance(e, httpx.ConnectTimeout):
            return FetchError(f"connect timed out after {t:g} s")
        if isinstance(e, httpx.ReadTimeout):
            return FetchError(f"read timed out: no data for {t:g} s")
        return FetchError(f"timed out after {t:g} s ({type(e).__name__})")

    @staticmethod
    def _network_error(e: httpx.HTTPError) -> str:
        refused = refusal(e)
        if refused is not None:
            return f"refused: {refused}"
        detail = _one_line(str(e)) or type(e).__name__
        if isinstance(e, httpx.ConnectError):
            return f"connection failed: {detail}"
        return f"network error: {detail}"


def refuse_without_fetch(spec: str, limits: SourceLimits) -> Source:
    """Opener for ``open_source``: a scan never touches the network by itself."""
    raise InputError(f"{spec} is a URL list: use `reclaim fetch {spec} --case DIR` to download it")


def open_url_list(
    spec: str,
    limits: SourceLimits,
    *,
    client: httpx.Client | None = None,
    user_agent: str = DEFAULT_USER_AGENT,
) -> UrlListSource:
    """For ``reclaim fetch``: the source that downloads ``spec``'s URLs.

    Raises InputError when ``spec`` is not a URL list, SourceError when it cannot be read.
    """
    if not Path(spec).is_file():
        raise InputError(f"{spec}: no such file (expected a text file of http(s) URLs)")
    if not detect(spec):
        raise InputError(
            f"{spec}: not a URL list (expected a UTF-8 text file with one http(s) URL per line)"
        )
    return UrlListSource(spec, limits, client=client, user_agent=user_agent)
