"""Fit the CLIP linear probes (``models/clip_probe.json``) and measure them.

    python -m training.clip_probe.data        # CLIP features of the shared sets (cached)
    python -m training.clip_probe.train [--write]

Three probes, each a class-balanced L2 logistic regression on standardised CLIP features:

* ``clip_generated``: StyleGAN2 fakes vs FFHQ, Yonsei-real and real-color photos (train split);
* ``clip_face_edit``: Yonsei face-part splices vs the same real photos (train split);
* ``clip_blend``: self-blended pseudo-fakes of those real photos vs the photos (train split;
  ``python -m training.clip_probe.data --self-blend``). It never sees an edited or generated
  image: the Yonsei and StyleGAN2 fakes are held-out kinds for it, and its evidence quotes its
  Yonsei numbers.

For each probe the feature blocks and the L2 strength are chosen on the calib split of its own
fakes against its own reals (AUC), then the Platt calibration is fitted on calib (its fakes vs
every calib real photo, each set weighing the same) and the threshold is the lowest raw score
that at most 1 % of the calib reals of *each* real set reach (``MAX_FP``). Every number printed
is on the test split; the held-out rows apply each probe to fakes of a kind it was not trained
on. Real-color photos that are near duplicates (PDQ ≤ 12 bits) of a calib or test photo are
dropped from training (and their pseudo-fakes with them).

``clip_face_edit`` and ``clip_blend`` read face features too (``FACE_BLOCK_CHOICES``: the patch
tokens pooled over the eyes, nose and mouth, a zoomed view of the face, and the same statistics
of two intermediate blocks of the encoder, ``MID_LAYERS``; see ``reclaim.detectors.clip_probe``),
computed with ``python -m training.clip_probe.data --face``. Images where no face is found are
left out of their training and of their numbers (they do not run on them); the report counts
them. With up to 24,064 features they are fitted by L-BFGS (torch, training only) on the same
objective as ``fusion.fit_logistic``.

Robustness rows: StyleGAN2/FFHQ and Yonsei test images re-encoded as JPEG q75 and resized 0.5×.
Deterministic (the pseudo-fakes are seeded by each photo's pixels); ≈ 5 min once the
features are cached (≈ 30 min for the face probes' 24,064 features).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from reclaim.detectors.clip_probe import (  # noqa: E402
    BLOCKS,
    ENCODER_SHA256,
    MID_LAYERS,
    MODEL_PATH,
    Kind,
    Probe,
)
from reclaim.detectors.fusion import fit_logistic  # noqa: E402
from training.clip_probe.data import SELF_BLEND_SOURCES, FeatureSet, feature_set  # noqa: E402
from training.synthetic import data as SD  # noqa: E402
from training.synthetic.metrics import auc, tpr_at_fpr  # noqa: E402

#: Each probe's own threshold (its evidence sentence says "above its threshold"): at most 1 % of
#: each calib real set, as the fused verdict's threshold (``bench/detect.py``: half the 2 %
#: limit on false accusations, a margin for the sampling error of sets of 100–550 photos).
MAX_FP = 0.01
REALS = ("sg2-real", "yonsei-real", "real-color")
BLOCK_CHOICES: tuple[tuple[str, ...], ...] = (
    ("emb",),
    ("cls",),
    ("emb", "cls"),
    ("cls", "pmean"),
    ("emb", "cls", "pmean", "pstd"),
)
L2_CHOICES = (1e-3, 1e-2, 1e-1, 1.0)
BASE = ("emb", "cls", "pmean", "pstd")
LAST = (*BASE, "parts", "zemb", "zcls", "zpmean", "zpstd")  # the last block's face features
MID = tuple(b for b in BLOCKS if b.startswith("m"))  # the intermediate blocks' (MID_LAYERS)
#: Sessions 4–5 also offered BASE and BASE + parts: they never won on calib and each choice costs
#: four fits of up to 24,064 features, so they are no longer offered.
FACE_BLOCK_CHOICES: tuple[tuple[str, ...], ...] = (LAST, MID, (*LAST, *MID))
FACE_L2_CHOICES = (1e-2, 1e-1, 1.0, 10.0)
#: Probes that read face features (computed on the face's view; images without a face left out).
FACE_PROBES = {"clip_face_edit", "clip_blend"}
THREADS = [2]


@dataclass(frozen=True)
class ProbeSpec:
    kind: Kind
    fakes: tuple[str, ...]  # the sets of its training fakes (train split; calib: selection)
    own_reals: tuple[str, ...]  # the reals its blocks and L2 are chosen against (calib AUC)
    trained_on: str  # quoted in its evidence
    trained_on_fr: str  # the same in French
    held_out: tuple[tuple[str, str], ...]  # (fakes, reals) test sets of kinds it never saw
    conditions: tuple[str, str]  # (fakes, reals) whose JPEG/resize test variants are measured
    quote_held_out: bool = False  # its evidence quotes held_out[0] rather than its own test


PROBES = {
    "clip_generated": ProbeSpec(
        "generated", ("sg2-fake",), ("sg2-real",), "StyleGAN2 faces (FFHQ-like) vs real photos",
        "des visages StyleGAN2 (de type FFHQ) et de vraies photos",
        (("yonsei-fake", "yonsei-real"),), ("sg2-fake", "sg2-real"),
    ),
    "clip_face_edit": ProbeSpec(
        "edited", ("yonsei-fake",), ("yonsei-real",),
        "Photoshop face-part splices (Yonsei) vs real photos",
        "des collages Photoshop de parties du visage (Yonsei) et de vraies photos",
        (("sg2-fake", "sg2-real"),), ("yonsei-fake", "yonsei-real"),
    ),
    # Never sees a manipulated photo: its fakes are real photos blended into themselves (SBI).
    "clip_blend": ProbeSpec(
        "blended", tuple(f"{n}+blend" for n in SELF_BLEND_SOURCES), REALS,
        "real photos and self-blended copies of them (no edited or generated image)",
        "de vraies photos et des copies mélangées avec elles-mêmes (aucune image retouchée ou "
        "générée)",
        (("yonsei-fake", "yonsei-real"), ("sg2-fake", "sg2-real")), ("yonsei-fake", "yonsei-real"),
        quote_held_out=True,
    ),
}  # fmt: skip


def label(blocks: tuple[str, ...]) -> str:
    """A short name for a block choice (printed)."""
    mid = "mid " + "+".join(str(n) for n in MID_LAYERS)
    named = {LAST: "last: base+parts+zoom", MID: mid, (*LAST, *MID): "last + " + mid}
    return named.get(blocks, "+".join(blocks))


def cols(blocks: tuple[str, ...]) -> np.ndarray:
    return np.concatenate([np.arange(*BLOCKS[b]) for b in blocks])


def leak_free(fs: FeatureSet) -> np.ndarray:
    """Train mask without near duplicates of calib/test photos (real-color has many)."""
    from training.faceblend.data import near_duplicate_groups

    groups = near_duplicate_groups(fs.paths)
    held = {g for g, s in zip(groups, fs.splits, strict=True) if s != "train"}
    return (fs.splits == "train") & np.array([g not in held for g in groups])


def balanced_weights(y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each (group, label) part weighs the same within its label; labels weigh the same."""
    w = np.ones(len(y))
    for g in set(groups):
        for lab in (0, 1):
            m = (groups == g) & (y == lab)
            if m.any():
                w[m] = 1.0 / m.sum()
    w[y == 1] *= w[y == 0].sum() / max(w[y == 1].sum(), 1e-12)
    return w


