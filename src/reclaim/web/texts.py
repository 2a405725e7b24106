"""Plurals, dates and the clock for the pages of issue 22 (dashboard, requests, watch).

- ``ngettext(lang)``: ``n(singular, plural, count)`` for templates, through Babel's plural rules
  and the plural entries of the French catalog (``msgid_plural``), so French never says
  "1 éléments" and English never says "1 places";
- ``when(lang)``: a stored ISO 8601 time as Babel writes a date and time in that language (UTC);
- ``day(lang)``: a date (a ``date``, or an ISO 8601 text) as Babel writes a day in that language;
- ``now_of(request)``: the app's clock; tests set ``app.state.now`` (a function returning an aware
  datetime) to look at any instant; otherwise the current time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.pofile import read_po
from fastapi import Request

_PO = Path(__file__).parent / "locale" / "{lang}" / "LC_MESSAGES" / "messages.po"


@cache
def _plurals(lang: str) -> dict[str, tuple[str, ...]]:
    """Plural entries of the catalog: singular msgid → the translated forms."""
    po = Path(str(_PO).format(lang=lang))
    if not po.exists():
        return {}
    with open(po, "rb") as f:
        cat = read_po(f, locale=lang)
    out: dict[str, tuple[str, ...]] = {}
    for m in cat:
        if isinstance(m.id, tuple) and isinstance(m.string, tuple) and all(m.string):
            out[str(m.id[0])] = tuple(str(s) for s in m.string)
    return out


def plural_ids(lang: str) -> set[str]:
    """The singular msgids that have plural forms in ``lang``'s catalog."""
    return set(_plurals(lang))


def ngettext(lang: str) -> Callable[[str, str, int], str]:
    """``n(singular, plural, count)``: the form for ``count`` with ``%(n)s`` replaced by it."""
    loc = Locale.parse(lang)
    table = _plurals(lang)

    def n(singular: str, plural: str, count: int) -> str:
        one = loc.plural_form(count) == "one"
        forms = table.get(singular)
        if forms:
            text = forms[0] if one or len(forms) == 1 else forms[1]
        else:
            text = singular if one else plural
        return text.replace("%(n)s", str(count))

    return n


def when(lang: str) -> Callable[[str | datetime | None], str]:
    """``w(stored)``: a stored time as a date and time in ``lang`` (UTC), "" for None."""

    def w(value: str | datetime | None) -> str:
        if value is None or value == "":
            return ""
        dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return format_datetime(dt, "d MMMM y, HH:mm", tzinfo=UTC, locale=lang) + " UTC"

    return w


def day(lang: str) -> Callable[[str | date | None], str]:
    """``d(value)``: a day in ``lang`` ("7 décembre 2026", "7 December 2026"), "" for None."""

    def d(value: str | date | None) -> str:
        if value is None or value == "":
            return ""
        v = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
        return format_date(v, "d MMMM y", locale=lang)

    return d


def now_of(request: Request) -> datetime:
    """The app's clock: ``app.state.now()`` where a test set it, else the current time."""
    clock = getattr(request.app.state, "now", None)
    if callable(clock):
        t = clock()
        if isinstance(t, datetime):
            return t if t.tzinfo is not None else t.replace(tzinfo=UTC)
    return datetime.now(UTC)
