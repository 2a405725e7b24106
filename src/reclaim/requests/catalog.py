"""Where a removal request can go: the destinations, read from data files, not code.

Each destination is one TOML file in ``destinations/`` (``<id>.toml``), in French and English:
who it is, where to go (a link, and an address or number where there is one), what it requires,
its clock (the law's, in hours, where a law sets one; otherwise reclaim's suggested follow-up,
which is not a legal deadline), the law it rests on, the escalation chain to follow when the
clock runs out (named in ``destinations/_escalations.toml``), the places it fits, and sources
with the date they were checked. Anything a source did not confirm is listed under
``[uncertain]`` and shown with the destination.

The files can be corrected without a release: edit them in place, or put corrected or added
files in a folder named by ``RECLAIM_DESTINATIONS`` (a file there replaces the shipped file of
the same id). ``check_catalog`` lists every problem in a folder (``tests/test_requests.py``
runs it on the shipped files); loading refuses a catalog with problems, naming them.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reclaim.errors import ReclaimError

__all__ = [
    "DESTINATIONS_ENV",
    "LANGS",
    "Catalog",
    "CatalogError",
    "Destination",
    "Source",
    "Step",
    "check_catalog",
    "current_catalog",
    "load_catalog",
]

#: A folder of destination files that replace or add to the shipped ones (by id).
DESTINATIONS_ENV = "RECLAIM_DESTINATIONS"
LANGS = ("fr", "en")
ESCALATIONS_FILE = "_escalations.toml"

#: What a destination is.
KINDS = frozenset(
    {"hosting", "platform", "search", "hashes", "helpline", "trusted_flagger", "authority",
     "regulator"}
)  # fmt: skip
#: What an escalation step asks of her.
STEP_KINDS = frozenset({"reminder", "complaint", "regulator", "trusted_flagger", "police", "check"})
#: How she reaches a destination.
CHANNELS = frozenset({"form", "email", "in-app", "phone", "in-person", "letter", "hashing"})
#: The places a destination fits (``Locator.kind`` values, and ``any``).
PLACES = frozenset({"url", "telegram", "any"})
AUDIENCES = frozenset({"all", "adults", "minors"})
REGIONS = frozenset({"world", "EU", "FR", "US"})
#: A link that stands for the site where the content was seen (its own notice form).
SITE_LINK = "{site}"
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,40}$")


class CatalogError(ReclaimError):
    """The destination files are not usable (the message names each problem)."""


@dataclass(frozen=True)
class Source:
    """Where a fact came from, and when it was checked."""

    url: str
    title: str
    checked: date | None  # None: an official text cited by reference, not re-read that day
    note: str = ""


@dataclass(frozen=True)
class Step:
    """One escalation step: what to do when the step before it got no result."""

    kind: str
    wait_days: int  # time this step is given before the next one is due
    text: dict[str, str]  # fr / en
    to: str | None = None  # the destination it sends her to, when there is one


@dataclass(frozen=True)
class Destination:
    """One place a request can go (a ``destinations/<id>.toml`` file)."""

    id: str
    kind: str
    name: dict[str, str]
    link: str  # https URL, or SITE_LINK: the site where it was seen
    channel: str
    requires: dict[str, list[str]]
    law: dict[str, str]
    clock_hours: int | None  # the law's clock, from receipt; None: no legal clock
    follow_up_days: int  # when there is no legal clock: reclaim's suggested check (not law)
    clock_text: dict[str, str]
    letter: str  # the letter template (templates/<letter>.txt.j2)
    escalation_chain: str
    escalation: tuple[Step, ...]
    places: frozenset[str]
    sources: tuple[Source, ...]
    contact: str | None = None  # e-mail address or phone number, for those channels
    hosts: tuple[str, ...] = ()
    regions: frozenset[str] = frozenset({"world"})
    audience: str = "all"
    proposable: bool = True  # False: reached only as an escalation step
    us_platform: bool = False  # a US service: the TAKE IT DOWN Act's removal clock applies
    lang: str | None = None  # the language its letters are best written in (None: hers)
    note: dict[str, str] = field(default_factory=dict)
    uncertain: dict[str, list[str]] = field(default_factory=dict)

    def label(self, lang: str) -> str:
        return self.name.get(lang) or self.name["en"]

    def text(self, what: dict[str, str], lang: str) -> str:
        return what.get(lang) or what.get("en", "")

    def link_for(self, site: str | None) -> str:
        """The link to follow: the destination's own, or the site's where it stands for it."""
        if self.link == SITE_LINK:
            return site or ""
        return self.link

    def matches_host(self, host: str) -> bool:
        """Whether ``host`` (lower-case) is one of this destination's hosts or below one."""
        return any(host == h or host.endswith("." + h) for h in self.hosts)


