"""Fit (and evaluate) the calibration of the face-region consistency signal.

The signal itself has no training: it measures differences between a face and its surroundings
(:mod:`reclaim.detectors.consistency`). This script fits the tiny logistic model that turns those
measurements into one calibrated score, and writes its coefficients to
``src/reclaim/models/consistency.json`` (read by the detector as ``MODEL``).

Calibration data (``calib`` split only, :func:`reclaim.detectors.base.split_of`):

* ``detect/yonsei-splice`` real vs fake (Photoshop splices of eyes / nose / mouth);
* **pseudo-fakes** made here from ``faces/real-color``: the face (landmark hull, randomly
  grown / shrunk and feathered) replaced by a degraded copy of itself — downscaled and upscaled
  (a low-resolution generated face), blurred, denoised, sharpened, noised, colour-shifted, or
  JPEG-compressed on a shifted grid — then the whole photo saved as JPEG; the real counterpart
  is the same photo saved with the same quality. Made in memory, never written to disk, never
  part of reclaim itself.
* ``detect/stylegan2-ffhq`` real photos as extra negatives (high-quality portraits).

Each source's positives and negatives get equal total weight. The decision thresholds
(``moderate`` / ``strong``) are the scores that at most 1.5 % / 0.5 % of the real photos of
*each* calibration set reach (1.5 %: a margin under the project's 2 % false-accusation
target). Reported numbers are on the ``test`` split only.

Run from the repository root (deterministic; ~5 minutes on one core, landmarks cached under
/tmp/reclaim_consistency_cache)::

    python training/consistency/fit.py fit --write      # fit, then write models/consistency.json
    python training/consistency/fit.py evaluate         # test-split numbers (JSON)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from reclaim.detectors.base import split_of
from reclaim.detectors.consistency import FEATURES, MODEL, measure_face, score_features
from reclaim.faces.landmarks import FaceRegion

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
CACHE = Path("/tmp/reclaim_consistency_cache")
MODULE = ROOT / "src" / "reclaim" / "detectors" / "consistency.py"
MODEL_FILE = ROOT / "src" / "reclaim" / "models" / "consistency.json"
_SELF = Path(__file__).resolve()
SEED = 20240506
L2 = 1.0  # ridge penalty on standardised coefficients (per unit total sample weight)
#: Physically meaningful directions: +1 = a larger difference can only raise the score (the
#: coefficient is kept ≥ 0: features that come out negative are dropped and the model refitted),
#: 0 = either sign (signed ratios whose direction the data decides).
#: Strength thresholds: the score that at most this share of each calibration set's real photos
#: reach (1.5 %, a margin under the 2 % target for the sampling error of ~500 photos; 0.5 %).
MODERATE_FPR = 0.015
STRONG_FPR = 0.005
SIGNS = {
    "sharp": 0,
    "noise": 0,
    "sharp_abs": 1,
    "noise_abs": 1,
    "sharp_far": 1,
    "noise_far": 1,
    "grid_shift": 1,
    "grid_level": 0,
    "colour_ab": 1,
    "colour_l": 1,
    "seam": 1,
    "part_sharp": 1,
    "part_noise": 1,
}


# -- data -----------------------------------------------------------------------------------


def _regions(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """68-landmark faces per file name of ``folder`` (computed once, cached under /tmp)."""
    from reclaim.faces.landmarks import face_regions

    CACHE.mkdir(parents=True, exist_ok=True)
    f = CACHE / ("landmarks" + str(folder.resolve()).replace("/", "_") + ".json")
    if f.exists():
        return json.loads(f.read_text())  # type: ignore[no-any-return]
    out: dict[str, list[dict[str, Any]]] = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file():
            continue
        rgb = _load(p)
        regs = face_regions(rgb, max_faces=2)
        out[p.name] = [
            {"box": list(r.box), "detector": r.detector, "points": r.points.tolist()} for r in regs
        ]
    f.write_text(json.dumps(out))
    return out


def _load(p: Path) -> np.ndarray:
    with Image.open(p) as im:
        return np.asarray(im.convert("RGB"))


def _region(d: dict[str, Any]) -> FaceRegion:
    box = (int(d["box"][0]), int(d["box"][1]), int(d["box"][2]), int(d["box"][3]))
    return FaceRegion(box, str(d["detector"]), np.asarray(d["points"], np.float32))


def _jpeg(rgb: np.ndarray, q: int) -> np.ndarray:
    b = io.BytesIO()
    Image.fromarray(rgb).save(b, "JPEG", quality=int(q))
    b.seek(0)
    return _load_bytes(b)


def _load_bytes(b: io.BytesIO) -> np.ndarray:
    with Image.open(b) as im:
        return np.asarray(im.convert("RGB"))


def labelled(dataset_dir: Path, split: str) -> Iterator[tuple[Path, int, list[dict[str, Any]]]]:
    """(path, label, faces) of a ``real/`` + ``fake/`` set's ``split``."""
    for label, sub in ((0, "real"), (1, "fake")):
        folder = dataset_dir / sub
        regs = _regions(folder)
        for name in sorted(regs):
            if split_of(name) == split:
                yield folder / name, label, regs[name]


