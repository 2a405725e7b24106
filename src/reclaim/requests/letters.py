"""Drafting a request's letter, in French or English, from templates (``templates/*.txt.j2``).

A letter holds the legal basis, the place (a web address or a Telegram message; a file of hers
is "a copy in my possession", never its path), her decision, the item's hashes and the earlier
requests about it: never an image, a thumbnail or a face. It is plain text she reads, can
correct and sends herself; reclaim sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from reclaim.report.notices import Notifier
from reclaim.requests.catalog import Destination
from reclaim.requests.places import Place, place_of
from reclaim.store.decisions import Decision
from reclaim.store.requests import RequestRecord, RequestStatus

#: Stand-ins for her name and address until she gives them (``reclaim request draft --name``).
PLACEHOLDER = {
    "fr": Notifier("[votre nom]", "[votre adresse e-mail]"),
    "en": Notifier("[your name]", "[your e-mail address]"),
}


@dataclass(frozen=True)
class LetterFacts:
    """Everything a letter says, gathered from the case (``case.draft``)."""

    item: dict[str, Any]  # sha256, md5, pdq, kind, first_seen_at
    hashes: list[dict[str, Any]]  # the rows ``reclaim protect`` makes for it (no image)
    place: Place | None
    places: list[Place]  # every public or actionable place of the item
    decision: Decision
    earlier: list[tuple[RequestRecord, Destination]]  # other requests about this item


#: A request's status as a letter says it.
STATUS_WORDS: dict[str, dict[RequestStatus, str]] = {
    "fr": {
        RequestStatus.DRAFT: "en préparation",
        RequestStatus.SENT: "sans réponse",
        RequestStatus.ACKNOWLEDGED: "réception confirmée, sans décision",
        RequestStatus.REMOVED: "retiré",
        RequestStatus.REFUSED: "refusée",
        RequestStatus.REAPPEARED: "retiré puis revenu",
    },
    "en": {
        RequestStatus.DRAFT: "being prepared",
        RequestStatus.SENT: "no answer",
        RequestStatus.ACKNOWLEDGED: "receipt confirmed, no decision",
        RequestStatus.REMOVED: "removed",
        RequestStatus.REFUSED: "refused",
        RequestStatus.REAPPEARED: "removed, then back",
    },
}

_ENV: Environment | None = None


def _env() -> Environment:
    global _ENV
    if _ENV is None:
        _ENV = Environment(
            loader=PackageLoader("reclaim.requests", "templates"),
            autoescape=False,  # plain text, never HTML
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
    return _ENV


def render(
    dest: Destination,
    facts: LetterFacts,
    lang: str,
    notifier: Notifier | None,
    now: datetime,
) -> str:
    """The letter for ``dest`` in ``lang`` (``fr`` or ``en``)."""
    who = notifier or PLACEHOLDER[lang]
    text = (
        _env()
        .get_template(f"{dest.letter}.txt.j2")
        .render(
            lang=lang,
            dest=dest,
            name=dest.label(lang),
            law=dest.text(dest.law, lang),
            link=dest.link_for(facts.place.site if facts.place else None),
            who=who,
            item=facts.item,
            hashes=facts.hashes,
            place=facts.place,
            places=facts.places,
            decided=facts.decision.decided_at[:10],
            earlier=[
                {
                    "name": d.label(lang),
                    "status": STATUS_WORDS[lang][r.status],
                    "sent": (r.sent_at or "")[:10],
                    "place": _text(r, lang),
                }
                for r, d in facts.earlier
            ],
            today=now.date().isoformat(),
        )
    )
    return "\n".join(line.rstrip() for line in text.strip().splitlines()) + "\n"


def _text(r: RequestRecord, lang: str) -> str:
    return place_of(r.place).text(lang) if r.place is not None else ""
