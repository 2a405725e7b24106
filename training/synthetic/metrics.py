"""Metrics without scipy/sklearn: ROC AUC (ties averaged), TPR at a fixed FPR, Platt scaling."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def auc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    n1 = int(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    _, inv, cnt = np.unique(s, return_inverse=True, return_counts=True)
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    ranks = (np.bincount(inv, weights=ranks) / cnt)[inv]
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def tpr_at_fpr(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, fpr: float
) -> float:
    """Share of positives above the threshold that flags at most ``fpr`` of the negatives."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    neg = np.sort(s[y == 0])[::-1]
    pos = s[y == 1]
    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    k = math.floor(fpr * len(neg))  # negatives allowed above the threshold
    thr = neg[k] if k < len(neg) else -np.inf
    return float((pos > thr).mean())


def threshold_at_fpr(scores_neg: Sequence[float] | np.ndarray, fpr: float) -> float:
    """Smallest threshold t such that at most ``fpr`` of the negatives have score > t."""
    neg = np.sort(np.asarray(scores_neg, dtype=np.float64))[::-1]
    k = math.floor(fpr * len(neg))
    return float(neg[k]) if k < len(neg) else float(neg[-1])


def fit_platt(
    raw: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray, iters: int = 200
) -> tuple[float, float]:
    """Platt scaling p = sigmoid(a * raw + b), fitted by Newton's method with Platt's targets."""
    x = np.asarray(raw, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    n1 = y.sum()
    n0 = len(y) - n1
    t = np.where(y > 0, (n1 + 1) / (n1 + 2), 1 / (n0 + 2))  # Platt's smoothed targets
    a, b = 1.0, 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(a * x + b, -60, 60)))
        g = np.array([((p - t) * x).sum(), (p - t).sum()])
        w = p * (1 - p) + 1e-12
        h = np.array([[(w * x * x).sum(), (w * x).sum()], [(w * x).sum(), w.sum()]])
        h += 1e-9 * np.eye(2)
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(b)
