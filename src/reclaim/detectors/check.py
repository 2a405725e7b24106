"""``reclaim check``: is this file generated or manipulated, and why — the one place that runs
the detectors for an item (a file, a scanned item, a video's sampled frames).

For one item, in order:

* **Provenance** (:mod:`reclaim.detectors.provenance`: C2PA Content Credentials, XMP/IPTC digital
  source type, generator metadata, Stable Diffusion's invisible watermark): near-certain when
  present. Its absence proves nothing: most apps strip metadata.
* **Pixel signals**, when ``detectors`` (:class:`DetectorOptions`) is given: per face (68-landmark
  regions, from the boxes face search found or looked for here) ``face_consistency`` and
  ``face_blend``; per image ``synthetic_image`` and the CLIP probes (when the encoder is
  installed). Videos: frames sampled about once a second, every frame checked, each signal
  aggregated per clip (:func:`aggregate_frames`).
* **The verdict** (:mod:`reclaim.detectors.decide`): provenance decides when decisive, otherwise
  the fused pixel score against its threshold. Evidence, never proof.
* **Nudity triage** (NudeNet), reported apart: not part of the score.
* **Explanation images** (``maps_dir``): photos only.

The result is a :class:`~reclaim.detectors.record.CheckResult`; its ``to_json()`` is what
``reclaim check --json`` prints and cases store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from reclaim.detectors.base import ForensicSignal
from reclaim.detectors.decide import verdict
from reclaim.detectors.provenance import WM_MIN_PIXELS, metadata_findings, watermark_findings
from reclaim.detectors.record import CheckResult, Evidence, PixelEvidence, ProvenanceEvidence
from reclaim.errors import DecodeError, MediaError, UnsupportedMedia
from reclaim.media import Media, MediaLimits, read_user_file
from reclaim.verdicts import Verdict

__all__ = [
    "IMAGE_MAPS",
    "CheckResult",
    "DetectorOptions",
    "aggregate_frames",
    "check_boxes",
    "check_bytes",
    "check_face_options",
    "check_file",
    "check_media",
    "image_signals",
    "map_images",
    "verdict",
    "video_signals",
    "write_maps",
]

#: The verdicts under the names benches and tests import (values of :class:`Verdict`).
VERDICT_GENERATED = Verdict.GENERATED
VERDICT_EDITED = Verdict.EDITED
VERDICT_NONE = Verdict.NO_PROVENANCE
VERDICT_LIKELY_MANIPULATED = Verdict.LIKELY_MANIPULATED
VERDICT_LIKELY_GENERATED = Verdict.LIKELY_GENERATED
VERDICT_NO_EVIDENCE = Verdict.NO_EVIDENCE
VERDICT_CANNOT_TELL = Verdict.CANNOT_TELL

#: Videos: at most this many frames go through the nudity detector, spread over the clip.
NUDITY_MAX_FRAMES = 32


@dataclass(frozen=True)
class DetectorOptions:
    """Which detectors run. The defaults are what ``reclaim check`` uses."""

    faces: bool = True  # face consistency + face blend on every face
    synthetic: bool = True  # the AI-image detector on the whole image
    clip: bool = True  # the CLIP probes (skipped, with a note, when the encoder is missing)
    diffusion: bool = True  # clip_diffusion (with the CLIP probes; needs the encoder too)
    #: ``inpaint_region`` (where the grain differs: reclaim.detectors.inpaint); also runs
    #: whenever ``maps`` is on. Off by default: the fused verdict does not read it.
    inpaint: bool = False
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
    """Boxes of face search's faces (``Face`` or the stored ``FaceRecord``) of a still image that
    the check looks at: not those only YuNet found (see ``check_face_options``)."""
    return [f.box for f in faces if f.frame is None and f.detector != "yunet"]


# -- one item -------------------------------------------------------------------------------


def check_file(
    path: str | Path,
    *,
    nudity: bool = True,
    detectors: DetectorOptions | None = None,
    maps_dir: Path | None = None,
    limits: MediaLimits | None = None,
) -> CheckResult:
    """Check one file. Raises InputError / MediaError (one line) when it cannot be checked.

    ``detectors=None`` runs provenance (and nudity) only. ``maps_dir``: write explanation
    images there (photos), named after the file's SHA-256; their paths go in ``maps``.
    """
    p = Path(path)
    limits = limits or MediaLimits()
    data = read_user_file(p, limits, "give image or video files")
    if maps_dir is not None and detectors is not None:
        detectors = replace(detectors, maps=True)
    rec = check_bytes(data, nudity=nudity, detectors=detectors, limits=limits, maps_dir=maps_dir)
    return replace(rec, path=str(p))


def check_bytes(
    data: bytes,
    *,
    nudity: bool = True,
    detectors: DetectorOptions | None = None,
    limits: MediaLimits | None = None,
    boxes: list[tuple[int, int, int, int]] | None = None,
    maps_dir: Path | None = None,
) -> CheckResult:
    """Check one item's bytes: see :func:`check_media`."""
    media = Media(data, limits or MediaLimits())
    return check_media(media, nudity=nudity, detectors=detectors, boxes=boxes, maps_dir=maps_dir)


