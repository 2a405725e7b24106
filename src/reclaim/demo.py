"""``reclaim demo``: the whole journey on sample data, with the same domain operations as a
person's own case (``reclaim.enroll``, ``reclaim.scan``, ``reclaim.decisions``, the requests,
``reclaim.report.pack`` and ``verify``), so that everything it does is in the case's custody log.

The sample (``reclaim.sample``) holds abstract patterns and copies of one public-domain face.
The demo stands in for the person: it enrolls that face with consent recorded as the demo's
(``DEMO_CONSENT_BY``: no real person is enrolled, and nobody's own photo is used), and it marks
the copies of that face it finds as hers, as she would after looking at them. Every custody
entry it writes names ``DEMO_ACTOR`` as who acted.

Run again on the same folder, it goes on where it was: the sample's files are left as they are
(the same bytes are made again), the scan skips what it already recorded, an enrollment or a
request already there is kept, and only findings not yet confirmed are confirmed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reclaim.sources.base import Locator
from reclaim.store import CaseStore, Finding

__all__ = [
    "DEMO_ACTOR",
    "DEMO_CONSENT_BY",
    "DEMO_EMAIL",
    "DEMO_NOTIFIER",
    "DraftedRequest",
    "confirm_findings",
    "draft_request",
    "enroll_sample",
    "place_words",
    "request_target",
    "sample_place",
]

#: Who acted, in every custody entry the demo writes.
DEMO_ACTOR = "reclaim demo"
#: Who consented to the sample face's enrollment: the demo itself, for a public-domain photo.
DEMO_CONSENT_BY = "the reclaim demo, for a public-domain sample photo"
#: The notifier named in the demo's pack and request (a reserved example address).
DEMO_NOTIFIER = "Demo (sample case)"
DEMO_EMAIL = "demo@example.org"


def enroll_sample(store: CaseStore, name: str, reference: list[Path]) -> int | None:
    """Enroll the sample face under ``name`` (consent recorded as the demo's), without
    searching: the scan that follows does. Returns the number of templates, or None when the
    case already has that enrollment (a demo run again)."""
    from reclaim.enroll import enroll

    if any(e["name"] == name for e in store.enrollments()):
        return None
    res = enroll(
        store,
        name,
        reference,
        consent=True,
        consented_by=DEMO_CONSENT_BY,
        search=False,
        actor=DEMO_ACTOR,
    )
    return res.templates


def confirm_findings(
    store: CaseStore, name: str, is_hers: Callable[[Finding], bool] = lambda f: True
) -> list[Finding]:
    """Mark the findings of ``name`` that ``is_hers`` (the demo knows where it put the copies
    of the face) as "it's me", the demo standing in for her; returns the findings newly
    confirmed. Findings already confirmed, and the others, are left as they are."""
    from reclaim.decisions import confirmed_items, decide
    from reclaim.findings import list_findings

    done = set(confirmed_items(store))
    confirmed: list[Finding] = []
    for f in list_findings(store, name):
        if f.item_sha256 in done or not is_hers(f):
            continue
        decide(
            store,
            f.item_sha256,
            "confirmed",
            "demo: a copy of the sample face",
            actor=DEMO_ACTOR,
            enrollment=name,
        )
        done.add(f.item_sha256)
        confirmed.append(f)
    return confirmed


def place_words(loc: Locator | None, base: Path | None = None) -> str:
    """Where a finding was seen, in words: the Telegram chat, message, date and sender as
    exported; the archive and its member; the file (relative to ``base`` when inside it)."""
    if loc is None:
        return "(no place recorded)"

    def rel(path: str) -> str:
        if base is not None:
            try:
                return str(Path(path).relative_to(base))
            except ValueError:
                pass
        return path

    if loc.kind == "telegram":
        m = loc.meta
        date = str(m.get("date") or "").replace("T", " ")[:16]
        text = f"Telegram chat “{m.get('chat_name') or m.get('chat_id') or '?'}”"
        text += f", message {m.get('message_id', '?')}"
        text += f" of {date}" if date else ""
        text += f", sent by {m['sender']}" if m.get("sender") else ""
        if m.get("forwarded_from"):
            text += f" (forwarded from {m['forwarded_from']})"
        return text
    if loc.kind == "archive":
        return f"archive {rel(loc.path)}, file {loc.member}"
    if loc.kind == "url":
        return f"web page {loc.path}"
    return f"folder {rel(str(Path(loc.path).parent))}, file {Path(loc.path).name}"


def sample_place(loc: Locator | None, sample_root: Path) -> tuple[str, str] | None:
    """A place of the sample as ``reclaim.sample.FACE_PLACES`` names it: (the source's folder
    or archive name, the path inside it); None for a place outside ``sample_root``."""
    if loc is None:
        return None
    try:
        source = Path(loc.path).relative_to(sample_root)
    except ValueError:
        return None
    if loc.kind == "file":
        return source.parts[0], str(Path(*source.parts[1:]))
    return str(source), loc.member or ""


def request_target(found: list[Finding]) -> Finding | None:
    """The finding the demo drafts a request for: the best one seen on a platform (Telegram,
    a web page), where a removal can be asked for; else None."""
    for f in found:
        if f.locator is not None and f.locator.kind in ("telegram", "url"):
            return f
    return None


@dataclass(frozen=True)
class DraftedRequest:
    """A removal request the demo drafted (or found drafted by an earlier run)."""

    request_id: int
    destination: str  # its name, in English
    link: str  # where she sends it
    place: str  # the place as the letter names it
    status: str
    created: bool  # False: drafted by an earlier run
    letter_lines: int


def draft_request(store: CaseStore, finding: Finding) -> DraftedRequest | None:
    """Draft a removal request for ``finding`` (confirmed) with ``reclaim.requests``: to the
    first recommended destination that names one of its places (for a Telegram message:
    Telegram's abuse channels), the letter in English, signed with the demo's name. None when
    no destination names one of its places."""
    from reclaim.report.notices import Notifier
    from reclaim.requests import draft, propose

    chosen = next((p for p in propose(store, finding) if p.recommended and p.place), None)
    if chosen is None or chosen.place is None:
        return None
    done = draft(
        store,
        finding,
        chosen.destination.id,
        place=chosen.place.key,
        lang="en",
        notifier=Notifier(DEMO_NOTIFIER, DEMO_EMAIL),
        actor=DEMO_ACTOR,
    )
    v = done.view
    return DraftedRequest(
        request_id=v.id,
        destination=v.destination.label("en"),
        link=v.link,
        place=chosen.place.text("en"),
        status=v.request.status.value,
        created=done.created,
        letter_lines=len(v.request.letter.splitlines()),
    )
