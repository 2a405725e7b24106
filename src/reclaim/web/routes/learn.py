"""The Learn pages (issue 22), in French and English, reachable from every finding: what nudify
bots and face swaps are and that it is not her fault, her rights and the deadlines, how to keep
evidence, who to call, and what reclaim's signals can and cannot tell.

The pages' text is in templates (``templates/learn/<id>.<lang>.html.j2``); their titles, dates
and sources in ``web/learn/pages.toml``. A page that rests on removal destinations names them:
their laws, deadlines, links and dated sources come from ``reclaim.requests``' destination files,
so they are corrected in one place.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from reclaim.errors import ReclaimError
from reclaim.requests.catalog import Destination, Source, current_catalog
from reclaim.web.pages import lang_of, page
from reclaim.web.texts import day

router = APIRouter()

PAGES_FILE = Path(__file__).resolve().parents[1] / "learn" / "pages.toml"


class LearnError(ReclaimError):
    """``pages.toml`` is not usable (the message says why)."""


@dataclass(frozen=True)
class LearnPage:
    id: str
    title: dict[str, str]
    summary: dict[str, str]
    updated: date
    destinations: tuple[str, ...]
    sources: tuple[Source, ...]


@cache
def learn_pages() -> tuple[LearnPage, ...]:
    """Every Learn page, in the order of ``pages.toml``."""
    with open(PAGES_FILE, "rb") as f:
        data = tomllib.load(f)
    out = []
    for pid, d in data.items():
        try:
            sources = tuple(
                Source(
                    url=str(s["url"]),
                    title=str(s["title"]),
                    checked=s.get("checked"),
                    note=str(s.get("note", "")),
                )
                for s in d.get("sources", [])
            )
            for s, raw in zip(sources, d.get("sources", []), strict=True):
                if s.checked is None and not (raw.get("reference") and s.note):
                    raise LearnError(
                        f"{PAGES_FILE.name}: a source of {pid!r} ({s.url}) has no date it was "
                        "read (checked) and is not an official text cited by reference with a note"
                    )
            out.append(
                LearnPage(
                    pid,
                    {k: str(v) for k, v in d["title"].items()},
                    {k: str(v) for k, v in d["summary"].items()},
                    d["updated"],
                    tuple(str(x) for x in d.get("destinations", [])),
                    sources,
                )
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise LearnError(f"{PAGES_FILE.name}: page {pid!r} is missing {e}") from e
    return tuple(out)


def page_sources(pg: LearnPage) -> list[Source]:
    """The page's own sources, then those of the destinations it rests on (each URL once)."""
    cat = current_catalog()
    seen: set[str] = set()
    out: list[Source] = []
    for s in [*pg.sources, *(s for d in pg.destinations for s in cat.get(d).sources)]:
        if s.url not in seen:
            seen.add(s.url)
            out.append(s)
    return out


def _shown(pg: LearnPage, lang: str) -> dict[str, Any]:
    return {
        "id": pg.id,
        "title": pg.title.get(lang) or pg.title["en"],
        "summary": pg.summary.get(lang) or pg.summary["en"],
        "updated": pg.updated,
    }


@router.get("/learn", response_class=HTMLResponse)
def learn_index(request: Request) -> HTMLResponse:
    lang = lang_of(request)
    return page(
        request,
        "learn/index.html.j2",
        pages=[_shown(pg, lang) for pg in learn_pages()],
        day=day(lang),
    )


@router.get("/learn/{page_id}", response_class=HTMLResponse)
def learn_page(request: Request, page_id: str) -> HTMLResponse:
    lang = lang_of(request)
    found = {pg.id: pg for pg in learn_pages()}.get(page_id)
    if found is None:
        return page(
            request,
            "learn/index.html.j2",
            status=404,
            pages=[_shown(pg, lang) for pg in learn_pages()],
            day=day(lang),
        )
    cat = current_catalog()

    def dest(dest_id: str) -> Destination:
        return cat.get(dest_id)

    return page(
        request,
        f"learn/{found.id}.{lang}.html.j2",
        pg=_shown(found, lang),
        sources=page_sources(found),
        dest=dest,
        day=day(lang),
    )
