"""French and English for the web app: Babel catalogs (.po) read at start, language per request."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

LANGS = ("fr", "en")
DEFAULT_LANG = "fr"  # the first users are French
_LOCALE_DIR = Path(__file__).parent / "locale"


@cache
def _catalog(lang: str) -> dict[str, str]:
    po = _LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return {}
    with open(po, "rb") as f:
        cat = read_po(f, locale=lang)
    return {str(m.id): str(m.string) for m in cat if m.id and m.string}


def translator(lang: str) -> Callable[[str], str]:
    """``_`` for templates: msgids are English; missing translations fall back to them."""
    table = _catalog(lang)

    def _(text: str) -> str:
        return table.get(text, text)

    return _


def negotiate(accept_language: str | None, cookie: str | None) -> str:
    """The person's choice (cookie) first, then the browser's languages, then French."""
    if cookie in LANGS:
        return str(cookie)
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGS:
            return tag
    return DEFAULT_LANG


def missing_translations(lang: str, msgids: list[str]) -> list[str]:
    table = _catalog(lang)
    return [m for m in msgids if m not in table]
