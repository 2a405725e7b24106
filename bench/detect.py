"""Benchmark the manipulation / synthesis signals and their fusion — issues 6 and 21.

    python bench/detect.py            # measure with the committed models/fusion.json
    python bench/detect.py --fit      # refit the fusion in memory on the calib splits, measure it
    python bench/detect.py --conditions telegram   # diffusion-dev: the Telegram condition only

Only measures: the fusion model is fitted and written by ``python -m training.fusion.fit``
(``src/reclaim/models/fusion.json``); ``--fit`` and the cross-set results call the same fit in
memory and write nothing into ``src/``. Data, splits and the signal cache:
``training/fusion/data.py`` (models were trained on ``train``, the fusion is fitted on
``calib``, and every number printed is on ``test``).

Prints, per data set and per signal (and fused): AUC, TPR at FPR 1 % and 5 %, the false
positive rate at the fused threshold, ms per image; then cross-set results: the fusion fitted on
one set's calib split only, tested on the other set's test split.

Diffusion (issue 21), ``detect/diffusion-dev``, pixels only: every image re-encoded as Telegram
passes photos on (longer side ≤ 1280 px, JPEG q87, no metadata; ``training/diffusion/data.py``),
and under the robustness conditions (JPEG q75 / q95 instead, halved before sending, sent as a
screenshot). Per family (``LDM``, ``GLID-3``, ``Disco``, ``SD``, ``GLIDE-inpaint``) and
overall, against the set's real photos: AUC, TPR at 1 % and 5 % FPR for each signal and the
fused score, the fused verdict's TPR and the share of "cannot tell", and its false accusations
(FPR at the threshold) per real set (``ImageNet``, ``COCO``; the face sets' are in the test
table above). The signals trained on diffusion-dev (``models/diffusion_probe.json``) are
measured **leave-one-family-out**: a family's images are scored by models fitted without that
family and without the measured fold (prompt), as ``training/diffusion/fit.py`` cross-fits them;
the fused score reads those raws. Every other signal never saw diffusion-dev. Reals of the calib
split (where the fusion's threshold is fitted) are left out of the FPR. Numbers from
``--before`` (default ``bench/results/detect_before_issue21.json``, this bench run on the models
before issue 21) are printed beside.

JSON: bench/results/detect.json (``--out``).
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

from training.diffusion import data as DD  # noqa: E402
from training.diffusion import signals as DS  # noqa: E402
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
        fused: dict[str, Any] = stats(fp_, fn_) if len(pos) else {"neg": len(neg)}
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


# -- diffusion-dev (issue 21) -------------------------------------------------------------------


def _dev_raws(
    rec: dict[str, Any], lofo: list[dict[str, Any]] | None
) -> tuple[dict[str, float], dict[str, Any]]:
    """An image's fused-signal raws and its record, the leave-one-family-out signal records
    (``lofo``) in place of the shipped models' own."""
    names = {s["name"] for s in lofo or []}
    sigs = [s for s in rec["signals"] if s["name"] not in names] + list(lofo or [])
    return signal_raws(sigs), {**rec, "signals": sigs}


def unsure(model: FusionModel, rec: dict[str, Any]) -> bool:
    """Would ``reclaim check`` answer "cannot tell" for this record (``decide.cannot_tell``)?"""
    from reclaim.detectors.decide import cannot_tell

    d = model.decide(signal_raws(rec["signals"]))
    fused = None if d is None else (d[0], d[0] >= model.threshold, d[1])
    return cannot_tell(rec["signals"], fused) is not None


def lofo_raws(
    dev: list[Any], conditions: list[str]
) -> dict[str, dict[str, dict[str, list[dict[str, Any]]]]] | None:
    """condition -> family (or "all") -> item key -> the records of the signals trained on
    diffusion-dev, cross-fitted leave-one-family-out (``training/diffusion/fit.py``); None when
    no such signal is shipped (the models before issue 21)."""
    from training.diffusion import fit as DF

    if not DF.MODEL_PATH.exists():
        return None
    return {c: DF.lofo_raws(dev, c) for c in conditions}


def dev_evaluate(
    model: FusionModel,
    dev: list[Any],
    res: dict[str, dict[str, Any]],
    lofo: dict[str, dict[str, list[dict[str, Any]]]] | None,
) -> dict[str, Any]:
    """Per family and overall (see the module docs). ``lofo``: family (or "all") -> item key ->
    the leave-one-family-out records of the signals trained on diffusion-dev (None: no such
    signal). A family's fakes and the reals are read through that family's models; "overall"
    reads each fake through its own family's models and the reals through "all"."""
    reals = [i for i in dev if i.label == 0 and i.split != "calib"]
    out: dict[str, Any] = {}
    for fam in (*DD.DIFFUSION_FAMILIES, "overall"):
        fakes = [i for i in dev if i.label == 1 and (fam == "overall" or i.family == fam)]
        if not fakes:
            continue

        def recs(part: list[Any], fam: str = fam) -> list[dict[str, Any]]:
            rows = []
            for i in part:
                who = i.family if i.label == 1 else (fam if fam != "overall" else "all")
                lf = None if lofo is None else lofo.get(who, {}).get(i.key)
                rows.append(_dev_raws(res[i.key], lf)[1])
            return rows

        pos, neg = recs(fakes), recs(reals)
        block: dict[str, Any] = {}
        for name in SIGNALS:
            p = np.array([signal_value(r, name) for r in pos])
            n = np.array([signal_value(r, name) for r in neg])
            if np.isfinite(p).any() or np.isfinite(n).any():
                block[name] = stats(p, n)
        fp_, fn_ = fused_scores(model, pos), fused_scores(model, neg)
        fused = stats(fp_, fn_)
        fused["tpr_at_threshold"] = round(float((fp_ >= model.threshold).mean()), 4)
        unsure_p = [unsure(model, r) for r in pos]
        unsure_n = [unsure(model, r) for r in neg]
        fused["cannot_tell_fakes"] = round(float(np.mean(unsure_p)), 4)
        fused["cannot_tell_reals"] = round(float(np.mean(unsure_n)), 4)
        fpr: dict[str, Any] = {}
        for rs in DD.DEV_REALS:
            m = np.array([i.family == rs for i in reals])
            if m.sum():
                fpr[rs] = {"n": int(m.sum()),
                           "fpr": round(float((fn_[m] >= model.threshold).mean()), 4)}  # fmt: skip
        fused["fpr_at_threshold_per_real_set"] = fpr
        block["fused"] = fused
        out[fam] = block
    return out


