"""Realistic Telegram Desktop JSON exports for tests, written into a given folder.

``write_telegram_export(root, layout)`` writes either a single-chat export (``layout="chat"``,
one of ``CHATS`` chosen by ``chat``) or a full-account export (``layout="account"``: every chat,
a left chat, a "Saved Messages" chat without a name, profile pictures, personal information) and
returns a ``TelegramExport`` that says what was written and, for every item a Telegram source
must report, what it must report (``expected``), hand-specified here from the export's contents.

Media: JPEG photos and a WebP sticker made with Pillow (each with different pixels), MP4 videos
encoded with PyAV (libx264, else mpeg4; if neither encoder works, bytes with an MP4 header and
``real_video`` False), a PDF, an Ogg voice message and a gzip ``.tgs`` sticker that are not images.

Edge cases: a channel post with an author and text as an entity list, a forwarded message with
text longer than 200 characters, service messages (one with the new group photo), an image and
a mislabelled JPEG sent as files, placeholders ("File not included", "File exceeds maximum
size", the latter with its thumbnail on disk), a photo listed but absent, media paths that leave
the export ("../", an absolute path, a symbolic link pointing outside), and a photo no message
refers to. Traversal targets are written next to ``root`` (``<root>_outside.jpg``), never inside.
"""

from __future__ import annotations

import calendar
import gzip
import hashlib
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from PIL import Image

NOT_INCLUDED = "(File not included. Change data exporting settings to download.)"
TOO_LARGE = "(File exceeds maximum size. Change data exporting settings to download.)"

Status = Literal["ok", "missing", "absent", "refused", "thumbnail", "unreferenced", "profile"]

_BASE_DATE = datetime(2024, 3, 5, 10, 11, 12)


@dataclass
class Expected:
    """One entry a Telegram source must yield for this export."""

    status: Status
    chat_name: str | None
    chat_type: str | None
    chat_id: int | None
    message_id: int | None = None
    member: str | None = None  # relative path the entry must carry (None: missing / refused)
    media_type: str | None = None
    mime_type: str | None = None
    sender: str | None = None
    sender_id: str | None = None
    date: str | None = None
    date_unixtime: int | None = None
    forwarded_from: str | None = None
    author: str | None = None
    text: str = ""
    sha256: str | None = None  # of the bytes written (ok / thumbnail / unreferenced / profile)
    missing_reason: str | None = None
    listed_path: str | None = None  # the raw path of a refused reference
    thumbnail_of: str | None = None
    left_chat: bool = False

    @property
    def match(self) -> tuple[Any, ...]:
        """What identifies this item among the source's entries."""
        if self.status in ("unreferenced", "profile"):
            return (self.status, self.member)
        return (self.chat_id, self.message_id, self.media_type)


@dataclass
class TelegramExport:
    root: Path
    result_json: Path
    layout: Literal["chat", "account"]
    data: dict[str, Any]
    expected: list[Expected]
    not_items: list[str]  # files written inside root that must not become entries
    outside: Path  # file outside root that refused paths point at
    real_video: bool
    symlink_made: bool
    files: dict[str, bytes] = field(default_factory=dict)  # every file written, by rel path


# --------------------------------------------------------------------------- media bytes


@lru_cache(maxsize=64)
def jpeg_bytes(seed: int, size: tuple[int, int] = (48, 32)) -> bytes:
    w, h = size
    im = Image.new("RGB", size)
    px = im.load()
    assert px is not None
    for y in range(h):
        for x in range(w):
            px[x, y] = ((x * 5 + seed * 37) % 256, (y * 7 + seed * 91) % 256, (seed * 53) % 256)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@lru_cache(maxsize=8)
def webp_bytes(seed: int) -> bytes:
    im = Image.new("RGBA", (64, 64), ((seed * 40) % 256, 120, 200, 255))
    for x in range(16, 48):
        for y in range(16, 48):
            im.putpixel((x, y), (255, (seed * 70) % 256, 0, 200))
    buf = io.BytesIO()
    im.save(buf, "WEBP")
    return buf.getvalue()


