"""Which destinations suit a confirmed item, place by place (``propose``).

- a web address: the platform whose hosts cover it (a data file's ``hosts``), or else the site's
  host under the DSA (Art. 16); a TAKE IT DOWN Act request (recommended for a US platform,
  offered for any other site in case US law applies); the search engines' removal forms;
  PHAROS (France) for public content;
- a Telegram message: Telegram's abuse channels; PHAROS when the chat is public;
- always: hash submission (StopNCII for adults; NCMEC's Take It Down for minors), and for
  minors the 3018 (France); a trusted flagger and a complaint, offered;
- a file she was given (a folder, an archive) names no place to ask: only the always-offered
  destinations come up for it.

Regions (``FR``, ``EU``, ``US``) keep the destinations of those regions (and the ``world`` ones).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from reclaim.requests.catalog import Catalog, Destination, current_catalog
from reclaim.requests.places import Place, places_of
from reclaim.store import CaseStore, Finding
from reclaim.store.requests import RequestRecord


@dataclass(frozen=True)
class Proposal:
    """A destination proposed for an item (and one of its places), and why."""

    destination: Destination
    place: Place | None  # None: about the item wherever it is (hashes, helplines, police)
    reason: dict[str, str]  # fr / en
    recommended: bool
    existing: RequestRecord | None = None  # already drafted for this item, place, destination

    @property
    def place_key(self) -> str:
        return self.place.key if self.place is not None else ""

    def as_record(self, lang: str | None = None) -> dict[str, object]:
        d = self.destination
        return {
            "destination": d.id,
            "name": d.label(lang) if lang else dict(d.name),
            "kind": d.kind,
            "link": d.link_for(self.place.site if self.place else None),
            "place": None if self.place is None else self.place.as_record(),
            "reason": self.reason.get(lang, "") if lang else dict(self.reason),
            "recommended": self.recommended,
            "request": None if self.existing is None else self.existing.id,
            "uncertain": d.uncertain.get(lang, []) if lang else dict(d.uncertain),
        }


def _fits(d: Destination, regions: Collection[str] | None, minor: bool) -> bool:
    if not d.proposable:
        return False
    if (d.audience == "adults" and minor) or (d.audience == "minors" and not minor):
        return False
    return regions is None or "world" in d.regions or bool(d.regions & set(regions))


def propose(
    store: CaseStore,
    item: str | Finding,
    *,
    minor: bool = False,
    regions: Collection[str] | None = None,
    cat: Catalog | None = None,
) -> list[Proposal]:
    """The destinations for a confirmed item (its SHA-256, or a ``Finding``), most direct
    first: recommended ones, then those offered in case they apply. ``minor``: the person was
    under 18 in the image. Each proposal names a request already drafted for it, if any."""
    sha = item.item_sha256 if isinstance(item, Finding) else item
    cat = cat or current_catalog()
    dests = cat.destinations
    out: list[Proposal] = []
    seen: set[tuple[str, str]] = set()

    def add(dest_id: str, place: Place | None, fr: str, en: str, recommended: bool) -> None:
        d = dests.get(dest_id)
        if d is None or not _fits(d, regions, minor):
            return
        key = (d.id, place.key if place else "")
        if key in seen:
            return
        seen.add(key)
        out.append(Proposal(d, place, {"fr": fr, "en": en}, recommended))

    places = places_of(store, sha)
    for p in places:
        if p.kind == "url":
            host = p.host or "?"
            platform = next((d for h in p.hosts if (d := cat.for_host(h)) is not None), None)
            if platform is not None and "url" in platform.places:
                add(platform.id, p, f"Le contenu est sur {platform.label('fr')}.",
                    f"The content is on {platform.label('en')}.", True)  # fmt: skip
            else:
                add("hosting-dsa", p, f"Le contenu est hébergé par {host}.",
                    f"The content is hosted by {host}.", True)  # fmt: skip
            us = platform is not None and platform.us_platform
            add("take-it-down-act", p,
                "Plateforme américaine : retrait sous 48 heures." if us
                else "Si le site est une plateforme américaine : retrait sous 48 heures.",
                "A US platform: removal within 48 hours." if us
                else "If the site is a US platform: removal within 48 hours.", us)  # fmt: skip
            for engine in ("google-search", "bing"):
                add(engine, p, "Si la page apparaît dans les résultats de recherche.",
                    "If the page shows up in search results.", False)  # fmt: skip
            add("pharos", p, "Contenu public : signalement à la police (France).",
                "Public content: report to the French police.", False)  # fmt: skip
        elif p.kind == "telegram":
            add("telegram", p, "Le contenu circule sur Telegram.",
                "The content circulates on Telegram.", True)  # fmt: skip
            if p.public:
                add("pharos", p, "Canal ou groupe public : signalement à la police (France).",
                    "Public channel or group: report to the French police.", False)  # fmt: skip
    add("stopncii", None, "Empêcher de nouvelles publications chez les plateformes partenaires.",
        "Stop new uploads on partner platforms.", True)  # fmt: skip
    add("ncmec-take-it-down", None, "Image d'une personne mineure : empreintes envoyées aux "
        "plateformes participantes.", "An image of a minor: hashes sent to participating "
        "platforms.", True)  # fmt: skip
    add("3018", None, "Pour une personne mineure : le 3018 peut faire retirer vite.",
        "For a minor: 3018 can get content removed fast.", True)  # fmt: skip
    if any(p.actionable for p in places):
        add("point-de-contact", None, "Un signaleur de confiance : ses signalements passent "
            "en priorité.", "A trusted flagger: its notices are handled with priority.",
            False)  # fmt: skip
    add("plainte", None, "Porter plainte : les faits sont punis par la loi.",
        "File a criminal complaint: this is a criminal offence.", False)  # fmt: skip
    out.sort(key=lambda pr: not pr.recommended)  # stable: place order kept within each group
    return [
        Proposal(
            pr.destination,
            pr.place,
            pr.reason,
            pr.recommended,
            store.find_request(sha, pr.place_key, pr.destination.id),
        )
        for pr in out
    ]
