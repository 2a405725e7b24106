"""Benchmark: images/s of `reclaim scan` (hashes only) vs a naive single-process loop.

Generates (once, cached) a corpus of one-megapixel JPEGs, then times, on the same files:
  1. naive: one process, for each file: read, hashlib sha256 + md5, Pillow decode, pdqhash;
  2. `reclaim scan` into a fresh case (the real CLI in a subprocess, default workers);
  3. `reclaim scan -j 1` (one worker) to separate per-core speed from parallelism.
Prints a table and writes bench/results/scan_hashes.json.

    python bench/scan_hashes.py [--n 2000] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pdqhash
from PIL import Image

HERE = Path(__file__).resolve().parent
SIZE = (1280, 800)  # 1.02 megapixels


def _make(args: tuple[Path, int]) -> None:
    from reclaim.sample import pattern

    path, seed = args
    if path.exists():
        return
    b = io.BytesIO()
    pattern(seed, SIZE).save(b, "JPEG", quality=85)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(b.getvalue())
    tmp.replace(path)


def make_corpus(root: Path, n: int) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = [root / f"{i // 500:02d}" / f"img_{i:05d}.jpg" for i in range(n)]
    for p in paths:
        p.parent.mkdir(exist_ok=True)
    with ProcessPoolExecutor() as ex:
        list(ex.map(_make, [(p, i) for i, p in enumerate(paths)], chunksize=16))
    return paths


def naive(paths: list[Path]) -> float:
    t0 = time.perf_counter()
    for p in paths:
        data = p.read_bytes()
        hashlib.sha256(data).hexdigest()
        hashlib.md5(data).hexdigest()
        with Image.open(io.BytesIO(data)) as im:
            pdqhash.compute(np.asarray(im.convert("RGB")))
    return time.perf_counter() - t0


def reclaim_scan(corpus: Path, workers: int | None) -> tuple[float, dict[str, int]]:
    exe = shutil.which("reclaim") or str(Path(sys.executable).parent / "reclaim")
    with tempfile.TemporaryDirectory() as tmp:
        case = Path(tmp) / "case"
        cmd = [exe, "scan", str(corpus), "--case", str(case)]
        if workers is not None:
            cmd += ["--workers", str(workers)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        dt = time.perf_counter() - t0
        st = subprocess.run(
            [exe, "status", "--case", str(case), "--json"], check=True, capture_output=True
        )
        counts = json.loads(st.stdout)["counts"]
    return dt, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument(
        "--corpus", type=Path, default=Path(tempfile.gettempdir()) / "reclaim-bench-1mp"
    )
    args = ap.parse_args()

    t0 = time.perf_counter()
    paths = make_corpus(args.corpus, args.n)
    gen_s = time.perf_counter() - t0
    mb = sum(p.stat().st_size for p in paths) / 1e6
    # Warm the page cache so every contestant reads from memory alike.
    for p in paths:
        p.read_bytes()

    naive_s = naive(paths)
    scan_s, counts = reclaim_scan(args.corpus, None)
    scan1_s, counts1 = reclaim_scan(args.corpus, 1)
    if counts["photos"] != len(paths) or counts1["photos"] != len(paths):
        raise SystemExit(f"scan did not hash every image: {counts}, {counts1}")

    rows = [
        ("naive loop (1 process, full-size PDQ)", naive_s),
        ("reclaim scan (default workers)", scan_s),
        ("reclaim scan --workers 1", scan1_s),
    ]
    cores = len(os.sched_getaffinity(0))
    print(
        f"\n{len(paths)} JPEGs, {SIZE[0]}x{SIZE[1]} ({mb:.0f} MB), {cores} cores, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )
    print(f"{'contestant':42s} {'seconds':>8s} {'images/s':>9s} {'vs naive':>9s}")
    for name, s in rows:
        print(f"{name:42s} {s:8.2f} {len(paths) / s:9.1f} {naive_s / s:8.2f}x")
    result = {
        "n_images": len(paths),
        "image_size": list(SIZE),
        "corpus_mb": round(mb, 1),
        "cores": cores,
        "corpus_generation_s": round(gen_s, 1),
        "naive_s": round(naive_s, 3),
        "scan_s": round(scan_s, 3),
        "scan_workers1_s": round(scan1_s, 3),
        "naive_images_per_s": round(len(paths) / naive_s, 1),
        "scan_images_per_s": round(len(paths) / scan_s, 1),
        "scan_workers1_images_per_s": round(len(paths) / scan1_s, 1),
        "speedup_vs_naive": round(naive_s / scan_s, 2),
        "targets": {"images_per_s": 200, "speedup_vs_naive": 2.0},
    }
    out = HERE / "results" / "scan_hashes.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