@lru_cache(maxsize=8)
def mp4_bytes(seed: int) -> tuple[bytes, bool]:
    """Two seconds of 64x64 video; (bytes, True) when PyAV could encode it."""
    try:
        import av
        import numpy as np

        for codec in ("libx264", "mpeg4"):
            try:
                buf = io.BytesIO()
                with av.open(buf, mode="w", format="mp4") as container:
                    stream = container.add_stream(codec, rate=10)
                    stream.width = 64
                    stream.height = 64
                    stream.pix_fmt = "yuv420p"
                    for i in range(20):
                        arr = np.zeros((64, 64, 3), dtype=np.uint8)
                        arr[:, :, 0] = (seed * 60) % 256
                        arr[:, (i * 3) % 64 :, 1] = 200
                        frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
                        for packet in stream.encode(frame):
                            container.mux(packet)
                    for packet in stream.encode():
                        container.mux(packet)
                data = buf.getvalue()
                if data[4:8] == b"ftyp":
                    return data, True
            except Exception:
                continue
    except ImportError:
        pass
    return b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes([seed]) * 512, False


PDF_BYTES = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
OGG_BYTES = b"OggS\x00\x02" + b"\x00" * 58
TGS_BYTES = gzip.compress(b'{"v":"5.5.2","fr":60,"ip":0,"op":180,"w":512,"h":512,"layers":[]}')


# --------------------------------------------------------------------------- chat builders


@dataclass
class _Ctx:
    root: Path
    prefix: str  # "" (single chat) or "chats/chat_00N/" (account export)
    outside: Path
    files: dict[str, bytes]
    expected: list[Expected]
    not_items: list[str]
    real_video: bool = True
    symlink_made: bool = False

    def write(self, rel: str, data: bytes) -> str:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        self.files[rel] = data
        return rel

    def video(self, rel: str, seed: int) -> str:
        data, real = mp4_bytes(seed)
        self.real_video = self.real_video and real
        return self.write(rel, data)


def _dates(minutes: int) -> tuple[str, str, int, str]:
    """(ISO date, date_unixtime text, unix int, file-name stamp) for BASE + minutes."""
    d = _BASE_DATE + timedelta(minutes=minutes)
    unix = calendar.timegm(d.timetuple())
    return d.isoformat(), str(unix), unix, d.strftime("%d-%m-%Y_%H-%M-%S")


def _msg(mid: int, sender: str, sender_id: str, text: Any = "", **extra: Any) -> dict[str, Any]:
    iso, unix_text, _, _ = _dates(mid)
    m: dict[str, Any] = {
        "id": mid,
        "type": "message",
        "date": iso,
        "date_unixtime": unix_text,
        "from": sender,
        "from_id": sender_id,
    }
    m.update(extra)
    m["text"] = text
    if isinstance(text, list):
        m["text_entities"] = [
            t if isinstance(t, dict) else {"type": "plain", "text": t} for t in text
        ]
    else:
        m["text_entities"] = [{"type": "plain", "text": text}] if text else []
    return m


def _service(mid: int, actor: str, actor_id: str, action: str, **extra: Any) -> dict[str, Any]:
    iso, unix_text, _, _ = _dates(mid)
    m: dict[str, Any] = {
        "id": mid,
        "type": "service",
        "date": iso,
        "date_unixtime": unix_text,
        "actor": actor,
        "actor_id": actor_id,
        "action": action,
    }
    m.update(extra)
    m["text"] = ""
    m["text_entities"] = []
    return m


