"""The learned face-blend detector (``face_blend``): a compact CNN trained the self-blended way.

Trained only on real faces blended with a jittered copy of themselves (Shiohara & Yamasaki, CVPR
2022, "Self-Blended Images"), it learns what a blend leaves behind (a seam, a colour or sharpness
step between the inner face and its surroundings) rather than one swap tool's fingerprints; a
second head draws where the blend boundary runs, the explanation map.

Model: ``models/face_blend.onnx`` (card ``face_blend.md``; written by ``training/faceblend/``),
run with onnxruntime on one thread, loaded once per process on first use. Input: the face crop
(:func:`crop_params` / :func:`crop_face`) at 128×128 RGB plus the landmarks' hull as a fourth
channel (:func:`hull_channel`). Outputs: a logit (``raw``) and the boundary map; ``score`` is the
logit through the calibration stored in the ONNX metadata (with the threshold and the test-split
distributions the evidence quotes). A weak signal: it catches a face softer than its
surroundings, not colour-only changes, face-part splices or generated faces (numbers:
docs/detectors.md, ``face_blend.md``).
"""

from __future__ import annotations

import importlib
import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from reclaim.detectors.base import ForensicSignal
from reclaim.errors import ReclaimError
from reclaim.faces.landmarks import FaceRegion

__all__ = [
    "CHANNELS",
    "INPUT_SIZE",
    "MAP_SIZE",
    "MODEL_PATH",
    "FaceBlendModelMissing",
    "crop_face",
    "crop_params",
    "face_blend",
    "face_crop",
    "face_inputs",
    "hull_channel",
    "predict",
]

INPUT_SIZE = 128
CHANNELS = 4  # RGB + landmark hull
MAP_SIZE = 32
#: Crop side = CROP_SCALE × the larger extent of the 68 landmarks ...
CROP_SCALE = 1.35
#: ... centred CROP_SHIFT × their height above the landmarks' centre (forehead in view).
CROP_SHIFT = 0.08
MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "face_blend.onnx"
NAME = "face_blend"


class FaceBlendModelMissing(ReclaimError):
    """The face-blend ONNX model is missing or unreadable."""


# -- the crop (shared with training: training/faceblend/data.py imports these) -----------------


def crop_params(points: np.ndarray) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square face crop from 68 (x, y) landmarks."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x0, y0 = p.min(0)
    x1, y1 = p.max(0)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    return (
        float((x0 + x1) / 2),
        float((y0 + y1) / 2 - CROP_SHIFT * h),
        float(CROP_SCALE * max(w, h)),
    )


def crop_face(img: np.ndarray, params: tuple[float, float, float], size: int) -> np.ndarray:
    """The square ``params`` of ``img`` (H×W or H×W×C), zero outside the image, at size×size."""
    cx, cy, side = params
    s = max(2, round(side))
    x0, y0 = round(cx - s / 2), round(cy - s / 2)
    h, w = img.shape[:2]
    out = np.zeros((s, s, *img.shape[2:]), dtype=img.dtype)
    x_l, t, r, b = max(0, x0), max(0, y0), min(w, x0 + s), min(h, y0 + s)
    if r > x_l and b > t:
        out[t - y0 : b - y0, x_l - x0 : r - x0] = img[t:b, x_l:r]
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(out, (size, size), interpolation=interp))


def hull_channel(
    points: np.ndarray, params: tuple[float, float, float], size: int = INPUT_SIZE
) -> np.ndarray:
    """The convex hull of the landmarks in crop coordinates: uint8 size×size, 0 or 255.

    The model's fourth input channel: it says where a face swap or paste would have its edge,
    so that the network compares the face with its surroundings there.
    """
    cx, cy, side = params
    s = max(2, round(side))
    x0, y0 = round(cx - s / 2), round(cy - s / 2)
    p = (np.asarray(points, np.float64).reshape(-1, 2) - (x0, y0)) * (size / s)
    m = np.zeros((size, size), np.uint8)
    hull = cv2.convexHull(np.round(p * 16).astype(np.int32))
    cv2.fillConvexPoly(m, hull, 255, lineType=cv2.LINE_AA, shift=4)
    return m


