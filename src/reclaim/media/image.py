"""Safe still-image decoding with Pillow (+ pillow-heif for HEIC/AVIF)."""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterator

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from reclaim.errors import DecodeError, MediaTooLarge, UnsupportedMedia
from reclaim.media.bounds import check_declared, too_large
from reclaim.media.limits import MediaLimits

try:  # HEIC/AVIF support is optional at import time but a declared dependency
    import pillow_heif

    pillow_heif.register_heif_opener()
    # Pillow >= 11.2 reads AVIF itself; older pillow-heif releases also offered an AVIF opener.
    if hasattr(pillow_heif, "register_avif_opener"):
        pillow_heif.register_avif_opener()
except Exception:  # pragma: no cover - depends on the wheel
    pass

# We enforce our own cap before loading; Pillow's own check would raise its own error type.
Image.MAX_IMAGE_PIXELS = None

_ORIENT_TAG = 0x0112

#: What Pillow and its plugins raise on malformed input besides their own errors: fuzzing found
#: TypeError ("Missing dimensions", TIFF), SyntaxError ("unknown pixel mode"), RuntimeError
#: (AVIF), IndexError and KeyError (GIF and TIFF tables) from crafted headers. All of them mean
#: "this file is corrupt" (DecodeError); MemoryError means "too large" (MediaTooLarge).
DECODER_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    RuntimeError,
    ZeroDivisionError,
    OverflowError,
    struct.error,
)


def open_checked(data: bytes, limits: MediaLimits) -> Image.Image:
    """Open (without decoding pixels) and check the pixel cap.

    GIF frame descriptors and a WebP's canvas are checked before Pillow opens the file (see
    ``reclaim.media.bounds``: both allocate from declarations inside ``Image.open``).
    Raises UnsupportedMedia, MediaTooLarge, DecodeError.
    """
    check_declared(data, limits.max_pixels, limits.max_frames)
    # Truncated files must be reported, never silently padded: some libraries (WeasyPrint, on
    # import) switch this process-wide Pillow flag on, so it is reset before every decode.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as e:
        raise UnsupportedMedia("not an image format reclaim can read") from e
    except MemoryError as e:
        raise MediaTooLarge("image header too large to read in memory") from e
    except DECODER_ERRORS as e:
        raise DecodeError(f"corrupt image header: {e}") from e
    _check_size(im, limits, "image")
    return im


def _check_size(im: Image.Image, limits: MediaLimits, what: str) -> int:
    """The pixels of ``im``'s current frame as declared (nothing decoded yet); raises
    DecodeError for an empty size and MediaTooLarge over ``limits.max_pixels``."""
    w, h = im.size
    if w <= 0 or h <= 0:
        raise DecodeError(f"invalid {what} size {w}x{h}")
    if w * h > limits.max_pixels:
        raise too_large(what, w, h, limits.max_pixels)
    return w * h


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(_ORIENT_TAG, 1) or 1)
    except Exception:
        return 1


def load_rgb(
    data: bytes, limits: MediaLimits, max_side: int | None = None
) -> tuple[Image.Image, tuple[int, int], int]:
    """Decode a still image to RGB with EXIF orientation applied.

    ``max_side``: shrink so the longer side is at most this (aspect kept), the way Meta's
    reference PDQ hasher does (``Image.thumbnail``). JPEGs are decoded at a reduced DCT scale
    first when that still leaves at least the target size (much faster, same hash on Meta's set).
    Returns (image, (width, height) of the full oriented image, orientation tag).
    Raises DecodeError for corrupt or truncated data.
    """
    im = open_checked(data, limits)
    orient = _orientation(im)
    full_w, full_h = im.size
    if orient in (5, 6, 7, 8):
        full_w, full_h = full_h, full_w
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if max_side is not None and im.format == "JPEG":
                w, h = im.size
                s = min(max_side / w, max_side / h, 1.0)
                if s < 0.5:
                    im.draft("RGB", (max(1, round(w * s)), max(1, round(h * s))))
            im.load()
            if orient != 1:
                im = ImageOps.exif_transpose(im)
            if im.mode != "RGB":
                im = _to_rgb(im)
            if max_side is not None and max(im.size) > max_side:
                im.thumbnail((max_side, max_side), reducing_gap=None)
    except MemoryError as e:
        raise MediaTooLarge("image too large to decode in memory") from e
    except DECODER_ERRORS as e:
        raise DecodeError(f"corrupt or truncated image: {e}") from e
    return im, (full_w, full_h), orient


def _to_rgb(im: Image.Image) -> Image.Image:
    # Transparent pixels over white, like a browser shows them; 16-bit and float modes via L.
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        return im.convert("L").convert("RGB")
    return im.convert("RGB")


def iter_frames(
    data: bytes, limits: MediaLimits, max_side: int | None = None
) -> Iterator[tuple[int, float, Image.Image]]:
    """Frames of an animated image (GIF, animated WebP/PNG, multi-page TIFF, HEIF sequences) as
    (index, timestamp_s, RGB image).

    Frames are taken about ``limits.video_fps`` per second of animation time (the first always),
    at most ``limits.max_frames`` frames decoded. Each frame's declared size is checked before
    it is decoded (MediaTooLarge over ``limits.max_pixels``): GIF descriptors up front, as
    Pillow's ``seek`` already allocates from them; other formats after ``seek``, which only reads
    the declaration, and before ``copy`` decodes. Decoding stops, as at ``max_frames``, once the
    frames decoded would exceed ``limits.max_total_pixels`` (each frame costs its whole canvas).
    Raises DecodeError on corrupt data.
    """
    gif = check_declared(data, limits.max_pixels, limits.max_frames)
    im = open_checked(data, limits)
    t = 0.0
    next_t = 0.0
    step = 1.0 / limits.video_fps if limits.video_fps > 0 else 0.0
    spent = 0
    try:
        if gif is not None:
            n = len(gif.canvases) + (1 if gif.more else 0)
        else:
            n = int(getattr(im, "n_frames", 1) or 1)  # some formats walk the file to count
        for i in range(min(n, limits.max_frames)):
            if gif is not None:
                # Pillow's seek(i) decodes frame i-1 and fills frame i's disposal area at once.
                cw, ch = gif.canvases[i]
                cost = cw * ch
                if spent + cost > limits.max_total_pixels:
                    break
                im.seek(i)
            else:
                im.seek(i)
                cost = _check_size(im, limits, f"frame {i}")
                if spent + cost > limits.max_total_pixels:
                    break
            spent += cost
            dur = float(im.info.get("duration", 100) or 100) / 1000.0
            if t + 1e-9 >= next_t:
                frame = _to_rgb(im.copy())
                if max_side is not None and max(frame.size) > max_side:
                    frame.thumbnail((max_side, max_side), reducing_gap=None)
                yield i, t, frame
                next_t += step
                while next_t <= t:
                    next_t += step
            t += dur
            if t > limits.video_max_seconds:
                break
    except MemoryError as e:
        raise MediaTooLarge("animated image too large to decode in memory") from e
    except DECODER_ERRORS as e:
        raise DecodeError(f"corrupt animated image: {e}") from e


def is_animated(data: bytes, limits: MediaLimits) -> bool:
    """Whether the image has more than one frame (DecodeError when counting them fails)."""
    im = open_checked(data, limits)
    try:
        return bool(getattr(im, "is_animated", False))
    except MemoryError as e:
        raise MediaTooLarge("animated image too large to decode in memory") from e
    except DECODER_ERRORS as e:
        raise DecodeError(f"corrupt animated image: {e}") from e
