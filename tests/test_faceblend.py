"""The learned face-blend detector (reclaim.detectors.faceblend, model in reclaim/models).

Core tests build a synthetic face-like image with a 68-point landmark template and a
feathered self-blend of it (a colour-shifted, blurred copy of the face pasted over itself);
they check the model file, the crop, the output structure, determinism and the no-face case.
Tests with the shared data (skipped when absent) check that the model separates real faces of
the real-color test split from self-blended versions of them.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from reclaim.detectors import faceblend
from reclaim.detectors.base import ForensicSignal, split_of
from reclaim.faces.landmarks import FaceRegion

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def template_points(cx: float, cy: float, w: float) -> np.ndarray:
    """68 dlib-ordered points of a frontal face of width ``w`` centred at (cx, cy)."""
    h = 1.2 * w
    pts: list[tuple[float, float]] = []
    for i in range(17):  # jaw: ear to chin to ear
        a = np.pi * i / 16
        pts.append((cx - 0.5 * w * np.cos(a), cy - 0.05 * h + 0.55 * h * np.sin(a)))
    for side in (-1, 1):  # brows
        for i in range(5):
            x = cx + side * (0.1 + 0.075 * (i if side > 0 else 4 - i)) * w
            pts.append((x, cy - 0.3 * h - 0.03 * h * np.sin(np.pi * i / 4)))
    pts[17:22] = sorted(pts[17:22])
    pts[22:27] = sorted(pts[22:27])
    for i in range(4):  # nose bridge
        pts.append((cx, cy - 0.2 * h + 0.08 * h * i))
    for i in range(5):  # nostrils
        pts.append((cx + (i - 2) * 0.05 * w, cy + 0.13 * h))
    for ex in (cx - 0.2 * w, cx + 0.2 * w):  # eyes
        for i in range(6):
            a = np.pi + 2 * np.pi * i / 6
            pts.append((ex + 0.09 * w * np.cos(a), cy - 0.15 * h + 0.03 * h * np.sin(a)))
    my = cy + 0.3 * h
    for i in range(12):  # outer lip
        a = np.pi + 2 * np.pi * i / 12
        pts.append((cx + 0.2 * w * np.cos(a), my + 0.07 * h * np.sin(a)))
    for i in range(8):  # inner lip
        a = np.pi + 2 * np.pi * i / 8
        pts.append((cx + 0.12 * w * np.cos(a), my + 0.02 * h * np.sin(a)))
    out = np.array(pts, dtype=np.float32)
    assert out.shape == (68, 2)
    return out


def face_image(seed: int = 0, size: int = 256) -> tuple[np.ndarray, FaceRegion]:
    """A face-like RGB image (textured background, skin, eyes, brows, mouth) and its region."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    bg = np.stack([60 + 80 * xx / size, 90 + 40 * yy / size, 140 - 50 * xx / size], -1)
    img = bg + rng.normal(0, 6, (size, size, 3))
    pts = template_points(size / 2, size / 2, size * 0.5)
    cv2.ellipse(img, (size // 2, size // 2), (int(size * 0.27), int(size * 0.36)), 0, 0, 360,
                (205, 160, 130), -1)  # fmt: skip
    for ey in (36, 42):
        c = pts[ey : ey + 6].mean(0)
        cv2.ellipse(img, (int(c[0]), int(c[1])), (int(size * 0.045), int(size * 0.018)), 0, 0,
                    360, (40, 30, 30), -1)  # fmt: skip
    for b in (17, 22):
        cv2.polylines(img, [np.round(pts[b : b + 5]).astype(np.int32)], False, (70, 50, 40), 3)
    cv2.fillPoly(img, [np.round(pts[48:60]).astype(np.int32)], (170, 60, 70))
    img = cv2.GaussianBlur(img, (0, 0), 1.0) + rng.normal(0, 4, (size, size, 3))
    rgb = np.clip(img, 0, 255).astype(np.uint8)
    box = (int(pts[:, 0].min()), int(pts[:, 1].min()), int(pts[:, 0].max()), int(pts[:, 1].max()))
    return rgb, FaceRegion(box, "template", pts)


def self_blended(rgb: np.ndarray, region: FaceRegion) -> np.ndarray:
    """The face hull blended back from a colour-shifted, blurred copy, feathered edges."""
    h, w = rgb.shape[:2]
    mask = region.mask(h, w).astype(np.float32)
    mask = cv2.GaussianBlur(mask, (0, 0), 3.0)[..., None]
    src = cv2.GaussianBlur(rgb, (0, 0), 1.5).astype(np.float32) * 1.08 + np.array([12, -4, -10])
    out = src * mask + rgb.astype(np.float32) * (1 - mask)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


# -- the model file --------------------------------------------------------------------------


def test_model_file_small_and_loads_with_metadata() -> None:
    assert faceblend.MODEL_PATH.is_file()
    assert faceblend.MODEL_PATH.stat().st_size <= 20 * 1024 * 1024
    m = faceblend._model()
    names = [i.name for i in m.session.get_inputs()]
    assert names == ["image"]
    cal = m.meta["calibration"]
    assert np.isfinite(cal["a"]) and cal["a"] > 0  # higher logit = more likely blended
    assert np.isfinite(m.meta["threshold"]["raw"])
    for key in ("sbi_test", "real_test", "yonsei_fake_test"):
        vals = m.rates[key]
        assert vals.size > 50 and bool(np.all(np.diff(vals) >= 0))


def test_missing_or_corrupt_model_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(faceblend.FaceBlendModelMissing):
        faceblend._load(tmp_path / "absent.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(faceblend.FaceBlendModelMissing):
        faceblend._load(bad)


def test_predict_shapes_and_ranges() -> None:
    x = np.random.default_rng(1).random((3, faceblend.CHANNELS, 128, 128), dtype=np.float32)
    logits, maps = faceblend.predict(x)
    assert logits.shape == (3,) and np.isfinite(logits).all()
    assert maps.shape == (3, faceblend.MAP_SIZE, faceblend.MAP_SIZE)
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    # batch composition does not change a face's output
    one, _ = faceblend.predict(x[1:2])
    assert one[0] == pytest.approx(logits[1], abs=1e-4)
    empty, emaps = faceblend.predict(np.zeros((0, faceblend.CHANNELS, 128, 128), np.float32))
    assert empty.shape == (0,) and emaps.shape == (0, 32, 32)


# -- the crop --------------------------------------------------------------------------------


def test_crop_params_cover_landmarks_with_margin() -> None:
    pts = template_points(100, 120, 80)
    cx, cy, side = faceblend.crop_params(pts)
    extent = max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]))
    assert side == pytest.approx(faceblend.CROP_SCALE * extent, rel=1e-5)
    assert cx - side / 2 < pts[:, 0].min() and cx + side / 2 > pts[:, 0].max()
    assert cy - side / 2 < pts[:, 1].min() and cy + side / 2 > pts[:, 1].max()
    assert cy < (pts[:, 1].min() + pts[:, 1].max()) / 2  # shifted up toward the forehead


