"""Keep watch from the web app (issue 22): the watched sources, where alerts go, the last run,
and buttons to run the watch now (in a worker thread, off the event loop), to register a source
or an alert target, and to switch the built-in schedule on or off while the app runs.

The work is ``reclaim.watch`` (``watch_case``, ``add_source``, ``overview``,
``WatchScheduler``) and ``reclaim.alerts.add_target``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reclaim.errors import InputError, ReclaimError
from reclaim.web.deps import Case, WebCase, status_of
from reclaim.web.pages import lang_of, page
from reclaim.web.texts import ngettext, when

router = APIRouter()


def _page(request: Request, ctx: WebCase, status: int = 200, **extra: Any) -> HTMLResponse:
    from reclaim.watch import overview

    with ctx.store() as s:
        view = overview(s, recent=20)
    lang = lang_of(request)
    return page(
        request,
        "watch.html.j2",
        status=status,
        watch=view,
        report=getattr(request.app.state, "watch_last", None),
        scheduler=getattr(request.app.state, "watch_scheduler", None),
        n=ngettext(lang),
        when=when(lang),
        **extra,
    )


@router.get("/watch", response_class=HTMLResponse)
def watch_page(request: Request, ctx: Case) -> HTMLResponse:
    return _page(request, ctx)


@router.post("/watch/run", response_model=None)
async def watch_run(request: Request, ctx: Case) -> Response:
    """One watch run now, in a worker thread; the page then shows what it found."""
    from reclaim.watch import watch_case

    try:
        report = await asyncio.to_thread(watch_case, ctx.path, workers=ctx.workers)
    except ReclaimError as e:
        return await asyncio.to_thread(_page, request, ctx, status_of(e), problem=str(e))
    request.app.state.watch_last = report
    return RedirectResponse("/watch", status_code=303)


@router.post("/watch/sources", response_model=None)
def watch_add_source(request: Request, ctx: Case, path: str = Form("")) -> Response:
    from reclaim.watch import add_source

    try:
        if not path.strip():
            raise InputError("give the path of a folder, an export or a URL list on this computer")
        with ctx.store() as s:
            add_source(s, path.strip())
    except ReclaimError as e:
        return _page(request, ctx, status_of(e), problem=str(e))
    return RedirectResponse("/watch", status_code=303)


@router.post("/watch/alerts", response_model=None)
def watch_add_alert(request: Request, ctx: Case, target: str = Form("")) -> Response:
    from reclaim.alerts import add_target

    try:
        with ctx.store() as s:
            add_target(s, target.strip(), lang_of(request))
    except ReclaimError as e:
        return _page(request, ctx, status_of(e), problem=str(e))
    return RedirectResponse("/watch", status_code=303)


@router.post("/watch/schedule", response_model=None)
def watch_schedule(request: Request, ctx: Case, every: str = Form("")) -> Response:
    """Switch the built-in schedule on (every 30m, 6h, 1d…) or off ("off" or empty)."""
    from reclaim.watch import WatchScheduler, parse_every, watch_case

    state = request.app.state
    old: WatchScheduler | None = getattr(state, "watch_scheduler", None)
    every = every.strip().lower()
    try:
        seconds = None if every in ("", "off") else parse_every(every)
    except ReclaimError as e:
        return _page(request, ctx, status_of(e), problem=str(e))
    if old is not None:
        old.stop(timeout=2.0)
        state.watch_scheduler = None
    if seconds is not None:
        path, workers = ctx.path, ctx.workers
        sched = WatchScheduler(lambda: watch_case(path, workers=workers), seconds)
        sched.start()
        state.watch_scheduler = sched
        state.watch_every = every
    return RedirectResponse("/watch", status_code=303)