def _exp(
    chat: tuple[str | None, str, int],
    msg: dict[str, Any],
    status: Status,
    media_type: str,
    **kw: Any,
) -> Expected:
    name, ctype, cid = chat
    service = msg["type"] == "service"
    text = msg.get("text", "")
    if isinstance(text, list):
        text = "".join(t if isinstance(t, str) else t["text"] for t in text)
    return Expected(
        status=status,
        chat_name=name,
        chat_type=ctype,
        chat_id=cid,
        message_id=msg["id"],
        media_type=media_type,
        sender=msg["actor"] if service else msg["from"],
        sender_id=msg["actor_id"] if service else msg["from_id"],
        date=msg["date"],
        date_unixtime=int(msg["date_unixtime"]),
        forwarded_from=msg.get("forwarded_from"),
        author=msg.get("author"),
        text=text[:200],
        **kw,
    )


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


CHANNEL = ("Leak Channel", "public_channel", 1001)
GROUP = ("Family Group", "private_supergroup", 1002)
PERSONAL = ("Alice", "personal_chat", 1003)
LEFT = ("Old Neighbours", "private_group", 1004)
SAVED = (None, "saved_messages", 999)


def _channel(c: _Ctx) -> list[dict[str, Any]]:
    p, chat, msgs = c.prefix, CHANNEL, []
    sender, sid = "Leak Channel", "channel1001"
    msgs.append(_service(10, sender, sid, "create_channel", title="Leak Channel"))

    _, _, _, stamp = _dates(11)
    photo = c.write(f"{p}photos/photo_1@{stamp}.jpg", jpeg_bytes(1))
    text = ["New ", {"type": "bold", "text": "drop"}, " see ", {"type": "link", "text": "x.org"}]
    m = _msg(11, sender, sid, text, author="Admin Bob", photo=photo, photo_file_size=2000)
    m.update(width=48, height=32)
    msgs.append(m)
    c.expected.append(_exp(chat, m, "ok", "photo", member=photo, sha256=_sha(c.files[photo])))

    clip = c.video(f"{p}video_files/clip.mp4", 1)
    thumb = c.write(f"{p}video_files/clip.mp4_thumb.jpg", jpeg_bytes(101))
    c.not_items.append(thumb)
    m = _msg(12, sender, sid, "clip", file=clip, thumbnail=thumb, media_type="video_file")
    m.update(mime_type="video/mp4", duration_seconds=2, width=64, height=64)
    msgs.append(m)
    c.expected.append(
        _exp(
            chat,
            m,
            "ok",
            "video_file",
            member=clip,
            mime_type="video/mp4",
            sha256=_sha(c.files[clip]),
        )
    )

    _, _, _, stamp = _dates(13)
    photo = c.write(f"{p}photos/photo_2@{stamp}.jpg", jpeg_bytes(2))
    long_text = "Forwarded: " + "lorem ipsum dolor sit amet " * 12
    m = _msg(13, sender, sid, long_text, forwarded_from="Other Channel", photo=photo)
    msgs.append(m)
    c.expected.append(_exp(chat, m, "ok", "photo", member=photo, sha256=_sha(c.files[photo])))

    m = _msg(14, sender, sid, "excluded", photo=NOT_INCLUDED, width=1280, height=720)
    msgs.append(m)
    c.expected.append(_exp(chat, m, "missing", "photo", missing_reason="not_included"))

    big_thumb = c.write(f"{p}video_files/big_video.mp4_thumb.jpg", jpeg_bytes(102))
    m = _msg(15, sender, sid, "", file=TOO_LARGE, thumbnail=big_thumb, media_type="video_file")
    m.update(mime_type="video/mp4", duration_seconds=3600)
    msgs.append(m)
    c.expected.append(
        _exp(chat, m, "missing", "video_file", mime_type="video/mp4", missing_reason="too_large")
    )
    c.expected.append(
        _exp(
            chat,
            m,
            "thumbnail",
            "thumbnail",
            member=big_thumb,
            sha256=_sha(c.files[big_thumb]),
            thumbnail_of="video_file",
        )
    )

    gif = c.video(f"{p}animations/giphy.mp4", 2)
    gif_thumb = c.write(f"{p}animations/giphy.mp4_thumb.jpg", jpeg_bytes(103))
    c.not_items.append(gif_thumb)
    m = _msg(16, sender, sid, "", file=gif, thumbnail=gif_thumb, media_type="animation")
    m.update(mime_type="video/mp4", width=64, height=64)
    msgs.append(m)
    c.expected.append(
        _exp(
            chat, m, "ok", "animation", member=gif, mime_type="video/mp4", sha256=_sha(c.files[gif])
        )
    )
    return msgs


