"""The local web app: ``reclaim serve --case DIR`` on 127.0.0.1, French and English.

Everything it shows comes from the case directory; every asset is served from this package (no
CDN, works offline). Requests whose Host is not this machine's loopback name are refused (DNS
rebinding), and so are cross-site form posts (Origin checked).
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from PIL import Image

from reclaim import __version__
from reclaim.errors import CaseBusy, InputError, MediaError, ReclaimError
from reclaim.media import MediaLimits
from reclaim.media.sandbox import analyze_isolated, probe_isolated
from reclaim.protect import now_stamp, protect_rows, rows_to_csv
from reclaim.report.notices import Notifier
from reclaim.report.pack import PackOptions, export_case
from reclaim.report.verify import verify_pack
from reclaim.store import CaseStore
from reclaim.verdicts import FLAGGED, verdict_label
from reclaim.web.i18n import LANGS, negotiate, translator
from reclaim.web.jobs import JobRunner

HERE = Path(__file__).parent
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
MAX_PROTECT_UPLOAD = 256 * 1024 * 1024


def status_of(e: ReclaimError) -> int:
    """HTTP status of a refused form: 409 while the case is busy (a scan running: the same form
    works once it has finished), else 400."""
    return 409 if isinstance(e, CaseBusy) else 400


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

    def lang_of(request: Request) -> str:
        return negotiate(request.headers.get("accept-language"), request.cookies.get("lang"))

    def page(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        lang = lang_of(request)
        html = env.get_template(template).render(
            _=translator(lang),
            lang=lang,
            langs=LANGS,
            path=request.url.path,
            reveal_all=request.cookies.get("reveal_all") == "1",
            version=__version__,
            verdict_label=verdict_label,
            flagged=FLAGGED,
            **ctx,
        )
        return HTMLResponse(html, status_code=status)

    def store() -> CaseStore:
        return CaseStore.open(case)

    @app.get("/", response_class=HTMLResponse)
    def home() -> RedirectResponse:
        with store() as s:
            target = "/findings" if s.has_enrollments() else "/enroll"
        return RedirectResponse(target, status_code=303)

    # -- enrollment ------------------------------------------------------------------------------
    def enroll_ctx() -> dict[str, Any]:
        with store() as s:
            return {"enrollments": s.enrollments()}

    @app.get("/enroll/consent", response_class=HTMLResponse)
    def consent_fragment(request: Request, name: str = "") -> HTMLResponse:
        """htmx fragment: the consent text with the name being typed, exactly as stored."""
        from html import escape

        from reclaim.enroll import consent_text

        return HTMLResponse(escape(consent_text(name.strip() or "…", None, lang_of(request))))

    @app.get("/enroll", response_class=HTMLResponse)
    def enroll_page(request: Request, name: str = "") -> HTMLResponse:
        from reclaim.enroll import consent_text

        return page(
            request,
            "enroll.html.j2",
            consent=consent_text(name or "…", None, lang_of(request)),
            name=name,
            **enroll_ctx(),
        )

    @app.post("/enroll", response_class=HTMLResponse)
    async def enroll_post(
        request: Request,
        name: str = Form(""),
        consent: str = Form(""),
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
                    with store() as s:
                        return enroll(
                            s, name, paths, consent=consent == "1", consented_by=name, lang=lang
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
                **enroll_ctx(),
            )
        return page(
            request,
            "enroll.html.j2",
            done=done,
            name=name,
            consent=consent_text(name or "…", None, lang_of(request)),
            **enroll_ctx(),
        )

    @app.post("/enroll/{name}/delete", response_class=HTMLResponse)
    def unenroll_post(request: Request, name: str) -> Response:
        from reclaim.enroll import unenroll

        try:
            with store() as s:
                unenroll(s, name)
        except ReclaimError as e:
            return page(
                request,
                "enroll.html.j2",
                status=status_of(e),
                problem=str(e),
                name="",
                consent="",
                **enroll_ctx(),
            )
        return RedirectResponse("/enroll", status_code=303)

    # -- findings --------------------------------------------------------------------------------
    @app.get("/findings", response_class=HTMLResponse)
    def findings_page(request: Request) -> HTMLResponse:
        from reclaim.decisions import current
        from reclaim.findings import list_findings

        with store() as s:
            found = list_findings(s)
            decided = current(s)
            enrolled = s.has_enrollments()
        return page(
            request,
            "findings.html.j2",
            findings=found,
            decided=decided,
            enrolled=enrolled,
            job=jobs.current,
        )

    @app.get("/thumb/{sha}")
    def thumb(sha: str, reveal: int = 0) -> Response:
        """A preview, blurred on the server unless the person asked to see it."""
        from reclaim.report.pack import item_record, thumbnail
        from reclaim.sources.resolve import read_verified

        try:
            with store() as s:
                rec = item_record(s, sha)
            data, _ = read_verified(sha, rec["locators"], case, rec["blob"])
        except ReclaimError:
            return Response(status_code=404)
        jpg = thumbnail(data, reveal == 1)
        if jpg is None:
            return Response(status_code=404)
        return Response(jpg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/reveal/{sha}", response_class=HTMLResponse)
    def reveal(sha: str) -> HTMLResponse:
        """htmx fragment: the unblurred preview, asked for by a click on "show"."""
        if not all(c in "0123456789abcdef" for c in sha) or len(sha) != 64:
            return HTMLResponse("", status_code=404)
        return HTMLResponse(
            f'<img alt="" class="revealed" src="/thumb/{sha}?reveal=1" width="240">'
        )

    @app.get("/item/{sha}", response_class=HTMLResponse)
    def item_page(request: Request, sha: str) -> HTMLResponse:
        from reclaim.decisions import current
        from reclaim.match.duplicates import near_duplicates
        from reclaim.report.pack import item_record
        from reclaim.sources.resolve import read_verified

        try:
            with store() as s:
                rec = item_record(s, sha)
                faces = s.item_faces(sha)
                found = [f for f in s.findings() if f["item_sha256"] == sha]
                decision = current(s).get(sha)
                near = near_duplicates(s, sha)
                check = s.item_check(sha)
        except ReclaimError as e:
            return page(request, "item.html.j2", status=404, problem=str(e), rec=None)
        readable = None
        try:
            read_verified(sha, rec["locators"], case, rec["blob"])
        except ReclaimError as e:
            readable = str(e)
        return page(
            request,
            "item.html.j2",
            rec=rec,
            faces=faces,
            found=found,
            decision=decision,
            near=near,
            check=check,
            unreadable=readable,
        )

    @app.get("/item/{sha}/maps", response_class=HTMLResponse)
    def item_maps(request: Request, sha: str) -> HTMLResponse:
        """htmx fragment: explanation images, computed now from the original (never stored),
        shown only when the person asks for them: they reveal the picture's content."""
        import base64
        import io

        from reclaim.detectors.check import IMAGE_MAPS, map_images
        from reclaim.report.pack import item_record
        from reclaim.sources.resolve import read_verified

        _ = translator(lang_of(request))
        try:
            with store() as s:
                rec = item_record(s, sha)
            data, _kind = read_verified(sha, rec["locators"], case, rec["blob"])
            images = map_images(data)
        except ReclaimError as e:
            return HTMLResponse(
                f'<p class="problem" role="alert">{html.escape(str(e))}</p>', status_code=200
            )
        parts = []
        for name, img in images.items():
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            b64 = base64.b64encode(buf.getvalue()).decode()
            base = name.split("-")[0] if name not in IMAGE_MAPS else name
            title = html.escape(_(MAP_TITLES.get(base, base)))
            parts.append(
                f'<figure class="map"><img alt="{title}" src="data:image/png;base64,{b64}" '
                f'width="320"><figcaption>{title}</figcaption></figure>'
            )
        return HTMLResponse('<div class="maps">' + "".join(parts) + "</div>")

    @app.post("/item/{sha}/decision", response_class=HTMLResponse)
    def decision_post(
        request: Request, sha: str, decision: str = Form(""), note: str = Form("")
    ) -> Response:
        from reclaim.decisions import decide

        try:
            with store() as s:
                decide(s, sha, decision, note)
        except ReclaimError as e:
            return page(request, "item.html.j2", status=400, problem=str(e), rec=None)
        return RedirectResponse(f"/item/{sha}", status_code=303)

    def back_path(request: Request) -> str:
        """Where to send the person back to: the Referer's path and query when it is a page of
        this app (same scheme, host and port, or a path from the root), else "/". Never
        another site (open redirect): no "//host", no backslash (browsers read it as "/"), no
        whitespace or control character (browsers drop tabs and newlines, so "/", a tab,
        "/evil.com" would become "//evil.com")."""
        from urllib.parse import urlsplit

        ref = request.headers.get("referer") or ""
        if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in ref):
            return "/"
        try:
            parts = urlsplit(ref)
        except ValueError:
            return "/"
        if parts.scheme or parts.netloc:
            own = (request.url.scheme, (request.headers.get("host") or "").lower())
            if (parts.scheme.lower(), parts.netloc.lower()) != own:
                return "/"
        path = parts.path
        if not path.startswith("/") or path.startswith("//"):
            return "/"
        return path + (f"?{parts.query}" if parts.query else "")

    @app.get("/lang/{lang}")
    def set_lang(lang: str, request: Request) -> RedirectResponse:
        resp = RedirectResponse(back_path(request), status_code=303)
        if lang in LANGS:
            resp.set_cookie("lang", lang, samesite="strict", httponly=True)
        return resp

    @app.post("/settings/reveal")
    def set_reveal(request: Request, reveal_all: str = Form("0")) -> RedirectResponse:
        resp = RedirectResponse(back_path(request), status_code=303)
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
        created = now_stamp()
        for f in files:
            data = await f.read(MAX_PROTECT_UPLOAD + 1)
            if not data:
                continue
            if len(data) > MAX_PROTECT_UPLOAD:
                problems.append(f"{f.filename}: too large")
                continue
            # In a worker process (memory ceiling, time limit), awaited off the event loop.
            item = await asyncio.to_thread(analyze_isolated, data, MediaLimits())
            if item.error:
                problems.append(f"{f.filename}: {item.error}")
                continue
            rows.extend(protect_rows(item, created))
        if not rows:
            return page(
                request, "protect.html.j2", status=400, problems=problems or ["no file given"]
            )
        return Response(
            rows_to_csv(rows),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="reclaim-hashes.csv"'},
        )

    # -- export ----------------------------------------------------------------------------------
    @app.get("/export", response_class=HTMLResponse)
    def export(request: Request) -> HTMLResponse:
        from reclaim.decisions import confirmed_items

        with store() as s:
            items = confirmed_items(s)
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

    @app.get("/exports/{name}")
    def download(name: str) -> Response:
        p = (case / "exports" / name).resolve()
        if p.parent != (case / "exports").resolve() or not p.is_file():
            return Response("not found", status_code=404)
        return FileResponse(p, filename=name, media_type="application/zip")

    return app


#: Captions of the explanation images (English msgids; French in the catalog).
MAP_TITLES = {
    "ela": "Error levels (ELA): bright areas recompress differently from the rest",
    "noise": "Noise level: a region pasted from another photo often has other noise",
    "jpeg_ghost": "JPEG ghost: a region saved before at another JPEG quality shows up dark",
    "block_grid": "JPEG 8×8 grid: a region whose grid does not line up stands out",
    "face_consistency": "Face against its surroundings: where the face differs",
    "face_blend": "Face-blend model: where it sees a blending boundary",
    "synthetic_image": "AI-image model: score per tile",
}


def serve(case: Path, port: int = 8765, host: str = "127.0.0.1") -> None:
    """Run the app with uvicorn on loopback only."""
    import uvicorn

    if host not in ("127.0.0.1", "::1", "localhost"):
        raise InputError("reclaim serve only listens on this machine (127.0.0.1)")
    uvicorn.run(create_app(case), host=host, port=port, log_level="warning")
