"""Face detection: where the faces of an image are, before alignment.

YuNet first (``yunet.py``), dlib's HOG on an input scaled by the faces YuNet found and capped at
``max_detect_pixels``, dlib's MMOD CNN (``mmod.py``) as a fallback where HOG finds nothing or
only small faces. Every box is mapped back to the image's own pixels, in the frame HOG draws
(dlib's 5-point landmark model was trained on HOG's boxes). Why each step, with its numbers:
docs/faces.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from reclaim.faces.models import _Models

__all__ = ["FaceOptions"]


@dataclass(frozen=True)
class FaceOptions:
    """How faces are looked for. The defaults are what ``reclaim scan`` uses."""

    upsample: int = 1  # HOG upsampling steps (×2 each) for small images: faces from ~40 px
    max_detect_pixels: int = 1_600_000  # HOG input cap (pixels after scaling)
    cnn: Literal["fallback", "always", "off"] = "fallback"
    # CNN input cap (pixels after scaling). On the bench corpus's 30 positives only the CNN
    # found, 60k px found as many as 160k (23) at 57% of the time.
    cnn_max_pixels: int = 60_000
    cnn_min_side: int = 160  # smaller images are upscaled to this shorter side for the CNN ...
    cnn_max_upscale: float = 2.0  # ... by at most this factor
    small_face_px: int = 60  # HOG faces smaller than this also trigger the CNN
    # YuNet (``yunet.py``) on every image, scaled to at most this side; its faces that no HOG
    # or CNN face overlaps are added. 0 turns it off.
    yunet_max_side: int = 640
    yunet_min_score: float = 0.7
    # Where YuNet found faces, HOG's input is scaled so that the smallest is about this big (px,
    # never beyond the usual scale): no upsampling where faces are large. 0: the usual scale.
    hog_face_px: int = 140
    min_face_px: int = 20  # smaller detections are dropped (no usable descriptor)
    hog_adjust: float = 0.0  # HOG decision threshold offset (negative: more, weaker faces)
    cnn_min_confidence: float = 0.0
    max_side: int = 2048  # photos are decoded to at most this side (descriptor source)
    video_fps: float = 0.5  # video frames looked at per second ...
    max_video_frames: int = 60  # ... at most this many per video (spread over its length)
    # Only the largest this many faces of an image (or frame) are described; 0: all. The
    # platform's face shields match the few main faces of an upload, not every bystander.
    max_faces: int = 0
    # dlib's HOG detector (with the CNN fallback above). Off: YuNet's faces only, each box
    # mapped to the frame HOG would draw (the platform's fast path for face shields).
    hog: bool = True


@dataclass
class _Det:
    """A detected face box (image pixels, right and bottom exclusive)."""

    left: float
    top: float
    right: float
    bottom: float
    score: float
    detector: str

    @property
    def side(self) -> float:
        return min(self.right - self.left, self.bottom - self.top)

    def iou(self, o: _Det) -> float:
        ix = max(0.0, min(self.right, o.right) - max(self.left, o.left))
        iy = max(0.0, min(self.bottom, o.bottom) - max(self.top, o.top))
        inter = ix * iy
        a = (self.right - self.left) * (self.bottom - self.top)
        b = (o.right - o.left) * (o.bottom - o.top)
        return inter / (a + b - inter) if inter > 0 else 0.0


def _scaled(rgb: np.ndarray, scale: float) -> tuple[np.ndarray, float, float]:
    """The image resized by about ``scale``, and the exact x and y factors used."""
    if abs(scale - 1.0) < 0.02:
        return rgb, 1.0, 1.0
    h, w = rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if scale > 1:  # bilinear upscaling: OpenCV's is ~7x faster than Pillow's, within 1 level
        import cv2

        up = cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_LINEAR)
        return np.asarray(up), size[0] / w, size[1] / h
    im = Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(im), size[0] / w, size[1] / h


def _scale_for(w: int, h: int, max_up: float, max_pixels: int) -> float:
    """The scale that keeps the input within ``max_pixels``, at most ``max_up``."""
    return min(max_up, math.sqrt(max_pixels / max(1, w * h)))


def _hog(m: _Models, rgb: np.ndarray, o: FaceOptions, at_most: float = math.inf) -> list[_Det]:
    """dlib's HOG on the image scaled up to ``2**o.upsample`` (at most ``at_most``)."""
    h, w = rgb.shape[:2]
    scale = min(at_most, _scale_for(w, h, float(2**o.upsample), o.max_detect_pixels))
    img, sx, sy = _scaled(rgb, scale)
    rects, scores, _ = m.hog.run(img, 0, o.hog_adjust)
    return [
        _Det(r.left() / sx, r.top() / sy, (r.right() + 1) / sx, (r.bottom() + 1) / sy, sc, "hog")
        for r, sc in zip(rects, scores, strict=True)
    ]


