"""Write ``src/reclaim/models/inpaint_region.json``: where the ``inpaint_region`` raw output
(the strongest region's mean |z|) falls among real photos.

    python -m training.inpaint.fit            # needs ../shared/data; ~15 s on 2 busy cores

The real photos of ``diffusion-dev`` in the ``train`` and ``calib`` splits, each re-encoded the
way Telegram does (``training.inpaint.data.telegram``); the ``test`` split is left for
``bench/inpaint.py``. Nothing is learned but these 101 quantiles: the detector has no weights.
Deterministic.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from reclaim.detectors.inpaint import MODEL_PATH, region_map
from training.inpaint.data import DEV, TELEGRAM_QUALITY, dev_images, iter_loaded


def fit(root: Path = DEV) -> dict[str, object]:
    reals = [i for i in dev_images(root) if i.label == "real" and i.split != "test"]
    raws = [region_map(rgb).strength for _, rgb in iter_loaded(reals, root)]
    q = np.quantile(np.asarray(raws, dtype=np.float64), np.linspace(0.0, 1.0, 101))
    groups: dict[str, int] = {}
    for r in reals:
        groups[r.group] = groups.get(r.group, 0) + 1
    return {
        "version": 1,
        "fitted_by": "python -m training.inpaint.fit",
        "data": "diffusion-dev real photos, train+calib splits, re-encoded JPEG q"
        f"{TELEGRAM_QUALITY} at <=1280 px",
        "real_photos": len(reals),
        "real_groups": groups,
        "share_without_region": round(float(np.mean(np.asarray(raws) == 0.0)), 4),
        "real_raw_quantiles": [round(float(v), 4) for v in q],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=MODEL_PATH)
    args = ap.parse_args()
    doc = fit()
    args.out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(
        f"wrote {args.out}: {doc['real_photos']} real photos, "
        f"{doc['share_without_region']:.0%} without a region"
    )


if __name__ == "__main__":
    main()
