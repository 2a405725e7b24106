"""Hashing (HMA ``/h``): every signal reclaim computes for an uploaded file (or a URL)."""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.datastructures import UploadFile as StarletteUpload

from reclaim.api.app import Platform, PlatformDep, require
from reclaim.media import MediaLimits
from reclaim.platform.store import Token
from reclaim.scan import analyze_bytes
from reclaim.signals import te_signal_type

router = APIRouter(prefix="/h", tags=["hashing"])


@dataclass
class Hashed:
    """An upload's signals in HMA vocabulary, with PDQ quality and what it was."""

    signals: dict[str, str]
    quality: dict[str, int | None] = field(default_factory=dict)
    kind: str = "other"
    sha256: str = ""
    data: bytes = b""


def hash_bytes(data: bytes, platform: Platform) -> Hashed:
    """Signals for uploaded bytes; 400 with the reason when it is not a readable image/video."""
    if not data:
        raise HTTPException(400, "the uploaded file is empty")
    limits = MediaLimits(max_bytes=platform.settings.max_upload_bytes, video_max_seconds=300.0)
    item = analyze_bytes(data, limits)
    if item.error or item.kind == "other":
        reason = item.error or "not an image or video reclaim reads"
        raise HTTPException(400, f"cannot hash this file: {reason}")
    out = Hashed({}, {}, item.kind, item.sha256, data)
    for name, value, quality in item.signals:
        st = te_signal_type(name, item.kind)
        if name == "vpdq" and item.kind != "video":
            continue  # animated images: PDQ of the still is what HMA banks for photos
        out.signals[st] = value
        out.quality[st] = quality
    return out


async def read_upload(request: Request) -> tuple[bytes, str | None, dict[str, str]]:
    """The single file of a multipart upload (HMA: field named by content type) and the other
    form fields. 400 when there is none or more than one."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise HTTPException(400, "Missing multipart/form-data file upload")
    form = await request.form()
    files = [(k, v) for k, v in form.multi_items() if isinstance(v, StarletteUpload)]
    fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    if not files:
        raise HTTPException(400, "Missing multipart/form-data file upload")
    if len(files) > 1:
        raise HTTPException(400, "Only one file allowed per request")
    name, upload = files[0]
    data = await upload.read()
    await form.close()
    hint = name if name in ("photo", "video") else None
    return data, hint, fields


def fetch_url(url: str, platform: Platform) -> bytes:
    if not platform.settings.allow_url_fetch:
        raise HTTPException(
            403,
            "this server does not fetch URLs (start it with --allow-url-fetch); upload the file",
        )
    from reclaim.sources.base import SourceLimits
    from reclaim.sources.urllist import UrlListSource, validate_url

    problem = validate_url(url)
    if problem is not None:
        raise HTTPException(400, f"bad url: {problem}")
    limits = SourceLimits(
        url_max_bytes=platform.settings.max_upload_bytes,
        url_public_only=not platform.settings.allow_private_addresses,
    )
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "url.txt"
        listing.write_text(url + "\n", encoding="utf-8")
        src = UrlListSource(str(listing), limits)
        entry = next(iter(src.entries()))
    if entry.error is not None or entry.data is None:
        raise HTTPException(400, f"cannot fetch url: {entry.error}")
    return entry.data


@router.post("/hash")
async def hash_post(
    request: Request,
    platform: PlatformDep,
    token: Annotated[Token, Depends(require("hash"))],
) -> dict[str, str]:
    """Hash an uploaded file (multipart, one file; HMA names the field ``photo``/``video``).

    Returns ``{signal_type: value}`` in HMA vocabulary: ``pdq`` + ``md5`` for photos,
    ``video_md5`` + ``vpdq`` for videos, and ``sha256``."""
    data, _hint, _ = await read_upload(request)
    return hash_bytes(data, platform).signals


@router.get("/hash")
def hash_get(
    url: str,
    platform: PlatformDep,
    token: Annotated[Token, Depends(require("hash"))],
) -> dict[str, str]:
    """Fetch ``url`` (if the server allows URL fetching) and hash it."""
    return hash_bytes(fetch_url(url, platform), platform).signals


def blurred_preview(h: Hashed) -> bytes | None:
    """A small, heavily blurred JPEG for moderators (never the original)."""
    if h.kind != "photo":
        return None
    try:
        from PIL import ImageFilter

        from reclaim.media import Media

        im = Media(h.data, MediaLimits()).image(max_side=256).convert("RGB")
        im = im.filter(ImageFilter.GaussianBlur(radius=max(6, max(im.size) // 12)))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=60)
        return buf.getvalue()
    except Exception:  # a preview is a convenience; the item is queued without one
        return None


def json_field(fields: dict[str, str], name: str) -> Any:
    raw = fields.get(name)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise HTTPException(400, f"{name} is not valid JSON: {e.msg}") from e
