"""Face description: alignment, the two networks and the descriptor they make (v3: 384 values).

Alignment: dlib's 5 landmarks and ``get_face_chip``. Descriptor v3: dlib's ResNet on three views
of the chip, ``[(chip + mirror) / 2, inner face] / √2`` (a face swap keeps the victim's inner
face, so the inner view sees what the swap kept), then SFace's 128 values × ``SFACE_WEIGHT``
(``sface.py``: another network, other mistakes). Stored as 1,536 bytes (``descriptor_to_bytes``),
base64 in the faces signal's JSON. Descriptors of older kinds (v1: 128 values, v2: 256) are not
comparable: ``StaleDescriptors``. Quality measures of a face: ``blur_of_chip`` and
``pose_of_landmarks``. Why each step, with its numbers: docs/faces.md.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable

import numpy as np

from reclaim.errors import ReclaimError
from reclaim.faces.descriptor import SFACE_WEIGHT
from reclaim.faces.models import _Models
from reclaim.faces.resnet import CHIP_SIZE, NET_DIM
from reclaim.faces.sface import SFACE_DIM, ellipse_weights, inner_face

__all__ = [
    "CHIP_PADDING",
    "DESCRIPTOR_DIM",
    "DLIB_DIM",
    "INNER_ELLIPSE",
    "INNER_FEATHER_PX",
    "INNER_FILL",
    "StaleDescriptors",
    "align",
    "blur_of_chip",
    "chip_views",
    "combine_parts",
    "combine_views",
    "describe_chips",
    "describe_faces",
    "descriptor_from_bytes",
    "descriptor_to_bytes",
    "descriptors_from_json",
    "nearest_distance",
    "pose_of_landmarks",
]

#: Values of dlib's part of a descriptor (v2: whole-face and inner-face halves).
DLIB_DIM = 256
#: Values per stored face descriptor (v3: dlib's 256, then SFace's 128 scaled by SFACE_WEIGHT).
DESCRIPTOR_DIM = DLIB_DIM + SFACE_DIM
#: Margin around the face in an aligned chip (fraction of its side; dlib's default).
CHIP_PADDING = 0.25
#: Inner-face view: the ellipse kept (centre and half-axes as fractions of the chip side), the
#: blur of its edge (px) and the grey that replaces the rest.
INNER_ELLIPSE = (0.5, 0.53, 0.36, 0.46)
INNER_FEATHER_PX = 3.0
INNER_FILL = 128


def align(
    m: _Models, rgb: np.ndarray, boxes: Iterable[tuple[float, float, float, float]]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(aligned chips, 5 landmarks) of the faces in ``boxes`` (left, top, right, bottom; right
    and bottom exclusive): dlib's 5-point model in each box, then ``get_face_chips``."""
    dlib = m.dlib
    shapes = dlib.full_object_detections()
    for left, top, right, bottom in boxes:
        rect = dlib.rectangle(
            round(left), round(top), max(round(left), round(right) - 1),
            max(round(top), round(bottom) - 1),
        )  # fmt: skip
        shapes.append(m.landmarks(rgb, rect))
    chips = dlib.get_face_chips(rgb, shapes, size=CHIP_SIZE, padding=CHIP_PADDING)
    points = [
        np.array([[s.part(i).x, s.part(i).y] for i in range(5)], dtype=np.float64) for s in shapes
    ]
    return [np.asarray(c) for c in chips], points


def chip_views(chip: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three views a descriptor is made from: the chip, its mirror, its inner face."""
    c = np.asarray(chip, dtype=np.uint8)
    w = ellipse_weights(CHIP_SIZE, INNER_ELLIPSE, INNER_FEATHER_PX)
    inner = (c * w + np.float32(INNER_FILL) * (1 - w)).astype(np.uint8)
    return c, np.ascontiguousarray(c[:, ::-1]), inner


def combine_views(net: np.ndarray) -> np.ndarray:
    """Descriptors (n × 256) from the network's output on ``chip_views`` of n chips, stacked
    view by view (n chips, then n mirrors, then n inner faces)."""
    v = np.asarray(net, dtype=np.float32).reshape(3, -1, NET_DIM)
    out = np.concatenate([(v[0] + v[1]) / 2, v[2]], axis=1) / np.float32(math.sqrt(2.0))
    return np.asarray(out, dtype=np.float32)


def describe_chips(m: _Models, chips: list[np.ndarray]) -> np.ndarray:
    """dlib's part of a descriptor (v2: n × 256 float32) of aligned face chips: one network
    batch of 3n views."""
    if not chips:
        return np.zeros((0, DLIB_DIM), dtype=np.float32)
    views = [chip_views(c) for c in chips]
    return combine_views(m.describe([v[k] for k in range(3) for v in views]))


def combine_parts(dlib_part: np.ndarray, sface_part: np.ndarray) -> np.ndarray:
    """Descriptor v3 (n × 384): dlib's 256 values, then SFace's unit-length 128 × SFACE_WEIGHT."""
    a = np.asarray(dlib_part, dtype=np.float32).reshape(-1, DLIB_DIM)
    b = np.asarray(sface_part, dtype=np.float32).reshape(-1, SFACE_DIM)
    return np.concatenate([a, np.float32(SFACE_WEIGHT) * b], axis=1)


def describe_faces(
    m: _Models, rgb: np.ndarray, chips: list[np.ndarray], points: list[np.ndarray]
) -> np.ndarray:
    """Descriptor v3 (n × 384 float32) of n faces of an image: dlib's aligned chips and each
    face's 5 dlib landmarks (for SFace's own alignment)."""
    if not chips:
        return np.zeros((0, DESCRIPTOR_DIM), dtype=np.float32)
    sf = m.sface.describe([inner_face(m.sface.crop(rgb, p)) for p in points])
    return combine_parts(describe_chips(m, chips), sf)


# -- quality measures -------------------------------------------------------------------------


def blur_of_chip(chip: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian over the central 60% of an aligned face chip."""
    g = chip.astype(np.float32)
    if g.ndim == 3:
        g = g @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    h, w = g.shape
    y0, y1, x0, x1 = int(h * 0.2), int(h * 0.8), int(w * 0.2), int(w * 0.8)
    c = g[y0:y1, x0:x1]
    lap = c[1:-1, :-2] + c[1:-1, 2:] + c[:-2, 1:-1] + c[2:, 1:-1] - 4.0 * c[1:-1, 1:-1]
    return float(lap.var()) if lap.size else 0.0


