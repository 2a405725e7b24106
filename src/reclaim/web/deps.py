"""What every page of the web app shares: the case it serves, and how a refused form answers.

``create_app`` puts one :class:`WebCase` in ``app.state.web``; a route asks for it with the
``Case`` dependency and opens the store only around the lines that need it (``with
ctx.store() as s``), never for the whole request: the scan thread and the pages share the case.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from reclaim.errors import CaseBusy, ReclaimError
from reclaim.store import CaseStore
from reclaim.web.jobs import JobRunner


@dataclass(frozen=True)
class WebCase:
    """The case directory this app serves, its background scans, and the scan's worker count."""

    path: Path
    jobs: JobRunner
    workers: int | None

    def store(self) -> CaseStore:
        return CaseStore.open(self.path)


async def web_case(request: Request) -> WebCase:
    """Async: only reads the app's state, so no worker thread is taken for it."""
    web: WebCase = request.app.state.web
    return web


#: The dependency a route declares to reach the case: ``ctx: Case``.
Case = Annotated[WebCase, Depends(web_case)]


def status_of(e: ReclaimError) -> int:
    """HTTP status of a refused form: 409 while the case is busy (a scan running: the same form
    works once it has finished), else 400."""
    return 409 if isinstance(e, CaseBusy) else 400
