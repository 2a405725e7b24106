"""Sample material for ``reclaim demo``: abstract test patterns, never pictures of people.

It lays out what a scan meets in real life — a folder with subfolders, a re-encoded copy, a zip
(with one hostile member), a Telegram Desktop export (with a file left out of the export), a
short video and a corrupt file — so a first run shows every part of the pipeline.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


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


def _video(path: Path, seconds: int = 4, fps: int = 10) -> bool:
    """A short MP4 of drifting patterns; False when no encoder is available."""
    try:
        import av

        with av.open(str(path), "w") as out:
            stream = out.add_stream("mpeg4", rate=fps)
            stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
            base = np.asarray(pattern(7, (400, 300)))
            for i in range(seconds * fps):
                frame = base[i : i + 240, i : i + 320]
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        return True
    except Exception:
        return False


def make_sample(root: Path) -> list[Path]:
    """Write the sample collection under ``root``; returns the sources to scan."""
    root.mkdir(parents=True, exist_ok=True)
    folder = root / "phone-backup"
    (folder / "2024").mkdir(parents=True, exist_ok=True)
    for i in range(12):
        (folder / ("2024" if i % 3 == 0 else "") / f"IMG_{1000 + i}.jpg").write_bytes(
            _jpeg(pattern(i))
        )
    # The same picture re-encoded smaller, as messaging apps do: a PDQ near-duplicate.
    small = pattern(0).resize((400, 300))
    (folder / "IMG_1000_resent.jpg").write_bytes(_jpeg(small, quality=70))
    (folder / "broken.jpg").write_bytes(_jpeg(pattern(99))[:3000])
    _video(folder / "clip.mp4")

    archive = root / "shared-album.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(12, 18):
            z.writestr(f"album/photo_{i}.jpg", _jpeg(pattern(i)))
        z.writestr("album/IMG_1001_copy.jpg", (folder / "IMG_1001.jpg").read_bytes())
        z.writestr("../../outside.jpg", _jpeg(pattern(50)))  # path traversal: refused

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
        (export / rel).write_bytes(_jpeg(pattern(seed)))
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
    (export / "result.json").write_text(
        json.dumps(
            {"name": "sample channel", "type": "public_channel", "id": 1000, "messages": messages},
            indent=1,
        ),
        encoding="utf-8",
    )
    return [folder, archive, export]
