"""Tell what bytes are from their first bytes, never from the file name."""

from __future__ import annotations

from typing import Literal

MediaKind = Literal["photo", "video", "other"]


def sniff(head: bytes) -> tuple[MediaKind, str]:
    """Return (kind, format) from a file's first 64 bytes.

    Formats: jpeg, png, gif, webp, tiff, bmp, heic, avif, mp4, mov, webm, mkv, unknown.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "photo", "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "photo", "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "photo", "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "photo", "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "photo", "tiff"
    if head[:2] == b"BM":
        return "photo", "bmp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (
            b"heic",
            b"heix",
            b"hevc",
            b"heim",
            b"heis",
            b"hevm",
            b"hevs",
            b"mif1",
            b"msf1",
        ):
            return "photo", "heic"
        if brand in (b"avif", b"avis"):
            return "photo", "avif"
        if brand == b"qt  ":
            return "video", "mov"
        return "video", "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "video", ("webm" if b"webm" in head[:64] else "mkv")
    return "other", "unknown"
