"""Pixel evidence of manipulation or generation for one photo or video (issue 6).

Runs the detectors on an item's pixels and returns :class:`ForensicSignal` values:

* per face (68-landmark regions): ``face_consistency`` (does the face differ from its
  surroundings: sharpness, noise, JPEG grid, colour, seam) and ``face_blend`` (the
  self-blended CNN);
* per image: ``synthetic_image`` (the GAN/diffusion detector on residual statistics) and the
  CLIP probes ``clip_generated`` / ``clip_face_edit`` / ``clip_blend`` (when the CLIP encoder
  is installed; the largest face's surroundings are encoded too).

Faces come from the boxes face search already found (``boxes``) or are looked for here.
Videos: frames are sampled about one per second (at most ``video_max_frames``), every frame is
checked, and each signal is aggregated per clip — the mean of its strongest frames — with those
frames' timestamps cited in the evidence.

The fusion of these signals with provenance into one verdict is in :mod:`reclaim.detectors.fusion`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from reclaim.detectors.base import ForensicSignal
from reclaim.errors import DecodeError
from reclaim.media import Media

__all__ = ["DetectorOptions", "aggregate_frames", "image_signals", "video_signals"]


@dataclass(frozen=True)
class DetectorOptions:
    """Which detectors run. The defaults are what ``reclaim check`` uses."""

    faces: bool = True  # face consistency + face blend on every face
    synthetic: bool = True  # the AI-image detector on the whole image
    clip: bool = True  # the CLIP probes (skipped, with a note, when the encoder is missing)
    find_faces: bool = True  # look for faces here when no boxes are given
    maps: bool = False  # explanation images (``ForensicSignal.maps``)
    max_faces: int = 4  # largest faces checked per image or frame
    max_side: int = 2048  # photos are decoded to at most this side for the detectors
    video_fps: float = 1.0
    video_max_frames: int = 16
    top_frames: int = 3  # a clip's score: mean of its strongest frames


def _regions(
    rgb: np.ndarray, boxes: list[tuple[int, int, int, int]] | None, o: DetectorOptions
) -> list[Any]:
    from reclaim.faces.landmarks import face_regions, regions_from_boxes

    if boxes:
        big = sorted(boxes, key=lambda b: -min(b[2] - b[0], b[3] - b[1]))[: o.max_faces]
        return regions_from_boxes(rgb, big)
    if not o.find_faces:
        return []
    return face_regions(rgb, check_face_options(), max_faces=o.max_faces)


def check_face_options() -> Any:
    """How the check looks for faces itself: HOG and the CNN fallback at their usual scales, as
    when its detectors and fusion were fitted and measured (``bench/detect.py``). Face search
    also runs YuNet, and scales HOG by YuNet's faces; the check has not been measured on those
    faces, so it does not use YuNet's (``check_boxes``)."""
    from reclaim.faces.pipeline import FaceOptions

    return FaceOptions(yunet_max_side=0)


def check_boxes(faces: Iterable[Any]) -> list[tuple[int, int, int, int]]:
    """Boxes of face search's faces (``signals.faces.Face``) of a still image that the check
    looks at: not those only YuNet found (see ``check_face_options``)."""
    return [f.box for f in faces if f.frame is None and f.detector != "yunet"]


