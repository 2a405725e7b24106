"""The export page: an evidence pack of the confirmed items, verified once written."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from reclaim.errors import InputError, ReclaimError
from reclaim.report.notices import Notifier
from reclaim.report.pack import PackOptions, export_case
from reclaim.report.verify import verify_pack
from reclaim.web.deps import Case
from reclaim.web.i18n import LANGS
from reclaim.web.pages import page

router = APIRouter()


@router.get("/export", response_class=HTMLResponse)
def export(request: Request, ctx: Case) -> HTMLResponse:
    from reclaim.decisions import confirmed_items

    with ctx.store() as s:
        items = confirmed_items(s)
    return page(request, "export.html.j2", n_items=len(items))


@router.post("/export", response_class=HTMLResponse)
def export_post(
    request: Request,
    ctx: Case,
    name: str = Form(""),
    email: str = Form(""),
    lang: str = Form("fr"),
    items: str = Form(""),
) -> HTMLResponse:
    chosen = [x for x in items.split(",") if x.strip()]
    out_dir = ctx.path / "exports"
    out = out_dir / f"evidence-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}.zip"
    try:
        if not name.strip() or "@" not in email:
            raise InputError("a name and an email address are needed for the notices")
        with ctx.store() as s:
            res = export_case(
                s,
                out,
                PackOptions(
                    notifier=Notifier(name.strip(), email.strip()),
                    lang=lang if lang in LANGS else "fr",
                ),
                chosen,
            )
        check = verify_pack(out)
    except ReclaimError as e:
        return page(request, "export.html.j2", status=400, problem=str(e), n_items=0)
    return page(request, "export.html.j2", done=res, check=check, file=out.name, n_items=0)


@router.get("/exports/{name}")
def download(ctx: Case, name: str) -> Response:
    """A pack written by this app, only from the case's exports folder (no path escape)."""
    exports = (ctx.path / "exports").resolve()
    p = (ctx.path / "exports" / name).resolve()
    if p.parent != exports or not p.is_file():
        return Response("not found", status_code=404)
    return FileResponse(p, filename=name, media_type="application/zip")
