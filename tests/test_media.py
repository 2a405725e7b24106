"""Safe decoding: every format we promise, orientation, and every kind of bad input."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from reclaim.analysis import analyze_bytes
from reclaim.errors import DecodeError, MediaTooLarge, UnsupportedMedia
from reclaim.hashes import PdqHash, PDQSignal
from reclaim.media import Media, MediaLimits
from reclaim.media.image import iter_frames

from .conftest import jpeg_bytes, photo_like


def _encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def _pdq(data: bytes) -> PdqHash:
    return PdqHash.from_hex(PDQSignal().compute(Media(data)).value)


@pytest.mark.parametrize(
    ("fmt", "kw", "expected"),
    [
        ("JPEG", {"quality": 92}, "jpeg"),
        ("PNG", {}, "png"),
        ("WEBP", {"quality": 92}, "webp"),
        ("GIF", {}, "gif"),
        ("TIFF", {}, "tiff"),
        ("BMP", {}, "bmp"),
        ("HEIF", {"quality": 90}, "heic"),
        ("AVIF", {"quality": 90}, "avif"),
    ],
)
def test_every_promised_format_decodes_and_hashes_alike(
    fmt: str, kw: dict[str, object], expected: str
) -> None:
    im = photo_like(1)
    ref = _pdq(_encode(im, "PNG"))
    data = _encode(im, fmt, **kw)
    media = Media(data)
    assert media.format == expected
    assert media.kind == "photo"
    media.image()
    got = _pdq(data)
    # Lossy codecs and GIF's 256-colour palette move a few bits, never far.
    assert got - ref <= (40 if fmt == "GIF" else 20), fmt
    assert media.info["width"] == 640 and media.info["height"] == 480


def test_exif_orientation_is_applied() -> None:
    im = photo_like(2, (400, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise
    data = _encode(im, "JPEG", quality=95, exif=exif.tobytes())
    media = Media(data)
    shown = media.image()
    assert shown.size == (200, 400)
    assert media.info["orientation"] == 6
    upright = _pdq(jpeg_bytes(im.transpose(Image.Transpose.ROTATE_270), quality=95))
    assert _pdq(data) - upright <= 8


def test_animated_gif_frames() -> None:
    frames = [photo_like(i, (120, 90)) for i in range(6)]
    b = io.BytesIO()
    frames[0].save(b, "GIF", save_all=True, append_images=frames[1:], duration=500, loop=0)
    got = list(iter_frames(b.getvalue(), MediaLimits(video_fps=1.0)))
    # 6 frames of 0.5 s = 3 s of animation: one frame per second → t = 0, 1, 2.
    assert [round(t, 3) for _, t, _ in got] == [0.0, 1.0, 2.0]
    assert [i for i, _, _ in got] == [0, 2, 4]


def test_truncated_jpeg_is_a_decode_error() -> None:
    data = jpeg_bytes(photo_like(3))
    with pytest.raises(DecodeError):
        Media(data[: len(data) // 2]).image()
    item = analyze_bytes(data[: len(data) // 2], MediaLimits())
    assert item.error is not None and "truncated" in item.error.lower()
    # The bytes are still identified: evidence keeps its SHA-256 even when pixels are lost.
    assert len(item.sha256) == 64 and item.signals[0][0] == "sha256"


def test_truncated_stays_an_error_after_a_library_flips_pillows_flag() -> None:
    from PIL import ImageFile

    data = jpeg_bytes(photo_like(4))
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # what `import weasyprint` does
    try:
        with pytest.raises(DecodeError):
            Media(data[: len(data) // 2]).image()
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def test_corrupt_and_unknown_bytes() -> None:
    garbage = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    with pytest.raises(UnsupportedMedia):
        Media(garbage).image()
    bad_png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    with pytest.raises((DecodeError, UnsupportedMedia)):
        Media(bad_png).image()
    assert analyze_bytes(b"", MediaLimits()).error is not None


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares huge dimensions: a decompression bomb's calling card."""

    def chunk(tag: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + tag
            + payload
            + struct.pack(">I", zlib.crc32(tag + payload) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_before_decoding() -> None:
    data = _png_header_only(60_000, 60_000)
    with pytest.raises(MediaTooLarge, match="decompression bomb"):
        Media(data).image()
    item = analyze_bytes(data, MediaLimits())
    assert item.error is not None and "MediaTooLarge" in item.error


def test_file_size_cap() -> None:
    with pytest.raises(MediaTooLarge):
        Media(b"\xff\xd8\xff" + b"\x00" * 2000, MediaLimits(max_bytes=1000))


def test_twenty_megapixel_image_within_default_caps() -> None:
    im = Image.new("RGB", (5472, 3648), (40, 90, 160))
    data = jpeg_bytes(im, quality=80)
    v = PDQSignal().compute(Media(data))
    assert len(v.value) == 64


def test_an_image_that_fits_is_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import reclaim.media as M

    calls: list[int | None] = []
    real = M.load_rgb

    def counting(data: bytes, limits: MediaLimits, max_side: int | None = None) -> object:
        calls.append(max_side)
        return real(data, limits, max_side)

    monkeypatch.setattr(M, "load_rgb", counting)
    small = Media(jpeg_bytes(photo_like(1, (300, 200))))
    a = small.image(512)
    assert small.image(2048) is a and small.image() is a and calls == [512]
    assert a.size == (300, 200)
    # Larger than a view asked for: each size is its own decode, and only the whole one is reused.
    big = Media(jpeg_bytes(photo_like(2, (900, 600))))
    b = big.image(512)
    assert b.size == (512, 341)
    whole = big.image(2048)
    assert whole.size == (900, 600) and big.image() is whole and big.image(1000) is whole
    assert calls == [512, 512, 2048]
    assert np.array_equal(np.asarray(whole), np.asarray(Media(big.data).image()))
