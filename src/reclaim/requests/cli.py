"""``reclaim requests`` and ``reclaim request propose | draft | show | mark | escalate |
destinations``: her removal requests with their clocks (issue 22). Registered in cli.py.

Thin: each command calls one function of ``reclaim.requests`` (which writes the custody entry).
Nothing is sent from here: a letter is printed (or written to a file) for her to send.
``--now`` (hidden) looks at the case at another instant, for tests and demonstrations.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reclaim.store import CaseStore

out = Console()
err = Console(stderr=True)

request_app = typer.Typer(
    name="request",
    help="Removal requests: which destinations fit a confirmed finding, draft a request, mark "
    "it sent (its clock starts), follow its next step.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Lang(StrEnum):
    en = "en"
    fr = "fr"


CaseOpt = Annotated[Path, typer.Option("--case", "-c", help="Case directory.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
LangOpt = Annotated[Lang, typer.Option("--lang", help="Language of the texts: en or fr.")]
NowOpt = Annotated[
    str | None,
    typer.Option("--now", hidden=True, help="Look at the case at this instant (ISO 8601)."),
]
RequestArg = Annotated[
    int, typer.Argument(help="The request's number, as `reclaim requests` lists it.")
]
FindingArg = Annotated[
    str,
    typer.Argument(
        help="The confirmed finding's item SHA-256, as `reclaim findings --json` gives it (or "
        "its first 8+ characters)."
    ),
]


def _now(text: str | None) -> datetime | None:
    from reclaim.errors import InputError

    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"--now {text!r} is not an ISO 8601 time") from None


def _say(text: str) -> None:
    out.print(text, highlight=False, markup=False, soft_wrap=True)


def _when(iso: str | None) -> str:
    return "" if not iso else iso[:16].replace("T", " ") + " UTC"


def requests_cmd(
    case: CaseOpt,
    as_json: JsonOpt = False,
    lang: LangOpt = Lang.en,
    now: NowOpt = None,
) -> None:
    """Your removal requests: where each went, its status, its deadline and the next step."""
    from reclaim.cli import user_errors
    from reclaim.requests import list_requests

    with user_errors(), CaseStore.open(case) as store:
        views = list_requests(store, now=_now(now))
    if as_json:
        for v in views:
            print(json.dumps(v.as_record(lang.value), ensure_ascii=False))
        return
    if not views:
        _say(
            "no request yet. For a confirmed finding: reclaim request propose --case "
            f"{case} ITEM, then reclaim request draft --case {case} ITEM --to DESTINATION"
        )
        return
    t = Table("#", "to", "place", "status", "deadline", "next step")
    for v in views:
        ns = v.next_step
        deadline = _when(v.request.deadline)
        if deadline and v.request.deadline_legal:
            deadline += " (legal)" if lang is Lang.en else " (légal)"
        if ns.overdue:
            deadline = f"[bold red]{deadline}[/]"
        t.add_row(
            str(v.id),
            escape(v.destination.label(lang.value)),
            escape(v.place.text(lang.value) if v.place else "—"),
            v.request.status.value,
            deadline,
            escape(ns.say(lang.value)),
        )
    out.print(t)


@request_app.command("propose")
def propose_cmd(
    case: CaseOpt,
    finding: FindingArg,
    minor: Annotated[bool, typer.Option("--minor", help="You were under 18 in the image.")] = False,
    region: Annotated[
        list[str] | None,
        typer.Option("--region", help="Only destinations for this region (FR, EU, US)."),
    ] = None,
    as_json: JsonOpt = False,
    lang: LangOpt = Lang.en,
) -> None:
    """Which destinations fit a confirmed finding, place by place, most direct first."""
    from reclaim.cli import user_errors
    from reclaim.decisions import item_named
    from reclaim.requests import places_of, propose

    with user_errors(), CaseStore.open(case) as store:
        sha = item_named(store, finding)
        places = places_of(store, sha)
        found = propose(store, sha, minor=minor, regions=[r.upper() for r in region or []] or None)
    if as_json:
        for p in found:
            print(json.dumps(p.as_record(lang.value), ensure_ascii=False))
        return
    _say(f"item {sha[:16]}… was seen at:")
    for pl in places:
        _say(f"  {pl.number}. {pl.text(lang.value)}")
    t = Table("", "destination", "place", "why", "request")
    for p in found:
        t.add_row(
            "★" if p.recommended else "",
            escape(f"{p.destination.id}: {p.destination.label(lang.value)}"),
            str(p.place.number) if p.place else "—",
            escape(p.reason[lang.value]),
            f"#{p.existing.id} {p.existing.status.value}" if p.existing else "",
        )
    out.print(t)
    _say(
        f"draft one: reclaim request draft --case {case} {sha[:12]} --to DESTINATION "
        "[--place N]   (★: recommended)"
    )


@request_app.command("draft")
def draft_cmd(
    case: CaseOpt,
    finding: FindingArg,
    to: Annotated[
        str,
        typer.Option(
            "--to", help="The destination's id (`reclaim request destinations` lists them)."
        ),
    ],
    place: Annotated[
        str | None,
        typer.Option(
            "--place",
            help="The place's number (as `reclaim request propose` lists them) or "
            "its address (default: the first place that fits).",
        ),
    ] = None,
    lang: Annotated[
        Lang | None,
        typer.Option("--lang", help="The letter's language (default: the destination's, else fr)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Your name, for this and later letters (kept in the case).")
    ] = None,
    email: Annotated[str | None, typer.Option(help="Your e-mail address, likewise.")] = None,
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write the letter to this file.")
    ] = None,
    now: NowOpt = None,
) -> None:
    """Draft a request for a confirmed finding: prints the letter (no image in it) and where to
    send it. Nothing is sent; mark it sent when you have sent it."""
    from reclaim.cli import fail, user_errors
    from reclaim.decisions import item_named
    from reclaim.report.notices import Notifier
    from reclaim.requests import contact, draft, set_contact

    with user_errors(), CaseStore.open(case) as store:
        if (name is None) != (email is None):
            fail("give both --name and --email (a notice must say who sends it and how to reply)")
        if name is not None and email is not None:
            set_contact(store, Notifier(name, email))
        sha = item_named(store, finding)
        done = draft(
            store, sha, to, place=place, lang=None if lang is None else lang.value,
            notifier=contact(store), now=_now(now),
        )  # fmt: skip
        if out_path is not None:
            out_path.write_text(done.view.request.letter, encoding="utf-8")
    v = done.view
    ui = v.request.lang
    if not done.created:
        err.print(
            f"request #{v.id} to {v.destination.id} for this place was drafted before "
            f"({v.request.status.value}); here it is",
            highlight=False,
        )
    _say(v.request.letter)
    _say("—" * 40)
    _say(f"request #{v.id} ({v.request.status.value}) — {v.destination.label(ui)}")
    _say(f"where: {v.link}" + (f"  ({v.destination.contact})" if v.destination.contact else ""))
    for line in v.destination.requires.get(ui, []):
        _say(f"  • {line}")
    for line in v.destination.uncertain.get(ui, []):
        _say(f"  ? {line}")
    if contact_missing(v.request.letter):
        _say("your name and e-mail are placeholders: pass --name and --email to fill them in")
    _say(f"when sent: reclaim request mark --case {case} {v.id} sent")


def contact_missing(letter: str) -> bool:
    from reclaim.requests.letters import PLACEHOLDER

    return any(p.name in letter for p in PLACEHOLDER.values())


@request_app.command("show")
def show_cmd(
    case: CaseOpt,
    request: RequestArg,
    as_json: JsonOpt = False,
    lang: LangOpt = Lang.en,
    now: NowOpt = None,
) -> None:
    """A request's letter, its status, deadline, next step and history."""
    from reclaim.cli import user_errors
    from reclaim.requests import get_request, request_view

    with user_errors(), CaseStore.open(case) as store:
        v = request_view(store, get_request(store, request), now=_now(now))
    if as_json:
        print(json.dumps(v.as_record(lang.value, letter=True), ensure_ascii=False))
        return
    _say(v.request.letter)
    _say("—" * 40)
    _print_view(v, lang.value)
    for e in v.history:
        _say(f"  {_when(e.at)}  {e.event} → {e.status.value}  {e.note}  ({e.actor})".rstrip())


