"""Page rendering: the Jinja templates of this package, in the person's language.

Every page gets the same base context (``_``, ``lang``, ``langs``, ``path``, ``reveal_all``,
``version``, ``verdict_label``, ``flagged``) plus what its route passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from reclaim import __version__
from reclaim.verdicts import FLAGGED, verdict_label
from reclaim.web.i18n import LANGS, negotiate, translator

TEMPLATES = Path(__file__).parent / "templates"

_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2", "html"]))


def lang_of(request: Request) -> str:
    """The language of this request: the ``lang`` cookie, else the browser's, else French."""
    return negotiate(request.headers.get("accept-language"), request.cookies.get("lang"))


def page(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    """``template`` rendered with the base context and ``ctx``, answered with ``status``."""
    lang = lang_of(request)
    html = _env.get_template(template).render(
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