def check_media(
    media: Media,
    *,
    nudity: bool = True,
    detectors: DetectorOptions | None = None,
    boxes: list[tuple[int, int, int, int]] | None = None,
    maps_dir: Path | None = None,
    watermark: bool = True,
) -> CheckResult:
    """Check one item: provenance, pixel signals (when ``detectors`` is given), verdict, nudity
    triage. ``boxes``: faces already found (face search), so they are not looked for again.
    ``watermark=False`` skips the invisible-watermark decoder (~35 ms per megapixel).

    A file whose pixels cannot be decoded still gets its metadata checked; when it has no
    metadata evidence either, the decoding error is raised.
    """
    data, limits = media.data, media.limits
    sha = hashlib.sha256(data).hexdigest()
    findings = metadata_findings(data, media.format)
    checks: dict[str, str] = {"metadata": "checked"}
    errors: list[str] = []
    nud: dict[str, Any] | None = None
    pixel: list[ForensicSignal] | None = None
    map_files: list[str] = []

    if media.kind == "photo":
        try:
            im = media.image()
        except MediaError as e:
            if not findings:
                raise
            errors.append(str(e))
            checks["watermark"] = f"not checked: {e}"
            im = None
        if im is not None:
            w, h = im.size
            if not watermark:
                checks["watermark"] = "not checked: skipped"
            elif w * h < WM_MIN_PIXELS:
                checks["watermark"] = "not checked: image smaller than 256×256 pixels"
            else:
                findings += watermark_findings(np.asarray(im))
                checks["watermark"] = "checked"
            if detectors is not None:
                # Boxes are in the pixels of the image decoded at ``max_side``, as face search
                # stores them (FaceOptions.max_side is the same 2048).
                rgb = np.asarray(media.image(max_side=detectors.max_side), dtype=np.uint8)
                from reclaim.detectors.diffusion import jpeg_quality

                pixel, notes = image_signals(
                    rgb, detectors, boxes=boxes, jpeg_quality=jpeg_quality(data)
                )
                checks.update(notes)
            if maps_dir is not None:
                map_files = write_maps(media, pixel or [], maps_dir, sha)
            if nudity:
                from reclaim.detectors.nudity import detect_nudity

                nud = detect_nudity(im).as_dict()
    elif media.kind == "video":
        checks["watermark"] = "not checked: videos"
        if detectors is not None:
            try:
                pixel, notes = video_signals(media, replace(detectors, maps=False))
                checks.update(notes)
            except MediaError as e:
                if not findings:
                    raise
                errors.append(str(e))
        if nudity:
            try:
                nud = _video_nudity(media, limits)
            except MediaError as e:
                if not findings:
                    raise
                errors.append(str(e))
    else:  # pragma: no cover - Media maps unknown bytes to "photo"
        raise UnsupportedMedia("not an image or video format reclaim can read")

    v, score, summary = verdict(findings, pixel)
    signals: list[Evidence] = [ProvenanceEvidence.of(f) for f in findings]
    signals += _pixel_evidence(pixel or [])
    signals.sort(key=lambda s: -s.score)
    return CheckResult(
        sha256=sha,
        kind=media.kind,
        format=media.format,
        verdict=v,
        score=float(round(score, 4)),  # as rounded since issue 6 (numpy's rounding if numpy's)
        summary=summary,
        signals=tuple(signals),
        checks=checks,
        nudity=nud,
        maps=tuple(map_files),
        error="; ".join(errors) if errors else None,
    )


def _pixel_evidence(pixel: list[ForensicSignal]) -> list[PixelEvidence]:
    """Pixel signals as output, saying whether the fused verdict reads each (the fit keeps only
    the signals that help on calib; the others are shown as evidence but move nothing)."""
    from reclaim.detectors.fusion import load_model

    m = load_model()
    return [PixelEvidence.of(s, m is not None and s.name in m.calibration) for s in pixel]


