"""dlib's MMOD CNN face detector run by onnxruntime (faces/mmod.py) against dlib's own.

The reference is dlib itself (``dlib.cnn_face_detection_model_v1`` on the same model file): the
ONNX path must find the same boxes with the same scores. Faces without shared data are drawn
with Pillow (``mmod.drawn_face``: dlib's detector scores them ~1.0); real photos are used when
../shared/data is present.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from PIL import Image

from reclaim.faces import detect as D
from reclaim.faces import mmod
from reclaim.faces import models as M
from reclaim.faces.mmod import MmodDetection, MmodFormatError, OrtMmod, compare_detections
from reclaim.faces.pipeline import MODEL_FILES, FaceOptions, models_dir

from .conftest import photo_like, shared_data


def _model_bytes() -> bytes:
    return (models_dir() / MODEL_FILES["cnn"]).read_bytes()


@pytest.fixture(scope="module")
def fast() -> OrtMmod:
    return OrtMmod(_model_bytes())


@pytest.fixture(scope="module")
def dlib_cnn() -> Any:
    import dlib

    return dlib.cnn_face_detection_model_v1(str(models_dir() / MODEL_FILES["cnn"]))


def _dlib(dlib_cnn: Any, img: np.ndarray) -> list[MmodDetection]:
    return [
        MmodDetection(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(), d.confidence)
        for d in dlib_cnn(img, 0)
    ]


def _boxes(dets: list[MmodDetection]) -> list[tuple[int, int, int, int]]:
    return sorted((d.left, d.top, d.right, d.bottom) for d in dets)


def _on(background: np.ndarray, face: np.ndarray, x: int, y: int) -> np.ndarray:
    out = background.copy()
    out[y : y + face.shape[0], x : x + face.shape[1]] = face
    return out


# -- reading the model file -------------------------------------------------------------------


def test_reader_gets_the_files_options_and_network() -> None:
    net = mmod.read_mmod(_model_bytes())
    # dlib's face detector: 80×80 windows (its documentation: faces from ~80 px at upsample 0),
    # input means as input_rgb_image_pyramid's defaults, and the network type of dlib's
    # tools/python/src/cnn_face_detector.cpp: con5d<16,32,32> (stride 2), con5<45> ×3, con<1,9,9>.
    assert net.window == (80, 80)
    assert net.mean == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    assert (net.padding, net.outer_padding) == (10, 11)
    assert 0.2 < net.nms_iou < 0.5 and net.nms_covered == 1.0
    cons = [layer for layer in net.layers if layer[0] == "con"]
    assert [c[1].shape[0] for c in cons] == [16, 32, 32, 45, 45, 45, 1]
    assert [c[1].shape[2] for c in cons] == [5, 5, 5, 5, 5, 5, 9]
    assert [c[3] for c in cons] == [2, 2, 2, 1, 1, 1, 1]
    assert [c[4] for c in cons] == [0, 0, 0, 2, 2, 2, 4]  # dlib's default: stride 1 → k // 2
    assert [layer[0] for layer in net.layers].count("relu") == 6
    # map_output_to_input: three stride-2 5×5 convolutions without padding: p → 2p + 2, thrice.
    assert mmod._to_input(net, np.array([0, 1, 10])).tolist() == [14, 22, 94]


def test_reader_refuses_files_it_does_not_know() -> None:
    with pytest.raises(MmodFormatError):
        mmod.read_mmod((models_dir() / MODEL_FILES["descriptor"]).read_bytes())
    with pytest.raises(MmodFormatError):
        mmod.read_mmod(b"not a model")
    data = _model_bytes()
    with pytest.raises(MmodFormatError):
        mmod.read_mmod(data[: len(data) // 2])  # cut short inside a weight tensor


def test_tiled_pyramid_layout() -> None:
    rects, nr, nc = mmod.tiled_pyramid(120, 160, 10, 11)
    assert rects[0] == (11, 11, 170, 130)  # full size, inside the 11 px outer padding
    assert nc == 160 + 22
    sizes = [(b - t + 1, r - left + 1) for left, t, r, b in rects]
    for (h0, w0), (h1, w1) in itertools.pairwise(sizes):
        assert (h1, w1) == (h0 * 5 // 6, w0 * 5 // 6)  # pyramid_down<6>: floor(5/6 · size)
    assert min(h for h, _ in sizes) >= 5 and sizes[-1][0] * 5 // 6 < 5  # down to 5 rows
    # dlib's layout: a first column down the left, 10 px apart, then the rest up the right
    # side from the bottom, 10 px apart, right-aligned with the full-size level.
    col1 = [r for r in rects if r[0] == 11]
    col2 = rects[len(col1) :]
    assert col1 == rects[: len(col1)] and col2 and all(r[2] == 170 for r in col2)
    assert all(b[1] - a[3] - 1 == 10 for a, b in itertools.pairwise(col1))
    assert all(a[1] - b[3] - 1 == 10 for a, b in itertools.pairwise(col2))
    assert col2[0][3] == nr - 12 and max(r[3] for r in col1) == nr - 12
    for i, a in enumerate(rects):  # inside the image, never overlapping
        assert min(a[0], a[1]) >= 0 and a[2] < nc and a[3] < nr
        for b in rects[i + 1 :]:
            assert b[0] > a[2] or a[0] > b[2] or b[1] > a[3] or a[1] > b[3]
    assert mmod.tiled_pyramid(0, 10, 10, 11) == ([], 0, 0)


def test_bilinear_resize_matches_its_definition() -> None:
    rng = np.random.default_rng(3)
    src = rng.normal(size=(3, 7, 9)).astype(np.float32)
    out = mmod._resize_bilinear(src, 5, 6)
    assert out.shape == (3, 5, 6) and out.dtype == np.float32
    # corners are aligned: the four corners are copied, the rest interpolated
    for y, x in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        assert np.array_equal(out[:, y, x], src[:, y, x])
    # out[1, 2] samples src at (1 · 6/4, 2 · 8/5) = (1.5, 3.2)
    ref = 0.5 * (0.8 * src[:, 1, 3] + 0.2 * src[:, 1, 4]) + 0.5 * (
        0.8 * src[:, 2, 3] + 0.2 * src[:, 2, 4]
    )
    assert np.allclose(out[:, 1, 2], ref, atol=1e-6)


# -- detection against dlib's own ------------------------------------------------------------


def test_agrees_with_dlib_on_drawn_faces(fast: OrtMmod, dlib_cnn: Any) -> None:
    scene = np.asarray(photo_like(11, (260, 200)))
    images = [
        mmod.check_image(),  # two faces: one found at full size, one on a smaller level
        _on(scene, mmod.drawn_face(110, 0.7), 90, 40),
        _on(scene, mmod.drawn_face(150, 0.6), 20, 10)[:, :, ::-1],  # channels swapped
        np.asarray(Image.fromarray(mmod.drawn_face(200, 0.55)).convert("L").convert("RGB")),
    ]
    for img in images:
        img = np.ascontiguousarray(img)
        ref = _dlib(dlib_cnn, img)
        ours = fast(img)
        assert ref, "dlib should find the drawn face"
        assert compare_detections(ours, ref, min_iou=0.99, max_confidence_diff=1e-3) is None
        assert _boxes(ours) == _boxes(ref)
        assert [d.confidence for d in ours] == sorted((d.confidence for d in ours), reverse=True)


def test_finds_nothing_on_noise_or_flat_images(fast: OrtMmod, dlib_cnn: Any) -> None:
    rng = np.random.default_rng(5)
    for img in (
        rng.integers(0, 256, (150, 190, 3), dtype=np.uint8),
        np.full((120, 120, 3), 128, np.uint8),
        np.asarray(photo_like(2, (200, 160))),
    ):
        assert fast(img) == [] and _dlib(dlib_cnn, img) == []
    # Too small for the network (dlib raises there): nothing, no error.
    assert fast(np.zeros((8, 8, 3), np.uint8)) == []
    with pytest.raises(ValueError, match="RGB"):
        fast(np.zeros((50, 50), np.uint8))


def test_boxes_in_image_coordinates(fast: OrtMmod) -> None:
    canvas = np.asarray(photo_like(4, (320, 240)))
    face = mmod.drawn_face(110, 0.7)
    (a,) = fast(_on(canvas, face, 16, 24))
    (b,) = fast(_on(canvas, face, 16 + 64, 24 + 40))
    # Moving the face by multiples of the network's stride (8 px) moves the box as much.
    assert (b.left - a.left, b.top - a.top, b.right - a.right, b.bottom - a.bottom) == (
        64, 40, 64, 40,
    )  # fmt: skip
    assert b.right - b.left + 1 == 80  # the 80 px window at full size
    # The box is on the drawn face (an oval 77 px wide, 100 high, centred at 55, 59 in the
    # tile).
    cx, cy = (b.left + b.right) / 2 - 80, (b.top + b.bottom) / 2 - 64
    assert abs(cx - 55) < 8 and abs(cy - 59) < 12
    # The larger face of the check image is found on a smaller level and scaled back up.
    big = max(fast(mmod.check_image()), key=lambda d: d.right - d.left)
    assert 105 <= big.right - big.left + 1 <= 125 and big.left >= 120


def test_compare_detections_names_the_difference() -> None:
    a = MmodDetection(10, 10, 89, 89, 1.0)
    assert compare_detections([a], [a]) is None
    assert "detections" in str(compare_detections([], [a]))
    assert "IoU" in str(compare_detections([MmodDetection(30, 30, 109, 109, 1.0)], [a]))
    assert "confidence" in str(compare_detections([MmodDetection(10, 10, 89, 89, 0.8)], [a]))


# -- in faces.py: used only when it agrees with dlib --------------------------------------------


def test_faces_uses_the_onnx_detector() -> None:
    m = M._models()
    img = mmod.check_image()
    got = m.cnn_detect(img)
    assert m.detector_backend == "onnxruntime" and m.fast_detector is not None
    ref = [(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()) for d in m.cnn(img, 0)]
    assert sorted(g[:4] for g in got) == sorted(ref)
    # faces.py's CNN step on an image larger than the CNN's input cap: the network runs on a
    # reduced copy and the boxes come back in the caller's pixels.
    big = np.asarray(Image.fromarray(img).resize((600, 360)))
    dets = sorted(D._cnn(m, big, FaceOptions()), key=lambda d: d.left)
    assert [d.detector for d in dets] == ["cnn", "cnn"]
    for d, (left, top, right, bottom) in zip(dets, sorted(ref), strict=True):
        got_box = (d.left, d.top, d.right, d.bottom)
        assert got_box == pytest.approx((2 * left, 2 * top, 2 * right + 2, 2 * bottom + 2), abs=12)


def test_dlib_detects_when_the_graph_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(model: bytes, error: type[Exception], threads: int = 1) -> None:
        raise error("onnxruntime refused the network: stand-in")

    monkeypatch.setattr(mmod, "ort_session", refused)
    m = M._Models()
    img = mmod.check_image()
    got = m.cnn_detect(img)
    assert m.fast_detector is None
    assert m.detector_backend == "dlib: MmodFormatError: onnxruntime refused the network: stand-in"
    ref = [
        (d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(), d.confidence)
        for d in m.cnn(img, 0)
    ]
    assert got == ref and len(got) == 2


def test_dlib_detects_when_the_onnx_detections_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    real_scores = OrtMmod.scores

    def shifted(self: OrtMmod, rgb: np.ndarray) -> tuple[np.ndarray, list[Any]]:
        s, rects = real_scores(self, rgb)
        return np.roll(s, 3, axis=1), rects  # every score 3 positions (24 px) to the right

    monkeypatch.setenv("RECLAIM_CACHE_DIR", "off")  # a check passed earlier would be kept
    monkeypatch.setattr(OrtMmod, "scores", shifted)
    m = M._Models()
    got = m.cnn_detect(mmod.check_image())
    assert m.fast_detector is None and len(got) == 2
    assert m.detector_backend.startswith("dlib: onnxruntime detections differ: box")


# -- with real faces (../shared/data) ----------------------------------------------------------


def test_agrees_with_dlib_on_real_photos(fast: OrtMmod, dlib_cnn: Any) -> None:
    d = shared_data("faces", "real-color")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:12]
    found = 0
    for p in files:
        with Image.open(p) as im:
            im = im.convert("RGB")
            im.thumbnail((200, 200))
            img = np.asarray(im)
        ref = _dlib(dlib_cnn, img)
        ours = fast(img)
        assert compare_detections(ours, ref, min_iou=0.99, max_confidence_diff=1e-3) is None, p
        found += len(ref)
    assert found >= 6