# -- pseudo-fakes ---------------------------------------------------------------------------

OPS = ("lowres", "blur", "denoise", "sharpen", "noise", "colour", "jpeg")


def _degrade(rgb: np.ndarray, op: str, size: float, rng: np.random.Generator) -> np.ndarray:
    a = rgb
    h, w = a.shape[:2]
    if op == "lowres":
        f = rng.uniform(1.6, 4.0)
        small = cv2.resize(
            a, (max(8, round(w / f)), max(8, round(h / f))), interpolation=cv2.INTER_AREA
        )
        interp = [cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4][int(rng.integers(3))]
        return np.asarray(cv2.resize(small, (w, h), interpolation=interp))
    if op == "blur":
        return np.asarray(cv2.GaussianBlur(a, (0, 0), rng.uniform(0.7, 1.8)))
    if op == "denoise":
        return np.asarray(cv2.bilateralFilter(a, 5, rng.uniform(20, 50), rng.uniform(3, 7)))
    if op == "sharpen":
        b = cv2.GaussianBlur(a.astype(np.float32), (0, 0), 1.2)
        k = rng.uniform(0.6, 1.6)
        return np.asarray(np.clip(a + k * (a - b), 0, 255).astype(np.uint8))
    if op == "noise":
        n = rng.normal(0, rng.uniform(2.5, 7.0), a.shape[:2])[..., None]
        return np.asarray(np.clip(a + n, 0, 255).astype(np.uint8))
    if op == "colour":
        lab = cv2.cvtColor(a.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
        lab[..., 0] = np.clip(lab[..., 0] * rng.uniform(0.9, 1.1) + rng.uniform(-4, 4), 0, 100)
        lab[..., 1] += rng.choice([-1, 1]) * rng.uniform(2.0, 7.0)
        lab[..., 2] += rng.choice([-1, 1]) * rng.uniform(2.0, 7.0)
        back = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
        return np.asarray(np.clip(back * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if op == "jpeg":
        dx, dy = int(rng.integers(1, 8)), int(rng.integers(1, 8))
        padded = np.pad(a, ((dy, 8), (dx, 8), (0, 0)), mode="edge")
        return _jpeg(padded, int(rng.integers(40, 86)))[dy : dy + h, dx : dx + w]
    raise ValueError(op)


def pseudo_fake(
    rgb: np.ndarray, region: FaceRegion, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """The face replaced by a degraded copy of itself (1–2 operations), blended in softly."""
    size = float(region.size)
    ops = list(rng.choice(OPS, size=int(rng.integers(1, 3)), replace=False))
    src = rgb
    for op in ops:
        src = _degrade(src, str(op), size, rng)
    from reclaim.faces.landmarks import hull_mask

    m = hull_mask(region.points, rgb.shape[0], rgb.shape[1]).astype(np.uint8)
    grow = round(rng.uniform(-0.08, 0.2) * size)
    if grow:
        k = np.ones((3, 3), np.uint8)
        m = np.asarray((cv2.dilate if grow > 0 else cv2.erode)(m, k, iterations=abs(grow)))
    mf = m.astype(np.float32)
    sigma = rng.uniform(0.005, 0.05) * size
    if sigma > 0.4:
        mf = np.asarray(cv2.GaussianBlur(mf, (0, 0), sigma))
    mf = mf[..., None]
    out = src.astype(np.float32) * mf + rgb.astype(np.float32) * (1.0 - mf)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), [str(o) for o in ops]


def pseudo_pairs(split: str) -> Iterator[tuple[np.ndarray, np.ndarray, FaceRegion, str]]:
    """(real JPEG, pseudo-fake JPEG, face, name) for faces/real-color images of ``split``."""
    folder = DATA / "faces" / "real-color"
    regs = _regions(folder)
    for name in sorted(regs):
        if split_of(name) != split or not regs[name]:
            continue
        reg = _region(regs[name][0])
        if reg.size < 48:
            continue
        rng = np.random.default_rng(
            [SEED, int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "little")]
        )
        rgb = _load(folder / name)
        fake, _ = pseudo_fake(rgb, reg, rng)
        q = int(rng.integers(70, 96))
        yield _jpeg(rgb, q), _jpeg(fake, q), reg, name


# -- features -------------------------------------------------------------------------------


def _vector(rgb: np.ndarray, reg: FaceRegion) -> np.ndarray | None:
    m = measure_face(rgb, reg)
    return None if m is None else m.vector()


def set_features(dataset_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Features (largest face) and labels of a labelled set; images with no measured face are
    counted and left out (the signal says nothing about them)."""
    xs, ys = [], []
    missing = 0
    t0 = time.perf_counter()
    n = 0
    for path, label, faces in labelled(dataset_dir, split):
        n += 1
        v = _vector(_load(path), _region(faces[0])) if faces else None
        if v is None:
            missing += 1
            continue
        xs.append(v)
        ys.append(label)
    ms = 1000 * (time.perf_counter() - t0) / max(n, 1)
    return np.array(xs), np.array(ys), {"images": n, "not_measured": missing, "ms_per_image": ms}


def pseudo_features(split: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for real, fake, reg, _ in pseudo_pairs(split):
        for lab, img in ((0, real), (1, fake)):
            v = _vector(img, reg)
            if v is not None:
                xs.append(v)
                ys.append(lab)
    return np.array(xs), np.array(ys)


def _cached(key: str, fn: Any) -> tuple[np.ndarray, np.ndarray]:
    """Feature arrays cached under /tmp per (key, feature list)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha256((MODULE.read_text() + _SELF.read_text()).encode()).hexdigest()[:12]
    f = CACHE / f"feat_{key}_{tag}.npz"
    if f.exists():
        z = np.load(f)
        return z["X"], z["Y"]
    out = fn()
    X, Y = out[0], out[1]
    np.savez(f, X=X, Y=Y)
    return X, Y


# -- logistic model -------------------------------------------------------------------------


def fit_logistic(
    X: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = L2
) -> tuple[np.ndarray, float]:
    """Weighted L2-regularised logistic regression by Newton's method (X standardised)."""
    n, d = X.shape
    A = np.hstack([X, np.ones((n, 1))])
    beta = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(A @ beta)))
        g = A.T @ (w * (p - y)) + reg * beta
        hess = (A * (w * p * (1 - p))[:, None]).T @ A + np.diag(reg) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, g)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta[:-1], float(beta[-1])


