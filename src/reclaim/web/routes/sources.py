"""The sources page: add a folder, archive or export to scan, follow the scan, see its errors."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from reclaim.errors import InputError, ReclaimError
from reclaim.web.deps import Case, WebCase
from reclaim.web.pages import page

router = APIRouter()


def sources_ctx(ctx: WebCase) -> dict[str, Any]:
    with ctx.store() as s:
        return {
            "counts": s.counts(),
            "runs": s.runs()[-10:][::-1],
            "errors": s.errors(50),
            # her templates are locked: the scan form asks for the passphrase face search needs
            "locked": s.has_enrollments() and s.templates_locked(),
        }


@router.get("/sources", response_class=HTMLResponse)
def sources(request: Request, ctx: Case) -> HTMLResponse:
    return page(request, "sources.html.j2", job=ctx.jobs.current, **sources_ctx(ctx))


@router.post("/sources", response_class=HTMLResponse)
def add_source(
    request: Request,
    ctx: Case,
    path: str = Form(""),
    network: str = Form("0"),
    passphrase: str = Form(""),  # of locked face templates: never stored, never logged
) -> HTMLResponse:
    spec = path.strip()
    try:
        if not spec:
            raise InputError("give the path of a folder, archive or Telegram export")
        ctx.jobs.start(
            [spec], network=network == "1", workers=ctx.workers, passphrase=passphrase or None
        )
    except ReclaimError as e:
        return page(
            request,
            "sources.html.j2",
            status=400,
            job=ctx.jobs.current,
            problem=str(e),
            given=spec,
            **sources_ctx(ctx),
        )
    return page(request, "sources.html.j2", job=ctx.jobs.current, **sources_ctx(ctx))


@router.get("/jobs/current", response_class=HTMLResponse)
def job_status(request: Request, ctx: Case) -> HTMLResponse:
    """htmx fragment: the running (or last) scan's progress, polled by the page."""
    return page(request, "_job.html.j2", job=ctx.jobs.current)
