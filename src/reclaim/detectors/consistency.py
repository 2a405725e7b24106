"""Face-region consistency: does a face differ from its surroundings? (no training, explainable)

Face-swap tools paste a face generated at low resolution, blended into the target photo; a
splice carries another camera's noise, another JPEG history and another light. For every face
(68-landmark outline, :class:`~reclaim.faces.landmarks.FaceRegion`) this module measures, face
vs the ring of skin and scene around it (and a ring further out): sharpness (fine-detail ratio),
noise, the JPEG block grid (native resolution only: a second grid at another phase, or another
blocking strength), skin colour, a seam along the outline, and the sharpness and noise of eyes,
nose and mouth vs the rest of the face. Faces larger than :data:`ANALYSIS_FACE_PX` are measured
on a downscaled copy, except the grid; a caller that downscales a photo first loses the grid
evidence.

Each difference becomes a feature of a logistic model, :data:`MODEL`, read from
``models/consistency.json`` (written only by ``python training/consistency/fit.py fit
--write``): ``raw`` is its logit, ``score`` its probability under even odds. Missing measurements
contribute nothing. One :class:`ForensicSignal` per face of at least :data:`MIN_FACE_PX`;
smaller faces get no signal, and there is no image-level signal (fusion takes the strongest
face). Weak-to-moderate evidence, never proof: what each feature measures, and the test-split
numbers, are in docs/detectors.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import cv2
import numpy as np

from reclaim.detectors.base import ForensicSignal
from reclaim.detectors.maps import (
    PHOTO_GRID_MIN,
    _as_rgb,
    _boundary_excess,
    blend_overlay,
    draw_outline,
    grid_peak,
    grid_strength,
    noise_heat,
)
from reclaim.faces.landmarks import FaceRegion, hull_mask

__all__ = [
    "ANALYSIS_FACE_PX",
    "FEATURES",
    "MIN_FACE_PX",
    "MODEL",
    "FaceMeasurement",
    "explain",
    "face_consistency",
    "measure_face",
    "score_features",
]

NAME = "face_consistency"
#: Faces whose shorter box side is below this many pixels are not measured.
MIN_FACE_PX = 48
#: Larger faces are measured on a copy downscaled to this face size (except the JPEG grid).
ANALYSIS_FACE_PX = 256
#: Above this many native pixels around the face, the grid is measured on a subsample of lines.
GRID_MAX_PIXELS = 4_000_000
#: Face maps of small faces are enlarged to at least this long side (readability).
MAP_MIN_SIDE = 384
#: A face "has its own, shifted grid" when a non-photo phase beats the next one by this many
#: standard errors (and by this many more than around the face).
GRID_SHIFT_Z = 5.0

FEATURES: tuple[str, ...] = (
    "sharp",  # log(fine-detail ratio face / surroundings)
    "noise",  # log(noise face / surroundings)
    "sharp_abs",  # |sharp|: a difference either way
    "noise_abs",  # |noise|
    "sharp_far",  # |log(fine-detail ratio face / the ring further out)|
    "noise_far",  # |log(noise face / the ring further out)|
    "grid_shift",  # z of a second grid (another phase) in the face that the rest lacks
    "grid_level",  # grid strength at the photo's phase, face minus surroundings
    "colour_ab",  # chroma distance of skin means (a*b*), face vs surroundings
    "colour_l",  # |lightness difference| of skin means
    "seam",  # log(gradient on the outline / beside it)
    "part_sharp",  # largest |log sharpness ratio| of eyes / nose / mouth vs rest of face
    "part_noise",  # largest |log noise ratio| of eyes / nose / mouth vs rest of face
)

# -- fitted model: ``models/consistency.json``, written by training/consistency/fit.py ----------


def _load_model() -> dict[str, Any]:
    """The fitted logistic model (features, standardisation, coefficients, thresholds)."""
    f = resources.files("reclaim.models").joinpath("consistency.json")
    model: dict[str, Any] = json.loads(f.read_text(encoding="utf-8"))
    return model


MODEL: dict[str, Any] = _load_model()

_PARTS = {
    "eyes": list(range(17, 27)) + list(range(36, 48)),
    "nose": list(range(27, 36)),
    "mouth": list(range(48, 68)),
}
_PART_NAMES = {"eyes": ("eyes", "yeux"), "nose": ("nose", "nez"), "mouth": ("mouth", "bouche")}


@dataclass
class FaceMeasurement:
    """What was measured on one face: features (None = not measured) and readable details."""

    features: dict[str, float | None]
    details: dict[str, Any]
    maps: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def vector(self) -> np.ndarray:
        """Features in :data:`FEATURES` order, NaN where not measured."""
        return np.array(
            [np.nan if self.features.get(k) is None else self.features[k] for k in FEATURES],
            dtype=np.float64,
        )


# -- measurement helpers --------------------------------------------------------------------


def _sd(hull: np.ndarray) -> np.ndarray:
    """Signed distance to the hull outline in pixels: positive inside, negative outside."""
    u = hull.astype(np.uint8)
    inside = cv2.distanceTransform(u, cv2.DIST_L2, 3)
    outside = cv2.distanceTransform(1 - u, cv2.DIST_L2, 3)
    return np.asarray(inside - outside, dtype=np.float32)


def _fine_mid(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b1 = cv2.GaussianBlur(g, (0, 0), 1.0)
    b3 = cv2.GaussianBlur(g, (0, 0), 3.0)
    return np.asarray((g - b1) ** 2), np.asarray((b1 - b3) ** 2)


def _ratio(num: np.ndarray, den: np.ndarray, m: np.ndarray) -> float | None:
    if m.sum() < 30:
        return None
    return float(num[m].mean() / (den[m].mean() + 1e-3) + 1e-4)


def _noise(resid: np.ndarray, texture: np.ndarray, m: np.ndarray) -> float | None:
    if m.sum() < 30:
        return None
    t = texture[m]
    flat = t <= np.percentile(t, 40)
    return float(resid[m][flat].mean() + 0.05)


def _log_ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a <= 0 or b <= 0:
        return None
    return math.log(a / b)


def _skin(rgb: np.ndarray) -> np.ndarray:
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    y, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    return np.asarray((cr >= 135) & (cr <= 175) & (cb >= 80) & (cb <= 130) & (y > 30) & (y < 250))


def _peak_z(mean: np.ndarray, se: np.ndarray, exclude: int) -> tuple[float, int]:
    """(z, phase): how many standard errors the strongest phase other than ``exclude`` (and its
    half-block harmonic) stands above the next one; a second, shifted JPEG grid stands out."""
    p = np.asarray(mean, dtype=np.float64).copy()
    p[exclude % 8] = -np.inf
    p[(exclude + 4) % 8] = -np.inf
    o = np.argsort(p)[::-1]
    z = (p[o[0]] - p[o[1]]) / math.sqrt(float(se[o[0]] ** 2 + se[o[1]] ** 2) + 1e-9)
    return float(z), int(o[0])


def _grid_features(
    grey: np.ndarray, face: np.ndarray, ring: np.ndarray, rest: np.ndarray, origin: tuple[int, int]
) -> dict[str, Any]:
    """JPEG grid: phase profiles of face / ring / rest (native pixels, photo phases)."""
    h, w = grey.shape
    step = max(1, math.ceil(h * w / GRID_MAX_PIXELS))
    prof: dict[str, list[np.ndarray]] = {"face": [], "ring": [], "rest": []}
    serr: dict[str, list[np.ndarray]] = {"face": [], "ring": [], "rest": []}
    masks = {"face": face, "ring": ring, "rest": rest}
    for axis in (1, 0):
        if axis == 1:  # column phases: whole rows, every step-th band of 8 rows
            sel = np.nonzero((np.arange(h) // 8) % step == 0)[0]
            e = _boundary_excess(grey[sel], 1)
            idx = (np.arange(w) + origin[0]) % 8
            sub = {k: m[sel] for k, m in masks.items()}
        else:  # row phases: the transpose
            sel = np.nonzero((np.arange(w) // 8) % step == 0)[0]
            e = _boundary_excess(grey[:, sel], 0).T
            idx = (np.arange(h) + origin[1]) % 8
            sub = {k: m[:, sel].T for k, m in masks.items()}
        for k, m in sub.items():
            mm = m.astype(np.float32)
            em = e * mm
            num = np.bincount(idx, weights=em.sum(axis=0), minlength=8)
            sq = np.bincount(idx, weights=(em * e).sum(axis=0), minlength=8)
            den = np.maximum(np.bincount(idx, weights=mm.sum(axis=0), minlength=8), 1.0)
            mean = num / den
            prof[k].append(mean)
            serr[k].append(np.sqrt(np.maximum(sq / den - mean**2, 1e-6) / den))
    # the photo's grid phase: from everything around the face
    mx, gx = grid_peak(prof["rest"][0])
    my, gy = grid_peak(prof["rest"][1])
    out: dict[str, Any] = {"photo_grid": [gx, gy], "photo_grid_strength": min(mx, my)}

    photo = (gx, gy)
    at_face = float(np.mean([grid_strength(prof["face"][a], photo[a])[0] for a in (0, 1)]))
    at_ring = float(np.mean([grid_strength(prof["ring"][a], photo[a])[0] for a in (0, 1)]))
    own = []  # per axis: z of the face's own second grid, discounted when the rest has it too
    shift = []
    for a in (0, 1):
        z, phase = _peak_z(prof["face"][a], serr["face"][a], photo[a])
        pf = np.asarray(prof["face"][a], dtype=np.float64)
        pr = np.asarray(prof["rest"][a], dtype=np.float64)
        cand = [i for i in range(8) if i not in (photo[a], (photo[a] + 4) % 8)]
        eff_f = pf[phase] - np.sort(pf[cand])[-2]
        eff_r = pr[phase] - float(np.median(pr[cand]))
        factor = float(np.clip(1.0 - eff_r / max(eff_f, 1e-6), 0.0, 1.0))
        own.append(z * factor)
        shift.append((phase - photo[a]) % 8 if z * factor > GRID_SHIFT_Z else 0)
    out.update(
        grid_shift=max(own),
        grid_level=at_face - at_ring,
        face_grid_shift=shift,
        face_grid_z=[round(v, 3) for v in own],
        face_grid_at_photo_phase=at_face,
        ring_grid_at_photo_phase=at_ring,
    )
    return out


# -- measurement ------------------------------------------------------------------------------


def measure_face(
    rgb: np.ndarray, region: FaceRegion, *, maps: bool = False
) -> FaceMeasurement | None:
    """Measure one face against its surroundings; None when the face is too small or invalid."""
    try:
        img = _as_rgb(rgb)
    except TypeError:  # not an RGB or grey image array
        return None
    if img.shape[0] < 8 or img.shape[1] < 8:
        return None
    pts = np.asarray(region.points, dtype=np.float64)
    if pts.shape != (68, 2) or not np.isfinite(pts).all():
        return None
    H, W = img.shape[:2]
    x0b, y0b = pts.min(axis=0)
    x1b, y1b = pts.max(axis=0)
    size = float(min(region.size, max(x1b - x0b, y1b - y0b)))
    if size < MIN_FACE_PX:
        return None
    pad = 0.5 * size
    cx0, cy0 = max(0, int(x0b - pad)), max(0, int(y0b - pad))
    cx1, cy1 = min(W, math.ceil(x1b + pad)), min(H, math.ceil(y1b + pad))
    if cx1 - cx0 < 16 or cy1 - cy0 < 16:
        return None
    native = img[cy0:cy1, cx0:cx1]
    p_nat = pts - [cx0, cy0]

    # working copy (scale-free measurements)
    sc = min(1.0, ANALYSIS_FACE_PX / size)
    if sc < 1.0:
        wh = (max(16, round(native.shape[1] * sc)), max(16, round(native.shape[0] * sc)))
        work = np.asarray(cv2.resize(native, wh, interpolation=cv2.INTER_AREA))
    else:
        work = native
    sx = work.shape[1] / native.shape[1]
    sy = work.shape[0] / native.shape[0]
    p_w = p_nat * [sx, sy]
    s_w = size * (sx + sy) / 2
    h, w = work.shape[:2]
    hull = hull_mask(p_w, h, w)
    if hull.sum() < (MIN_FACE_PX * sc) ** 2 / 4:  # degenerate landmarks (a line, a dot)
        return None
    sd = _sd(hull)
    face = sd >= 0.05 * s_w
    ring = (sd <= -0.04 * s_w) & (sd >= -0.25 * s_w)
    far = (sd < -0.25 * s_w) & (sd >= -0.5 * s_w)  # beyond a blend mask wider than the hull

    g = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY).astype(np.float32)
    fine, mid = _fine_mid(g)
    resid = np.abs(g - cv2.medianBlur(g, 3))
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    grad = np.sqrt(gx * gx + gy * gy)
    texture = cv2.GaussianBlur(grad, (0, 0), 2.0)

    feats: dict[str, float | None] = dict.fromkeys(FEATURES)
    det: dict[str, Any] = {"face_px": round(size), "analysis_scale": round(sc, 4)}

    sh_f, sh_r = _ratio(fine, mid, face), _ratio(fine, mid, ring)
    feats["sharp"] = _log_ratio(sh_f, sh_r)
    no_f, no_r = _noise(resid, texture, face), _noise(resid, texture, ring)
    feats["noise"] = _log_ratio(no_f, no_r)
    feats["sharp_abs"] = None if feats["sharp"] is None else abs(feats["sharp"])
    far_s = _log_ratio(sh_f, _ratio(fine, mid, far))
    far_n = _log_ratio(no_f, _noise(resid, texture, far))
    feats["sharp_far"] = None if far_s is None else abs(far_s)
    feats["noise_far"] = None if far_n is None else abs(far_n)
    det["sharp_far_ratio"] = None if far_s is None else round(math.exp(far_s), 3)
    det["noise_far_ratio"] = None if far_n is None else round(math.exp(far_n), 3)
    feats["noise_abs"] = None if feats["noise"] is None else abs(feats["noise"])

    # seam: gradient on the outline vs just inside / outside
    bw = max(1.5, 0.03 * s_w)
    band = np.abs(sd) <= bw
    inner = (sd >= 3 * bw) & (sd <= 5 * bw)
    outer = (sd <= -3 * bw) & (sd >= -5 * bw)
    if band.sum() >= 30 and inner.sum() >= 30 and outer.sum() >= 30:
        e_band = float(grad[band].mean())
        e_side = 0.5 * float(grad[inner].mean() + grad[outer].mean())
        feats["seam"] = math.log((e_band + 1.0) / (e_side + 1.0))

    # colour of skin, face vs around
    if not (
        np.array_equal(work[..., 0], work[..., 1]) and np.array_equal(work[..., 1], work[..., 2])
    ):
        skin = _skin(work)
        parts_mask = np.zeros((h, w), bool)
        for k in ("eyes", "mouth"):
            parts_mask |= hull_mask(p_w[_PARTS[k]], h, w)
        parts_mask = cv2.dilate(parts_mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        fs = face & skin & ~parts_mask
        rs = ring & skin
        if fs.sum() >= 50 and rs.sum() >= 50 and rs.sum() >= 0.05 * ring.sum():
            lab = cv2.cvtColor(work.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
            mf = lab[fs].mean(axis=0)
            mr = lab[rs].mean(axis=0)
            feats["colour_ab"] = float(np.hypot(mf[1] - mr[1], mf[2] - mr[2]))
            feats["colour_l"] = float(abs(mf[0] - mr[0]))
            det["colour"] = {
                "face_lab": [round(float(v), 1) for v in mf],
                "around_lab": [round(float(v), 1) for v in mr],
            }

    # parts vs the rest of the face
    part_masks = {}
    rest_face = face.copy()
    for k, idx in _PARTS.items():
        pm = hull_mask(p_w[idx], h, w)
        pm = (
            cv2.dilate(
                pm.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=max(1, round(0.04 * s_w))
            )
            > 0
        )
        part_masks[k] = pm
        rest_face &= ~pm
    ps: dict[str, float] = {}
    pn: dict[str, float] = {}
    sh_rest = _ratio(fine, mid, rest_face)
    no_rest = _noise(resid, texture, rest_face)
    for k, pm in part_masks.items():
        a = _log_ratio(_ratio(fine, mid, pm), sh_rest)
        b = _log_ratio(_noise(resid, texture, pm), no_rest)
        if a is not None:
            ps[k] = a
        if b is not None:
            pn[k] = b
    if ps:
        feats["part_sharp"] = max(abs(v) for v in ps.values())
    if pn:
        feats["part_noise"] = max(abs(v) for v in pn.values())
    det["parts"] = {
        k: {
            "sharp_log": round(ps[k], 3) if k in ps else None,
            "noise_log": round(pn[k], 3) if k in pn else None,
        }
        for k in part_masks
    }

    # JPEG grid at native resolution: region labels (1 face, 2 ring, 3 further out) brought
    # back to native pixels
    labels = np.zeros((h, w), np.uint8)
    labels[sd <= -0.04 * s_w] = 3
    labels[ring] = 2
    labels[face] = 1
    if labels.shape != native.shape[:2]:
        labels = np.asarray(
            cv2.resize(labels, (native.shape[1], native.shape[0]), interpolation=cv2.INTER_NEAREST)
        )
    f_nat = labels == 1
    rest_nat = labels >= 2
    if f_nat.sum() >= 256 and rest_nat.sum() >= 256:
        grey_nat = np.asarray(cv2.cvtColor(native, cv2.COLOR_RGB2GRAY))
        gfe = _grid_features(grey_nat, f_nat, labels == 2, rest_nat, (cx0, cy0))
        if gfe["photo_grid_strength"] > PHOTO_GRID_MIN or gfe["grid_shift"] > GRID_SHIFT_Z:
            feats["grid_shift"] = gfe["grid_shift"]
            feats["grid_level"] = gfe["grid_level"]
        det["grid"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in gfe.items()}

    det.update(
        sharp_ratio=None if feats["sharp"] is None else round(math.exp(feats["sharp"]), 3),
        noise_ratio=None if feats["noise"] is None else round(math.exp(feats["noise"]), 3),
    )
    m = FaceMeasurement(feats, det)
    if maps:
        m.maps = _face_maps(work, p_w, sd, grad, s_w)
    return m


def _face_maps(
    work: np.ndarray, p_w: np.ndarray, sd: np.ndarray, grad: np.ndarray, s_w: float
) -> dict[str, np.ndarray]:
    """ "seam" and "noise" maps of the face's area (the working crop), outline drawn in blue."""
    k = max(1, math.ceil(MAP_MIN_SIDE / max(work.shape[:2])))  # small faces: enlarge to read
    bw = max(1.5, 0.03 * s_w)
    beside = ((sd >= 3 * bw) & (sd <= 5 * bw)) | ((sd <= -3 * bw) & (sd >= -5 * bw))
    ref = float(grad[beside].mean()) + 1.0 if beside.any() else float(grad.mean()) + 1.0
    band = np.clip(1.0 - np.abs(sd) / max(2.0, 2.5 * bw), 0.0, 1.0)
    seam = np.clip((grad / ref - 1.0) / 2.0, 0.0, 1.0) * band
    noise = noise_heat(work)
    if k > 1:
        size = (work.shape[1] * k, work.shape[0] * k)
        work = np.asarray(cv2.resize(work, size, interpolation=cv2.INTER_CUBIC))
        seam = np.asarray(cv2.resize(seam, size, interpolation=cv2.INTER_LINEAR))
        noise = np.asarray(cv2.resize(noise, size, interpolation=cv2.INTER_LINEAR))
    return {
        "seam": draw_outline(blend_overlay(work, seam), p_w, scale=k),
        "noise": draw_outline(blend_overlay(work, noise), p_w, scale=k),
    }


