"""Sample material for ``reclaim demo``: abstract test patterns, and one public-domain face.

It lays out what a scan meets in real life — a folder with subfolders, a re-encoded copy, a zip
(with one hostile member), a Telegram Desktop export (with a file left out of the export), a
short video and a corrupt file — so a first run shows every part of the pipeline.

Among the patterns are copies of one face, as the pictures of a targeted person circulate:
re-encoded as a messaging app does, cropped, mirrored, shrunk to a thumbnail, partly covered,
shown inside another picture. The face is the official U.S. Navy portrait of Grace Hopper, a
work of the U.S. federal government and so in the public domain, that matplotlib ships as
``mpl-data/sample_data/grace_hopper.jpg`` (the file's own JPEG comment names its source,
Wikimedia Commons' "File:Grace_Hopper.jpg"; matplotlib's licence files say nothing of it). The
file is read from the installed package, never imported nor fetched; the variants are made by
the fixture code (``reclaim_fixtures.faces``), the same code the face search tests and
benchmarks use. The original photo is kept apart (``reference/``, with an ABOUT.txt saying
where it comes from): it is what the demo enrolls, with the demo's own consent, and it is not
among the scanned sources. No variant swaps faces: there is no second person in the sample.
"""

from __future__ import annotations

import calendar
import hashlib
import importlib.util
import io
import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from reclaim.errors import InputError

__all__ = [
    "FACE_NAME",
    "FACE_PLACES",
    "FACE_SOURCE",
    "VARIANT_WORDS",
    "SampleCollection",
    "face_photo",
    "make_sample",
    "make_sample_collection",
    "pattern",
]

#: The name the demo enrolls the sample face under.
FACE_NAME = "Grace Hopper (sample)"
#: Where the sample face comes from, for the demo's output and the consent record.
FACE_SOURCE = (
    "Grace Hopper's official U.S. Navy portrait (public domain), shipped by matplotlib as "
    "mpl-data/sample_data/grace_hopper.jpg"
)
_FACE_FILE = ("mpl-data", "sample_data", "grace_hopper.jpg")
#: matplotlib's file as of 3.x; its face box is known, so no face model runs to make the sample.
_FACE_SHA256 = "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130"
_FACE_BOX = (162, 138, 379, 355)  # left, top, right, bottom: as reclaim's detector finds it

_ABOUT = f"""grace_hopper.jpg: {FACE_SOURCE}.
A work of the U.S. federal government (the U.S. Navy): public domain in the United States
(17 U.S.C. 105). The file's own comment names its source: Wikimedia Commons,
File:Grace_Hopper.jpg.

reclaim demo enrolls this face, with consent recorded as the demo's own, to show face search at
work. Copies of it are hidden in the sample collection beside this folder: re-encoded, cropped,
mirrored, shrunk, partly covered, inside another picture (made by reclaim's test fixture code).
"""

#: Where each variant of the face is placed, by source: (source folder or archive name, the
#: path inside it as a scan records it) → the variant (``reclaim_fixtures.faces.VARIANTS``).
FACE_PLACES: dict[tuple[str, str], str] = {
    ("phone-backup", "IMG_1100.jpg"): "jpeg",
    ("phone-backup", "2024/IMG_1101.jpg"): "crop",
    ("phone-backup", "IMG_1102.jpg"): "mirror",
    ("shared-album.zip", "album/photo_30.jpg"): "lowres",
    ("telegram-export", "photos/photo_5@03-05-2024_21-14-00.jpg"): "occlusion",
    ("telegram-export", "photos/photo_6@03-05-2024_21-15-00.jpg"): "inscene",
    ("telegram-export", "photos/photo_7@04-05-2024_08-02-00.jpg"): "crop",
}


#: Each variant in words, for the demo's output.
VARIANT_WORDS = {
    "jpeg": "re-encoded",
    "crop": "cropped",
    "mirror": "mirrored",
    "lowres": "shrunk to a thumbnail",
    "occlusion": "partly covered",
    "swap": "pasted over another face",
    "inscene": "shown inside another picture",
}


@dataclass(frozen=True)
class SampleCollection:
    """What ``make_sample_collection`` wrote."""

    sources: list[Path]  # to scan: a folder, a zip, a Telegram export
    reference: list[Path] = field(default_factory=list)  # the face's photo(s), to enroll
    face_places: dict[tuple[str, str], str] = field(default_factory=dict)  # see FACE_PLACES


