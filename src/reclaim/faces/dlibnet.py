"""Reading dlib's serialized networks and running them with onnxruntime.

dlib's own CPU code (dlib-bin is built without BLAS) is several times slower than onnxruntime on
the same convolutions. The face models of ``face-recognition-models`` are dlib networks; this
module holds what is shared by the code that reads them (``faces.py``: the 128-d descriptor
ResNet, ``mmod.py``: the MMOD CNN face detector) and turns them into ONNX graphs built in memory:
dlib's serialization primitives, a minimal protobuf writer for the ONNX fields used (the ``onnx``
package is not a dependency: onnxruntime reads the bytes) and a one-thread session.

Nothing is shipped or downloaded: each graph is built from the model file when the models load,
and the callers use it only after checking its output against dlib's own.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "ONNX_FLOAT",
    "ONNX_INT64",
    "ONNX_UINT8",
    "DatReader",
    "NetFormatError",
    "OnnxGraph",
    "find_marks",
    "ort_session",
]


class NetFormatError(Exception):
    """A model file is not the dlib network its reader knows, or onnxruntime refused the graph."""


class DatReader:
    """The parts of dlib's serialization format that the face models' files use.

    ``error`` is the exception class raised for a malformed file (a subclass of
    NetFormatError)."""

    def __init__(self, data: bytes, error: type[NetFormatError] = NetFormatError) -> None:
        self.b = data
        self.error = error

    def int_at(self, pos: int) -> tuple[int, int]:
        """dlib's compact integer: a control byte (bit 7: negative, low 4 bits: byte count),
        then that many little-endian bytes."""
        if pos >= len(self.b):
            raise self.error("model file ends inside a number")
        c = self.b[pos]
        n = c & 0x0F
        if n > 8 or pos + 1 + n > len(self.b):
            raise self.error(f"bad integer at byte {pos}")
        v = int.from_bytes(self.b[pos + 1 : pos + 1 + n], "little")
        return (-v if c & 0x80 else v), pos + 1 + n

    def ints_at(self, pos: int, count: int) -> tuple[list[int], int]:
        out = []
        for _ in range(count):
            v, pos = self.int_at(pos)
            out.append(v)
        return out, pos

    def tensor_at(self, pos: int) -> tuple[np.ndarray, int]:
        """A dlib tensor (version 2): 4 dimensions, then little-endian float32 values."""
        (version, n, k, nr, nc), pos = self.ints_at(pos, 5)
        size = n * k * nr * nc
        if version != 2 or min(n, k, nr, nc) < 1 or pos + 4 * size > len(self.b):
            raise self.error(f"unexpected tensor at byte {pos}")
        return np.frombuffer(self.b, dtype="<f4", count=size, offset=pos), pos + 4 * size

    def con_at(self, pos: int) -> tuple[str, np.ndarray, np.ndarray, int, int]:
        """A ``con_`` layer's fields: ("con", weights (nf, c, k, k), biases, stride, padding).

        Only square kernels with the same stride and padding on both axes (all dlib's face
        models use)."""
        params, pos = self.tensor_at(pos)
        (nf, kh, kw, sy, sx, py, px), _ = self.ints_at(pos, 7)
        if nf < 1 or kh != kw or sy != sx or py != px or kh < 1 or sy < 1 or py < 0:
            raise self.error(f"unsupported convolution {nf, kh, kw, sy, sx, py, px}")
        c, rest = divmod(params.size - nf, nf * kh * kw)
        if rest or c < 1:
            raise self.error("convolution weights do not match their shape")
        w = params[: nf * c * kh * kw].reshape(nf, c, kh, kw)
        return "con", w, params[nf * c * kh * kw :], sy, py

    def float_at(self, pos: int) -> tuple[float, int]:
        """dlib's portable float: mantissa and power-of-two exponent, both compact integers."""
        mant, pos = self.int_at(pos)
        exp, pos = self.int_at(pos)
        return math.ldexp(float(mant), exp), pos

    def floats_at(self, pos: int, count: int) -> tuple[list[float], int]:
        out = []
        for _ in range(count):
            v, pos = self.float_at(pos)
            out.append(v)
        return out, pos


