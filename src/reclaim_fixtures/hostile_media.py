"""Tiny hostile media files (a few hundred bytes each) that declare huge or many frames.

Shared by the bounded-decode tests, the service tests, the fuzz harness and
``bench/service_load.py``. Each generator writes the declarations only: the pixel data is a
stub (a 1x1 LZW stream, a 16x16 frame) because a decoder that honours the declared sizes
allocates the whole canvas before it finds the data short — that allocation is the attack.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence

from PIL import Image

# A valid LZW stream for one pixel (minimum code size 2: clear, index 0, end).
_GIF_ONE_PIXEL = b"\x02\x02\x44\x01\x00"


def gif(
    screen: tuple[int, int],
    frames: Sequence[tuple[int, int, int, int]],
    *,
    disposal: int = 0,
    delay_cs: int = 100,
) -> bytes:
    """A GIF89a with a logical screen of ``screen`` and one image descriptor per
    ``(x, y, width, height)`` of ``frames``, each followed by the same one-pixel LZW data.

    Pillow grows its canvas to the largest descriptor (not the logical screen), so a 1x1 screen
    with a 60000x60000 second frame is a 60 byte file that asks for 3.6 GB. ``delay_cs`` is
    each frame's delay in 1/100 s (100: one frame per second, so every frame is sampled)."""
    w, h = screen
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", w, h, 0x80, 0, 0))
    out += b"\x00\x00\x00\xff\xff\xff"  # global colour table: black, white
    for x, y, fw, fh in frames:
        out += b"\x21\xf9\x04" + bytes([(disposal & 7) << 2]) + struct.pack("<HBB", delay_cs, 0, 0)
        out += b"\x2c" + struct.pack("<HHHHB", x, y, fw, fh, 0) + _GIF_ONE_PIXEL
    out += b";"
    return bytes(out)


def gif_screen_bomb(side: int = 8000, n: int = 5) -> bytes:
    """The platform attack: a ``side``² logical screen and ``n`` one-pixel frames (~135 bytes).
    Each frame is within the per-frame cap, so only the work across frames is unbounded."""
    return gif((side, side), [(0, 0, 1, 1)] * n)


def gif_frame_bomb(side: int = 40000) -> bytes:
    """A 1x1 GIF whose second frame declares ``side``x``side``: the canvas Pillow grows to."""
    return gif((1, 1), [(0, 0, 1, 1), (0, 0, side, side)])


def gif_first_frame_dispose_bomb(side: int = 40000) -> bytes:
    """A 1x1 screen whose only frame declares ``side``² with disposal 2: Pillow fills the
    disposal area already inside ``Image.open``."""
    return gif((1, 1), [(0, 0, side, side)], disposal=2)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def apng(canvas: tuple[int, int], n: int) -> bytes:
    """A valid grey APNG of ``canvas`` with ``n`` frames: the first covers the canvas (zeros,
    which compress ~1000:1), the others are 1x1 patches. The file is small, the work is ``n``
    times the canvas: each frame is composed onto the whole canvas."""
    w, h = canvas
    out = bytearray(b"\x89PNG\r\n\x1a\n")
    out += _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
    out += _png_chunk(b"acTL", struct.pack(">II", n, 0))
    seq = 0

    def fctl(fw: int, fh: int) -> bytes:
        nonlocal seq
        body = struct.pack(">IIIIIHHBB", seq, fw, fh, 0, 0, 1, 1, 0, 0)
        seq += 1
        return _png_chunk(b"fcTL", body)

    out += fctl(w, h)
    z = zlib.compressobj(9)
    row = b"\x00" * (w + 1)
    parts = []
    rows_per = max(1, (1 << 20) // len(row))
    for y in range(0, h, rows_per):
        parts.append(z.compress(row * min(rows_per, h - y)))
    parts.append(z.flush())
    out += _png_chunk(b"IDAT", b"".join(parts))
    for i in range(1, n):
        out += fctl(1, 1)
        out += _png_chunk(b"fdAT", struct.pack(">I", seq) + zlib.compress(bytes([0, i % 256])))
        seq += 1
    out += _png_chunk(b"IEND", b"")
    return bytes(out)


def webp(canvas: tuple[int, int], n: int) -> bytes:
    """An animated WebP whose VP8X chunk declares a ``canvas`` (up to 16384²) holding ``n``
    16x16 frames. libwebp allocates the canvas when the file is opened."""
    w, h = canvas
    frames = [Image.new("RGB", (16, 16), (10, 10 * i % 255, 200)) for i in range(max(n, 2))]
    buf = io.BytesIO()
    frames[0].save(
        buf,
        "WEBP",
        save_all=True,
        append_images=frames[1:n] if n > 1 else frames[1:2],
        duration=1000,
        lossless=True,
        minimize_size=False,
        kmax=1,
    )
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"VP8X", "Pillow wrote a simple WebP"
    data[24:27] = (w - 1).to_bytes(3, "little")
    data[27:30] = (h - 1).to_bytes(3, "little")
    return bytes(data)


def tiff_pages(sizes: Sequence[tuple[int, int]]) -> bytes:
    """A multi-page little-endian TIFF, one 8-bit grey uncompressed page per ``sizes`` entry,
    each page holding a single byte of pixel data whatever size it declares."""
    out = bytearray(b"II*\x00" + struct.pack("<I", 8))
    n_tags = 9
    ifd_len = 2 + n_tags * 12 + 4
    for i, (w, h) in enumerate(sizes):
        ifd_at = len(out)
        data_at = ifd_at + ifd_len
        nxt = data_at + 2 if i + 1 < len(sizes) else 0
        tags = [
            (256, 4, 1, w),  # ImageWidth
            (257, 4, 1, h),  # ImageLength
            (258, 3, 1, 8),  # BitsPerSample
            (259, 3, 1, 1),  # Compression: none
            (262, 3, 1, 1),  # BlackIsZero
            (273, 4, 1, data_at),  # StripOffsets
            (277, 3, 1, 1),  # SamplesPerPixel
            (278, 4, 1, h),  # RowsPerStrip
            (279, 4, 1, 1),  # StripByteCounts
        ]
        out += struct.pack("<H", n_tags)
        for tag, typ, count, value in tags:
            if typ == 3:
                out += struct.pack("<HHIHH", tag, typ, count, value, 0)
            else:
                out += struct.pack("<HHII", tag, typ, count, value)
        out += struct.pack("<I", nxt)
        out += b"\x80\x00"  # the page's "pixels" (+ pad to an even offset)
    return bytes(out)


HOSTILE: dict[str, bytes] = {}
"""Name -> bytes of each hostile sample (built on first use by ``hostile_samples``)."""


def hostile_samples() -> dict[str, bytes]:
    """Every hostile sample by name, for fuzz seeds and the service bench."""
    if not HOSTILE:
        HOSTILE.update(
            gif_screen_bomb=gif_screen_bomb(),
            gif_frame_bomb=gif_frame_bomb(),
            gif_dispose_bomb=gif_first_frame_dispose_bomb(),
            gif_offset_bomb=gif((1, 1), [(0, 0, 1, 1), (65535, 65535, 65535, 65535)]),
            apng_many=apng((10000, 10000), 40),
            webp_canvas=webp((16384, 16384), 2),
            webp_many=webp((10000, 10000), 40),
            tiff_page_bomb=tiff_pages([(1, 1), (60000, 60000)]),
        )
    return dict(HOSTILE)