def image_signals(
    rgb: np.ndarray,
    options: DetectorOptions | None = None,
    *,
    boxes: list[tuple[int, int, int, int]] | None = None,
    timings: dict[str, float] | None = None,
) -> tuple[list[ForensicSignal], dict[str, str]]:
    """Signals for one upright RGB uint8 image, and a note per detector ("checked" or why not).

    ``timings``, when given, gets the milliseconds each stage took (added to what is there).
    """
    o = options or DetectorOptions()
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    out: list[ForensicSignal] = []
    notes: dict[str, str] = {}
    clock = _Clock(timings)
    regions: list[Any] = []
    if o.faces:
        with clock("faces"):
            regions = _regions(rgb, boxes, o)
        if not regions:
            notes["faces"] = "not checked: no face found"
        else:
            from reclaim.detectors.consistency import face_consistency
            from reclaim.detectors.faceblend import face_blend

            with clock("face_consistency"):
                out += face_consistency(rgb, regions, maps=o.maps)
            with clock("face_blend"):
                out += face_blend(rgb, regions, maps=o.maps)
            notes["faces"] = f"checked: {len(regions)} face(s)"
    if o.synthetic:
        from reclaim.detectors.synthetic import synthetic_image

        with clock("synthetic_image"):
            out.append(synthetic_image(rgb, maps=o.maps))
        notes["synthetic"] = "checked"
    if o.clip:
        from reclaim.detectors.clip_probe import clip_signals, encoder_status

        with clock("clip"):
            clip = clip_signals(
                rgb, [r.box for r in regions], face_points=[r.points for r in regions]
            )
        out += clip
        notes["clip"] = "checked" if clip else f"not checked: {encoder_status()}"
    return out, notes


class _Clock:
    """``with clock("stage"):`` adds the stage's milliseconds to a dict (or does nothing)."""

    def __init__(self, into: dict[str, float] | None) -> None:
        self.into = into

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        if self.into is None:
            yield
            return
        t0 = time.perf_counter()
        try:
            yield
        finally:
            ms = (time.perf_counter() - t0) * 1000.0
            self.into[stage] = self.into.get(stage, 0.0) + ms


def video_signals(
    media: Media, options: DetectorOptions | None = None
) -> tuple[list[ForensicSignal], dict[str, str]]:
    """Frames sampled about once a second, checked, aggregated per clip."""
    o = options or DetectorOptions()
    fps, sampled = media.spread_frames(o.video_fps, o.video_max_frames)
    per_frame: list[tuple[float, list[ForensicSignal]]] = []
    frames = 0
    try:
        for fr in sampled:
            frames += 1
            sig, _ = image_signals(fr.rgb, dataclasses.replace(o, maps=False))
            per_frame.append((fr.timestamp_s, sig))
    except DecodeError:
        if frames == 0:
            raise
    if frames == 0:
        raise DecodeError("no video frame could be decoded")
    notes = {"frames": f"checked: {frames} frame(s), about {fps:.2g} per second"}
    return aggregate_frames(per_frame, top=o.top_frames), notes


def aggregate_frames(
    per_frame: Iterable[tuple[float, list[ForensicSignal]]], *, top: int = 3
) -> list[ForensicSignal]:
    """One signal per name for a clip: the mean of its ``top`` strongest frames (a single
    glitchy frame does not make a clip fake), citing those frames' timestamps."""
    by_name: dict[str, list[tuple[float, ForensicSignal]]] = {}
    for t, sigs in per_frame:
        for s in sigs:
            by_name.setdefault(s.name, []).append((t, s))
    out = []
    for name, hits in by_name.items():
        hits.sort(key=lambda h: -h[1].score)
        best = hits[:top]
        score = float(np.mean([h[1].score for h in best]))
        raw = float(np.mean([h[1].raw for h in best]))
        stamps = ", ".join(_clock(t) for t, _ in best)
        first = best[0][1]
        evidence = {
            "en": f"Video, {len(hits)} frame checks; strongest at {stamps} "
            f"(mean of those {len(best)}: {score:.2f}). Strongest frame: {first.evidence['en']}",
            "fr": f"Vidéo, {len(hits)} vérifications d'images ; les plus fortes à {stamps} "
            f"(moyenne de ces {len(best)} : {score:.2f}). Image la plus forte : "
            f"{first.evidence['fr']}",
        }
        out.append(
            ForensicSignal(
                name=name,
                score=score,
                kind=first.kind,
                evidence=evidence,
                raw=raw,
                details={
                    "frames_checked": len(hits),
                    "strongest_frames_s": [round(t, 3) for t, _ in best],
                    "frame_scores": [round(h[1].score, 4) for h in best],
                },
            )
        )
    return out


def _clock(t: float) -> str:
    m, s = divmod(max(0.0, t), 60.0)
    return f"{int(m)}:{s:04.1f}"