@dataclass(frozen=True)
class Catalog:
    """Every destination by id (file order: by id)."""

    destinations: dict[str, Destination]

    def get(self, dest_id: str) -> Destination:
        """The destination ``dest_id``. CatalogError names the known ones when it is unknown."""
        try:
            return self.destinations[dest_id]
        except KeyError:
            known = ", ".join(sorted(self.destinations))
            raise CatalogError(f"unknown destination {dest_id!r}: use one of {known}") from None

    def for_host(self, host: str) -> Destination | None:
        """The platform whose hosts cover ``host``, or None."""
        host = host.lower().rstrip(".")
        for d in self.destinations.values():
            if d.hosts and d.matches_host(host):
                return d
        return None


# -- reading and checking -------------------------------------------------------------------


def _shipped_dir() -> Path:
    return Path(str(resources.files("reclaim.requests") / "destinations"))


def _read(path: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        problems.append(f"{path.name}: not readable TOML ({e})")
        return None


def _langs(d: Any, what: str, where: str, problems: list[str]) -> dict[str, str]:
    """``d`` as {fr, en} non-empty texts (problems noted)."""
    if not isinstance(d, dict):
        problems.append(f"{where}: {what} must be a table with fr and en")
        return {}
    out: dict[str, str] = {}
    for lang in LANGS:
        v = d.get(lang)
        if not isinstance(v, str) or not v.strip():
            problems.append(f"{where}: {what} has no {lang} text")
        else:
            out[lang] = v.strip()
    return out


def _lang_lists(d: Any, what: str, where: str, problems: list[str]) -> dict[str, list[str]]:
    if not isinstance(d, dict):
        problems.append(f"{where}: {what} must be a table with fr and en lists")
        return {}
    out: dict[str, list[str]] = {}
    for lang in LANGS:
        v = d.get(lang)
        if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
            problems.append(f"{where}: {what} has no {lang} list")
        else:
            out[lang] = [x.strip() for x in v]
    return out


def _https(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return parts.scheme == "https" and bool(parts.hostname) and " " not in url


def _steps(raw: Any, chain: str, problems: list[str]) -> tuple[Step, ...]:
    where = f"{ESCALATIONS_FILE} [{chain}]"
    if not isinstance(raw, list) or not raw:
        problems.append(f"{where}: a chain is a list of steps ([[{chain}]])")
        return ()
    steps: list[Step] = []
    for n, s in enumerate(raw, 1):
        w = f"{where} step {n}"
        if not isinstance(s, dict):
            problems.append(f"{w}: not a table")
            continue
        kind = s.get("kind")
        if kind not in STEP_KINDS:
            problems.append(f"{w}: kind must be one of {', '.join(sorted(STEP_KINDS))}")
        wait = s.get("wait_days")
        if not isinstance(wait, int) or isinstance(wait, bool) or not 0 < wait <= 365:
            problems.append(f"{w}: wait_days must be a whole number of days (1-365)")
            wait = 7
        to = s.get("to")
        if to is not None and not isinstance(to, str):
            problems.append(f"{w}: to must be a destination id")
            to = None
        text = _langs({k: s.get(k) for k in LANGS}, "the step", w, problems)
        steps.append(Step(str(kind), int(wait), text, to))
    return tuple(steps)


def _sources(raw: Any, where: str, problems: list[str]) -> tuple[Source, ...]:
    """The ``[[sources]]``: each with an https url and a title, and the date it was checked,
    except those marked ``reference = true`` (an official text cited, not re-read that day);
    at least one checked source."""
    if not isinstance(raw, list) or not raw:
        problems.append(f"{where}: at least one source ([[sources]] with url, title, checked)")
        return ()
    today = datetime.now(UTC).date()
    out: list[Source] = []
    for n, s in enumerate(raw, 1):
        w = f"{where} source {n}"
        if not isinstance(s, dict):
            problems.append(f"{w}: not a table")
            continue
        url, title, checked = s.get("url"), s.get("title"), s.get("checked")
        if not _https(url):
            problems.append(f"{w}: url must be an https:// address")
        if not isinstance(title, str) or not title.strip():
            problems.append(f"{w}: no title")
        if checked is None and s.get("reference") is True:
            out.append(Source(str(url), str(title).strip(), None, str(s.get("note", ""))))
            continue
        if isinstance(checked, datetime) or not isinstance(checked, date):
            problems.append(f"{w}: checked must be a date (YYYY-MM-DD)")
            continue
        if checked > today:
            problems.append(f"{w}: checked {checked} is in the future")
        out.append(Source(str(url), str(title).strip(), checked, str(s.get("note", ""))))
    if out and all(x.checked is None for x in out):
        problems.append(f"{where}: no source with the date it was checked")
    return tuple(out)


def _str_set(
    raw: Any, allowed: frozenset[str], what: str, where: str, problems: list[str]
) -> frozenset[str]:
    if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
        problems.append(f"{where}: {what} must be a list of {', '.join(sorted(allowed))}")
        return frozenset()
    bad = [x for x in raw if x not in allowed]
    if bad:
        problems.append(f"{where}: unknown {what} {', '.join(bad)}")
    return frozenset(x for x in raw if x in allowed)


def _destination(
    path: Path, d: dict[str, Any], chains: dict[str, tuple[Step, ...]], problems: list[str]
) -> Destination | None:
    where = path.name
    before = len(problems)
    dest_id = d.get("id")
    if not isinstance(dest_id, str) or not _ID.match(dest_id):
        problems.append(f"{where}: id must be lower-case letters, digits and dashes")
        return None
    if path.stem != dest_id:
        problems.append(f"{where}: its id {dest_id!r} must be its file name ({dest_id}.toml)")
    kind = d.get("kind")
    if kind not in KINDS:
        problems.append(f"{where}: kind must be one of {', '.join(sorted(KINDS))}")
    channel = d.get("channel")
    if channel not in CHANNELS:
        problems.append(f"{where}: channel must be one of {', '.join(sorted(CHANNELS))}")
    link = d.get("link")
    if link != SITE_LINK and not _https(link):
        problems.append(f"{where}: link must be an https:// address (or {SITE_LINK})")
    contact = d.get("contact")
    if contact is not None and (not isinstance(contact, str) or not contact.strip()):
        problems.append(f"{where}: contact must be an e-mail address or a number")
    if channel in ("email", "phone") and not contact:
        problems.append(f"{where}: a {channel} channel needs its contact")
    name = _langs(d.get("name"), "name", where, problems)
    requires = _lang_lists(d.get("requires"), "requires", where, problems)
    law = _langs(d.get("law"), "law", where, problems)
    clock = d.get("clock")
    hours: int | None = None
    follow_up = 7
    clock_text: dict[str, str] = {}
    if not isinstance(clock, dict):
        problems.append(f"{where}: [clock] is missing (hours where a law sets them, fr, en)")
    else:
        h = clock.get("hours")
        if h is not None and (not isinstance(h, int) or isinstance(h, bool) or h <= 0):
            problems.append(f"{where}: clock.hours must be a positive whole number")
        elif h is not None:
            hours = h
        f = clock.get("follow_up_days", 7)
        if not isinstance(f, int) or isinstance(f, bool) or not 0 < f <= 365:
            problems.append(f"{where}: clock.follow_up_days must be 1-365")
        else:
            follow_up = f
        clock_text = _langs(clock, "clock", where, problems)
    letter = d.get("letter")
    if not isinstance(letter, str) or not _template_exists(letter):
        problems.append(f"{where}: letter {letter!r} has no template (templates/<letter>.txt.j2)")
    chain = d.get("escalation")
    if not isinstance(chain, str) or chain not in chains:
        problems.append(f"{where}: escalation {chain!r} is not a chain of {ESCALATIONS_FILE}")
    places = _str_set(d.get("places"), PLACES, "places", where, problems)
    regions = _str_set(d.get("regions", ["world"]), REGIONS, "regions", where, problems)
    audience = d.get("audience", "all")
    if audience not in AUDIENCES:
        problems.append(f"{where}: audience must be one of {', '.join(sorted(AUDIENCES))}")
    hosts = d.get("hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
        problems.append(f"{where}: hosts must be a list of host names")
        hosts = []
    lang = d.get("lang")
    if lang is not None and lang not in LANGS:
        problems.append(f"{where}: lang must be one of {', '.join(LANGS)}")
    note = _langs(d["note"], "note", where, problems) if "note" in d else {}
    uncertain = (
        _lang_lists(d["uncertain"], "uncertain", where, problems) if "uncertain" in d else {}
    )
    sources = _sources(d.get("sources"), where, problems)
    if len(problems) > before:
        return None
    return Destination(
        id=dest_id,
        kind=str(kind),
        name=name,
        link=str(link),
        channel=str(channel),
        requires=requires,
        law=law,
        clock_hours=hours,
        follow_up_days=follow_up,
        clock_text=clock_text,
        letter=str(letter),
        escalation_chain=str(chain),
        escalation=chains[str(chain)],
        places=places,
        sources=sources,
        contact=None if contact is None else str(contact).strip(),
        hosts=tuple(h.lower() for h in hosts),
        regions=regions,
        audience=str(audience),
        proposable=bool(d.get("proposable", True)),
        us_platform=bool(d.get("us_platform", False)),
        lang=None if lang is None else str(lang),
        note=note,
        uncertain=uncertain,
    )


def _template_exists(letter: str) -> bool:
    if not re.match(r"^[a-z0-9-]+$", letter):
        return False
    return (resources.files("reclaim.requests") / "templates" / f"{letter}.txt.j2").is_file()


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.toml") if p.name != ESCALATIONS_FILE)


def _load(dirs: list[Path]) -> tuple[Catalog, list[str]]:
    problems: list[str] = []
    chains: dict[str, tuple[Step, ...]] = {}
    for directory in dirs:  # a later folder's chain of the same name replaces an earlier one
        esc = directory / ESCALATIONS_FILE
        if esc.is_file():
            for chain, steps in (_read(esc, problems) or {}).items():
                chains[chain] = _steps(steps, chain, problems)
    if not chains:
        problems.append(f"{ESCALATIONS_FILE}: missing (the escalation chains)")
    by_id: dict[str, Path] = {}
    for directory in dirs:
        for p in _files(directory):
            by_id[p.stem] = p  # a file of the same id in a later folder replaces it
    found: dict[str, Destination] = {}
    for _, path in sorted(by_id.items()):
        raw = _read(path, problems)
        if raw is None:
            continue
        dest = _destination(path, raw, chains, problems)
        if dest is not None:
            found[dest.id] = dest
    for dest in found.values():
        for n, step in enumerate(dest.escalation, 1):
            if step.to is not None and step.to not in found:
                problems.append(
                    f"{ESCALATIONS_FILE} [{dest.escalation_chain}] step {n}: "
                    f"to {step.to!r} is not a destination"
                )
    if not found:
        problems.append("no destination file (destinations/<id>.toml)")
    return Catalog(found), sorted(set(problems))


def check_catalog(directory: Path | None = None) -> list[str]:
    """Every problem in the destination files of ``directory`` (default: the shipped ones,
    with the ``RECLAIM_DESTINATIONS`` folder over them); empty when all is well."""
    return _load(_dirs(directory))[1]


def load_catalog(directory: Path | None = None) -> Catalog:
    """The destinations of ``directory`` (default: the shipped ones, with the
    ``RECLAIM_DESTINATIONS`` folder over them). Raises CatalogError naming every problem."""
    cat, problems = _load(_dirs(directory))
    if problems:
        raise CatalogError(
            "the destination files have problems (fix them, or unset "
            f"{DESTINATIONS_ENV}): " + "; ".join(problems)
        )
    return cat


def _dirs(directory: Path | None) -> list[Path]:
    if directory is not None:
        return [Path(directory)]
    dirs = [_shipped_dir()]
    extra = os.environ.get(DESTINATIONS_ENV, "").strip()
    if extra:
        if not Path(extra).is_dir():
            raise CatalogError(f"{DESTINATIONS_ENV}={extra}: not a folder")
        dirs.append(Path(extra))
    return dirs


@functools.cache
def _cached(extra: str) -> Catalog:
    return load_catalog()


def current_catalog() -> Catalog:
    """The destinations in use (read once per process for each ``RECLAIM_DESTINATIONS``)."""
    return _cached(os.environ.get(DESTINATIONS_ENV, ""))
