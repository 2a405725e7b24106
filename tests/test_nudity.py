"""Nudity triage with NudeNet: offline loading, non-explicit fixtures only.

No explicit image is in the repository or made by the tests: the detector is checked on
synthetic images (no region), on real face photos from the shared data (NudeNet's FACE_*
classes, not sensitive), and the triage logic on regions built by hand.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from reclaim.detectors import nudity as N

from .conftest import photo_like, shared_data

pytest.importorskip("nudenet")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def det() -> N.NudityDetector:
    return N.NudityDetector()


def test_model_ships_in_the_package_and_loads_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    path = N.model_path()
    assert path.name == "320n.onnx" and path.parent.name == "nudenet"
    assert path.stat().st_size > 1_000_000
    assert any(str(path).startswith(p) for p in sys.path if p and "-packages" in p)

    def refuse(*a: Any, **k: Any) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    d = N.NudityDetector()  # a fresh session: loads the model from disk
    r = d.detect(photo_like(1))
    assert r.width == 640 and r.height == 480


def test_synthetic_image_has_no_region(det: N.NudityDetector) -> None:
    r = det.detect(photo_like(2, (800, 600)))
    assert r.score == 0.0 and not r.explicit and r.blur_boxes == []
    assert not [x for x in r.regions if x.sensitive]
    flat = det.detect(np.full((300, 300, 3), 128, np.uint8))
    assert flat.regions == ()


def _face_photo() -> Image.Image:
    return Image.open(shared_data("faces", "deepface-pairs", "img1.jpg")).convert("RGB")


def test_face_photo_gives_a_face_region_inside_the_image(det: N.NudityDetector) -> None:
    im = _face_photo()
    r = det.detect(im)
    faces = [x for x in r.regions if x.label.startswith("FACE_")]
    assert faces and faces[0].score > 0.5
    x, y, w, h = faces[0].box
    assert 0 <= x < x + w <= im.width and 0 <= y < y + h <= im.height
    assert w > im.width / 10  # the face in img1.jpg is large
    assert not faces[0].sensitive and not faces[0].exposed
    assert r.score == 0.0  # a portrait is not sensitive


def test_boxes_are_in_full_image_pixels(det: N.NudityDetector) -> None:
    im = _face_photo()
    small = im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS)
    big = im.resize((im.width * 2, im.height * 2), Image.Resampling.LANCZOS)  # > MAX_SIDE
    fs = [
        next(x for x in det.detect(i).regions if x.label.startswith("FACE_")) for i in (small, big)
    ]
    # Same face: the big image's box is 4× the small one's (within a few percent).
    for a, b in zip(fs[0].box, fs[1].box, strict=True):
        assert abs(4 * a - b) <= 0.05 * max(big.size)


def test_triage_logic_on_hand_made_regions() -> None:
    regions = (
        N.Region("FEMALE_BREAST_EXPOSED", 0.3, (1, 2, 3, 4)),
        N.Region("FACE_FEMALE", 0.9, (5, 6, 7, 8)),
        N.Region("FEET_EXPOSED", 0.8, (0, 0, 1, 1)),
        N.Region("BUTTOCKS_COVERED", 0.7, (0, 0, 2, 2)),
    )
    r = N.NudityResult(0.3, regions, 10, 10)
    assert not r.explicit and r.blur_boxes == [(1, 2, 3, 4)]
    d = r.as_dict()
    assert d["exposed"] == ["FEMALE_BREAST_EXPOSED"]
    assert [x["sensitive"] for x in d["regions"]] == [True, False, False, False]
    assert [x["exposed"] for x in d["regions"]] == [True, False, True, False]
    assert N.NudityResult(0.5, regions, 10, 10).explicit
    v = N.combine([(0.0, N.NudityResult(0.0, (), 10, 10)), (2.0, r)])
    assert v["frame_time_s"] == 2.0 and v["score"] == 0.3
    assert [f["t"] for f in v["frames"]] == [0.0, 2.0]
    assert N.combine([])["score"] == 0.0


def test_rejects_non_rgb(det: N.NudityDetector) -> None:
    with pytest.raises(ValueError):
        det.detect(np.zeros((10, 10), np.uint8))


def test_model_path_error_when_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match="pip install nudenet"):
        N.model_path()
