"""The learned AI-image detector (``synthetic_image``): residual statistics + logistic regression.

Cameras and generators leave different fine-grained pixel statistics. Per analysed crop, at
native resolution (downscaling would erase the traces), a 363-value feature vector of residual
co-occurrences, cross-channel statistics and residual spectra goes through a logistic
regression: ``raw`` is its logit, ``score`` its Platt calibration (coefficients in
``models/synthetic_image.json``, card ``synthetic_image.md``, written by ``training/synthetic/``).

Trained on one GAN family only (StyleGAN2 faces against FFHQ and other real photos): on
diffusion images it scores generated images below real photos (AUC 0.29–0.44 on diffusion-dev,
``bench/detect.py``), so a low score is never evidence that a photo is real; the evidence
sentences say so (``clip_diffusion`` is the signal for those). Cost is bounded: images up to
``MAX_WHOLE_PIXELS`` are analysed whole, larger ones on at most ``MAX_TILES`` tiles of
``TILE``² pixels; faces given as ``regions`` are always analysed too and each gets its own
score in ``details["faces"]``. ``maps=True`` adds ``"synthetic_tiles"``, the tiles that would
pass the threshold on their own (noisier than the whole image). numpy + OpenCV only. Feature
list and design notes: docs/detectors.md.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from reclaim.detectors.base import ForensicSignal
from reclaim.errors import InputError

if TYPE_CHECKING:
    from reclaim.faces.landmarks import FaceRegion

__all__ = [
    "FEATURE_GROUPS",
    "MODEL_PATH",
    "SyntheticModel",
    "crop_stats",
    "features",
    "image_raw",
    "load_model",
    "synthetic_image",
]

MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "synthetic_image.json"
NAME = "synthetic_image"

#: Images with at most this many pixels are analysed whole.
MAX_WHOLE_PIXELS = 1_048_576
#: Side of the tiles analysed in larger images and drawn on the map.
TILE = 128
#: Tiles analysed at most in a large image (spread evenly over it).
MAX_TILES = 48
#: Faces analysed at most, and the largest face crop side (native pixels, around the centre).
MAX_FACES = 4
FACE_CROP = 384
#: Crops smaller than this (either side) are not analysed.
MIN_SIDE = 32
#: Images whose channels (almost) never differ by more than this are greyscale: not analysed.
GREY_TOLERANCE = 3

# -- features -----------------------------------------------------------------------------

_T = 2  # residuals are truncated to [-T, T] after quantisation
_NB = 2 * _T + 1
_NB3 = _NB**3
_BLK = 64  # spectrum block side
_NRAD = 10
_PEAKS = ((32, 0), (0, 32), (32, 32), (16, 0), (0, 16), (16, 16), (8, 0), (0, 8))
_KV = np.array([[-1, 2, -1], [2, -4, 2], [-1, 2, -1]], np.float32)
_LAP = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)


def _sym_classes(reverse: bool) -> tuple[np.ndarray, int]:
    """Map each (a, b, c) triple to its class under sign flip (and reversal when asked)."""
    vals = range(-_T, _T + 1)
    canon: dict[tuple[int, int, int], int] = {}
    out = np.zeros(_NB3, dtype=np.int64)
    for a, b, c in itertools.product(vals, vals, vals):
        group = [(a, b, c), (-a, -b, -c)]
        if reverse:
            group += [(c, b, a), (-c, -b, -a)]
        key = min(group)
        if key not in canon:
            canon[key] = len(canon)
        out[((a + _T) * _NB + (b + _T)) * _NB + (c + _T)] = canon[key]
    return out, len(canon)


_SYM_REV, _N_REV = _sym_classes(True)
_SYM_SIGN, _N_SIGN = _sym_classes(False)
_FY = np.fft.fftfreq(_BLK) * _BLK
_RBIN = np.minimum(
    (np.sqrt(_FY[:, None] ** 2 + _FY[None, :] ** 2) / (_BLK / 2) * _NRAD).astype(np.int64), _NRAD
).ravel()
_RCOUNT = np.bincount(_RBIN, minlength=_NRAD + 1)[:_NRAD].astype(np.float64)
_HANN = np.outer(np.hanning(_BLK), np.hanning(_BLK)).astype(np.float32)

#: (name, length) of the feature groups, in order.
FEATURE_GROUPS: tuple[tuple[str, int], ...] = (
    ("luma_d1", _N_REV),
    ("luma_d2", _N_REV),
    ("luma_d3", _N_REV),
    ("luma_kv", _N_REV),
    ("rgb_joint", _N_SIGN),
    ("cross_channel", 4),
    ("saturation", 5),
    ("chroma_d1", _N_REV),
    ("half_d2", _N_REV),
    ("half_kv", _N_REV),
    ("spectrum", _NRAD),
    ("peaks", len(_PEAKS)),
)
N_FEATURES = sum(n for _, n in FEATURE_GROUPS)
# Additive statistics: 7 triple histograms + RGB joint histogram + 9 products + 6 colour
# counts + the summed block power spectrum + the block count.
_N_STATS = 8 * _NB3 + 9 + 6 + _BLK * _BLK + 1


def _q(r: np.ndarray, step: float) -> np.ndarray:
    """Residual → quantised, truncated, shifted to 0..2T (uint8)."""
    k = np.rint(r * np.float32(1.0 / step))
    np.clip(k, -_T, _T, out=k)
    k += _T
    return k.astype(np.uint8)


def _triples(rh: np.ndarray, rv: np.ndarray, step: float) -> np.ndarray:
    """Histogram of quantised residual triples along rows (``rh``) and columns (``rv``)."""
    kh = _q(rh, step)
    kv = _q(rv, step)
    # class indices fit in uint8 (< 125): cheap arithmetic, one cast in bincount
    ih = (kh[:, :-2] * np.uint8(_NB) + kh[:, 1:-1]) * np.uint8(_NB) + kh[:, 2:]
    iv = (kv[:-2] * np.uint8(_NB) + kv[1:-1]) * np.uint8(_NB) + kv[2:]
    return np.bincount(ih.ravel(), minlength=_NB3) + np.bincount(iv.ravel(), minlength=_NB3)


def _kv_triples(y: np.ndarray, step: float) -> np.ndarray:
    r = cv2.filter2D(y, -1, _KV, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    return _triples(r, r, step)


def crop_stats(rgb: np.ndarray) -> np.ndarray:
    """Additive statistics of one RGB uint8 crop (≥ ``MIN_SIDE`` px a side); sum to pool crops."""
    x = np.asarray(rgb, dtype=np.float32)
    y = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    parts: list[np.ndarray] = [
        _triples(y[:, 1:] - y[:, :-1], y[1:] - y[:-1], 1.0),
        _triples(y[:, :-2] - 2 * y[:, 1:-1] + y[:, 2:], y[:-2] - 2 * y[1:-1] + y[2:], 2.0),
        _triples(
            -y[:, :-3] + 3 * y[:, 1:-2] - 3 * y[:, 2:-1] + y[:, 3:],
            -y[:-3] + 3 * y[1:-2] - 3 * y[2:-1] + y[3:],
            3.0,
        ),
        _kv_triples(y, 4.0),
    ]
    lap = [
        cv2.filter2D(np.ascontiguousarray(x[..., c]), -1, _LAP, borderType=cv2.BORDER_REFLECT)[
            1:-1, 1:-1
        ]
        for c in range(3)
    ]
    kc = [_q(v, 2.0) for v in lap]
    nb = np.uint8(_NB)
    parts.append(np.bincount(((kc[0] * nb + kc[1]) * nb + kc[2]).ravel(), minlength=_NB3))
    # sums of products without BLAS (a multithreaded dot stalls on a busy machine)
    a = [v.astype(np.float64) for v in lap]
    ly = 0.299 * a[0] + 0.587 * a[1] + 0.114 * a[2]
    dcb, dcr = a[2] - ly, a[0] - ly
    parts.append(
        np.array(
            [
                float(np.einsum("ij,ij->", u, v))
                for u, v in (
                    (a[0], a[0]),
                    (a[1], a[1]),
                    (a[2], a[2]),
                    (a[0], a[1]),
                    (a[1], a[2]),
                    (a[0], a[2]),
                    (ly, ly),
                    (dcb, dcb),
                    (dcr, dcr),
                )
            ]
        )
    )
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    mx = np.maximum(np.maximum(r, g), b)  # (not x.max(axis=2): slow over a length-3 axis)
    mn = np.minimum(np.minimum(r, g), b)
    s = (mx - mn) / np.maximum(mx, 1.0)
    parts.append(
        np.array(
            [
                float(s.size),
                float(s.sum(dtype=np.float64)),
                float((s * s).sum(dtype=np.float64)),
                float((s > 0.8).sum()),
                float((mx >= 250).sum()),
                float((mn <= 5).sum()),
            ]
        )
    )
    ch = np.zeros(_NB3, dtype=np.int64)
    for c in (x[..., 2] - y, x[..., 0] - y):
        ch += _triples(c[:, 1:] - c[:, :-1], c[1:] - c[:-1], 1.0)
    parts.append(ch)
    hh, ww = (y.shape[0] // 2) * 2, (y.shape[1] // 2) * 2
    yh = 0.25 * (y[0:hh:2, 0:ww:2] + y[1:hh:2, 0:ww:2] + y[0:hh:2, 1:ww:2] + y[1:hh:2, 1:ww:2])
    parts.append(
        _triples(yh[:, :-2] - 2 * yh[:, 1:-1] + yh[:, 2:], yh[:-2] - 2 * yh[1:-1] + yh[2:], 2.0)
    )
    parts.append(_kv_triples(yh, 4.0))
    ry = cv2.filter2D(y, -1, _LAP, borderType=cv2.BORDER_REFLECT)
    nby, nbx = ry.shape[0] // _BLK, ry.shape[1] // _BLK
    if nby and nbx:
        grid4 = ry[: nby * _BLK, : nbx * _BLK].reshape(nby, _BLK, nbx, _BLK).swapaxes(1, 2)
        blocks = grid4.reshape(-1, _BLK, _BLK)
        blocks = (blocks - blocks.mean(axis=(1, 2), keepdims=True)) * _HANN
        power = (np.abs(np.fft.fft2(blocks)) ** 2).sum(axis=0)
        nblk = blocks.shape[0]
    else:
        power = np.zeros((_BLK, _BLK))
        nblk = 0
    parts.append(power.ravel())
    parts.append(np.array([float(nblk)]))
    out = np.concatenate([np.asarray(v, np.float64).ravel() for v in parts])
    assert out.shape == (_N_STATS,)
    return out


def _hist_feature(counts: np.ndarray, classes: np.ndarray, n: int) -> np.ndarray:
    h = np.bincount(classes, weights=counts, minlength=n)
    return np.sqrt(h / max(float(h.sum()), 1.0))


def features(stats: np.ndarray) -> np.ndarray:
    """The ``N_FEATURES`` feature vector of (pooled) :func:`crop_stats` (float64)."""
    eps = 1e-6
    o = 0

    def take(n: int) -> np.ndarray:
        nonlocal o
        v = stats[o : o + n]
        o += n
        return v

    out: list[np.ndarray] = [_hist_feature(take(_NB3), _SYM_REV, _N_REV) for _ in range(4)]
    out.append(_hist_feature(take(_NB3), _SYM_SIGN, _N_SIGN))
    xc = take(9)
    out.append(
        np.array(
            [
                xc[3] / math.sqrt(xc[0] * xc[1] + eps),
                xc[4] / math.sqrt(xc[1] * xc[2] + eps),
                xc[5] / math.sqrt(xc[0] * xc[2] + eps),
                math.log((xc[7] + xc[8] + eps) / (xc[6] + eps)),
            ]
        )
    )
    col = take(6)
    n = max(float(col[0]), 1.0)
    ms = col[1] / n
    out.append(
        np.array(
            [ms, math.sqrt(max(col[2] / n - ms * ms, 0.0)), col[3] / n, col[4] / n, col[5] / n]
        )
    )
    out += [_hist_feature(take(_NB3), _SYM_REV, _N_REV) for _ in range(3)]
    power = take(_BLK * _BLK)
    nblk = float(take(1)[0])
    if nblk > 0:
        radial = np.bincount(_RBIN, weights=power, minlength=_NRAD + 1)[:_NRAD] / _RCOUNT
        lr = np.log(radial / nblk + eps)
        out.append(lr - lr.mean())
        lp = np.log(power.reshape(_BLK, _BLK) / nblk + eps)
        peaks = []
        for u, v in _PEAKS:
            ring = [
                lp[(u + du) % _BLK, (v + dv) % _BLK]
                for du in (-2, -1, 1, 2)
                for dv in (-2, -1, 0, 1, 2)
            ]
            peaks.append(lp[u, v] - float(np.median(ring)))
        out.append(np.array(peaks))
    else:
        out += [np.zeros(_NRAD), np.zeros(len(_PEAKS))]
    f = np.concatenate(out)
    assert f.shape == (N_FEATURES,)
    return f


# -- model --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticModel:
    """Standardisation + logistic regression + Platt calibration, read from the model JSON."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    platt_a: float
    platt_b: float
    threshold: float  # raw logit above which (strictly) the signal "points to generation"
    measured: dict[str, Any]  # numbers quoted in the evidence (test split)
    version: str
    #: ``raw`` given to images not analysed (too small, greyscale): the median raw of the
    #: calib real photos, so that "no evidence" weighs like an ordinary real photo in a fusion.
    raw_unanalysed: float = 0.0

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SyntheticModel:
        m = cls(
            mean=np.asarray(doc["mean"], dtype=np.float64),
            scale=np.asarray(doc["scale"], dtype=np.float64),
            weights=np.asarray(doc["weights"], dtype=np.float64),
            bias=float(doc["bias"]),
            platt_a=float(doc["platt"][0]),
            platt_b=float(doc["platt"][1]),
            threshold=float(doc["threshold"]),
            measured=dict(doc.get("measured", {})),
            version=str(doc.get("version", "?")),
            raw_unanalysed=float(doc.get("raw_unanalysed", 0.0)),
        )
        for v in (m.mean, m.scale, m.weights):
            if v.shape != (N_FEATURES,) or not np.isfinite(v).all():
                raise InputError(
                    f"the AI-image model file does not match this reclaim ({N_FEATURES} features "
                    "expected): reinstall reclaim or retrain with training/synthetic/train.py"
                )
        return m

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "mean": [float(v) for v in self.mean],
            "scale": [float(v) for v in self.scale],
            "weights": [float(v) for v in self.weights],
            "bias": self.bias,
            "platt": [self.platt_a, self.platt_b],
            "threshold": self.threshold,
            "measured": self.measured,
            "raw_unanalysed": self.raw_unanalysed,
        }

    def logit(self, feats: np.ndarray) -> np.ndarray:
        """Raw logits of feature rows (N, N_FEATURES) or one vector."""
        return np.asarray(((feats - self.mean) / self.scale) @ self.weights + self.bias)

    def calibrated(self, raw: float) -> float:
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, self.platt_a * raw + self.platt_b))))


