"""The dev photos the ``inpaint_region`` signal is calibrated and measured on, re-encoded the way
Telegram does (longer side ≤ 1280 px, JPEG quality 87, no metadata) so that neither the
container nor the size tells real from inpainted.

``diffusion-dev`` (``../shared/data/detect/diffusion-dev``): its real photos (ImageNet, the
CocoGlide authentic COCO crops, one aeroblade photo) and its 25 GLIDE-inpainted COCO photos
(CocoGlide). The CocoGlide masks and the originals of those 25 photos are *not* in the shared
data (its 25 real COCO crops are the originals of *other* CocoGlide fakes), so no
regenerated-region reference exists for them here: they are measured per image, not per pixel.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from reclaim.detectors.base import Split, split_of

REPO = Path(__file__).resolve().parents[2]
DEV = REPO.parent / "shared" / "data" / "detect" / "diffusion-dev"
TELEGRAM_MAX_SIDE = 1280
TELEGRAM_QUALITY = 87


@dataclass(frozen=True)
class DevImage:
    file: str  # path inside diffusion-dev, e.g. "real/....png"
    label: str  # "real" | "fake"
    kind: str  # "real" | "full" | "inpaint"
    group: str  # "imagenet", "coco", "cocoglide", "generated", "other-real"
    split: Split


def telegram(
    im: Image.Image, quality: int = TELEGRAM_QUALITY, max_side: int = TELEGRAM_MAX_SIDE
) -> np.ndarray:
    """RGB uint8 pixels after a Telegram-like re-encoding (≤ ``max_side`` px, JPEG ``quality``)."""
    im = im.convert("RGB")
    if max(im.size) > max_side:
        im = im.copy()
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    b = io.BytesIO()
    im.save(b, "JPEG", quality=quality)
    with Image.open(io.BytesIO(b.getvalue())) as out:
        return np.asarray(out.convert("RGB"), dtype=np.uint8)


def _group(row: dict[str, str]) -> str:
    gen = row["generator"]
    if row["kind"] == "inpaint":
        return "cocoglide"
    if row["label"] == "fake":
        return "generated"
    if "CocoGlide" in gen:
        return "coco"
    if "ImageNet" in gen or "imagenet" in row["source_repo"].lower():
        return "imagenet"
    return "other-real"


def dev_images(root: Path = DEV) -> list[DevImage]:
    """Every image of the manifest, with its group and split (by file name)."""
    with open(root / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [
        DevImage(r["file"], r["label"], r["kind"], _group(r), split_of(Path(r["file"]).name))
        for r in rows
    ]


def load(item: DevImage, root: Path = DEV) -> np.ndarray:
    """The image's pixels after the Telegram-like re-encoding."""
    with Image.open(root / item.file) as im:
        return telegram(im)


def iter_loaded(items: list[DevImage], root: Path = DEV) -> Iterator[tuple[DevImage, np.ndarray]]:
    for it in items:
        yield it, load(it, root)