_CNN_MIN_INPUT = 48


def _cnn(m: _Models, rgb: np.ndarray, o: FaceOptions) -> list[_Det]:
    """dlib's MMOD CNN, on small images upscaled toward ``o.cnn_min_side``."""
    h, w = rgb.shape[:2]
    # The CNN finds faces from ~40 px at their own size: upscaling (4x the cost per 2x) only
    # pays for tiny images. Measured on 60 tight face photos HOG missed: found 60/60 at 1x
    # (0.12 s each with dlib's own code), 59/60 at 2x (0.51 s each).
    up = max(1.0, min(o.cnn_max_upscale, o.cnn_min_side / max(1, min(w, h))))
    img, sx, sy = _scaled(rgb, _scale_for(w, h, up, o.cnn_max_pixels))
    if min(img.shape[:2]) < _CNN_MIN_INPUT:
        return []  # smaller than the network's receptive field: dlib would raise
    out = []
    for left, top, right, bottom, conf in m.cnn_detect(img):
        if conf < o.cnn_min_confidence:
            continue
        out.append(_Det(left / sx, top / sy, (right + 1) / sx, (bottom + 1) / sy, conf, "cnn"))
    return out


#: YuNet's box → the box HOG draws around the same face (dlib's 5-point landmark model is
#: trained on HOG's boxes): centre moved by these fractions of YuNet's width and height, side
#: the mean of these fractions of them. Medians over the 481 faces both detectors found in 500
#: plain photos of the LFW calibration half (interquartile ranges 0.11, 0.07, 0.15, 0.12).
_YUNET_TO_HOG = (0.0175, 0.0461, 1.0114, 0.7823)


def _yunet(m: _Models, rgb: np.ndarray, o: FaceOptions) -> list[_Det]:
    """YuNet's faces, each box mapped to the one HOG would draw (``_YUNET_TO_HOG``)."""
    dx, dy, fw, fh = _YUNET_TO_HOG
    out = []
    for f in m.yunet(rgb, max_side=o.yunet_max_side, min_score=o.yunet_min_score):
        cx, cy = f.x + f.width * (0.5 + dx), f.y + f.height * (0.5 + dy)
        half = (fw * f.width + fh * f.height) / 4
        out.append(_Det(cx - half, cy - half, cx + half, cy + half, f.score, "yunet"))
    return out


def _detect(m: _Models, rgb: np.ndarray, o: FaceOptions) -> list[_Det]:
    """Every face box of an image: HOG's, then the CNN's and YuNet's that overlap none of them
    (IoU < 0.3), clipped to the image; boxes smaller than ``o.min_face_px`` are dropped."""
    yn = _yunet(m, rgb, o) if o.yunet_max_side > 0 else []
    at_most = math.inf
    if yn and o.hog_face_px > 0:
        at_most = o.hog_face_px / max(1.0, min(d.side for d in yn))
    dets = _hog(m, rgb, o, at_most) if o.hog else []
    h, w = rgb.shape[:2]
    # Small HOG faces call the CNN only where it sees them (images it runs on at ≥ 1x).
    small = bool(dets) and min(d.side for d in dets) < o.small_face_px and w * h <= o.cnn_max_pixels
    run_cnn = o.cnn == "always" or (o.cnn == "fallback" and (not dets or small))
    extra = (_cnn(m, rgb, o) if run_cnn else []) + yn
    for c in extra:
        if all(c.iou(d) < 0.3 for d in dets):
            dets.append(c)
    out = []
    for d in dets:
        d.left, d.top = max(0.0, d.left), max(0.0, d.top)
        d.right, d.bottom = min(float(w), d.right), min(float(h), d.bottom)
        if d.side >= o.min_face_px:
            out.append(d)
    if o.max_faces > 0 and len(out) > o.max_faces:
        out = sorted(out, key=lambda d: -d.side)[: o.max_faces]
    return out
