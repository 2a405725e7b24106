"""dlib's MMOD CNN face detector (``mmod_human_face_detector.dat``) run by onnxruntime.

The same network, with the same weights, read from the same model file, built as an ONNX graph
in memory, with dlib's detection reproduced around it step by step (the dlib sources named in
the code are the specification): the tiled image pyramid (``dnn/input.h``, ``image_pyramid.h``),
the network (batch norms folded into the convolutions as dlib's ``affine_`` layer does), the
score map mapped back to image boxes and dlib's non-max suppression (``dnn/loss.h``). Boxes and
scores equal dlib's on faces; ``faces/models.py`` checks them against dlib when the models load
and uses dlib if they differ. Why: dlib-bin has no BLAS, and onnxruntime runs the network several
times faster (numbers and the step-by-step specification: docs/faces.md).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from reclaim.faces.dlibnet import (
    ONNX_FLOAT,
    DatReader,
    NetFormatError,
    OnnxGraph,
    find_marks,
    ort_session,
)

__all__ = [
    "MmodDetection",
    "MmodFormatError",
    "MmodNet",
    "OrtMmod",
    "check_image",
    "compare_detections",
    "drawn_face",
    "onnx_model",
    "read_mmod",
    "tiled_pyramid",
]

PYRAMID_N = 6  # pyramid_down<6>: each level 5/6 of the previous (in dlib's network type)
_MIN_LEVEL_ROWS = 5  # dlib stops the pyramid below 5 rows


class MmodFormatError(NetFormatError):
    """The detector model file is not the dlib MMOD network this reader knows."""


@dataclass(frozen=True)
class MmodDetection:
    """One detection in dlib's terms: an inclusive pixel rectangle and the network's score."""

    left: int
    top: int
    right: int  # inclusive, as dlib's rectangle.right()
    bottom: int  # inclusive
    confidence: float

    def iou(self, o: MmodDetection) -> float:
        ix = min(self.right, o.right) - max(self.left, o.left) + 1
        iy = min(self.bottom, o.bottom) - max(self.top, o.top) + 1
        if ix <= 0 or iy <= 0:
            return 0.0
        a = (self.right - self.left + 1) * (self.bottom - self.top + 1)
        b = (o.right - o.left + 1) * (o.bottom - o.top + 1)
        return ix * iy / (a + b - ix * iy)


@dataclass(frozen=True)
class MmodNet:
    """What ``mmod_human_face_detector.dat`` holds, as used for detection."""

    window: tuple[int, int]  # detector window (width, height), pixels at the pyramid level
    nms_iou: float  # overlap test for non-max suppression
    nms_covered: float
    mean: tuple[float, float, float]  # input RGB means
    padding: int  # between pyramid levels in the tiled image
    outer_padding: int  # around the tiled image
    layers: tuple[tuple[Any, ...], ...]  # ("con", w, b, stride, pad) | ("relu",), input first


_MARKS = (
    "loss_mmod_",
    "input_rgb_image_pyramid",
    "input_rgb_image_pyramid2",
    "con_4",
    "con_5",
    "bn_con2",
    "affine_",
    "relu_",
)


def _skip_tensor(r: DatReader, pos: int) -> tuple[np.ndarray | None, int]:
    """A dlib tensor that may be empty (batch-norm statistics of an untrained layer)."""
    (version, n, k, nr, nc), after = r.ints_at(pos, 5)
    if version == 2 and n * k * nr * nc == 0:
        return None, after
    return r.tensor_at(pos)


def read_mmod(data: bytes) -> MmodNet:
    """The detector options, input layer and layers (input first) of dlib's MMOD model file.

    Convolutions followed by batch norm (``bn_con2``, as the file stores them) or ``affine_``
    are returned with the normalisation folded in, as dlib's ``affine_`` does at load:
    ``gamma / sqrt(running_variance + eps)`` and ``beta - gamma' · running_mean``."""
    r = DatReader(data, MmodFormatError)
    window: tuple[int, int] | None = None
    nms = (0.0, 0.0)
    mean: tuple[float, float, float] | None = None
    padding, outer = 10, 11  # dlib's defaults for files written before they were saved
    layers: list[tuple[Any, ...]] = []
    for pos, name in find_marks(data, _MARKS):
        if name == "loss_mmod_":
            (version,), p = r.ints_at(pos, 1)
            if version != 1:
                raise MmodFormatError(f"unsupported detector options (version {version})")
            (width, height), p = r.ints_at(p, 2)
            # loss per false alarm, per miss, truth match IoU, then the NMS overlap tester.
            vals, p = r.floats_at(p, 5)
            window, nms = (width, height), (vals[3], vals[4])
        elif name.startswith("input_rgb_image_pyramid"):
            vals, p = r.floats_at(pos, 3)
            mean = (vals[0], vals[1], vals[2])
            if name.endswith("2"):
                (padding, outer), _ = r.ints_at(p, 2)
        elif name in ("con_4", "con_5"):
            layers.append(r.con_at(pos))
        elif name in ("bn_con2", "affine_"):
            params, p = r.tensor_at(pos)
            k = params.size // 2
            gamma, beta = params[:k].astype(np.float64), params[k:].astype(np.float64)
            if name == "bn_con2":
                _, p = r.ints_at(p, 10)  # gamma and beta alias tensors (version, 4 sizes)
                for _ in range(2):  # means and inverse deviations of the last batch
                    _, p = _skip_tensor(r, p)
                run_mean, p = r.tensor_at(p)
                run_var, p = r.tensor_at(p)
                _, p = r.ints_at(p, 2)  # updates, statistics window
                vals, p = r.floats_at(p, 5)  # 4 learning-rate multipliers, eps
                if run_mean.size != k or run_var.size != k:
                    raise MmodFormatError("batch norm statistics do not match its size")
                gamma = gamma / np.sqrt(run_var.astype(np.float64) + vals[4])
                beta = beta - gamma * run_mean
            if not layers or layers[-1][0] != "con" or layers[-1][1].shape[0] != k:
                raise MmodFormatError("a normalisation that does not follow a convolution")
            _, w, b, stride, pad = layers[-1]
            scale = gamma.astype(np.float32)
            layers[-1] = (
                "con",
                (w * scale[:, None, None, None]).astype(np.float32),
                (b.astype(np.float64) * gamma + beta).astype(np.float32),
                stride,
                pad,
            )
        else:  # relu_
            layers.append(("relu",))
    if window is None or mean is None:
        raise MmodFormatError("not a dlib MMOD detector (no detector options or input layer)")
    cons = [x for x in layers if x[0] == "con"]
    if not cons or layers[-1][0] != "con" or layers[-1][1].shape[0] != 1:
        raise MmodFormatError("the network does not end in one score map (one window)")
    if cons[0][1].shape[1] != 3 or any(
        a[1].shape[0] != b[1].shape[1] for a, b in itertools.pairwise(cons)
    ):
        raise MmodFormatError("convolution channels do not chain from an RGB input")
    if min(window) < 1 or not 0 < nms[0] <= 1 or not 0 < nms[1] <= 1:
        raise MmodFormatError(f"unexpected detector options {window}, {nms}")
    return MmodNet(window, nms[0], nms[1], mean, padding, outer, tuple(layers))


