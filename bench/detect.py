"""Benchmark (and fit the fusion of) the manipulation / synthesis signals — issue 6.

    python bench/detect.py            # measure with the committed models/fusion.json
    python bench/detect.py --fit      # refit models/fusion.json on the calib splits, then measure

Data (read-only, ``../shared/data``): ``detect/stylegan2-ffhq`` (FFHQ photos vs StyleGAN2 faces),
``detect/yonsei-splice`` (real faces vs Photoshop face-part splices) and ``faces/real-color``
(real photos only: false accusations). Every file goes to the split ``split_of(name)`` gives
(the same split the training scripts use): models were trained on ``train``, the fusion is
fitted on ``calib``, and every number printed is on ``test``.

Each image goes through the product path (``reclaim.media.Media`` decode →
``reclaim.detectors.pixels.image_signals``); per-signal outputs and stage timings are cached in
``/tmp/reclaim-detect-cache`` keyed by the models' and detectors' bytes, so a rerun after a
change recomputes only what changed.

Prints, per data set and per signal (and fused): AUC, TPR at FPR 1 % and 5 %, the false
positive rate at the fused threshold, ms per image; then cross-set results: the fusion fitted on
one set's calib split only, tested on the other set's test split. JSON: bench/results/detect.json.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from reclaim.detectors.base import split_of  # noqa: E402
from reclaim.detectors.fusion import (  # noqa: E402
    FEATURES,
    FusionModel,
    fit_logistic,
    signal_raws,
)

SHARED = ROOT.parent / "shared" / "data"
CACHE = Path("/tmp/reclaim-detect-cache")
RESULTS = ROOT / "bench" / "results"
SIGNALS = FEATURES
#: (set name, folder, label) — label 1 = manipulated or generated.
SETS: dict[str, list[tuple[str, int]]] = {
    "stylegan2-ffhq": [("detect/stylegan2-ffhq/real", 0), ("detect/stylegan2-ffhq/fake", 1)],
    "yonsei-splice": [("detect/yonsei-splice/real", 0), ("detect/yonsei-splice/fake", 1)],
    "real-color": [("faces/real-color", 0)],
}
MAX_FP = 0.02  # false accusations of real photos allowed at the threshold, per real set
#: The threshold is set on calib at half the target: with 100–550 real photos per calib set, a
#: threshold that just meets 2 % there goes over it on fresh photos about half the time (it did:
#: set at 2 % on calib, FFHQ test reached 4.0 %, 4 of 101).
CALIB_FP = 0.01


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def code_key() -> str:
    """Hash of everything that decides a signal's output: models and detector code."""
    h = hashlib.sha256(b"caption-cut-368/384")
    src = ROOT / "src" / "reclaim"
    files = sorted((src / "models").glob("*.onnx")) + sorted((src / "models").glob("synth*"))
    files += [src / "models" / "clip_probe.json", src / "signals" / "clip_probe.py"]
    files += [
        src / "forensics.py",
        src / "signals" / "landmarks.py",
        src / "signals" / "faces.py",
        src / "signals" / "consistency.py",
        src / "signals" / "faceblend.py",
        src / "signals" / "synthetic.py",
        src / "signals" / "maps.py",
        src / "media" / "image.py",
    ]
    for f in files:
        if f.exists():
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def items(splits: Iterable[str]) -> list[dict[str, Any]]:
    want = set(splits)
    out = []
    for set_name, parts in SETS.items():
        for folder, label in parts:
            for p in sorted((SHARED / folder).iterdir()):
                sp = split_of(p.name)
                if sp in want and p.suffix.lower() in (".jpg", ".jpeg", ".png"):
                    out.append({"set": set_name, "path": str(p), "label": label, "split": sp})
    return out


#: Every StyleGAN2 fake of detect/stylegan2-ffhq carries a visible caption ("StyleGAN2 (Karras
#: et al.)") in rows 375–383 of 384: a detector could learn to read it. The bottom 16/384 rows of
#: every image of that set, real and fake, are cut before analysis (as in training).
CAPTION_SET = "detect/stylegan2-ffhq"
KEEP_ROWS = 368 / 384


