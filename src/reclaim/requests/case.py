"""Removal requests in her case: drafted, marked, escalated, listed (issue 22). The CLI
(``reclaim requests``, ``reclaim request …``), the web app and ``reclaim watch`` call these
functions; each takes an open ``CaseStore`` and returns dataclasses.

Rules kept here, whichever front end calls:

* **Only for what she confirmed.** A request is drafted for an item whose latest decision is
  "it's me" (``reclaim decide ITEM confirmed``); its letter says so, with the date.
* **One request per item, place and destination.** Drafting it again gives the same request
  back (``Drafted.created`` is False), so a double click makes nothing twice.
* **A clock.** Marked sent, a request is due when the destination's legal clock says (48 h for
  the TAKE IT DOWN Act) or, where no law sets one, after reclaim's follow-up (never called a
  legal deadline); after that the escalation chain says what comes next (``steps``). Every
  function takes ``now=`` so tests and a front end can look at any instant.
* **Statuses move forward only** (``TRANSITIONS``); a change is applied only if the request is
  still as it was read, so two front ends cannot both win.
* **Custody.** Every change writes a custody entry ("request.drafted", "request.marked",
  "request.escalated") with the request, the destination, the item and the place as a letter
  names it: never a local path, an image or a face.
* **No case lock**, as for decisions (``reclaim.decisions``): a request writes its own rows,
  which no scan touches, so she can act on her findings while a scan runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from reclaim import decisions
from reclaim.errors import InputError, StoreError
from reclaim.report.custody import CustodyLog, default_actor
from reclaim.report.notices import Notifier
from reclaim.requests.catalog import Catalog, Destination, current_catalog
from reclaim.requests.letters import LetterFacts, render
from reclaim.requests.places import Place, place_of, places_of
from reclaim.requests.steps import WAITING, NextStep, clock, first_deadline, iso, next_step
from reclaim.store import CaseStore, Finding
from reclaim.store.decisions import DecisionKind
from reclaim.store.requests import RequestEvent, RequestRecord, RequestStatus

__all__ = [
    "TRANSITIONS",
    "Drafted",
    "Overview",
    "RequestView",
    "RequestedUrl",
    "contact",
    "draft",
    "escalate",
    "get_request",
    "list_requests",
    "mark",
    "overview",
    "request_view",
    "requested_urls",
    "set_contact",
    "status_named",
]

S = RequestStatus
#: The statuses a request may move to from each status.
TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    S.DRAFT: frozenset({S.SENT, S.REMOVED}),
    S.SENT: frozenset({S.ACKNOWLEDGED, S.REMOVED, S.REFUSED}),
    S.ACKNOWLEDGED: frozenset({S.REMOVED, S.REFUSED}),
    S.REFUSED: frozenset({S.SENT, S.REMOVED}),
    S.REMOVED: frozenset({S.REAPPEARED}),
    S.REAPPEARED: frozenset({S.SENT, S.REMOVED}),
}
_CONTACT_KEY = "requests.contact"


@dataclass(frozen=True)
class RequestView:
    """A request as a front end shows it: where it goes, its place, where it stands, what comes
    next (at the ``now`` it was read for) and its history."""

    request: RequestRecord
    destination: Destination
    place: Place | None
    next_step: NextStep
    history: list[RequestEvent] = field(default_factory=list)

    @property
    def id(self) -> int:
        return self.request.id

    @property
    def link(self) -> str:
        return self.destination.link_for(self.place.site if self.place else None)

    def as_record(self, lang: str | None = None, *, letter: bool = False) -> dict[str, Any]:
        """One JSON object (``reclaim requests --json``, the evidence pack)."""
        r, d = self.request, self.destination
        rec: dict[str, Any] = {
            "id": r.id,
            "item_sha256": r.item_sha256,
            "destination": d.id,
            "destination_name": d.label(lang) if lang else dict(d.name),
            "link": self.link,
            "contact": d.contact,
            "place": None if self.place is None else self.place.as_record(),
            "lang": r.lang,
            "status": r.status.value,
            "created_at": r.created_at,
            "sent_at": r.sent_at,
            "deadline": r.deadline,
            "legal_deadline": r.deadline_legal,
            "escalation_steps_taken": r.escalation,
            "next_step": self.next_step.as_record(lang),
            "history": [e.as_record() for e in self.history],
        }
        if letter:
            rec["letter"] = r.letter
        return rec


@dataclass(frozen=True)
class Drafted:
    """What ``draft`` gives: the request, and whether it was made now (False: it existed)."""

    view: RequestView
    created: bool


@dataclass(frozen=True)
class Overview:
    """Her requests at a glance (the dashboard): counts by status, what needs her now, what is
    waiting (soonest deadline first), and the next deadline."""

    total: int
    by_status: dict[str, int]
    needs_action: list[RequestView]
    waiting: list[RequestView]

    @property
    def next_deadline(self) -> RequestView | None:
        return self.waiting[0] if self.waiting else None

    @property
    def overdue(self) -> int:
        return sum(v.next_step.overdue for v in self.needs_action)


def status_named(text: str) -> RequestStatus:
    """The status a front end was given. InputError names the statuses otherwise."""
    try:
        return RequestStatus(text.strip().lower())
    except ValueError:
        raise InputError(f"status must be one of {', '.join(RequestStatus)}") from None


# -- her contact details (the letters' "who") -------------------------------------------------


def contact(store: CaseStore) -> Notifier | None:
    """Her name and e-mail address for the letters, when she gave them."""
    raw = store.meta_get(_CONTACT_KEY)
    if not raw:
        return None
    try:
        d = json.loads(raw)
        return Notifier(str(d["name"]), str(d["email"]))
    except (ValueError, KeyError, TypeError):
        return None


def set_contact(store: CaseStore, notifier: Notifier) -> None:
    """Keep her name and e-mail address for the letters drafted from now on. InputError for an
    empty name or an address without "@"."""
    name, email = notifier.name.strip(), notifier.email.strip()
    if not name:
        raise InputError("give your name: a notice must say who sends it")
    if "@" not in email or any(c.isspace() for c in email):
        raise InputError(f"{email!r} is not an e-mail address")
    store.meta_set(_CONTACT_KEY, json.dumps({"name": name[:200], "email": email[:200]}))


# -- reading ------------------------------------------------------------------------------------


def _destination(cat: Catalog, dest_id: str) -> Destination:
    """The destination, or a stand-in when the data files no longer have it."""
    d = cat.destinations.get(dest_id)
    if d is not None:
        return d
    return Destination(
        id=dest_id, kind="hosting", name={"fr": dest_id, "en": dest_id}, link="", channel="form",
        requires={}, law={}, clock_hours=None, follow_up_days=7, clock_text={}, letter="",
        escalation_chain="", escalation=(), places=frozenset({"any"}), sources=(),
    )  # fmt: skip


def request_view(
    store: CaseStore,
    request: RequestRecord,
    *,
    now: datetime | None = None,
    cat: Catalog | None = None,
) -> RequestView:
    """A stored request with its destination, place, next step at ``now`` and history."""
    dest = _destination(cat or current_catalog(), request.destination)
    place = None if request.place is None else place_of(request.place)
    return RequestView(
        request, dest, place, next_step(request, dest, now), store.request_events(request.id)
    )


def get_request(store: CaseStore, request_id: int) -> RequestRecord:
    """The request numbered ``request_id``. InputError when the case has none."""
    r = store.request(request_id)
    if r is None:
        raise InputError(f"there is no request #{request_id} in this case: see `reclaim requests`")
    return r


def list_requests(
    store: CaseStore,
    *,
    item: str | None = None,
    now: datetime | None = None,
    cat: Catalog | None = None,
) -> list[RequestView]:
    """Every request (of ``item``), oldest first, as seen at ``now``."""
    cat = cat or current_catalog()
    return [request_view(store, r, now=now, cat=cat) for r in store.requests(item=item)]


def overview(
    store: CaseStore, *, now: datetime | None = None, cat: Catalog | None = None
) -> Overview:
    """Her requests at a glance at ``now`` (see ``Overview``)."""
    views = list_requests(store, now=now, cat=cat)
    by_status = {s.value: 0 for s in RequestStatus}
    for v in views:
        by_status[v.request.status.value] += 1
    needs = [v for v in views if v.next_step.needs_action]
    needs.sort(key=lambda v: (not v.next_step.overdue, v.next_step.due or "", v.id))
    waiting = [v for v in views if v.next_step.kind == WAITING]
    waiting.sort(key=lambda v: (v.next_step.due or "", v.id))
    return Overview(len(views), by_status, needs, waiting)


@dataclass(frozen=True)
class RequestedUrl:
    """A web address a request is about, for ``reclaim watch`` to check: she listed it, so it
    may be fetched again (within the same caps as ``reclaim fetch``)."""

    request_id: int
    url: str  # as she listed it
    final_url: str | None  # where it led when it was fetched
    status: RequestStatus
    item_sha256: str
    destination: str


def requested_urls(store: CaseStore, *, include_drafts: bool = False) -> list[RequestedUrl]:
    """The web addresses of her requests (sent, acknowledged, refused, removed, reappeared;
    drafts too with ``include_drafts``), oldest request first. ``reclaim watch`` checks them and
    marks a removed one that is back with ``mark(store, id, "reappeared", actor=...)``."""
    out: list[RequestedUrl] = []
    for r in store.requests():
        if r.place is None or r.place.kind != "url":
            continue
        if r.status is S.DRAFT and not include_drafts:
            continue
        p = place_of(r.place)
        out.append(
            RequestedUrl(r.id, str(p.url), p.final_url, r.status, r.item_sha256, r.destination)
        )
    return out


# -- drafting -----------------------------------------------------------------------------------


def _fits(dest: Destination, p: Place) -> bool:
    """Whether a request to ``dest`` can be about place ``p``: a place of its kinds and, for a
    platform with its own hosts, a web address on one of them."""
    if p.kind not in dest.places:
        return False
    return p.kind != "url" or not dest.hosts or any(dest.matches_host(h) for h in p.hosts)


def _choose_place(
    dest: Destination, places: list[Place], wanted: str | None, cat: Catalog
) -> Place | None:
    """The place a request to ``dest`` is about: the one named (its number, its key, or its
    address), or the first that fits (a site's host: a site no platform of the catalog
    covers, first)."""
    if wanted is not None:
        w = wanted.strip()
        found = [
            p for p in places
            if w in (str(p.number), p.key) or (p.url is not None and w in (p.url, p.final_url))
        ]  # fmt: skip
        if not found:
            raise InputError(
                f"{w!r} is not a place where this item was seen: give its number, as "
                "`reclaim request propose` lists them, or its address"
            )
        p = found[0]
        if "any" not in dest.places and not _fits(dest, p):
            raise InputError(
                f"{dest.label('en')} does not fit place {p.number} ({p.text('en')}): "
                "see `reclaim request propose` for the destinations that fit each place"
            )
        return p
    if "any" in dest.places:
        return None
    fits = [p for p in places if _fits(dest, p)]
    if not fits:
        raise InputError(
            f"{dest.label('en')} fits none of the places where this item was seen: "
            "see `reclaim request propose` for the destinations that fit"
        )
    if not dest.hosts:  # a site's own host: prefer sites no specific platform covers
        uncovered = [p for p in fits if not any(cat.for_host(h) for h in p.hosts)]
        fits = uncovered + [p for p in fits if p not in uncovered]
    kind_order = {"telegram": 0, "url": 1}
    if dest.kind == "platform" and "telegram" in dest.places:
        fits.sort(key=lambda p: kind_order.get(p.kind, 2))
    return fits[0]


def _item_facts(store: CaseStore, sha: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The item's identity and the hash rows ``reclaim protect`` makes of it (no image)."""
    from reclaim.hashes import signal_types
    from reclaim.protect import protect_rows
    from reclaim.store import ItemRecord

    row = store.item_row(sha)
    if row is None:
        raise InputError(f"item {sha[:16]}… is not in this case")
    sig = store.item_signals(sha)
    order = {s.name: i for i, s in enumerate(signal_types())}
    signals = sorted(
        ((n, v, q) for n, (v, q) in sig.items() if n in order), key=lambda s: order[s[0]]
    )
    rec = ItemRecord(
        sha, row["md5"], row["size"], row["kind"], row["format"], signals=list(signals)
    )
    item = {
        "sha256": sha,
        "md5": row["md5"],
        "pdq": sig.get("pdq", (None, None))[0],
        "kind": row["kind"],
        "first_seen_at": row["first_seen_at"],
    }
    return item, protect_rows(rec, (row["first_seen_at"] or "")[:19] + "Z")


