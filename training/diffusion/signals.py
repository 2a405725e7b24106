"""The product's pixel signals (``reclaim.detectors.check.image_signals``) of diffusion-dev's
images under each re-encoding of ``data.CONDITIONS``, cached like ``training/fusion/data.py``
(same cache folder, keyed by the code key and the condition).

Every signal but ``clip_diffusion``: on diffusion-dev, which it was trained on, the bench and
the fusion fit read its leave-one-family-out and out-of-fold raws (``training/diffusion/fit.py``)
instead, so its shipped output is not computed here (nor keyed).

    python -m training.diffusion.signals [--conditions telegram ...] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from training.diffusion import data as D  # noqa: E402
from training.fusion.data import CACHE, code_key, log, signal_record  # noqa: E402


def _analyse(args: tuple[D.Item, str]) -> dict[str, Any]:
    from reclaim.detectors.check import DetectorOptions, image_signals
    from reclaim.detectors.diffusion import jpeg_quality
    from reclaim.media import Media

    item, condition = args
    t0 = time.perf_counter()
    data = D.condition_bytes(item, condition)
    rgb = np.asarray(Media(data).image(max_side=DetectorOptions().max_side), dtype=np.uint8)
    timings: dict[str, float] = {"decode": (time.perf_counter() - t0) * 1000.0}
    sigs, _ = image_signals(
        rgb, DetectorOptions(diffusion=False), timings=timings, jpeg_quality=jpeg_quality(data)
    )
    timings["total"] = (time.perf_counter() - t0) * 1000.0
    return {
        "path": item.key,
        "signals": [signal_record(s) for s in sigs],
        "ms": timings,
        "pixels": int(rgb.shape[0] * rgb.shape[1]),
        "size": [int(rgb.shape[1]), int(rgb.shape[0])],  # width, height
    }


def collect(
    items: list[D.Item], condition: str, workers: int, key: str | None = None
) -> dict[str, dict[str, Any]]:
    """Signals of every item under ``condition``, keyed by ``Item.key``: from the cache or
    computed in ``workers`` processes."""
    CACHE.mkdir(parents=True, exist_ok=True)
    cache_file = CACHE / f"{key or code_key(diffusion=False)}-dev-{condition}.jsonl"
    done: dict[str, dict[str, Any]] = {}
    if cache_file.exists():
        for line in cache_file.read_text().splitlines():
            r = json.loads(line)
            done[r["path"]] = r
    todo = [i for i in items if i.key not in done]
    log(f"diffusion-dev {condition}: {len(items) - len(todo)} cached, {len(todo)} to analyse")
    if todo:
        t0 = time.monotonic()
        with open(cache_file, "a") as f, ProcessPoolExecutor(max_workers=workers) as pool:
            jobs = [(i, condition) for i in todo]
            for n, r in enumerate(pool.map(_analyse, jobs, chunksize=4), 1):
                done[r["path"]] = r
                f.write(json.dumps(r) + "\n")
                f.flush()
                if n % 100 == 0:
                    log(f"  {n}/{len(todo)}  {n / (time.monotonic() - t0):.1f} img/s")
    return done


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--conditions", nargs="*", default=list(D.CONDITIONS))
    args = ap.parse_args(argv)
    items = D.dev_items()
    for cond in args.conditions:
        res = collect(items, cond, args.workers)
        n = np.mean([len(r["signals"]) for r in res.values()])
        log(f"{cond}: {len(res)} images, {n:.1f} signals per image")


if __name__ == "__main__":
    main()
