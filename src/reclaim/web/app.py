"""The local web app: ``reclaim serve --case DIR`` on 127.0.0.1, French and English.

Everything it shows comes from the case directory; every asset is served from this package (no
CDN, works offline). Requests whose Host is not this machine's loopback name are refused (DNS
rebinding), and so are cross-site form posts (Origin checked): see ``web.guard``.

``create_app`` only assembles: the pages are routers in ``web.routes`` (one module per page),
the shared pieces are ``web.deps`` (the case, the scan runner), ``web.pages`` (templates and
language) and ``web.guard``; the work itself is done by the domain modules.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from reclaim import __version__
from reclaim.errors import InputError
from reclaim.store import CaseStore
from reclaim.web.deps import WebCase
from reclaim.web.guard import loopback_only
from reclaim.web.jobs import JobRunner
from reclaim.web.routes import (
    dashboard,
    enroll,
    export,
    findings,
    item,
    learn,
    protect,
    requests,
    settings,
    shield,
    sources,
    watch,
)

HERE = Path(__file__).parent

#: Every page of the app, in the order their routes are matched.
ROUTERS: tuple[APIRouter, ...] = (
    dashboard.router,
    findings.router,
    enroll.router,
    item.router,
    settings.router,
    sources.router,
    protect.router,
    shield.router,
    export.router,
    requests.router,
    watch.router,
    learn.router,
)


def create_app(case: Path, *, workers: int | None = None) -> FastAPI:
    """The app for one case directory (created if it does not exist yet)."""
    case = Path(case)
    CaseStore.open(case, create=True).close()
    app = FastAPI(title="reclaim", version=__version__, docs_url=None, redoc_url=None)
    jobs = JobRunner(case)
    app.state.case = case
    app.state.jobs = jobs
    app.state.web = WebCase(case, jobs, workers)
    app.middleware("http")(loopback_only)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for router in ROUTERS:
        app.include_router(router)
    return app


def serve(case: Path, port: int = 8765, host: str = "127.0.0.1") -> None:
    """Run the app with uvicorn on loopback only."""
    import uvicorn

    if host not in ("127.0.0.1", "::1", "localhost"):
        raise InputError("reclaim serve only listens on this machine (127.0.0.1)")
    uvicorn.run(create_app(case), host=host, port=port, log_level="warning")
