"""Nudity triage with NudeNet (the 320n ONNX detector shipped inside the ``nudenet`` wheel).

Used to prioritise what a person has to look at and to blur it in reports, never as evidence
of anything. The model file is loaded from the installed package (nothing is downloaded) and
run with onnxruntime on the CPU. NudeNet is AGPL-3.0, like reclaim.

Regions are NudeNet's 18 classes (``FEMALE_BREAST_EXPOSED``, ``FACE_FEMALE``, ...) with a
score and a box ``[x, y, w, h]`` in pixels of the image as shown (EXIF orientation applied).
``score`` is the highest score of a *sensitive* exposed region (breasts, genitalia, buttocks,
anus); 0 when there is none.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SENSITIVE = frozenset(
    {
        "FEMALE_BREAST_EXPOSED",
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)
#: A sensitive region at or above this score makes the image "explicit" for triage.
EXPLICIT_THRESHOLD = 0.5
#: Sensitive regions at or above this score are blurred (generous: better blur too much).
BLUR_THRESHOLD = 0.25
#: Images are shrunk to this longer side before detection (the model sees 320×320 anyway).
MAX_SIDE = 1280
MODEL_NAME = "NudeNet 320n"


@dataclass(frozen=True)
class Region:
    label: str
    score: float
    box: tuple[int, int, int, int]  # x, y, w, h in pixels of the full image

    @property
    def exposed(self) -> bool:
        return self.label.endswith("_EXPOSED")

    @property
    def sensitive(self) -> bool:
        return self.label in SENSITIVE

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "score": round(self.score, 4),
            "box": list(self.box),
            "exposed": self.exposed,
            "sensitive": self.sensitive,
        }


@dataclass(frozen=True)
class NudityResult:
    score: float
    regions: tuple[Region, ...]
    width: int
    height: int

    @property
    def explicit(self) -> bool:
        return self.score >= EXPLICIT_THRESHOLD

    @property
    def blur_boxes(self) -> list[tuple[int, int, int, int]]:
        return [r.box for r in self.regions if r.sensitive and r.score >= BLUR_THRESHOLD]

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": MODEL_NAME,
            "score": round(self.score, 4),
            "explicit": self.explicit,
            "exposed": sorted({r.label for r in self.regions if r.sensitive}),
            "regions": [r.as_dict() for r in self.regions],
            "blur_boxes": [list(b) for b in self.blur_boxes],
            "width": self.width,
            "height": self.height,
        }


def model_path() -> Path:
    """The 320n ONNX file inside the installed ``nudenet`` package (found without importing it)."""
    spec = importlib.util.find_spec("nudenet")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nudenet package is not installed: pip install nudenet")
    path = Path(next(iter(spec.submodule_search_locations))) / "320n.onnx"
    if not path.is_file():
        raise RuntimeError(f"NudeNet's model file is missing: {path}")
    return path


class NudityDetector:
    """NudeNet's detector with its own preprocessing and postprocessing, on a local model."""

    def __init__(self, path: Path | None = None, threads: int = 1) -> None:
        ort: Any = importlib.import_module("onnxruntime")
        self._nn: Any = importlib.import_module("nudenet.nudenet")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(path or model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._size = 320
        self._lock = threading.Lock()

    def detect(self, image: Image.Image | np.ndarray) -> NudityResult:
        """Regions of an RGB image (PIL or H×W×3 uint8 array)."""
        rgb = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else image
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError("expected an RGB image")
        h, w = rgb.shape[:2]
        scale = min(1.0, MAX_SIDE / max(h, w))
        small = rgb
        if scale < 1.0:
            pil = Image.fromarray(rgb).resize(
                (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR
            )
            small = np.asarray(pil)
        # NudeNet expects what cv2.imread gives: BGR, contiguous.
        bgr = np.ascontiguousarray(small[:, :, ::-1])
        blob, x_ratio, y_ratio, x_pad, y_pad, ow, oh = self._nn._read_image(bgr, self._size)
        with self._lock:
            outputs = self._session.run(None, {self._input: blob})
        dets = self._nn._postprocess(
            outputs, x_pad, y_pad, x_ratio, y_ratio, ow, oh, self._size, self._size
        )
        regions: list[Region] = []
        for d in dets:
            x, y, bw, bh = (float(v) / scale for v in d["box"])
            box = (
                max(0, min(w, round(x))),
                max(0, min(h, round(y))),
                max(0, min(w - round(x), round(bw))),
                max(0, min(h - round(y), round(bh))),
            )
            regions.append(Region(str(d["class"]), float(d["score"]), box))
        regions.sort(key=lambda r: -r.score)
        score = max((r.score for r in regions if r.sensitive), default=0.0)
        return NudityResult(score, tuple(regions), w, h)


_detector: NudityDetector | None = None
_detector_lock = threading.Lock()


def detector() -> NudityDetector:
    """The process-wide detector (loaded on first use, about 0.2 s)."""
    global _detector
    with _detector_lock:
        if _detector is None:
            threads = int(os.environ.get("RECLAIM_NUDITY_THREADS", "1") or 1)
            _detector = NudityDetector(threads=threads)
        return _detector


def detect_nudity(image: Image.Image | np.ndarray) -> NudityResult:
    return detector().detect(image)


def combine(results: list[tuple[float, NudityResult]]) -> dict[str, Any]:
    """Video / animation: the strongest frame's regions, and every sampled frame's score."""
    if not results:
        return {"model": MODEL_NAME, "score": 0.0, "explicit": False, "frames": []}
    t_best, best = max(results, key=lambda tr: tr[1].score)
    out = best.as_dict()
    out["frame_time_s"] = round(t_best, 3)
    out["frames"] = [{"t": round(t, 3), "score": round(r.score, 4)} for t, r in results]
    return out
