"""Data for the face-blend detector: landmark cache, self-blended images, training pairs.

Self-blended images (Shiohara & Yamasaki, CVPR 2022): a pseudo-fake is made from ONE real
face by blending a colour/quality/geometry-jittered copy of itself into itself inside a
landmark mask. Nothing here generates faces: every pixel comes from the real photo.

* ``face_set(name)``: the images of a shared data set with the largest face's box and 68
  landmarks (``reclaim.faces.landmarks.face_regions``), computed once and cached under
  ``$FACEBLEND_CACHE`` (default ``/tmp/faceblend_cache``) as npz.
* ``self_blend(img, points, rng)``: one pseudo-fake and its soft blend mask.
* ``make_pair(img, points, rng)``: (real crop, self-blended crop, boundary map), both crops
  through the same generic augmentations (``augment_views``: flip, tight crop, rescale,
  global colour, JPEG 60–95, crop jitter) and the same input function inference uses
  (``reclaim.detectors.faceblend.face_crop``: RGB crop + landmark-hull channel).
* ``make_single(img, points, rng)``: one labelled photo through the same augmentations.

Run ``python -m training.faceblend.data`` to fill the landmark cache (≈3 min on one core).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from reclaim.detectors.base import split_of
from reclaim.detectors.faceblend import MAP_SIZE, crop_face, crop_params, face_crop

DATA = Path(
    os.environ.get("RECLAIM_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)
CACHE = Path(os.environ.get("FACEBLEND_CACHE", "/tmp/faceblend_cache"))

#: name -> (folder under shared/data, label 1 = manipulated / generated)
SETS: dict[str, tuple[str, int]] = {
    "real-color": ("faces/real-color", 0),
    "lfw-gray": ("faces/lfw-gray", 0),
    "yonsei-real": ("detect/yonsei-splice/real", 0),
    "yonsei-fake": ("detect/yonsei-splice/fake", 1),
    "sg2-real": ("detect/stylegan2-ffhq/real", 0),
    "sg2-fake": ("detect/stylegan2-ffhq/fake", 1),
}

# Landmark index groups of dlib's 68-point model.
JAW = list(range(0, 17))
BROW_R, BROW_L = list(range(17, 22)), list(range(22, 27))
NOSE = list(range(27, 36))
EYE_R, EYE_L = list(range(36, 42)), list(range(42, 48))
MOUTH = list(range(48, 68))


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


@dataclass
class FaceSet:
    name: str
    paths: list[Path]
    found: np.ndarray  # (N,) bool: a face was found
    boxes: np.ndarray  # (N, 4) int32
    points: np.ndarray  # (N, 68, 2) float32
    label: int

    def split_mask(self, split: str) -> np.ndarray:
        return np.array([split_of(p.name) == split for p in self.paths], dtype=bool)


def _files(folder: Path) -> list[Path]:
    exts = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in exts)


def face_set(name: str, *, verbose: bool = True) -> FaceSet:
    """The images of a data set with their largest face's landmarks (cached)."""
    from reclaim.faces.landmarks import face_regions

    folder, label = SETS[name]
    paths = _files(DATA / folder)
    if not paths:
        raise FileNotFoundError(f"no images under {DATA / folder}")
    cache = CACHE / f"{name}.npz"
    rel = np.array([str(p.relative_to(DATA)) for p in paths])
    if cache.is_file():
        z = np.load(cache)
        if z["rel"].shape == rel.shape and bool((z["rel"] == rel).all()):
            return FaceSet(name, paths, z["found"], z["boxes"], z["points"], label)
    found = np.zeros(len(paths), bool)
    boxes = np.zeros((len(paths), 4), np.int32)
    points = np.zeros((len(paths), 68, 2), np.float32)
    t0 = time.time()
    for i, p in enumerate(paths):
        regs = face_regions(load_rgb(p))
        if regs:
            found[i] = True
            boxes[i] = regs[0].box
            points[i] = regs[0].points
        if verbose and (i + 1) % 250 == 0:
            print(f"  {name}: {i + 1}/{len(paths)} ({time.time() - t0:.0f} s)", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, rel=rel, found=found, boxes=boxes, points=points)
    if verbose:
        print(f"{name}: faces in {found.sum()}/{len(paths)} images ({time.time() - t0:.0f} s)")
    return FaceSet(name, paths, found, boxes, points, label)


