"""The findings, grouped by where they were seen, and the previews they show (blurred until
chosen)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from reclaim.errors import ReclaimError
from reclaim.web.deps import Case
from reclaim.web.pages import lang_of, page
from reclaim.web.texts import ngettext, when
from reclaim.web.where import DECIDED, verdict_sentence

router = APIRouter()


@router.get("/findings", response_class=HTMLResponse)
def findings_page(request: Request, ctx: Case) -> HTMLResponse:
    """The findings grouped by where they were seen (a chat, a site, a folder), each with its
    verdict in one sentence; scores and detector names under "Technical details"."""
    from reclaim.web.where import group_findings

    with ctx.store() as s:
        groups, pictures = group_findings(s)
        enrolled = s.has_enrollments()
        # faces a scan could not search: her templates are locked and no passphrase was given
        awaiting = s.faces_awaiting_search() if s.templates_locked() else 0
    lang = lang_of(request)
    return page(
        request,
        "findings.html.j2",
        groups=groups,
        pictures=pictures,
        enrolled=enrolled,
        awaiting=awaiting,
        job=ctx.jobs.current,
        sentence=verdict_sentence,
        decided=DECIDED,
        n=ngettext(lang),
        when=when(lang),
    )


@router.get("/thumb/{sha}")
def thumb(ctx: Case, sha: str, reveal: int = 0) -> Response:
    """A preview, blurred on the server unless the person asked to see it."""
    from reclaim.report.pack import item_record, thumbnail
    from reclaim.sources.resolve import read_verified

    try:
        with ctx.store() as s:
            rec = item_record(s, sha)
        data, _ = read_verified(sha, rec["locators"], ctx.path, rec["blob"])
    except ReclaimError:
        return Response(status_code=404)
    jpg = thumbnail(data, reveal == 1)
    if jpg is None:
        return Response(status_code=404)
    return Response(jpg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/reveal/{sha}", response_class=HTMLResponse)
def reveal(sha: str) -> HTMLResponse:
    """htmx fragment: the unblurred preview, asked for by a click on "show"."""
    if not all(c in "0123456789abcdef" for c in sha) or len(sha) != 64:
        return HTMLResponse("", status_code=404)
    return HTMLResponse(f'<img alt="" class="revealed" src="/thumb/{sha}?reveal=1" width="240">')
