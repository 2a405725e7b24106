"""One calibrated score from the pixel signals, and the threshold that keeps false accusations
of real photos at or under 2 %.

Inputs (per photo, or per clip for videos): the strongest face's ``face_consistency`` and
``face_blend`` raw outputs, the ``synthetic_image`` raw output, and whether a face was checked.
A logistic model combines them; it is fitted on the ``calib`` split of every labelled set
(``bench/detect.py --fit`` writes ``models/fusion.json``), with each set's real and fake halves
weighted equally, so the score reads as a probability under even odds. The threshold is the
lowest score that at most 2 % of the real photos of *each* calibration set reach (FFHQ portraits,
Yonsei real faces, the real-color photos), so it holds on the worst of them, not on their mix.

Provenance (C2PA, metadata, watermark) is decisive when present and is not fused here: see
``reclaim.check``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from reclaim.signals.forensic import ForensicSignal

__all__ = ["FEATURES", "FusionModel", "feature_vector", "fit_logistic", "fuse", "load_model"]

FACE_SIGNALS = ("face_consistency", "face_blend")
FEATURES = ("face_consistency", "face_blend", "synthetic_image", "has_face")
MODEL_FILE = "fusion.json"


def feature_vector(signals: list[ForensicSignal] | list[dict[str, Any]]) -> np.ndarray:
    """[consistency, blend, synthetic, has_face]: face signals are the strongest face's raw
    output (0 when no face was checked); ``has_face`` lets the model treat that 0 apart."""
    best: dict[str, float] = {}
    for s in signals:
        name = s["name"] if isinstance(s, dict) else s.name
        raw = float(s["raw"] if isinstance(s, dict) else s.raw)
        if name in FEATURES:
            best[name] = max(best.get(name, -math.inf), raw)
    has_face = any(n in best for n in FACE_SIGNALS)
    return np.array(
        [
            best.get("face_consistency", 0.0),
            best.get("face_blend", 0.0),
            best.get("synthetic_image", 0.0),
            1.0 if has_face else 0.0,
        ],
        dtype=np.float64,
    )


@dataclass(frozen=True)
class FusionModel:
    coef: tuple[float, ...]
    intercept: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    threshold: float  # fused score at or above which a photo is called likely manipulated
    info: dict[str, Any]

    def score(self, x: np.ndarray) -> float:
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return float(1.0 / (1.0 + math.exp(-(float(np.dot(self.coef, z)) + self.intercept))))

    def as_dict(self) -> dict[str, Any]:
        return {
            "features": list(FEATURES),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "mean": list(self.mean),
            "scale": list(self.scale),
            "threshold": self.threshold,
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FusionModel:
        if list(d["features"]) != list(FEATURES):
            raise ValueError("fusion.json was fitted on other features; refit it")
        return cls(
            coef=tuple(float(v) for v in d["coef"]),
            intercept=float(d["intercept"]),
            mean=tuple(float(v) for v in d["mean"]),
            scale=tuple(float(v) for v in d["scale"]),
            threshold=float(d["threshold"]),
            info=dict(d.get("info", {})),
        )


@lru_cache(maxsize=1)
def load_model() -> FusionModel | None:
    """The committed fusion model, or None when it has not been fitted yet."""
    f = resources.files("reclaim.models").joinpath(MODEL_FILE)
    if not f.is_file():
        return None
    return FusionModel.from_dict(json.loads(f.read_text(encoding="utf-8")))


def fuse(signals: list[ForensicSignal]) -> tuple[float, bool] | None:
    """(fused score, at or above the threshold), or None without a model or without signals."""
    if not signals:
        return None
    m = load_model()
    if m is None:
        return None
    s = m.score(feature_vector(signals))
    return s, s >= m.threshold


def fit_logistic(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = 1e-3, iters: int = 100
) -> tuple[np.ndarray, float]:
    """Weighted logistic regression by Newton steps: (coef, intercept) for standardised x."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    b = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    w = w / w.sum()
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ b, -40, 40)))
        g = xb.T @ (w * (p - y)) + reg * b
        h = (xb * (w * p * (1 - p))[:, None]).T @ xb + np.diag(reg) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(h, g)
        b -= step
        if np.abs(step).max() < 1e-10:
            break
    return b[:-1], float(b[-1])
