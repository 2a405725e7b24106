"""Benchmark the manipulation / synthesis signals and their fusion — issue 6.

    python bench/detect.py            # measure with the committed models/fusion.json
    python bench/detect.py --fit      # refit the fusion in memory on the calib splits, measure it

Only measures: the fusion model is fitted and written by ``python -m training.fusion.fit``
(``src/reclaim/models/fusion.json``); ``--fit`` and the cross-set results call the same fit in
memory and write nothing into ``src/``. Data, splits and the signal cache:
``training/fusion/data.py`` (models were trained on ``train``, the fusion is fitted on
``calib``, and every number printed is on ``test``).

Prints, per data set and per signal (and fused): AUC, TPR at FPR 1 % and 5 %, the false
positive rate at the fused threshold, ms per image; then cross-set results: the fusion fitted on
one set's calib split only, tested on the other set's test split. JSON: bench/results/detect.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from reclaim.detectors.fusion import FEATURES, FusionModel, signal_raws

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # training/ (repository code, not an installed package)

from training.fusion.data import SETS, SHARED, code_key, collect, items, log  # noqa: E402
from training.fusion.fit import MODEL_FILE, auc, fit_fusion  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SIGNALS = FEATURES


# -- statistics ---------------------------------------------------------------------------------


def tpr_at(pos: np.ndarray, neg: np.ndarray, fpr: float) -> float:
    """Share of positives above the lowest threshold that at most ``fpr`` of negatives pass."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    neg = np.sort(neg)[::-1]
    k = int(np.floor(fpr * len(neg)))  # negatives allowed strictly above the threshold
    thr = neg[k] if k < len(neg) else -np.inf
    return float((pos > thr).mean())


def stats(pos: np.ndarray, neg: np.ndarray) -> dict[str, Any]:
    return {
        "pos": len(pos),
        "neg": len(neg),
        "auc": round(auc(pos, neg), 4),
        "tpr@1%": round(tpr_at(pos, neg, 0.01), 4),
        "tpr@5%": round(tpr_at(pos, neg, 0.05), 4),
    }


def signal_value(rec: dict[str, Any], name: str) -> float:
    """An image's value for one signal: its strongest face (or the image); −inf when absent."""
    vals = [s["raw"] for s in rec["signals"] if s["name"] == name]
    return max(vals) if vals else -np.inf


def fused_scores(model: FusionModel, recs: list[dict[str, Any]]) -> np.ndarray:
    return np.array([model.score(signal_raws(r["signals"])) for r in recs])


# -- report -------------------------------------------------------------------------------------


def evaluate(
    model: FusionModel, rows: list[dict[str, Any]], res: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in SETS:
        part = [r for r in rows if r["set"] == s]
        if not part:
            continue
        pos = [res[r["path"]] for r in part if r["label"] == 1]
        neg = [res[r["path"]] for r in part if r["label"] == 0]
        block: dict[str, Any] = {
            "faces_found": round(
                float(np.mean([any(x["name"] == "face_blend" for x in res[r["path"]]["signals"])
                               for r in part])), 4),
        }  # fmt: skip
        for name in SIGNALS:
            p = np.array([signal_value(r, name) for r in pos])
            n = np.array([signal_value(r, name) for r in neg])
            block[name] = stats(p, n) if len(pos) else {"neg": len(neg)}
        fp_, fn_ = fused_scores(model, pos), fused_scores(model, neg)
        fused = stats(fp_, fn_) if len(pos) else {"neg": len(neg)}
        fused["fpr_at_threshold"] = round(float((fn_ >= model.threshold).mean()), 4)
        if len(pos):
            fused["tpr_at_threshold"] = round(float((fp_ >= model.threshold).mean()), 4)
        block["fused"] = fused
        ms: dict[str, list[float]] = {}
        for r in pos + neg:
            for k, v in r["ms"].items():
                ms.setdefault(k, []).append(v)
        block["ms_per_image"] = {k: round(float(np.mean(v)), 1) for k, v in ms.items()}
        out[s] = block
    return out


def print_table(title: str, ev: dict[str, Any], threshold: float) -> None:
    print(f"\n{title}  (fused threshold {threshold:.3f})")
    print(f"{'set':16} {'signal':18} {'pos':>5} {'neg':>5} {'AUC':>7} {'TPR@1%':>7} "
          f"{'TPR@5%':>7} {'FPR@thr':>8} {'TPR@thr':>8}")  # fmt: skip
    for s, block in ev.items():
        for name in (*SIGNALS, "fused"):
            b = block[name]
            print(
                f"{s:16} {name:18} {b.get('pos', 0):5} {b['neg']:5} "
                f"{b.get('auc', float('nan')):7.3f} {b.get('tpr@1%', float('nan')):7.3f} "
                f"{b.get('tpr@5%', float('nan')):7.3f} "
                f"{b.get('fpr_at_threshold', float('nan')):8.3f} "
                f"{b.get('tpr_at_threshold', float('nan')):8.3f}"
            )
        ms = block["ms_per_image"]
        print(f"{'':16} ms/image: " + ", ".join(f"{k} {v:.0f}" for k, v in ms.items())
              + f"; faces found in {block['faces_found']:.0%}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--fit", action="store_true", help="refit the fusion in memory (writes nothing in src/)"
    )
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"shared data not found at {SHARED}")
    rows = items(("calib", "test"))
    res = collect(rows, args.workers)
    calib = [r for r in rows if r["split"] == "calib"]
    test = [r for r in rows if r["split"] == "test"]
    if args.fit or not MODEL_FILE.exists():
        model = fit_fusion(calib, res, SETS)  # in memory: only training/ writes the model
        log("fusion refitted in memory on the calib splits (models/fusion.json not touched)")
    else:
        model = FusionModel.from_dict(json.loads(MODEL_FILE.read_text()))
    ev = evaluate(model, test, res)
    print_table("Test splits, fusion fitted on all calib splits", ev, model.threshold)
    cross: dict[str, Any] = {}
    for a, b in (("stylegan2-ffhq", "yonsei-splice"), ("yonsei-splice", "stylegan2-ffhq")):
        m = fit_fusion(calib, res, [a, "real-color"])
        e = evaluate(m, [r for r in test if r["set"] in (b, "real-color")], res)
        cross[f"fit {a}+real-color calib → test {b}"] = {"threshold": m.threshold, **e}
        print_table(f"Cross-set: fusion fitted on {a} (+ real-color) calib only", e, m.threshold)
    out = {
        "bench": "detect",
        "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "code_key": code_key(),
        "features": list(FEATURES),
        "fusion": model.as_dict(),
        "test": ev,
        "cross_set": cross,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "detect.json").write_text(json.dumps(out, indent=2) + "\n")
    log(f"wrote {RESULTS / 'detect.json'}")


if __name__ == "__main__":
    main()
