"""The enrollment page: consent, reference photos, the list of enrolled people and deletion;
and, when her templates are locked under a passphrase, the face search that waits for it.

The passphrase of locked templates is a form field: used for the one request, never stored,
never logged, never sent back in the page."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reclaim.errors import InputError, MediaError, ReclaimError
from reclaim.media import MediaLimits
from reclaim.media.sandbox import probe_isolated
from reclaim.web.deps import Case, WebCase, status_of
from reclaim.web.pages import lang_of, page

router = APIRouter()


def enroll_ctx(ctx: WebCase) -> dict[str, Any]:
    with ctx.store() as s:
        return {
            "enrollments": s.enrollments(),
            "locked": s.templates_locked(),
            "awaiting": s.faces_awaiting_search(),
        }


@router.get("/enroll/consent", response_class=HTMLResponse)
def consent_fragment(request: Request, name: str = "") -> HTMLResponse:
    """htmx fragment: the consent text with the name being typed, exactly as stored."""
    from html import escape

    from reclaim.enroll import consent_text

    return HTMLResponse(escape(consent_text(name.strip() or "…", None, lang_of(request))))


@router.get("/enroll", response_class=HTMLResponse)
def enroll_page(request: Request, ctx: Case, name: str = "") -> HTMLResponse:
    from reclaim.enroll import consent_text

    return page(
        request,
        "enroll.html.j2",
        consent=consent_text(name or "…", None, lang_of(request)),
        name=name,
        **enroll_ctx(ctx),
    )


@router.post("/enroll", response_class=HTMLResponse)
async def enroll_post(
    request: Request,
    ctx: Case,
    name: str = Form(""),
    consent: str = Form(""),
    passphrase: str = Form(""),  # of locked templates: seals hers too; never stored or logged
    photos: list[UploadFile] | None = None,
) -> HTMLResponse:
    import tempfile

    from reclaim.enroll import Enrolled, consent_text, enroll

    name = name.strip()
    try:
        with tempfile.TemporaryDirectory(prefix="reclaim-enroll-") as tmp:
            paths: list[Path] = []
            for n, f in enumerate(photos or []):
                data = await f.read(64 * 1024 * 1024)
                if data:
                    # Decoded once in a worker process first (memory ceiling, time
                    # limit): a photo that overruns them never reaches this process.
                    try:
                        await asyncio.to_thread(probe_isolated, data, MediaLimits())
                    except MediaError as e:
                        label = f.filename or "photo"
                        raise InputError(f"{label}: cannot be read ({e})") from e
                    p = Path(tmp) / f"{n:02d}-{Path(f.filename or 'photo').name}"
                    p.write_bytes(data)
                    paths.append(p)
            # The photos live only in this temporary folder, deleted when enrollment ends.
            # Off the event loop: reading the faces takes seconds, and waiting for the case
            # lock (LOCK_WAIT_S) must not stall the other pages (a scan's progress).
            lang = lang_of(request)

            def run_enroll() -> Enrolled:
                with ctx.store() as s:
                    return enroll(
                        s,
                        name,
                        paths,
                        consent=consent == "1",
                        consented_by=name,
                        lang=lang,
                        passphrase=passphrase or None,
                    )

            done = await asyncio.to_thread(run_enroll)
    except ReclaimError as e:
        return page(
            request,
            "enroll.html.j2",
            status=status_of(e),
            problem=str(e),
            name=name,
            consent=consent_text(name or "…", None, lang_of(request)),
            **enroll_ctx(ctx),
        )
    return page(
        request,
        "enroll.html.j2",
        done=done,
        name=name,
        consent=consent_text(name or "…", None, lang_of(request)),
        **enroll_ctx(ctx),
    )


@router.post("/enroll/{name}/delete", response_class=HTMLResponse)
def unenroll_post(request: Request, ctx: Case, name: str) -> Response:
    from reclaim.enroll import unenroll

    try:
        with ctx.store() as s:
            unenroll(s, name)
    except ReclaimError as e:
        return page(
            request,
            "enroll.html.j2",
            status=status_of(e),
            problem=str(e),
            name="",
            consent="",
            **enroll_ctx(ctx),
        )
    return RedirectResponse("/enroll", status_code=303)


@router.post("/enroll/search", response_class=HTMLResponse)
async def search_post(request: Request, ctx: Case, passphrase: str = Form("")) -> HTMLResponse:
    """Match the enrolled people against the faces that waited while her templates were
    locked (a scan without the passphrase), with the passphrase given in the form."""
    from reclaim.enroll import LOCK_WAIT_S, consent_text
    from reclaim.match.faces import search_new_faces

    def run_search() -> int:
        with ctx.store() as s, s.writing(LOCK_WAIT_S):
            return search_new_faces(s, passphrase=passphrase or None)

    blank = consent_text("…", None, lang_of(request))
    try:
        # Off the event loop: scrypt, then the search itself, and the wait for the case lock.
        found = await asyncio.to_thread(run_search)
    except ReclaimError as e:
        return page(
            request,
            "enroll.html.j2",
            status=status_of(e),
            search_problem=str(e),
            name="",
            consent=blank,
            **enroll_ctx(ctx),
        )
    return page(
        request, "enroll.html.j2", searched=found, name="", consent=blank, **enroll_ctx(ctx)
    )
