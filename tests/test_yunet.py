"""YuNet (signals/yunet): the shipped file, its folded graph, decoding, and its place beside HOG
and the CNN in face detection."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from reclaim.faces import detect as D
from reclaim.faces import models as M
from reclaim.faces import pipeline as F
from reclaim.faces import sface as S
from reclaim.faces import yunet as Y
from reclaim.media import Media

from .conftest import photo_like, shared_data


@pytest.fixture(scope="module")
def yunet() -> Y.YuNet:
    return Y.YuNet()


def _opencv(rgb: np.ndarray, score: float) -> list[tuple[float, ...]]:
    """OpenCV's own FaceDetectorYN on the shipped file: (x, y, w, h, score) per face."""
    path = S.model_path(Y.MODEL_FILE)
    h, w = rgb.shape[:2]
    det = cv2.FaceDetectorYN.create(str(path), "", (w, h), score, 0.3, 5000)
    _, faces = det.detect(np.ascontiguousarray(rgb[:, :, ::-1]))
    return [] if faces is None else [tuple(float(v) for v in r[[0, 1, 2, 3, 14]]) for r in faces]


def _ours(found: list[Y.YuNetFace]) -> list[tuple[float, ...]]:
    return [(f.x, f.y, f.width, f.height, f.score) for f in found]


def test_the_shipped_file_is_folded_and_decoded_as_opencv_does(yunet: Y.YuNet) -> None:
    assert yunet.backend == "folded"
    assert S.model_path(Y.MODEL_FILE).name == "face_detection_yunet_2023mar_int8bq.onnx"
    # Every candidate above a low score, on an image of no face and of a size that is not a
    # multiple of 32: same boxes, scores and order as OpenCV's detector after its NMS.
    img = np.asarray(photo_like(4, (333, 250)))
    want = _opencv(img, 0.01)
    got = _ours(yunet(img, min_score=0.01))
    assert len(want) >= 3 and len(got) == len(want)
    np.testing.assert_allclose(np.array(got), np.array(want), atol=2e-3)


def test_large_images_are_searched_scaled_down(yunet: Y.YuNet) -> None:
    img = np.asarray(photo_like(9, (1300, 700)))
    small = np.asarray(cv2.resize(img, (640, 345), interpolation=cv2.INTER_AREA))
    a = _ours(yunet(img, min_score=0.01))
    b = _ours(yunet(small, min_score=0.01))
    assert a and len(a) == len(b)
    sx, sy = 1300 / 640, 700 / 345
    scaled = [(x * sx, y * sy, w * sx, h * sy, s) for x, y, w, h, s in b]
    np.testing.assert_allclose(np.array(a), np.array(scaled), rtol=1e-5, atol=1e-3)


def test_the_check_falls_back_to_opencv_or_says_it_could_not_run(
    monkeypatch: pytest.MonkeyPatch, yunet: Y.YuNet
) -> None:
    monkeypatch.setenv("RECLAIM_CACHE_DIR", "off")  # a check passed earlier would be kept
    img = np.asarray(photo_like(4, (333, 250)))
    want = _ours(yunet(img, min_score=0.01))
    monkeypatch.setattr(Y, "_MAX_CHECK_DIFF", -1.0)  # every difference is too large
    fallback = Y.YuNet()
    assert fallback.backend.startswith("as shipped, run by OpenCV: folded output differs")
    assert fallback.opencv_net is not None
    np.testing.assert_allclose(
        np.array(_ours(fallback(img, min_score=0.01))), np.array(want), atol=2e-3
    )
    monkeypatch.undo()
    monkeypatch.setenv("RECLAIM_CACHE_DIR", "off")

    def refuse(*a: object) -> object:
        raise cv2.error("no")

    monkeypatch.setattr(cv2.dnn, "readNetFromONNX", refuse)
    unchecked = Y.YuNet()
    assert unchecked.backend.startswith("folded, not checked: OpenCV cannot run")
    assert unchecked.opencv_net is None


def test_a_foreign_model_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    other = tmp_path / "other.onnx"
    other.write_bytes(b"not the model")
    monkeypatch.setattr(S, "model_path", lambda *a: other)
    with pytest.raises(S.SFaceMissing, match="YuNet face detector file is not the expected one"):
        Y.YuNet()


