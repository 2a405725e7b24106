"""Measure an AI-image detector on the shared data (test split), the way the brief asks.

    python -m training.synthetic.evaluate [--json bench/results/synthetic_image.json]

:func:`evaluate` takes any ``score(rgb) -> float`` (higher = more likely generated; the shipped
model's raw logit by default) and returns a JSON-able dict:

* ``stylegan2-ffhq``: test split (FFHQ reals vs StyleGAN2 fakes), caption rows cut, under each
  condition of ``data.CONDITIONS`` (as stored, recompressed JPEG q75, resized 0.5×): AUC, TPR at
  FPR 1 % and 5 %, and at ``threshold`` (when given) the TPR and the FFHQ false-positive rate;
  plus ``uncut`` (the caption left visible: how much a detector reads it);
* ``real_photos``: at ``threshold``, the false-positive rate and score percentiles on real
  photos from other sources: ``faces/real-color`` (test split), ``detect/yonsei-splice/real``
  (test split), ``faces/deepface-pairs`` (all: never used for training or calibration) and
  ``faces/lfw-gray`` (test split; greyscale), and ``pooled`` (FFHQ test reals + real-color +
  yonsei + deepface);
* ``timing`` (``timing=True``): ms per image for ``synthetic_image`` on 384² images and on a
  20-megapixel image (5472×3648, a photo upscaled).

``bench/detect.py`` can reuse it: ``from training.synthetic.evaluate import evaluate``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))

from reclaim.detectors.base import split_of  # noqa: E402
from training.synthetic import data as D  # noqa: E402
from training.synthetic.metrics import auc, tpr_at_fpr  # noqa: E402

Score = Callable[[np.ndarray], float]
DEEPFACE = D.SHARED / "faces" / "deepface-pairs"
LFW_GRAY = D.SHARED / "faces" / "lfw-gray"


def default_score() -> tuple[Score, float]:
    """The shipped model through the product call (``synthetic_image(rgb).raw``), its threshold.

    Images the product does not analyse (greyscale, tiny) get the model's ``raw_unanalysed``.
    """
    from reclaim.detectors.synthetic import load_model, synthetic_image

    return (lambda im: synthetic_image(im).raw), load_model().threshold


def _rates(y: np.ndarray, s: np.ndarray, threshold: float | None) -> dict[str, Any]:
    r: dict[str, Any] = {
        "n_fake": int(y.sum()),
        "n_real": int((y == 0).sum()),
        "auc": auc(y, s),
        "tpr_at_fpr_1": tpr_at_fpr(y, s, 0.01),
        "tpr_at_fpr_5": tpr_at_fpr(y, s, 0.05),
    }
    if threshold is not None:
        r["tpr_at_threshold"] = float((s[y == 1] > threshold).mean())
        r["fpr_at_threshold"] = float((s[y == 0] > threshold).mean())
    return r


def _real_set(score: Score, paths: list[Path], threshold: float | None) -> dict[str, Any]:
    s = []
    for p in paths:
        im = D.read_rgb(p)
        if min(im.shape[:2]) >= 32:
            s.append(score(im))
    a = np.asarray(s, dtype=np.float64)
    r: dict[str, Any] = {"n": len(a), "scores": a}
    if len(a):
        r["p50"], r["p90"], r["p98"] = (float(v) for v in np.percentile(a, [50, 90, 98]))
        if threshold is not None:
            r["fp_rate"] = float((a > threshold).mean())
    return r


def evaluate(
    score: Score | None = None,
    *,
    threshold: float | None = None,
    split: str = "test",
    timing: bool = True,
    conditions: dict[str, D.Transform] | None = None,
) -> dict[str, Any]:
    """Measure ``score`` (default: the shipped model, with its threshold); see the module docs."""
    if score is None:
        score, thr = default_score()
        threshold = thr if threshold is None else threshold
    conds = conditions or D.CONDITIONS
    items = [it for it in D.gan_items() if it.split == split]
    y = np.array([it.label for it in items])
    imgs = [D.read_rgb(it.path) for it in items]
    out: dict[str, Any] = {"split": split, "threshold": threshold, "stylegan2-ffhq": {}}
    gan = out["stylegan2-ffhq"]
    for name, tf in conds.items():
        s = np.array([score(D.cut_caption(tf(im))) for im in imgs])
        gan[name] = _rates(y, s, threshold)
        if name == "plain":
            ffhq_scores = s[y == 0]
    gan["uncut"] = _rates(y, np.array([score(im) for im in imgs]), threshold)

    reals: dict[str, Any] = {}
    if D.REAL_COLOR.is_dir():
        paths = [it.path for it in D.real_items(D.REAL_COLOR) if it.split == split]
        reals["real-color"] = _real_set(score, paths, threshold)
    if D.SPLICE_SET.is_dir():
        paths = [it.path for it in D.real_items(D.SPLICE_SET / "real") if it.split == split]
        reals["yonsei-real"] = _real_set(score, paths, threshold)
    if DEEPFACE.is_dir():
        paths = sorted(
            p for p in DEEPFACE.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
        )
        reals["deepface-pairs (held out)"] = _real_set(score, paths, threshold)
    if LFW_GRAY.is_dir():
        paths = [p for p in sorted(LFW_GRAY.rglob("*.jpg")) if split_of(p.name) == split]
        reals["lfw-gray (held out, grey)"] = _real_set(score, paths, threshold)
    pooled = np.concatenate(
        [ffhq_scores]
        + [v["scores"] for k, v in reals.items() if not k.startswith("lfw") and v["n"]]
    )
    reals["pooled"] = {"n": len(pooled)}
    if threshold is not None:
        reals["pooled"]["fp_rate"] = float((pooled > threshold).mean())
    for v in reals.values():
        v.pop("scores", None)
    out["real_photos"] = reals
    if timing:
        out["timing"] = time_synthetic_image(imgs[:40])
    return out


def time_synthetic_image(small: list[np.ndarray]) -> dict[str, Any]:
    """ms per image of ``synthetic_image`` (the product call) at 384² and at 20 MP."""
    from reclaim.detectors.synthetic import synthetic_image

    synthetic_image(small[0])  # model load
    t = []
    for im in small:
        t0 = time.perf_counter()
        synthetic_image(im)
        t.append(time.perf_counter() - t0)
    big = cv2.resize(small[0], (5472, 3648), interpolation=cv2.INTER_CUBIC)
    tb = []
    for _ in range(3):
        t0 = time.perf_counter()
        synthetic_image(big)
        tb.append(time.perf_counter() - t0)
    return {
        "ms_384": round(1000 * float(np.median(t)), 1),
        "ms_20mp": round(1000 * float(np.median(tb)), 1),
        "n_384": len(t),
    }


def format_table(ev: dict[str, Any]) -> str:
    lines = [f"stylegan2-ffhq {ev['split']} split (caption rows cut except 'uncut')"]
    lines.append(
        f"{'condition':12s} {'AUC':>6s} {'TPR@1%':>7s} {'TPR@5%':>7s} "
        f"{'TPR@thr':>8s} {'FPR@thr':>8s}"
    )
    for cond, r in ev["stylegan2-ffhq"].items():
        lines.append(
            f"{cond:12s} {r['auc']:6.3f} {r['tpr_at_fpr_1']:7.3f} {r['tpr_at_fpr_5']:7.3f} "
            f"{r.get('tpr_at_threshold', np.nan):8.3f} {r.get('fpr_at_threshold', np.nan):8.3f}"
        )
    n = ev["stylegan2-ffhq"]["plain"]
    lines.append(f"({n['n_fake']} fakes, {n['n_real']} reals)")
    lines.append("real photos of other sources at the threshold:")
    for name, r in ev["real_photos"].items():
        extra = f"  p50 {r['p50']:.2f} p98 {r['p98']:.2f}" if "p50" in r else ""
        lines.append(f"  {name:28s} n={r['n']:5d}  FP {r.get('fp_rate', float('nan')):.3f}{extra}")
    if "timing" in ev:
        t = ev["timing"]
        lines.append(f"ms/image: 384² {t['ms_384']}, 20 MP {t['ms_20mp']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="evaluate the shipped synthetic_image model")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-timing", action="store_true")
    args = ap.parse_args(argv)
    if not D.GAN_SET.is_dir():
        print(f"skipped: shared data not found at {D.GAN_SET}")
        return 0
    ev = evaluate(timing=not args.no_timing)
    print(format_table(ev))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(ev, indent=2, default=float) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
