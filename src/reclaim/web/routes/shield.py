"""The face shield page ("Protéger mon visage sur les plateformes"): make a shield of an enrolled
person for a platform, download or send it, revoke it. The work is ``reclaim.shield.case``'s
(consent, custody entries, the only network calls: to the platform she names); this page only
renders it. Every call runs off the event loop: fetching a platform's key or sending a shield
waits on the network, and making one computes protected templates.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reclaim.errors import ReclaimError
from reclaim.web.deps import Case, WebCase, status_of
from reclaim.web.pages import lang_of, page

router = APIRouter()


def _ctx(ctx: WebCase, request: Request, **extra: Any) -> dict[str, Any]:
    from reclaim.shield.case import consent_text, list_shields

    platform = str(extra.get("platform") or "").strip()
    with ctx.store() as s:
        enrolled = [e["name"] for e in s.enrollments()]
        shields = list_shields(s)
        locked = s.templates_locked()
    return {
        "enrolled": enrolled,
        "shields": shields,
        "locked": locked,
        "consent": consent_text(_platform_label(platform), lang_of(request)),
        **extra,
    }


def _platform_label(spec: str) -> str:
    """The platform's name as the consent text shows it while she types its address."""
    from reclaim.shield.case import parse_platform_url

    if not spec:
        return "…"
    try:
        return parse_platform_url(spec).tenant
    except ReclaimError:
        return spec


@router.get("/shield", response_class=HTMLResponse)
def shield_page(request: Request, ctx: Case, done: str = "") -> HTMLResponse:
    return page(request, "shield.html.j2", **_ctx(ctx, request, done=done))


@router.get("/shield/consent", response_class=HTMLResponse)
def consent_fragment(request: Request, platform: str = "") -> HTMLResponse:
    """htmx fragment: the consent text for the platform being typed, exactly as signed."""
    from html import escape

    from reclaim.shield.case import consent_text

    return HTMLResponse(escape(consent_text(_platform_label(platform.strip()), lang_of(request))))


def _refused(request: Request, ctx: WebCase, e: ReclaimError, **form: Any) -> HTMLResponse:
    return page(
        request, "shield.html.j2", status=status_of(e), **_ctx(ctx, request, problem=str(e), **form)
    )


@router.post("/shield", response_class=HTMLResponse)
async def shield_create(
    request: Request,
    ctx: Case,
    name: str = Form(""),
    platform: str = Form(""),
    consent: str = Form(""),
    passphrase: str = Form(""),
) -> Response:
    from reclaim.shield.case import create_shield

    lang = lang_of(request)

    def run() -> str:
        with ctx.store() as s:
            info = create_shield(
                s,
                name,
                platform.strip(),
                consent=consent == "1",
                lang=lang,
                consent_by=name.strip() or None,
                passphrase=passphrase or None,
            )
        return info.shield_id

    try:
        shield_id = await asyncio.to_thread(run)
    except ReclaimError as e:
        return _refused(request, ctx, e, name=name, platform=platform)
    return RedirectResponse(f"/shield?done=created:{shield_id}", status_code=303)


@router.get("/shield/{shield_id}/download")
async def shield_download(request: Request, ctx: Case, shield_id: str) -> Response:
    """The shield file to give the platform: protected templates and the signed consent
    receipt, nothing else (her revocation secret stays in the case). In a case whose templates
    are locked the shield is stored sealed: this answers the page saying the passphrase is
    needed, and the page's form posts it to ``POST /shield/{id}/download``."""
    return await _download(request, ctx, shield_id, None)


@router.post("/shield/{shield_id}/download")
async def shield_download_post(
    request: Request,
    ctx: Case,
    shield_id: str,
    passphrase: str = Form(""),  # of locked templates: opens the sealed shield; never stored
) -> Response:
    """The shield file, opened with the passphrase of the case's locked templates."""
    return await _download(request, ctx, shield_id, passphrase or None)


async def _download(
    request: Request, ctx: WebCase, shield_id: str, passphrase: str | None
) -> Response:
    from reclaim.shield.case import export_shield

    def run() -> str:
        with ctx.store() as s:
            return export_shield(s, shield_id, passphrase=passphrase)

    try:
        text = await asyncio.to_thread(run)
    except ReclaimError as e:
        return _refused(request, ctx, e)
    return Response(
        text,
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="reclaim-shield-{shield_id[:8]}.json"'
        },
    )


@router.post("/shield/{shield_id}/send", response_class=HTMLResponse)
async def shield_send(
    request: Request,
    ctx: Case,
    shield_id: str,
    passphrase: str = Form(""),  # of locked templates: opens the sealed shield; never stored
) -> Response:
    from reclaim.shield.case import send_shield

    def run() -> None:
        with ctx.store() as s:
            send_shield(s, shield_id, passphrase=passphrase or None)

    try:
        await asyncio.to_thread(run)
    except ReclaimError as e:
        return _refused(request, ctx, e)
    return RedirectResponse(f"/shield?done=sent:{shield_id}", status_code=303)


@router.post("/shield/{shield_id}/revoke", response_class=HTMLResponse)
async def shield_revoke(
    request: Request, ctx: Case, shield_id: str, offline: str = Form("")
) -> Response:
    """Revoke: sent to the platform at once; or, with ``offline``, the revocation request as a
    file for her to send (the shield is marked revoked here either way)."""
    from reclaim.shield.case import revoke_shield

    def run() -> str | None:
        with ctx.store() as s:
            return revoke_shield(s, shield_id, send=offline != "1").request

    try:
        request_text = await asyncio.to_thread(run)
    except ReclaimError as e:
        return _refused(request, ctx, e)
    if offline == "1" and request_text:
        return Response(
            request_text,
            media_type="application/json",
            headers={
                "Content-Disposition": (
                    f'attachment; filename="reclaim-revocation-{shield_id[:8]}.json"'
                )
            },
        )
    return RedirectResponse(f"/shield?done=revoked:{shield_id}", status_code=303)
