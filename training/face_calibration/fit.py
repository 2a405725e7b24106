"""Calibration of face search: the operating threshold and score of
``src/reclaim/match/face_calibration.json``, and the tables SFace's weight was chosen from.

    python -m training.face_calibration.fit              # calibrate, write face_calibration.json
    python -m training.face_calibration.fit --dry-run    # calibrate and print, write nothing
    python -m training.face_calibration.fit --template   # print SFace's alignment template

Verification ROC of reclaim's face pipeline (HOG/CNN detection, 5-point alignment, descriptor
v3) on ``../shared/data/faces/deepface-pairs/master.csv`` (300 labelled pairs) and on LFW
identities of the *calibration half* (a fixed hash split by name, :func:`half`; the search
corpus of ``bench/face_search.py`` uses only the other half). The 300 master.csv pairs are all
the pairs of 25 photos of a handful of people: 262 negatives cannot resolve a 0.1 %
false-positive rate (one negative is 0.38 %), so the operating threshold is set where the
false-positive rate is 0.1 % on the manipulated variants of the calibration half (enrolled with
3 reference photos each, probed with the 7 variants of ``reclaim_fixtures.faces`` of their
other photos and every variant of the other identities). The score is a logistic fit of
same/different on master.csv and the plain LFW photos (equal class weights). The same variants
chose SFace's weight in descriptor v3 (tables in the JSON). ``bench/face_search.py`` calls
:func:`calibrate` in memory and reports it beside the shipped file. Generated files (variants,
cached descriptors) go to ``--work``, never into the repo. Numbers: ``docs/faces.md``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from reclaim_fixtures.faces import VARIANTS, load_rgb, make_variant, scene_canvas, telegram_bytes

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data" / "faces"
CAL_FILE = ROOT / "src" / "reclaim" / "match" / "face_calibration.json"
TARGET_FPR = 0.001
N_TEMPLATES = 3


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def half(name: str) -> str:
    """Fixed split of LFW identities: 'calibration' or 'search'."""
    return "calibration" if hashlib.sha1(name.encode()).digest()[0] % 2 == 0 else "search"


# -- descriptors (reclaim's own pipeline, in worker processes) ----------------------------------


def _largest_face(path: str) -> tuple[str, list[float] | None, str]:
    from reclaim.faces.pipeline import FaceOptions, find_faces
    from reclaim.media import Media

    media = Media(Path(path).read_bytes())
    o = FaceOptions()
    faces = find_faces(np.asarray(media.image(max_side=o.max_side)), o)
    if not faces:
        return path, None, ""
    return path, faces[0].descriptor.astype(float).tolist(), faces[0].detector


def pipeline_fingerprint() -> str:
    """What a cached face descriptor depends on: its kind, the face options and the source of
    the modules that decode, detect and describe (a code change means new descriptors)."""
    import reclaim.faces.describe
    import reclaim.faces.detect
    import reclaim.faces.dlibnet
    import reclaim.faces.mmod
    import reclaim.faces.models
    import reclaim.faces.pipeline
    import reclaim.faces.resnet
    import reclaim.faces.sface
    import reclaim.faces.yunet
    import reclaim.media.image

    mods = (reclaim.media.image, reclaim.faces.dlibnet, reclaim.faces.pipeline,
            reclaim.faces.mmod, reclaim.faces.sface, reclaim.faces.yunet, reclaim.faces.detect,
            reclaim.faces.describe, reclaim.faces.models, reclaim.faces.resnet)  # fmt: skip
    code = hashlib.sha256(b"".join(Path(str(m.__file__)).read_bytes() for m in mods)).hexdigest()
    f = reclaim.faces.pipeline
    return f"{f.DESCRIPTOR_KIND} {f.FaceOptions()!r} {code}"


def descriptors(paths: list[Path], work: Path, tag: str) -> dict[str, np.ndarray]:
    """Largest-face descriptor of each photo (cached in ``work``)."""
    text = "\n".join(map(str, paths)) + pipeline_fingerprint()
    key = hashlib.sha1(text.encode()).hexdigest()[:12]
    cache = work / f"desc_{tag}_{key}.json"
    if cache.exists():
        raw = json.loads(cache.read_text())
    else:
        t0 = time.perf_counter()
        with ProcessPoolExecutor(2) as ex:
            res = list(ex.map(_largest_face, map(str, paths), chunksize=8))
        raw = {p: d for p, d, _ in res}
        log(f"  {tag}: {len(paths)} photos described in {time.perf_counter() - t0:.0f} s")
        cache.write_text(json.dumps(raw))
    return {p: np.array(d, dtype=np.float64) for p, d in raw.items() if d is not None}


# -- ROC ------------------------------------------------------------------------------------------


def roc(pos: np.ndarray, neg: np.ndarray) -> dict[str, Any]:
    """Verification statistics for distances (smaller = same person)."""
    pos, neg = np.sort(pos), np.sort(neg)
    # AUC = P(d_pos < d_neg) + P(=)/2 (Mann–Whitney)
    less = np.searchsorted(neg, pos, side="right")
    less_strict = np.searchsorted(neg, pos, side="left")
    auc = float(((len(neg) - less) + 0.5 * (less - less_strict)).sum() / (len(pos) * len(neg)))
    ts = np.unique(np.concatenate([pos, neg]))
    fpr = np.searchsorted(neg, ts, side="right") / len(neg)
    fnr = 1.0 - np.searchsorted(pos, ts, side="right") / len(pos)
    i = int(np.argmin(np.abs(fpr - fnr)))
    out: dict[str, Any] = {
        "positives": len(pos),
        "negatives": len(neg),
        "auc": round(auc, 6),
        "eer": round(float((fpr[i] + fnr[i]) / 2), 6),
        "eer_threshold": round(float(ts[i]), 4),
        "smallest_resolvable_fpr": round(1.0 / len(neg), 6),
        "max_same_person_distance": round(float(pos.max()), 4),
        "min_different_person_distance": round(float(neg.min()), 4),
    }
    for f, name in ((0.01, "1pct"), (0.001, "0.1pct")):
        k = int(np.floor(f * len(neg)))  # at most k negatives at or below the threshold
        thr = float(np.nextafter(neg[k], -np.inf)) if k < len(neg) else float(neg[-1])
        out[f"threshold_at_fpr_{name}"] = round(thr, 4)
        out[f"tpr_at_fpr_{name}"] = round(float((pos <= thr).mean()), 4)
    return out


def fit_logistic(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """P(same | d) = 1 / (1 + exp(slope * (d - midpoint))), equal class weights, tiny L2."""
    x = np.concatenate([pos, neg])
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    w = np.concatenate([np.full(len(pos), 0.5 / len(pos)), np.full(len(neg), 0.5 / len(neg))])
    b = np.zeros(2)  # logit = b0 + b1 * x
    X = np.stack([np.ones_like(x), x], axis=1)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(X @ b)))
        g = X.T @ (w * (p - y)) + 1e-6 * b
        H = (X * (w * p * (1 - p))[:, None]).T @ X + 1e-6 * np.eye(2)
        step = np.linalg.solve(H, g)
        b -= step
        if np.abs(step).max() < 1e-10:
            break
    slope = -b[1]
    return float(slope), float(-b[0] / b[1])


def combined(q: np.ndarray, t: np.ndarray) -> np.ndarray:
    d = np.sqrt(((q[:, None, :] - t[None, :, :]) ** 2).sum(-1))
    return (d.min(1) + d.mean(1)) / 2


def calibrate(work: Path) -> dict[str, Any]:
    log("calibration: deepface master.csv pairs")
    dp = SHARED / "deepface-pairs"
    with open(dp / "master.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    files = sorted({r["file_x"] for r in rows} | {r["file_y"] for r in rows})
    desc = descriptors([dp / f for f in files], work, "deepface")
    mpos, mneg, missing = [], [], 0
    for r in rows:
        a, b = desc.get(str(dp / r["file_x"])), desc.get(str(dp / r["file_y"]))
        if a is None or b is None:
            missing += 1
            continue
        d = float(np.linalg.norm(a - b))
        (mpos if r["Decision"].strip().lower() == "yes" else mneg).append(d)
    master = roc(np.array(mpos), np.array(mneg))
    master["pairs"] = len(rows)
    master["pairs_without_a_face"] = missing

    log("calibration: LFW, calibration half")
    lfw = SHARED / "lfw-gray"
    ids = sorted(d.name for d in lfw.iterdir() if d.is_dir() and half(d.name) == "calibration")
    photos = {i: sorted((lfw / i).iterdir()) for i in ids}
    desc = descriptors([p for i in ids for p in photos[i]], work, "lfw_cal")
    vecs = {i: [desc[str(p)] for p in photos[i] if str(p) in desc] for i in ids}
    allv = np.stack([v for i in ids for v in vecs[i]])
    owner = np.array([i for i in ids for _ in vecs[i]])
    by_k: dict[str, Any] = {}
    lpos = lneg = np.zeros(0)
    for k in (1, 2, 3):
        pos, neg = [], []
        for i in ids:
            if len(vecs[i]) < k + 1:
                continue
            t = np.stack(vecs[i][:k])
            pos.append(combined(np.stack(vecs[i][k:]), t))
            neg.append(combined(allv[owner != i], t))
        p, n = np.concatenate(pos), np.concatenate(neg)
        by_k[str(k)] = roc(p, n)
        if k == N_TEMPLATES:
            lpos, lneg = p, n
    parts, weights = descriptor_parts(ids, vecs, lpos, lneg)
    log("calibration: manipulated variants of the calibration half")
    variant_table = variant_weights(work, desc)
    lfw_stats = dict(by_k[str(N_TEMPLATES)])
    lfw_stats["identities"] = len(ids)
    lfw_stats["photos"] = len(allv)
    lfw_stats["by_templates"] = by_k
    # The operating threshold: 0.1 % false positives on the manipulated variants of the
    # calibration half (what a search meets), at the weight the descriptor uses.
    from reclaim.faces.pipeline import SFACE_WEIGHT

    row = next(r for r in variant_table["table"] if abs(r["weight"] - SFACE_WEIGHT) < 1e-9)
    threshold = row["threshold_at_fpr_0.1pct"]
    slope, mid = fit_logistic(np.concatenate([mpos, lpos]), np.concatenate([mneg, lneg]))
    from reclaim import __version__
    from reclaim.faces.pipeline import DESCRIPTOR_KIND, FaceOptions

    return {
        "about": (
            "Operating point of reclaim's face search: combined distance (nearest + mean) / 2 "
            "over an enrollment's templates; threshold at 0.1% false positives on manipulated "
            "variants of the LFW calibration half (3 templates per identity); score = logistic "
            "fit on master.csv and LFW calibration distances. Written by "
            "training/face_calibration/fit.py, never by hand."
        ),
        "command": "python -m training.face_calibration.fit",
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reclaim_version": __version__,
        "model": "dlib_face_recognition_resnet_model_v1 (face-recognition-models), dlib-bin",
        "descriptor": DESCRIPTOR_KIND,
        "face_options": {k: v for k, v in FaceOptions().__dict__.items()},
        "rule": "(nearest + mean) / 2",
        "target_fpr": TARGET_FPR,
        "threshold": threshold,
        "logistic": {"slope": round(slope, 4), "midpoint": round(mid, 4)},
        "master_csv": master,
        "lfw_calibration_half": lfw_stats,
        "parts": parts,
        "sface_weight_selection": weights,
        "sface_weight_selection_variants": variant_table,
    }


#: The two networks' parts of a descriptor v3 (distances computed on each part alone).
def part_vectors(v: np.ndarray, part: str) -> np.ndarray:
    from reclaim.faces.pipeline import DLIB_DIM, SFACE_WEIGHT

    v = np.asarray(v, dtype=np.float64)
    if part == "dlib":
        return v[..., :DLIB_DIM]
    if part == "sface":
        return v[..., DLIB_DIM:] / SFACE_WEIGHT
    return v


PARTS = {"dlib": "dlib v2 alone", "sface": "SFace alone", "v3": "v3 (dlib + SFace)"}
WEIGHT_GRID = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.5)


def descriptor_parts(
    ids: list[str], vecs: dict[str, list[np.ndarray]], pos_v3: np.ndarray, neg_v3: np.ndarray
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """LFW calibration half, 3 templates: ROC of each network's part alone, and the same-person
    rate at 0.01 %, 0.03 % and 0.1 % false positives for SFace weights (d² = d_dlib² + w² ·
    d_sface²): the table SFACE_WEIGHT was chosen from (smallest weight with the best mean)."""
    allv = np.stack([v for i in ids for v in vecs[i]])
    owner = np.array([i for i in ids for _ in vecs[i]])
    sq = {}
    for part in ("dlib", "sface"):
        x = part_vectors(allv, part)
        g = (x * x).sum(1)
        sq[part] = np.maximum(g[:, None] + g[None, :] - 2 * x @ x.T, 0.0)

    def split(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos, neg = [], []
        for i in ids:
            idx = np.where(owner == i)[0]
            if len(idx) < N_TEMPLATES + 1:
                continue
            t = idx[:N_TEMPLATES]
            for rows, out in ((idx[N_TEMPLATES:], pos), (np.where(owner != i)[0], neg)):
                dd = d[np.ix_(rows, t)]
                out.append((dd.min(1) + dd.mean(1)) / 2)
        return np.concatenate(pos), np.concatenate(neg)

    parts = {"v3": roc(pos_v3, neg_v3)}
    for part in ("dlib", "sface"):
        parts[part] = roc(*split(np.sqrt(sq[part])))
    table = []
    for w in WEIGHT_GRID:
        pos, neg = split(np.sqrt(sq["dlib"] + w * w * sq["sface"]))
        table.append(weight_row(w, pos, neg, len(pos))[0])
    return parts, table


def weight_row(
    w: float, pos: np.ndarray, neg: np.ndarray, npos: int
) -> tuple[dict[str, Any], float]:
    """One row of an SFace-weight table: the share of ``npos`` positives at or below the
    threshold of each false-positive rate (0.01, 0.03, 0.1 %) and their mean; and the
    threshold at 0.1 %."""
    neg = np.sort(neg)
    row: dict[str, Any] = {"weight": w}
    thr = 0.0
    for f in (0.0001, 0.0003, 0.001):
        k = int(np.floor(f * len(neg)))
        thr = float(np.nextafter(neg[k], -np.inf))
        row[f"tpr_at_fpr_{f * 100:g}pct"] = round(float((pos <= thr).sum() / npos), 4)
    row["mean"] = round(float(np.mean([v for k, v in row.items() if k != "weight"])), 4)
    return row, thr


# -- variant calibration (the SFace weight, chosen on manipulated variants of the calibration half)


def _all_faces(path: str) -> tuple[str, list[list[float]]]:
    from reclaim.faces.pipeline import FaceOptions, find_faces
    from reclaim.media import Media

    o = FaceOptions()
    faces = find_faces(np.asarray(Media(Path(path).read_bytes()).image(max_side=o.max_side)), o)
    return path, [f.descriptor.astype(float).tolist() for f in faces]


def _scenes() -> list[tuple[Any, tuple[int, int, int, int]]]:
    from reclaim.faces.pipeline import find_faces

    scenes = []
    for p in sorted((SHARED / "deepface-pairs").glob("*.jpg")):
        sc = scene_canvas(load_rgb(p))
        f = find_faces(np.asarray(sc))
        if len(f) == 1 and f[0].size >= 100:
            scenes.append((sc, f[0].box))
    return scenes


def variant_weights(work: Path, cal_desc: dict[str, np.ndarray], seed: int = 11) -> dict[str, Any]:
    """The SFace-weight table again, on manipulated variants of the calibration half: each
    identity's first 3 photos are its templates, every other photo becomes the corpus's 7
    variants (same fixture code); positives are an identity's own variants, negatives every
    variant of the other identities; an image's distance is its nearest face's. Scenes for swaps
    are the deepface photos, as in the search corpus (scene faces, never calibration or search
    identities). Cached in ``work``."""
    from reclaim.faces.pipeline import find_faces

    lfw = SHARED / "lfw-gray"
    ids = sorted(d.name for d in lfw.iterdir() if d.is_dir() and half(d.name) == "calibration")
    root = work / f"calvar_{seed}"
    man_path = root / "manifest.json"
    if not man_path.exists():
        root.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        scenes = _scenes()
        files: dict[str, str] = {}
        for ident in ids:
            photos = sorted((lfw / ident).iterdir())
            for p in photos[N_TEMPLATES:]:
                im = load_rgb(p)
                f = find_faces(np.asarray(im))
                box = f[0].box if f else (0, 0, im.width, im.height)
                for v in VARIANTS:
                    var = make_variant(
                        v, im, box, rng, lambda: scenes[int(rng.integers(len(scenes)))]
                    )
                    name = f"v{len(files):05d}.jpg"
                    (root / name).write_bytes(telegram_bytes(var))
                    files[name] = ident
        man_path.write_text(json.dumps(files))
    files = json.loads(man_path.read_text())
    key = hashlib.sha1(pipeline_fingerprint().encode()).hexdigest()[:12]
    cache = root / f"faces_{key}.json"
    if not cache.exists():
        t0 = time.perf_counter()
        with ProcessPoolExecutor(2) as ex:
            res = dict(ex.map(_all_faces, [str(root / n) for n in files], chunksize=8))
        cache.write_text(json.dumps({Path(k).name: v for k, v in res.items()}))
        log(
            f"  calibration variants: {len(files)} images described in "
            f"{time.perf_counter() - t0:.0f} s"
        )
    faces = json.loads(cache.read_text())
    names = [n for n in files if faces.get(n)]
    vec = np.array([f for n in names for f in faces[n]], dtype=np.float64)
    img = np.array([k for k, n in enumerate(names) for _ in faces[n]])
    owner = np.array([files[n] for n in names])
    temps = {}
    for ident in ids:
        photos = sorted((lfw / ident).iterdir())[:N_TEMPLATES]
        t = [cal_desc[str(p)] for p in photos if str(p) in cal_desc]
        if len(t) == N_TEMPLATES and (owner == ident).any():
            temps[ident] = np.stack(t)
    npos = sum(int((owner == i).sum()) for i in temps) + sum(
        1 for n in files if files[n] in temps and not faces.get(n)
    )
    va, vb = part_vectors(vec, "dlib"), part_vectors(vec, "sface")
    parts = {}  # squared distances of every face to each template, per network
    for ident, t in temps.items():
        da2 = ((va[:, None] - part_vectors(t, "dlib")) ** 2).sum(-1)
        db2 = ((vb[:, None] - part_vectors(t, "sface")) ** 2).sum(-1)
        parts[ident] = (da2, db2)
    table = []
    for w in WEIGHT_GRID:
        pos, neg = [], []
        for ident, (da2, db2) in parts.items():
            d = np.sqrt(da2 + w * w * db2)
            comb = (d.min(1) + d.mean(1)) / 2
            best = np.full(len(names), np.inf)
            np.minimum.at(best, img, comb)
            mine = owner == ident
            pos.append(best[mine])
            neg.append(best[~mine])
        row, thr = weight_row(w, np.concatenate(pos), np.concatenate(neg), npos)
        row["threshold_at_fpr_0.1pct"] = round(thr, 4)
        table.append(row)
    return {
        "identities": len(temps),
        "images": len(files),
        "positives": npos,
        "negative_pairs": int(sum(int((owner != i).sum()) for i in temps)),
        "table": table,
    }


# -- SFace alignment template -------------------------------------------------------------------

#: The standard five ArcFace/SFace points in the 112 px crop (eye centres, nose tip, mouth corners).
ARCFACE_5 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
     [70.7299, 92.2041]]
)  # fmt: skip


def _landmarks_5_68(path: str) -> tuple[list[list[float]], list[list[float]]] | None:
    import dlib

    from reclaim.faces.detect import FaceOptions, _detect
    from reclaim.faces.models import _models, models_dir
    from reclaim.media import Media

    m = _models()
    if not hasattr(_landmarks_5_68, "lm68"):
        f68 = models_dir() / "shape_predictor_68_face_landmarks.dat"
        _landmarks_5_68.lm68 = dlib.shape_predictor(str(f68))  # type: ignore[attr-defined]
    rgb = np.asarray(Media(Path(path).read_bytes()).image(max_side=FaceOptions().max_side))
    dets = _detect(m, rgb, FaceOptions())
    if not dets:
        return None
    d = max(dets, key=lambda x: x.side)
    rect = dlib.rectangle(round(d.left), round(d.top), round(d.right) - 1, round(d.bottom) - 1)
    s5, s68 = m.landmarks(rgb, rect), _landmarks_5_68.lm68(rgb, rect)  # type: ignore[attr-defined]
    return (
        [[s5.part(i).x, s5.part(i).y] for i in range(5)],
        [[s68.part(i).x, s68.part(i).y] for i in range(68)],
    )


def fit_template() -> np.ndarray:
    """Where dlib's 5 landmarks fall in the SFace crop: each LFW calibration-half face aligned by
    the five ArcFace points (taken from dlib's 68-point model), then the median per coordinate.
    The result is ``reclaim.faces.sface.TEMPLATE_5``."""
    lfw = SHARED / "lfw-gray"
    paths = [
        str(p)
        for d in sorted(lfw.iterdir())
        if d.is_dir() and half(d.name) == "calibration"
        for p in sorted(d.iterdir())
    ]
    with ProcessPoolExecutor(2) as ex:
        marks = [r for r in ex.map(_landmarks_5_68, paths, chunksize=16) if r is not None]
    from reclaim.faces.sface import align_matrix

    placed = []
    for p5, p68 in marks:
        a = np.array(p68, dtype=np.float64)
        five = np.stack([a[36:42].mean(0), a[42:48].mean(0), a[30], a[48], a[54]])
        m = align_matrix(five, ARCFACE_5)  # the five points onto the ArcFace crop's
        placed.append(np.array(p5, dtype=np.float64) @ m[:, :2].T + m[:, 2])
    med = np.median(np.array(placed), axis=0)
    log(f"SFace template fitted on {len(placed)} faces of the LFW calibration half")
    return np.asarray(med)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="calibrate and print; write nothing")
    ap.add_argument(
        "--template", action="store_true", help="print SFace's alignment template and stop"
    )
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "reclaim-face-bench")
    args = ap.parse_args()
    if not SHARED.exists():
        raise SystemExit(f"shared data not found at {SHARED}")
    args.work.mkdir(parents=True, exist_ok=True)
    if args.template:
        from reclaim.faces.sface import TEMPLATE_5

        fitted = fit_template()
        print("TEMPLATE_5 fitted:", np.round(fitted, 2).tolist())
        print("TEMPLATE_5 shipped:", TEMPLATE_5.tolist())
        return
    cal = calibrate(args.work)
    text = json.dumps(cal, indent=2) + "\n"
    if args.dry_run:
        print(text, end="")
        return
    CAL_FILE.write_text(text)
    log(f"wrote {CAL_FILE}")


if __name__ == "__main__":
    main()