_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _load(path: str) -> SyntheticModel:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(
            f"the AI-image model file cannot be read ({path}): reinstall reclaim"
        ) from e
    try:
        return SyntheticModel.from_json(doc)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"the AI-image model file is malformed ({path}): reinstall reclaim") from e


def load_model(path: Path | None = None) -> SyntheticModel:
    """The shipped model (loaded once per process)."""
    with _LOCK:
        return _load(str(path or MODEL_PATH))


# -- analysis -----------------------------------------------------------------------------


def _as_rgb(rgb: np.ndarray) -> tuple[np.ndarray, bool]:
    """RGB uint8 (H, W, 3) and whether the image is greyscale."""
    a = np.asarray(rgb)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise InputError(f"expected an RGB image array (H, W, 3), got shape {a.shape}")
    a = a[..., :3]
    if a.dtype != np.uint8:
        a = np.clip(np.nan_to_num(a.astype(np.float32)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a), _is_grey(a)


def _is_grey(rgb: np.ndarray) -> bool:
    """Greyscale or nearly (a black-and-white photo saved in colour): 99 % of sampled pixels
    have their three channels within ``GREY_TOLERANCE`` grey levels of each other."""
    step = max(1, int(math.sqrt(rgb.shape[0] * rgb.shape[1] / 250_000)))
    s = rgb[::step, ::step].astype(np.int16)
    r, g, b = s[..., 0], s[..., 1], s[..., 2]
    spread = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
    return bool(np.percentile(spread, 99) <= GREY_TOLERANCE)


def _tile_grid(h: int, w: int) -> list[tuple[int, int]]:
    """Top-left corners of the full-tile grid, centred in the image."""
    ny, nx = h // TILE, w // TILE
    oy, ox = (h - ny * TILE) // 2, (w - nx * TILE) // 2
    return [(oy + i * TILE, ox + j * TILE) for i in range(ny) for j in range(nx)]


def _spread(grid: list[tuple[int, int]], h: int, w: int, k: int) -> list[tuple[int, int]]:
    """``k`` tiles of the grid spread evenly over the image (a regular sub-grid)."""
    ny, nx = h // TILE, w // TILE
    if ny * nx <= k:
        return grid
    ratio = math.sqrt(k * nx / ny)
    kx = max(1, min(nx, int(ratio)))
    ky = max(1, min(ny, k // kx))
    rows = np.unique(np.round(np.linspace(0, ny - 1, ky)).astype(int))
    cols = np.unique(np.round(np.linspace(0, nx - 1, kx)).astype(int))
    return [grid[int(r) * nx + int(c)] for r in rows for c in cols]


def _face_crop(box: tuple[int, int, int, int], h: int, w: int) -> tuple[int, int, int, int] | None:
    left, top, right, bottom = box
    cx, cy = (left + right) / 2, (top + bottom) / 2
    side = min(FACE_CROP, int(max(right - left, bottom - top) * 1.2))
    x0 = int(max(0, min(w - side, cx - side / 2)))
    y0 = int(max(0, min(h - side, cy - side / 2)))
    x1, y1 = min(w, x0 + side), min(h, y0 + side)
    if min(x1 - x0, y1 - y0) < MIN_SIDE:
        return None
    return x0, y0, x1, y1


@dataclass
class _Analysis:
    raw: float
    mode: str  # "whole" | "tiles"
    tiles: list[tuple[int, int, float]]  # (y, x, raw) of tiles scored for the map
    faces: list[tuple[tuple[int, int, int, int], float]]
    n_tiles: int


def image_raw(
    rgb: np.ndarray,
    model: SyntheticModel | None = None,
    *,
    regions: list[FaceRegion] | None = None,
    tile_scores: bool = False,
) -> _Analysis:
    """The raw logit of an RGB uint8 image (≥ ``MIN_SIDE`` px a side); see the module docs."""
    m = model or load_model()
    h, w = rgb.shape[:2]
    tiles: list[tuple[int, int, float]] = []
    grid = _tile_grid(h, w)
    if h * w <= MAX_WHOLE_PIXELS:
        mode = "whole"
        pooled = crop_stats(rgb)
        n_tiles = 0
        chosen = grid if tile_scores else []
        for y, x in chosen:
            tiles.append(
                (y, x, float(m.logit(features(crop_stats(rgb[y : y + TILE, x : x + TILE])))))
            )
    else:
        mode = "tiles"
        chosen = _spread(grid, h, w, MAX_TILES)
        n_tiles = len(chosen)
        pooled = np.zeros(_N_STATS)
        for y, x in chosen:
            st = crop_stats(rgb[y : y + TILE, x : x + TILE])
            pooled += st
            if tile_scores:
                tiles.append((y, x, float(m.logit(features(st)))))
    faces: list[tuple[tuple[int, int, int, int], float]] = []
    for r in (regions or [])[:MAX_FACES]:
        c = _face_crop(tuple(int(v) for v in r.box), h, w)  # type: ignore[arg-type]
        if c is None:
            continue
        x0, y0, x1, y1 = c
        st = crop_stats(rgb[y0:y1, x0:x1])
        pooled += st
        faces.append((c, float(m.logit(features(st)))))
    raw = float(m.logit(features(pooled)))
    return _Analysis(raw, mode, tiles, faces, n_tiles)


def _strength(score: float) -> tuple[str, str]:
    if score >= 0.9:
        return "strong", "fort"
    if score >= 0.7:
        return "moderate", "modéré"
    return "weak", "faible"


def _pct(v: Any) -> str:
    try:
        return f"{100 * float(v):.0f}%"
    except (TypeError, ValueError):
        return "?"


def _evidence(score: float, flagged: bool, m: SyntheticModel) -> dict[str, str]:
    me = m.measured
    auc = me.get("auc_plain")
    auc_s = f"{float(auc):.2f}" if isinstance(auc, (int, float)) else "?"
    tpr = _pct(me.get("tpr_at_threshold"))
    fpr = _pct(me.get("fp_real_photos"))
    scope_en = (
        f"Trained on one GAN family (StyleGAN2 faces): on held-out StyleGAN2 faces it reaches "
        f"AUC {auc_s} and flags {tpr} of them, with {fpr} of real photos flagged. On "
        "diffusion-generated images (diffusion-dev, re-encoded as Telegram does) it scores "
        "them below real photos (AUC 0.29–0.44): there its score says nothing; clip_diffusion "
        "is the signal for them."
    )
    auc_fr, tpr_fr, fpr_fr = (v.replace(".", ",").replace("%", " %") for v in (auc_s, tpr, fpr))
    sc_fr = f"{score:.2f}".replace(".", ",")
    scope_fr = (
        f"Entraîné sur une seule famille de GAN (visages StyleGAN2) : sur des visages StyleGAN2 "
        f"mis de côté, AUC {auc_fr}, {tpr_fr} détectés, {fpr_fr} des vraies photos signalées. "
        "Sur des images générées par diffusion (diffusion-dev, réencodées comme le fait "
        "Telegram), il les note sous les vraies photos (AUC 0,29–0,44) : son score n'y dit "
        "rien ; clip_diffusion est le signal pour celles-ci."
    )
    if flagged:
        s_en, s_fr = _strength(score)
        en = (
            f"The AI-image model finds pixel statistics typical of generated images "
            f"({s_en} evidence, score {score:.2f}). {scope_en}"
        )
        fr = (
            f"Le modèle d'images IA trouve des statistiques de pixels typiques des images "
            f"générées (indice {s_fr}, score {sc_fr}). {scope_fr}"
        )
    else:
        en = (
            f"The AI-image model finds no clear sign of generation (score {score:.2f}); this "
            f"does not show that the image is real. {scope_en}"
        )
        fr = (
            f"Le modèle d'images IA ne trouve pas de signe net de génération (score "
            f"{sc_fr}) ; cela ne montre pas que l'image est authentique. {scope_fr}"
        )
    return {"en": en, "fr": fr}


def _tile_map(
    rgb: np.ndarray, tiles: list[tuple[int, int, float]], m: SyntheticModel
) -> np.ndarray:
    from reclaim.detectors.maps import blend_overlay

    h, w = rgb.shape[:2]
    f = max(1, math.ceil(max(h, w) / 512))
    heat = np.zeros((math.ceil(h / f), math.ceil(w / f)), np.float32)
    p_thr = m.calibrated(m.threshold)
    for y, x, raw in tiles:
        if raw <= m.threshold:  # colour only where a tile alone would pass the threshold
            continue
        p = (m.calibrated(raw) - p_thr) / max(1e-6, 1.0 - p_thr)
        heat[y // f : (y + TILE) // f, x // f : (x + TILE) // f] = min(1.0, 0.2 + 0.8 * p)
    return blend_overlay(rgb, heat)


def synthetic_image(
    rgb: np.ndarray, *, regions: list[FaceRegion] | None = None, maps: bool = False
) -> ForensicSignal:
    """Is this image generated (GAN/diffusion)? One calibrated signal for the whole image.

    ``rgb``: upright image array (RGB uint8; grey, RGBA and other dtypes are converted).
    ``regions``: faces (from :func:`reclaim.faces.landmarks.face_regions`), analysed too.
    Images smaller than ``MIN_SIDE`` px a side, and greyscale images, are not analysed: score 0,
    ``details["analysed"]`` false, ``raw`` = the model's ``raw_unanalysed``, said in the evidence.
    Raises :class:`InputError` for an array that is not an image, or a broken model file.
    """
    img, grey = _as_rgb(rgb)
    h, w = img.shape[:2]
    m = load_model()
    if min(h, w) < MIN_SIDE:
        msg = {
            "en": f"Not analysed by the AI-image model: the image ({w}×{h}) is too small.",
            "fr": f"Non analysée par le modèle d'images IA : l'image ({w}×{h}) est trop petite.",
        }
        return ForensicSignal(
            NAME,
            0.0,
            "generated",
            msg,
            m.raw_unanalysed,
            {"analysed": False, "reason": "too small", "width": w, "height": h},
        )
    if grey:
        msg = {
            "en": "Not analysed by the AI-image model: the image is greyscale, and the model "
            "needs colour (on greyscale photos it mistakes real photos for generated ones).",
            "fr": "Non analysée par le modèle d'images IA : l'image est en niveaux de gris, et "
            "le modèle a besoin de la couleur (sur des photos en gris il prend de vraies "
            "photos pour des images générées).",
        }
        return ForensicSignal(
            NAME,
            0.0,
            "generated",
            msg,
            m.raw_unanalysed,
            {"analysed": False, "reason": "greyscale", "width": w, "height": h},
        )
    a = image_raw(img, m, regions=regions, tile_scores=maps)
    score = m.calibrated(a.raw)
    flagged = a.raw > m.threshold
    details: dict[str, Any] = {
        "analysed": True,
        "model": m.version,
        "mode": a.mode,
        "flagged": bool(flagged),
        "threshold": round(m.calibrated(m.threshold), 4),
        "width": w,
        "height": h,
    }
    if a.mode == "tiles":
        details["tiles"] = a.n_tiles
    if a.faces:
        details["faces"] = [
            {"box": list(box), "score": round(m.calibrated(r), 4), "raw": round(r, 4)}
            for box, r in a.faces
        ]
    out_maps: dict[str, np.ndarray] = {}
    if maps and a.tiles:
        out_maps["synthetic_tiles"] = _tile_map(img, a.tiles, m)
    return ForensicSignal(
        NAME,
        float(score),
        "generated",
        _evidence(score, flagged, m),
        float(a.raw),
        details,
        out_maps,
    )
