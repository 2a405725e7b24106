"""Keep watch from the web app (issue 22): the watched sources, where alerts go, the last run,
and buttons to run the watch now (in a worker thread, off the event loop), to register a source
or an alert target, and to switch the built-in schedule on or off while the app runs.

The work is ``reclaim.watch`` (``watch_case``, ``add_source``, ``overview``,
``WatchScheduler``) and ``reclaim.alerts.add_target``.

When her face templates are locked, "run now" carries a password field: the passphrase is
checked before the run (a wrong one is refused on the page, nothing runs) and only the key
derived from it reaches the run's thread, never stored. Without it the run goes on and the page
says that face search waited. The times this page computes (when the run was made from here,
when the schedule runs next) are on the app's clock (``web.texts.now_of``: tests inject it),
and so are the times a run started here stores (when it finished, each URL's answer, each event,
a request marked "reappeared": ``watch_case(now=...)``), whether "run now" or the built-in
schedule started it; times the case recorded are shown as recorded.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reclaim.errors import InputError, ReclaimError
from reclaim.web.deps import Case, WebCase, status_of
from reclaim.web.pages import lang_of, page
from reclaim.web.texts import ngettext, now_of, when

router = APIRouter()


def _page(request: Request, ctx: WebCase, status: int = 200, **extra: Any) -> HTMLResponse:
    from reclaim.watch import overview

    with ctx.store() as s:
        view = overview(s, recent=20)
        locked = s.has_enrollments() and s.templates_locked()
    lang = lang_of(request)
    state = request.app.state
    scheduler = getattr(state, "watch_scheduler", None)
    return page(
        request,
        "watch.html.j2",
        status=status,
        watch=view,
        report=getattr(state, "watch_last", None),
        report_at=getattr(state, "watch_last_at", None),
        scheduler=scheduler,
        next_run=next_run(scheduler, now_of(request)),
        locked=locked,
        n=ngettext(lang),
        when=when(lang),
        **extra,
    )


def next_run(scheduler: Any, now: datetime) -> datetime | None:
    """When the built-in schedule runs next, on the app's clock: ``now`` plus the time the
    scheduler still waits (it counts on the computer's clock)."""
    at = getattr(scheduler, "next_run_at", None) if scheduler is not None else None
    if not at or not getattr(scheduler, "running", False):
        return None
    left = datetime.fromisoformat(str(at).replace("Z", "+00:00")) - datetime.now(UTC)
    return now + max(left, timedelta(0))


@router.get("/watch", response_class=HTMLResponse)
def watch_page(request: Request, ctx: Case) -> HTMLResponse:
    return _page(request, ctx)


@router.post("/watch/run", response_model=None)
async def watch_run(
    request: Request,
    ctx: Case,
    passphrase: str = Form(""),  # of locked face templates: never stored, never logged
) -> Response:
    """One watch run now, in a worker thread; the page then shows what it found. With the
    passphrase of locked templates, face search runs too (a wrong one: refused, no run)."""
    from reclaim.store.templatelock import TemplateKey
    from reclaim.watch import WatchReport, watch_case

    at = now_of(request)  # the run's instant, on the app's clock

    def run() -> WatchReport:
        key: TemplateKey | None = None
        if passphrase:
            with ctx.store() as s:
                key = s.template_key(passphrase)  # scrypt: off the event loop
        return watch_case(ctx.path, passphrase=key, workers=ctx.workers, now=at)

    try:
        report = await asyncio.to_thread(run)
    except ReclaimError as e:
        return await asyncio.to_thread(
            _page, request, ctx, status_of(e), problem=str(e), run_refused=True
        )
    request.app.state.watch_last = report
    request.app.state.watch_last_at = at
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
        sched = WatchScheduler(
            # each run on the app's clock at the time it runs
            lambda: watch_case(path, workers=workers, now=now_of(request)),
            seconds,
        )
        sched.start()
        state.watch_scheduler = sched
        state.watch_every = every
    return RedirectResponse("/watch", status_code=303)