def auc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the ROC curve (ties count half)."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ss = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and ss[j + 1] == ss[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _impute(X: np.ndarray, mean: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(X), mean[None, :], X)


def fit(write: bool = False) -> dict[str, Any]:
    sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    sets["yonsei-splice"] = _cached(
        "yonsei_calib", lambda: set_features(DATA / "detect" / "yonsei-splice", "calib")
    )
    sets["pseudo-real-color"] = _cached("pseudo_calib", lambda: pseudo_features("calib"))
    Xs, Ys = _cached(
        "ffhq_calib", lambda: set_features(DATA / "detect" / "stylegan2-ffhq", "calib")
    )
    sets["ffhq-real"] = (Xs[Ys == 0], Ys[Ys == 0])

    X = np.vstack([v[0] for v in sets.values()])
    y = np.concatenate([v[1] for v in sets.values()]).astype(np.float64)
    w = np.concatenate(
        [
            np.where(v[1] == 1, 1.0 / max(1, (v[1] == 1).sum()), 1.0 / max(1, (v[1] == 0).sum()))
            for v in sets.values()
        ]
    )
    # negatives of all sets together weigh as much as all positives together
    w = np.where(y == 1, w / w[y == 1].sum(), w / w[y == 0].sum()) * len(y) / 2
    mean = np.nanmean(X, axis=0)
    scale = np.nanstd(X, axis=0) + 1e-6
    Z = np.clip((_impute(X, mean) - mean) / scale, -6, 6)
    active = np.ones(Z.shape[1], bool)
    while True:  # drop features whose coefficient has the wrong sign, refit
        c_act, intercept = fit_logistic(Z[:, active], y, w)
        coef = np.zeros(Z.shape[1])
        coef[active] = c_act
        wrong = [i for i, k in enumerate(FEATURES) if SIGNS[k] > 0 and coef[i] < 0]
        if not wrong:
            break
        active[wrong[int(np.argmin(coef[wrong]))]] = False
    model: dict[str, Any] = {
        "features": list(FEATURES),
        "mean": [round(float(v), 6) for v in mean],
        "scale": [round(float(v), 6) for v in scale],
        "coef": [round(float(v), 6) for v in coef],
        "intercept": round(intercept, 6),
    }
    # thresholds: at most 2 % / 0.5 % of each calibration set's real photos reach them
    mod, strong = 0.0, 0.0
    calib: dict[str, Any] = {}
    for name, (Xn, yn) in sets.items():
        sc = np.array([score_features(x, {**model, "thresholds": {}})[1] for x in Xn])
        neg = sc[yn == 0]
        mod = max(mod, float(np.quantile(neg, 1.0 - MODERATE_FPR)))
        strong = max(strong, float(np.quantile(neg, 1.0 - STRONG_FPR)))
        calib[name] = {"n": len(yn), "auc": round(auc(yn, sc), 4) if (yn == 1).any() else None}
    model["thresholds"] = {"moderate": round(mod, 4), "strong": round(max(strong, mod), 4)}
    model["info"] = {
        "fitted": True,
        "command": "python training/consistency/fit.py fit --write",
        "seed": SEED,
        "calib": calib,
        "l2": L2,
    }
    if write:
        _write_model(model)
    return model