def near_duplicate_groups(paths: list[Path], max_bits: int = 12) -> np.ndarray:
    """Group id per image: images whose 16×16 mean-hash differ by ≤ max_bits share a group.

    real-color joins two face-mask data sets that share many photos under different names
    (≈30 % are near-duplicates): training drops the train images that have a twin in calib or
    test, so that the held-out numbers are not inflated by memorised photos.
    """
    bits = []
    for p in paths:
        with Image.open(p) as im:
            a = np.asarray(im.convert("L").resize((16, 16), Image.Resampling.BILINEAR), np.float32)
        bits.append((a > a.mean()).ravel())
    b = np.array(bits, dtype=np.uint8)
    n = len(paths)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    for i in range(n):
        d = (b[i + 1 :] != b[i]).sum(1)
        for j in np.nonzero(d <= max_bits)[0] + i + 1:
            ri, rj = find(i), find(int(j))
            if ri != rj:
                parent[rj] = ri
    return np.array([find(i) for i in range(n)])


def leak_free_train(fs: FaceSet) -> np.ndarray:
    """Boolean mask of train-split images with a face and no near-duplicate outside train."""
    cache = CACHE / f"{fs.name}.groups.npy"
    if cache.is_file():
        groups = np.load(cache)
    else:
        groups = near_duplicate_groups(fs.paths)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(cache, groups)
    train = fs.split_mask("train")
    held = {int(g) for g, t in zip(groups, train, strict=True) if not t}
    no_twin = np.array([int(g) not in held for g in groups], dtype=bool)
    return train & fs.found & no_twin


# ---------------------------------------------------------------- self-blended images


def _face_width(points: np.ndarray) -> float:
    return float(max(np.ptp(points[:, 0]), np.ptp(points[:, 1]), 8.0))


def _hull(mask: np.ndarray, pts: np.ndarray) -> None:
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(pts).astype(np.int32)), 1.0)


def landmark_mask(points: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A soft blend mask (float32 h×w in [0, 1]) from the landmarks, randomly varied.

    Variants as in the SBI reference code's ``random_get_hull``: the whole face hull, the hull
    extended over the forehead, the inner face (brows to mouth, without the jaw line), or
    face parts (eyes+brows, nose, mouth: a random subset, as part edits do). Then random
    erosion/dilation, an elastic deformation and a Gaussian blur of the edge.
    """
    fw = _face_width(points)
    m = np.zeros((h, w), np.float32)
    kind = rng.choice(4, p=[0.4, 0.15, 0.15, 0.3])
    if kind == 0:
        _hull(m, points)
    elif kind == 1:
        up = points.copy()
        nose_len = float(np.linalg.norm(points[30] - points[27]))
        up[17:27, 1] -= nose_len * rng.uniform(0.3, 0.8)
        _hull(m, np.concatenate([points, up[17:27]]))
    elif kind == 2:
        _hull(m, points[17:68])
    else:
        parts = [BROW_R + EYE_R, BROW_L + EYE_L, NOSE, MOUTH]
        chosen = [p for p in parts if rng.random() < 0.5] or [parts[int(rng.integers(4))]]
        for part in chosen:
            pts = points[part]
            c = pts.mean(0)
            _hull(m, c + (pts - c) * rng.uniform(1.1, 1.6))
    # erode / dilate
    r = rng.random()
    k = max(1, round(fw * rng.uniform(0.02, 0.08)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    if r < 0.3:
        eroded = cv2.erode(m, kernel)
        if eroded.sum() > 0.3 * m.sum():
            m = eroded
    elif r < 0.6:
        m = cv2.dilate(m, kernel)
    # elastic deformation: a smooth random displacement field
    if rng.random() < 0.7:
        g = 5
        amp = fw * rng.uniform(0.01, 0.05)
        dx = cv2.resize(rng.normal(0, amp, (g, g)).astype(np.float32), (w, h), cv2.INTER_CUBIC)
        dy = cv2.resize(rng.normal(0, amp, (g, g)).astype(np.float32), (w, h), cv2.INTER_CUBIC)
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        m = cv2.remap(m, xs + dx, ys + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    # soft edge
    sigma = fw * (rng.uniform(0.005, 0.025) if rng.random() < 0.6 else rng.uniform(0.025, 0.06))
    if sigma > 0.4:
        m = cv2.GaussianBlur(m, (0, 0), sigma)
    return np.clip(m, 0.0, 1.0)


def colour_jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """HSV shift, brightness/contrast and per-channel shift (uint8 RGB → uint8 RGB)."""
    x = img.astype(np.float32)
    if rng.random() < 0.8:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-6, 6)) % 180
        hsv[..., 1] *= rng.uniform(0.75, 1.25)
        hsv[..., 2] *= rng.uniform(0.85, 1.15)
        x = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(
            np.float32
        )
    if rng.random() < 0.7:
        mean = x.mean()
        x = (x - mean) * rng.uniform(0.85, 1.15) + mean + rng.uniform(-18, 18)
    if rng.random() < 0.6:
        x = x + rng.uniform(-14, 14, 3).astype(np.float32)
    return np.clip(x, 0, 255).astype(np.uint8)


def quality_jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of: downscale then upscale (a lower-resolution paste), sharpen, blur."""
    h, w = img.shape[:2]
    r = rng.random()
    if r < 0.5:
        s = rng.uniform(0.3, 0.7)
        small = cv2.resize(img, (max(4, round(w * s)), max(4, round(h * s))), cv2.INTER_AREA)
        interp = cv2.INTER_LINEAR if rng.random() < 0.5 else cv2.INTER_CUBIC
        return cv2.resize(small, (w, h), interpolation=interp)
    if r < 0.8:
        a = rng.uniform(0.3, 0.8)
        blur = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.8, 1.6))
        return cv2.addWeighted(img, 1 + a, blur, -a, 0)
    return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.6, 1.5))