def onnx_model(net: MmodNet) -> bytes:
    """ONNX bytes: tiled pyramid (1, 3, H, W) float32 → scores (1, 1, h, w)."""
    g = OnnxGraph("dlib_mmod_face_detector")
    x = "pyramid"
    last = len(net.layers) - 1
    for i, layer in enumerate(net.layers):
        out = "scores" if i == last else None
        if layer[0] == "con":
            _, w, b, stride, pad = layer
            k = int(w.shape[2])
            x = g.node(
                "Conv", [x, g.const(w), g.const(b)], out,
                kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4,
            )  # fmt: skip
        else:
            x = g.node("Relu", [x], out)
    return g.model(
        [("pyramid", ONNX_FLOAT, [1, 3, "h", "w"])], [("scores", ONNX_FLOAT, [1, 1, "oh", "ow"])]
    )


# -- dlib's tiled image pyramid -------------------------------------------------------------

Rect = tuple[int, int, int, int]  # left, top, right, bottom (inclusive, as dlib)


def tiled_pyramid(
    nr: int, nc: int, padding: int, outer_padding: int, n: int = PYRAMID_N
) -> tuple[list[Rect], int, int]:
    """Where each pyramid level goes in dlib's tiled image, and the tiled image's size
    (rows, columns): ``impl::compute_tiled_image_pyramid_details`` for ``pyramid_down<n>``."""
    if nr * nc == 0:
        return [], 0, 0
    sizes = [(nr, nc)]
    rate = (n - 1.0) / n
    while True:
        nr, nc = math.floor(rate * nr), math.floor(rate * nc)
        if nr * nc == 0 or nr < _MIN_LEVEL_ROWS:
            break
        sizes.append((nr, nc))
    total_height = sum(h + padding for h, _ in sizes) - 2 * padding
    h0, w0 = sizes[0]
    height, prev_width = 0, 0
    for h, w in sizes:
        # Down the first column until the next level fits beside the previous one.
        if w <= w0 - prev_width - padding and (height - h0) * 2 >= total_height - h0:
            break
        height += h + padding
        prev_width = w
    height -= padding
    rects: list[Rect] = []
    y, i = outer_padding, 0
    while y < height + outer_padding and i < len(sizes):
        h, w = sizes[i]
        rects.append((outer_padding, y, outer_padding + w - 1, y + h - 1))
        y += h + padding
        i += 1
    y -= padding
    first = rects[0]
    while i < len(sizes):  # then up the right side, from the bottom
        h, w = sizes[i]
        x1, y1 = outer_padding + w0 - 1, y - 1
        rect = (x1 - (w - 1), y1 - (h - 1), x1, y1)
        if not (
            rect[0] > first[2] or rect[2] < first[0] or rect[1] > first[3] or rect[3] < first[1]
        ):
            break  # it would overlap the full-size image
        rects.append(rect)
        y -= h + padding
        i += 1
    return rects, height + 2 * outer_padding, w0 + 2 * outer_padding