def _group(c: _Ctx) -> list[dict[str, Any]]:
    p, chat, msgs = c.prefix, GROUP, []
    msgs.append(
        _service(
            1, "Carol", "user2002", "create_group", title="Family Group", members=["Carol", "Dave"]
        )
    )

    _, _, _, stamp = _dates(2)
    photo = c.write(f"{p}photos/photo_3@{stamp}.jpg", jpeg_bytes(3))
    m = _service(2, "Carol", "user2002", "edit_group_photo", photo=photo, width=48, height=32)
    msgs.append(m)
    c.expected.append(_exp(chat, m, "ok", "photo", member=photo, sha256=_sha(c.files[photo])))

    doc = c.write(f"{p}files/IMG_0001.JPG", jpeg_bytes(4, (40, 40)))
    m = _msg(
        3,
        "Dave",
        "user2003",
        "original",
        file=doc,
        file_name="IMG_0001.JPG",
        mime_type="image/jpeg",
    )
    msgs.append(m)
    c.expected.append(
        _exp(
            chat, m, "ok", "document", member=doc, mime_type="image/jpeg", sha256=_sha(c.files[doc])
        )
    )

    pdf = c.write(f"{p}files/report.pdf", PDF_BYTES)
    c.not_items.append(pdf)
    msgs.append(
        _msg(
            4, "Dave", "user2003", "", file=pdf, file_name="report.pdf", mime_type="application/pdf"
        )
    )

    _, _, _, stamp = _dates(5)
    voice = c.write(f"{p}voice_messages/audio_1@{stamp}.ogg", OGG_BYTES)
    c.not_items.append(voice)
    msgs.append(
        _msg(
            5,
            "Carol",
            "user2002",
            "",
            file=voice,
            media_type="voice_message",
            mime_type="audio/ogg",
            duration_seconds=4,
        )
    )

    sticker = c.write(f"{p}stickers/sticker.webp", webp_bytes(1))
    st_thumb = c.write(f"{p}stickers/sticker.webp_thumb.jpg", jpeg_bytes(104))
    c.not_items.append(st_thumb)
    m = _msg(6, "Dave", "user2003", "", file=sticker, thumbnail=st_thumb, media_type="sticker")
    m.update(sticker_emoji="😀", mime_type="image/webp", width=64, height=64)
    msgs.append(m)
    c.expected.append(
        _exp(
            chat,
            m,
            "ok",
            "sticker",
            member=sticker,
            mime_type="image/webp",
            sha256=_sha(c.files[sticker]),
        )
    )

    tgs = c.write(f"{p}stickers/AnimatedSticker.tgs", TGS_BYTES)
    c.not_items.append(tgs)
    msgs.append(
        _msg(
            7,
            "Dave",
            "user2003",
            "",
            file=tgs,
            media_type="sticker",
            mime_type="application/x-tgsticker",
            sticker_emoji="🎉",
        )
    )

    _, _, _, stamp = _dates(8)
    absent = f"{p}photos/photo_4@{stamp}.jpg"  # listed, never written
    m = _msg(8, "Carol", "user2002", "gone", photo=absent, width=48, height=32)
    msgs.append(m)
    c.expected.append(_exp(chat, m, "absent", "photo", member=absent))

    up = f"../{c.outside.name}"
    m = _msg(9, "Mallory", "user6666", "", photo=up)
    msgs.append(m)
    c.expected.append(_exp(chat, m, "refused", "photo", listed_path=up))

    m = _msg(10, "Mallory", "user6666", "", file=str(c.outside), mime_type="image/jpeg")
    msgs.append(m)
    c.expected.append(
        _exp(chat, m, "refused", "document", mime_type="image/jpeg", listed_path=str(c.outside))
    )

    link = f"{p}photos/photo_5@{stamp}.jpg"
    try:
        (c.root / link).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(c.outside, c.root / link)
        c.symlink_made = True
    except OSError:
        c.symlink_made = False
    if c.symlink_made:
        m = _msg(11, "Mallory", "user6666", "", photo=link)
        msgs.append(m)
        c.expected.append(_exp(chat, m, "refused", "photo", listed_path=link))

    scan = c.write(f"{p}files/scan.bin", jpeg_bytes(5))
    m = _msg(
        12,
        "Dave",
        "user2003",
        "scan",
        file=scan,
        file_name="scan.bin",
        mime_type="application/octet-stream",
    )
    msgs.append(m)
    c.expected.append(
        _exp(
            chat,
            m,
            "ok",
            "document",
            member=scan,
            mime_type="application/octet-stream",
            sha256=_sha(c.files[scan]),
        )
    )
    return msgs