def pattern(seed: int, size: tuple[int, int] = (800, 600)) -> Image.Image:
    """A deterministic abstract pattern (gradients, discs, noise)."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    chans = [
        (x * rng.uniform(0.1, 0.5) + y * rng.uniform(0.05, 0.4) + rng.uniform(0, 255)) % 256
        for _ in range(3)
    ]
    im = Image.fromarray(np.stack(chans, -1).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(14):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(10, max(11, w // 4)))
        d.ellipse([x0, y0, x0 + r, y0 + r], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    a = np.asarray(im).astype(np.int16) + rng.normal(0, 5, (h, w, 3)).astype(np.int16)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def _jpeg(im: Image.Image, quality: int = 88) -> bytes:
    b = io.BytesIO()
    im.save(b, "JPEG", quality=quality)
    return b.getvalue()


def _put(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` unless it holds those bytes already: a demo run again on the
    same folder leaves the files as they were, so its scan skips what it recorded."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except OSError:
        pass
    path.write_bytes(data)


def _video(path: Path, seconds: int = 4, fps: int = 10) -> bool:
    """A short MP4 of drifting patterns; False when no encoder is available."""
    tmp = path.with_name(path.name + ".part")
    try:
        import av

        with av.open(str(tmp), "w", format="mp4") as out:
            stream = out.add_stream("mpeg4", rate=fps)
            stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
            base = np.asarray(pattern(7, (400, 300)))
            for i in range(seconds * fps):
                frame = base[i : i + 240, i : i + 320]
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        _put(path, tmp.read_bytes())
        return True
    except Exception:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def face_photo() -> tuple[bytes, tuple[int, int, int, int]]:
    """The sample face's JPEG bytes, as matplotlib ships them, and its face box.

    Raises InputError, saying what to do, when matplotlib (a dependency of reclaim) is missing.
    """
    spec = importlib.util.find_spec("matplotlib")  # finds the package without importing it
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        p = Path(root).joinpath(*_FACE_FILE)
        if p.is_file():
            data = p.read_bytes()
            break
    else:
        raise InputError(
            "the sample face (matplotlib's public-domain portrait of Grace Hopper) is not "
            "installed: run `pip install matplotlib` (a dependency of reclaim) and try again"
        )
    if hashlib.sha256(data).hexdigest() == _FACE_SHA256:
        return data, _FACE_BOX
    return data, _detect_box(data)  # another matplotlib's copy: find the face once


def _detect_box(data: bytes) -> tuple[int, int, int, int]:
    from reclaim.faces.pipeline import find_faces

    with Image.open(io.BytesIO(data)) as im:
        faces = find_faces(np.asarray(im.convert("RGB")))
    if not faces:
        raise InputError("the sample face photo shipped by matplotlib holds no face reclaim finds")
    return faces[0].box


def _face_variants(
    data: bytes, box: tuple[int, int, int, int], places: dict[tuple[str, str], str]
) -> dict[tuple[str, str], bytes]:
    """The bytes of each variant placed in the sample, made by the fixture code (fixed seed)."""
    from reclaim_fixtures import faces as fx

    with Image.open(io.BytesIO(data)) as im:
        photo = im.convert("RGB")
    rng = np.random.default_rng(1906)  # the year she was born: any fixed seed will do
    scenes = iter(range(60, 70))

    def scene() -> tuple[Image.Image, tuple[int, int, int, int]]:
        # Another picture (an abstract pattern) for "inscene"; no face of its own.
        return pattern(next(scenes), (1100, 800)), (0, 0, 1, 1)

    return {
        place: fx.telegram_bytes(fx.make_variant(kind, photo, box, rng, scene))
        for place, kind in places.items()
    }


def make_sample_collection(root: Path, *, faces: bool = True) -> SampleCollection:
    """Write the sample collection under ``root``: the sources to scan and, with ``faces``,
    the face's variants among them and its reference photo beside them."""
    root.mkdir(parents=True, exist_ok=True)
    variants: dict[tuple[str, str], bytes] = {}
    reference: list[Path] = []
    if faces:
        data, box = face_photo()
        variants = _face_variants(data, box, FACE_PLACES)
        ref = root / "reference" / "grace_hopper.jpg"
        ref.parent.mkdir(parents=True, exist_ok=True)
        _put(ref, data)
        _put(ref.with_name("ABOUT.txt"), _ABOUT.encode())
        reference.append(ref)

    def placed(source: str) -> dict[str, bytes]:
        return {path: b for (src, path), b in variants.items() if src == source}

    folder = root / "phone-backup"
    (folder / "2024").mkdir(parents=True, exist_ok=True)
    for i in range(12):
        _put(folder / ("2024" if i % 3 == 0 else "") / f"IMG_{1000 + i}.jpg", _jpeg(pattern(i)))
    # The same picture re-encoded smaller, as messaging apps do: a PDQ near-duplicate.
    small = pattern(0).resize((400, 300))
    _put(folder / "IMG_1000_resent.jpg", _jpeg(small, quality=70))
    _put(folder / "broken.jpg", _jpeg(pattern(99))[:3000])
    _video(folder / "clip.mp4")
    for rel, b in placed("phone-backup").items():
        _put(folder / rel, b)

    archive = root / "shared-album.zip"
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:

        def member(name: str, data: bytes) -> None:  # dated: the same bytes on every run
            z.writestr(zipfile.ZipInfo(name, (2024, 5, 1, 12, 0, 0)), data)

        for i in range(12, 18):
            member(f"album/photo_{i}.jpg", _jpeg(pattern(i)))
        member("album/IMG_1001_copy.jpg", (folder / "IMG_1001.jpg").read_bytes())
        for rel, b in placed("shared-album.zip").items():
            member(rel, b)
        member("../../outside.jpg", _jpeg(pattern(50)))  # path traversal: refused
    _put(archive, zipped.getvalue())

    export = root / "telegram-export"
    (export / "photos").mkdir(parents=True, exist_ok=True)
    messages: list[dict[str, object]] = [
        {
            "id": 1,
            "type": "service",
            "date": "2024-05-01T09:00:00",
            "actor": "Channel",
            "action": "create_channel",
            "title": "sample channel",
            "text": "",
        },
    ]
    for k, seed in enumerate([2, 18, 19, 20]):
        rel = f"photos/photo_{k + 1}@01-05-2024_10-0{k}-00.jpg"
        _put(export / rel, _jpeg(pattern(seed)))
        msg: dict[str, object] = {
            "id": 10 + k,
            "type": "message",
            "date": f"2024-05-01T10:0{k}:00",
            "date_unixtime": str(1714557600 + 60 * k),
            "from": "sample channel",
            "from_id": "channel1000",
            "photo": rel,
            "width": 800,
            "height": 600,
            "text": "",
        }
        if k == 1:
            msg["forwarded_from"] = "another channel"
        messages.append(msg)
    messages.append(
        {
            "id": 20,
            "type": "message",
            "date": "2024-05-02T11:00:00",
            "date_unixtime": "1714647600",
            "from": "sample channel",
            "from_id": "channel1000",
            "photo": "(File not included. Change data exporting settings to download.)",
            "width": 800,
            "height": 600,
            "text": "",
        }
    )
    for k, (rel, b) in enumerate(sorted(placed("telegram-export").items())):
        _put(export / rel, b)
        # photo_N@DD-MM-YYYY_HH-MM-SS.jpg, as Telegram Desktop names them: the message's date.
        d, t = rel.split("@", 1)[1].removesuffix(".jpg").split("_")
        day, month, year = d.split("-")
        date = f"{year}-{month}-{day}T{t.replace('-', ':')}"
        unix = calendar.timegm(time.strptime(date, "%Y-%m-%dT%H:%M:%S"))
        with Image.open(io.BytesIO(b)) as im:
            w, h = im.size
        messages.append(
            {
                "id": 30 + k,
                "type": "message",
                "date": date,
                "date_unixtime": str(unix),
                "from": "sample channel",
                "from_id": "channel1000",
                "photo": rel,
                "width": w,
                "height": h,
                "text": "",
                **({"forwarded_from": "another channel"} if k == 1 else {}),
            }
        )
    _put(
        export / "result.json",
        json.dumps(
            {"name": "sample channel", "type": "public_channel", "id": 1000, "messages": messages},
            indent=1,
        ).encode(),
    )
    places = dict(FACE_PLACES) if faces else {}
    return SampleCollection([folder, archive, export], reference, places)


def make_sample(root: Path) -> list[Path]:
    """Write the sample collection under ``root``; returns the sources to scan."""
    return make_sample_collection(root).sources