def _resize_bilinear(src: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """dlib's ``resize_image`` (bilinear, corners aligned) of (channels, rows, cols) floats."""

    def axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = (n_in - 1) / max(n_out - 1, 1)
        pos = np.cumsum(np.concatenate([[0.0], np.full(n_out - 1, s)]))  # dlib: pos += s
        lo = np.floor(pos).astype(np.intp)
        return lo, np.minimum(lo + 1, n_in - 1), pos - lo

    top, bottom, ty = axis(src.shape[1], out_h)
    left, right, tx = axis(src.shape[2], out_w)
    t = src[:, top, :].astype(np.float64)
    b = src[:, bottom, :].astype(np.float64)
    ty = ty[None, :, None]
    out = (1 - ty) * ((1 - tx) * t[:, :, left] + tx * t[:, :, right]) + ty * (
        (1 - tx) * b[:, :, left] + tx * b[:, :, right]
    )
    return out.astype(np.float32)


def _pyramid_input(rgb: np.ndarray, net: MmodNet, rects: list[Rect], nr: int, nc: int) -> Any:
    """dlib's input tensor: (1, 3, nr, nc) float32, levels at ``rects``, zeros elsewhere."""
    x = np.zeros((1, 3, nr, nc), dtype=np.float32)
    mean = np.array(net.mean, dtype=np.float32)
    level = ((rgb.astype(np.float32) - mean) / np.float32(256)).transpose(2, 0, 1)
    for i, (left, top, right, bottom) in enumerate(rects):
        if i:
            level = _resize_bilinear(level, bottom - top + 1, right - left + 1)
        x[0, :, top : bottom + 1, left : right + 1] = level
    return x


# -- detection ------------------------------------------------------------------------------


def _out_size(net: MmodNet, n: int) -> int:
    for layer in net.layers:
        if layer[0] == "con":
            k, stride, pad = int(layer[1].shape[2]), layer[3], layer[4]
            n = (n + 2 * pad - k) // stride + 1 if n + 2 * pad >= k else 0
    return n


def _to_input(net: MmodNet, p: np.ndarray) -> np.ndarray:
    """Output positions mapped back through the convolutions (dlib's map_output_to_input)."""
    q = p.astype(np.float64)
    for layer in reversed(net.layers):
        if layer[0] == "con":
            k, stride, pad = int(layer[1].shape[2]), layer[3], layer[4]
            q = q * stride - pad + k // 2
    return q


def _overlaps(a: Rect, b: Rect, iou: float, covered: float) -> bool:
    """dlib's test_box_overlap on inclusive integer rectangles."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return False
    inner = float(iw * ih)
    outer = (max(a[2], b[2]) - min(a[0], b[0]) + 1) * (max(a[3], b[3]) - min(a[1], b[1]) + 1)
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inner / outer > iou or inner / area_a > covered or inner / area_b > covered


class OrtMmod:
    """dlib's MMOD face detector with its network run by onnxruntime on one thread."""

    def __init__(self, model_file: bytes) -> None:
        self.net = read_mmod(model_file)
        graph = onnx_model(self.net)
        self.graph_sha256 = hashlib.sha256(graph).digest()
        self.session: Any = ort_session(graph, MmodFormatError)

    def scores(self, rgb: np.ndarray) -> tuple[np.ndarray, list[Rect]]:
        """The network's score map for an RGB image and the pyramid levels' places."""
        h, w = rgb.shape[:2]
        rects, nr, nc = tiled_pyramid(h, w, self.net.padding, self.net.outer_padding)
        if not rects or _out_size(self.net, nr) < 1 or _out_size(self.net, nc) < 1:
            return np.zeros((0, 0), dtype=np.float32), rects
        x = _pyramid_input(rgb, self.net, rects, nr, nc)
        out = self.session.run(None, {"pyramid": x})[0]
        return np.asarray(out, dtype=np.float32)[0, 0], rects

    def __call__(self, rgb: np.ndarray, threshold: float = 0.0) -> list[MmodDetection]:
        """Faces in an RGB uint8 image (rows × cols × 3) as dlib's ``cnn_face_detection_model_v1
        (img, 0)`` finds them: boxes in the image's pixels, most confident first."""
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError("the MMOD detector needs an RGB image (rows × cols × 3)")
        scores, rects = self.scores(rgb)
        rows, cols = np.nonzero(scores > threshold)
        if not rows.size:
            return []
        conf = scores[rows, cols].astype(np.float64)
        px, py = _to_input(self.net, cols), _to_input(self.net, rows)
        # The level each window centre is nearest to (dlib's nearest_rect: first one at the
        # smallest distance; a level holding the point is at distance 0).
        lv = np.array(rects, dtype=np.float64)
        cx = np.rint(px)[:, None]  # window centres are whole pixels: rounding is exact
        cy = np.rint(py)[:, None]
        dx = np.maximum(lv[None, :, 0] - cx, 0) + np.maximum(cx - lv[None, :, 2], 0)
        dy = np.maximum(lv[None, :, 1] - cy, 0) + np.maximum(cy - lv[None, :, 3], 0)
        level = np.argmin(np.hypot(dx, dy), axis=1)
        half_w, half_h = (self.net.window[0] - 1) / 2, (self.net.window[1] - 1) / 2
        x0, y0 = px - lv[level, 0], py - lv[level, 1]  # window centres in their level
        box = np.stack([x0 - half_w, y0 - half_h, x0 + half_w, y0 + half_h], axis=1)
        ratio = PYRAMID_N / (PYRAMID_N - 1.0)
        for step in range(int(level.max()) if level.size else 0):
            up = level > step  # point_up, once per level
            box[up] = box[up] * ratio + 0.3
        ibox = np.floor(box + 0.5).astype(np.int64)  # dlib: drectangle → rectangle
        order = np.argsort(-conf, kind="stable")
        kept: list[Rect] = []
        out: list[MmodDetection] = []
        for i in order:
            r: Rect = (int(ibox[i, 0]), int(ibox[i, 1]), int(ibox[i, 2]), int(ibox[i, 3]))
            if any(_overlaps(k, r, self.net.nms_iou, self.net.nms_covered) for k in kept):
                continue
            kept.append(r)
            out.append(MmodDetection(*r, confidence=float(conf[i])))
        return out

    def check_against(self, dlib_cnn: Any) -> str | None:
        """None when this detector finds what dlib's own (``dlib.cnn_face_detection_model_v1``)
        finds on the built-in check image, else why not."""
        img = check_image()
        ref = [
            MmodDetection(
                d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(), d.confidence
            )
            for d in dlib_cnn(img, 0)
        ]
        ours = self(img)
        if not ref:
            return "dlib finds no face in the check image"
        return compare_detections(ours, ref)


def compare_detections(
    ours: list[MmodDetection],
    ref: list[MmodDetection],
    min_iou: float = 0.9,
    max_confidence_diff: float = 0.05,
) -> str | None:
    """None when both lists hold the same faces (each matched by IoU ≥ ``min_iou`` with
    confidences within ``max_confidence_diff``), else what differs."""
    if len(ours) != len(ref):
        return f"{len(ours)} detections instead of dlib's {len(ref)}"
    left = list(ref)
    for d in ours:
        best = max(left, key=d.iou)
        if d.iou(best) < min_iou:
            return f"box {d} does not match dlib's (best IoU {d.iou(best):.2f})"
        if abs(d.confidence - best.confidence) > max_confidence_diff:
            return f"confidence {d.confidence:.3f} instead of dlib's {best.confidence:.3f}"
        left.remove(best)
    return None


def drawn_face(size: int, face_width: float = 0.6, blur: float = 2.0) -> np.ndarray:
    """A drawn face (RGB uint8, ``size`` × ``size``): an oval face ``face_width`` of the side
    wide with hair, eyes, brows, nose and mouth, on a flat background. dlib's MMOD detector
    finds it (score ~1) from about 65 px of face width."""
    from PIL import Image, ImageDraw, ImageFilter

    s = float(size)
    im = Image.new("RGB", (size, size), (90, 110, 140))
    d = ImageDraw.Draw(im)
    cx, cy = s / 2, s * 0.54
    w = s * face_width
    h = w * 1.3
    dark = (60, 40, 25)
    d.ellipse((cx - w * 0.58, cy - h * 0.62, cx + w * 0.58, cy + h * 0.2), fill=dark)  # hair
    d.rectangle((cx - w * 0.2, cy + h * 0.3, cx + w * 0.2, s), fill=(200, 150, 120))  # neck
    d.ellipse((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), fill=(225, 180, 150))
    ey, er = cy - h * 0.08, w * 0.09
    for side in (-1, 1):
        x = cx + side * w * 0.2
        d.ellipse((x - er, ey - er * 0.55, x + er, ey + er * 0.55), fill=(245, 245, 245))
        d.ellipse((x - er / 2, ey - er / 2, x + er / 2, ey + er / 2), fill=(70, 50, 30))
        d.ellipse((x - er * 0.22, ey - er * 0.22, x + er * 0.22, ey + er * 0.22), fill=(10,) * 3)
        brow = (x - er * 1.1, ey - er * 1.5, x + er * 1.1, ey - er * 1.7)
        d.line(brow, fill=dark, width=max(2, round(s * 0.02)))
    nose = (cx, ey + er / 2, cx - w * 0.05, cy + h * 0.12)
    d.line(nose, fill=(180, 130, 105), width=max(1, round(s * 0.012)))
    d.ellipse((cx - w * 0.09, cy + h * 0.1, cx + w * 0.09, cy + h * 0.16), fill=(190, 135, 110))
    my = cy + h * 0.27
    mouth = (cx - w * 0.18, my - h * 0.05, cx + w * 0.18, my + h * 0.05)
    d.chord(mouth, 0, 180, fill=(160, 70, 70))
    return np.asarray(im.filter(ImageFilter.GaussianBlur(blur)))


def check_image() -> np.ndarray:
    """The load-time check image (180 × 300 RGB): two drawn faces, one found at full size and
    one, larger, found on a smaller pyramid level."""
    return np.concatenate(
        [np.pad(drawn_face(120, 0.65), ((30, 30), (0, 0), (0, 0)), mode="edge"),
         drawn_face(180, 0.65)], axis=1,
    )  # fmt: skip
