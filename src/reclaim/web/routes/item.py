"""One item's page: first what she can act on (the verdict in one sentence, where it was seen in
her words, her decision, "Ask for removal"), then, folded under "Technical details", the face
scores, the detectors' evidence, the explanation images and the fingerprints."""

from __future__ import annotations

import html

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from PIL import Image

from reclaim.errors import ReclaimError
from reclaim.web.deps import Case
from reclaim.web.i18n import translator
from reclaim.web.pages import lang_of, page
from reclaim.web.texts import when
from reclaim.web.where import seen_where, verdict_sentence

router = APIRouter()

#: Captions of the explanation images (English msgids; French in the catalog).
MAP_TITLES = {
    "ela": "Error levels (ELA): bright areas recompress differently from the rest",
    "noise": "Noise level: a region pasted from another photo often has other noise",
    "jpeg_ghost": "JPEG ghost: a region saved before at another JPEG quality shows up dark",
    "block_grid": "JPEG 8×8 grid: a region whose grid does not line up stands out",
    "face_consistency": "Face against its surroundings: where the face differs",
    "face_blend": "Face-blend model: where it sees a blending boundary",
    "synthetic_image": "AI-image model: score per tile",
    "inpaint_region": "Regenerated area? Where the fine grain differs from what the rest of the "
    "photo predicts (box: the strongest region; weak evidence)",
}


@router.get("/item/{sha}", response_class=HTMLResponse)
def item_page(request: Request, ctx: Case, sha: str) -> HTMLResponse:
    from reclaim.decisions import current
    from reclaim.match.duplicates import near_duplicates
    from reclaim.report.pack import item_record
    from reclaim.sources.resolve import read_verified

    try:
        with ctx.store() as s:
            rec = item_record(s, sha)
            faces = s.item_faces(sha)
            found = s.findings(item=sha)
            decision = current(s).get(sha)
            near = near_duplicates(s, sha)
            check = s.item_check(sha)
    except ReclaimError as e:
        return page(request, "item.html.j2", status=404, problem=str(e), rec=None)
    readable = None
    try:
        read_verified(sha, rec["locators"], ctx.path, rec["blob"])
    except ReclaimError as e:
        readable = str(e)
    lang = lang_of(request)
    return page(
        request,
        "item.html.j2",
        rec=rec,
        seen=[seen_where(loc) for loc in rec["locators"]],
        sentence=verdict_sentence(
            translator(lang),
            None if check is None else str(check.verdict),
            None if decision is None else str(decision.decision),
            str(rec["kind"]),
            face_match=bool(found),
        ),
        when=when(lang),
        faces=faces,
        found=found,
        decision=decision,
        near=near,
        check=check,
        unreadable=readable,
    )


@router.get("/item/{sha}/maps", response_class=HTMLResponse)
def item_maps(request: Request, ctx: Case, sha: str) -> HTMLResponse:
    """htmx fragment: explanation images, computed now from the original (never stored),
    shown only when the person asks for them: they reveal the picture's content."""
    import base64
    import io

    from reclaim.detectors.check import IMAGE_MAPS, map_images
    from reclaim.report.pack import item_record
    from reclaim.sources.resolve import read_verified

    _ = translator(lang_of(request))
    try:
        with ctx.store() as s:
            rec = item_record(s, sha)
        data, _kind = read_verified(sha, rec["locators"], ctx.path, rec["blob"])
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


@router.post("/item/{sha}/decision", response_class=HTMLResponse)
def decision_post(
    request: Request, ctx: Case, sha: str, decision: str = Form(""), note: str = Form("")
) -> Response:
    from reclaim.decisions import decide

    try:
        with ctx.store() as s:
            decide(s, sha, decision, note)
    except ReclaimError as e:
        return page(request, "item.html.j2", status=400, problem=str(e), rec=None)
    return RedirectResponse(f"/item/{sha}", status_code=303)
