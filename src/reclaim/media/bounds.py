"""Declared sizes read from a file's own headers, before a decoder is handed the bytes.

Pillow checks nothing once ``Image.MAX_IMAGE_PIXELS`` is off (reclaim turns it off to raise its
own error), and two formats allocate from declarations that ``Image.open`` has not shown yet:

- **GIF**: Pillow grows its canvas to the largest frame descriptor seen (``GifImagePlugin._seek``:
  ``size = max(x1, size[0]), max(y1, size[1])``), not to the logical screen; a frame with
  disposal 2 has its area filled inside ``_seek``, and ``seek(i)`` first decodes frame ``i-1``.
  Frame 0 is read by ``Image.open`` itself. So every descriptor is read here, before Pillow sees
  the file: a 43-byte GIF declaring one 40000x40000 frame with disposal 2 made ``Image.open``
  allocate 1.6 GB (measured, Pillow 13).
- **WebP**: ``Image.open`` creates libwebp's animation decoder, which allocates two canvases of
  the VP8X size (up to 16384², 2 GB) before ``im.size`` can be checked.

Other formats (APNG, TIFF pages, HEIF/AVIF images, MPO) declare each frame's size when Pillow
seeks to it without decoding; ``reclaim.media.image.iter_frames`` checks ``im.size`` after each
``seek`` and before the frame is loaded.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from reclaim.errors import MediaTooLarge


@dataclass(frozen=True)
class GifFrames:
    """What a GIF declares: the canvas Pillow will hold after each frame (in order), and
    whether more frames follow the ones read."""

    canvases: list[tuple[int, int]]
    more: bool


def _skip_blocks(data: bytes, pos: int) -> int:
    """Position after a chain of GIF data sub-blocks (length byte, bytes; 0 ends)."""
    n = len(data)
    while pos < n:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            break
    return pos


def gif_frames(data: bytes, max_frames: int) -> GifFrames:
    """The canvas size after each of the first ``max_frames`` frames, as Pillow grows it.

    Mirrors GifImagePlugin: bytes that start neither an extension (``!``) nor an image (``,``)
    are skipped one at a time; ``;`` or the end of the data ends the frames. Truncated data ends
    the walk quietly (Pillow reports the damage when it decodes)."""
    n = len(data)
    if n < 13:
        return GifFrames([], False)
    w, h, flags = struct.unpack_from("<HHB", data, 6)
    pos = 13
    if flags & 0x80:
        pos += 3 << ((flags & 7) + 1)
    canvases: list[tuple[int, int]] = []
    while pos < n:
        b = data[pos]
        pos += 1
        if b == 0x3B:  # ';' trailer
            break
        if b == 0x21:  # '!' extension: label, then sub-blocks
            pos = _skip_blocks(data, pos + 1)
        elif b == 0x2C:  # ',' image descriptor
            if pos + 9 > n:
                break
            x, y, fw, fh, fflags = struct.unpack_from("<HHHHB", data, pos)
            if len(canvases) == max_frames:
                return GifFrames(canvases, True)
            w, h = max(w, x + fw), max(h, y + fh)
            canvases.append((w, h))
            pos += 9
            if fflags & 0x80:
                pos += 3 << ((fflags & 7) + 1)
            pos = _skip_blocks(data, pos + 1)  # LZW minimum code size, then the data
    return GifFrames(canvases, False)


def webp_canvas(data: bytes) -> tuple[int, int] | None:
    """The canvas a WebP declares (VP8X, or a simple VP8/VP8L frame); None when unreadable."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    kind = data[12:16]
    if kind == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if kind == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack_from("<HH", data, 26)
        return w & 0x3FFF, h & 0x3FFF
    return None


def too_large(what: str, w: int, h: int, max_pixels: int) -> MediaTooLarge:
    return MediaTooLarge(
        f"{what} of {w}x{h} = {w * h / 1e6:.0f} MP exceeds the {max_pixels / 1e6:.0f} MP "
        "cap (possible decompression bomb)"
    )


def check_declared(data: bytes, max_pixels: int, max_frames: int) -> GifFrames | None:
    """Refuse a GIF or WebP whose declarations exceed ``max_pixels`` before Pillow opens it.

    Returns the GIF's frame canvases (for the caller's budget across frames), else None.
    Raises MediaTooLarge naming the frame."""
    if data[:6] in (b"GIF87a", b"GIF89a"):
        frames = gif_frames(data, max_frames)
        for i, (w, h) in enumerate(frames.canvases):
            if w * h > max_pixels:
                raise too_large(f"GIF frame {i} grows the canvas to an image", w, h, max_pixels)
        return frames
    size = webp_canvas(data[:30])
    if size is not None and size[0] * size[1] > max_pixels:
        raise too_large("WebP canvas", size[0], size[1], max_pixels)
    return None
