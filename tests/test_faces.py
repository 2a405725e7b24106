"""Face detection and descriptors (signals/faces): lazy models, quality measures, real faces.

Tests that need real faces use ../shared/data/faces and skip when it is absent; the rest
(quality measures, encodings, the no-face path on synthetic images) need nothing.
"""

from __future__ import annotations

import base64
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from reclaim.faces import detect as D
from reclaim.faces import models as M
from reclaim.faces import pipeline as F
from reclaim.faces import resnet as R
from reclaim.faces.pipeline import (
    DESCRIPTOR_DIM,
    MODEL_FILES,
    Face,
    FaceOptions,
    FaceSignal,
    blur_of_chip,
    descriptor_from_bytes,
    descriptor_to_bytes,
    descriptors_from_json,
    faces_to_json,
    find_faces,
    media_faces,
    models_dir,
    pose_of_landmarks,
)
from reclaim.media import Media

from .conftest import jpeg_bytes, photo_like, shared_data


def _face(desc: np.ndarray, **kw: object) -> Face:
    base: dict[str, object] = {
        "box": (1, 2, 101, 102),
        "detector": "hog",
        "confidence": 1.0,
        "size": 100,
        "blur": 120.0,
        "pose": 0.05,
        "descriptor": desc.astype(np.float32),
    }
    base.update(kw)
    return Face(**base)  # type: ignore[arg-type]


# -- without shared data ---------------------------------------------------------------------


def test_models_are_not_loaded_at_import() -> None:
    code = (
        "import sys, reclaim.cli, reclaim.scan, reclaim.enroll, reclaim.match.faces, "
        "reclaim.findings\n"
        "import reclaim.faces.pipeline, reclaim.faces.models as f\n"
        "print(f._MODELS is None, 'dlib' in sys.modules)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["True", "False"]


def test_model_files_come_from_face_recognition_models() -> None:
    d = models_dir()
    assert d.parent.name == "face_recognition_models"
    for name in MODEL_FILES.values():
        assert (d / name).stat().st_size > 100_000


def test_no_face_in_synthetic_images() -> None:
    # Both detectors run here (HOG finds nothing, so the CNN fallback looks too).
    assert find_faces(np.asarray(photo_like(3, (200, 150)))) == []
    assert find_faces(np.full((100, 150, 3), 128, np.uint8)) == []
    for tiny in ((1, 1), (5, 3), (1, 400)):
        assert find_faces(np.zeros((*tiny, 3), np.uint8)) == []
    faces, frames = media_faces(Media(jpeg_bytes(photo_like(4, (160, 120)))))
    assert (faces, frames) == ([], 1)


def test_find_faces_rejects_non_rgb_arrays() -> None:
    with pytest.raises(ValueError, match="RGB"):
        find_faces(np.zeros((50, 50), np.uint8))


def test_blur_measure_ranks_sharp_above_blurred() -> None:
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (150, 150, 3)).astype(np.uint8)
    im = Image.fromarray(sharp)
    soft = np.asarray(im.filter(ImageFilter.GaussianBlur(2)))
    softer = np.asarray(im.filter(ImageFilter.GaussianBlur(5)))
    b = [blur_of_chip(x) for x in (sharp, soft, softer)]
    assert b[0] > b[1] > b[2] > 0
    assert blur_of_chip(np.full((150, 150, 3), 77, np.uint8)) == 0.0
    # A vertical step edge: Laplacian is ±v on the two columns beside it, 0 elsewhere.
    step = np.zeros((150, 150), np.uint8)
    step[:, 75:] = 100
    c = step[30:120, 30:120].astype(float)
    lap = c[1:-1, :-2] + c[1:-1, 2:] + c[:-2, 1:-1] + c[2:, 1:-1] - 4 * c[1:-1, 1:-1]
    assert blur_of_chip(step) == pytest.approx(lap.var())


def test_pose_proxy_from_landmarks() -> None:
    # dlib 5-point order: two corners of one eye, two of the other, base of the nose.
    frontal = np.array([[10, 50], [30, 50], [70, 50], [90, 50], [50, 80]], float)
    assert pose_of_landmarks(frontal) == pytest.approx(0.0)
    turned = frontal.copy()
    turned[4, 0] = 65  # nose 15 px toward one eye; eye centres 60 px apart
    assert pose_of_landmarks(turned) == pytest.approx(15 / 60)
    # Rotating the whole face in the image plane does not change the yaw proxy.
    a = np.deg2rad(30)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    assert pose_of_landmarks(turned @ rot.T) == pytest.approx(15 / 60)
    assert pose_of_landmarks(np.zeros((5, 2))) == 1.0


