"""Explanation maps: pictures a person can look at to see *where* a photo looks edited.

Every map is an RGB ``uint8`` image: a **greyed, slightly faded copy of the photo** with a
**heat overlay** on top. Colour meaning, the same for every map:

* no colour (plain grey photo): nothing unusual measured there;
* yellow → orange → red: a stronger and stronger measurement (what is measured depends on the
  map, see each function); the more opaque and red, the stronger.

A map is never proof: edges, fine texture (hair, fabric) and very dark or very bright areas
respond on most maps in real photos too. What counts is an area (a face, an object) that stands
out from *similar* areas around it.

Bounded time and memory for images up to 20 MP and more: the JPEG and noise measurements need
the photo's own pixels (downscaling first would erase the JPEG grid and the sensor noise), so
they run **at native resolution in horizontal strips** (512 rows, aligned to the 16-px JPEG
grid) and each strip is reduced at once to the output grid; the output (and the greyed photo
under the overlay) is the photo **downscaled by an integer factor to at most 1536 px on its
long side**. Peak extra memory is a few strips (tens of MB), never a full-resolution float copy.

Functions return the map image; ``*_heat`` companions return the bare heat array (float32 in
[0, 1], at the output size) for callers that combine or test them. Pure numpy / OpenCV / Pillow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

__all__ = [
    "MAX_SIDE",
    "blend_overlay",
    "block_grid_heat",
    "block_grid_map",
    "draw_outline",
    "ela_heat",
    "ela_map",
    "ghost_heat",
    "grid_peak",
    "grid_profile",
    "grid_strength",
    "jpeg_ghost_map",
    "noise_heat",
    "noise_map",
    "output_factor",
    "save_png",
]

#: Output maps are at most this many pixels on their long side.
MAX_SIDE = 1536
#: Native-resolution rows processed at once (a multiple of 16, the JPEG MCU height).
STRIP_ROWS = 512
#: Side (native pixels) of the windows in which the local JPEG grid is measured.
GRID_WINDOW = 32
#: Boundary steps are clipped to this many grey levels (texture weighs no more than a grid).
GRID_CLIP = 2.0
#: A photo "has a JPEG grid" when its strongest phase beats the second by this margin.
PHOTO_GRID_MIN = 0.03

GHOST_QUALITIES: tuple[int, ...] = (40, 50, 60, 70, 80, 90, 95)
#: Pixels × qualities re-compressed at most by :func:`ghost_heat` before rows are sampled.
GHOST_BUDGET = 40_000_000

# Colour ramp of the heat overlay: yellow -> orange -> red.
_RAMP = np.array([[255, 230, 40], [255, 140, 0], [215, 25, 20]], dtype=np.float32)


# -- helpers ------------------------------------------------------------------------------


def _as_rgb(img: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) from grey / RGB / RGBA arrays of any numeric dtype."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = np.clip(np.nan_to_num(a.astype(np.float32)), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.ndim == 3 and a.shape[2] >= 4:
        a = a[:, :, :3]
    if a.ndim != 3 or a.shape[2] != 3:
        raise TypeError(f"expected an RGB or grey image array, got shape {a.shape}")
    return np.ascontiguousarray(a)


def output_factor(height: int, width: int, max_side: int = MAX_SIDE) -> int:
    """The integer downscale factor from a photo to its maps (1 for photos ≤ ``max_side``)."""
    return max(1, math.ceil(max(height, width) / max_side))


def _out_shape(height: int, width: int, f: int) -> tuple[int, int]:
    return (max(1, math.ceil(height / f)), max(1, math.ceil(width / f)))


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Mean over f×f blocks (edges padded by replication); (ceil(h/f), ceil(w/f)) float32."""
    a = a.astype(np.float32, copy=False)
    if f == 1:
        return a
    h, w = a.shape
    ph, pw = (-h) % f, (-w) % f
    if ph or pw:
        a = np.pad(a, ((0, ph), (0, pw)), mode="edge")
    hh, ww = a.shape
    return np.asarray(a.reshape(hh // f, f, ww // f, f).mean(axis=(1, 3), dtype=np.float32))


def _strips(height: int, f: int, rows: int = STRIP_ROWS) -> Iterator[tuple[int, int]]:
    step = 16 * f // math.gcd(16, f)  # lcm(16, f): JPEG grid and output blocks stay aligned
    n = max(step, (rows // step) * step)
    for r0 in range(0, height, n):
        yield r0, min(height, r0 + n)


def _reduce_strips(
    rgb: np.ndarray, f: int, per_strip: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Run ``per_strip`` (native strip → native-size float map) strip by strip, block-mean by f."""
    parts = [_block_mean(per_strip(rgb[r0:r1]), f) for r0, r1 in _strips(rgb.shape[0], f)]
    return np.concatenate(parts, axis=0)


def _recompress(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 BGR
        raise RuntimeError("JPEG encoding failed")
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return np.asarray(out)[:, :, ::-1]


def _grey(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


def _downscaled(rgb: np.ndarray, f: int) -> np.ndarray:
    if f == 1:
        return rgb
    h, w = _out_shape(rgb.shape[0], rgb.shape[1], f)
    return np.asarray(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA))


def _fit(heat: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    heat = np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    if heat.ndim != 2:
        raise TypeError(f"heat must be a 2-D array, got shape {heat.shape}")
    if heat.shape != shape and heat.size:
        heat = cv2.resize(heat, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(heat, 0.0, 1.0)


# -- the renderer ---------------------------------------------------------------------------


def blend_overlay(rgb: np.ndarray, heat: np.ndarray, *, max_side: int = MAX_SIDE) -> np.ndarray:
    """Render ``heat`` (float H×W in [0, 1], any size: it is resized) over a greyed ``rgb``.

    The photo becomes a faded grey copy so that the overlay reads clearly; heat 0 leaves it
    grey, low heat tints it pale yellow, high heat paints it opaque orange to red. Output is
    RGB uint8 at the photo's size, downscaled to at most ``max_side`` px on the long side.
    """
    img = _as_rgb(rgb)
    img = _downscaled(img, output_factor(img.shape[0], img.shape[1], max_side))
    h, w = img.shape[:2]
    hm = _fit(heat, (h, w))
    grey = _grey(img).astype(np.float32)
    base = 70.0 + 0.55 * grey  # faded: keeps the photo recognisable under the colour
    t1 = np.minimum(hm * 2.0, 1.0)  # position on the 3-stop ramp: first and second leg
    t2 = np.maximum(hm * 2.0 - 1.0, 0.0)
    alpha = np.clip(hm * 1.25, 0.0, 1.0) ** 0.8 * np.float32(0.85)
    keep = np.float32(1.0) - alpha
    out = np.empty((h, w, 3), np.uint8)
    for c in range(3):  # channel by channel: a few 2-D float32 arrays at most
        r0, r1, r2 = (float(v) for v in _RAMP[:, c])
        colour = r0 + (r1 - r0) * t1 + (r2 - r1) * t2
        out[..., c] = np.clip(base * keep + colour * alpha + 0.5, 0, 255).astype(np.uint8)
    return out


def draw_outline(
    img: np.ndarray, points: np.ndarray, scale: float = 1.0, colour: Sequence[int] = (0, 190, 255)
) -> np.ndarray:
    """A copy of a map with the convex outline of ``points`` (x, y; photo pixels) drawn thin."""
    out = np.ascontiguousarray(_as_rgb(img).copy())
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] < 3 or not np.isfinite(pts).all():
        return out
    hull = cv2.convexHull(np.round(pts * scale).astype(np.int32))
    thick = max(1, round(max(out.shape[:2]) / 500))
    cv2.polylines(out, [hull], True, tuple(int(c) for c in colour), thick, cv2.LINE_AA)
    return out


def save_png(img: np.ndarray, path: str | Path) -> Path:
    """Write an RGB uint8 map (or a grey one) as PNG; returns the path."""
    p = Path(path)
    Image.fromarray(_as_rgb(img)).save(p, format="PNG", optimize=False, compress_level=6)
    return p


# -- error level analysis -------------------------------------------------------------------


def ela_heat(rgb: np.ndarray, quality: int = 90, *, max_side: int = MAX_SIDE) -> np.ndarray:
    """Error level: how much each area changes when re-saved as JPEG at ``quality``.

    Per strip: absolute difference (largest of the three channels) between the photo and its
    re-compressed copy, averaged over each output pixel's block, then lightly smoothed.
    Amplified so that a difference of ``max(8, 99.5th percentile)`` grey levels is full heat.
    """
    img = _as_rgb(rgb)
    f = output_factor(img.shape[0], img.shape[1], max_side)

    def one(strip: np.ndarray) -> np.ndarray:
        d = cv2.absdiff(strip, _recompress(strip, quality))
        return np.asarray(d.max(axis=2), dtype=np.float32)

    m = _reduce_strips(img, f, one)
    k = 3 if f < 4 else 1
    if k > 1:
        m = cv2.blur(m, (k, k))
    scale = max(8.0, float(np.percentile(m, 99.5)))
    return np.clip(m / scale, 0.0, 1.0).astype(np.float32)


def ela_map(rgb: np.ndarray, quality: int = 90) -> np.ndarray:
    """Error level analysis (ELA) map.

    Colour = how much that area changes when the photo is saved again as JPEG (quality
    ``quality``). Areas pasted or retouched after the photo's last JPEG save, or taken from a
    better-quality source, change more than the rest and glow orange/red; areas that went through
    the same saves look alike. Sharp edges and fine texture glow in every photo: compare a face
    with other skin, a wall with other walls.
    """
    img = _as_rgb(rgb)
    return blend_overlay(img, ela_heat(img, quality))


# -- noise residual -------------------------------------------------------------------------


def noise_heat(rgb: np.ndarray, *, max_side: int = MAX_SIDE) -> np.ndarray:
    """Local noise-residual level: |grey − 3×3 median| averaged in blocks of ≥ 16 px.

    Computed at native resolution (strips), reduced to the output grid, then averaged over a
    window of about 16 native pixels; heat = level / max(2, 98th percentile of the level).
    """
    img = _as_rgb(rgb)
    f = output_factor(img.shape[0], img.shape[1], max_side)

    def one(strip: np.ndarray) -> np.ndarray:
        g = _grey(strip)
        return np.asarray(cv2.absdiff(g, cv2.medianBlur(g, 3)), dtype=np.float32)

    m = _reduce_strips(img, f, one)
    k = max(1, round(16 / f)) | 1
    if k > 1:
        m = cv2.blur(m, (k, k))
    scale = max(2.0, float(np.percentile(m, 98)))
    return np.clip(m / scale, 0.0, 1.0).astype(np.float32)


def noise_map(rgb: np.ndarray) -> np.ndarray:
    """Noise map: the photo's fine grain (sensor noise, compression noise, fine texture).

    Colour = strong pixel-to-pixel grain; grey = smooth. A camera leaves an even grain over
    similar areas of one photo; a face or object much smoother (a pasted, generated or
    retouched face) or grainier than similar areas around it stands out. Hair, fabric and
    edges are always coloured: compare skin with skin.
    """
    img = _as_rgb(rgb)
    return blend_overlay(img, noise_heat(img))


# -- JPEG ghosts ------------------------------------------------------------------------------


def ghost_heat(
    rgb: np.ndarray, qualities: Sequence[int] = GHOST_QUALITIES, *, max_side: int = MAX_SIDE
) -> tuple[np.ndarray, int | None]:
    """JPEG ghosts (Farid 2009): (heat, the quality q* that shows the strongest ghost, or None).

    For each quality q the photo is re-compressed (strips, native resolution) and the squared
    difference of the grey levels is averaged in ~16-px windows: d_q(x). Each area's curve over
    q is divided by its own maximum; an area once saved at quality q0 has an unusually deep dip
    at q0 compared with the photo's typical curve (its median). The heat shows, at the q* where
    that dip is most pronounced somewhere, how much deeper than typical the area's dip is (0.5 =
    full heat). Flat areas (no difference at any q) carry no information and stay at 0.

    Time bound: above :data:`GHOST_BUDGET` pixel-qualities (≈ 5.7 MP with the 7 default
    qualities), only every k-th band of rows is re-compressed and each skipped band takes the
    values of the nearest analysed one (a pasted piece is rarely thinner than a band).
    """
    img = _as_rgb(rgb)
    qs = sorted({int(q) for q in qualities if 1 <= int(q) <= 100})
    f = output_factor(img.shape[0], img.shape[1], max_side)
    h, w = _out_shape(img.shape[0], img.shape[1], f)
    if len(qs) < 2:
        return np.zeros((h, w), np.float32), None
    k = max(1, round(16 / f)) | 1
    every = max(1, math.ceil(img.shape[0] * img.shape[1] * len(qs) / GHOST_BUDGET))
    step = 16 * f // math.gcd(16, f)
    band = step * max(1, math.ceil(128 / step)) if every > 1 else STRIP_ROWS
    rows_done: list[np.ndarray] = []
    blocks: list[np.ndarray] = []
    for j, (r0, r1) in enumerate(_strips(img.shape[0], f, band)):
        if j % every:
            continue
        strip = img[r0:r1]
        grey = _grey(strip).astype(np.float32)
        part = np.empty((len(qs), math.ceil((r1 - r0) / f), w), np.float32)
        for i, q in enumerate(qs):
            d = grey - _grey(_recompress(strip, q)).astype(np.float32)
            part[i] = _block_mean(d * d, f)
        blocks.append(part)
        rows_done.append(np.arange(r0 // f, r0 // f + part.shape[1]))
    stack = np.concatenate(blocks, axis=1)
    if k > 1:
        for i in range(len(qs)):
            stack[i] = cv2.blur(stack[i], (k, k))
    top = stack.max(axis=0)
    valid = top > 1.0  # at least ~1 grey level RMS difference at some quality
    if valid.sum() < 16:
        return np.zeros((h, w), np.float32), None
    norm = stack / np.maximum(top, 1e-6)[None]
    typical = np.median(norm[:, valid], axis=1)  # (nq,)
    dev = (typical[:, None, None] - norm) * valid[None]
    strength = [float(np.percentile(dev[i][valid], 99)) for i in range(len(qs))]
    best = int(np.argmax(strength))
    heat = np.clip(dev[best] / 0.5, 0.0, 1.0).astype(np.float32)
    done = np.concatenate(rows_done)
    if done.size != h:  # fill skipped bands from the nearest analysed row
        pos = np.clip(np.searchsorted(done, np.arange(h)), 1, done.size - 1)
        left = done[pos - 1]
        nearest = np.where(
            np.abs(np.arange(h) - left) <= np.abs(done[pos] - np.arange(h)), pos - 1, pos
        )
        heat = heat[nearest]
    return heat, qs[best]


def jpeg_ghost_map(rgb: np.ndarray, qualities: Sequence[int] = GHOST_QUALITIES) -> np.ndarray:
    """JPEG ghost map (Farid).

    Colour = an area that seems to have been saved as JPEG at a *different quality* than the
    rest of the photo (it "stays still" when re-saved at that quality while the rest changes):
    typical of a piece pasted from another JPEG. The quality shown is the one where such an area
    stands out most (see :func:`ghost_heat`). Very dark, very bright or flat areas stay grey.
    """
    img = _as_rgb(rgb)
    heat, _ = ghost_heat(img, qualities)
    return blend_overlay(img, heat)


# -- JPEG 8×8 block grid ----------------------------------------------------------------------


def _boundary_excess(g: np.ndarray, axis: int, clip: float = GRID_CLIP) -> np.ndarray:
    """Per pixel: how much the step into this pixel exceeds the steps beside it, clipped.

    Along ``axis`` (1: columns, 0: rows): e[x] = |g[x] − g[x−1]| − (|g[x−1] − g[x−2]| +
    |g[x+1] − g[x]|) / 2, clipped to ±``clip`` grey levels so that edges and texture (large
    steps everywhere) weigh no more than the faint, regular steps of a JPEG block boundary.
    A JPEG grid whose blocks start at x ≡ p (mod 8) gives e a positive mean at x ≡ p.
    """
    gf = np.asarray(g, dtype=np.float32)
    if axis == 0:
        gf = gf.T
    d = np.zeros_like(gf)
    d[:, 1:] = np.abs(gf[:, 1:] - gf[:, :-1])
    e = np.zeros_like(gf)
    if gf.shape[1] > 3:
        e[:, 2:-1] = d[:, 2:-1] - 0.5 * (d[:, 1:-2] + d[:, 3:])
    np.clip(e, -clip, clip, out=e)
    return e.T if axis == 0 else e


def grid_profile(
    g: np.ndarray, mask: np.ndarray | None = None, origin: tuple[int, int] = (0, 0)
) -> tuple[np.ndarray, np.ndarray]:
    """Phase profiles (8,), (8,) of a grey array: mean boundary excess by column / row phase.

    ``ph[p]`` is the mean :func:`_boundary_excess` over columns x ≡ p (mod 8) (``pv`` likewise
    over rows); ``origin`` is the array's (x, y) offset in the photo so that phases are the
    photo's. With ``mask`` (bool, same shape) only those pixels count.
    """
    gf = np.asarray(g, dtype=np.float32)
    h, w = gf.shape
    out = []
    for axis, n, o in ((1, w, origin[0]), (0, h, origin[1])):
        e = _boundary_excess(gf, axis)
        wgt = np.ones_like(e) if mask is None else mask.astype(np.float32)
        sums = (e * wgt).sum(axis=0 if axis == 1 else 1)
        cnt = wgt.sum(axis=0 if axis == 1 else 1)
        idx = (np.arange(n) + o) % 8
        num = np.bincount(idx, weights=sums, minlength=8)
        den = np.bincount(idx, weights=cnt, minlength=8)
        out.append((num / np.maximum(den, 1.0)).astype(np.float32))
    return out[0], out[1]


def grid_strength(profile: np.ndarray, phase: int | None = None) -> tuple[float, int]:
    """(strength, phase): how much one boundary phase stands out of the 8 (≈0: no grid).

    strength = (value at phase − median of the 8) / clip level; ``phase`` defaults to the
    strongest one.
    """
    p = np.asarray(profile, dtype=np.float64)
    if p.size != 8 or not np.isfinite(p).all():
        return 0.0, 0
    ph = int(np.argmax(p)) if phase is None else int(phase) % 8
    return float((p[ph] - np.median(p)) / GRID_CLIP), ph


def grid_peak(profile: np.ndarray, exclude: int | None = None) -> tuple[float, int]:
    """(margin, phase): how far the strongest phase stands above the *second* strongest.

    A JPEG grid is one sharp peak among the 8 phases; texture with a 2-pixel period (resizing,
    demosaicing) raises every other phase alike and gives a margin near 0. ``exclude`` leaves
    out a grid's phase *and* its half-block harmonic (phase + 4, where JPEG's DCT basis leaves
    a weaker echo of the same grid), when looking for a second, different grid.
    """
    p = np.asarray(profile, dtype=np.float64).copy()
    if p.size != 8 or not np.isfinite(p).all():
        return 0.0, 0
    if exclude is not None:
        p[int(exclude) % 8] = -np.inf
        p[(int(exclude) + 4) % 8] = -np.inf
    order = np.argsort(p)[::-1]
    return float((p[order[0]] - p[order[1]]) / GRID_CLIP), int(order[0])


def _window_profiles(e: np.ndarray, win: int, axis: int) -> np.ndarray:
    """(rows/win, cols/win, 8) mean of ``e`` by phase (of ``axis``) in each win×win window."""
    h, w = e.shape
    hh, ww = (h // win) * win, (w // win) * win
    if hh == 0 or ww == 0:
        return np.zeros((0, 0, 8), np.float32)
    b = win // 8
    if axis == 1:
        return np.asarray(e[:hh, :ww].reshape(hh // win, win, ww // win, b, 8).mean(axis=(1, 3)))
    p = e[:hh, :ww].reshape(hh // win, b, 8, ww // win, win).mean(axis=(1, 4))
    return np.asarray(np.transpose(p, (0, 2, 1)))


def block_grid_heat(rgb: np.ndarray, *, max_side: int = MAX_SIDE) -> tuple[np.ndarray, bool]:
    """(heat, global_grid): where the JPEG 8×8 grid does not line up with the photo's own.

    The photo's grid phase is its strongest column and row boundary phase over the whole photo
    (:func:`grid_profile`, :func:`grid_peak`). Locally (64×64 windows, every 32 px), each
    axis's strength at its best *other* phase minus its strength at the photo's phase is
    computed; heat = (the larger
    of the two axes − 0.06) / 0.15. When the photo as a whole shows no grid (``global_grid``
    False: never JPEG-compressed, or resized since), any local grid counts.
    """
    img = _as_rgb(rgb)
    f = output_factor(img.shape[0], img.shape[1], max_side)
    oh, ow = _out_shape(img.shape[0], img.shape[1], f)
    win = GRID_WINDOW
    rows = STRIP_ROWS - STRIP_ROWS % win
    tot = [np.zeros(8, np.float64), np.zeros(8, np.float64)]
    parts: list[list[np.ndarray]] = [[], []]
    for r0 in range(0, img.shape[0], rows):
        r1 = min(img.shape[0], r0 + rows)
        g = _grey(img[r0:r1])
        n = float(g.size)
        for axis, k in ((1, 0), (0, 1)):
            e = _boundary_excess(g, axis)
            pr = _window_profiles(e, win, axis)
            if pr.size:
                parts[k].append(pr)
            full = e.mean(axis=0) if axis == 1 else e.mean(axis=1)
            idx = np.arange(full.size) % 8
            prof = np.bincount(idx, weights=full, minlength=8) / np.maximum(
                np.bincount(idx, minlength=8), 1
            )
            tot[k] += prof * n
    total = float(img.shape[0] * img.shape[1])
    sh, gx = grid_peak(tot[0] / total)
    sv, gy = grid_peak(tot[1] / total)
    global_grid = min(sh, sv) > PHOTO_GRID_MIN
    if not parts[0]:
        return np.zeros((oh, ow), np.float32), global_grid

    def local(p: np.ndarray, gphase: int) -> np.ndarray:
        # 64×64 windows every 32 px: sum of 2×2 neighbouring 32-px windows
        if p.shape[0] > 1 and p.shape[1] > 1:
            q = np.pad(p, ((0, 1), (0, 1), (0, 0)), mode="edge")
            p = (q[:-1, :-1] + q[1:, :-1] + q[:-1, 1:] + q[1:, 1:]) / 4.0
        med = np.median(p, axis=2)
        at_global = (p[..., gphase] - med) / GRID_CLIP
        best_other = (np.delete(p, gphase, axis=2).max(axis=2) - med) / GRID_CLIP
        if global_grid:
            return np.asarray(best_other - np.maximum(at_global, 0.0))
        return np.asarray(np.maximum(best_other, at_global))

    ph_all = np.concatenate(parts[0], axis=0)
    pv_all = np.concatenate(parts[1], axis=0)
    heat_w = np.maximum(local(ph_all, gx), local(pv_all, gy))
    heat_w = np.clip((heat_w - 0.06) / 0.15, 0.0, 1.0).astype(np.float32)
    # windows -> output pixels (windows cover whole multiples of 32 px; the rest stays 0)
    ch = max(1, min(oh, round(heat_w.shape[0] * win / f)))
    cw = max(1, min(ow, round(heat_w.shape[1] * win / f)))
    out = np.zeros((oh, ow), np.float32)
    out[:ch, :cw] = cv2.resize(heat_w, (cw, ch), interpolation=cv2.INTER_LINEAR)
    return out, global_grid


def block_grid_map(rgb: np.ndarray) -> np.ndarray:
    """JPEG block-grid map.

    JPEG cuts a photo into 8×8-pixel blocks; every save leaves faint block edges on one grid.
    Colour = an area whose block edges sit on a *different* grid from the rest of the photo
    (shifted by a few pixels): typical of a piece cut from another JPEG and pasted in without
    being aligned. If the photo itself shows no grid at all, colour marks any area with one.
    Flat or very smooth areas carry little information and stay mostly grey.
    """
    img = _as_rgb(rgb)
    heat, _ = block_grid_heat(img)
    return blend_overlay(img, heat)