def draft(
    store: CaseStore,
    item: str | Finding,
    destination: str,
    *,
    place: str | None = None,
    lang: str | None = None,
    notifier: Notifier | None = None,
    actor: str | None = None,
    now: datetime | None = None,
    cat: Catalog | None = None,
) -> Drafted:
    """Draft the request to ``destination`` (an id of the data files) for a confirmed item
    (its SHA-256 or a ``Finding``), about ``place`` (a number, key or address; default: the
    first place that fits), with its letter in ``lang`` (default: the destination's, else
    French) signed with ``notifier`` (default: the contact she gave; else placeholders).

    The same item, place and destination give back the request drafted before. Raises
    InputError when the item is not confirmed, the place does not fit or the language is
    unknown; CatalogError for an unknown destination."""
    cat = cat or current_catalog()
    dest = cat.get(destination)
    sha = item.item_sha256 if isinstance(item, Finding) else item
    if not store.known_item(sha):
        raise InputError(f"item {sha[:16]}… is not in this case")
    decided = decisions.current(store).get(sha)
    if decided is None or decided.decision is not DecisionKind.CONFIRMED:
        raise InputError(
            "a request is drafted only for a finding you confirmed as you: "
            f"`reclaim decide {sha[:12]} confirmed --case …` first"
        )
    t = clock(now)
    places = places_of(store, sha)
    chosen = _choose_place(dest, places, place, cat)
    key = chosen.key if chosen is not None else ""
    existing = store.find_request(sha, key, dest.id)
    if existing is not None:
        return Drafted(request_view(store, existing, now=t, cat=cat), False)
    lang = (lang or dest.lang or "fr").strip().lower()
    if lang not in ("fr", "en"):
        raise InputError("the letter's language must be fr or en")
    item_rec, hashes = _item_facts(store, sha)
    earlier = [
        (r, _destination(cat, r.destination))
        for r in store.requests(item=sha)
        if r.status is not S.DRAFT
    ]
    facts = LetterFacts(
        item_rec, hashes, chosen, [p for p in places if p.actionable], decided, earlier
    )
    letter = render(dest, facts, lang, notifier or contact(store), t)
    stamp = iso(t)
    record = RequestRecord(
        0, sha, key, None if chosen is None else chosen.locator, dest.id, lang, S.DRAFT,
        stamp, None, None, False, 0, letter, stamp,
    )  # fmt: skip
    actor = actor or default_actor()
    try:
        stored = store.add_request(record, actor)
    except StoreError:  # drafted meanwhile by another front end: that one stands
        again = store.find_request(sha, key, dest.id)
        if again is None:
            raise
        return Drafted(request_view(store, again, now=t, cat=cat), False)
    CustodyLog(store.root).append(
        "request.drafted",
        {
            "request": stored.id,
            "item": sha,
            "destination": dest.id,
            "place": _custody_place(chosen),
            "lang": lang,
            "letter_sha256": hashlib.sha256(letter.encode()).hexdigest(),
            "at": stamp,
        },
        actor=actor,
    )
    return Drafted(request_view(store, stored, now=t, cat=cat), True)


