"""Measuring the face-blend detector (reusable by ``bench/detect.py``).

* :func:`metrics` — AUC, TPR at FPR 1 % / 5 % (threshold from the negatives), FPR at a given
  threshold.
* :func:`sbi_batch` — a fixed (seeded) set of real crops and self-blended crops of one split of
  ``faces/real-color``: the pseudo-fake benchmark.
* :func:`score_set` — the shipped inference path (``reclaim.detectors.faceblend.face_blend``) on
  a labelled detection set (``yonsei-splice`` or ``stylegan2-ffhq``), one split, with the
  landmarks from the training cache; images where no face was found get the lowest score.
* :func:`evaluate_detect_set` — both, as one dict of numbers.

Run ``python -m training.faceblend.evaluate`` to print everything for the current model.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import cv2
import numpy as np

from reclaim.detectors import faceblend
from reclaim.faces.landmarks import FaceRegion
from training.faceblend.data import FaceSet, face_set, load_rgb, make_pair

DETECT_SETS = {
    "yonsei-splice": ("yonsei-real", "yonsei-fake"),
    "stylegan2-ffhq": ("sg2-real", "sg2-fake"),
}


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U, ties counted half)."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, np.float64)
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    allv = np.concatenate([pos, neg])[order]
    ranks = np.empty(allv.size, np.float64)
    i = 0
    while i < allv.size:  # average ranks over ties
        j = i
        while j + 1 < allv.size and allv[j + 1] == allv[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty_like(ranks)
    r[order] = ranks
    u = r[: pos.size].sum() - pos.size * (pos.size + 1) / 2
    return float(u / (pos.size * neg.size))


def threshold_at_fpr(neg_scores: np.ndarray, fpr: float) -> float:
    """The lowest threshold t with share(neg > t) ≤ fpr."""
    neg = np.sort(np.asarray(neg_scores, np.float64))[::-1]
    k = int(np.floor(fpr * neg.size))
    return float(neg[min(k, neg.size - 1)])


def metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, np.float64)
    out = {"n_pos": float(y.sum()), "n_neg": float((~y).sum()), "auc": roc_auc(y, s)}
    for f in (0.01, 0.05):
        t = threshold_at_fpr(s[~y], f)
        out[f"tpr@fpr{int(f * 100)}"] = float((s[y] > t).mean())
    return out


def rates_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, np.float64)
    return {"tpr": float((s[y] >= threshold).mean()), "fpr": float((s[~y] >= threshold).mean())}


def sbi_batch(
    fs: FaceSet, idx: np.ndarray, seed: int, images: dict[int, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed real and self-blended crops for the images ``idx`` (reals first, then blends).

    Each image gets its own generator ``default_rng([seed, i])`` so the set does not depend on
    order. Returns (inputs (2n, 4, 128, 128) float32, labels (2n,), boundary targets (2n, 32, 32)).
    """
    reals, fakes, maps = [], [], []
    for i in idx:
        img = images[int(i)] if images is not None else load_rgb(fs.paths[int(i)])
        rc, fc, bm = make_pair(img, fs.points[int(i)], np.random.default_rng([seed, int(i)]))
        reals.append(rc)
        fakes.append(fc)
        maps.append(bm)
    x = np.stack(reals + fakes).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    y = np.concatenate([np.zeros(len(reals)), np.ones(len(fakes))]).astype(np.float32)
    m = np.concatenate([np.zeros((len(reals), *maps[0].shape), np.float32), np.stack(maps)])
    return x, y, m


