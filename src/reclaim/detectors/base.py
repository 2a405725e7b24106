"""The common shape of manipulation / synthesis signals (issue 6), and the data splits.

Every detector (face-region consistency, the learned face-blend model, the AI-image model)
returns :class:`ForensicSignal` values. ``score`` is calibrated on held-out data: it reads as
"how strongly this points to manipulation or generation", in [0, 1]; ``raw`` is the detector's
own output, kept for fusion. ``evidence`` is one or two sentences, French and English, that say
what was measured and how strong it is — never "proof". ``maps`` are explanation images (RGB
uint8) a person can look at; they are written by ``reclaim check --maps`` and not serialised.

Splits: the labelled detection sets (``shared/data/detect/*``) and the real faces used for
self-blended training (``shared/data/faces/real-color``) are split by a hash of the file name,
the same way by every training script, calibration and benchmark: ``train`` (60 %),
``calib`` (20 %: calibration and fusion are fitted here), ``test`` (20 %: only reported).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = ["ForensicSignal", "Split", "split_of"]

Split = Literal["train", "calib", "test"]


def split_of(name: str) -> Split:
    """Deterministic split of a data file by its base name (not its folder)."""
    h = int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:8], 16) % 10
    return "train" if h < 6 else ("calib" if h < 8 else "test")


@dataclass
class ForensicSignal:
    """One measured piece of evidence of manipulation or generation."""

    name: str  # e.g. "face_consistency", "face_blend", "synthetic_image"
    score: float  # calibrated, [0, 1]; higher = more likely manipulated / generated
    kind: Literal["generated", "edited"]
    evidence: dict[str, str]  # {"en": ..., "fr": ...}
    raw: float = 0.0  # the detector's uncalibrated output (fusion input)
    details: dict[str, Any] = field(default_factory=dict)  # JSON-able measurements
    maps: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # RGB uint8 images

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "score": round(float(self.score), 4),
            "kind": self.kind,
            "evidence": dict(self.evidence),
            "raw": round(float(self.raw), 5),
            "details": self.details,
        }
