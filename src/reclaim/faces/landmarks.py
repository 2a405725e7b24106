"""Face regions for the forensic signals: box + dlib's 68 landmarks + the face mask.

Face search (``faces/describe.py``) needs only 5 landmarks; the manipulation signals need the
face's outline: where a swapped or pasted face would end. The 68-point model
(``shape_predictor_68_face_landmarks.dat``) ships in ``face-recognition-models`` and is loaded
once per process, on first use.

The mask is the convex hull of the 68 points, the region self-blended training blends and the
region a swap tool replaces (the forehead above the brows is not in it).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reclaim.faces.detect import FaceOptions, _detect
from reclaim.faces.models import _models, models_dir

__all__ = ["FaceRegion", "face_regions", "hull_mask", "regions_from_boxes"]

LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"

_PRED: Any = None
_LOCK = threading.Lock()


def _predictor() -> Any:
    global _PRED
    if _PRED is None:
        with _LOCK:
            if _PRED is None:
                m = _models()
                _PRED = m.dlib.shape_predictor(str(models_dir() / LANDMARKS_68))
    return _PRED


@dataclass(frozen=True)
class FaceRegion:
    """One face: box (left, top, right, bottom; upright pixels), detector, 68 points (x, y)."""

    box: tuple[int, int, int, int]
    detector: str
    points: np.ndarray = field(repr=False, compare=False)  # (68, 2) float32

    @property
    def size(self) -> int:
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])

    def mask(self, height: int, width: int) -> np.ndarray:
        """Boolean (height, width) mask of the face: convex hull of the 68 landmarks."""
        return hull_mask(self.points, height, width)


def hull_mask(points: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    m = np.zeros((height, width), dtype=np.uint8)
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    cv2.fillConvexPoly(m, hull, 1)
    return m.astype(bool)


def _landmarks(rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    m = _models()
    left, top, right, bottom = (round(v) for v in box)
    rect = m.dlib.rectangle(left, top, max(left, right - 1), max(top, bottom - 1))
    shape = _predictor()(rgb, rect)
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float32)


def regions_from_boxes(
    rgb: np.ndarray, boxes: list[tuple[int, int, int, int]], detector: str = "given"
) -> list[FaceRegion]:
    """68 landmarks for faces already found (e.g. the boxes face search stored)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    return [FaceRegion(tuple(b), detector, _landmarks(rgb, b)) for b in boxes]  # type: ignore[arg-type]


def face_regions(
    rgb: np.ndarray, options: FaceOptions | None = None, *, max_faces: int = 8
) -> list[FaceRegion]:
    """Faces of an upright RGB uint8 image with their 68 landmarks, largest first."""
    o = options or FaceOptions()
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < o.min_face_px:
        return []
    dets = sorted(_detect(_models(), rgb, o), key=lambda d: -d.side)[:max_faces]
    out = []
    for d in dets:
        box = (round(d.left), round(d.top), round(d.right), round(d.bottom))
        out.append(FaceRegion(box, d.detector, _landmarks(rgb, box)))
    return out