def face_crop(
    img: np.ndarray, points: np.ndarray, params: tuple[float, float, float]
) -> np.ndarray:
    """One model input as uint8 (INPUT_SIZE, INPUT_SIZE, 4): RGB crop + landmark hull."""
    rgb = crop_face(img, params, INPUT_SIZE)
    return np.concatenate([rgb, hull_channel(points, params)[..., None]], axis=2)


def face_inputs(rgb: np.ndarray, regions: list[FaceRegion]) -> np.ndarray:
    """The model's input batch (N, 4, INPUT_SIZE, INPUT_SIZE) float32 in [0, 1]."""
    img = np.ascontiguousarray(rgb, dtype=np.uint8)
    crops = [face_crop(img, r.points, crop_params(r.points)) for r in regions]
    if not crops:
        return np.zeros((0, CHANNELS, INPUT_SIZE, INPUT_SIZE), np.float32)
    return np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32) / 255.0


# -- the model -----------------------------------------------------------------------------------


@dataclass
class _Model:
    session: Any
    meta: dict[str, Any]
    rates: dict[str, np.ndarray]  # sorted test-split logits per population


_MODEL: _Model | None = None
_LOCK = threading.Lock()


def _load(path: Path | None = None) -> _Model:
    ort: Any = importlib.import_module("onnxruntime")
    path = path or MODEL_PATH

    if not path.is_file():
        raise FaceBlendModelMissing(
            f"face-blend model not found at {path}: reinstall reclaim (the file ships with it)"
        )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    try:
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        meta = json.loads(sess.get_modelmeta().custom_metadata_map.get("reclaim", "{}"))
    except Exception as e:  # onnxruntime raises its own exception types
        raise FaceBlendModelMissing(f"face-blend model {path} cannot be loaded: {e}") from e
    rates = {k: np.sort(np.asarray(v, np.float32)) for k, v in meta.get("rates", {}).items()}
    return _Model(sess, meta, rates)


def _model() -> _Model:
    global _MODEL
    if _MODEL is None:
        with _LOCK:
            if _MODEL is None:
                _MODEL = _load()
    return _MODEL


