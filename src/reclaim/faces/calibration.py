"""Calibration of face distances: the operating threshold, and distance → probability.

An enrollment holds several templates (one per reference photo); a face's distance to the
enrollment combines them as ``(nearest + mean) / 2`` — the nearest template catches a pose or
look that one reference shows, the mean keeps a chance look-alike of one reference from passing
(measured in ``bench/face_search.py``: at the same false-positive rate it finds more than either
alone).

The threshold and the score come from ``match/face_calibration.json``, written by
``python bench/face_search.py --calibrate`` (never edited by hand): the threshold is the
combined distance at the target false-positive rate, the score a logistic fit
``1 / (1 + exp(slope * (distance - midpoint)))`` — the probability that the face is the
enrolled person's, for equal prior odds. A calibration measured on other descriptors than
today's (``DESCRIPTOR_KIND``) is refused.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from reclaim.errors import ReclaimError
from reclaim.faces.descriptor import DESCRIPTOR_KIND

__all__ = ["CALIBRATION_FILE", "Calibration", "calibration", "combine_distances"]

CALIBRATION_FILE = "face_calibration.json"


@dataclass(frozen=True)
class Calibration:
    """Operating threshold and distance → score mapping for combined face distances."""

    threshold: float
    slope: float
    midpoint: float
    target_fpr: float = 0.001
    source: dict[str, Any] = field(default_factory=dict, compare=False)

    def score(self, distance: float) -> float:
        """Calibrated probability (0–1) that a face at ``distance`` is the enrolled person."""
        z = self.slope * (distance - self.midpoint)
        if z > 700:
            return 0.0
        return 1.0 / (1.0 + math.exp(z))

    def is_match(self, distance: float) -> bool:
        return distance <= self.threshold

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        try:
            kind = d["descriptor"]
            cal = cls(
                threshold=float(d["threshold"]),
                slope=float(d["logistic"]["slope"]),
                midpoint=float(d["logistic"]["midpoint"]),
                target_fpr=float(d.get("target_fpr", 0.001)),
                source=d,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ReclaimError(
                f"face calibration file is malformed ({e}); reinstall reclaim"
            ) from e
        if kind != DESCRIPTOR_KIND:
            raise ReclaimError(
                f"the face calibration was measured on other face descriptors ({kind!r}, not "
                f"{DESCRIPTOR_KIND!r}); rerun python bench/face_search.py --calibrate"
            )
        return cal

    @classmethod
    def load(cls, path: str | Path | None = None) -> Calibration:
        """The calibration shipped in the package, or the one at ``path``."""
        try:
            if path is None:
                text = (
                    resources.files("reclaim.match").joinpath(CALIBRATION_FILE).read_text("utf-8")
                )
            else:
                text = Path(path).read_text("utf-8")
            return cls.from_dict(json.loads(text))
        except (OSError, json.JSONDecodeError) as e:
            raise ReclaimError(f"cannot read the face calibration ({e}); reinstall reclaim") from e


@lru_cache(maxsize=1)
def calibration() -> Calibration:
    """The packaged calibration (read once)."""
    return Calibration.load()


def combine_distances(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For an (n faces × k templates) distance matrix: (nearest, mean, combined) per face."""
    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] == 0:
        raise ValueError("need an (n faces × k templates) distance matrix with k ≥ 1")
    nearest = d.min(axis=1)
    mean = d.mean(axis=1)
    return nearest, mean, (nearest + mean) / 2.0