def test_descriptor_bytes_roundtrip_and_errors() -> None:
    d = np.random.default_rng(1).normal(size=DESCRIPTOR_DIM).astype(np.float32)
    b = descriptor_to_bytes(d)
    assert len(b) == 1536
    assert np.array_equal(descriptor_from_bytes(b), d)
    with pytest.raises(ValueError, match="384"):
        descriptor_to_bytes(np.zeros(383))
    with pytest.raises(ValueError, match="1536"):
        descriptor_from_bytes(b[:-4])
    # Descriptors of older kinds (v1: 128 values, v2: 256) are named as such, not misread.
    with pytest.raises(F.StaleDescriptors, match=r"older reclaim \(one view.*new case folder"):
        descriptor_from_bytes(b[:512])
    with pytest.raises(F.StaleDescriptors, match=r"older reclaim \(dlib alone, 256"):
        descriptor_from_bytes(b[:1024])


def test_chip_views_mirror_and_inner_face() -> None:
    chip = np.asarray(photo_like(5, (150, 150)))
    whole, mirror, inner = F.chip_views(chip)
    assert np.array_equal(whole, chip)
    assert np.array_equal(mirror, chip[:, ::-1])
    # The inner view keeps the face's centre as it is and greys out the corners and borders.
    assert np.array_equal(inner[79, 75], chip[79, 75])
    for y, x in ((0, 0), (0, 149), (149, 0), (149, 149), (75, 2), (75, 147), (2, 75)):
        grey = np.abs(inner[y, x].astype(int) - F.INNER_FILL).max()
        assert grey <= 2 < np.abs(chip[y, x].astype(int) - F.INNER_FILL).max(), (y, x)


def test_descriptor_v2_combines_the_views() -> None:
    # Stand-in network outputs: 2 chips × 3 views, stacked view by view.
    rng = np.random.default_rng(3)
    net = rng.normal(size=(6, F.NET_DIM)).astype(np.float32)
    d = F.combine_views(net)
    assert d.shape == (2, F.DLIB_DIM)
    s = np.float32(np.sqrt(2.0))
    assert np.allclose(d[1, :128] * s, (net[1] + net[3]) / 2, atol=1e-6)  # chip 1 + its mirror
    assert np.allclose(d[1, 128:] * s, net[5], atol=1e-6)  # chip 1's inner face
    # The distance is the root mean square of the whole-face and inner-face distances.
    whole = np.linalg.norm((net[0] + net[2]) / 2 - (net[1] + net[3]) / 2)
    inner = np.linalg.norm(net[4] - net[5])
    assert np.linalg.norm(d[0] - d[1]) == pytest.approx(np.sqrt((whole**2 + inner**2) / 2), 1e-5)


def test_descriptor_of_a_mirrored_face_is_close() -> None:
    # Mirror averaging: a face and its mirror image differ only by the inner view's asymmetry.
    m = M._models()
    chip = np.asarray(photo_like(6, (150, 150)))
    a, b = F.describe_chips(m, [chip, np.ascontiguousarray(chip[:, ::-1])])
    assert np.allclose(a[:128], b[:128], atol=1e-5)
    assert F.describe_chips(m, []).shape == (0, F.DLIB_DIM)


def test_descriptor_v3_appends_weighted_sface() -> None:
    rng = np.random.default_rng(4)
    dl = rng.normal(size=(2, F.DLIB_DIM)).astype(np.float32)
    sf = rng.normal(size=(2, 128)).astype(np.float32)
    sf /= np.linalg.norm(sf, axis=1, keepdims=True)
    d = F.combine_parts(dl, sf)
    assert d.shape == (2, DESCRIPTOR_DIM) and DESCRIPTOR_DIM == 384
    assert np.array_equal(d[:, : F.DLIB_DIM], dl)
    # Squared distances add: dlib's plus SFACE_WEIGHT² times SFace's.
    want = np.sum((dl[0] - dl[1]) ** 2) + F.SFACE_WEIGHT**2 * np.sum((sf[0] - sf[1]) ** 2)
    assert np.sum((d[0] - d[1]) ** 2) == pytest.approx(want, rel=1e-5)
    m = M._models()
    assert F.describe_faces(m, np.zeros((50, 50, 3), np.uint8), [], []).shape == (0, 384)


def test_face_quality_combines_size_blur_and_pose() -> None:
    z = np.zeros(DESCRIPTOR_DIM)
    assert _face(z, pose=0.0).quality == 1.0
    assert _face(z, pose=0.0, size=40).quality == pytest.approx(0.5)
    assert _face(z, pose=0.0, blur=25.0).quality == pytest.approx(0.25)
    assert _face(z, pose=0.3).quality == pytest.approx(0.5)
    assert _face(z, pose=0.9).quality == 0.0