def test_yunet_faces_are_added_where_no_other_face_is(monkeypatch: pytest.MonkeyPatch) -> None:
    img = np.asarray(photo_like(5, (200, 120)))
    hog = D._Det(0, 0, 100, 100, 1.0, "hog")
    monkeypatch.setattr(D, "_hog", lambda m, rgb, o, *a: [D._Det(0, 0, 100, 100, 1.0, "hog")])
    monkeypatch.setattr(D, "_cnn", lambda m, rgb, o: [])
    same = D._Det(5, 5, 105, 105, 0.9, "yunet")  # HOG's face again: dropped
    other = D._Det(150, 30, 230, 110, 0.8, "yunet")  # a face HOG missed: kept, clipped
    tiny = D._Det(120, 0, 130, 10, 0.95, "yunet")  # too small to describe: dropped
    monkeypatch.setattr(D, "_yunet", lambda m, rgb, o: [same, other, tiny])
    dets = D._detect(M._models(), img, F.FaceOptions())
    assert [(d.detector, d.right) for d in dets] == [("hog", 100), ("yunet", 200)]
    assert hog.iou(same) > 0.3
    calls: list[int] = []
    monkeypatch.setattr(D, "_yunet", lambda m, rgb, o: calls.append(1) or [other])
    assert [d.detector for d in D._detect(M._models(), img, F.FaceOptions(yunet_max_side=0))] == [
        "hog"
    ]
    assert calls == []  # off: not run


def test_yunet_boxes_are_mapped_onto_hogs() -> None:
    # dlib's landmark model expects HOG's boxes: YuNet's, mapped, fall on them.
    d = shared_data("faces", "deepface-pairs")
    rgb = np.asarray(Media((d / "img1.jpg").read_bytes()).image(max_side=800))
    m, o = M._models(), F.FaceOptions()
    (hog,) = D._hog(m, rgb, o)
    (yn,) = [y for y in D._yunet(m, rgb, o) if y.iou(hog) > 0.3]
    assert yn.iou(hog) > 0.7 and yn.detector == "yunet" and yn.score >= o.yunet_min_score


def test_a_face_only_yunet_finds_gets_a_descriptor_close_to_hogs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = shared_data("faces", "deepface-pairs")
    rgb = np.asarray(Media((d / "img1.jpg").read_bytes()).image(max_side=800))
    (ref,) = F.find_faces(rgb)
    monkeypatch.setattr(D, "_hog", lambda m, img, o, *a: [])
    monkeypatch.setattr(D, "_cnn", lambda m, img, o: [])
    (yn,) = F.find_faces(rgb)
    assert yn.detector == "yunet" and ref.detector == "hog"
    assert np.linalg.norm(yn.descriptor - ref.descriptor) < 0.25


def test_hog_is_scaled_to_the_smallest_yunet_face(monkeypatch: pytest.MonkeyPatch) -> None:
    img = np.asarray(photo_like(5, (300, 200)))
    seen: list[tuple[int, ...]] = []

    class Hog:
        def run(self, im: np.ndarray, up: int, adjust: float) -> tuple[list[object], ...]:
            seen.append(im.shape[:2])
            return [], [], []

    m = M._models()
    monkeypatch.setattr(m, "hog", Hog())
    monkeypatch.setattr(D, "_cnn", lambda *a: [])

    def hog_input(yunet_faces: list[D._Det], **options: int) -> tuple[int, ...]:
        monkeypatch.setattr(D, "_yunet", lambda *a: list(yunet_faces))
        D._detect(m, img, F.FaceOptions(**options))  # type: ignore[arg-type]
        return seen[-1]

    face = D._Det(10, 10, 110, 110, 0.9, "yunet")  # 100 px
    large = D._Det(150, 0, 290, 140, 0.9, "yunet")  # 140 px
    assert hog_input([]) == (400, 600)  # no YuNet face: upsampled ×2 as usual
    assert hog_input([face, large]) == (280, 420)  # the smallest becomes 140 px: ×1.4
    assert hog_input([large]) == (200, 300)  # already 140 px: the image's own size
    assert hog_input([D._Det(0, 0, 280, 280, 0.9, "yunet")]) == (100, 150)  # ×0.5
    assert hog_input([D._Det(0, 0, 20, 20, 0.9, "yunet")]) == (400, 600)  # never beyond ×2
    assert hog_input([face], hog_face_px=0) == (400, 600)  # off: the usual scale


def test_the_check_does_not_use_yunets_faces(monkeypatch: pytest.MonkeyPatch) -> None:
    from reclaim.detectors import check as forensics

    def no_yunet(*a: object) -> list[D._Det]:
        raise AssertionError("the check looked for faces with YuNet")

    monkeypatch.setattr(D, "_yunet", no_yunet)
    img = np.asarray(photo_like(3, (160, 120)))
    assert forensics._regions(img, None, forensics.DetectorOptions()) == []
    kw = {"confidence": 1.0, "size": 50, "blur": 100.0, "pose": 0.0, "descriptor": np.zeros(3)}
    faces = [
        F.Face(box=(0, 0, 50, 50), detector="hog", **kw),  # type: ignore[arg-type]
        F.Face(box=(60, 0, 110, 50), detector="yunet", **kw),  # type: ignore[arg-type]
        F.Face(box=(0, 60, 50, 110), detector="cnn", **kw),  # type: ignore[arg-type]
        F.Face(box=(0, 0, 50, 50), detector="hog", frame=3, **kw),  # type: ignore[arg-type]
    ]
    assert forensics.check_boxes(faces) == [(0, 0, 50, 50), (0, 60, 50, 110)]
