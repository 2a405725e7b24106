"""Weighted L2 logistic regression for many features, numpy only (training; no torch or scipy
in this environment): the objective of ``reclaim.detectors.fusion.fit_logistic`` (weighted log
loss + l2/2 |coef|², intercept free), minimised by Newton steps whose systems are solved by
conjugate gradients on Hessian-vector products (two matrix products each: no d × d matrix)."""

from __future__ import annotations

import numpy as np


def _sig(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0))))


def fit_newton_cg(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    l2: float,
    iters: int = 40,
    cg_iters: int = 200,
    tol: float = 1e-6,
    cg_tol: float = 1e-4,
) -> tuple[np.ndarray, float]:
    """(coef, intercept) for standardised ``x`` (n × d), labels ``y`` in {0, 1}, weights ``w``
    (normalised here to sum 1). Truncated Newton: each system is solved to a relative residual
    of ``cg_tol``; stops when the objective improves by less than ``tol`` (relative). The
    matrix products are in float32 (``x`` is stored so), the rest in float64."""
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float64)
    w = np.asarray(w, np.float64) / float(np.sum(w))
    d = x.shape[1]
    b = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0

    def mv(v: np.ndarray) -> np.ndarray:  # x @ v
        out: np.ndarray = np.asarray(x @ v.astype(np.float32), np.float64)
        return out

    def tv(r: np.ndarray) -> np.ndarray:  # x.T @ r
        out: np.ndarray = np.asarray(r.astype(np.float32) @ x, np.float64)
        return out

    def grad(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = _sig(mv(b[:-1]) + b[-1])
        r = w * (p - y)
        g = np.concatenate([tv(r), [r.sum()]]) + reg * b
        return g, w * p * (1.0 - p)

    def objective(b: np.ndarray) -> float:
        z = mv(b[:-1]) + b[-1]
        return float((w * (np.logaddexp(0.0, z) - y * z)).sum() + 0.5 * l2 * float(b[:-1] @ b[:-1]))

    f = objective(b)
    for _ in range(iters):
        g, dd = grad(b)
        if float(np.abs(g).max()) < 1e-9:
            break

        def hv(v: np.ndarray, dd: np.ndarray = dd) -> np.ndarray:
            t = dd * (mv(v[:-1]) + v[-1])
            out: np.ndarray = np.concatenate([tv(t), [t.sum()]]) + reg * v + 1e-10 * v
            return out

        # conjugate gradients for H s = g
        s = np.zeros_like(b)
        r = g.copy()
        p = r.copy()
        rr = float(r @ r)
        g2 = rr
        for _ in range(cg_iters):
            hp = hv(p)
            a = rr / max(float(p @ hp), 1e-300)
            s += a * p
            r -= a * hp
            rr_new = float(r @ r)
            if rr_new < cg_tol * cg_tol * g2:
                break
            p = r + (rr_new / rr) * p
            rr = rr_new
        step = 1.0
        while True:  # backtracking: the full Newton step almost always
            nb = b - step * s
            nf = objective(nb)
            if nf <= f - 1e-4 * step * float(g @ s) or step < 1e-4:
                break
            step *= 0.5
        done = f - nf < tol * abs(f)
        b, f = nb, min(f, nf)
        if done:
            break
    return b[:-1], float(b[-1])
