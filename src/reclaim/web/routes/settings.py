"""Per-browser settings kept in cookies: language and "show every preview unblurred"."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from reclaim.web.guard import back_path
from reclaim.web.i18n import LANGS

router = APIRouter()


@router.get("/lang/{lang}")
def set_lang(lang: str, request: Request) -> RedirectResponse:
    resp = RedirectResponse(back_path(request), status_code=303)
    if lang in LANGS:
        resp.set_cookie("lang", lang, samesite="strict", httponly=True)
    return resp


@router.post("/settings/reveal")
def set_reveal(request: Request, reveal_all: str = Form("0")) -> RedirectResponse:
    resp = RedirectResponse(back_path(request), status_code=303)
    resp.set_cookie("reveal_all", "1" if reveal_all == "1" else "0", samesite="strict")
    return resp
