"""dlib's face ResNet (the descriptor network) run by onnxruntime: its ONNX graph, written from
dlib's own model file, and the session that runs it.

dlib runs its ResNet on the CPU with its own convolution code (dlib-bin is built without BLAS):
~75 ms per face on the CI machine, more than half of a scan's face work. The same network,
with the same weights read from the same ``dlib_face_recognition_resnet_model_v1.dat``, run by
onnxruntime (already a dependency) takes ~6 ms per face on one thread and gives the same
descriptors (largest difference ~3e-7 on 128 values of magnitude ~0.1). Nothing is shipped or
downloaded: the ONNX graph is built from the model file when the models load (and kept in the
local model cache, ``modelcache``, under a key that holds this module's source: ``GRAPH_CODE``),
and it is used only if its output on a check chip equals dlib's (``models``; else dlib computes
the descriptors, as before).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reclaim.faces import dlibnet
from reclaim.faces.dlibnet import (
    ONNX_FLOAT,
    ONNX_UINT8,
    DatReader,
    NetFormatError,
    OnnxGraph,
    find_marks,
    ort_session,
)

#: Values per run of dlib's network.
NET_DIM = 128
#: Side of the aligned face chip the network reads (px).
CHIP_SIZE = 150
#: The source files that derive the graph from the model file: part of the key the derived
#: graph is kept under (a change to either derives it again).
GRAPH_CODE = (__file__, dlibnet.__file__)

#: Largest difference from dlib's output on the check chips for the graph to be used
#: (calibration resolves 1e-4 at best).
MAX_DESCRIPTOR_DIFF = 1e-4
_MEAN_RGB_DEFAULT = (122.782, 117.001, 104.298)  # dlib's input_rgb_image averages


class ResNetFormatError(NetFormatError):
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


def read_resnet(data: bytes) -> tuple[tuple[float, float, float], list[tuple[Any, ...]]]:
    """(input means, layers from input to output) of dlib's face ResNet file.

    dlib writes a network's layers from the input up, each as its name (a length-prefixed
    string) and its fields. Layers: ("con", weights (F, C, kh, kw), bias (F,), stride, padding),
    ("affine", gamma, beta), ("relu",), ("max_pool" | "avg_pool", size, stride) with size 0 for
    the global average, ("add",), ("fc", weights (inputs, outputs)). Tags and skips (the
    residual connections) have no fields and are implied by the block structure."""
    r = DatReader(data, ResNetFormatError)
    marks = find_marks(data, _LAYER_NAMES)
    mean = _MEAN_RGB_DEFAULT
    layers: list[tuple[Any, ...]] = []
    for pos, name in marks:
        if name == "input_rgb_image_sized":
            vals, pos = r.floats_at(pos, 3)
            (nr, nc), _ = r.ints_at(pos, 2)
            if (nr, nc) != (CHIP_SIZE, CHIP_SIZE):
                raise ResNetFormatError(f"network input is {nr}×{nc}, not {CHIP_SIZE}")
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
                raise ResNetFormatError(f"unsupported pooling {nr, nc, sy, sx, py, px}")
            layers.append((name[:-2], nr, sy))
        elif name == "add_prev_":
            layers.append(("add",))
        else:  # fc_2
            (n_out, n_in), pos = r.ints_at(pos, 2)
            params, _ = r.tensor_at(pos)
            if params.size != n_in * n_out or n_out != NET_DIM:
                raise ResNetFormatError("unsupported fully connected layer")
            layers.append(("fc", params.reshape(n_in, n_out)))
    kinds = [x[0] for x in layers]
    if not kinds or kinds[0] != "con" or kinds[-1] != "fc" or kinds.count("fc") != 1:
        raise ResNetFormatError("not dlib's face ResNet")
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
                raise ResNetFormatError("average pooling outside a residual block")
            _, size, stride = layer
            b, bc, bs = block_in
            p = node("AveragePool", [b], kernel_shape=[size, size], strides=[stride, stride])
            block_in = (p, bc, (bs - size) // stride + 1)
        elif kind == "add":
            if block_in is None:
                raise ResNetFormatError("residual sum without a block input")
            b, bc, bs = block_in
            full = max(side, bs)
            if bc > chans:
                raise ResNetFormatError("residual input wider than the block")
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


def descriptor_graph(model_file: bytes) -> bytes:
    """The ONNX graph of dlib's face ResNet file (``ResNetFormatError`` when not that network)."""
    return _onnx_model(*read_resnet(model_file))


class OrtDescriptor:
    """dlib's face ResNet run by onnxruntime on one thread (scans run a process per core), from
    its ONNX graph (``descriptor_graph``)."""

    def __init__(self, graph: bytes, graph_sha256: bytes) -> None:
        self.graph_sha256 = graph_sha256
        self.session: Any = ort_session(graph, ResNetFormatError)

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {"chips": np.ascontiguousarray(chips, dtype=np.uint8)})[0]
        return np.asarray(out, dtype=np.float32).reshape(-1, NET_DIM)

    def check_against(self, encoder: Any) -> float:
        """Largest difference from dlib's own descriptors on fixed pseudo-random chips."""
        rng = np.random.default_rng(20240229)
        chips = rng.integers(0, 256, size=(2, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
        ref = np.array([np.asarray(v) for v in encoder.compute_face_descriptor(list(chips), 0)])
        return float(np.abs(self(chips) - ref).max())
