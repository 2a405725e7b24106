"""Explanation maps (issue 6): shapes, colour rendering, and that each map lights up the area it
is meant to find — on photos built here (textured scenes, pieces pasted with another JPEG
history) — within bounded time and memory on a 20-megapixel photo.
"""

from __future__ import annotations

import io
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from reclaim.detectors import maps as M


def jpeg(a: np.ndarray, q: int) -> np.ndarray:
    b = io.BytesIO()
    Image.fromarray(a).save(b, "JPEG", quality=q)
    b.seek(0)
    with Image.open(b) as im:
        return np.asarray(im.convert("RGB"))


def photo(seed: int, h: int = 384, w: int = 384, noise: float = 1.0) -> np.ndarray:
    """A textured, never-compressed scene (no structure on an 8-px period)."""
    rng = np.random.default_rng(seed)
    out = np.empty((h, w, 3), np.float32)
    for c in range(3):
        acc = np.full((h, w), rng.uniform(70, 180), np.float32)
        for cell, amp in ((37, 35.0), (11, 14.0), (3, 6.0)):
            sm = rng.normal(0, amp, (h // cell + 3, w // cell + 3)).astype(np.float32)
            big = cv2.resize(sm, (w + 3 * cell, h + 3 * cell), interpolation=cv2.INTER_LINEAR)
            acc += big[:h, :w]
        out[..., c] = acc
    res = np.asarray(cv2.GaussianBlur(out, (0, 0), 0.7)) + rng.normal(0, noise, (h, w, 1))
    return np.asarray(np.clip(res + 0.5, 0, 255).astype(np.uint8))


BOX = (slice(160, 288), slice(48, 176))  # the pasted piece (rows, columns)


def inside_outside(heat: np.ndarray, margin: int = 8) -> tuple[float, float]:
    ins = np.zeros(heat.shape, bool)
    ins[
        BOX[0].start + margin : BOX[0].stop - margin, BOX[1].start + margin : BOX[1].stop - margin
    ] = True
    out = np.ones(heat.shape, bool)
    out[
        BOX[0].start - margin : BOX[0].stop + margin, BOX[1].start - margin : BOX[1].stop + margin
    ] = False
    return float(heat[ins].mean()), float(heat[out].mean())


@pytest.mark.parametrize("fn", [M.ela_map, M.noise_map, M.jpeg_ghost_map, M.block_grid_map])
def test_maps_are_rgb_uint8_at_the_photo_size(fn) -> None:  # type: ignore[no-untyped-def]
    img = jpeg(photo(0, 200, 300), 85)
    out = fn(img)
    assert out.dtype == np.uint8 and out.shape == (200, 300, 3)
    grey = fn(img[..., 0])  # a grey photo works too
    assert grey.shape == (200, 300, 3)


@pytest.mark.parametrize("seed", [0, 1])
def test_ela_highlights_a_region_saved_at_another_quality(seed: int) -> None:
    sc = photo(seed)
    img = jpeg(sc, 60).copy()
    img[BOX] = jpeg(sc, 95)[BOX]  # a piece from a better-quality save, pasted after the last one
    a, b = inside_outside(M.ela_heat(img))
    assert a > 2.0 * b, (a, b)
    # and the unedited photo shows no such contrast there
    a0, b0 = inside_outside(M.ela_heat(jpeg(sc, 60)))
    assert a0 < 1.3 * b0


@pytest.mark.parametrize("seed", [0, 1])
def test_jpeg_ghost_finds_the_earlier_quality(seed: int) -> None:
    sc = photo(seed, noise=3.0)
    img = jpeg(sc, 95).copy()
    img[BOX] = jpeg(sc, 60)[BOX]  # aligned piece once saved at q60 ...
    img = jpeg(img, 90)  # ... in a photo saved at q90
    heat, q = M.ghost_heat(img)
    assert q == 60
    a, b = inside_outside(heat)
    assert a > 0.3 and a > 5 * b, (a, b)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_block_grid_marks_a_misaligned_jpeg_piece(seed: int) -> None:
    sc = photo(seed)
    padded = np.pad(sc, ((5, 8), (3, 8), (0, 0)), mode="edge")
    src = jpeg(padded, 40)[5 : 5 + 384, 3 : 3 + 384]  # its blocks start at x ≡ 5, y ≡ 3
    img = sc.copy()
    img[BOX] = src[BOX]
    img = jpeg(img, 92)
    heat, has_grid = M.block_grid_heat(img)
    assert has_grid
    a, b = inside_outside(heat, margin=16)
    assert a > 0.15 and a > 4 * b, (a, b)


def test_block_grid_sees_no_grid_in_a_never_compressed_photo() -> None:
    sc = photo(3)
    assert M.block_grid_heat(sc)[1] is False
    assert M.block_grid_heat(jpeg(sc, 90))[1] is True


def test_grid_profile_finds_the_phase() -> None:
    sc = photo(4)
    padded = np.pad(sc, ((2, 8), (6, 8), (0, 0)), mode="edge")
    g = cv2.cvtColor(jpeg(padded, 50)[2 : 2 + 384, 6 : 6 + 384], cv2.COLOR_RGB2GRAY)
    ph, pv = M.grid_profile(g)
    assert M.grid_peak(ph)[1] == (-6) % 8 and M.grid_peak(pv)[1] == (-2) % 8
    # with the offset of a crop, the phases are the photo's
    ph2, _ = M.grid_profile(g[:, 3:], origin=(3, 0))
    assert M.grid_peak(ph2)[1] == (-6) % 8


def test_blend_overlay_colours() -> None:
    img = photo(5, 64, 96)
    zero = M.blend_overlay(img, np.zeros((64, 96), np.float32))
    assert zero.shape == (64, 96, 3)
    assert np.array_equal(zero[..., 0], zero[..., 1]) and np.array_equal(zero[..., 1], zero[..., 2])
    full = M.blend_overlay(img, np.ones((8, 12), np.float32))  # any size: resized
    r, g, b = (full[..., c].astype(int) for c in range(3))
    assert (r > g + 60).all() and (r > b + 60).all()  # red
    half = M.blend_overlay(img, np.full((64, 96), 0.25, np.float32))
    assert (half[..., 0].astype(int) > half[..., 2].astype(int) + 20).all()  # warm tint
    nan = M.blend_overlay(img, np.full((64, 96), np.nan, np.float32))
    assert np.array_equal(nan, zero)
    with pytest.raises(TypeError):
        M.blend_overlay(img, np.zeros(5, np.float32))


def test_save_png_round_trip(tmp_path: Path) -> None:
    img = M.noise_map(photo(6, 80, 120))
    p = M.save_png(img, tmp_path / "noise.png")
    with Image.open(p) as im:
        assert im.format == "PNG"
        assert np.array_equal(np.asarray(im.convert("RGB")), img)


def test_flat_and_tiny_images() -> None:
    for img in (np.full((50, 70, 3), 128, np.uint8), np.zeros((5, 3, 3), np.uint8)):
        for fn in (M.ela_map, M.noise_map, M.jpeg_ghost_map, M.block_grid_map):
            out = fn(img)
            assert out.shape == img.shape and out.dtype == np.uint8


def test_20_megapixel_photo_within_time_and_memory() -> None:
    rng = np.random.default_rng(7)
    h, w = 3648, 5472
    small = rng.integers(0, 255, (h // 16, w // 16, 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    img = jpeg(img, 90)
    tracemalloc.start()
    try:
        for fn in (M.ela_map, M.noise_map, M.block_grid_map, M.jpeg_ghost_map):
            tracemalloc.reset_peak()
            t0 = time.perf_counter()
            out = fn(img)
            dt = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1]
            assert max(out.shape[:2]) <= M.MAX_SIDE and out.shape[2] == 3
            assert dt < 8.0, (fn.__name__, dt)
            assert peak < 200 * 2**20, (fn.__name__, peak)  # the photo itself is 60 MB
    finally:
        tracemalloc.stop()