def _custody_place(p: Place | None) -> str | None:
    """The place as the custody log names it: what a letter shows, never a local path."""
    if p is None:
        return None
    return p.text("en") if p.actionable else f"a {p.kind} in her possession"


# -- marking and escalating -------------------------------------------------------------------


def mark(
    store: CaseStore,
    request_id: int,
    status: str | RequestStatus,
    *,
    note: str = "",
    actor: str | None = None,
    now: datetime | None = None,
    cat: Catalog | None = None,
) -> RequestView:
    """Move a request to ``status`` at ``now`` (``TRANSITIONS``) and write its custody entry.

    Marked sent, its deadline is set from the destination's clock and its escalation starts
    over; acknowledged keeps it; removed, refused and reappeared clear it. ``reclaim watch``
    marks "reappeared" (actor "reclaim watch"). Raises InputError for an unknown request or
    status, a move the request cannot make, or a request changed meanwhile."""
    cat = cat or current_catalog()
    r = get_request(store, request_id)
    new = status if isinstance(status, RequestStatus) else status_named(status)
    if new is r.status:
        raise InputError(f"request #{r.id} is already {new.value}")
    allowed = TRANSITIONS[r.status]
    if new not in allowed:
        raise InputError(
            f"request #{r.id} is {r.status.value}: it can be marked "
            + " or ".join(sorted(s.value for s in allowed))
        )
    dest = _destination(cat, r.destination)
    t = clock(now)
    sent_at, deadline, legal, level = r.sent_at, r.deadline, r.deadline_legal, r.escalation
    if new is S.SENT:
        due, legal = first_deadline(dest, t)
        sent_at, deadline, level = iso(t), iso(due), 0
    elif new in (S.REMOVED, S.REFUSED, S.REAPPEARED):
        deadline, legal = None, False
    actor = actor or default_actor()
    note = note.strip()[:2000]
    event = RequestEvent(r.id, iso(t), "status", new, deadline, note, actor)
    if not store.update_request(
        r.id, r.status, event, sent_at=sent_at, deadline_legal=legal, escalation=level
    ):
        raise InputError(f"request #{r.id} was changed meanwhile; look at it again")
    CustodyLog(store.root).append(
        "request.marked",
        {
            "request": r.id,
            "item": r.item_sha256,
            "destination": r.destination,
            "from": r.status.value,
            "to": new.value,
            "deadline": deadline,
            "legal_deadline": legal,
            "note": note,
            "at": event.at,
        },
        actor=actor,
    )
    return request_view(store, get_request(store, r.id), now=t, cat=cat)


