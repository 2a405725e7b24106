"""vPDQ against Meta's reference hashes of the ThreatExchange sample videos.

Meta's ``vpdq/sample-hashes/<video>.txt`` hash every frame at native size (the ``-128x128``
files are the downsampled variant, not used here). ``vpdq/cpp/regtest.py`` re-hashes the
videos and compares line by line with ``match-hashes-byline`` (distance tolerance 31, quality
tolerance 50); we assert that rule at ≥ 80% of frames, plus Meta's bag-of-frames match
(``match_videos``) in both directions.

Runtime: hashing all 2,592 frames takes ~40 s on a 2-core machine, so by default the three
long "chair" videos are hashed every ``STRIDE``-th frame (through our own sampler at
30/STRIDE fps) and the other four at every frame. ``RECLAIM_VPDQ_FULL=1`` hashes every frame
of all seven.
Run with ``-s`` to see the per-video tables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from reclaim.hashes.vpdq import (
    VpdqFrame,
    match_videos,
    parse_meta_lines,
    to_meta_lines,
    vpdq_frames,
)
from reclaim.media.limits import MediaLimits

from .conftest import shared_data

VIDEOS = [
    "chair-19-sd-bar",
    "chair-22-sd-grey-bar",
    "chair-orig-22-sd-bar",
    "doorknob-hd-no-bar",
    "pattern-hd-no-bar",
    "pattern-sd-grey-bar",
    "test-padded-dimensions",
]
FULL = os.environ.get("RECLAIM_VPDQ_FULL") == "1"
STRIDE = 6
# Meta's regtest / HMA settings.
DISTANCE = 31
QUALITY = 50
MATCH_PERCENT = 80.0


def _paths(name: str) -> tuple[Path, Path]:
    video = shared_data("threatexchange", "tmk", "sample-videos", f"{name}.mp4")
    hashes = shared_data("threatexchange", "vpdq", "sample-hashes", f"{name}.txt")
    return video, hashes


@dataclass
class FrameStats:
    name: str
    frames: int
    good: int  # frame pairs where both qualities ≥ QUALITY
    mean: float  # Hamming distance over all compared frames
    max: int
    mean_good: float
    max_good: int
    exact_good: float  # % of good pairs with distance 0
    le31: float  # % of all compared frames within DISTANCE
    le31_good: float  # regtest rule: % of good pairs within DISTANCE
    quality_diff: int
    low_quality_agree: bool  # the same frames fall below QUALITY on both sides
    ts_diff: float
    q_pct: float
    c_pct: float


def _frame_stats(name: str, ours: list[VpdqFrame], expected: list[VpdqFrame]) -> FrameStats:
    by_frame = {f.frame: f for f in expected}
    pairs = [(f, by_frame[f.frame]) for f in ours]
    d = [a.hash - b.hash for a, b in pairs]
    good = [a.hash - b.hash for a, b in pairs if a.quality >= QUALITY and b.quality >= QUALITY]
    subset = [b for _, b in pairs]
    m = match_videos(ours, subset, DISTANCE, QUALITY)
    return FrameStats(
        name=name,
        frames=len(pairs),
        good=len(good),
        mean=sum(d) / len(d),
        max=max(d),
        mean_good=sum(good) / len(good),
        max_good=max(good),
        exact_good=100.0 * sum(x == 0 for x in good) / len(good),
        le31=100.0 * sum(x <= DISTANCE for x in d) / len(d),
        le31_good=100.0 * sum(x <= DISTANCE for x in good) / len(good),
        quality_diff=max(abs(a.quality - b.quality) for a, b in pairs),
        low_quality_agree=all((a.quality < QUALITY) == (b.quality < QUALITY) for a, b in pairs),
        ts_diff=max(abs(a.timestamp - b.timestamp) for a, b in pairs),
        q_pct=m.query_match_percent,
        c_pct=m.compared_match_percent,
    )


def _table(rows: list[FrameStats]) -> str:
    head = (
        f"{'video':24} {'frames':>6} {'q>=50':>5} {'mean':>5} {'max':>4} {'mean50':>6} "
        f"{'max50':>5} {'exact50':>7} {'<=31':>6} {'<=31@50':>7} {'dQ':>3} {'match q/c %':>13}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r.name:24} {r.frames:6d} {r.good:5d} {r.mean:5.2f} {r.max:4d} {r.mean_good:6.2f} "
            f"{r.max_good:5d} {r.exact_good:6.1f}% {r.le31:5.1f}% {r.le31_good:6.1f}% "
            f"{r.quality_diff:3d} {r.q_pct:6.1f}/{r.c_pct:5.1f}"
        )
    return "\n".join(lines)


def test_vpdq_frames_match_meta_reference_hashes() -> None:
    """(a) Per-frame hashes against Meta's, same frame numbers (regtest's byline rule)."""
    rows = []
    for name in VIDEOS:
        video, hashes = _paths(name)
        expected = parse_meta_lines(hashes.read_text())
        assert [f.frame for f in expected] == list(range(len(expected)))
        if FULL or len(expected) < 300:
            ours = vpdq_frames(video, MediaLimits(), every_frame=True)
            assert len(ours) == len(expected), name  # same decoded frame count as Meta
        else:
            ours = vpdq_frames(video, MediaLimits(video_fps=30 / STRIDE))
            assert [f.frame for f in ours] == list(range(0, len(expected), STRIDE)), name
        rows.append(_frame_stats(name, ours, expected))
    table = _table(rows)
    print("\nvPDQ per-frame conformance (distance in bits of 256)\n" + table)
    for r in rows:
        assert r.ts_diff <= 0.0015, (r.name, r.ts_diff)  # pts-based vs Meta's frame/fps
        assert r.low_quality_agree and r.quality_diff <= 2, table
        assert r.le31_good >= MATCH_PERCENT, table  # Meta's regtest rule
        assert r.q_pct >= MATCH_PERCENT and r.c_pct >= MATCH_PERCENT, table
        # Tighter than Meta's rule, to catch drift in colour conversion or decoding: measured
        # 0.00-0.11 bits on six videos and 2.3 on test-padded-dimensions (see module docs).
        assert r.mean_good <= 3.0, table


def test_vpdq_one_frame_per_second_against_meta_reference() -> None:
    """(b) Our default 1 frame/s hash against Meta's every-frame hash of the same video."""
    lines = [
        f"{'video':24} {'n/s':>4} {'all':>4} {'query %':>8} {'compared %':>10} "
        f"{'vs 1/s subset q/c %':>20}"
    ]
    results = []
    for name in VIDEOS:
        video, hashes = _paths(name)
        expected = parse_meta_lines(hashes.read_text())
        ours = vpdq_frames(video, MediaLimits())
        # These are 30 fps CFR videos: our time-based sampler picks the frames Meta's hasher
        # picks with -r 1 (frame number % int(1 s x 30 fps) == 0).
        assert [f.frame for f in ours] == list(range(0, len(expected), 30)), name
        full = match_videos(ours, expected, DISTANCE, QUALITY)
        by_frame = {f.frame: f for f in expected}
        sub = match_videos(ours, [by_frame[f.frame] for f in ours], DISTANCE, QUALITY)
        results.append((name, full, sub))
        lines.append(
            f"{name:24} {len(ours):4d} {len(expected):4d} {full.query_match_percent:7.1f}% "
            f"{full.compared_match_percent:9.1f}% "
            f"{sub.query_match_percent:9.1f}/{sub.compared_match_percent:.1f}"
        )
    table = "\n".join(lines)
    print("\nvPDQ 1 frame/s vs Meta's every-frame hashes\n" + table)
    for _name, full, sub in results:
        # Every 1/s frame is found among Meta's frames ...
        assert full.query_match_percent >= MATCH_PERCENT, table
        # ... and against Meta's hashes of the same frames (what Meta's hasher gives at -r 1)
        # the rule holds both ways.
        assert sub.is_match(MATCH_PERCENT), table
        # The compared direction over *all* of Meta's frames cannot reach 80% for moving
        # video: 1 frame in 30 is kept, and frames more than ~0.2-0.5 s from a kept one
        # drift past 31 bits. Measured 10-28% (74.8% for the nearly static padded video).
        assert full.compared_match_percent < 100.0


def test_meta_text_format_round_trips_every_sample_file() -> None:
    """``to_meta_lines`` writes Meta's hash files byte for byte (all 31, incl. 128x128 ones)."""
    folder = shared_data("threatexchange", "vpdq", "sample-hashes")
    files = sorted(folder.glob("*.txt"))
    assert len(files) >= 31
    for f in files:
        text = f.read_text()
        assert to_meta_lines(parse_meta_lines(text)) == text, f.name
