"""Pixel-signal plumbing: per-clip aggregation of video frames, fusion features and fit, splits."""

from __future__ import annotations

import numpy as np
import pytest

from reclaim.detectors.base import ForensicSignal, split_of
from reclaim.detectors.check import aggregate_frames
from reclaim.detectors.fusion import FEATURES, FusionModel, fit_logistic, signal_raws


def sig(name: str, score: float, raw: float | None = None, kind: str = "edited") -> ForensicSignal:
    return ForensicSignal(
        name=name,
        score=score,
        kind=kind,  # type: ignore[arg-type]
        evidence={"en": f"{name} {score}", "fr": f"{name} {score} (fr)"},
        raw=score if raw is None else raw,
    )


def test_clip_score_is_the_mean_of_its_strongest_frames_which_are_cited() -> None:
    scores = [0.1, 0.2, 0.9, 0.8, 0.1, 0.7]
    frames = [(float(t), [sig("face_blend", s)]) for t, s in enumerate(scores)]
    frames.append((6.0, [sig("synthetic_image", 0.05, kind="generated")]))
    out = {s.name: s for s in aggregate_frames(frames, top=3)}
    blend = out["face_blend"]
    assert blend.score == pytest.approx((0.9 + 0.8 + 0.7) / 3)
    assert blend.details["strongest_frames_s"] == [2.0, 3.0, 5.0]
    assert blend.details["frames_checked"] == 6
    assert "0:02.0" in blend.evidence["en"] and "0:02.0" in blend.evidence["fr"]
    assert "face_blend 0.9" in blend.evidence["en"]  # the strongest frame's own sentence
    assert out["synthetic_image"].kind == "generated"
    assert out["synthetic_image"].score == pytest.approx(0.05)


def test_one_glitchy_frame_does_not_make_a_clip() -> None:
    frames = [(float(t), [sig("face_blend", 0.99 if t == 4 else 0.05)]) for t in range(10)]
    (blend,) = aggregate_frames(frames, top=3)
    assert blend.score < 0.4


def test_signal_raws_take_the_strongest_face_and_skip_what_did_not_run() -> None:
    sigs = [
        sig("face_consistency", 0.2, raw=-1.0),
        sig("face_consistency", 0.6, raw=2.5),
        sig("face_blend", 0.3, raw=0.7),
        sig("synthetic_image", 0.1, raw=-3.0, kind="generated"),
        sig("nudity", 0.9, raw=5.0),  # not a fused signal
    ]
    want = {"face_consistency": 2.5, "face_blend": 0.7, "synthetic_image": -3.0}
    assert signal_raws(sigs) == want
    assert signal_raws([s.as_dict() for s in sigs]) == want
    assert signal_raws([sig("synthetic_image", 0.9, raw=4.0)]) == {"synthetic_image": 4.0}


def test_the_strongest_calibrated_signal_decides_and_round_trips() -> None:
    m = FusionModel(
        calibration={"synthetic_image": (2.0, -1.0), "face_blend": (0.5, 0.0)},
        threshold=0.8,
        info={},
    )
    # synthetic: 2*1.5-1 = 2.0; blend: 0.5*3 = 1.5 -> synthetic decides, sigmoid(2.0)
    score, name = m.decide({"synthetic_image": 1.5, "face_blend": 3.0}) or (0.0, "")
    assert name == "synthetic_image" and score == pytest.approx(1 / (1 + np.exp(-2.0)))
    # a silent signal does not dilute a strong one (the reason for the maximum)
    alone = m.score({"synthetic_image": 1.5})
    assert m.score({"synthetic_image": 1.5, "face_blend": -10.0}) == pytest.approx(alone)
    # signals the model does not know, or none at all, give no decision
    assert m.decide({"clip_generated": 3.0}) is None
    assert m.score({}) == 0.0
    again = FusionModel.from_dict(m.as_dict())
    assert again == m
    with pytest.raises(ValueError, match="another rule"):
        FusionModel.from_dict(m.as_dict() | {"rule": "logistic sum"})
    bad = m.as_dict()
    bad["calibration"] = {"made_up": [1.0, 0.0]}
    with pytest.raises(ValueError, match="unknown signals"):
        FusionModel.from_dict(bad)
    assert "clip_generated" in FEATURES


def test_weighted_logistic_fit_finds_the_informative_feature() -> None:
    rng = np.random.default_rng(1)
    n = 400
    y = (rng.random(n) < 0.3).astype(np.float64)
    x = rng.normal(size=(n, 4))
    x[:, 1] += 2.0 * y  # only the second feature carries the label
    coef, intercept = fit_logistic(x, y, np.ones(n))
    assert coef[1] > 1.0 and np.all(np.abs(coef[[0, 2, 3]]) < 0.5)
    p = 1 / (1 + np.exp(-(x @ coef + intercept)))
    assert p[y == 1].mean() > p[y == 0].mean() + 0.3


def test_split_is_by_base_name_and_roughly_60_20_20() -> None:
    names = [f"img_{i}.jpg" for i in range(5000)]
    got = [split_of(n) for n in names]
    share = {s: got.count(s) / len(got) for s in ("train", "calib", "test")}
    assert abs(share["train"] - 0.6) < 0.03 and abs(share["test"] - 0.2) < 0.03
    assert split_of("img_7.jpg") == split_of("img_7.jpg")