def test_face_signal_text_form_and_compare() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, DESCRIPTOR_DIM))
    va = faces_to_json([_face(a), _face(b, frame=3, timestamp_s=1.5)])
    rec = json.loads(va)
    assert rec[1]["frame"] == 3 and rec[0]["box"] == [1, 2, 101, 102]
    back = descriptors_from_json(va)
    assert np.allclose(back[0], a.astype(np.float32)) and np.allclose(back[1], b)
    near = a + 0.01
    vb = faces_to_json([_face(near)])
    sig = FaceSignal(threshold=0.6)
    cmp = sig.compare(va, vb)
    assert cmp.match and cmp.distance == pytest.approx(
        float(np.linalg.norm(a.astype(np.float32) - near.astype(np.float32))), rel=1e-5
    )
    far = faces_to_json([_face(a + 1.0)])
    assert not sig.compare(vb, far).match
    assert FaceSignal.validate(va) == va
    for bad, why in (
        ("nope", "not JSON"),
        ("{}", "JSON list"),
        ('[{"box": [1]}]', "no descriptor"),
        ('[{"descriptor": "!!"}]', "base64"),
        ('[{"descriptor": "AAAA"}]', "1536 bytes"),
        (json.dumps([{"descriptor": base64.b64encode(bytes(512)).decode()}]), "older reclaim"),
    ):
        with pytest.raises(ValueError, match=why):
            FaceSignal.validate(bad)


def test_cnn_runs_when_hog_finds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(D, "_hog", lambda m, rgb, o, *a: calls.append("hog") or [])
    monkeypatch.setattr(D, "_cnn", lambda m, rgb, o: calls.append("cnn") or [])
    img = np.asarray(photo_like(5, (120, 90)))
    assert find_faces(img, FaceOptions()) == []
    assert calls == ["hog", "cnn"]
    calls.clear()
    find_faces(img, FaceOptions(cnn="off"))
    assert calls == ["hog"]
    # A big HOG face: no CNN; a small one: CNN too, and overlapping CNN boxes are dropped.
    calls.clear()
    big = D._Det(0, 0, 100, 100, 1.0, "hog")
    monkeypatch.setattr(D, "_hog", lambda m, rgb, o, *a: calls.append("hog") or [big])
    dets = D._detect(M._models(), img, FaceOptions())
    assert calls == ["hog"] and len(dets) == 1
    calls.clear()
    small = D._Det(0, 0, 40, 40, 1.0, "hog")
    dup = D._Det(2, 2, 42, 42, 0.9, "cnn")
    other = D._Det(60, 40, 110, 90, 0.9, "cnn")
    monkeypatch.setattr(D, "_hog", lambda m, rgb, o, *a: calls.append("hog") or [small])
    monkeypatch.setattr(D, "_cnn", lambda m, rgb, o: calls.append("cnn") or [dup, other])
    dets = D._detect(M._models(), img, FaceOptions())
    assert calls == ["hog", "cnn"]
    assert [d.detector for d in dets] == ["hog", "cnn"]
    assert dets[1].right == 110 and dets[1].bottom == 90  # clipped to the 120×90 image


def _dlib_descriptors(chips: list[np.ndarray]) -> np.ndarray:
    enc = M._models().encoder
    return np.array([np.asarray(v) for v in enc.compute_face_descriptor(chips, 0)])


def test_fast_descriptor_equals_dlibs_own() -> None:
    # dlib's network run by onnxruntime must give dlib's descriptors: the calibration and every
    # stored template were measured with dlib's. Chips unlike the load-time check's: smooth
    # photo-like images, a flat one, a saturated one and noise, one batch of several.
    m = M._models()
    assert m.descriptor_backend == "onnxruntime"
    rng = np.random.default_rng(7)
    chips = [np.asarray(photo_like(s, (150, 150))) for s in (1, 2, 3)]
    chips += [np.full((150, 150, 3), 128, np.uint8), np.full((150, 150, 3), 255, np.uint8)]
    chips.append(rng.integers(0, 256, (150, 150, 3), dtype=np.uint8))
    ours = m.describe(chips)
    assert ours.shape == (6, F.NET_DIM) and ours.dtype == np.float32
    ref = _dlib_descriptors(chips)
    assert np.abs(ours - ref).max() < 1e-5
    # Different inputs give different descriptors (not a constant output that happens to match).
    assert np.linalg.norm(ours[0] - ours[5]) > 0.05
    assert m.describe([]).shape == (0, F.NET_DIM)


