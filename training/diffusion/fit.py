"""Fit ``clip_diffusion`` (``models/diffusion_probe.json``) for generalisation across generator
families, and cross-fit it leave-one-family-out for the numbers that measure it.

    python -m training.diffusion.features     # CLIP features of the images (cached in /tmp)
    python -m training.diffusion.fit [--write]

What was tried, side by side, under the same protocol (``python -m training.diffusion.compare``;
numbers in ``src/reclaim/models/diffusion_probe.md``): the last embedding (UnivFD), the CLS
tokens of every encoder block (RINE), on the product's view and on a native-resolution crop,
RIGID-style stability under noise, the residual / spectral statistics of ``synthetic_image``
refitted on every family, and, as a diagnostic, the content of a 24 px thumbnail. Kept: the CLS
tokens of all 12 blocks, one probe per view (``VIEWS``), the signal's raw the mean of the two
probes'.

Training data (``features.training_items``): all of diffusion-dev (five diffusion families and
its real photos), StyleGAN2 and FFHQ (train split), Yonsei splices and real photos and
real-color photos (stable subsamples of the train split); every image re-encoded as Telegram
does (``data.telegram``) so that both classes share container, quality and metadata. Each
(family or real set) weighs ∝ √n, the classes equally.

Leave-one-family-out (``lofo_models``): for each diffusion family F and fold k, both probes are
fitted without F and without fold k (fold = the prompt for the 283 images made from 14 prompts),
then score F's fakes of fold k and diffusion-dev's reals of fold k; "all" models (no family left
out, fold k out) give every image an out-of-fold raw (the Platt calibration and threshold are
fitted on those, and the fusion reads them for diffusion-dev's calib images). The fitted models
are cached in ``/tmp`` so that ``bench/detect.py`` applies them to every re-encoding condition.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from reclaim.detectors import diffusion as P  # noqa: E402
from reclaim.detectors.clip_probe import ENCODER_SHA256  # noqa: E402
from reclaim.detectors.fusion import fit_logistic  # noqa: E402
from training.diffusion import data as D  # noqa: E402
from training.diffusion import features as F  # noqa: E402
from training.diffusion.linear import fit_newton_cg  # noqa: E402
from training.fusion.fit import auc  # noqa: E402

MODEL_PATH = P.MODEL_PATH
L2 = 1.0
MAX_FP = 0.01  # the probe's own level: at most 1 % of each real set's out-of-fold raws
#: The real sets whose out-of-fold raws set the level (each on its own).
REAL_SETS = ("ImageNet", "COCO", "FFHQ", "Yonsei-real", "real-color")
FIT_VERSION = "fit-v1"


def view_matrix(feats: dict[str, np.ndarray], view: str) -> np.ndarray:
    """(n, 12 × 768) float32: the CLS token of every block, from the cached features."""
    src = feats[view]
    cols = np.concatenate([np.arange(a, a + 768) for a in (512 + n * F.N_TOKEN for n in P.LAYERS)])
    return np.asarray(src[:, cols], np.float32)


def weights(items: list[D.Item]) -> np.ndarray:
    """Each (family or real set) weighs ∝ √n; both classes weigh the same."""
    groups = np.array([i.family for i in items])
    y = np.array([i.label for i in items])
    w = np.zeros(len(items))
    for g in set(groups):
        m = groups == g
        w[m] = 1.0 / np.sqrt(m.sum())
    w[y == 1] *= w[y == 0].sum() / max(w[y == 1].sum(), 1e-12)
    return w


Params = tuple[np.ndarray, np.ndarray, np.ndarray, float]  # mean, scale, coef, intercept


def fit_probe(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = L2) -> Params:
    mean = x.mean(0, dtype=np.float64)
    scale = x.std(0, dtype=np.float64)
    scale[scale < 1e-6] = 1.0
    coef, b = fit_newton_cg((x - mean) / scale, y, w, l2)
    return mean, scale, coef, b


def fit_probe_params(probe: P.DiffusionProbe, view: str) -> Params:
    """A shipped view probe as the fit's parameters."""
    v = probe.views[view]
    return v.mean, v.scale, v.coef, v.intercept


def raw_of(p: Params, x: np.ndarray) -> np.ndarray:
    mean, scale, coef, b = p
    return np.asarray(((x - mean) / scale) @ coef + b)


def _key(items: list[D.Item]) -> str:
    h = hashlib.sha256((FIT_VERSION + ENCODER_SHA256 + F.VERSION + str(L2)).encode())
    h.update(repr(P.LAYERS).encode() + repr(P.VIEWS).encode())
    h.update("\n".join(f"{i.key}|{i.family}|{i.fold}" for i in items).encode())
    return h.hexdigest()[:16]