def predict_onnx(x: np.ndarray, batch: int = 64) -> np.ndarray:
    """Logits of the shipped model for an input batch."""
    out = [faceblend.predict(x[i : i + batch])[0] for i in range(0, len(x), batch)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def score_set(
    name: str, split: str = "test", limit: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(labels, raw logits, face found, ms per face) for one split of a detection set."""
    labels, raws, found = [], [], []
    secs, n_faces = 0.0, 0
    for part in DETECT_SETS[name]:
        fs = face_set(part, verbose=False)
        idx = np.nonzero(fs.split_mask(split))[0][:limit]
        for i in idx:
            labels.append(fs.label)
            if not fs.found[i]:
                raws.append(-np.inf)
                found.append(False)
                continue
            rgb = load_rgb(fs.paths[i])
            box = tuple(int(v) for v in fs.boxes[i])
            region = FaceRegion(box, "cache", fs.points[i])  # type: ignore[arg-type]
            t = time.perf_counter()
            sig = faceblend.face_blend(rgb, [region])
            secs += time.perf_counter() - t
            n_faces += 1
            raws.append(sig[0].raw)
            found.append(True)
    ms = 1000 * secs / max(1, n_faces)
    return np.array(labels), np.array(raws, np.float64), np.array(found), ms


def evaluate_detect_set(name: str, split: str = "test", limit: int | None = None) -> dict[str, Any]:
    """Metrics of the shipped model on one split of a labelled detection set.

    ``all``: every image, no face found = lowest score; ``faces``: only images with a face.
    """
    y, raw, found, ms = score_set(name, split, limit)
    finite = np.where(np.isfinite(raw), raw, np.nanmin(raw[np.isfinite(raw)]) - 1.0)
    thr = float(faceblend._model().meta.get("threshold", {}).get("raw", np.inf))
    return {
        "set": name,
        "split": split,
        "faces_found": f"{int(found.sum())}/{found.size}",
        "all": metrics(y, finite),
        "faces": metrics(y[found], raw[found]),
        "at_threshold": rates_at(y, finite, thr),
        "ms_per_face": round(ms, 2),
    }


def evaluate_sbi(split: str = "test", seed: int = 7_000) -> dict[str, Any]:
    """Self-blended pseudo-fakes vs the real faces of one split of real-color (shipped model)."""
    fs = face_set("real-color", verbose=False)
    idx = np.nonzero(fs.split_mask(split) & fs.found)[0]
    x, y, _ = sbi_batch(fs, idx, seed)
    raw = predict_onnx(x)
    thr = float(faceblend._model().meta.get("threshold", {}).get("raw", np.inf))
    return {
        "set": "real-color SBI",
        "split": split,
        **metrics(y, raw),
        "at_threshold": rates_at(y, raw, thr),
    }


def _pasted(img: np.ndarray, points: np.ndarray, factor: float, shift: float) -> np.ndarray:
    """The face (landmark hull, feathered) replaced by itself at ``factor`` × resolution and
    brightened by ``shift`` grey levels: the typical trace of a pasted low-resolution face."""
    from reclaim.faces.landmarks import hull_mask

    h, w = img.shape[:2]
    fw = float(max(np.ptp(points[:, 0]), np.ptp(points[:, 1]), 8.0))
    m = cv2.GaussianBlur(hull_mask(points, h, w).astype(np.float32), (0, 0), 0.03 * fw)[..., None]
    src = img
    if factor < 1:
        small = cv2.resize(
            img,
            (max(4, round(w * factor)), max(4, round(h * factor))),
            interpolation=cv2.INTER_AREA,
        )
        src = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    out = (src.astype(np.float32) + shift) * m + img.astype(np.float32) * (1 - m)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def evaluate_pastes(split: str = "test") -> dict[str, Any]:
    """Shipped model on the real faces of a real-color split, untouched and with simple,
    fixed pastes (no training-time randomness), all re-saved as JPEG q90: what it catches."""
    from training.faceblend.data import jpeg

    fs = face_set("real-color", verbose=False)
    idx = np.nonzero(fs.split_mask(split) & fs.found)[0]
    variants = {"half-resolution face": (0.5, 0.0), "third-resolution face": (0.33, 0.0),
                "brighter face (+10)": (1.0, 10.0)}  # fmt: skip
    raws: dict[str, list[float]] = {k: [] for k in ["original", *variants]}
    for i in idx:
        img = load_rgb(fs.paths[int(i)])
        box = tuple(int(v) for v in fs.boxes[int(i)])
        region = [FaceRegion(box, "cache", fs.points[int(i)])]  # type: ignore[arg-type]
        raws["original"].append(faceblend.face_blend(jpeg(img, 90), region)[0].raw)
        for k, (f, sh) in variants.items():
            fake = jpeg(_pasted(img, fs.points[int(i)], f, sh), 90)
            raws[k].append(faceblend.face_blend(fake, region)[0].raw)
    thr = float(faceblend._model().meta.get("threshold", {}).get("raw", np.inf))
    real = np.array(raws["original"])
    out: dict[str, Any] = {
        "split": split,
        "faces": len(idx),
        "fpr_at_threshold": float((real >= thr).mean()),
    }
    for k in variants:
        fake = np.array(raws[k])
        y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
        out[k] = {**metrics(y, np.r_[real, fake]), "tpr_at_threshold": float((fake >= thr).mean())}
    return out


if __name__ == "__main__":
    sets = sys.argv[1:] or ["sbi", "pastes", "yonsei-splice", "stylegan2-ffhq"]
    for s in sets:
        if s == "sbi":
            r = evaluate_sbi()
        elif s == "pastes":
            r = evaluate_pastes()
        else:
            r = evaluate_detect_set(s)
        print(json.dumps(r, indent=1))
