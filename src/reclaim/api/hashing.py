"""Hashing (HMA ``/h``): the signals of the registry (``reclaim.hashes``) that HMA's hasher gives
for an uploaded file's media kind (or a URL's), under their HMA names.

``/h/hash`` answers every signal reclaim computes for the kind (``sha256``, and ``pdq`` +
``md5`` for a photo, ``video_md5`` + ``vpdq`` for a video); HMA's ``types=pdq,md5`` query
parameter keeps only those named. What a bank keeps by default is HMA's choice instead
(``pick_types``): reclaim's byte digests that HMA's hasher does not make (``EXTRA_TYPES``) only
when ``types=`` asks for them.

A photo's PDQ comes in two flavours (``reclaim.hashes.pdq``): ``/h/hash`` answers python-
threatexchange's (``pytx``), as HMA's own ``/h/hash`` does, so that its answer compares with
hashes HMA made; a bank's content is hashed in its bank's flavour and a lookup in every flavour
the tenant's banks use (``hash_bytes(pdq_flavours=...)``: one call to the decoding pool).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from starlette.datastructures import UploadFile as StarletteUpload

from reclaim.api import shields
from reclaim.api.deps import Platform, PlatformDep, require
from reclaim.errors import ItemTimeout, MediaError, MediaTooLarge
from reclaim.hashes import signal_type
from reclaim.hashes.pdq import PdqFlavour
from reclaim.media import MediaLimits
from reclaim.media.sandbox import PoolFull, preview_in_worker
from reclaim.platform.store import Token
from reclaim.platform.uploads import hash_upload_in_worker
from reclaim.store.faces import FaceRecord

router = APIRouter(prefix="/h", tags=["hashing"])
log = logging.getLogger("reclaim.api")
T = TypeVar("T")


@dataclass
class Hashed:
    """An upload's signals in HMA vocabulary, with PDQ quality and what it was."""

    signals: dict[str, str]
    quality: dict[str, int | None] = field(default_factory=dict)
    kind: str = "other"
    sha256: str = ""
    data: bytes = field(default=b"", repr=False)
    #: Faces found for the tenant's face shields (``hash_bytes(faces=True)``): clear
    #: descriptors, in memory only until they are matched (``shields.match_upload``).
    faces: list[FaceRecord] = field(default_factory=list, repr=False)
    #: A photo's PDQ in each flavour computed, ``{flavour: (hex, quality)}``; ``signals["pdq"]``
    #: is the first one's.
    pdq: dict[str, tuple[str, int | None]] = field(default_factory=dict)


#: The PDQ flavour ``/h/hash`` answers in, and an upload's when nothing asks for another: pytx's,
#: what HMA computes.
SERVICE_PDQ_FLAVOUR = PdqFlavour.PYTX.value


#: Signals reclaim computes that HMA's hasher does not (it gives a photo's PDQ, and a video's
#: MD5 under ``video_md5``): the SHA-256 of any file and the MD5 of a photo's bytes. A bank keeps
#: them only when ``types=`` names them.
EXTRA_TYPES = frozenset({"sha256", "md5"})


def pick_types(hashed: Hashed, types: str | None, *, default_all: bool) -> dict[str, str]:
    """The signals of ``hashed`` that ``types`` (HMA's comma-separated query parameter) names;
    without it, all of them (``default_all``) or HMA's (``EXTRA_TYPES`` left out). 400 when a
    named type is not computed for this media kind, or when nothing is left."""
    if types is None or not types.strip():
        if default_all:
            return dict(hashed.signals)
        picked = {st: v for st, v in hashed.signals.items() if st not in EXTRA_TYPES}
    else:
        wanted = [t.strip() for t in types.split(",") if t.strip()]
        unknown = [t for t in wanted if t not in hashed.signals]
        if unknown:
            offered = ", ".join(hashed.signals) or "none"
            raise HTTPException(
                400,
                f"types: {', '.join(u[:40] for u in unknown[:5])} not computed for this "
                f"{hashed.kind}; choose among {offered}",
            )
        picked = {st: hashed.signals[st] for st in wanted}
    if not picked:
        raise HTTPException(400, f"no signal to keep for this {hashed.kind}")
    return picked


def content_type_hint(content_type: str | None) -> None:
    """HMA's ``content_type`` hint: ``photo`` or ``video`` (reclaim reads the kind from the
    bytes, so the hint only has to be one of them); 400 otherwise."""
    if content_type is not None and content_type not in ("photo", "video"):
        raise HTTPException(400, "content_type must be photo or video")


def _limits(platform: Platform) -> MediaLimits:
    cfg = platform.settings
    return MediaLimits(
        max_bytes=cfg.max_upload_bytes,
        video_max_seconds=300.0,
        max_memory_bytes=cfg.hash_memory_bytes,
        timeout_s=cfg.hash_timeout_s,
        video_timeout_s=cfg.hash_timeout_s,
    )