def self_blend(
    img: np.ndarray, points: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(real, pseudo-fake, soft mask before the blend ratio) made from ``img``.

    As in the SBI reference code, the jitter goes either to the source (pasted inside the
    mask) or to the target (everything else); in the second case the jittered image is the
    *real* of the pair, so that real and fake differ only inside the mask.
    """
    h, w = img.shape[:2]
    grey = bool(np.abs(img[..., 0].astype(np.int16) - img[..., 2]).max() < 4)
    mask = landmark_mask(points, h, w, rng)
    jittered = quality_jitter(colour_jitter(img, rng), rng)
    if grey:
        jittered = np.repeat(cv2.cvtColor(jittered, cv2.COLOR_RGB2GRAY)[..., None], 3, 2)
    if rng.random() < 0.5:
        source, target = jittered, img
    else:
        source, target = img, jittered
    # small affine shift/scale of the source (the mask follows it)
    fw = _face_width(points)
    c = points.mean(0)
    s = rng.uniform(0.95, 1.05)
    t = rng.uniform(-0.03, 0.03, 2) * fw
    a = np.array([[s, 0, (1 - s) * c[0] + t[0]], [0, s, (1 - s) * c[1] + t[1]]], np.float32)
    source = cv2.warpAffine(
        source, a, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    mask = cv2.warpAffine(mask, a, (w, h), flags=cv2.INTER_LINEAR)
    ratio = float(rng.choice([0.5, 0.75, 1.0, 1.0, 1.0, 1.0]))
    m3 = (mask * ratio)[..., None]
    fake = source.astype(np.float32) * m3 + target.astype(np.float32) * (1 - m3)
    return target, np.clip(np.round(fake), 0, 255).astype(np.uint8), mask


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    assert ok
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def boundary_map(mask: np.ndarray, params: tuple[float, float, float]) -> np.ndarray:
    """The blend boundary 4·M·(1−M) (Face X-ray) cropped like the face, MAP_SIZE², peak 1."""
    b = 4.0 * mask * (1.0 - mask)
    crop = crop_face(b.astype(np.float32), params, size=MAP_SIZE)
    peak = float(crop.max())
    return (crop / peak).astype(np.float32) if peak > 0.05 else np.zeros_like(crop)


def augment_views(
    views: list[np.ndarray],
    n_photos: int,
    points: np.ndarray,
    rng: np.random.Generator,
    *,
    augment: bool = True,
) -> tuple[list[np.ndarray], np.ndarray, tuple[float, float, float]]:
    """The generic augmentations, the same draw for every view of one photo.

    ``views[:n_photos]`` are uint8 RGB photos (a real and its blend), the rest float maps (the
    blend mask) that follow the geometry only: horizontal flip, a tight crop around the face,
    a smaller re-share, a global colour change, JPEG at quality 60–95, and a jittered crop
    window. Returns (views, landmarks, crop params).
    """
    views = list(views)
    pts = points.astype(np.float32).copy()
    if augment:
        h, w = views[0].shape[:2]
        if rng.random() < 0.5:  # horizontal flip
            views = [v[:, ::-1] for v in views]
            pts[:, 0] = (w - 1) - pts[:, 0]
        if rng.random() < 0.2:  # the photo was cropped tight around the face
            x0, y0 = pts.min(0)
            x1, y1 = pts.max(0)
            e = rng.uniform(0.0, 0.15) * max(x1 - x0, y1 - y0)
            cl, t = max(0, int(x0 - e)), max(0, int(y0 - e * 1.5))
            r, b = min(w, int(np.ceil(x1 + e))), min(h, int(np.ceil(y1 + e)))
            if r - cl >= 16 and b - t >= 16:
                views = [v[t:b, cl:r] for v in views]
                pts = pts - np.array([cl, t], np.float32)
                h, w = b - t, r - cl
        if rng.random() < 0.35:  # the photo was re-shared smaller
            s = rng.uniform(0.45, 0.9)
            size = (max(16, round(w * s)), max(16, round(h * s)))
            views = [
                cv2.resize(np.ascontiguousarray(v), size, interpolation=cv2.INTER_AREA)
                for v in views
            ]
            pts = pts * np.array([size[0] / w, size[1] / h], np.float32)
        if rng.random() < 0.3:  # the same global colour change on every photo view
            alpha, beta = rng.uniform(0.9, 1.1), rng.uniform(-10, 10)
            for k in range(n_photos):
                views[k] = np.clip(views[k].astype(np.float32) * alpha + beta, 0, 255).astype(
                    np.uint8
                )
        if rng.random() < 0.85:
            q = int(rng.integers(60, 96))
            for k in range(n_photos):
                views[k] = jpeg(np.ascontiguousarray(views[k]), q)
    params = crop_params(pts)
    if augment:
        cx, cy, side = params
        params = (
            cx + rng.uniform(-0.05, 0.05) * side,
            cy + rng.uniform(-0.05, 0.05) * side,
            side * rng.uniform(0.92, 1.08),
        )
    return [np.ascontiguousarray(v) for v in views], pts, params


def make_pair(
    img: np.ndarray, points: np.ndarray, rng: np.random.Generator, *, augment: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(real, self-blended, boundary map): crops (128, 128, 4) uint8 (RGB + landmark hull)
    with the same generic augmentations, and the boundary target (32, 32) float32."""
    real, fake, mask = self_blend(img, points, rng)
    (real, fake, mask), pts, params = augment_views(
        [real, fake, mask], 2, points, rng, augment=augment
    )
    return face_crop(real, pts, params), face_crop(fake, pts, params), boundary_map(mask, params)


def make_single(
    img: np.ndarray, points: np.ndarray, rng: np.random.Generator | None, *, augment: bool = True
) -> np.ndarray:
    """One labelled photo (e.g. a yonsei-splice train image) through the generic augmentations."""
    if rng is None:
        rng, augment = np.random.default_rng(0), False
    (view,), pts, params = augment_views([img], 1, points, rng, augment=augment)
    return face_crop(view, pts, params)


if __name__ == "__main__":
    names = sys.argv[1:] or ["real-color", "yonsei-real", "yonsei-fake", "sg2-real", "sg2-fake"]
    for n in names:
        fs = face_set(n)
        print(f"{n}: {int(fs.found.sum())}/{len(fs.paths)} with a face")
        if n == "real-color":
            print(f"  leak-free train images: {int(leak_free_train(fs).sum())}")