def _write_model(model: dict[str, Any]) -> None:
    """The fitted model as JSON, where the detector reads it (``reclaim.models``)."""
    MODEL_FILE.write_text(json.dumps(model, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {MODEL_FILE}", file=sys.stderr)


# -- evaluation -----------------------------------------------------------------------------


def evaluate(
    dataset_dir: str | Path, split: str = "test", *, use_cache: bool = True
) -> dict[str, Any]:
    """AUC (raw and calibrated), and rates at the module's thresholds, on a labelled set.

    ``dataset_dir`` holds ``real/`` and ``fake/`` (either may be absent: rates are then given
    for the labels present). Faces are looked for with
    :func:`reclaim.faces.landmarks.face_regions` (cached under /tmp with ``use_cache``); an
    image's value is its strongest face's; images with no measurable face are counted as
    ``not_measured`` and scored 0 (raw −inf).
    """
    from reclaim.detectors.consistency import face_consistency
    from reclaim.faces.landmarks import face_regions

    d = Path(dataset_dir)
    raws: list[float] = []
    scores: list[float] = []
    labels: list[int] = []
    not_measured = 0
    t_total = 0.0
    t_faces = 0.0
    for label, sub in ((0, "real"), (1, "fake")):
        folder = d / sub
        if not folder.is_dir():
            continue
        cached = _regions(folder) if use_cache else None
        for p in sorted(folder.iterdir()):
            if not p.is_file() or split_of(p.name) != split:
                continue
            rgb = _load(p)
            t0 = time.perf_counter()
            if cached is not None:
                regs = [_region(r) for r in cached.get(p.name, [])]
            else:
                regs = face_regions(rgb, max_faces=4)
            t1 = time.perf_counter()
            sig = face_consistency(rgb, regs)
            t2 = time.perf_counter()
            t_faces += t1 - t0
            t_total += t2 - t1
            labels.append(label)
            if sig:
                best = max(sig, key=lambda s: s.raw)
                raws.append(best.raw)
                scores.append(best.score)
            else:
                not_measured += 1
                raws.append(-math.inf)
                scores.append(0.0)
    y = np.array(labels)
    r = np.array(raws)
    s = np.array(scores)
    th = MODEL["thresholds"]
    out: dict[str, Any] = {
        "dataset": d.name,
        "split": split,
        "n_real": int((y == 0).sum()),
        "n_fake": int((y == 1).sum()),
        "not_measured": not_measured,
        "auc_raw": round(auc(y, r), 4),
        "auc_score": round(auc(y, s), 4),
        "ms_per_image": round(1000 * t_total / max(1, len(y)), 2),
        "ms_landmarks_per_image": None if use_cache else round(1000 * t_faces / max(1, len(y)), 2),
        "thresholds": dict(th),
    }
    for k, t in th.items():
        if (y == 0).any():
            out[f"fpr_{k}"] = round(float((s[y == 0] >= t).mean()), 4)
        if (y == 1).any():
            out[f"tpr_{k}"] = round(float((s[y == 1] >= t).mean()), 4)
    return out


def evaluate_pseudo(split: str = "test") -> dict[str, Any]:
    X, Y = pseudo_features(split)
    sc = np.array([score_features(x) for x in X])
    th = MODEL["thresholds"]
    return {
        "dataset": "pseudo-fakes of faces/real-color",
        "split": split,
        "n": len(Y),
        "auc_raw": round(auc(Y, sc[:, 0]), 4),
        "fpr_moderate": round(float((sc[Y == 0, 1] >= th["moderate"]).mean()), 4),
        "tpr_moderate": round(float((sc[Y == 1, 1] >= th["moderate"]).mean()), 4),
    }


def evaluate_swaps(split: str = "test", quality: int = 85) -> dict[str, Any]:
    """Out-of-generator check: the face-search test fixture's crude swap (another person's face,
    resized with Lanczos, pasted with a feathered ellipse: ``reclaim_fixtures.faces``) between
    consecutive faces/real-color photos of ``split``; real = the target photo, both saved as JPEG
    at ``quality``. Faces on the swapped photo are looked for anew."""
    from reclaim.detectors.consistency import face_consistency
    from reclaim.faces.landmarks import face_regions
    from reclaim_fixtures.faces import scene_canvas, swap

    folder = DATA / "faces" / "real-color"
    regs = _regions(folder)
    names = [
        n
        for n in sorted(regs)
        if split_of(n) == split and regs[n] and _region(regs[n][0]).size >= 48
    ]
    ys: list[int] = []
    raws: list[float] = []
    scores: list[float] = []
    missed = 0
    for a, b in zip(names[::2], names[1::2], strict=False):
        src = Image.open(folder / a).convert("RGB")
        dst = Image.open(folder / b).convert("RGB")
        fake = np.asarray(
            swap(src, tuple(regs[a][0]["box"]), scene_canvas(dst), tuple(regs[b][0]["box"]))
        )
        for label, img in ((0, _jpeg(np.asarray(dst), quality)), (1, _jpeg(fake, quality))):
            faces = face_regions(img, max_faces=2)
            sig = face_consistency(img, faces)
            if not sig:
                missed += 1
                continue
            best = max(sig, key=lambda s: s.raw)
            ys.append(label)
            raws.append(best.raw)
            scores.append(best.score)
    y = np.array(ys)
    s = np.array(scores)
    th = MODEL["thresholds"]
    return {
        "dataset": "fixture swaps of faces/real-color",
        "split": split,
        "n_real": int((y == 0).sum()),
        "n_fake": int((y == 1).sum()),
        "not_measured": missed,
        "auc_raw": round(auc(y, np.array(raws)), 4),
        **{f"fpr_{k}": round(float((s[y == 0] >= v).mean()), 4) for k, v in th.items()},
        **{f"tpr_{k}": round(float((s[y == 1] >= v).mean()), 4) for k, v in th.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit")
    f.add_argument("--write", action="store_true", help="write src/reclaim/models/consistency.json")
    e = sub.add_parser("evaluate")
    e.add_argument("--split", default="test")
    e.add_argument("--no-cache", action="store_true", help="find faces anew (timing included)")
    a = ap.parse_args(argv)
    if a.cmd == "fit":
        print(json.dumps(fit(write=a.write), indent=2))
        return 0
    res = [
        evaluate(DATA / "detect" / "yonsei-splice", a.split, use_cache=not a.no_cache),
        evaluate(DATA / "detect" / "stylegan2-ffhq", a.split, use_cache=not a.no_cache),
        _real_only(DATA / "faces" / "real-color", a.split, use_cache=not a.no_cache),
        evaluate_pseudo(a.split),
        evaluate_swaps(a.split),
    ]
    print(json.dumps(res, indent=2))
    return 0


def _real_only(folder: Path, split: str, *, use_cache: bool) -> dict[str, Any]:
    """False-positive rates on a folder of real photos only (faces/real-color)."""
    from reclaim.detectors.consistency import face_consistency
    from reclaim.faces.landmarks import face_regions

    cached = _regions(folder) if use_cache else None
    scores = []
    n = 0
    t = 0.0
    for p in sorted(folder.iterdir()):
        if not p.is_file() or split_of(p.name) != split:
            continue
        n += 1
        rgb = _load(p)
        regs = (
            [_region(r) for r in cached.get(p.name, [])]
            if cached is not None
            else face_regions(rgb, max_faces=4)
        )
        t0 = time.perf_counter()
        sig = face_consistency(rgb, regs)
        t += time.perf_counter() - t0
        if sig:
            scores.append(max(s.score for s in sig))
    s = np.array(scores)
    th = MODEL["thresholds"]
    return {
        "dataset": folder.name,
        "split": split,
        "images": n,
        "measured": len(s),
        "ms_per_image": round(1000 * t / max(1, n), 2),
        **{f"fpr_{k}": round(float((s >= v).mean()), 4) for k, v in th.items()},
    }


if __name__ == "__main__":
    sys.exit(main())
