"""The face shield's public normalisation: the mean descriptor of many people's faces, none of
them enrolled anywhere, written with the shield's operating threshold to
``src/reclaim/models/shield_population.json``.

    python -m training.shield_population.fit                    # fit the mean, keep the threshold
    python -m training.shield_population.fit --threshold 0.50   # and set the threshold

Faces: ``../shared/data/faces/real-color`` (2,616 colour photos of people unrelated to the face
bench's identities; see ../shared/data/README.md), the largest face of each photo, descriptor v3.
The mean is public: both her reclaim and the platform normalise with it (docs/shield.md). The
threshold is the operating point ``bench/shield.py`` measures (FPR ≤ 0.1 % on its sets with
this mean); it is set here, by hand, from that bench's table.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data" / "faces" / "real-color"
OUT = ROOT / "src" / "reclaim" / "models" / "shield_population.json"


def describe(path: str) -> list[float] | None:
    from reclaim.faces.pipeline import find_faces
    from reclaim_fixtures.faces import load_rgb

    try:
        faces = find_faces(load_rgb(Path(path)))
    except Exception as e:  # a photo the pipeline cannot read is skipped, and said so
        print(f"skip {path}: {e}", file=sys.stderr)
        return None
    return [float(v) for v in faces[0].descriptor] if faces else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=Path, default=SHARED)
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args()
    old = json.loads(OUT.read_text()) if OUT.exists() else {}
    threshold = a.threshold if a.threshold is not None else old.get("threshold")
    if threshold is None:
        sys.exit("no threshold yet: pass --threshold (from bench/shield.py)")
    paths = sorted(str(p) for p in a.faces.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    if not paths:
        sys.exit(f"no photos under {a.faces}")
    with ProcessPoolExecutor(a.workers) as ex:
        got = [d for d in ex.map(describe, paths, chunksize=16) if d is not None]
    mean = np.asarray(got, dtype=np.float64).mean(axis=0)
    out = {
        "what": "face shield population mean (descriptor v3) and operating threshold",
        "fitted_on": f"largest face of {len(got)} of {len(paths)} photos in {a.faces.name}",
        "fitted_at": datetime.now(UTC).strftime("%Y-%m-%d"),
        "threshold": float(threshold),
        "mean": [round(float(v), 7) for v in mean],
    }
    print(f"{len(got)} faces of {len(paths)} photos; |mean| = {np.linalg.norm(mean):.4f}")
    if not a.dry_run:
        OUT.write_text(json.dumps(out, indent=0) + "\n")
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