def test_crop_face_inside_and_outside_the_image() -> None:
    img = np.arange(200 * 300 * 3, dtype=np.uint32).reshape(200, 300, 3).astype(np.uint8)
    # a square of exactly the output size, fully inside: the crop is the plain slice
    c = faceblend.crop_face(img, (150.0, 100.0, 64.0), size=64)
    assert np.array_equal(c, img[68:132, 118:182])
    # half outside the top-left corner: the outside is black
    c = faceblend.crop_face(img, (0.0, 0.0, 64.0), size=64)
    assert c.shape == (64, 64, 3)
    assert not c[:32, :].any() and not c[:, :32].any()
    assert np.array_equal(c[32:, 32:], img[:32, :32])
    # float masks (used for the boundary targets) go through too
    m = faceblend.crop_face(np.ones((50, 50), np.float32), (25.0, 25.0, 100.0), size=32)
    assert m.shape == (32, 32) and m.max() == pytest.approx(1.0)


def test_hull_channel_marks_the_landmark_hull() -> None:
    square = np.array([[40, 40], [80, 40], [80, 80], [40, 80]], np.float32)
    params = (60.0, 60.0, 128.0)  # crop = [-4, 124) in both axes, 1:1 scale
    h = faceblend.hull_channel(square, params, size=128)
    assert h.dtype == np.uint8 and h.shape == (128, 128)
    assert h[64, 64] == 255 and h[46, 46] == 255  # inside (photo 60,60 and 42,42)
    assert h[10, 10] == 0 and h[64, 100] == 0  # outside
    inside = (h > 127).sum()
    assert abs(inside - 40 * 40) < 0.1 * 40 * 40
    x = faceblend.face_inputs(
        np.zeros((160, 160, 3), np.uint8), [FaceRegion((40, 40, 80, 80), "t", square)]
    )
    assert x.shape == (1, faceblend.CHANNELS, 128, 128) and x.dtype == np.float32
    assert x[0, :3].max() == 0.0 and x[0, 3].max() == 1.0  # RGB from the photo, hull in [0, 1]


# -- the signal ------------------------------------------------------------------------------


def _check_signal(sig: ForensicSignal, region: FaceRegion) -> None:
    assert sig.name == "face_blend" and sig.kind == "edited"
    assert 0.0 <= sig.score <= 1.0 and np.isfinite(sig.raw)
    assert sig.score == pytest.approx(faceblend.calibrated(sig.raw))
    for lang in ("en", "fr"):
        assert sig.evidence[lang] and "%" in sig.evidence[lang]
    assert "self-blended" in sig.evidence["en"] and "auto-fusionnés" in sig.evidence["fr"]
    assert sig.details["box"] == list(region.box)
    assert sig.details["strength"] in ("weak", "moderate", "strong")
    for k in ("blended_test_share", "real_test_share", "splice_test_share"):
        assert 0.0 <= sig.details[k] <= 1.0
    sig.as_dict()  # JSON-able