def lofo_models(
    items: list[D.Item], feats: dict[str, np.ndarray]
) -> dict[tuple[str, int, str], Params]:
    """(family left out or "all", fold left out, view) -> fitted probe; cached in /tmp."""
    cache = D.CACHE / f"lofo-{_key(items)}.npz"
    if cache.exists():
        z = np.load(cache)
        out: dict[tuple[str, int, str], Params] = {}
        for k in {n.rsplit("|", 1)[0] for n in z.files}:
            fam, fold, view = k.split("#")
            out[(fam, int(fold), view)] = (
                z[k + "|mean"],
                z[k + "|scale"],
                z[k + "|coef"],
                float(z[k + "|b"][0]),
            )
        return out
    fam = np.array([i.family for i in items])
    fold = np.array([i.fold for i in items])
    y = np.array([i.label for i in items], np.float64)
    out = {}
    for view in P.VIEWS:
        x = view_matrix(feats, view)
        for left in (*D.DIFFUSION_FAMILIES, "all"):
            for k in range(D.FOLDS):
                m = (fold != k) & (fam != left)
                sub = [i for i, keep in zip(items, m, strict=True) if keep]
                out[(left, k, view)] = fit_probe(x[m], y[m], weights(sub))
                print(f"  lofo {view} without {left}, fold {k}", flush=True)
    arrays: dict[str, np.ndarray] = {}
    for (left, k, view), (mean, scale, coef, b) in out.items():
        n = f"{left}#{k}#{view}"
        arrays |= {n + "|mean": mean, n + "|scale": scale, n + "|coef": coef,
                   n + "|b": np.array([b])}  # fmt: skip
    D.CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **arrays)  # type: ignore[arg-type]
    return out