def _print_view(v: object, lang: str) -> None:
    from reclaim.requests import RequestView

    assert isinstance(v, RequestView)
    r = v.request
    _say(f"request #{r.id} ({r.status.value}) — {v.destination.label(lang)} — {v.link}")
    if r.deadline:
        _say(f"deadline: {_when(r.deadline)}" + (" (legal)" if r.deadline_legal else ""))
    ns = v.next_step
    _say(f"next: {ns.say(lang)}")
    if ns.to:
        _say(f"  draft it: reclaim request draft --case … {r.item_sha256[:12]} --to {ns.to}")


@request_app.command("mark")
def mark_cmd(
    case: CaseOpt,
    request: RequestArg,
    status: Annotated[
        str,
        typer.Argument(
            help="sent, acknowledged, removed, refused or reappeared.", show_default=False
        ),
    ],
    note: Annotated[str, typer.Option("--note", help="A note kept with the change.")] = "",
    lang: LangOpt = Lang.en,
    now: NowOpt = None,
) -> None:
    """Record where a request stands: sent (its clock starts), acknowledged, removed, refused or
    reappeared. Every change is kept and written to the custody log."""
    from reclaim.cli import user_errors
    from reclaim.requests import mark, status_named

    with user_errors():
        new = status_named(status)  # before the case is opened: a typo changes nothing
        with CaseStore.open(case) as store:
            v = mark(store, request, new, note=note, now=_now(now))
    _print_view(v, lang.value)


