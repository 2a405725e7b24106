"""The protect page: hashes of one's own photos and videos, as a CSV; nothing else leaves."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from reclaim.media import MediaLimits
from reclaim.protect import analyze_for_protect, now_stamp, protect_rows, rows_to_csv
from reclaim.web.pages import page

router = APIRouter()

MAX_PROTECT_UPLOAD = 256 * 1024 * 1024


@router.get("/protect", response_class=HTMLResponse)
def protect(request: Request) -> HTMLResponse:
    return page(request, "protect.html.j2")


@router.post("/protect")
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
        # In a worker process (memory ceiling, time limit), awaited off the event loop; PDQ in
        # the flavours ``reclaim protect`` writes by default.
        item, pdq = await asyncio.to_thread(analyze_for_protect, data, MediaLimits())
        if item.error:
            problems.append(f"{f.filename}: {item.error}")
            continue
        rows.extend(protect_rows(item, created, pdq))
    if not rows:
        return page(request, "protect.html.j2", status=400, problems=problems or ["no file given"])
    return Response(
        rows_to_csv(rows),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="reclaim-hashes.csv"'},
    )