def view_raws(
    models: dict[tuple[str, int, str], Params],
    left: str,
    folds: np.ndarray,
    xs: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Each view's raw of every row, by the model fitted without ``left`` and the row's fold."""
    out = {}
    for view in P.VIEWS:
        r = np.zeros(len(folds))
        for k in range(D.FOLDS):
            m = folds == k
            if m.any():
                r[m] = raw_of(models[(left, k, view)], xs[view][m])
        out[view] = r
    return out


def training_data() -> tuple[list[D.Item], dict[str, np.ndarray]]:
    items = F.training_items()
    return items, F.compute(items, "telegram", 1)


def dev_features(dev: list[D.Item], condition: str) -> dict[str, np.ndarray]:
    """diffusion-dev's CLS features under ``condition`` (from the training cache for telegram)."""
    if condition == "telegram":
        items, feats = training_data()
        where = {i.key: n for n, i in enumerate(items)}
        idx = np.array([where[i.key] for i in dev])
        return {k: feats[k][idx] for k in (*P.VIEWS, "size")}
    return F.compute(dev, condition, 1, ("whole", "native"))


def lofo_raws(dev: list[D.Item], condition: str) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """who -> item key -> [the ``clip_diffusion`` signal record] for ``bench/detect.py`` and the
    fusion fit: who is a diffusion family (its fakes and every real, by the models fitted
    without that family) or "all" (every image, by the models fitted with every family); always
    by the models fitted without the image's fold."""
    items, feats = training_data()
    models = lofo_models(items, feats)
    probe = P.load_probe()
    if probe is None:
        raise SystemExit(f"{MODEL_PATH} is missing: python -m training.diffusion.fit --write")
    f = dev_features(dev, condition)
    xs = {v: view_matrix(f, v) for v in P.VIEWS}
    folds = np.array([i.fold for i in dev])
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for left in (*D.DIFFUSION_FAMILIES, "all"):
        vr = view_raws(models, left, folds, xs)
        rows: dict[str, list[dict[str, Any]]] = {}
        for n, i in enumerate(dev):
            if left != "all" and i.label == 1 and i.family != left:
                continue
            size = (int(f["size"][n][1]), int(f["size"][n][0])) if "size" in f else None
            rows[i.key] = [probe.record({v: float(vr[v][n]) for v in P.VIEWS}, size)]
        out[left] = rows
    return out


def level(raws: np.ndarray, groups: np.ndarray) -> float:
    """The lowest raw that at most ``MAX_FP`` of each real set's raws reach."""
    thr = -np.inf
    for g in REAL_SETS:
        r = np.sort(raws[groups == g])
        if len(r):
            k = int(np.ceil((1.0 - MAX_FP) * len(r)))
            thr = max(thr, float(r[k - 1]) + 1e-6)
    return thr


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help=f"write {MODEL_PATH.name}")
    args = ap.parse_args(argv)
    items, feats = training_data()
    y = np.array([i.label for i in items], np.float64)
    fam = np.array([i.family for i in items])
    folds = np.array([i.fold for i in items])
    xs = {v: view_matrix(feats, v) for v in P.VIEWS}
    print(f"{len(items)} images: " + ", ".join(
        f"{g} {int((fam == g).sum())}" for g in dict.fromkeys(fam)), flush=True)  # fmt: skip
    models = lofo_models(items, feats)

    # out-of-fold raws of every training image (every family in the fit): calibration, level
    oof = view_raws(models, "all", folds, xs)
    raw = np.mean([oof[v] for v in P.VIEWS], axis=0)
    w = weights(items)
    pa, pb = fit_logistic(raw[:, None], y, w)
    thr = level(raw, fam)
    platt = {}
    for v in P.VIEWS:
        a, b = fit_logistic(oof[v][:, None], y, w)
        platt[v] = (float(a[0]), float(b))

    # leave-one-family-out numbers on diffusion-dev (its reals: every fold)
    dev = [n for n, i in enumerate(items) if i.set == "diffusion-dev"]
    dev_real = np.array([n for n in dev if items[n].label == 0])
    measured: dict[str, Any] = {}
    for left in D.DIFFUSION_FAMILIES:
        vr = view_raws(models, left, folds, xs)
        r = np.mean([vr[v] for v in P.VIEWS], axis=0)
        pos = r[np.array([n for n in dev if items[n].family == left])]
        neg = r[dev_real]
        coco = r[np.array([n for n in dev if items[n].family == "COCO"])]
        measured[left] = {
            "n": len(pos),
            "auc": round(auc(pos, neg), 4),
            "auc_vs_coco": round(auc(pos, coco), 4),
            "tpr_at_level": round(float((pos >= thr).mean()), 4),
            "fpr_at_level": round(float((neg >= thr).mean()), 4),
        }
        print(f"  {left:14} AUC {measured[left]['auc']:.3f} (vs COCO only "
              f"{measured[left]['auc_vs_coco']:.3f}), TPR at its level "
              f"{measured[left]['tpr_at_level']:.3f}, FPR {measured[left]['fpr_at_level']:.3f}",
              flush=True)  # fmt: skip
    for g in ("StyleGAN2", "splice"):
        m = fam == g
        reals = {"StyleGAN2": "FFHQ", "splice": "Yonsei-real"}[g]
        measured[g] = {"n": int(m.sum()), "auc": round(auc(raw[m], raw[fam == reals]), 4),
                       "tpr_at_level": round(float((raw[m] >= thr).mean()), 4),
                       "note": "out of fold, the family in the fit"}  # fmt: skip
    fpr = {g: round(float((raw[fam == g] >= thr).mean()), 4) for g in REAL_SETS}
    print(f"  FPR at its level (out of fold): {fpr}", flush=True)

    # the shipped probes: every training image
    final = {v: fit_probe(xs[v], y, w) for v in P.VIEWS}
    probe = P.DiffusionProbe(
        views={v: P.ViewProbe(*final[v], platt=platt[v]) for v in P.VIEWS},
        platt=(float(pa[0]), float(pb)),
        threshold=round(thr, 6),
        measured={"leave_one_family_out": measured, "fpr_at_level": fpr},
        trained_on=(
            "images of 7 generator families — Latent Diffusion, GLID-3, Disco Diffusion, Stable "
            "Diffusion, GLIDE inpainting, StyleGAN2 faces, face-part splices — vs real photos"
        ),
        trained_on_fr=(
            "des images de 7 familles de générateurs — Latent Diffusion, GLID-3, Disco "
            "Diffusion, Stable Diffusion, retouche GLIDE, visages StyleGAN2, collages de parties "
            "du visage — et de vraies photos"
        ),
    )
    doc = probe.to_json()
    doc["encoder_sha256"] = ENCODER_SHA256
    doc["info"] = {
        "fitted_by": "python -m training.diffusion.fit --write",
        "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "l2": L2,
        "images": {g: int((fam == g).sum()) for g in dict.fromkeys(fam)},
        "condition": "every image re-encoded as Telegram does (<= 1280 px, JPEG q87, no metadata)",
    }
    if args.write:
        MODEL_PATH.write_text(json.dumps(doc) + "\n", encoding="utf-8")
        print(f"wrote {MODEL_PATH} ({MODEL_PATH.stat().st_size / 1e3:.0f} kB)")
    return doc


if __name__ == "__main__":
    main()
