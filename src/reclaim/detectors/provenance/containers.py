"""The containers provenance is read from: JPEG header segments, PNG chunks (and their text),
WebP RIFF chunks. Each reader walks the structure without decoding pixels and never raises."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

_MAX_TEXT = 8 * 1024 * 1024  # decompressed text chunk cap


def jpeg_segments(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(marker, payload) of a JPEG's header segments, up to the start of scan. Never raises."""
    if not data.startswith(b"\xff\xd8"):
        return
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker in (0xD9, 0xDA):
            return
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if length < 2 or i + 2 + length > n:
            return
        yield marker, data[i + 4 : i + 2 + length]
        i += 2 + length


def png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of a PNG's chunks (CRC not checked). Never raises."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return
    i, n = 8, len(data)
    while i + 8 <= n:
        length, ctype = struct.unpack(">I4s", data[i : i + 8])
        if i + 12 + length > n:
            return
        yield ctype, data[i + 8 : i + 8 + length]
        if ctype == b"IEND":
            return
        i += 12 + length


def webp_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(fourcc, payload) of a WebP's RIFF chunks. Never raises."""
    if not (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return
    i, n = 12, len(data)
    while i + 8 <= n:
        fourcc, length = struct.unpack("<4sI", data[i : i + 8])
        if i + 8 + length > n:
            return
        yield fourcc, data[i + 8 : i + 8 + length]
        i += 8 + length + (length & 1)


def _inflate(b: bytes) -> bytes | None:
    d = zlib.decompressobj()
    try:
        out = d.decompress(b, _MAX_TEXT)
    except zlib.error:
        return None
    return None if d.unconsumed_tail else out


def itxt_text(rest: bytes) -> bytes | None:
    """The text of a PNG iTXt chunk from the bytes after its keyword's NUL: inflated when the
    chunk says it is compressed; None when the chunk is cut short or does not inflate."""
    if len(rest) < 2:
        return None
    compressed, rest = rest[0], rest[2:]
    _lang, _, rest = rest.partition(b"\0")
    _tkey, _, raw = rest.partition(b"\0")
    return _inflate(raw) if compressed else raw


_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")


def _text_chunk(ctype: bytes, body: bytes) -> tuple[str, str] | None:
    """(keyword, text) of a tEXt, zTXt or iTXt chunk; None for other chunks and unreadable ones."""
    if ctype not in _TEXT_CHUNKS:
        return None
    k, _, rest = body.partition(b"\0")
    if ctype == b"tEXt":
        return k.decode("latin-1"), rest.decode("latin-1")
    if ctype == b"zTXt":
        raw = _inflate(rest[1:])
        return None if raw is None else (k.decode("latin-1"), raw.decode("latin-1"))
    raw = itxt_text(rest)  # iTXt
    return None if raw is None else (k.decode("latin-1"), raw.decode("utf-8", "replace"))


def png_text(data: bytes) -> dict[str, str]:
    """PNG text chunks (tEXt, zTXt, iTXt) as keyword → text (first occurrence wins)."""
    out: dict[str, str] = {}
    for ctype, body in png_chunks(data):
        try:
            kv = _text_chunk(ctype, body)
        except (UnicodeDecodeError, IndexError):
            continue
        if kv is not None:
            out.setdefault(*kv)
    return out
