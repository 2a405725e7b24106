"""One calibrated score from the pixel signals, and the threshold that keeps false accusations
of real photos at or under 2 %.

The rule: **the strongest calibrated signal decides.** Each pixel signal's raw output (for a
photo with several faces, its strongest face; for a video, its per-clip aggregate) goes through
its own logistic calibration ``a·raw + b``; the fused logit is the largest of them, and the
fused score its sigmoid. Signals that did not run (no face, no CLIP encoder) take no part. A
maximum and not a sum: the signals look for different fakes, and in a sum one signal's silence
dilutes the one that sees it.

The model is ``models/fusion.json``, written only by ``python -m training.fusion.fit`` (which
signals take part, their calibrations, the threshold and per-signal levels folded into the
intercepts). ``fuse`` returns None without a model or without any fused signal; ``from_dict``
raises ValueError for a file fitted with another rule or naming unknown signals. Provenance
(C2PA, metadata, watermark) is decisive when present and is not fused here: see
``reclaim.detectors.check``. Why each choice, with its numbers: docs/detectors.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from reclaim.detectors.base import ForensicSignal

__all__ = [
    "FEATURES",
    "FusionModel",
    "fit_logistic",
    "fuse",
    "load_model",
    "signal_raws",
]

#: The pixel signals the fusion reads, by name.
FEATURES = (
    "face_consistency",
    "face_blend",
    "synthetic_image",
    "clip_generated",
    "clip_face_edit",
    "clip_blend",
    "clip_diffusion",
)
MODEL_FILE = "fusion.json"
RULE = "max of calibrated signals"


def signal_raws(signals: list[ForensicSignal] | list[dict[str, Any]]) -> dict[str, float]:
    """Each fused signal's raw output; several values of one signal (faces): the strongest."""
    best: dict[str, float] = {}
    for s in signals:
        name = s["name"] if isinstance(s, dict) else s.name
        raw = float(s["raw"] if isinstance(s, dict) else s.raw)
        if name in FEATURES and math.isfinite(raw):
            best[name] = max(best.get(name, -math.inf), raw)
    return best


@dataclass(frozen=True)
class FusionModel:
    #: signal name -> (a, b): calibrated logit = a·raw + b
    calibration: dict[str, tuple[float, float]]
    threshold: float  # fused score at or above which a photo is called likely manipulated
    info: dict[str, Any]

    def logits(self, raws: dict[str, float]) -> dict[str, float]:
        return {n: a * raws[n] + b for n, (a, b) in self.calibration.items() if n in raws}

    def decide(self, raws: dict[str, float]) -> tuple[float, str] | None:
        """(fused score, the signal that gave it), or None when no fused signal ran."""
        z = self.logits(raws)
        if not z:
            return None
        name = max(z, key=lambda k: z[k])
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z[name])))), name

    def score(self, raws: dict[str, float]) -> float:
        d = self.decide(raws)
        return d[0] if d is not None else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": RULE,
            "calibration": {n: list(v) for n, v in self.calibration.items()},
            "threshold": self.threshold,
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FusionModel:
        if d.get("rule") != RULE:
            raise ValueError("fusion.json was fitted with another rule; refit it")
        cal = {str(n): (float(v[0]), float(v[1])) for n, v in d["calibration"].items()}
        unknown = set(cal) - set(FEATURES)
        if unknown:
            raise ValueError(f"fusion.json names unknown signals {sorted(unknown)}; refit it")
        return cls(calibration=cal, threshold=float(d["threshold"]), info=dict(d.get("info", {})))


@lru_cache(maxsize=1)
def load_model() -> FusionModel | None:
    """The committed fusion model, or None when it has not been fitted yet."""
    f = resources.files("reclaim.models").joinpath(MODEL_FILE)
    if not f.is_file():
        return None
    return FusionModel.from_dict(json.loads(f.read_text(encoding="utf-8")))


def fuse(signals: list[ForensicSignal]) -> tuple[float, bool, str] | None:
    """(fused score, at or above the threshold, deciding signal), or None without a model or
    without any fused signal."""
    m = load_model()
    if m is None or not signals:
        return None
    d = m.decide(signal_raws(signals))
    if d is None:
        return None
    return d[0], d[0] >= m.threshold, d[1]


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