def test_descriptor_reader_refuses_files_it_does_not_know() -> None:
    d = models_dir()
    with pytest.raises(R.ResNetFormatError):
        R.read_resnet((d / MODEL_FILES["cnn"]).read_bytes())  # another dlib network
    with pytest.raises(R.ResNetFormatError):
        R.read_resnet(b"not a model")
    data = (d / MODEL_FILES["descriptor"]).read_bytes()
    with pytest.raises(R.ResNetFormatError):
        R.read_resnet(data[: len(data) // 2])  # cut short inside a weight tensor


def test_dlib_computes_descriptors_when_the_fast_path_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object) -> None:
        raise R.ResNetFormatError("stand-in failure")

    monkeypatch.setattr(M, "OrtDescriptor", broken)
    m = M._Models()
    assert m.fast_encoder is None
    assert m.descriptor_backend == "dlib: ResNetFormatError: stand-in failure"
    chips = [np.asarray(photo_like(4, (150, 150)))]
    assert np.abs(m.describe(chips) - _dlib_descriptors(chips)).max() == 0


def test_fast_descriptor_not_used_when_it_disagrees_with_dlib(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RECLAIM_CACHE_DIR", "off")  # a check passed earlier would be kept
    monkeypatch.setattr(R.OrtDescriptor, "check_against", lambda self, enc: 0.01)
    m = M._Models()
    assert m.fast_encoder is None and m.descriptor_backend.startswith("dlib: onnxruntime output")


# -- with real faces (../shared/data) ----------------------------------------------------------


def _deepface_pairs() -> tuple[Path, list[dict[str, str]]]:
    d = shared_data("faces", "deepface-pairs")
    with open(d / "master.csv", encoding="utf-8") as fh:
        return d, list(csv.DictReader(fh))


def _photo(path: Path, max_side: int = 800) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((max_side, max_side))
        return np.asarray(im)


def test_same_person_close_different_people_far() -> None:
    d, rows = _deepface_pairs()
    yes = next(r for r in rows if r["Decision"] == "Yes")
    no = next(r for r in rows if r["Decision"] == "No")

    def desc(name: str) -> np.ndarray:
        faces = find_faces(_photo(d / name))
        assert faces, name
        return faces[0].descriptor

    assert np.linalg.norm(desc(yes["file_x"]) - desc(yes["file_y"])) < 0.6
    assert np.linalg.norm(desc(no["file_x"]) - desc(no["file_y"])) > 0.6


def test_face_fields_and_box_in_original_pixels() -> None:
    d, _ = _deepface_pairs()
    img = _photo(d / "img1.jpg", 600)
    (f,) = find_faces(img)
    h, w = img.shape[:2]
    left, top, right, bottom = f.box
    assert 0 <= left < right <= w and 0 <= top < bottom <= h
    assert f.size == min(right - left, bottom - top) and f.size > 80
    assert f.detector == "hog" and f.confidence > 0
    assert f.blur > 10 and 0 <= f.pose < 0.3 and 0 < f.quality <= 1
    assert f.descriptor.shape == (DESCRIPTOR_DIM,) and f.descriptor.dtype == np.float32
    # Twice as large: detection runs on a capped, rescaled copy; boxes come back in the
    # caller's pixels, and the descriptor hardly moves.
    big = np.asarray(Image.fromarray(img).resize((w * 2, h * 2)))
    (g,) = find_faces(big)
    assert g.box == pytest.approx(tuple(2 * v for v in f.box), abs=0.08 * 2 * f.size)
    assert np.linalg.norm(g.descriptor - f.descriptor) < 0.15
    # The CNN detector alone finds the same face.
    (c,) = find_faces(img, FaceOptions(cnn="always"))[:1]
    assert np.linalg.norm(c.descriptor - f.descriptor) < 0.2


def test_group_photo_gives_several_faces_largest_first() -> None:
    d, _ = _deepface_pairs()
    faces = find_faces(_photo(d / "selfie-many-people.jpg"))
    assert len(faces) >= 3
    assert [f.size for f in faces] == sorted((f.size for f in faces), reverse=True)


def test_faces_in_video_frames_with_frame_numbers(tmp_path: Path) -> None:
    from .test_video import make_video

    d, _ = _deepface_pairs()
    face = Image.fromarray(_photo(d / "img2.jpg", 320)).resize((320, 320))
    frames = [np.asarray(face)] * 8 + [np.asarray(photo_like(9, (320, 320)))] * 8
    data = make_video(size=(320, 320), fps=4, seconds=4, source=frames)
    faces, looked = media_faces(Media(data), FaceOptions(video_fps=1.0, cnn="off"))
    assert looked == 4
    assert [f.frame for f in faces] == [0, 4]
    assert [f.timestamp_s for f in faces] == pytest.approx([0.0, 1.0])
    (still,) = find_faces(np.asarray(face))
    assert np.linalg.norm(faces[0].descriptor - still.descriptor) < 0.3
