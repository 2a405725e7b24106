"""Every image's pixel signals, for fitting the fusion (``fit.py``) and measuring it
(``bench/detect.py``).

Data (read-only, ``../shared/data``): ``detect/stylegan2-ffhq`` (FFHQ photos vs StyleGAN2 faces),
``detect/yonsei-splice`` (real faces vs Photoshop face-part splices) and ``faces/real-color``
(real photos only: false accusations). Every file goes to the split ``split_of(name)`` gives
(the same split the training scripts use): models were trained on ``train``, the fusion is
fitted on ``calib``, and the bench reports on ``test``.

Each image goes through the product path (``reclaim.media.Media`` decode →
``reclaim.detectors.check.image_signals``); per-signal outputs and stage timings are cached in
``/tmp/reclaim-detect-cache`` keyed by the models' and detectors' bytes, so a rerun after a
change recomputes only what changed.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from reclaim.detectors.base import split_of

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
CACHE = Path("/tmp/reclaim-detect-cache")
#: (set name, folder, label) — label 1 = manipulated or generated.
SETS: dict[str, list[tuple[str, int]]] = {
    "stylegan2-ffhq": [("detect/stylegan2-ffhq/real", 0), ("detect/stylegan2-ffhq/fake", 1)],
    "yonsei-splice": [("detect/yonsei-splice/real", 0), ("detect/yonsei-splice/fake", 1)],
    "real-color": [("faces/real-color", 0)],
}
#: Every StyleGAN2 fake of detect/stylegan2-ffhq carries a visible caption ("StyleGAN2 (Karras
#: et al.)") in rows 375–383 of 384: a detector could learn to read it. The bottom 16/384 rows of
#: every image of that set, real and fake, are cut before analysis (as in training).
CAPTION_SET = "detect/stylegan2-ffhq"
KEEP_ROWS = 368 / 384


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def code_key(diffusion: bool = True) -> str:
    """Hash of everything that decides a signal's output: models and detector code
    (``diffusion=False``: of every signal but ``clip_diffusion``)."""
    h = hashlib.sha256(b"caption-cut-368/384" + (b"" if diffusion else b"no-clip-diffusion"))
    src = ROOT / "src" / "reclaim"
    files = sorted((src / "models").glob("*.onnx")) + sorted((src / "models").glob("synth*"))
    files += [src / "models" / "clip_probe.json", src / "detectors" / "clip_probe.py"]
    files += [src / "models" / "consistency.json", src / "models" / "diffusion_probe.json"]
    files += [
        src / "detectors" / "check.py",
        src / "detectors" / "decide.py",
        src / "detectors" / "record.py",
        src / "faces" / "landmarks.py",
        src / "faces" / "pipeline.py",
        src / "faces" / "detect.py",
        src / "faces" / "describe.py",
        src / "faces" / "models.py",
        src / "faces" / "resnet.py",
        src / "detectors" / "consistency.py",
        src / "detectors" / "faceblend.py",
        src / "detectors" / "synthetic.py",
        src / "detectors" / "diffusion.py",
        src / "detectors" / "maps.py",
        src / "media" / "image.py",
    ]
    if not diffusion:
        files = [f for f in files if not f.name.startswith("diffusion")]
    for f in files:
        if f.exists():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def items(splits: Iterable[str]) -> list[dict[str, Any]]:
    """Every image of ``SETS`` in ``splits``: set, path, label (1 = fake) and split."""
    want = set(splits)
    out = []
    for set_name, parts in SETS.items():
        for folder, label in parts:
            for p in sorted((SHARED / folder).iterdir()):
                sp = split_of(p.name)
                if sp in want and p.suffix.lower() in (".jpg", ".jpeg", ".png"):
                    out.append({"set": set_name, "path": str(p), "label": label, "split": sp})
    return out


def _analyse(path: str) -> dict[str, Any]:
    from reclaim.detectors.check import DetectorOptions, image_signals
    from reclaim.detectors.diffusion import jpeg_quality
    from reclaim.media import Media

    t0 = time.perf_counter()
    data = Path(path).read_bytes()
    media = Media(data)
    rgb = np.asarray(media.image(max_side=DetectorOptions().max_side), dtype=np.uint8)
    if CAPTION_SET in path:
        rgb = np.ascontiguousarray(rgb[: int(rgb.shape[0] * KEEP_ROWS)])
    timings: dict[str, float] = {"decode": (time.perf_counter() - t0) * 1000.0}
    sigs, _ = image_signals(
        rgb, DetectorOptions(), timings=timings, jpeg_quality=jpeg_quality(data)
    )
    timings["total"] = (time.perf_counter() - t0) * 1000.0
    return {
        "path": path,
        "signals": [signal_record(s) for s in sigs],
        "ms": timings,
        "pixels": int(rgb.shape[0] * rgb.shape[1]),
        "size": [int(rgb.shape[1]), int(rgb.shape[0])],  # width, height
    }


#: Details kept in the cached records (what ``decide.cannot_tell`` reads).
KEPT_DETAILS = ("views", "flagged", "disagree", "too_small", "too_compressed", "jpeg_quality")


def signal_record(s: Any) -> dict[str, Any]:
    """A signal as the cache keeps it: name, raw, score and the details ``cannot_tell`` reads."""
    det = {k: s.details[k] for k in KEPT_DETAILS if k in s.details}
    return {"name": s.name, "raw": s.raw, "score": s.score, "details": det}


def collect(rows: list[dict[str, Any]], workers: int) -> dict[str, dict[str, Any]]:
    """Signals of every row's image, from the cache or computed (in ``workers`` processes)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    cache_file = CACHE / f"{code_key()}.jsonl"
    done: dict[str, dict[str, Any]] = {}
    if cache_file.exists():
        for line in cache_file.read_text().splitlines():
            r = json.loads(line)
            done[r["path"]] = r
    todo = [r["path"] for r in rows if r["path"] not in done]
    log(f"{len(rows) - len(todo)} cached, {len(todo)} to analyse ({cache_file.name})")
    if todo:
        t0 = time.monotonic()
        with open(cache_file, "a") as f, ProcessPoolExecutor(max_workers=workers) as pool:
            for n, r in enumerate(pool.map(_analyse, todo, chunksize=8), 1):
                done[r["path"]] = r
                f.write(json.dumps(r) + "\n")
                if n % 200 == 0:
                    el = time.monotonic() - t0
                    log(f"  {n}/{len(todo)}  {n / el:.1f} img/s")
    return done
