"""The local web app: ``reclaim serve --case DIR`` on 127.0.0.1, French and English.

Everything it shows comes from the case directory; every asset is served from this package (no
CDN, works offline). Requests whose Host is not this machine's loopback name are refused (DNS
rebinding), and so are cross-site form posts (Origin checked).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from reclaim import __version__
from reclaim.errors import InputError, ReclaimError
from reclaim.media import MediaLimits
from reclaim.report.notices import Notifier
from reclaim.report.pack import PackOptions, build_pack
from reclaim.report.verify import verify_pack
from reclaim.scan import analyze_bytes
from reclaim.store import CaseStore
from reclaim.web.i18n import LANGS, negotiate, translator
from reclaim.web.jobs import JobRunner

HERE = Path(__file__).parent
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
MAX_PROTECT_UPLOAD = 256 * 1024 * 1024


def create_app(case: Path, *, workers: int | None = None) -> FastAPI:
    """The app for one case directory (created if it does not exist yet)."""
    case = Path(case)
    CaseStore.open(case, create=True).close()
    app = FastAPI(title="reclaim", version=__version__, docs_url=None, redoc_url=None)
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["j2", "html"])
    )
    jobs = JobRunner(case)
    app.state.case = case
    app.state.jobs = jobs

    @app.middleware("http")
    async def loopback_only(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        host = (request.headers.get("host") or "").lower()
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        if name not in LOOPBACK_HOSTS:
            return Response("refused: this server only answers to 127.0.0.1", status_code=421)
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            if origin and origin.split("://", 1)[-1].lower() != host:
                return Response("refused: cross-site request", status_code=403)
        return await call_next(request)

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def page(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        lang = negotiate(request.headers.get("accept-language"), request.cookies.get("lang"))
        html = env.get_template(template).render(
            _=translator(lang),
            lang=lang,
            langs=LANGS,
            path=request.url.path,
            reveal_all=request.cookies.get("reveal_all") == "1",
            version=__version__,
            **ctx,
        )
        return HTMLResponse(html, status_code=status)

    def store() -> CaseStore:
        return CaseStore.open(case)

    @app.get("/", response_class=HTMLResponse)
    def home() -> RedirectResponse:
        return RedirectResponse("/sources", status_code=303)

    @app.get("/lang/{lang}")
    def set_lang(lang: str, request: Request) -> RedirectResponse:
        back = request.headers.get("referer") or "/"
        resp = RedirectResponse(back if back.startswith("http://") else "/", status_code=303)
        if lang in LANGS:
            resp.set_cookie("lang", lang, samesite="strict", httponly=True)
        return resp

    @app.post("/settings/reveal")
    def set_reveal(request: Request, reveal_all: str = Form("0")) -> RedirectResponse:
        resp = RedirectResponse(request.headers.get("referer") or "/", status_code=303)
        resp.set_cookie("reveal_all", "1" if reveal_all == "1" else "0", samesite="strict")
        return resp

    # -- sources -------------------------------------------------------------------------------
    def sources_ctx() -> dict[str, Any]:
        with store() as s:
            return {"counts": s.counts(), "runs": s.runs()[-10:][::-1], "errors": s.errors(50)}

    @app.get("/sources", response_class=HTMLResponse)
    def sources(request: Request) -> HTMLResponse:
        return page(request, "sources.html.j2", job=jobs.current, **sources_ctx())

    @app.post("/sources", response_class=HTMLResponse)
    def add_source(
        request: Request, path: str = Form(""), network: str = Form("0")
    ) -> HTMLResponse:
        spec = path.strip()
        try:
            if not spec:
                raise InputError("give the path of a folder, archive or Telegram export")
            jobs.start([spec], network=network == "1", workers=workers)
        except ReclaimError as e:
            return page(
                request,
                "sources.html.j2",
                status=400,
                job=jobs.current,
                problem=str(e),
                given=spec,
                **sources_ctx(),
            )
        return page(request, "sources.html.j2", job=jobs.current, **sources_ctx())

    @app.get("/jobs/current", response_class=HTMLResponse)
    def job_status(request: Request) -> HTMLResponse:
        return page(request, "_job.html.j2", job=jobs.current)

    # -- protect (hashes only) ----------------------------------------------------------------
    @app.get("/protect", response_class=HTMLResponse)
    def protect(request: Request) -> HTMLResponse:
        return page(request, "protect.html.j2")

    @app.post("/protect")
    async def protect_post(request: Request, files: list[UploadFile]) -> Response:
        rows: list[dict[str, Any]] = []
        problems: list[str] = []
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for f in files:
            data = await f.read(MAX_PROTECT_UPLOAD + 1)
            if not data:
                continue
            if len(data) > MAX_PROTECT_UPLOAD:
                problems.append(f"{f.filename}: too large")
                continue
            item = analyze_bytes(data, MediaLimits())
            if item.error:
                problems.append(f"{f.filename}: {item.error}")
                continue
            base = {
                "media_kind": item.kind,
                "created_at": created,
                "tool": f"reclaim {__version__}",
            }
            for name, value, q in item.signals:
                if name == "pdq":
                    rows.append({**base, "signal_type": "pdq", "signal": value, "quality": q})
            md5_type = "video_md5" if item.kind == "video" else "md5"
            rows.append({**base, "signal_type": md5_type, "signal": item.md5, "quality": ""})
        if not rows:
            return page(
                request, "protect.html.j2", status=400, problems=problems or ["no file given"]
            )
        buf = io.StringIO()
        w = csv.DictWriter(
            buf, fieldnames=["signal_type", "signal", "quality", "media_kind", "created_at", "tool"]
        )
        w.writeheader()
        w.writerows(rows)
        return Response(
            buf.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="reclaim-hashes.csv"'},
        )

    # -- export ----------------------------------------------------------------------------------
    @app.get("/export", response_class=HTMLResponse)
    def export(request: Request) -> HTMLResponse:
        with store() as s:
            items = [r[0] for r in s.conn.execute("SELECT sha256 FROM items WHERE error IS NULL")]
        return page(request, "export.html.j2", n_items=len(items))

    @app.post("/export", response_class=HTMLResponse)
    def export_post(
        request: Request,
        name: str = Form(""),
        email: str = Form(""),
        lang: str = Form("fr"),
        items: str = Form(""),
    ) -> HTMLResponse:
        chosen = [x for x in items.split(",") if x.strip()]
        out_dir = case / "exports"
        out = out_dir / f"evidence-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}.zip"
        try:
            if not name.strip() or "@" not in email:
                raise InputError("a name and an email address are needed for the notices")
            with store() as s:
                if not chosen:
                    chosen = selected_for_export(s)
                res = build_pack(
                    s,
                    chosen,
                    out,
                    PackOptions(
                        notifier=Notifier(name.strip(), email.strip()),
                        lang=lang if lang in LANGS else "fr",
                    ),
                )
            check = verify_pack(out)
        except ReclaimError as e:
            return page(request, "export.html.j2", status=400, problem=str(e), n_items=0)
        return page(request, "export.html.j2", done=res, check=check, file=out.name, n_items=0)

    @app.get("/exports/{name}")
    def download(name: str) -> Response:
        p = (case / "exports" / name).resolve()
        if p.parent != (case / "exports").resolve() or not p.is_file():
            return Response("not found", status_code=404)
        return FileResponse(p, filename=name, media_type="application/zip")

    return app


def selected_for_export(store: CaseStore) -> list[str]:
    """Items the person confirmed; until findings exist, every readable item of the case."""
    rows = store.conn.execute("SELECT sha256 FROM items WHERE error IS NULL ORDER BY first_seen_at")
    return [r[0] for r in rows]


def serve(case: Path, port: int = 8765, host: str = "127.0.0.1") -> None:
    """Run the app with uvicorn on loopback only."""
    import uvicorn

    if host not in ("127.0.0.1", "::1", "localhost"):
        raise InputError("reclaim serve only listens on this machine (127.0.0.1)")
    uvicorn.run(create_app(case), host=host, port=port, log_level="warning")