def _fmt(v: Any, before: Any = None) -> str:
    if v is None:
        return f"{'':>13}"
    cell = f"{float(v):.3f}"
    if before is not None:
        cell += f" ({float(before):.2f})"
    else:
        cell += " " * 7
    return f"{cell:>13}"


def print_dev(title: str, ev: dict[str, Any], before: dict[str, Any] | None, thr: float) -> None:
    print(f"\n{title}  (fused threshold {thr:.3f}; in brackets: before issue 21)")
    print(f"{'family':14} {'signal':18} {'pos':>4} {'neg':>4} {'AUC':>13} {'TPR@1%':>13} "
          f"{'TPR@5%':>13} {'TPR@thr':>13}")  # fmt: skip
    for fam, block in ev.items():
        bb = (before or {}).get(fam, {})
        for name, b in block.items():
            o = bb.get(name, {})
            print(f"{fam:14} {name:18} {b['pos']:4} {b['neg']:4} "
                  f"{_fmt(b['auc'], o.get('auc'))} {_fmt(b['tpr@1%'], o.get('tpr@1%'))} "
                  f"{_fmt(b['tpr@5%'], o.get('tpr@5%'))} "
                  f"{_fmt(b.get('tpr_at_threshold'), o.get('tpr_at_threshold'))}")  # fmt: skip
        f, fo = block["fused"], bb.get("fused", {})
        per = ", ".join(
            f"{rs} {v['fpr']:.3f} of {v['n']}"
            + (f" ({fo['fpr_at_threshold_per_real_set'][rs]['fpr']:.3f})"
               if rs in fo.get("fpr_at_threshold_per_real_set", {}) else "")
            for rs, v in f["fpr_at_threshold_per_real_set"].items()
        )  # fmt: skip
        print(
            f"{'':14} fused FPR at threshold: {per}; cannot tell: "
            f"{f['cannot_tell_fakes']:.1%} of fakes, {f['cannot_tell_reals']:.1%} of reals"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--fit", action="store_true", help="refit the fusion in memory (writes nothing in src/)"
    )
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--conditions", nargs="*", default=list(DD.CONDITIONS),
                    help="diffusion-dev re-encodings measured (telegram first)")  # fmt: skip
    ap.add_argument("--before", type=Path, default=RESULTS / "detect_before_issue21.json")
    ap.add_argument("--out", type=Path, default=RESULTS / "detect.json")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"shared data not found at {SHARED}")
    rows = items(("calib", "test"))
    res = collect(rows, args.workers)
    calib = [r for r in rows if r["split"] == "calib"]
    test = [r for r in rows if r["split"] == "test"]
    dev = DD.dev_items()
    dev_res = {c: DS.collect(dev, c, args.workers) for c in args.conditions}
    lofo = lofo_raws(dev, args.conditions)
    if args.fit or not MODEL_FILE.exists():
        from training.fusion.fit import DEV_SET, fusion_rows

        frows, fres = fusion_rows(calib, res, dev, dev_res.get("telegram"), lofo)
        model = fit_fusion(frows, fres, [*SETS, DEV_SET])
        log("fusion refitted in memory on the calib splits (models/fusion.json not touched)")
    else:
        model = FusionModel.from_dict(json.loads(MODEL_FILE.read_text()))
    before: dict[str, Any] = {}
    if args.before.exists() and args.before.resolve() != args.out.resolve():
        before = json.loads(args.before.read_text())
    ev = evaluate(model, test, res)
    print_table("Test splits, fusion fitted on all calib splits", ev, model.threshold)
    cross: dict[str, Any] = {}
    for a, b in (("stylegan2-ffhq", "yonsei-splice"), ("yonsei-splice", "stylegan2-ffhq")):
        m = fit_fusion(calib, res, [a, "real-color"])
        e = evaluate(m, [r for r in test if r["set"] in (b, "real-color")], res)
        cross[f"fit {a}+real-color calib → test {b}"] = {"threshold": m.threshold, **e}
        print_table(f"Cross-set: fusion fitted on {a} (+ real-color) calib only", e, m.threshold)
    diffusion: dict[str, Any] = {}
    for cond in args.conditions:
        diffusion[cond] = dev_evaluate(model, dev, dev_res[cond], (lofo or {}).get(cond))
        print_dev(
            f"diffusion-dev, {cond} ({DD.CONDITIONS[cond]}), leave-one-family-out",
            diffusion[cond],
            before.get("diffusion", {}).get(cond),
            model.threshold,
        )
    out = {
        "bench": "detect",
        "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "code_key": code_key(),
        "features": list(FEATURES),
        "fusion": model.as_dict(),
        "test": ev,
        "cross_set": cross,
        "diffusion": diffusion,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
