"""The side-by-side comparison that chose ``clip_diffusion``'s features (numbers in
``src/reclaim/models/diffusion_probe.md``).

    python -m training.diffusion.features      # every candidate feature, cached in /tmp
    python -m training.diffusion.compare [CANDIDATE ...]

Each candidate is a linear probe fitted and measured exactly as ``fit.py`` measures the shipped
one: for each diffusion family F and fold k, fitted without F and without fold k, scoring F's
fakes and diffusion-dev's reals of fold k (``fit.weights``, L2 chosen among ``L2S``). Printed per
family: the AUC against diffusion-dev's 226 reals and the *content-matched* AUC — within
quintiles of the out-of-fold score of ``content`` (the embedding of a 24 px thumbnail, fitted on
diffusion-dev only), so that fakes and reals that look alike in content are compared.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from training.diffusion import data as D  # noqa: E402
from training.diffusion import features as F  # noqa: E402
from training.diffusion import fit as DF  # noqa: E402
from training.fusion.fit import auc  # noqa: E402

L2S = (1e-3, 1e-2, 1e-1, 1.0)


def _block(feats: dict[str, np.ndarray], view: str, layer: int) -> np.ndarray:
    a = 512 + layer * F.N_TOKEN
    return np.asarray(feats[view][:, a : a + 768], np.float32)


CANDIDATES: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {
    "emb": lambda f: np.asarray(f["whole"][:, :512], np.float32),
    "cls12-whole": lambda f: np.hstack([_block(f, "whole", n) for n in F.LAYERS]),
    "cls12-native": lambda f: np.hstack([_block(f, "native", n) for n in F.LAYERS]),
    "rigid": lambda f: np.asarray(f["rigid"], np.float32),
    "synth": lambda f: np.nan_to_num(np.asarray(f["synth"], np.float32)),
    "content": lambda f: np.asarray(f["content"], np.float32),
}


def oof_scores(
    x: np.ndarray, items: list[D.Item], family: str, l2: float, dev_only: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, raws) of ``family``'s fakes and diffusion-dev's reals, each by the probe
    fitted without ``family`` and the row's fold."""
    fam = np.array([i.family for i in items])
    fold = np.array([i.fold for i in items])
    y = np.array([i.label for i in items], np.float64)
    dev = np.array([i.set == "diffusion-dev" for i in items])
    ok = ~np.isnan(x).any(1)
    rows, raws = [], []
    for k in range(D.FOLDS):
        tr = ok & (fold != k) & (fam != family) & (dev if dev_only else True)
        sub = [i for i, keep in zip(items, tr, strict=True) if keep]
        p = DF.fit_probe(x[tr], y[tr], DF.weights(sub), l2)
        te = ok & (fold == k) & ((fam == family) | (dev & (y == 0)))
        rows.append(np.where(te)[0])
        raws.append(DF.raw_of(p, x[te]))
    return np.concatenate(rows), np.concatenate(raws)


def matched_auc(y: np.ndarray, s: np.ndarray, c: np.ndarray) -> float:
    """AUC within quintiles of the content score ``c``, weighted by the smaller class."""
    qs = np.quantile(c, np.linspace(0, 1, 6))
    num = den = 0.0
    for lo, hi in itertools.pairwise(qs):
        m = (c >= lo) & (c <= hi)
        p, n = s[m & (y == 1)], s[m & (y == 0)]
        if len(p) and len(n):
            w = float(min(len(p), len(n)))
            num, den = num + w * auc(p, n), den + w
    return num / den if den else float("nan")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("candidates", nargs="*", default=list(CANDIDATES))
    ap.add_argument("--l2", type=float, nargs="*", default=list(L2S))
    args = ap.parse_args(argv)
    items, feats = DF.training_data()
    y = np.array([i.label for i in items])
    content = CANDIDATES["content"](feats)
    cref = {f: dict(zip(*oof_scores(content, items, f, 1e-3, dev_only=True), strict=True))
            for f in D.DIFFUSION_FAMILIES}  # fmt: skip
    for name in args.candidates:
        x = CANDIDATES[name](feats)
        for l2 in args.l2:
            cells = []
            for f in D.DIFFUSION_FAMILIES:
                rows, s = oof_scores(x, items, f, l2, dev_only=name == "content")
                yy = y[rows]
                c = np.array([cref[f].get(r, np.nan) for r in rows])
                keep = ~np.isnan(c)
                a = auc(s[yy == 1], s[yy == 0])
                m = matched_auc(yy[keep], s[keep], c[keep])
                cells.append(f"{f} {a:.3f} (matched {m:.2f})")
            print(f"{name:13} l2 {l2:<6g} " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
