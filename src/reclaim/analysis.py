"""Analysis of one item: what scan, hash and the platform share.

``analyze_bytes`` turns one item's bytes into an ``ItemRecord``: every registered hash signal
(``reclaim.hashes``), and on request its faces (``reclaim.faces``) and the manipulation check
(``reclaim.detectors``). It runs in worker processes (the scan's pool, the sandbox of ``reclaim
hash``/``protect``, the platform's decoding pool) and never raises for bad media.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reclaim.errors import MediaError
from reclaim.hashes import BytesSignalType, PDQSignal, signal_types
from reclaim.media import Media, MediaLimits
from reclaim.store import ItemRecord
from reclaim.store.case import FaceRecord
from reclaim.verdicts import CheckLevel

if TYPE_CHECKING:
    from reclaim.faces.pipeline import Face, FaceOptions

__all__ = ["CHECK_LEVELS", "analyze_bytes", "error_item", "face_record"]

#: What ``reclaim scan --check`` runs on each new item: the values of ``CheckLevel``
#: (``reclaim.verdicts``), least first: off, metadata, faces, full.
CHECK_LEVELS: tuple[str, ...] = tuple(CheckLevel)


#: How an item's error starts when decoding it hit the worker's memory ceiling (MemoryError).
OUT_OF_MEMORY = "ran out of memory (a worker's memory ceiling)"


def _byte_signals(data: bytes) -> ItemRecord:
    """An item of unknown kind carrying only the signals of its bytes (the digests)."""
    values = [s.of_bytes(data) for s in signal_types() if isinstance(s, BytesSignalType)]
    digest = {v.signal: v.value for v in values}
    item = ItemRecord(digest["sha256"], digest["md5"], len(data), "other", "unknown")
    item.signals = [(v.signal, v.value, v.quality) for v in values]
    return item


def error_item(data: bytes, error: str) -> ItemRecord:
    """The record of an item that could not be analysed: its digests and the reason."""
    item = _byte_signals(data)
    item.error = error
    return item


def analyze_bytes(
    data: bytes,
    limits: MediaLimits,
    faces: FaceOptions | None = None,
    check: str = "off",
    pdq_flavour: str | None = None,
) -> ItemRecord:
    """Every signal for one item's bytes (its faces when ``faces`` is given, and the manipulation
    check at level ``check``, see CHECK_LEVELS). ``pdq_flavour``: a photo's ``pdq`` in that
    flavour (``reclaim.hashes.pdq``) instead of the registry's.

    Never raises for bad media: the error is recorded, with the digests of the bytes.
    """
    item = _byte_signals(data)
    digests = len(item.signals)
    try:
        media = Media(data, limits)
        item.kind, item.format = media.kind, media.format
        for sig in signal_types():
            if isinstance(sig, BytesSignalType) or media.kind not in sig.kinds:
                continue
            if pdq_flavour is not None and type(sig) is PDQSignal:
                sig = PDQSignal(sig.threshold, pdq_flavour)
            value = sig.compute(media)
            if value is not None:
                item.signals.append((value.signal, value.value, value.quality))
        item.info = dict(media.info)
        if faces is not None:
            _add_faces(item, media, faces)
        if check != "off" and media.kind in ("photo", "video"):
            _add_check(item, media, check)
    except MediaError as e:
        item.error = f"{type(e).__name__}: {e}"
        item.signals = item.signals[:digests]
    except MemoryError as e:  # past a worker's memory ceiling (see reclaim.scan._limit_memory)
        item.error = f"{OUT_OF_MEMORY}: {_first_line(e)}".rstrip(": ")
        item.signals = item.signals[:digests]
    except Exception as e:  # a decoder bug must not stop the scan; record it plainly
        item.error = f"unexpected decoder error: {type(e).__name__}: {e}"
        item.signals = item.signals[:digests]
    info = item.info
    item.width = _int_or_none(info.get("width"))
    item.height = _int_or_none(info.get("height"))
    dur = info.get("duration_s")
    item.duration_s = float(dur) if isinstance(dur, int | float) else None
    return item


def _add_faces(item: ItemRecord, media: Media, options: FaceOptions) -> None:
    """Faces of a decoded photo or video; a failure here is recorded, the hashes are kept."""
    from reclaim.faces.pipeline import media_faces

    if media.kind not in ("photo", "video"):
        return
    try:
        found, frames = media_faces(media, options)
        item.faces = [face_record(f) for f in found]
        item.face_frames = frames
    except MediaError as e:  # includes ItemTimeout: the face work ran out of time
        item.face_error = f"{type(e).__name__}: {e}"
    except Exception as e:  # a detector bug must not lose the item's hashes
        first = next((ln for ln in str(e).splitlines() if ln.strip()), "")
        item.face_error = f"unexpected face error: {type(e).__name__}: {first}".rstrip(": ")


def _add_check(item: ItemRecord, media: Media, level: str) -> None:
    """The item's manipulation check; a failure is left unrecorded (``reclaim check`` can
    still be run on the file) and never loses the item's hashes and faces."""
    from dataclasses import replace

    from reclaim.detectors.check import DetectorOptions, check_boxes, check_media

    detectors: DetectorOptions | None = None
    boxes: list[tuple[int, int, int, int]] | None = None
    done = CheckLevel.METADATA
    if level == CheckLevel.FULL:
        detectors, done = DetectorOptions(), CheckLevel.FULL
    elif level == CheckLevel.FACES and item.faces:
        done = CheckLevel.FACES
        if media.kind == "photo":
            boxes = check_boxes(item.faces)
            detectors = DetectorOptions(find_faces=False, synthetic=True)
        else:  # videos: the frames checked are not the frames searched; faces found again
            detectors = DetectorOptions()
        if media.kind == "photo" and not boxes:  # an animated image's faces: frames
            detectors, done = None, CheckLevel.METADATA
    try:
        rec = check_media(
            media,
            nudity=False,
            detectors=detectors,
            boxes=boxes,
            watermark=level == CheckLevel.FULL,
        )
    except MediaError:
        return
    except Exception:  # a detector bug must not lose the item
        return
    item.check = replace(rec, level=done)


def face_record(f: Face) -> FaceRecord:
    from reclaim.faces.pipeline import descriptor_to_bytes

    return FaceRecord(
        box=f.box,
        size=f.size,
        detector=f.detector,
        confidence=f.confidence,
        blur=f.blur,
        pose=f.pose,
        quality=f.quality,
        descriptor=descriptor_to_bytes(f.descriptor),
        frame=f.frame,
        timestamp_s=f.timestamp_s,
    )


def _int_or_none(v: object) -> int | None:
    return int(v) if isinstance(v, int | float) else None


def _first_line(e: BaseException) -> str:
    return next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