def _personal(c: _Ctx) -> list[dict[str, Any]]:
    p, chat, msgs = c.prefix, PERSONAL, []
    msgs.append(_msg(100, "Alice", "user1003", "hi"))

    _, _, _, stamp = _dates(101)
    rnd = c.video(f"{p}round_video_messages/file_0@{stamp}.mp4", 3)
    rnd_thumb = c.write(f"{p}round_video_messages/file_0@{stamp}.mp4_thumb.jpg", jpeg_bytes(105))
    c.not_items.append(rnd_thumb)
    m = _msg(
        101, "Alice", "user1003", "", file=rnd, thumbnail=rnd_thumb, media_type="video_message"
    )
    m.update(mime_type="video/mp4", duration_seconds=2)
    msgs.append(m)
    c.expected.append(
        _exp(
            chat,
            m,
            "ok",
            "video_message",
            member=rnd,
            mime_type="video/mp4",
            sha256=_sha(c.files[rnd]),
        )
    )

    _, _, _, stamp = _dates(102)
    photo = c.write(f"{p}photos/photo_6@{stamp}.jpg", jpeg_bytes(6))
    m = _msg(102, "Me", "user999", "look at this", photo=photo, width=48, height=32)
    msgs.append(m)
    c.expected.append(_exp(chat, m, "ok", "photo", member=photo, sha256=_sha(c.files[photo])))

    vid = c.video(f"{p}files/VID_20240305.mp4", 4)
    m = _msg(
        103, "Alice", "user1003", "", file=vid, file_name="VID_20240305.mp4", mime_type="video/mp4"
    )
    msgs.append(m)
    c.expected.append(
        _exp(
            chat, m, "ok", "document", member=vid, mime_type="video/mp4", sha256=_sha(c.files[vid])
        )
    )

    stray = c.write(f"{p}photos/photo_7@{stamp}.jpg", jpeg_bytes(7))
    c.expected.append(Expected("unreferenced", *chat, member=stray, sha256=_sha(c.files[stray])))
    c.not_items.append(c.write(f"{p}photos/notes.txt", b"not an image\n"))
    return msgs


def _left(c: _Ctx) -> list[dict[str, Any]]:
    p, chat = c.prefix, LEFT
    _, _, _, stamp = _dates(50)
    photo = c.write(f"{p}photos/photo_1@{stamp}.jpg", jpeg_bytes(8))
    m = _msg(50, "Erin", "user2050", "bye", photo=photo)
    c.expected.append(
        _exp(chat, m, "ok", "photo", member=photo, sha256=_sha(c.files[photo]), left_chat=True)
    )
    return [m]