# -- scoring ----------------------------------------------------------------------------------


def _z(x: np.ndarray, model: dict[str, Any]) -> np.ndarray:
    mean = np.asarray(model["mean"], dtype=np.float64)
    scale = np.asarray(model["scale"], dtype=np.float64)
    z = (np.asarray(x, dtype=np.float64) - mean) / scale
    return np.asarray(np.clip(np.nan_to_num(z, nan=0.0), -6.0, 6.0))


def score_features(x: np.ndarray, model: dict[str, Any] | None = None) -> tuple[float, float]:
    """(raw logit, calibrated score) of a feature vector (NaN = not measured → contributes 0)."""
    mdl = model or MODEL
    raw = float(_z(x, mdl) @ np.asarray(mdl["coef"], dtype=np.float64) + float(mdl["intercept"]))
    return raw, 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, raw))))


def _strength(score: float) -> tuple[str, str]:
    t = MODEL["thresholds"]
    if score >= t["strong"]:
        return "strong", "fort"
    if score >= t["moderate"]:
        return "moderate", "modéré"
    return "weak", "faible"


# measurement groups: which features make up each readable sentence
_GROUPS: dict[str, tuple[str, ...]] = {
    "sharp": ("sharp", "sharp_abs"),
    "noise": ("noise", "noise_abs"),
    "sharp_far": ("sharp_far",),
    "noise_far": ("noise_far",),
    "grid": ("grid_shift", "grid_level"),
    "colour": ("colour_ab", "colour_l"),
    "seam": ("seam",),
    "parts": ("part_sharp", "part_noise"),
}
#: A measurement is cited when it adds at least this much to the logit.
CITE_MIN = 0.25


