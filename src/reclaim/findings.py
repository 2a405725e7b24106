"""Findings: a face in a scanned item that matches an enrolled person, with a calibrated score.

Distances are Euclidean distances between face descriptors (v3: dlib's network on the whole
face, its mirror and the inner face, plus SFace; ``faces/pipeline.py``). An enrollment holds several
templates (one per reference photo); a face's distance to the enrollment combines them as
``(nearest + mean) / 2`` — the nearest template catches a pose or look that one reference shows,
the mean keeps a chance look-alike of one reference from passing (measured in
``bench/face_search.py``: at the same false-positive rate it finds more than either alone).

The threshold and the score come from ``match/face_calibration.json``, written by
``python bench/face_search.py --calibrate`` (never edited by hand): the threshold is the
combined distance at the target false-positive rate, the score a logistic fit
``1 / (1 + exp(slope * (distance - midpoint)))`` — the probability that the face is the
enrolled person's, for equal prior odds.
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
from reclaim.sources.base import Locator
from reclaim.store import CaseStore

__all__ = [
    "CALIBRATION_FILE",
    "Calibration",
    "Finding",
    "calibration",
    "combine_distances",
    "list_findings",
]

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
        from reclaim.faces.pipeline import DESCRIPTOR_KIND

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


@dataclass(frozen=True)
class Finding:
    """A matching face: which item, where in it, how close, how sure, for whom."""

    enrollment: str
    item_sha256: str
    box: tuple[int, int, int, int]
    distance: float
    nearest: float
    mean: float
    score: float
    faces_matched: int
    kind: str
    locator: Locator | None
    sightings: int
    found_at: str
    frame: int | None = None
    timestamp_s: float | None = None
    face_size: int | None = None
    detector: str | None = None
    check: dict[str, Any] | None = None  # the item's manipulation check: verdict, score, level

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Finding:
        b = r["box"]
        return cls(
            enrollment=r["enrollment"],
            item_sha256=r["item_sha256"],
            box=(int(b[0]), int(b[1]), int(b[2]), int(b[3])),
            distance=float(r["distance"]),
            nearest=float(r["nearest"]),
            mean=float(r["mean"]),
            score=float(r["score"]),
            faces_matched=int(r["faces_matched"]),
            kind=str(r["kind"]),
            locator=r.get("locator"),
            sightings=int(r.get("sightings") or 0),
            found_at=str(r["found_at"]),
            frame=r.get("frame"),
            timestamp_s=r.get("timestamp_s"),
            face_size=r.get("face_size"),
            detector=r.get("detector"),
            check=r.get("check"),
        )

    def as_record(self) -> dict[str, Any]:
        """One JSON object for ``reclaim findings --json``."""
        loc = self.locator
        rec: dict[str, Any] = {
            "item_sha256": self.item_sha256,
            "locator": (
                {"kind": loc.kind, "path": loc.path, "member": loc.member, "meta": loc.meta}
                if loc is not None
                else None
            ),
            "where": loc.display() if loc is not None else None,
            "sightings": self.sightings,
            "enrollment": self.enrollment,
            "score": round(self.score, 4),
            "distance": round(self.distance, 4),
            "nearest": round(self.nearest, 4),
            "mean": round(self.mean, 4),
            "box": list(self.box),
            "kind": self.kind,
            "faces_matched": self.faces_matched,
            "found_at": self.found_at,
        }
        if self.frame is not None:
            rec["frame"] = self.frame
            rec["timestamp_s"] = self.timestamp_s
        rec["check"] = self.check
        return rec


def list_findings(store: CaseStore, name: str | None = None) -> list[Finding]:
    """Findings of a case (``CaseStore``), best first, each with its item's manipulation check
    (verdict, score, level; None when the item was not checked)."""
    checks = store.checks_summary()
    return [
        Finding.from_row({**r, "check": checks.get(r["item_sha256"])}) for r in store.findings(name)
    ]