# -- pixel signals of one image ---------------------------------------------------------------


def image_signals(
    rgb: np.ndarray,
    options: DetectorOptions | None = None,
    *,
    boxes: list[tuple[int, int, int, int]] | None = None,
    timings: dict[str, float] | None = None,
    jpeg_quality: int | None = None,
) -> tuple[list[ForensicSignal], dict[str, str]]:
    """Signals for one upright RGB uint8 image, and a note per detector ("checked" or why not).

    ``timings``, when given, gets the milliseconds each stage took (added to what is there).
    ``jpeg_quality``: the file's JPEG quality when it is a JPEG (too compressed to tell under
    ``diffusion.MIN_QUALITY``).
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
    if o.inpaint or o.maps:
        from reclaim.detectors.inpaint import MIN_SIDE, inpaint_region

        with clock("inpaint_region"):
            region = inpaint_region(rgb, maps=o.maps)
        if region is not None:
            out.append(region)
        notes["inpaint"] = (
            "checked" if region is not None else f"not checked: smaller than {MIN_SIDE} px"
        )
    if o.clip:
        from reclaim.detectors.clip_probe import clip_signals, encoder_status

        with clock("clip"):
            clip = clip_signals(
                rgb, [r.box for r in regions], face_points=[r.points for r in regions]
            )
        out += clip
        notes["clip"] = "checked" if clip else f"not checked: {encoder_status()}"
    if o.clip and o.diffusion:
        from reclaim.detectors.clip_probe import encoder_status
        from reclaim.detectors.diffusion import diffusion_signal

        with clock("clip_diffusion"):
            diff = diffusion_signal(rgb, quality=jpeg_quality)
        if diff is not None:
            out.append(diff)
        notes["diffusion"] = (
            "checked"
            if diff is not None
            else (
                f"not checked: {encoder_status()}"
                if encoder_status() != "ok"
                else "not checked: models/diffusion_probe.json is missing"
            )
        )
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


# -- videos: sampled frames, aggregated per clip -----------------------------------------------


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


def _video_nudity(media: Media, limits: MediaLimits) -> dict[str, Any]:
    from reclaim.detectors.nudity import combine, detect_nudity

    _, frames = media.spread_frames(limits.video_fps, NUDITY_MAX_FRAMES)
    results = [(fr.timestamp_s, detect_nudity(fr.rgb)) for fr in frames]
    if not results:
        raise DecodeError("no video frame could be decoded")
    return combine(results)


# -- explanation images -----------------------------------------------------------------------


#: Explanation images written by ``--maps``, in this order (name → what it shows).
IMAGE_MAPS = ("ela", "noise", "jpeg_ghost", "block_grid")


def map_images(
    data: bytes, pixel: list[ForensicSignal] | None = None, limits: MediaLimits | None = None
) -> dict[str, np.ndarray]:
    """Explanation images of a photo: the image-level maps (IMAGE_MAPS), then every signal's
    maps (``<signal>-<map>-<n>``). With ``pixel=None`` the face detectors run here for them.
    Raises MediaError for a file that is not a decodable photo."""
    from reclaim.detectors import maps as M

    media = Media(data, limits or MediaLimits())
    if media.kind != "photo":
        raise UnsupportedMedia("explanation images are made for photos only")
    o = DetectorOptions(maps=True)
    rgb = np.asarray(media.image(max_side=o.max_side), dtype=np.uint8)
    if pixel is None:
        pixel, _ = image_signals(rgb, o)
    made: dict[str, np.ndarray] = {
        "ela": M.ela_map(rgb),
        "noise": M.noise_map(rgb),
        "jpeg_ghost": M.jpeg_ghost_map(rgb),
        "block_grid": M.block_grid_map(rgb),
    }
    counts: dict[str, int] = {}
    for s in pixel:
        for name, img in s.maps.items():
            key = f"{s.name}-{name}"
            counts[key] = counts.get(key, 0) + 1
            made[f"{key}-{counts[key]}"] = img
    return made


def write_maps(media: Media, pixel: list[ForensicSignal], folder: Path, stem: str) -> list[str]:
    """Write :func:`map_images` as PNG files named ``<sha256[:16]>-<map>.png``; their paths."""
    from reclaim.detectors.maps import save_png

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, img in map_images(media.data, pixel, media.limits).items():
        out = folder / f"{stem[:16]}-{name}.png"
        save_png(img, out)
        paths.append(str(out))
    return paths