def _analyse(path: str) -> dict[str, Any]:
    from reclaim.detectors.pixels import DetectorOptions, image_signals
    from reclaim.media import Media

    t0 = time.perf_counter()
    media = Media(Path(path).read_bytes())
    rgb = np.asarray(media.image(max_side=DetectorOptions().max_side), dtype=np.uint8)
    if CAPTION_SET in path:
        rgb = np.ascontiguousarray(rgb[: int(rgb.shape[0] * KEEP_ROWS)])
    timings: dict[str, float] = {"decode": (time.perf_counter() - t0) * 1000.0}
    sigs, _ = image_signals(rgb, DetectorOptions(), timings=timings)
    timings["total"] = (time.perf_counter() - t0) * 1000.0
    return {
        "path": path,
        "signals": [{"name": s.name, "raw": s.raw, "score": s.score} for s in sigs],
        "ms": timings,
        "pixels": int(rgb.shape[0] * rgb.shape[1]),
    }


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


# -- statistics ---------------------------------------------------------------------------------


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score_pos > score_neg) + P(=)/2."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    neg = np.sort(neg)
    lo = np.searchsorted(neg, pos, side="left")
    hi = np.searchsorted(neg, pos, side="right")
    return float((lo + 0.5 * (hi - lo)).sum() / (len(pos) * len(neg)))


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


# -- fusion -------------------------------------------------------------------------------------


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def align_thresholds(
    calibration: dict[str, tuple[float, float]],
    raws: list[dict[str, float]],
    ya: np.ndarray,
    sa: np.ndarray,
    sets: list[str],
    labelled: list[str],
    thr: float,
) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    """Per-signal thresholds under the same false-accusation rule, folded into the intercepts.

    One threshold on every calibrated signal spends the false-alarm budget unevenly: the signal
    whose real photos come closest sets it, and another signal may flag none of its set's reals
    at that level. Starting from the common threshold (feasible), each signal in turn lowers its
    own threshold as far as at most ``CALIB_FP`` of the reals of *each* calib set stay flagged by
    any signal; every order of the signals is tried and the one with the best mean TPR over the
    labelled sets is kept (the common threshold on ties). Each signal's intercept then moves by
    ``logit(thr) − logit(t_s)``, so that the fused score still has the one threshold ``thr``.
    Returns (new calibration, shift per signal)."""
    names = list(calibration)
    model = FusionModel(calibration=calibration, threshold=thr, info={})
    logits = [model.logits(r) for r in raws]  # a signal that did not run is never flagged (-1)
    z = np.array(
        [[1 / (1 + math.exp(-lg[n])) if n in lg else -1.0 for n in names] for lg in logits]
    )
    if z.size == 0 or len(names) < 2:
        return calibration, {n: 0.0 for n in names}

    def flagged(t: np.ndarray) -> np.ndarray:
        return np.asarray((z >= t[None, :]).any(axis=1))

    def objective(t: np.ndarray) -> float:
        f = flagged(t)
        return float(np.mean([f[(sa == s) & (ya == 1)].mean() for s in labelled]))

    base = np.full(len(names), thr)
    best_t, best_obj = base, objective(base)
    for order in itertools.permutations(range(len(names))):
        t = base.copy()
        for j in order:
            others = t.copy()
            others[j] = np.inf
            f = flagged(others)
            lo = -np.inf
            for s in sets:
                m = (sa == s) & (ya == 0)
                budget = int(np.floor(CALIB_FP * m.sum())) - int(f[m].sum())
                free = np.sort(z[m & ~f, j])[::-1]
                if budget < len(free):
                    lo = max(lo, float(free[max(budget, 0)]) + 1e-6)
            t[j] = min(t[j], max(lo, 0.0))
        o = objective(t)
        if o > best_obj + 1e-12:
            best_t, best_obj = t, o
    per = {n: round(float(v), 4) for n, v in zip(names, best_t, strict=True)}
    log(
        f"fusion: per-signal thresholds {per}: mean calib TPR {objective(base):.4f} -> "
        f"{best_obj:.4f}"
    )
    shifts = {n: _logit(thr) - _logit(float(best_t[i])) for i, n in enumerate(names)}
    new = {n: (a, b + shifts[n]) for n, (a, b) in calibration.items()}
    return new, shifts


