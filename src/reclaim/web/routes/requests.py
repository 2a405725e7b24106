"""Removal requests in the web app: from a confirmed finding to a request sent, followed up and
escalated (issue 22). The work is ``reclaim.requests`` (``propose``, ``draft``, ``mark``,
``escalate``, ``request_view``); every call gets the app's clock (``web.texts.now_of``).

From the item page of a confirmed finding: "Ask for removal" (1) → the proposals; "Draft" on
one (2) → the request page with its letter, link and what the destination requires; "I sent
it" (3). The request page shows its status, dates, next step and history, and the buttons to
mark it and to take the next step.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reclaim.errors import InputError, ReclaimError
from reclaim.web.deps import Case, status_of
from reclaim.web.pages import lang_of, page
from reclaim.web.texts import ngettext, now_of, when

router = APIRouter()

#: The statuses offered as buttons on a request page, in the order shown.
MARKS = ("sent", "acknowledged", "removed", "refused", "reappeared")


def _hex(sha: str) -> bool:
    return len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)


def _extras(request: Request) -> dict[str, Any]:
    lang = lang_of(request)
    return {"n": ngettext(lang), "when": when(lang)}


@router.get("/item/{sha}/requests", response_class=HTMLResponse)
def proposals_page(request: Request, ctx: Case, sha: str, problem: str = "") -> HTMLResponse:
    """Where to ask for the removal of a confirmed item: the proposals, most direct first."""
    from reclaim.decisions import current
    from reclaim.requests import Proposal, propose
    from reclaim.store.decisions import DecisionKind

    status, confirmed, proposals = 200, False, list[Proposal]()
    try:
        if not _hex(sha):
            raise InputError("this is not an item of this case: open it from the findings")
        with ctx.store() as s:
            if not s.known_item(sha):
                raise InputError("this is not an item of this case: open it from the findings")
            d = current(s).get(sha)
            confirmed = d is not None and d.decision is DecisionKind.CONFIRMED
            proposals = propose(s, sha) if confirmed else []
    except ReclaimError as e:
        status, problem = 404 if isinstance(e, InputError) else 400, str(e)
    return page(
        request,
        "proposals.html.j2",
        status=status,
        sha=sha,
        proposals=proposals,
        confirmed=confirmed,
        problem=problem,
        **_extras(request),
    )


@router.post("/item/{sha}/requests", response_model=None)
def draft_post(
    request: Request,
    ctx: Case,
    sha: str,
    destination: str = Form(""),
    place: str = Form(""),
) -> Response:
    """Draft the request (once: drafting it again gives the same request) and show it."""
    from reclaim.requests import draft

    try:
        with ctx.store() as s:
            made = draft(
                s, sha, destination, place=place or None, lang=lang_of(request),
                now=now_of(request),
            )  # fmt: skip
    except ReclaimError as e:
        return proposals_problem(request, ctx, sha, str(e), status_of(e))
    return RedirectResponse(f"/requests/{made.view.id}", status_code=303)


def proposals_problem(
    request: Request, ctx: Case, sha: str, problem: str, status: int
) -> HTMLResponse:
    out = proposals_page(request, ctx, sha, problem=problem)
    out.status_code = status
    return out


@router.get("/requests", response_class=HTMLResponse)
def requests_page(request: Request, ctx: Case) -> HTMLResponse:
    """Every request of the case, what needs her first."""
    from reclaim.requests import list_requests, overview

    now = now_of(request)
    with ctx.store() as s:
        views = list_requests(s, now=now)
        ov = overview(s, now=now)
    return page(request, "requests.html.j2", views=views, ov=ov, **_extras(request))


@router.get("/requests/{request_id}", response_class=HTMLResponse)
def request_page(request: Request, ctx: Case, request_id: int, problem: str = "") -> HTMLResponse:
    """One request: status, dates, next step, letter, history and what she can do now."""
    from reclaim.requests import TRANSITIONS, get_request, request_view

    try:
        with ctx.store() as s:
            view = request_view(s, get_request(s, request_id), now=now_of(request))
    except ReclaimError as e:
        return page(request, "request.html.j2", status=404, view=None, problem=str(e),
                    **_extras(request))  # fmt: skip
    allowed = TRANSITIONS[view.request.status]
    marks = [m for m in MARKS if any(a.value == m for a in allowed)]
    return page(
        request,
        "request.html.j2",
        view=view,
        marks=marks,
        problem=problem,
        **_extras(request),
    )


def _again(request: Request, ctx: Case, request_id: int, e: ReclaimError) -> HTMLResponse:
    out = request_page(request, ctx, request_id, problem=str(e))
    out.status_code = status_of(e) if out.status_code == 200 else out.status_code
    return out


@router.post("/requests/{request_id}/mark", response_model=None)
def mark_post(
    request: Request, ctx: Case, request_id: int, status: str = Form(""), note: str = Form("")
) -> Response:
    from reclaim.requests import mark

    try:
        with ctx.store() as s:
            mark(s, request_id, status, note=note, now=now_of(request))
    except ReclaimError as e:
        return _again(request, ctx, request_id, e)
    return RedirectResponse(f"/requests/{request_id}", status_code=303)


@router.post("/requests/{request_id}/escalate", response_model=None)
def escalate_post(request: Request, ctx: Case, request_id: int, note: str = Form("")) -> Response:
    """She takes the step now due: it is recorded; where the step sends her to another
    destination, that request is drafted and shown."""
    from reclaim.requests import draft, escalate, get_request, request_view

    now = now_of(request)
    try:
        with ctx.store() as s:
            before = request_view(s, get_request(s, request_id), now=now)
            to = before.next_step.to
            escalate(s, request_id, note=note, now=now)
            if to:
                made = draft(s, before.request.item_sha256, to, lang=lang_of(request), now=now)
                return RedirectResponse(f"/requests/{made.view.id}", status_code=303)
    except ReclaimError as e:
        return _again(request, ctx, request_id, e)
    return RedirectResponse(f"/requests/{request_id}", status_code=303)