def _saved(c: _Ctx) -> list[dict[str, Any]]:
    p, chat = c.prefix, SAVED
    _, _, _, stamp = _dates(60)
    photo = c.write(f"{p}photos/photo_1@{stamp}.jpg", jpeg_bytes(9))
    m = _msg(60, "Me", "user999", "", photo=photo)
    c.expected.append(_exp(chat, m, "ok", "photo", member=photo, sha256=_sha(c.files[photo])))
    return [m]


CHATS: list[tuple[tuple[str | None, str, int], Callable[[_Ctx], list[dict[str, Any]]]]] = [
    (CHANNEL, _channel),
    (GROUP, _group),
    (PERSONAL, _personal),
]


def _chat_obj(chat: tuple[str | None, str, int], messages: list[dict[str, Any]]) -> dict[str, Any]:
    name, ctype, cid = chat
    obj: dict[str, Any] = {}
    if name is not None:
        obj["name"] = name
    obj.update(type=ctype, id=cid, messages=messages)
    return obj


def write_telegram_export(
    root: Path, layout: Literal["chat", "account"] = "account", chat: int = 1
) -> TelegramExport:
    """Write an export into ``root`` (created if needed) and say what was written.

    ``chat`` picks the chat of a single-chat export (index into ``CHATS``). A file that refused
    paths point at is written next to ``root`` as ``<root name>_outside.jpg``.
    """
    root.mkdir(parents=True, exist_ok=True)
    outside = root.parent / f"{root.name}_outside.jpg"
    outside.write_bytes(jpeg_bytes(66))
    ctx = _Ctx(root, "", outside, {}, [], [])

    if layout == "chat":
        spec, build = CHATS[chat]
        data = _chat_obj(spec, build(ctx))
    else:
        chats = []
        plan = [*CHATS, (SAVED, _saved)]
        for i, (spec, build) in enumerate(plan, start=1):
            ctx.prefix = f"chats/chat_{i:03d}/"
            chats.append(_chat_obj(spec, build(ctx)))
        ctx.prefix = f"chats/chat_{len(plan) + 1:03d}/"
        left = [_chat_obj(LEFT, _left(ctx))]
        ctx.prefix = ""
        iso, unix_text, _, stamp = _dates(-600)
        pic = ctx.write(f"profile_pictures/photo_1@{stamp}.jpg", jpeg_bytes(10))
        ctx.expected.append(
            Expected(
                "profile",
                None,
                None,
                None,
                member=pic,
                media_type="profile_picture",
                sha256=_sha(ctx.files[pic]),
            )
        )
        data = {
            "about": "Here is the data you requested. Remember: Telegram is ad free, "
            "it doesn't use your data for ad targeting and doesn't sell it to others.",
            "personal_information": {
                "about": "This page shows your personal information.",
                "user_id": 999,
                "first_name": "Pat",
                "last_name": "Example",
                "phone_number": "+00 000 000 0000",
                "username": "@pat_example",
                "bio": "",
            },
            "profile_pictures": [{"date": iso, "date_unixtime": unix_text, "photo": pic}],
            "contacts": {
                "about": "This is your contact list.",
                "list": [
                    {
                        "first_name": "Alice",
                        "last_name": "",
                        "phone_number": "+00 111",
                        "date": iso,
                        "date_unixtime": unix_text,
                    }
                ],
            },
            "frequent_contacts": {
                "about": "This is your list of frequent contacts.",
                "list": [
                    {
                        "id": 1003,
                        "category": "people",
                        "type": "user",
                        "name": "Alice",
                        "rating": 1.5,
                    }
                ],
            },
            "chats": {"about": "This page lists all chats from this export.", "list": chats},
            "left_chats": {
                "about": "This page lists all supergroups and channels you left.",
                "list": left,
            },
        }

    rj = root / "result.json"
    rj.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return TelegramExport(
        root=root,
        result_json=rj,
        layout=layout,
        data=data,
        expected=ctx.expected,
        not_items=ctx.not_items,
        outside=outside,
        real_video=ctx.real_video,
        symlink_made=ctx.symlink_made,
        files=ctx.files,
    )
