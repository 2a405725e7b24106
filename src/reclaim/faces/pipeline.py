"""Faces: detection, 5-point alignment and 384-value descriptors (v3: dlib + SFace).

``find_faces(rgb, options)`` returns every face of an upright RGB image, largest first, each with
its box (the item's upright pixel coordinates), size (box side, px), detector and confidence,
descriptor, and quality measures used to refuse poor reference photos: ``blur`` (variance of the
Laplacian of the aligned grey chip: low = blurred) and ``pose`` (the nose's offset from the eyes'
midline over the eye distance: 0 frontal, ~0.3 clearly turned, ≥0.5 near profile).
``media_faces`` does the same for a photo or the sampled frames of a video; ``FaceSignal`` is
the faces signal (a JSON list of faces).

The steps, a module each: ``detect`` (YuNet, dlib's HOG and CNN: where the faces are),
``describe`` (alignment, the two networks, descriptor bytes and JSON), ``models`` (loading the
models lazily, once per process, never at import: a hash-only scan must not pay for them;
``FaceModelsMissing`` when model files are absent). Why each step, with its numbers:
docs/faces.md.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from reclaim.errors import DecodeError
from reclaim.faces.describe import (
    CHIP_PADDING,
    DESCRIPTOR_DIM,
    DLIB_DIM,
    INNER_ELLIPSE,
    INNER_FEATHER_PX,
    INNER_FILL,
    StaleDescriptors,
    align,
    blur_of_chip,
    chip_views,
    combine_parts,
    combine_views,
    describe_chips,
    describe_faces,
    descriptor_from_bytes,
    descriptor_to_bytes,
    descriptors_from_json,
    nearest_distance,
    pose_of_landmarks,
)
from reclaim.faces.descriptor import DESCRIPTOR_KIND, SFACE_WEIGHT
from reclaim.faces.detect import FaceOptions, _detect
from reclaim.faces.models import MODEL_FILES, FaceModelsMissing, _models, models_dir
from reclaim.faces.resnet import CHIP_SIZE, NET_DIM
from reclaim.hashes.base import Comparison, SignalType, SignalValue
from reclaim.media import Media, MediaKind
from reclaim.media.image import iter_frames
from reclaim.media.video import iter_video_frames

__all__ = [
    "CHIP_PADDING",
    "CHIP_SIZE",
    "DESCRIPTOR_DIM",
    "DESCRIPTOR_KIND",
    "DLIB_DIM",
    "INNER_ELLIPSE",
    "INNER_FEATHER_PX",
    "INNER_FILL",
    "MODEL_FILES",
    "NET_DIM",
    "SFACE_WEIGHT",
    "Face",
    "FaceModelsMissing",
    "FaceOptions",
    "FaceSignal",
    "StaleDescriptors",
    "blur_of_chip",
    "chip_views",
    "combine_parts",
    "combine_views",
    "describe_chips",
    "describe_faces",
    "descriptor_from_bytes",
    "descriptor_to_bytes",
    "descriptors_from_json",
    "faces_to_json",
    "find_faces",
    "media_faces",
    "models_dir",
    "nearest_distance",
    "pose_of_landmarks",
]


@dataclass(frozen=True)
class Face:
    """One face: where, how sure, how good, and its 384-value descriptor v3 (float32)."""

    box: tuple[int, int, int, int]  # left, top, right, bottom (upright image pixels)
    detector: str  # "hog" | "cnn" | "yunet"
    confidence: float
    size: int  # px: the box's shorter side
    blur: float  # variance of the Laplacian of the aligned grey chip (low = blurred)
    pose: float  # yaw proxy (0 frontal, ~0.3 turned, ≥0.5 near profile)
    descriptor: np.ndarray = dataclasses.field(repr=False, compare=False)
    frame: int | None = None  # video / animation frame number (None for a still photo)
    timestamp_s: float | None = None

    @property
    def quality(self) -> float:
        """0–1: 1 for a sharp (blur ≥ 100), frontal, ≥ 80 px face; shrinks with each shortfall."""
        return round(
            min(1.0, self.size / 80.0)
            * min(1.0, self.blur / 100.0)
            * max(0.0, 1.0 - self.pose / 0.6),
            4,
        )

    def as_record(self, with_descriptor: bool = True) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "box": list(self.box),
            "size": self.size,
            "detector": self.detector,
            "confidence": round(self.confidence, 4),
            "blur": round(self.blur, 2),
            "pose": round(self.pose, 4),
            "quality": self.quality,
        }
        if self.frame is not None:
            rec["frame"] = self.frame
            rec["timestamp_s"] = round(self.timestamp_s or 0.0, 3)
        if with_descriptor:
            rec["descriptor"] = base64.b64encode(descriptor_to_bytes(self.descriptor)).decode()
        return rec


def find_faces(
    rgb: np.ndarray,
    options: FaceOptions | None = None,
    *,
    frame: int | None = None,
    timestamp_s: float | None = None,
) -> list[Face]:
    """Every face in an upright RGB uint8 image, largest first."""
    o = options or FaceOptions()
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("find_faces needs an RGB image (height × width × 3, uint8)")
    if min(rgb.shape[:2]) < o.min_face_px:
        return []  # no face of a usable size fits
    m = _models()
    dets = _detect(m, rgb, o)
    if not dets:
        return []
    chips, points = align(m, rgb, [(d.left, d.top, d.right, d.bottom) for d in dets])
    descs = describe_faces(m, rgb, chips, points)
    faces = []
    for d, pts, chip, desc in zip(dets, points, chips, descs, strict=True):
        faces.append(
            Face(
                box=(round(d.left), round(d.top), round(d.right), round(d.bottom)),
                detector=d.detector,
                confidence=float(d.score),
                size=round(d.side),
                blur=blur_of_chip(chip),
                pose=pose_of_landmarks(pts),
                descriptor=np.asarray(desc, dtype=np.float32).reshape(DESCRIPTOR_DIM),
                frame=frame,
                timestamp_s=timestamp_s,
            )
        )
    faces.sort(key=lambda f: -f.size)
    return faces


def _frames(media: Media, o: FaceOptions) -> Iterator[tuple[int, float, np.ndarray]]:
    """Upright RGB frames of a video or animated image, about ``o.video_fps`` per second and
    at most ``o.max_video_frames``, spread over the length when the duration is known."""
    fps = o.video_fps
    if media.kind == "video":
        dur = media.video_info().duration_s
        span = min(dur, media.limits.video_max_seconds) if dur else None
        if span and span * fps > o.max_video_frames:
            fps = o.max_video_frames / span
        limits = dataclasses.replace(media.limits, video_fps=fps)
        for n, f in enumerate(iter_video_frames(media.data, limits, rotate=True)):
            if n >= o.max_video_frames:
                return
            yield f.frame_number, f.timestamp_s, f.rgb
    else:
        limits = dataclasses.replace(media.limits, video_fps=fps)
        for n, (i, t, im) in enumerate(iter_frames(media.data, limits, max_side=o.max_side)):
            if n >= o.max_video_frames:
                return
            yield i, t, np.asarray(im, dtype=np.uint8)


def media_faces(media: Media, options: FaceOptions | None = None) -> tuple[list[Face], int]:
    """Faces of a photo, or of the sampled frames of a video or animated image.

    Returns (faces, frames looked at). Raises MediaError subclasses like the decoders; a video
    damaged part-way keeps the faces of the frames decoded before the damage.
    """
    o = options or FaceOptions()
    if media.kind == "photo" and not _animated(media):
        im = media.image(max_side=o.max_side)
        return find_faces(np.asarray(im, dtype=np.uint8), o), 1
    if media.kind not in ("photo", "video"):
        return [], 0
    faces: list[Face] = []
    frames = 0
    try:
        for i, t, rgb in _frames(media, o):
            frames += 1
            faces.extend(find_faces(rgb, o, frame=i, timestamp_s=t))
    except DecodeError:
        if frames == 0:
            raise
    return faces, frames


def _animated(media: Media) -> bool:
    from reclaim.media.image import is_animated

    return media.format in ("gif", "webp", "png") and is_animated(media.data, media.limits)


# -- the signal --------------------------------------------------------------------------------


def faces_to_json(faces: Iterable[Face]) -> str:
    """The faces signal's value: a compact JSON list of face records."""
    return json.dumps([f.as_record() for f in faces], separators=(",", ":"))


class FaceSignal(SignalType):
    """Faces as a signal: value = JSON list of faces (box, quality, base64 descriptor);
    ``quality`` = number of faces. Two values match when some pair of faces is within
    ``threshold`` (Euclidean distance of descriptors)."""

    name = "faces"
    kinds: ClassVar[frozenset[MediaKind]] = frozenset({"photo", "video"})

    def __init__(self, options: FaceOptions | None = None, threshold: float | None = None) -> None:
        from reclaim.faces.calibration import calibration

        self.options = options or FaceOptions()
        #: Default: the calibrated operating threshold (match/face_calibration.json).
        self.threshold = calibration().threshold if threshold is None else threshold

    def compute(self, media: Media) -> SignalValue | None:
        faces, _ = media_faces(media, self.options)
        if not faces:
            return None
        return SignalValue(self.name, faces_to_json(faces), len(faces))

    def compare(self, a: str, b: str) -> Comparison:
        d = nearest_distance(descriptors_from_json(a), descriptors_from_json(b))
        return Comparison(d <= self.threshold, d)

    @classmethod
    def validate(cls, value: str) -> str:
        descriptors_from_json(value)
        return value