def _fr(v: float, nd: int = 1) -> str:
    return f"{v:.{nd}f}".replace(".", ",")


def _sentence(group: str, m: FaceMeasurement) -> tuple[str, str] | None:
    f = m.features
    if group == "sharp" and f["sharp"] is not None:
        r = math.exp(f["sharp"])
        if r >= 1.0:
            return (
                f"the face has {r:.1f}× the fine detail of its surroundings (sharper)",
                f"le visage a {_fr(r)}× le détail fin de son entourage (plus net)",
            )
        return (
            f"the face has {1 / r:.1f}× less fine detail than its surroundings (blurrier)",
            f"le visage a {_fr(1 / r)}× moins de détail fin que son entourage (plus flou)",
        )
    if group == "noise" and f["noise"] is not None:
        r = math.exp(f["noise"])
        if r < 1.0:
            pct = round((1 - r) * 100)
            return (
                f"the noise level inside the face is {pct}% lower than around it",
                f"le bruit dans le visage est {pct} % plus faible qu'autour",
            )
        return (
            f"the noise level inside the face is {r:.1f}× that around it",
            f"le bruit dans le visage vaut {_fr(r)}× celui d'autour",
        )
    if group == "sharp_far" and m.details.get("sharp_far_ratio"):
        r = float(m.details["sharp_far_ratio"])
        more, plus = ("more", "plus") if r >= 1 else ("less", "moins")
        r = r if r >= 1 else 1 / r
        return (
            f"the face has {r:.1f}× {more} fine detail than the scene a little further around it",
            f"le visage a {_fr(r)}× {plus} de détail fin que la scène un peu plus loin autour",
        )
    if group == "noise_far" and m.details.get("noise_far_ratio"):
        r = float(m.details["noise_far_ratio"])
        more, plus = ("higher", "plus fort") if r >= 1 else ("lower", "plus faible")
        r = r if r >= 1 else 1 / r
        return (
            f"the noise level inside the face is {r:.1f}× {more} than in the scene a little "
            "further around it",
            f"le bruit dans le visage est {_fr(r)}× {plus} que dans la scène un peu plus loin",
        )
    if group == "grid" and f["grid_shift"] is not None:
        grid = m.details.get("grid") or {}
        dx, dy = grid.get("face_grid_shift", [0, 0])
        if f["grid_shift"] > GRID_SHIFT_Z and (dx or dy):
            return (
                f"the JPEG 8×8 grid inside the face is shifted by ({dx}, {dy}) px relative to "
                "the rest of the image",
                f"la grille JPEG 8×8 du visage est décalée de ({dx}, {dy}) px par rapport au "
                "reste de l'image",
            )
        if f["grid_level"] is not None:
            stronger = f["grid_level"] > 0
            return (
                "JPEG blocking is "
                + ("stronger" if stronger else "weaker")
                + " inside the face than around it (another compression history)",
                "les blocs JPEG sont "
                + ("plus" if stronger else "moins")
                + " marqués dans le visage qu'autour (une autre histoire de compression)",
            )
    if group == "colour" and f["colour_ab"] is not None:
        return (
            f"the skin colour of the face differs from the skin around it by "
            f"ΔE {f['colour_ab']:.1f} in hue (a*b*) and {f['colour_l'] or 0:.1f} in lightness",
            f"la couleur de peau du visage diffère de celle autour de ΔE "
            f"{_fr(f['colour_ab'])} en teinte (a*b*) et {_fr(f['colour_l'] or 0)} en luminosité",
        )
    if group == "seam" and f["seam"] is not None:
        r = math.exp(f["seam"])
        return (
            f"edges along the face outline are {r:.1f}× stronger than beside it "
            "(a possible blending seam)",
            f"les contours le long du bord du visage sont {_fr(r)}× plus forts qu'à côté "
            "(une possible couture de fusion)",
        )
    if group == "parts":
        parts = m.details.get("parts") or {}
        best: tuple[str, float] | None = None
        for k, v in parts.items():
            s = v.get("sharp_log")
            if s is not None and (best is None or abs(s) > abs(best[1])):
                best = (k, s)
        if best is not None:
            en, fr = _PART_NAMES[best[0]]
            r = math.exp(best[1])
            if r >= 1.0:
                return (
                    f"the {en} area has {r:.1f}× the fine detail of the rest of the face",
                    f"la zone {fr} a {_fr(r)}× le détail fin du reste du visage",
                )
            return (
                f"the {en} area has {1 / r:.1f}× less fine detail than the rest of the face",
                f"la zone {fr} a {_fr(1 / r)}× moins de détail fin que le reste du visage",
            )
    return None