def fit_fusion(
    rows: list[dict[str, Any]], res: dict[str, dict[str, Any]], sets: Iterable[str]
) -> FusionModel:
    """Per-signal logistic calibration on the rows of ``sets`` (each set's reals and fakes weigh
    equally; a set with only reals weighs like the other sets' reals), fused by the maximum over
    the subset of signals with the best mean calib AUC; threshold: at most CALIB_FP of the reals of
    *each* set reach it."""
    sets = list(sets)
    raws, y, w, set_of = [], [], [], []
    for s in sets:
        for label in (0, 1):
            part = [r for r in rows if r["set"] == s and r["label"] == label]
            for r in part:
                raws.append(signal_raws(res[r["path"]]["signals"]))
                y.append(label)
                w.append(1.0 / len(part))
                set_of.append(s)
    ya, wa, sa = np.array(y, dtype=np.float64), np.array(w), np.array(set_of)
    wa[ya == 1] *= wa[ya == 0].sum() / max(wa[ya == 1].sum(), 1e-12)  # equal class weight
    calibration: dict[str, tuple[float, float]] = {}
    for name in FEATURES:
        have = np.array([name in r for r in raws])
        if have.sum() < 20 or len(set(ya[have])) < 2:
            continue
        x = np.array([r[name] for r, h in zip(raws, have, strict=True) if h])[:, None]
        coef, intercept = fit_logistic(x, ya[have], wa[have])
        if coef[0] <= 0:  # a signal that goes the wrong way on calib says nothing: left out
            log(f"fusion: {name} left out (calibration slope {coef[0]:.3f} <= 0)")
            continue
        calibration[name] = (float(coef[0]), float(intercept))

    # Which signals take part: the subset with the best mean calib AUC over the labelled sets
    # (fewer signals on ties). A weak signal in a maximum only adds false alarms.
    labelled = [s for s in sets if (ya[sa == s] == 1).any()]

    def mean_auc(names: tuple[str, ...]) -> float:
        m = FusionModel(calibration={n: calibration[n] for n in names}, threshold=1.0, info={})
        f = np.array([m.score(r) for r in raws])
        return float(
            np.mean([auc(f[(sa == s) & (ya == 1)], f[(sa == s) & (ya == 0)]) for s in labelled])
        )

    candidates = {
        names: mean_auc(names)
        for k in range(1, len(calibration) + 1)
        for names in itertools.combinations(calibration, k)
    }
    chosen = max(candidates, key=lambda c: (round(candidates[c], 4), -len(c)))
    log(f"fusion: signals {', '.join(chosen)} (mean calib AUC {candidates[chosen]:.4f})")
    calibration = {n: calibration[n] for n in chosen}
    model = FusionModel(calibration=calibration, threshold=1.0, info={})
    fused = np.array([model.score(r) for r in raws])
    thr = 0.0
    for s in sets:
        reals = np.sort(fused[(ya == 0) & (sa == s)])
        if len(reals):
            k = int(np.ceil((1.0 - CALIB_FP) * len(reals)))  # at most CALIB_FP at or above
            thr = max(thr, float(reals[min(k, len(reals)) - 1]) + 1e-6)
    thr = round(thr, 6)
    calibration, shifts = align_thresholds(calibration, raws, ya, sa, sets, labelled, thr)
    return FusionModel(
        calibration=calibration,
        threshold=thr,
        info={
            "fitted_on": [f"{s} calib" for s in sets],
            "threshold_alignment_logit_shift": shifts,
            "selected_by": "best mean calib AUC over the labelled sets, of every signal subset",
            "subsets_mean_calib_auc": {
                "+".join(c): round(v, 4)
                for c, v in sorted(candidates.items(), key=lambda kv: -kv[1])
            },
            "rows": len(raws),
            "max_false_positive_rate_per_real_set": MAX_FP,
            "threshold_false_positive_rate_per_calib_real_set": CALIB_FP,
            "fitted_by": "python bench/detect.py --fit",
            "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )


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
    ap.add_argument("--fit", action="store_true", help="refit src/reclaim/models/fusion.json")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"shared data not found at {SHARED}")
    rows = items(("calib", "test"))
    res = collect(rows, args.workers)
    calib = [r for r in rows if r["split"] == "calib"]
    test = [r for r in rows if r["split"] == "test"]
    model_file = ROOT / "src" / "reclaim" / "models" / "fusion.json"
    if args.fit or not model_file.exists():
        model = fit_fusion(calib, res, SETS)
        model_file.write_text(json.dumps(model.as_dict(), indent=2) + "\n")
        log(f"wrote {model_file}")
    else:
        model = FusionModel.from_dict(json.loads(model_file.read_text()))
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
