"""vPDQ (Meta's video PDQ): one PDQ hash per sampled frame, matched as a bag of frame hashes.

Hashing follows Meta's reference hasher (ThreatExchange ``vpdq/cpp``): frames decoded with
FFmpeg, converted to RGB24 at their native size (no thumbnail, no rotation), PDQ's float luma
and Jarosz filters on the whole frame. See ``reclaim.media.video`` for the colour conversion
that reproduces Meta's sample hashes. reclaim samples one frame per second by default (Meta's
recommended setting); ``every_frame=True`` hashes every frame as Meta's regression files do.

Matching follows ThreatExchange's ``vpdq_brute_matcher``: drop frames below the quality
tolerance, dedupe identical hashes, count query frames with any compared frame within the
distance (≤), and the other way round; percentages are over the filtered unique frames.

The signal's text value is JSON: ``[{"frame": n, "quality": q, "hash": hex, "timestamp": t}]``.
Meta's plain-text form (``frame,quality,hash,timestamp`` lines) is ``to_meta_lines``; the form
``reclaim protect`` shares is a compact list ``["hash,quality,timestamp", …]``. ``parse_vpdq``
(and so ``VPDQSignal.validate``) reads all three.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from reclaim.errors import DecodeError
from reclaim.hashes.base import Comparison, Index, SignalType, SignalValue
from reclaim.hashes.pdq import (
    PDQ_MATCH_DISTANCE,
    PDQ_MIN_QUALITY,
    PdqHash,
    pdq_from_rgb,
)
from reclaim.media import Media, MediaKind
from reclaim.media.limits import MediaLimits
from reclaim.media.video import VideoFrame, iter_video_frames

__all__ = [
    "VPDQ_MATCH_PERCENT",
    "VPDQSignal",
    "VpdqFrame",
    "VpdqMatch",
    "frames_from_json",
    "frames_to_json",
    "match_videos",
    "parse_meta_lines",
    "parse_vpdq",
    "to_compact",
    "to_meta_lines",
    "vpdq_frames",
    "vpdq_from_frames",
]

#: Both directions must reach this share of frames for a match (Meta's regression test: 80%).
VPDQ_MATCH_PERCENT = 80.0
#: PDQ needs frames of at least this size (Meta's MIN_HASHABLE_DIM); smaller ones are skipped.
MIN_HASHABLE_DIM = 5


@dataclass(frozen=True)
class VpdqFrame:
    """One hashed frame: number in the decoded stream, PDQ quality, hash, timestamp (s)."""

    frame: int
    quality: int
    hash: PdqHash
    timestamp: float

    def as_record(self) -> dict[str, Any]:
        return {
            "frame": self.frame,
            "quality": self.quality,
            "hash": str(self.hash),
            "timestamp": round(self.timestamp, 3),
        }


@dataclass(frozen=True)
class VpdqMatch:
    """Share (0–100) of the query's and of the compared video's filtered frames that matched."""

    query_match_percent: float
    compared_match_percent: float

    def is_match(self, threshold: float = VPDQ_MATCH_PERCENT) -> bool:
        return self.query_match_percent >= threshold and self.compared_match_percent >= threshold


def _hash_rgb(frame_number: int, timestamp: float, rgb: np.ndarray) -> VpdqFrame | None:
    if rgb.shape[0] < MIN_HASHABLE_DIM or rgb.shape[1] < MIN_HASHABLE_DIM:
        return None
    h, q = pdq_from_rgb(rgb)
    return VpdqFrame(frame_number, q, h, timestamp)


def vpdq_from_frames(frames: Iterable[VideoFrame]) -> list[VpdqFrame]:
    """PDQ-hash decoded frames (frames under 5 px on a side are skipped, as Meta's hasher does)."""
    out: list[VpdqFrame] = []
    for f in frames:
        rec = _hash_rgb(f.frame_number, f.timestamp_s, f.rgb)
        if rec is not None:
            out.append(rec)
    return out


def vpdq_frames(
    data: bytes | Path,
    limits: MediaLimits | None = None,
    every_frame: bool = False,
    *,
    partial_ok: bool = False,
) -> list[VpdqFrame]:
    """vPDQ frame hashes of a video (bytes or path), sampled per ``limits.video_fps``.

    ``partial_ok``: on a corrupt or truncated video return the frames hashed before the damage
    (if any) instead of raising DecodeError.
    """
    out: list[VpdqFrame] = []
    try:
        for f in iter_video_frames(data, limits, every_frame=every_frame, rotate=False):
            rec = _hash_rgb(f.frame_number, f.timestamp_s, f.rgb)
            if rec is not None:
                out.append(rec)
    except DecodeError:
        if not (partial_ok and out):
            raise
    return out


# --- text forms ----------------------------------------------------------------------------


def to_meta_lines(frames: Iterable[VpdqFrame]) -> str:
    """Meta's hash-file text: one ``frame,quality,hash,timestamp`` line per frame."""
    return "".join(f"{f.frame},{f.quality},{f.hash},{f.timestamp:.3f}\n" for f in frames)


def parse_meta_lines(text: str) -> list[VpdqFrame]:
    """Parse Meta's hash-file text (inverse of ``to_meta_lines``). Raises ValueError."""
    out: list[VpdqFrame] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4:
            raise ValueError(
                f"vPDQ line {n}: expected frame,quality,hash,timestamp, got {line[:80]!r}"
            )
        try:
            rec = VpdqFrame(
                int(parts[0]), int(parts[1]), PdqHash.from_hex(parts[2]), float(parts[3])
            )
        except ValueError as e:
            raise ValueError(f"vPDQ line {n}: {e}") from e
        out.append(_checked(rec, f"line {n}"))
    return out


def _checked(rec: VpdqFrame, where: str) -> VpdqFrame:
    if rec.frame < 0:
        raise ValueError(f"vPDQ {where}: negative frame number {rec.frame}")
    if not 0 <= rec.quality <= 100:
        raise ValueError(f"vPDQ {where}: quality {rec.quality} outside 0..100")
    if not rec.timestamp >= 0:  # also rejects NaN
        raise ValueError(f"vPDQ {where}: invalid timestamp {rec.timestamp}")
    return rec


def frames_to_json(frames: Iterable[VpdqFrame]) -> str:
    """The signal's canonical text: compact JSON list of frame records."""
    return json.dumps([f.as_record() for f in frames], separators=(",", ":"))


def _load(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"vPDQ value is not JSON: {e.msg} at position {e.pos}") from e
    except RecursionError as e:  # hostile nesting: a reason, never a crash
        raise ValueError("vPDQ value is nested too deeply") from e


def frames_from_json(text: str) -> list[VpdqFrame]:
    """Parse the signal's JSON text. Raises ValueError with a reason."""
    return _frames_from_records(_load(text))


def _frames_from_records(data: Any) -> list[VpdqFrame]:
    if not isinstance(data, list):
        raise ValueError("vPDQ value must be a JSON list of frame records")
    out: list[VpdqFrame] = []
    for i, r in enumerate(data):
        if not isinstance(r, dict):
            raise ValueError(f"vPDQ record {i} is not an object")
        try:
            frame, quality, hx, ts = r["frame"], r["quality"], r["hash"], r["timestamp"]
        except KeyError as e:
            raise ValueError(f"vPDQ record {i} lacks {e.args[0]!r}") from e
        if not (isinstance(frame, int) and isinstance(quality, int) and isinstance(hx, str)):
            raise ValueError(f"vPDQ record {i}: frame/quality must be integers, hash a string")
        if isinstance(ts, bool) or not isinstance(ts, int | float):
            raise ValueError(f"vPDQ record {i}: timestamp must be a number")
        try:
            h = PdqHash.from_hex(hx)
        except ValueError as e:
            raise ValueError(f"vPDQ record {i}: {e}") from e
        out.append(_checked(VpdqFrame(frame, quality, h, float(ts)), f"record {i}"))
    return out


def parse_vpdq(text: str) -> list[VpdqFrame]:
    """vPDQ in any form reclaim reads or writes: its JSON records, Meta's hash-file lines, or
    the compact ``["hash,quality,timestamp", …]`` list of ``reclaim protect``. Raises
    ValueError with a reason."""
    t = text.strip()
    if not t:
        raise ValueError("vPDQ value is empty")
    if not t.startswith("["):
        return parse_meta_lines(t)
    data = _load(t)
    if isinstance(data, list) and data and all(isinstance(x, str) for x in data):
        frames = []
        for i, s in enumerate(data):
            parts = [p.strip() for p in s.split(",")]
            if len(parts) != 3:
                raise ValueError(f"vPDQ frame {i}: expected 'hash,quality,timestamp'")
            frames.append(VpdqFrame(i, int(parts[1]), PdqHash.from_hex(parts[0]), float(parts[2])))
        return frames
    return _frames_from_records(data)


def to_compact(frames: Iterable[VpdqFrame]) -> str:
    """The compact form ``reclaim protect`` shares: ``["hash,quality,timestamp", …]``."""
    return json.dumps([f"{f.hash},{f.quality},{f.timestamp:.3f}" for f in frames])


# --- matching ------------------------------------------------------------------------------


def _prepare(frames: Sequence[VpdqFrame], quality: int) -> np.ndarray:
    """Unique hashes of frames with quality ≥ ``quality``, as an (n, 4) uint64 array."""
    seen: dict[bytes, None] = {}
    for f in frames:
        if f.quality >= quality:
            seen.setdefault(f.hash.bits, None)
    if not seen:
        return np.zeros((0, 4), dtype=np.uint64)
    buf = np.frombuffer(b"".join(seen), dtype=">u8").astype(np.uint64)
    return buf.reshape(-1, 4)


_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between every row of ``a`` and of ``b`` (n_a × n_b)."""
    x = a[:, None, :] ^ b[None, :, :]  # n_a x n_b x 4 uint64
    counts = _POPCOUNT8[x.view(np.uint8)]
    out: np.ndarray = counts.reshape(a.shape[0], b.shape[0], 32).sum(axis=2, dtype=np.int32)
    return out


def _matched(a: np.ndarray, b: np.ndarray, distance: int) -> tuple[int, int]:
    """(rows of a within ``distance`` of some row of b, rows of b within distance of some a)."""
    a_hit = np.zeros(a.shape[0], dtype=bool)
    b_hit = np.zeros(b.shape[0], dtype=bool)
    chunk = max(1, 2_000_000 // max(1, b.shape[0]))  # bound the n_a x n_b x 32 work array
    for i in range(0, a.shape[0], chunk):
        close = _distances(a[i : i + chunk], b) <= distance
        a_hit[i : i + chunk] = close.any(axis=1)
        b_hit |= close.any(axis=0)
    return int(a_hit.sum()), int(b_hit.sum())


def match_videos(
    query: Sequence[VpdqFrame],
    target: Sequence[VpdqFrame],
    distance: int = PDQ_MATCH_DISTANCE,
    quality: int = PDQ_MIN_QUALITY,
) -> VpdqMatch:
    """Meta's vPDQ comparison: share of each side's unique, good-quality frames that have a
    frame on the other side within ``distance`` bits. 0% when a side has no such frame."""
    q = _prepare(query, quality)
    t = _prepare(target, quality)
    if q.shape[0] == 0 or t.shape[0] == 0:
        return VpdqMatch(0.0, 0.0)
    q_hit, t_hit = _matched(q, t, distance)
    return VpdqMatch(q_hit * 100.0 / q.shape[0], t_hit * 100.0 / t.shape[0])


# --- the signal ----------------------------------------------------------------------------


class VPDQSignal(SignalType):
    """vPDQ of a video, or of an animated image (GIF, WebP, APNG). HMA's hasher gives it for
    videos only (a photo is matched on PDQ); ``reclaim protect`` shares it for both."""

    name = "vpdq"
    kinds: ClassVar[frozenset[MediaKind]] = frozenset({"photo", "video"})
    content_types: ClassVar[frozenset[MediaKind] | None] = frozenset({"video"})
    index = Index.PDQ_FRAMES

    def __init__(
        self,
        distance: int = PDQ_MATCH_DISTANCE,
        quality: int = PDQ_MIN_QUALITY,
        match_percent: float = VPDQ_MATCH_PERCENT,
    ) -> None:
        self.distance = distance
        self.quality = quality
        self.match_percent = match_percent

    def compute(self, media: Media) -> SignalValue | None:
        """vPDQ of a video, or of an animated image (GIF, WebP, APNG).

        None for a still photo, or when no frame is big enough to hash (5 px). ``quality`` is
        the mean frame quality, rounded. Raises MediaError subclasses like the decoders.
        """
        if media.kind == "video":
            media.video_info()  # records duration/size/codec in media.info
        elif media.kind != "photo":
            return None
        frames = vpdq_from_frames(media.frames(rotate=False))
        if not frames:
            return None
        mean_q = round(sum(f.quality for f in frames) / len(frames))
        return SignalValue(self.name, frames_to_json(frames), mean_q)

    def compare(self, a: str, b: str) -> Comparison:
        """Meta's rule (``match_videos``); the distance is 100 minus the lower of the two match
        shares, reported as HMA does: ``"query %,compared %"``."""
        m = match_videos(frames_from_json(a), frames_from_json(b), self.distance, self.quality)
        return Comparison(
            m.is_match(self.match_percent),
            100.0 - min(m.query_match_percent, m.compared_match_percent),
            f"{m.query_match_percent:.1f},{m.compared_match_percent:.1f}",
        )

    @classmethod
    def validate(cls, value: str) -> str:
        return frames_to_json(parse_vpdq(value))

    def at_distance(self, distance: int) -> VPDQSignal:
        return VPDQSignal(distance, self.quality, self.match_percent)

    def index_codes(self, value: str, quality: int | None) -> list[bytes]:
        """Every frame hash of at least the quality tolerance (the value's mean quality is not
        used: each frame carries its own)."""
        return [f.hash.bits for f in frames_from_json(value) if f.quality >= self.quality]

    def shared_form(self, value: SignalValue) -> tuple[str, int | None]:
        """The compact list (each frame carries its quality: no quality for the row)."""
        return to_compact(frames_from_json(value.value)), None

    def as_json(self, value: str) -> Any:
        return json.loads(value)

    def summary(self, value: str) -> str:
        return f"vPDQ, {len(json.loads(value))} frames"
