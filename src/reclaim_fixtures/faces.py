"""Fixture code for face search tests and ``bench/face_search.py``: manipulated variants of a
person's photos, the way fakes of her circulate.

This is test and benchmark fixture code, never a product feature: reclaim itself never edits
or composes images. The "swap" here only pastes a face region with feathered edges over
another photo's face, a crude stand-in for a face swap that keeps the face and nothing else.

Variants (each a PIL RGB image):
  crop      a window of 78–90% of the photo (cuts the face's edges)
  jpeg      Telegram-style re-encode: longer side ≤ 1280 px, JPEG quality 80 (done on save)
  mirror    left-right flip
  lowres    shrunk so the face is ~55–80 px wide (a thumbnail re-shared)
  occlusion a band over mouth and chin, a patch over one cheek, or a round sticker
  swap      the face (feathered ellipse) pasted over the face of a person in another scene
  inscene   the whole photo shrunk into a larger scene (collage, screenshot, repost)
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

VARIANTS = ("crop", "jpeg", "mirror", "lowres", "occlusion", "swap", "inscene")
TELEGRAM_MAX_SIDE = 1280
TELEGRAM_QUALITY = 80

Box = tuple[int, int, int, int]


def telegram_bytes(im: Image.Image, quality: int = TELEGRAM_QUALITY) -> bytes:
    """JPEG bytes as Telegram re-encodes photos: longer side ≤ 1280 px, quality ~80."""
    im = im.convert("RGB")
    if max(im.size) > TELEGRAM_MAX_SIDE:
        im = im.copy()
        im.thumbnail((TELEGRAM_MAX_SIDE, TELEGRAM_MAX_SIDE), Image.Resampling.LANCZOS)
    b = io.BytesIO()
    im.save(b, "JPEG", quality=quality)
    return b.getvalue()


def crop(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = im.size
    f = rng.uniform(0.78, 0.9)
    cw, ch = round(w * f), round(h * f)
    x = int(rng.integers(0, w - cw + 1))
    y = int(rng.integers(0, h - ch + 1))
    return im.crop((x, y, x + cw, y + ch))


def mirror(im: Image.Image) -> Image.Image:
    return im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def lowres(im: Image.Image, face: Box, rng: np.random.Generator) -> Image.Image:
    fw = max(1, face[2] - face[0])
    target = rng.uniform(55, 80)
    s = min(1.0, target / fw)
    size = (max(8, round(im.width * s)), max(8, round(im.height * s)))
    return im.resize(size, Image.Resampling.BILINEAR)


def occlusion(im: Image.Image, face: Box, rng: np.random.Generator) -> Image.Image:
    out = im.copy()
    d = ImageDraw.Draw(out)
    x0, t, r, b = face
    fw, fh = r - x0, b - t
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    kind = int(rng.integers(0, 3))
    if kind == 0:  # mask / hand over mouth and chin
        y0 = t + round(fh * rng.uniform(0.68, 0.75))
        d.rectangle((x0 - fw // 10, y0, r + fw // 10, b + fh // 10), fill=colour)
    elif kind == 1:  # a patch over one cheek
        if rng.random() < 0.5:
            d.rectangle((x0 - fw // 10, t + fh // 2, x0 + round(fw * 0.3), b), fill=colour)
        else:
            d.rectangle((r - round(fw * 0.3), t + fh // 2, r + fw // 10, b), fill=colour)
    else:  # a round sticker on the forehead or a cheek
        rad = round(fw * rng.uniform(0.14, 0.18))
        cx = x0 + round(fw * rng.choice([0.2, 0.5, 0.8]))
        cy = t + round(fh * (0.12 if cx == x0 + round(fw * 0.5) else 0.78))
        d.ellipse((cx - rad, cy - rad, cx + rad, cy + rad), fill=colour)
    return out


def _ellipse_mask(size: tuple[int, int], feather: float) -> Image.Image:
    w, h = size
    m = Image.new("L", (w, h), 0)
    ImageDraw.Draw(m).ellipse(
        (round(w * 0.08), round(h * 0.04), round(w * 0.92), round(h * 0.98)), fill=255
    )
    return m.filter(ImageFilter.GaussianBlur(max(1.0, feather)))


def swap(src: Image.Image, src_face: Box, scene: Image.Image, scene_face: Box) -> Image.Image:
    """Paste the source face (feathered ellipse around its box) over the scene's face."""
    x0, t, r, b = src_face
    fw, fh = r - x0, b - t
    # A little context above the brows and below the chin, as face swaps keep.
    region = (x0, max(0, t - fh // 8), r, min(src.height, b + fh // 20))
    patch = src.crop(region)
    sl, st, sr, sb = scene_face
    sw, sh = sr - sl, sb - st
    scale = sw / fw
    pw, ph = max(2, round(patch.width * scale)), max(2, round(patch.height * scale))
    patch = patch.resize((pw, ph), Image.Resampling.LANCZOS)
    x = sl + (sw - pw) // 2
    y = st - round((t - region[1]) * scale) + (sh - round(fh * scale)) // 2
    out = scene.copy()
    out.paste(patch, (x, y), _ellipse_mask((pw, ph), feather=0.07 * pw))
    return out


def inscene(im: Image.Image, scene: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The whole photo, shrunk, placed inside a bigger scene (≤ 1280 px)."""
    canvas = scene.copy()
    if max(canvas.size) > TELEGRAM_MAX_SIDE:
        canvas.thumbnail((TELEGRAM_MAX_SIDE, TELEGRAM_MAX_SIDE), Image.Resampling.LANCZOS)
    if max(canvas.size) < 900:
        s = 1100 / max(canvas.size)
        canvas = canvas.resize((round(canvas.width * s), round(canvas.height * s)))
    pw = round(min(canvas.size) * rng.uniform(0.22, 0.32))
    photo = im.resize((pw, round(im.height * pw / im.width)), Image.Resampling.LANCZOS)
    x = int(rng.integers(0, max(1, canvas.width - photo.width)))
    y = int(rng.integers(0, max(1, canvas.height - photo.height)))
    canvas.paste(photo, (x, y))
    return canvas


def scene_canvas(scene: Image.Image) -> Image.Image:
    """A scene photo at Telegram size (longer side ≤ 1280)."""
    s = scene.convert("RGB")
    if max(s.size) > TELEGRAM_MAX_SIDE:
        s = s.copy()
        s.thumbnail((TELEGRAM_MAX_SIDE, TELEGRAM_MAX_SIDE), Image.Resampling.LANCZOS)
    return s


def make_variant(
    kind: str,
    im: Image.Image,
    face: Box,
    rng: np.random.Generator,
    scene: Callable[[], tuple[Image.Image, Box]] | None = None,
) -> Image.Image:
    """One variant of ``im`` (an RGB photo whose main face is ``face``)."""
    if kind == "crop":
        return crop(im, rng)
    if kind == "jpeg":
        return im
    if kind == "mirror":
        return mirror(im)
    if kind == "lowres":
        return lowres(im, face, rng)
    if kind == "occlusion":
        return occlusion(im, face, rng)
    if kind in ("swap", "inscene"):
        if scene is None:
            raise ValueError(f"variant {kind!r} needs a scene")
        sc, sc_face = scene()
        if kind == "swap":
            return swap(im, face, scene_canvas(sc), sc_face)
        return inscene(im, sc, rng)
    raise ValueError(f"unknown variant {kind!r}")


def load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")
