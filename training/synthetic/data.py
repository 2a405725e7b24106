"""Data for the AI-image detector: the labelled sets, the shared split, and the image transforms.

``detect/stylegan2-ffhq`` fakes carry a visible caption "StyleGAN2 (Karras et al.)" in their
bottom-right corner (rows 375-383 of 384, columns 305-383). A detector that sees it learns to
read the caption, not to find generation traces, so every image of that set (real and fake
alike, so that geometry does not differ) is cut to its top 368/384 rows before training and
before every evaluation (:func:`cut_caption`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from reclaim.detectors.base import Split, split_of

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
GAN_SET = SHARED / "detect" / "stylegan2-ffhq"
SPLICE_SET = SHARED / "detect" / "yonsei-splice"
REAL_COLOR = SHARED / "faces" / "real-color"
#: Rows kept of a 384-row stylegan2-ffhq image (the caption lives in rows 375-383).
KEEP_ROWS = 368 / 384

Transform = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Item:
    name: str
    path: Path
    label: int  # 1 = generated, 0 = real
    split: Split


def gan_items(root: Path = GAN_SET) -> list[Item]:
    """``detect/stylegan2-ffhq``: real/ = FFHQ (label 0), fake/ = StyleGAN2 (label 1)."""
    out = []
    for sub, label in (("real", 0), ("fake", 1)):
        for p in sorted((root / sub).glob("*.jpg")):
            out.append(Item(p.name, p, label, split_of(p.name)))
    return out


def real_items(root: Path, pattern: str = "*.jpg") -> list[Item]:
    """Real photos (label 0) of a folder, with their split."""
    return [Item(p.name, p, 0, split_of(p.name)) for p in sorted(root.glob(pattern))]


def read_rgb(path: Path) -> np.ndarray:
    im = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if im is None:
        raise OSError(f"cannot read {path}")
    return np.ascontiguousarray(cv2.cvtColor(im, cv2.COLOR_BGR2RGB))


def cut_caption(rgb: np.ndarray) -> np.ndarray:
    """Drop the bottom rows where stylegan2-ffhq fakes carry their caption."""
    return rgb[: int(rgb.shape[0] * KEEP_ROWS)]


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:
        raise OSError("JPEG encoding failed")
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if dec is None:
        raise OSError("JPEG decoding failed")
    return np.ascontiguousarray(cv2.cvtColor(dec, cv2.COLOR_BGR2RGB))


def resize(rgb: np.ndarray, scale: float, interp: int = cv2.INTER_AREA) -> np.ndarray:
    h, w = rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=interp)


#: The evaluation conditions of the brief: as stored, recompressed JPEG q75, resized 0.5×.
#: The transform is applied to the whole stored image, then the caption rows are cut.
CONDITIONS: dict[str, Transform] = {
    "plain": lambda im: im,
    "jpeg_q75": lambda im: jpeg(im, 75),
    "resize_0.5": lambda im: resize(im, 0.5, cv2.INTER_AREA),
}


def augment(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Training augmentation, same for reals and fakes: resize, JPEG q60-95, flip.

    Half the crops are resized by a factor in [0.5, 1.3] (area / bilinear / bicubic); 70 % are
    recompressed at a JPEG quality drawn from 60-95 (after the resize, as a platform would).
    """
    if rng.random() < 0.5:
        s = float(rng.uniform(0.5, 1.3))
        interps = (
            [cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC]
            if s < 1
            else [cv2.INTER_LINEAR, cv2.INTER_CUBIC]
        )
        rgb = resize(rgb, s, interps[int(rng.integers(len(interps)))])
    if rng.random() < 0.7:
        rgb = jpeg(rgb, int(rng.integers(60, 96)))
    if rng.random() < 0.5:
        rgb = np.ascontiguousarray(rgb[:, ::-1])
    return rgb


def random_crop(rgb: np.ndarray, rng: np.random.Generator, lo: int, hi: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    c = int(rng.integers(min(lo, h, w), min(hi, h, w) + 1))
    y0 = int(rng.integers(0, h - c + 1))
    x0 = int(rng.integers(0, w - c + 1))
    return rgb[y0 : y0 + c, x0 : x0 + c]


def iter_split(items: list[Item], split: Split) -> Iterator[Item]:
    return (it for it in items if it.split == split)