def predict(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run the model on a (N, 4, 128, 128) batch: logits (N,) and boundary maps (N, 32, 32)."""
    m = _model()
    if batch.shape[0] == 0:
        return np.zeros(0, np.float32), np.zeros((0, MAP_SIZE, MAP_SIZE), np.float32)
    logit, bmap = m.session.run(None, {"image": np.ascontiguousarray(batch, np.float32)})
    return (
        np.asarray(logit, np.float32).reshape(-1),
        np.asarray(bmap, np.float32).reshape(-1, MAP_SIZE, MAP_SIZE),
    )


def calibrated(raw: float) -> float:
    """The calibrated score of a logit (logistic fit on the calib split)."""
    cal = _model().meta.get("calibration", {"a": 1.0, "b": 0.0})
    z = float(cal["a"]) * raw + float(cal["b"])
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def _share_at_or_above(sorted_vals: np.ndarray | None, raw: float) -> float | None:
    if sorted_vals is None or sorted_vals.size == 0:
        return None
    return float(1.0 - np.searchsorted(sorted_vals, raw, side="left") / sorted_vals.size)


def _pct(x: float | None) -> str:
    if x is None:
        return "?"
    return f"{100 * x:.0f}" if x >= 0.01 or x == 0 else f"{100 * x:.1f}"


def _evidence(score: float, raw: float, small: bool) -> tuple[dict[str, str], dict[str, Any]]:
    m = _model()
    fake = _share_at_or_above(m.rates.get("sbi_test"), raw)
    splice = _share_at_or_above(m.rates.get("yonsei_fake_test"), raw)
    real = _share_at_or_above(m.rates.get("real_test"), raw)
    if real is not None and real <= 0.02:
        en_s, fr_s = "strong", "fort"
    elif real is not None and real <= 0.10:
        en_s, fr_s = "moderate", "modéré"
    else:
        en_s, fr_s = "weak", "faible"
    sc_en = f"{score:.2f}"
    sc_fr = sc_en.replace(".", ",")
    en = (
        f"The face-blend model, trained on self-blended faces, gives {sc_en} ({en_s}): in our "
        f"tests, blended faces score this high in {_pct(fake)}% of cases (Photoshop face-part "
        f"splices: {_pct(splice)}%), real photos in {_pct(real)}%."
    )
    fr = (
        f"Le modèle de fusion de visage, entraîné sur des visages auto-fusionnés, donne {sc_fr} "
        f"({fr_s}) : dans nos tests, les visages fusionnés atteignent ce score dans "
        f"{_pct(fake)} % des cas (collages de parties du visage sous Photoshop : "
        f"{_pct(splice)} %), les photos réelles dans {_pct(real)} %."
    )
    if small:
        en += " The face is small (under 64 px): the model sees little detail."
        fr += " Le visage est petit (moins de 64 px) : le modèle voit peu de détails."
    details = {
        "strength": en_s,
        "above_threshold": bool(raw >= float(m.meta.get("threshold", {}).get("raw", math.inf))),
        "blended_test_share": fake,
        "splice_test_share": splice,
        "real_test_share": real,
    }
    return {"en": en, "fr": fr}, details


def _heat_overlay(
    rgb: np.ndarray, params: tuple[float, float, float], bmap: np.ndarray
) -> np.ndarray:
    """The predicted boundary (crop coordinates) placed over the photo and rendered."""
    from reclaim.detectors import maps

    h, w = rgb.shape[:2]
    f = maps.output_factor(h, w)
    oh, ow = math.ceil(h / f), math.ceil(w / f)
    heat = np.zeros((oh, ow), np.float32)
    cx, cy, side = (v / f for v in params)
    s = max(2, round(side))
    x0, y0 = round(cx - s / 2), round(cy - s / 2)
    patch = cv2.resize(
        np.clip(bmap, 0, 1).astype(np.float32), (s, s), interpolation=cv2.INTER_LINEAR
    )
    x_l, t, r, b = max(0, x0), max(0, y0), min(ow, x0 + s), min(oh, y0 + s)
    if r > x_l and b > t:
        heat[t:b, x_l:r] = patch[t - y0 : b - y0, x_l - x0 : r - x0]
    return maps.blend_overlay(rgb, heat)


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    img = np.asarray(rgb)
    if img.dtype != np.uint8:
        img = np.clip(np.nan_to_num(img.astype(np.float32)), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim != 3 or img.shape[2] != 3:
        raise TypeError(f"expected an RGB or grey image array, got shape {img.shape}")
    return np.ascontiguousarray(img)


def face_blend(
    rgb: np.ndarray, regions: list[FaceRegion], *, maps: bool = False
) -> list[ForensicSignal]:
    """One ``face_blend`` signal per face region of an upright RGB uint8 image."""
    if not regions:
        return []
    img = _as_rgb(rgb)
    logits, bmaps = predict(face_inputs(img, regions))
    out = []
    for region, raw, bmap in zip(regions, logits, bmaps, strict=True):
        r = float(raw)
        score = calibrated(r)
        evidence, details = _evidence(score, r, region.size < 64)
        details.update(
            {
                "box": [int(v) for v in region.box],
                "face_px": int(region.size),
                "boundary_peak": round(float(bmap.max()), 4),
            }
        )
        sig = ForensicSignal(
            name=NAME, score=score, kind="edited", evidence=evidence, raw=r, details=details
        )
        if maps:
            sig.maps["blend"] = _heat_overlay(img, crop_params(region.points), bmap)
        out.append(sig)
    return out