def test_face_blend_on_original_and_blended_face() -> None:
    rgb, region = face_image()
    blended = self_blended(rgb, region)
    assert np.abs(blended.astype(int) - rgb).max() > 10  # the fixture did change the face
    for img in (rgb, blended):
        sigs = faceblend.face_blend(img, [region])
        assert len(sigs) == 1
        _check_signal(sigs[0], region)
        assert not sigs[0].maps


def test_blend_scores_above_its_original_on_the_fixture() -> None:
    """The fixture's blend (a softer, colour-shifted face pasted over itself) is the kind of
    trace the model learned: it must score above the untouched image, for every seed."""
    for seed in range(4):
        rgb, region = face_image(seed=seed)
        orig = faceblend.face_blend(rgb, [region])[0]
        blend = faceblend.face_blend(self_blended(rgb, region), [region])[0]
        assert blend.raw > orig.raw and blend.score > orig.score


def test_one_signal_per_face_and_maps() -> None:
    rgb, region = face_image(size=256)
    canvas = np.zeros((256, 600, 3), np.uint8)
    canvas[:, :256] = rgb
    canvas[:, 300:556] = self_blended(rgb, region)
    moved = FaceRegion(
        (region.box[0] + 300, region.box[1], region.box[2] + 300, region.box[3]),
        "template",
        region.points + np.array([300, 0], np.float32),
    )
    sigs = faceblend.face_blend(canvas, [region, moved], maps=True)
    assert len(sigs) == 2
    for s in sigs:
        blend = s.maps["blend"]
        assert blend.dtype == np.uint8 and blend.shape == canvas.shape
    # each face's own prediction equals the one made for it alone
    alone = faceblend.face_blend(canvas, [moved])[0]
    assert alone.raw == pytest.approx(sigs[1].raw, abs=1e-4)


def test_deterministic() -> None:
    rgb, region = face_image(seed=3)
    a = faceblend.face_blend(rgb, [region], maps=True)[0]
    b = faceblend.face_blend(rgb.copy(), [region], maps=True)[0]
    assert a.raw == b.raw and a.score == b.score and a.evidence == b.evidence
    assert np.array_equal(a.maps["blend"], b.maps["blend"])


def test_no_face_gives_nothing() -> None:
    from reclaim.faces.landmarks import face_regions

    flat = np.full((240, 320, 3), 128, np.uint8)
    regions = face_regions(flat)
    assert regions == []
    assert faceblend.face_blend(flat, regions) == []


def test_grey_and_rgba_inputs() -> None:
    rgb, region = face_image(seed=5)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    g = faceblend.face_blend(grey, [region])[0]
    g3 = faceblend.face_blend(np.repeat(grey[..., None], 3, 2), [region])[0]
    assert g.raw == g3.raw
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], 2)
    assert faceblend.face_blend(rgba, [region])[0].raw == faceblend.face_blend(rgb, [region])[0].raw
    with pytest.raises(TypeError):
        faceblend.face_blend(np.zeros((4, 4, 2), np.uint8), [region])


def test_large_image_is_quick() -> None:
    """A 20-megapixel photo: one face, map included, well within a second or two."""
    rgb = np.zeros((4000, 5000, 3), np.uint8)
    face, region = face_image(size=512)
    rgb[1000:1512, 2000:2512] = face
    big = FaceRegion(
        (region.box[0] + 2000, region.box[1] + 1000, region.box[2] + 2000, region.box[3] + 1000),
        "template",
        region.points + np.array([2000, 1000], np.float32),
    )
    faceblend._model()
    t = time.perf_counter()
    sig = faceblend.face_blend(rgb, [big], maps=True)[0]
    assert time.perf_counter() - t < 5.0
    assert max(sig.maps["blend"].shape[:2]) <= 1536
    small = faceblend.face_blend(face, [region])[0]
    assert sig.raw == pytest.approx(small.raw, abs=1e-3)  # the same face, the same crop


# -- with the shared data ---------------------------------------------------------------------


def _real_color_test(n: int) -> list[Path]:
    folder = DATA / "faces" / "real-color"
    if not folder.is_dir():
        pytest.skip(f"shared data not found at {folder}")
    names = sorted(p for p in folder.iterdir() if split_of(p.name) == "test")
    return names[:: max(1, len(names) // n)][:n]


def test_real_faces_vs_their_blends_on_shared_data() -> None:
    """Real faces of the real-color test split (never trained on) against a feathered
    self-blend of each made by this test's own recipe: blends must score higher on average
    and in most pairs."""
    from reclaim.faces.landmarks import face_regions

    paths = _real_color_test(24)
    raws: list[tuple[float, float]] = []
    for p in paths:
        with Image.open(p) as im:
            rgb = np.asarray(im.convert("RGB"))
        regions = face_regions(rgb)
        if not regions:
            continue
        orig = faceblend.face_blend(rgb, regions[:1])[0].raw
        blend = faceblend.face_blend(self_blended(rgb, regions[0]), regions[:1])[0].raw
        raws.append((orig, blend))
    assert len(raws) >= 15
    a = np.array(raws)
    assert a[:, 1].mean() > a[:, 0].mean()
    assert (a[:, 1] > a[:, 0]).mean() >= 0.7