def explain(m: FaceMeasurement, model: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The measurements that raise the score, strongest first: group, contribution, en, fr."""
    mdl = model or MODEL
    contrib = _z(m.vector(), mdl) * np.asarray(mdl["coef"], dtype=np.float64)
    by_name = dict(zip(FEATURES, contrib, strict=True))
    out: list[dict[str, Any]] = []
    for group, names in _GROUPS.items():
        c = float(sum(by_name[n] for n in names))
        if c < CITE_MIN:
            continue
        s = _sentence(group, m)
        if s is not None:
            out.append({"measurement": group, "contribution": round(c, 3), "en": s[0], "fr": s[1]})
    out.sort(key=lambda d: -float(d["contribution"]))
    return out


def face_consistency(
    rgb: np.ndarray, regions: list[FaceRegion], *, maps: bool = False
) -> list[ForensicSignal]:
    """One ``face_consistency`` signal (kind "edited") per face large enough to measure.

    ``raw`` is the model's logit, ``score`` its calibrated probability (even odds); the evidence
    cites the measurements that raise the score most (at most three) and the strength word from
    the thresholds fitted on real photos: "weak" below the score that 1.5 % of the real
    photos of any calibration set reach, "moderate" from there, "strong" from the 0.5 % level.
    ``details`` holds every measurement; with ``maps`` the signal carries "seam" and "noise"
    maps of the face's area. Faces too small to measure, or with unusable landmarks, get no
    signal.
    """
    out: list[ForensicSignal] = []
    for i, reg in enumerate(regions):
        try:
            m = measure_face(rgb, reg, maps=maps)
        except (cv2.error, ValueError, IndexError):  # degenerate geometry: not measurable
            m = None
        if m is None:
            continue
        raw, score = score_features(m.vector())
        word_en, word_fr = _strength(score)
        cited = explain(m)[:3]
        if cited:
            top_en = "; ".join(c["en"] for c in cited)
            top_fr = " ; ".join(c["fr"] for c in cited)
        else:
            top_en = "no difference beyond what real photos commonly show"
            top_fr = "aucune différence au-delà de ce que montrent couramment de vraies photos"
        evidence = {
            "en": f"Face {i + 1} compared with its surroundings: {top_en}. Consistency evidence "
            f"{word_en} (score {score:.2f}).",
            "fr": f"Visage {i + 1} comparé à son entourage : {top_fr}. Indice d'incohérence "
            f"{word_fr} (score {_fr(score, 2)}).",
        }
        details = dict(m.details)
        details["face"] = i
        details["box"] = [int(v) for v in reg.box]
        details["strength"] = word_en
        details["cited"] = [c["measurement"] for c in cited]
        details["features"] = {
            k: (None if v is None else round(float(v), 4)) for k, v in m.features.items()
        }
        out.append(
            ForensicSignal(
                name=NAME,
                score=score,
                kind="edited",
                evidence=evidence,
                raw=raw,
                details=details,
                maps=m.maps,
            )
        )
    return out