def find_marks(data: bytes, names: tuple[str, ...]) -> list[tuple[int, str]]:
    """(position after the name, name) of every serialized string ``name`` in ``data``, in file
    order. dlib writes each layer as its name (a length-prefixed string) then its fields."""
    marks = []
    for name in names:
        key = bytes([1, len(name)]) + name.encode()
        start = data.find(key)
        while start >= 0:
            marks.append((start + len(key), name))
            start = data.find(key, start + 1)
    marks.sort()
    return marks


# -- a minimal protobuf writer for the ONNX ModelProto fields used here -----------------------

ONNX_FLOAT, ONNX_UINT8, ONNX_INT64 = 1, 2, 7


def _pb_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pb_int(field: int, v: int) -> bytes:
    return _pb_varint(field << 3) + _pb_varint(v)


def _pb_len(field: int, payload: bytes) -> bytes:
    return _pb_varint(field << 3 | 2) + _pb_varint(len(payload)) + payload


def _pb_str(field: int, text: str) -> bytes:
    return _pb_len(field, text.encode())


def _pb_tensor(name: str, a: np.ndarray) -> bytes:
    kinds = {np.dtype(np.float32): ("<f4", ONNX_FLOAT), np.dtype(np.int64): ("<i8", ONNX_INT64)}
    dt, code = kinds[a.dtype]
    dims = b"".join(_pb_int(1, d) for d in a.shape)
    raw = np.ascontiguousarray(a, dtype=dt).tobytes()
    return dims + _pb_int(2, code) + _pb_str(8, name) + _pb_len(9, raw)


def _pb_node(op: str, inputs: list[str], output: str, **attrs: int | list[int]) -> bytes:
    out = b"".join(_pb_str(1, i) for i in inputs) + _pb_str(2, output)
    out += _pb_str(3, output) + _pb_str(4, op)
    for key, v in attrs.items():
        if isinstance(v, list):
            body = _pb_str(1, key) + b"".join(_pb_int(8, x) for x in v) + _pb_int(20, 7)
        else:
            body = _pb_str(1, key) + _pb_int(3, v) + _pb_int(20, 2)
        out += _pb_len(5, body)
    return out


def _pb_value_info(name: str, elem: int, dims: list[int | str]) -> bytes:
    shape = b"".join(
        _pb_len(1, _pb_str(2, d) if isinstance(d, str) else _pb_int(1, d)) for d in dims
    )
    tensor_type = _pb_int(1, elem) + _pb_len(2, shape)
    return _pb_str(1, name) + _pb_len(2, _pb_len(1, tensor_type))


class OnnxGraph:
    """An ONNX graph built node by node: ``const`` adds a weight (float32 or int64 array),
    ``node`` an operator; ``model`` gives the ModelProto bytes (opset 17)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._nodes: list[bytes] = []
        self._inits: list[bytes] = []
        self._count = 0

    def const(self, a: np.ndarray) -> str:
        self._count += 1
        name = f"w{self._count}"
        self._inits.append(_pb_tensor(name, a))
        return name

    def node(
        self, op: str, inputs: list[str], output: str | None = None, **attrs: int | list[int]
    ) -> str:
        if output is None:
            self._count += 1
            output = f"t{self._count}"
        self._nodes.append(_pb_node(op, inputs, output, **attrs))
        return output

    def model(
        self,
        inputs: list[tuple[str, int, list[int | str]]],
        outputs: list[tuple[str, int, list[int | str]]],
    ) -> bytes:
        """``inputs`` and ``outputs``: (name, element type, dimensions: ints or named)."""
        graph = b"".join(_pb_len(1, n) for n in self._nodes) + _pb_str(2, self.name)
        graph += b"".join(_pb_len(5, t) for t in self._inits)
        graph += b"".join(_pb_len(11, _pb_value_info(*v)) for v in inputs)
        graph += b"".join(_pb_len(12, _pb_value_info(*v)) for v in outputs)
        opset = _pb_str(1, "") + _pb_int(2, 17)
        return _pb_int(1, 8) + _pb_str(2, "reclaim") + _pb_len(7, graph) + _pb_len(8, opset)


def ort_session(
    model: bytes, error: type[NetFormatError] = NetFormatError, threads: int = 1
) -> Any:
    """An onnxruntime CPU session on ``threads`` threads (scans run one process per core).

    Raises ImportError without onnxruntime and ``error`` when onnxruntime refuses the graph."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise error(f"onnxruntime refused the network: {e}") from e