def fit_lbfgs(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """``fusion.fit_logistic``'s objective (weighted log loss + l2/2 |coef|², intercept free) by
    L-BFGS: Newton's d × d solve is too slow for thousands of features."""
    import torch

    torch.set_num_threads(THREADS[0])
    xt = torch.tensor(x, dtype=torch.float64)
    yt = torch.tensor(y, dtype=torch.float64)
    wt = torch.tensor(w / w.sum(), dtype=torch.float64)
    coef = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [coef, bias], lr=1.0, max_iter=1000, tolerance_grad=1e-10, tolerance_change=1e-14,
        history_size=20, line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure() -> torch.Tensor:
        opt.zero_grad()
        z = xt @ coef + bias
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, yt, reduction="none")
        total = (wt * loss).sum() + 0.5 * l2 * (coef * coef).sum()
        total.backward()  # type: ignore[no-untyped-call]
        return total

    opt.step(closure)  # type: ignore[no-untyped-call]
    return coef.detach().numpy().copy(), float(bias.detach()[0])


def fit(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    mean = x.mean(0)
    scale = x.std(0)
    scale[scale < 1e-6] = 1.0
    z = (x - mean) / scale
    if x.shape[1] > 4000:
        coef, intercept = fit_lbfgs(z, y, w, l2)
    else:
        coef, intercept = fit_logistic(z, y, w, l2=l2, iters=60)
    return mean, scale, coef, intercept


def with_face(fs: FeatureSet) -> FeatureSet:
    """The images of a face feature set where a face was found."""
    ok = ~np.isnan(fs.feats[:, 0])
    return FeatureSet(fs.name, [p for p, k in zip(fs.paths, ok, strict=True) if k], fs.label,
                      fs.feats[ok], fs.splits[ok])  # fmt: skip


def _pool(sets: dict[str, FeatureSet], names: list[str], split: str) -> np.ndarray:
    return np.concatenate([sets[n].take(split) for n in names])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help=f"write {MODEL_PATH.name}")
    args = ap.parse_args(argv)

    sets = {
        n: feature_set(n)
        for n in ("sg2-real", "sg2-fake", "yonsei-real", "yonsei-fake", "real-color")
    }
    train_mask = {n: fs.splits == "train" for n, fs in sets.items()}
    train_mask["real-color"] = leak_free(sets["real-color"])
    print(
        "train: " + ", ".join(f"{n} {int(m.sum())}" for n, m in train_mask.items()),
        flush=True,
    )

    base_sets, base_masks = sets, train_mask
    face_sets = {n: feature_set(n, face=True) for n in sets}
    face_sets |= {f"{n}+blend": feature_set(n, self_blend=True) for n in SELF_BLEND_SOURCES}
    no_face = {
        n: {sp: int((np.isnan(fs.feats[:, 0]) & (fs.splits == sp)).sum()) for sp in
            ("train", "calib", "test")}
        for n, fs in face_sets.items()
    }  # fmt: skip
    print(f"images without a face (left out of the face probes): {no_face}", flush=True)
    face_ok = {n: with_face(fs) for n, fs in face_sets.items()}
    face_masks = {n: fs.splits == "train" for n, fs in face_ok.items()}
    for n in ("real-color", "real-color+blend"):
        face_masks[n] = leak_free(face_ok[n])

    probes: list[Probe] = []
    report: dict[str, Any] = {}
    for name, spec in PROBES.items():
        kind, fakes = spec.kind, list(spec.fakes)
        face = name in FACE_PROBES
        sets, train_mask = (face_ok, face_masks) if face else (base_sets, base_masks)
        parts = [*REALS, *fakes]
        xs = np.concatenate([sets[n].feats[train_mask[n]] for n in parts])
        ys = np.concatenate([np.full(int(train_mask[n].sum()), sets[n].label) for n in parts])
        gs = np.concatenate([np.full(int(train_mask[n].sum()), n) for n in parts])
        w = balanced_weights(ys.astype(float), gs)
        own_reals = list(spec.own_reals)
        xc_pos, xc_neg = _pool(sets, fakes, "calib"), _pool(sets, own_reals, "calib")
        best: tuple[float, tuple[str, ...], float] = (-1.0, (), 0.0)
        for blocks in FACE_BLOCK_CHOICES if face else BLOCK_CHOICES:
            c = cols(blocks)
            for l2 in FACE_L2_CHOICES if face else L2_CHOICES:
                mean, scale, coef, b = fit(xs[:, c], ys.astype(float), w, l2)
                z = np.concatenate([xc_pos[:, c], xc_neg[:, c]])
                s = ((z - mean) / scale) @ coef + b
                a = auc(np.r_[np.ones(len(xc_pos)), np.zeros(len(xc_neg))], s)
                print(f"  {name} {label(blocks):22} l2 {l2:<6} calib AUC {a:.4f}", flush=True)
                if a > best[0] + 1e-4:
                    best = (a, blocks, l2)
        _, blocks, l2 = best
        c = cols(blocks)
        mean, scale, coef, b = fit(xs[:, c], ys.astype(float), w, l2)

        def raw_of(
            f: np.ndarray,
            c: np.ndarray = c,
            mean: np.ndarray = mean,
            scale: np.ndarray = scale,
            coef: np.ndarray = coef,
            b: float = b,
        ) -> np.ndarray:
            return np.asarray(((f[:, c] - mean) / scale) @ coef + b)  # fmt: skip

        # Platt on calib: this probe's fakes vs every calib real set (set-balanced)
        zc = np.concatenate([raw_of(sets[n].take("calib")) for n in parts])
        yc = np.concatenate(
            [np.full(int((sets[n].splits == "calib").sum()), sets[n].label) for n in parts]
        )
        gc = np.concatenate([np.full(int((sets[n].splits == "calib").sum()), n) for n in parts])
        pa, pb = fit_logistic(zc[:, None], yc.astype(float), balanced_weights(yc.astype(float), gc))
        thr = -np.inf
        for n in REALS:
            r = np.sort(raw_of(sets[n].take("calib")))
            k = int(np.ceil((1.0 - MAX_FP) * len(r)))
            thr = max(thr, float(r[k - 1]) + 1e-6)

        # test numbers
        t_pos = raw_of(_pool(sets, fakes, "test"))
        t_own = raw_of(_pool(sets, own_reals, "test"))
        lab = np.r_[np.ones(len(t_pos)), np.zeros(len(t_own))]
        sc = np.r_[t_pos, t_own]
        rep: dict[str, Any] = {
            "blocks": list(blocks),
            "l2": l2,
            "calib_auc": round(best[0], 4),
            "threshold_raw": round(thr, 6),
            "test": {
                "set": f"{'+'.join(fakes)} vs {'+'.join(own_reals)}",
                "n_pos": len(t_pos),
                "n_neg": len(t_own),
                "auc": round(auc(lab, sc), 4),
                "tpr@fpr1": round(tpr_at_fpr(lab, sc, 0.01), 4),
                "tpr@fpr5": round(tpr_at_fpr(lab, sc, 0.05), 4),
                "tpr_at_threshold": round(float((t_pos >= thr).mean()), 4),
            },
            "fpr_at_threshold": {
                n: round(float((raw_of(sets[n].take("test")) >= thr).mean()), 4) for n in REALS
            },
        }
        rep["cross_set"] = []
        for other_fake, other_real in spec.held_out:
            o_pos = raw_of(sets[other_fake].take("test"))
            o_neg = raw_of(sets[other_real].take("test"))
            lab_o = np.r_[np.ones(len(o_pos)), np.zeros(len(o_neg))]
            rep["cross_set"].append({
                "set": f"{other_fake} vs {other_real}",
                "auc": round(auc(lab_o, np.r_[o_pos, o_neg]), 4),
                "tpr@fpr1": round(tpr_at_fpr(lab_o, np.r_[o_pos, o_neg], 0.01), 4),
                "tpr_at_threshold": round(float((o_pos >= thr).mean()), 4),
            })  # fmt: skip
        rep["robustness"] = {}
        cond_fake, cond_real = spec.conditions
        for cond, tf in SD.CONDITIONS.items():
            if cond == "plain":
                continue
            fp_set = feature_set(cond_fake, transform=tf, tag=cond, split="test", face=face)
            fn_set = feature_set(cond_real, transform=tf, tag=cond, split="test", face=face)
            if face:
                fp_set, fn_set = with_face(fp_set), with_face(fn_set)
            fp, fn = raw_of(fp_set.feats), raw_of(fn_set.feats)
            lab_c = np.r_[np.ones(len(fp)), np.zeros(len(fn))]
            rep["robustness"][cond] = {
                "set": f"{cond_fake} vs {cond_real}",
                "auc": round(auc(lab_c, np.r_[fp, fn]), 4),
                "tpr_at_threshold": round(float((fp >= thr).mean()), 4),
                "fpr_at_threshold": round(float((fn >= thr).mean()), 4),
            }
        dp = feature_set("deepface", face=face)
        if face:
            dp = with_face(dp)
        rep["fpr_at_threshold"]["deepface (all)"] = round(
            float((raw_of(dp.feats) >= thr).mean()), 4
        )
        if face:
            rep["images_without_a_face"] = {n: no_face[n] for n in parts}
        report[name] = rep
        # The numbers its evidence quotes: on its own test fakes, or, for a probe that never saw
        # a real edit, on the first held-out set (fakes of a kind it was not trained on).
        quoted = rep["cross_set"][0] if spec.quote_held_out else rep["test"]
        measured = {
            "auc": quoted["auc"],
            "tpr_at_threshold": quoted["tpr_at_threshold"],
            "fpr_at_threshold": max(rep["fpr_at_threshold"][n] for n in REALS),
        }
        if spec.quote_held_out:
            measured["on"] = quoted["set"]
        probes.append(
            Probe(
                name=name,
                kind=kind,
                blocks=blocks,
                mean=mean,
                scale=scale,
                coef=coef,
                intercept=b,
                platt=(float(pa[0]), float(pb)),
                threshold=round(thr, 6),
                trained_on=spec.trained_on,
                measured=measured,
                trained_on_fr=spec.trained_on_fr,
            )
        )

    print()
    head = f"{'probe':16} {'blocks':22} {'test set':28} {'AUC':>6} {'TPR@1%':>7} {'TPR@5%':>7}"
    print(head + f" {'TPR@thr':>8}")
    for name, rep in report.items():
        t = rep["test"]
        print(
            f"{name:16} {label(tuple(rep['blocks'])):22} {t['set']:28} {t['auc']:6.3f} "
            f"{t['tpr@fpr1']:7.3f} {t['tpr@fpr5']:7.3f} {t['tpr_at_threshold']:8.3f}"
        )
        for cs in rep["cross_set"]:
            print(f"{'':16} {'held-out set':22} {cs['set']:28} {cs['auc']:6.3f} "
                  f"{cs['tpr@fpr1']:7.3f} {'':7} {cs['tpr_at_threshold']:8.3f}")  # fmt: skip
        for cond, r in rep["robustness"].items():
            print(f"{'':16} {cond:22} {'':28} {r['auc']:6.3f} {'':7} {'':7} "
                  f"{r['tpr_at_threshold']:8.3f}  FPR@thr {r['fpr_at_threshold']:.3f}")  # fmt: skip
        print(f"{'':16} FPR at threshold: "
              + ", ".join(f"{n} {v:.3f}" for n, v in rep["fpr_at_threshold"].items()))  # fmt: skip

    doc = {
        "encoder_sha256": ENCODER_SHA256,
        "probes": [p.to_json() for p in probes],
        "info": {
            "fitted_by": "python -m training.clip_probe.train --write",
            "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "max_false_positive_rate_per_real_set": MAX_FP,
            "report": report,
        },
    }
    if args.write:
        MODEL_PATH.write_text(json.dumps(doc) + "\n", encoding="utf-8")
        print(f"wrote {MODEL_PATH} ({MODEL_PATH.stat().st_size / 1e3:.0f} kB)")
    return report


if __name__ == "__main__":
    main()
