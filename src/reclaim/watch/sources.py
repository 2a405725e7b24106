"""What a watch run reads: the sources she registered, opened again at each run, and the URLs
it checks, each answer kept for the run to judge.

- A folder is a *drop folder*: each Telegram Desktop export put in it (a folder holding
  ``result.json``) is read as an export, with its chats and messages; any other file or folder
  in it is read as ``reclaim scan`` reads a folder. A registered export, archive or file is
  read as ``reclaim scan`` reads it.
- URLs: those of her registered URL lists and those of her removal requests, nothing else,
  fetched as ``reclaim fetch`` fetches them (``sources.urllist``: the same size, type and time
  caps, the same client without cookies or proxies, no crawling).

The scan already skips what it recorded before (same place, same size and time), so a watch
run only analyses what is new; URLs have no such fingerprint and are fetched at every run,
which is the point: their answer is what the watch checks.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from reclaim.errors import InputError, ReclaimError, SourceError
from reclaim.sources import Entry, Locator, Source, SourceLimits, open_source
from reclaim.sources.urllist import (
    DEADLINE_FACTOR,
    DEFAULT_USER_AGENT,
    UrlListSource,
    parse_url_list,
    validate_url,
)

__all__ = [
    "DropFolder",
    "UrlAnswer",
    "WatchedUrls",
    "kind_of",
    "open_watched",
]


def kind_of(spec: str) -> str:
    """What a source to watch is: ``urllist``, ``telegram``, ``archive``, ``file`` or
    ``folder``. InputError with the reason when it is none of them."""
    from reclaim.sources import archive, telegram, urllist

    p = Path(spec)
    if not p.exists():
        raise InputError(f"{spec}: no such file or folder")
    if p.is_dir():
        return "telegram" if telegram.detect(spec) else "folder"
    if urllist.detect(spec):
        return "urllist"
    if archive.detect(spec):
        return "archive"
    open_source(spec)  # says why anything else cannot be read
    return "file"


class DropFolder:
    """A folder she drops material into: each Telegram export in it read as an export, the
    rest as a folder. Nothing outside it is read (links are not followed)."""

    name = "drop-folder"

    def __init__(self, root: str, limits: SourceLimits) -> None:
        self.root = Path(root).resolve()
        self.limits = limits

    def describe(self) -> str:
        return f"watched folder {self.root}"

    def entries(self) -> Iterator[Entry]:
        from reclaim.sources import telegram
        from reclaim.sources.folder import file_entries, walk_entries

        try:
            children = sorted(os.scandir(self.root), key=lambda d: d.name)
        except OSError as e:
            yield Entry(
                Locator("file", str(self.root)),
                error=f"folder cannot be read ({e.strerror or e}); its contents were not scanned",
            )
            return
        for child in children:
            path = self.root / child.name
            if child.is_dir(follow_symlinks=False):
                if telegram.detect(str(path)):
                    try:
                        export = telegram.open_telegram(str(path), self.limits)
                    except ReclaimError as e:  # still being copied, or damaged: next run
                        yield Entry(Locator("file", str(path)), error=str(e))
                        continue
                    yield from export.entries()
                else:
                    yield from walk_entries(path, self.limits)
            else:
                yield from file_entries(path, self.limits)


def open_watched(
    specs: list[tuple[str, str]], limits: SourceLimits
) -> tuple[list[Source], list[str], list[str]]:
    """Open registered sources (spec, kind): (local sources, URLs listed, one line per
    source that cannot be read now, e.g. a folder on a disk that is not plugged in)."""
    sources: list[Source] = []
    urls: list[str] = []
    problems: list[str] = []
    for spec, kind in specs:
        try:
            if not Path(spec).exists():
                raise SourceError(f"{spec}: no longer there (moved, deleted or not plugged in)")
            if kind == "urllist":
                urls.extend(parse_url_list(spec))
            elif kind == "folder":
                sources.append(DropFolder(spec, limits))
            else:
                sources.append(open_source(spec, limits))
        except ReclaimError as e:
            problems.append(str(e))
    return sources, urls, problems


@dataclass(frozen=True)
class UrlAnswer:
    """What a watched URL answered: ``online`` (an image or video, its SHA-256), ``gone``
    (HTTP 404/410/451, or no image or video there any more) or ``unreachable`` (no answer
    that tells: timeout, refused connection, server error, over a cap)."""

    url: str
    state: str
    sha256: str | None
    detail: str
    status: int | None


#: HTTP statuses that say the content is not there (any more).
GONE_STATUSES = frozenset({404, 410, 451})
#: Errors of ``reclaim fetch`` that say the URL answers but serves no image or video.
_NOT_MEDIA = ("not an image or video", "empty response body")


def answer_of(entry: Entry) -> UrlAnswer:
    url = entry.locator.path
    status = entry.locator.meta.get("status")
    code = status if isinstance(status, int) else None
    if entry.data is not None:
        sha = hashlib.sha256(entry.data).hexdigest()
        return UrlAnswer(url, "online", sha, f"HTTP {code}" if code else "", code)
    why = entry.error or "no answer"
    if code in GONE_STATUSES or why.startswith(_NOT_MEDIA):
        return UrlAnswer(url, "gone", None, why, code)
    return UrlAnswer(url, "unreachable", None, why, code)


class WatchedUrls(UrlListSource):
    """The URLs a watch run checks (from her lists and her requests), fetched exactly as
    ``reclaim fetch`` fetches a list's; each answer is kept in ``answers`` for the run."""

    name = "watched-urls"

    def __init__(
        self, urls: list[str], limits: SourceLimits, *, client: httpx.Client | None = None
    ) -> None:
        # No list file: the same state UrlListSource.__init__ sets from one.
        self.spec = "watched URLs"
        self.limits = limits
        self.urls = list(dict.fromkeys(u for u in urls if validate_url(u) is None))
        self.user_agent = DEFAULT_USER_AGENT
        self.deadline_s = DEADLINE_FACTOR * limits.url_timeout_s
        self._client = client
        self._pinned = None
        self.answers: dict[str, UrlAnswer] = {}

    def describe(self) -> str:
        n = len(self.urls)
        return f"{n} watched URL{'s' * (n != 1)}"

    def fetch(self, client: httpx.Client, listed: str) -> Entry:
        entry = super().fetch(client, listed)
        self.answers[listed] = answer_of(entry)
        return entry
