"""Pixel-signal plumbing: per-clip aggregation of video frames, fusion features and fit, splits."""

from __future__ import annotations

import numpy as np
import pytest

from reclaim.forensics import aggregate_frames
from reclaim.signals.forensic import ForensicSignal, split_of
from reclaim.signals.fusion import FEATURES, FusionModel, feature_vector, fit_logistic


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


def test_feature_vector_takes_the_strongest_face_and_marks_faces() -> None:
    sigs = [
        sig("face_consistency", 0.2, raw=-1.0),
        sig("face_consistency", 0.6, raw=2.5),
        sig("face_blend", 0.3, raw=0.7),
        sig("synthetic_image", 0.1, raw=-3.0, kind="generated"),
    ]
    assert list(feature_vector(sigs)) == [2.5, 0.7, -3.0, 1.0]
    as_dicts = [s.as_dict() for s in sigs]
    assert list(feature_vector(as_dicts)) == [2.5, 0.7, -3.0, 1.0]
    no_face = feature_vector([sig("synthetic_image", 0.9, raw=4.0, kind="generated")])
    assert list(no_face) == [0.0, 0.0, 4.0, 0.0]


def test_weighted_logistic_fit_separates_and_round_trips() -> None:
    rng = np.random.default_rng(1)
    n = 400
    y = (rng.random(n) < 0.3).astype(np.float64)
    x = rng.normal(size=(n, 4))
    x[:, 1] += 2.0 * y  # only the second feature carries the label
    coef, intercept = fit_logistic(x, y, np.ones(n))
    assert coef[1] > 1.0 and np.all(np.abs(coef[[0, 2, 3]]) < 0.5)
    m = FusionModel(tuple(coef), intercept, (0.0,) * 4, (1.0,) * 4, 0.5, {})
    p = np.array([m.score(v) for v in x])
    assert p[y == 1].mean() > p[y == 0].mean() + 0.3
    again = FusionModel.from_dict(m.as_dict())
    assert again == m
    bad = m.as_dict() | {"features": ["a", "b", "c", "d"]}
    with pytest.raises(ValueError, match="other features"):
        FusionModel.from_dict(bad)
    assert len(FEATURES) == 4


def test_split_is_by_base_name_and_roughly_60_20_20() -> None:
    names = [f"img_{i}.jpg" for i in range(5000)]
    got = [split_of(n) for n in names]
    share = {s: got.count(s) / len(got) for s in ("train", "calib", "test")}
    assert abs(share["train"] - 0.6) < 0.03 and abs(share["test"] - 0.2) < 0.03
    assert split_of("img_7.jpg") == split_of("img_7.jpg")