def pose_of_landmarks(points: np.ndarray) -> float:
    """Yaw proxy from dlib's 5 landmarks (two corners of each eye, then the base of the nose).

    The nose's offset along the eye line from the eyes' midpoint, divided by the distance
    between the eye centres: 0 for a frontal face, growing as the head turns.
    """
    p = np.asarray(points, dtype=np.float64).reshape(5, 2)
    e1 = (p[0] + p[1]) / 2.0
    e2 = (p[2] + p[3]) / 2.0
    v = e2 - e1
    dist = float(np.hypot(v[0], v[1]))
    if dist < 1e-6:
        return 1.0
    u = v / dist
    off = float(np.dot(p[4] - (e1 + e2) / 2.0, u))
    return abs(off) / dist


# -- stored descriptors ---------------------------------------------------------------------------


class StaleDescriptors(ReclaimError, ValueError):
    """Stored face descriptors of an older, incomparable kind (v1: 128 values, v2: 256)."""


#: Byte sizes of older descriptors: v1 (dlib, one view), v2 (dlib, three views).
_OLDER_KINDS = {NET_DIM * 4: "one view, 128 values", DLIB_DIM * 4: "dlib alone, 256 values"}


def descriptor_to_bytes(d: np.ndarray) -> bytes:
    """A descriptor as 1,536 bytes (384 little-endian float32)."""
    a = np.ascontiguousarray(d, dtype="<f4").reshape(-1)
    if a.shape[0] != DESCRIPTOR_DIM:
        raise ValueError(f"a face descriptor has {DESCRIPTOR_DIM} values, got {a.shape[0]}")
    return a.tobytes()


def descriptor_from_bytes(b: bytes) -> np.ndarray:
    """A descriptor from its 1,536 bytes (``StaleDescriptors`` for an older kind's)."""
    if len(b) in _OLDER_KINDS:
        raise StaleDescriptors(
            f"face descriptors made by an older reclaim ({_OLDER_KINDS[len(b)]}) cannot be "
            f"compared with today's (dlib and SFace: {DESCRIPTOR_DIM} values); scan the "
            "collection into a new case folder and enroll again there (reclaim never kept the "
            "reference photos, so old templates cannot be recomputed)"
        )
    if len(b) != DESCRIPTOR_DIM * 4:
        raise ValueError(f"a face descriptor is {DESCRIPTOR_DIM * 4} bytes, got {len(b)}")
    return np.frombuffer(b, dtype="<f4").astype(np.float32)


def descriptors_from_json(text: str) -> list[np.ndarray]:
    """Descriptors of the signal's JSON text. Raises ValueError with a reason."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"faces value is not JSON: {e.msg} at position {e.pos}") from e
    if not isinstance(data, list):
        raise ValueError("faces value must be a JSON list of face records")
    out = []
    for i, r in enumerate(data):
        if not isinstance(r, dict) or not isinstance(r.get("descriptor"), str):
            raise ValueError(f"face record {i} has no descriptor")
        try:
            raw = base64.b64decode(r["descriptor"], validate=True)
        except ValueError as e:
            raise ValueError(f"face record {i}: descriptor is not base64") from e
        try:
            out.append(descriptor_from_bytes(raw))
        except ValueError as e:
            raise ValueError(f"face record {i}: {e}") from e
    return out


def nearest_distance(a: Iterable[np.ndarray], b: Iterable[np.ndarray]) -> float:
    """Smallest Euclidean distance between any descriptor of ``a`` and any of ``b`` (inf if
    either is empty)."""
    aa = np.array(list(a), dtype=np.float32).reshape(-1, DESCRIPTOR_DIM)
    bb = np.array(list(b), dtype=np.float32).reshape(-1, DESCRIPTOR_DIM)
    if not len(aa) or not len(bb):
        return math.inf
    d = np.linalg.norm(aa[:, None, :] - bb[None, :, :], axis=2)
    return float(d.min())