async def in_pool(platform: Platform, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in the platform's decoding pool, never on the event loop.

    503 with Retry-After when the pool is full; 413 when the worker ran out of memory; 422
    when it ran out of time (the worker is killed and replaced: the pool recovers); 400 when
    the worker died otherwise."""
    try:
        return await platform.decoders.run(fn, args, platform.settings.hash_timeout_s)
    except PoolFull as e:
        retry = str(max(1, round(platform.settings.hash_timeout_s / 6)))
        raise HTTPException(503, str(e), headers={"Retry-After": retry}) from e
    except MediaTooLarge as e:
        raise HTTPException(413, f"cannot hash this file: {e}") from e
    except ItemTimeout as e:
        raise HTTPException(422, f"cannot hash this file: {e}") from e
    except MediaError as e:
        raise HTTPException(400, f"cannot hash this file: {e}") from e


async def hash_bytes(
    data: bytes,
    platform: Platform,
    *,
    faces: bool = False,
    pdq_flavours: Sequence[str] = (SERVICE_PDQ_FLAVOUR,),
) -> Hashed:
    """Signals for uploaded bytes, computed in one call to the decoding pool (``in_pool``); 400
    with the reason when it is not a readable image/video (413 over a size cap, 422 out of
    time). A photo's PDQ is computed in each of ``pdq_flavours`` (``Hashed.pdq``; the first is
    ``signals["pdq"]``; none given: the service's). With ``faces``, the worker also finds the
    upload's faces (the tenant's face shields)."""
    if not data:
        raise HTTPException(400, "the uploaded file is empty")
    flavours = tuple(pdq_flavours) or (SERVICE_PDQ_FLAVOUR,)
    opts = shields.face_options(platform) if faces else None
    item, pdq = await in_pool(
        platform, hash_upload_in_worker, data, _limits(platform), opts, flavours
    )
    if item.error or item.kind == "other":
        reason = item.error or "not an image or video reclaim reads"
        status = 400
        if reason.startswith("MediaTooLarge"):
            status = 413
        elif reason.startswith("ItemTimeout"):
            status = 422
        raise HTTPException(status, f"cannot hash this file: {reason}")
    out = Hashed({}, {}, item.kind, item.sha256, data, pdq=pdq)
    for name, value, quality in item.signals:
        sig = signal_type(name)
        if not sig.offered_for(item.kind):
            continue  # e.g. an animated image's vPDQ: HMA matches photos on PDQ
        st = sig.exchange_name(item.kind)
        out.signals[st] = value
        out.quality[st] = quality
    if faces:
        out.faces = list(item.faces or [])
        if item.face_error:
            log.warning("face shields: the faces of an upload were not read: %s", item.face_error)
    return out


async def hash_url(
    url: str,
    platform: Platform,
    *,
    faces: bool = False,
    pdq_flavours: Sequence[str] = (SERVICE_PDQ_FLAVOUR,),
) -> Hashed:
    """Fetch ``url`` (in a thread: the download must not block the event loop) and hash it
    (``hash_bytes``)."""
    data = await asyncio.to_thread(fetch_url, url, platform)
    return await hash_bytes(data, platform, faces=faces, pdq_flavours=pdq_flavours)


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
    response: Response,
    types: str | None = None,
) -> dict[str, str]:
    """Hash an uploaded file (multipart, one file; HMA names the field ``photo``/``video``).

    Returns ``{signal_type: value}`` in HMA vocabulary, one entry per registered signal type
    offered for the media kind: ``sha256``, and ``pdq`` (python-threatexchange's, as HMA) +
    ``md5`` for photos, ``video_md5`` + ``vpdq`` for videos. When its faces match one of the
    tenant's face shields, the upload is queued for review (``X-Reclaim-Review-Item``); the
    body is the same. ``types=pdq,md5`` keeps only the signals named."""
    data, _hint, _ = await read_upload(request)
    hashed = await hash_bytes(data, platform, faces=await shields.wants_faces(platform, token))
    picked = pick_types(hashed, types, default_all=True)
    await shields.review_hits(platform, token, response, hashed)
    return picked


@router.get("/hash")
async def hash_get(
    url: str,
    platform: PlatformDep,
    token: Annotated[Token, Depends(require("hash"))],
    response: Response,
    content_type: str | None = None,
    types: str | None = None,
) -> dict[str, str]:
    """Fetch ``url`` (if the server allows URL fetching) and hash it (face shields as for an
    upload; ``types`` as for an upload; HMA's ``content_type`` hint is checked, the kind is
    read from the bytes)."""
    content_type_hint(content_type)
    hashed = await hash_url(url, platform, faces=await shields.wants_faces(platform, token))
    picked = pick_types(hashed, types, default_all=True)
    await shields.review_hits(platform, token, response, hashed)
    return picked


async def blurred_preview(h: Hashed, platform: Platform) -> bytes | None:
    """A small, heavily blurred JPEG for moderators (never the original), made in the decoding
    pool; None when it cannot be made (a preview is a convenience, the item is queued
    without one)."""
    if h.kind != "photo":
        return None
    try:
        return await platform.decoders.run(
            preview_in_worker, (h.data, _limits(platform)), platform.settings.hash_timeout_s
        )
    except MediaError:
        return None


def json_field(fields: dict[str, str], name: str) -> Any:
    raw = fields.get(name)
    if raw is None:
        return None
    from reclaim.platform.signals import SignalRejected, load_json

    try:
        return load_json(raw, name)  # bounded nesting: never a RecursionError
    except SignalRejected as e:
        raise HTTPException(400, str(e)) from e
