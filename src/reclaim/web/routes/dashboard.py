"""The dashboard (``/``): her case at a glance — who is enrolled, the places that show her (by
kind of source), what she confirmed, her requests and the next deadline, the watch.

Everything comes from the domain modules (``reclaim.requests.overview``,
``reclaim.watch.overview``, the findings and decisions); nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from reclaim.web.deps import Case
from reclaim.web.pages import lang_of, page
from reclaim.web.texts import ngettext, now_of, when

router = APIRouter()


@dataclass
class Places:
    """The places that show her, by kind of source: Telegram chats, sites, files and folders."""

    chats: dict[str, int] = field(default_factory=dict)  # chat name → places
    sites: dict[str, int] = field(default_factory=dict)  # host → places
    files: int = 0  # copies in folders or archives she was given

    @property
    def total(self) -> int:
        return sum(self.chats.values()) + sum(self.sites.values()) + self.files


@dataclass
class Glance:
    enrolled: list[dict[str, Any]]
    places: Places
    confirmed: list[dict[str, Any]]  # sha256, where (its first place she can act on), requests
    to_review: list[str]  # items with her face found and no decision yet


def glance(store: Any) -> Glance:
    """What the dashboard shows of the case (reads only)."""
    from reclaim.decisions import current
    from reclaim.requests import places_of
    from reclaim.store.decisions import DecisionKind

    decided = current(store)
    found = {f.item_sha256 for f in store.findings()}
    confirmed = [sha for sha, d in decided.items() if d.decision is DecisionKind.CONFIRMED]
    hers = [sha for sha in sorted(found) if sha not in decided] + confirmed
    hers += [
        sha
        for sha in sorted(found)
        if sha in decided and decided[sha].decision is DecisionKind.UNSURE
    ]
    places = Places()
    first: dict[str, Any] = {}  # sha256 → its first place a platform can act on (a Place)
    for sha in dict.fromkeys(hers):
        for p in places_of(store, sha):
            if p.kind == "telegram":
                name = p.chat or "?"
                places.chats[name] = places.chats.get(name, 0) + 1
            elif p.kind == "url":
                host = p.host or "?"
                places.sites[host] = places.sites.get(host, 0) + 1
            else:
                places.files += 1
            if p.actionable:
                first.setdefault(sha, p)
    rows = [
        {"sha256": sha, "where": first.get(sha), "requests": len(store.requests(item=sha))}
        for sha in confirmed
    ]
    return Glance(
        enrolled=store.enrollments(),
        places=places,
        confirmed=rows,
        to_review=[sha for sha in sorted(found) if sha not in decided],
    )


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, ctx: Case) -> HTMLResponse:
    from reclaim.requests import overview as requests_overview
    from reclaim.watch import overview as watch_overview

    now = now_of(request)
    with ctx.store() as s:
        g = glance(s)
        req = requests_overview(s, now=now)
        watch = watch_overview(s, recent=10)
        locked = s.has_enrollments() and s.templates_locked()
    lang = lang_of(request)
    return page(
        request,
        "dashboard.html.j2",
        g=g,
        req=req,
        watch=watch,
        scheduler=getattr(request.app.state, "watch_scheduler", None),
        job=ctx.jobs.current,
        locked=locked,
        n=ngettext(lang),
        when=when(lang),
    )