def escalate(
    store: CaseStore,
    request_id: int,
    *,
    note: str = "",
    actor: str | None = None,
    now: datetime | None = None,
    cat: Catalog | None = None,
) -> RequestView:
    """Record that she took the escalation step now due (sent the reminder, lodged the
    complaint…): the step gets its own wait before the next one is due. Where the step sends
    her to another destination, draft that request with ``draft(..., step.to)``.

    Raises InputError when no step is due (the request is waiting, a draft, removed, or every
    step was taken)."""
    cat = cat or current_catalog()
    r = get_request(store, request_id)
    dest = _destination(cat, r.destination)
    t = clock(now)
    due = next_step(r, dest, t)
    if due.step is None:
        raise InputError(f"request #{r.id}: no escalation step is due now ({due.say('en')})")
    step = dest.escalation[due.step]
    deadline = iso(t + timedelta(days=step.wait_days))
    actor = actor or default_actor()
    note = note.strip()[:2000]
    said = f"{step.kind}: {note}" if note else step.kind
    event = RequestEvent(r.id, iso(t), "escalated", r.status, deadline, said, actor)
    if not store.update_request(
        r.id, r.status, event, sent_at=r.sent_at, deadline_legal=False, escalation=due.step + 1
    ):
        raise InputError(f"request #{r.id} was changed meanwhile; look at it again")
    CustodyLog(store.root).append(
        "request.escalated",
        {
            "request": r.id,
            "item": r.item_sha256,
            "destination": r.destination,
            "step": due.step + 1,
            "kind": step.kind,
            "to": step.to,
            "deadline": deadline,
            "note": note,
            "at": event.at,
        },
        actor=actor,
    )
    return request_view(store, get_request(store, r.id), now=t, cat=cat)