@request_app.command("escalate")
def escalate_cmd(
    case: CaseOpt,
    request: RequestArg,
    note: Annotated[str, typer.Option("--note", help="A note kept with the step.")] = "",
    lang: LangOpt = Lang.en,
    now: NowOpt = None,
) -> None:
    """Record that you took the step now due (sent the reminder, lodged the complaint…): the
    next one is due after its own wait."""
    from reclaim.cli import user_errors
    from reclaim.requests import escalate

    with user_errors(), CaseStore.open(case) as store:
        v = escalate(store, request, note=note, now=_now(now))
    _print_view(v, lang.value)


@request_app.command("destinations")
def destinations_cmd(as_json: JsonOpt = False, lang: LangOpt = Lang.en) -> None:
    """Where requests can go: each destination's link, clock, law and sources (data files,
    `RECLAIM_DESTINATIONS` to correct them)."""
    from reclaim.cli import user_errors
    from reclaim.requests import current_catalog

    with user_errors():
        cat = current_catalog()
    lg = lang.value
    for d in cat.destinations.values():
        if as_json:
            rec = {
                "id": d.id, "kind": d.kind, "name": d.label(lg), "link": d.link,
                "contact": d.contact, "requires": d.requires.get(lg, []),
                "clock_hours": d.clock_hours, "follow_up_days": d.follow_up_days,
                "clock": d.text(d.clock_text, lg), "law": d.text(d.law, lg),
                "escalation": [s.kind for s in d.escalation],
                "uncertain": d.uncertain.get(lg, []),
                "sources": [
                    {"url": s.url, "title": s.title,
                     "checked": None if s.checked is None else s.checked.isoformat()}
                    for s in d.sources
                ],
            }  # fmt: skip
            print(json.dumps(rec, ensure_ascii=False))
            continue
        clock = f"{d.clock_hours} h (legal)" if d.clock_hours else f"follow-up {d.follow_up_days} d"
        _say(f"{d.id}: {d.label(lg)} — {d.link} — {clock}")
