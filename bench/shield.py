"""Benchmark of face-shield protection schemes (issue 20): clear templates against keyed
cancelable templates (``reclaim.shield.schemes``), side by side, on real face descriptors.

Prints a table and writes bench/results/shield.json. For each scheme (and several parameter
choices of each):

1. **Recall at FPR ≤ 0.1 %**, each scheme at its own threshold set on the set's impostors (the
   same oracle for every row, clear included), on
   - the face bench's search corpus (``bench/face_search.py``: 20 enrolled LFW identities of the
     search half, 3 reference photos each, 7 manipulated variants — swaps included — of 3 other
     photos each, and distractors), from the case that bench scanned (its faces and templates);
   - the LFW calibration half's *enrolled* identities (half of them, a fixed hash split): 3
     photos as templates, the other photos as probes (plain), and the 7 manipulated variants of
     those photos (``training/face_calibration/fit.py``'s cache); impostors: every photo or
     variant of every other calibration-half identity.
   An enrollment's score is reclaim's rule: clear ``(nearest + mean) / 2`` of the distances to
   its 3 templates; protected ``(best + mean) / 2`` of the similarities; an image's is its
   best face's. The clear row also gives the recall at the shipped threshold.
2. **Linkage across two keys** (two platforms, or a shield and its renewal): the protected
   templates of the same enrolled photos under key A and key B, scored by the scheme's own
   similarity; AUC of same person (same photo, or another of her templates) against different
   people. 0.5 = unlinkable.
3. **Inversion**: ridge regression from protected templates (bits as ±1, IoM indices one-hot)
   to clear descriptors, trained on *public* identities' clear descriptors (the calibration
   half's other half: plain photos and variant faces), applied to the enrolled templates. Two
   attackers: *DB only* — knows the scheme but not the key, so it trains under a key of its own
   and applies the regression to the leaked templates; *DB + keys* — computes the protected
   form of any clear descriptor under the platform's key. Reported: the share of recovered
   descriptors accepted as the person by clear face search (combined distance to her 3 clear
   templates ≤ the shipped threshold), and for two platforms' keys, the linkage AUC of the
   recovered descriptors. Baseline: the population mean as the "recovered" face.
4. Size of a protected template and the time to score one face against 10,000 shields (numpy,
   one thread, brute force).

Normalisation (``reclaim.shield.Normaliser``): subtract the mean descriptor of the public
identities' plain photos, optionally append a constant ("lift"), scale to unit length. "clear,
angle" scores the normalised descriptors by cosine: the ceiling of what a projection scheme
that measures angles can reach with that normalisation.

    python bench/shield.py [--work DIR] [--quick]

``--work`` is the face bench's work folder (default: the same as ``bench/face_search.py``'s);
nothing is recomputed when its caches are there (run ``python bench/face_search.py`` first).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))  # training/ (repository code, not an installed package)

from reclaim.faces.calibration import calibration  # noqa: E402
from reclaim.faces.pipeline import descriptor_from_bytes  # noqa: E402
from reclaim.shield import BioHash, IndexOfMax, Normaliser  # noqa: E402
from training.face_calibration.fit import (  # noqa: E402
    N_TEMPLATES,
    SHARED,
    TARGET_FPR,
    descriptors,
    half,
    log,
    pipeline_fingerprint,
    variant_weights,
)

RESULTS = HERE / "results" / "shield.json"
KEY_A = hashlib.sha256(b"bench/shield.py platform A").digest()
KEY_B = hashlib.sha256(b"bench/shield.py platform B").digest()
KEY_ATTACKER = hashlib.sha256(b"bench/shield.py the attacker's own key").digest()


def shield_half(name: str) -> str:
    """Fixed split of the calibration half: 'enrolled' (evaluated) or 'public' (the attacker's
    and the normaliser's faces)."""
    return "enrolled" if hashlib.sha1(b"shield" + name.encode()).digest()[0] % 2 else "public"


# -- data -----------------------------------------------------------------------------------------


@dataclass
class Probes:
    """Faces of a probe set: face vectors, the image each belongs to, image owners."""

    vectors: np.ndarray
    image: np.ndarray  # face → image index
    owner: list[str | None]  # image → identity (None: distractor)


@dataclass
class ProbeSet:
    name: str
    probes: Probes
    enrolled: dict[str, np.ndarray]  # identity → (3 × 384) clear templates


@dataclass
class Data:
    public: np.ndarray  # clear descriptors of public identities (plain photos + variant faces)
    public_owner: np.ndarray
    public_plain: np.ndarray  # plain photos only (the normaliser's mean)
    public_plain_owner: np.ndarray
    sets: list[ProbeSet] = field(default_factory=list)


def load(work: Path) -> Data:
    lfw = SHARED / "lfw-gray"
    ids = sorted(d.name for d in lfw.iterdir() if d.is_dir() and half(d.name) == "calibration")
    photos = {i: sorted((lfw / i).iterdir()) for i in ids}
    desc = descriptors([p for i in ids for p in photos[i]], work, "lfw_cal")
    root = work / "calvar_11"
    key = hashlib.sha1(pipeline_fingerprint().encode()).hexdigest()[:12]
    if not (root / f"faces_{key}.json").exists():
        log("describing the calibration half's variants (cache missing)")
        variant_weights(work, desc)
    files: dict[str, str] = json.loads((root / "manifest.json").read_text())
    faces: dict[str, list[list[float]]] = json.loads((root / f"faces_{key}.json").read_text())

    enrolled: dict[str, np.ndarray] = {}
    pub, pub_owner, pub_plain, pub_plain_owner = [], [], [], []
    plain_vec, plain_img, plain_owner = [], [], []
    for i in ids:
        vecs = [desc.get(str(p)) for p in photos[i]]
        if shield_half(i) == "public":
            for v in vecs:
                if v is not None:
                    pub.append(v)
                    pub_owner.append(i)
                    pub_plain.append(v)
                    pub_plain_owner.append(i)
            continue
        t = vecs[:N_TEMPLATES]
        if len(vecs) > N_TEMPLATES and all(v is not None for v in t):
            enrolled[i] = np.stack(t)  # type: ignore[arg-type]
    # Plain probes: every photo of the calibration half but an enrolled person's templates.
    for i in ids:
        start = N_TEMPLATES if i in enrolled else 0
        for p in photos[i][start:]:
            v = desc.get(str(p))
            plain_owner.append(i)
            if v is not None:
                plain_vec.append(v)
                plain_img.append(len(plain_owner) - 1)
    var_vec, var_img, var_owner = [], [], []
    for name, ident in files.items():
        var_owner.append(ident)
        for f in faces.get(name, []):
            var_vec.append(f)
            var_img.append(len(var_owner) - 1)
            if shield_half(ident) == "public":
                pub.append(np.array(f))
                pub_owner.append(ident)
    data = Data(
        public=np.array(pub),
        public_owner=np.array(pub_owner),
        public_plain=np.array(pub_plain),
        public_plain_owner=np.array(pub_plain_owner),
    )
    data.sets.append(
        ProbeSet(
            "LFW cal. half, plain photos",
            Probes(np.array(plain_vec), np.array(plain_img), plain_owner),  # type: ignore[arg-type]
            enrolled,
        )
    )
    data.sets.append(
        ProbeSet(
            "LFW cal. half, variants",
            Probes(np.array(var_vec), np.array(var_img), var_owner),  # type: ignore[arg-type]
            enrolled,
        )
    )
    corpus = search_corpus(work)
    if corpus is not None:
        data.sets.insert(0, corpus)
    return data


def search_corpus(work: Path) -> ProbeSet | None:
    """The face bench's search corpus, from the case its run scanned (faces and templates)."""
    case = work / "case" / "case.sqlite"
    mans = sorted(work.glob("corpus_*/manifest.json"))
    if not case.exists() or not mans:
        log(f"no search corpus in {work} (run bench/face_search.py --work {work}): skipped")
        return None
    man = json.loads(mans[0].read_text())
    # A copy (with its write-ahead log): read-only opens of a live WAL database can miss rows,
    # and opening the original read-write would checkpoint another tool's case.
    tmp = Path(tempfile.mkdtemp(prefix="shield-case-"))
    for suffix in ("", "-wal"):
        src = case.with_name(case.name + suffix)
        if src.exists():
            shutil.copy(src, tmp / src.name)
    with closing(sqlite3.connect(tmp / case.name)) as c:
        names: dict[str, list[str]] = defaultdict(list)
        for sha, loc in c.execute("SELECT item_sha256, locator FROM sightings"):
            if sha is not None:
                names[sha].append(Path(json.loads(loc)["path"]).name)
        rows = c.execute("SELECT item_sha256, descriptor FROM faces").fetchall()
        temps: dict[str, list[np.ndarray]] = defaultdict(list)
        for name, d in c.execute(
            "SELECT e.name, t.descriptor FROM templates t JOIN enrollments e "
            "ON e.id = t.enrollment_id ORDER BY t.id"
        ):
            temps[name].append(descriptor_from_bytes(d))
    shutil.rmtree(tmp)
    files = sorted(man["files"])
    index = {n: k for k, n in enumerate(files)}
    vec, img = [], []
    for sha, d in rows:
        for n in names[sha]:
            if n in index:
                vec.append(descriptor_from_bytes(d))
                img.append(index[n])
    owner = [man["files"][n]["identity"] for n in files]
    enrolled = {i: np.stack(t) for i, t in temps.items() if len(t) == N_TEMPLATES}
    return ProbeSet(
        "search corpus (face bench)",
        Probes(np.array(vec, dtype=np.float64), np.array(img), owner),
        enrolled,
    )


# -- the schemes under test -----------------------------------------------------------------------


class Clear:
    """Clear descriptors, compared as reclaim does (Euclidean; similarity = −distance)."""

    name = "clear"
    label = "clear (L2, shipped)"

    def codes(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        g = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
        return np.asarray(-np.sqrt(np.maximum(g, 0.0)))


class ClearAngle:
    """Normalised clear descriptors, cosine: what angle-measuring schemes approximate."""

    name = "clear-angle"
    label = "clear, angle (cosine)"

    def __init__(self, nz: Normaliser) -> None:
        self.nz = nz

    def codes(self, x: np.ndarray) -> np.ndarray:
        return self.nz(x)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.asarray(a @ b.T)


def features(scheme: Any, codes: np.ndarray) -> np.ndarray:
    """What the inversion attack regresses from: ±1 bits, one-hot IoM indices."""
    if isinstance(scheme, BioHash):
        return scheme.signs(codes).astype(np.float64)
    if isinstance(scheme, IndexOfMax):
        return scheme.one_hot(codes).astype(np.float64)
    raise TypeError(scheme)


# -- measures -------------------------------------------------------------------------------------


def enrollment_scores(scheme: Any, ps: ProbeSet, probe_codes: np.ndarray) -> dict[str, Any]:
    """Recall at FPR ≤ 0.1 % (threshold from this set's impostors), AUC."""
    pr = ps.probes
    n_img = len(pr.owner)
    idents = list(ps.enrolled)
    sim = scheme.similarity(
        scheme.codes(np.concatenate([ps.enrolled[i] for i in idents])), probe_codes
    )
    owners = np.array([o or "" for o in pr.owner])
    pos: list[np.ndarray] = []
    neg: list[np.ndarray] = []
    npos = nneg = 0
    for k, ident in enumerate(idents):
        s = sim[k * N_TEMPLATES : (k + 1) * N_TEMPLATES].T  # faces × 3
        # clear: similarity = −distance, so this is −(nearest + mean) / 2, reclaim's rule
        face = (s.max(1) + s.mean(1)) / 2
        best = np.full(n_img, -np.inf)
        np.maximum.at(best, pr.image, face)
        mine = owners == ident
        npos += int(mine.sum())
        nneg += int((~mine).sum())
        pos.append(best[mine][np.isfinite(best[mine])])
        neg.append(best[~mine][np.isfinite(best[~mine])])
    p, n = np.concatenate(pos), np.sort(np.concatenate(neg))[::-1]
    allowed = int(np.floor(TARGET_FPR * nneg))
    thr = n[allowed] if allowed < len(n) else -np.inf
    out = {
        "positives": npos,
        "negatives": nneg,
        "recall_at_fpr_0.1pct": round(float((p > thr).sum() / npos), 4),
        "threshold": round(float(thr), 4),
        "auc_faces_found": round(auc(p, n), 5),
    }
    if scheme.name == "clear":
        shipped = -calibration().threshold
        out["recall_at_shipped_threshold"] = round(float((p >= shipped).sum() / npos), 4)
        out["fpr_at_shipped_threshold"] = round(float((n >= shipped).sum() / nneg), 6)
    return out


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(positive > negative) + ties / 2, by ranks."""
    if not len(pos) or not len(neg):
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    sv = allv[order]
    # average ranks of ties
    _, first, counts = np.unique(sv, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    r = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(r / (len(pos) * len(neg)))


def linkage(sim: np.ndarray, owner: np.ndarray) -> dict[str, float]:
    """AUC of same person against different people in a key-A × key-B similarity matrix."""
    same = owner[:, None] == owner[None, :]
    diag = np.eye(len(owner), dtype=bool)
    return {
        "same_photo": round(auc(sim[diag], sim[~same]), 4),
        "same_person": round(auc(sim[same], sim[~same]), 4),
    }


class Ridge:
    """Ridge regression in dual form (features may outnumber samples): one eigendecomposition
    of the Gram matrix serves every λ."""

    def __init__(self, f: np.ndarray, y: np.ndarray) -> None:
        self.f, self.fm, self.ym = f, f.mean(0), y.mean(0)
        f32 = f.astype(np.float32)  # ±1 and 0/1 features: exact in float32, and fast
        r = f @ self.fm
        gram = (f32 @ f32.T).astype(np.float64) - r[:, None] - r[None, :] + self.fm @ self.fm
        self.s, self.u = np.linalg.eigh(gram)  # of the centred features' Gram matrix
        self.uty = self.u.T @ (y - self.ym)

    def weights(self, lam: float) -> np.ndarray:
        alpha = self.u @ (self.uty / (self.s + lam)[:, None])
        return np.asarray(self.f.T @ alpha - np.outer(self.fm, alpha.sum(0)))

    def predict(self, f: np.ndarray, w: np.ndarray) -> np.ndarray:
        return np.asarray((f - self.fm) @ w + self.ym)


def train_inversion(
    f: np.ndarray, y: np.ndarray, owner: np.ndarray
) -> tuple[Ridge, np.ndarray, float]:
    """The attacker's regression: λ chosen on a held-out fifth of its own identities."""
    held = np.array([hashlib.sha1(o.encode()).digest()[0] % 5 == 0 for o in owner])
    part = Ridge(f[~held], y[~held])
    scale = float(part.s.sum()) / len(part.s)
    best = (np.inf, 1.0)
    for mult in (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0):
        pred = part.predict(f[held], part.weights(mult * scale))
        best = min(best, (float(((pred - y[held]) ** 2).sum(1).mean()), mult * scale))
    full = Ridge(f, y)
    return full, full.weights(best[1]), best[1]


def accepted(recovered: np.ndarray, templates: np.ndarray, threshold: float) -> np.ndarray:
    """Is each recovered descriptor accepted as the person of its row's 3 clear templates?"""
    d = np.sqrt(((recovered[:, None, :] - templates) ** 2).sum(-1))  # n × 3
    return np.asarray((d.min(1) + d.mean(1)) / 2 <= threshold)


def gallery(data: Data) -> tuple[np.ndarray, list[str]]:
    """Every identity with 3 clear templates (enrolled ones and public ones): (k × 3 × 384)."""
    x, owner = targets(data)
    names = list(dict.fromkeys(owner))
    temps = [x[owner == i] for i in names]
    for i in dict.fromkeys(data.public_plain_owner):
        v = data.public_plain[data.public_plain_owner == i]
        if len(v) >= N_TEMPLATES:
            names.append(str(i))
            temps.append(v[:N_TEMPLATES])
    return np.stack(temps), names


def identified(recovered: np.ndarray, owner: np.ndarray, data: Data) -> np.ndarray:
    """Is each recovered descriptor accepted as its person by clear face search *and* nearer to
    her than to anybody else of the gallery? Acceptance alone is not an attack: the population
    mean is within the threshold of almost everybody (a "wolf"; measured below)."""
    temps, names = gallery(data)
    d = np.sqrt(((recovered[:, None, None, :] - temps[None]) ** 2).sum(-1))  # n × k × 3
    comb = (d.min(2) + d.mean(2)) / 2
    col = np.array([names.index(o) for o in owner])
    mine = comb[np.arange(len(owner)), col]
    return np.asarray((mine <= calibration().threshold) & (comb.argmin(1) == col))


def targets(data: Data) -> tuple[np.ndarray, np.ndarray]:
    """Enrolled templates of every set (distinct identities): (n × 384, owner)."""
    seen: dict[str, np.ndarray] = {}
    for ps in data.sets:
        for i, t in ps.enrolled.items():
            seen.setdefault(i, t)
    owner = np.array([i for i, t in seen.items() for _ in t])
    return np.concatenate(list(seen.values())), owner


def attack(make: Any, data: Data) -> dict[str, Any]:
    """Linkage and inversion for one scheme configuration (``make(key)`` builds it)."""
    thr = calibration().threshold
    x, owner = targets(data)
    templ_of = {i: x[owner == i] for i in np.unique(owner)}
    t_rows = np.stack([templ_of[o] for o in owner])  # each row's person's 3 templates
    a, b, c = make(KEY_A), make(KEY_B), make(KEY_ATTACKER)
    ca, cb = a.codes(x), b.codes(x)
    out: dict[str, Any] = {"linkage_auc": linkage(a.similarity(ca, cb), owner)}
    # DB + keys: pairs under the platform's own key.
    pub, pub_owner = data.public, data.public_owner
    ra, w, lam = train_inversion(features(a, a.codes(pub)), pub, pub_owner)
    rec_a = ra.predict(features(a, ca), w)
    rb, wb, _ = train_inversion(features(b, b.codes(pub)), pub, pub_owner)
    rec_b = rb.predict(features(b, cb), wb)
    # DB only: the attacker's own key, applied to the platform's templates.
    rc, wc, _ = train_inversion(features(c, c.codes(pub)), pub, pub_owner)
    rec_db = rc.predict(features(a, ca), wc)
    out["inversion_db_keys"] = round(float(identified(rec_a, owner, data).mean()), 4)
    out["inversion_db_only"] = round(float(identified(rec_db, owner, data).mean()), 4)
    out["inversion_accepted_only"] = {
        "db_keys": round(float(accepted(rec_a, t_rows, thr).mean()), 4),
        "db_only": round(float(accepted(rec_db, t_rows, thr).mean()), 4),
    }
    nz = a.normaliser
    cos = (nz(rec_a) * nz(x)).sum(1)
    out["inversion_db_keys_cosine_to_true"] = round(float(cos.mean()), 3)
    out["inversion_db_keys_mean_distance"] = round(
        float(np.sqrt(((rec_a[:, None] - t_rows) ** 2).sum(-1)).mean()), 3
    )
    out["ridge_lambda"] = round(lam, 3)
    d = Clear().similarity(rec_a, rec_b)
    out["linkage_auc_with_both_keys"] = linkage(d, owner)
    return out


def match_cost(scheme: Any, codes: np.ndarray, n: int = 10_000, reps: int = 20) -> float:
    """Milliseconds to score one face against ``n`` shields (brute force)."""
    big = np.resize(codes, (n, *codes.shape[1:]))
    one = codes[:1]
    if isinstance(scheme, BioHash):
        # popcount of XOR: what an index does, not the float matmul the bench uses
        table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint16)

        def run() -> None:
            table[np.bitwise_xor(big, one)].sum(1)

    elif isinstance(scheme, IndexOfMax):

        def run() -> None:
            (big == one).sum(1)

    else:
        fl = np.asarray(big, dtype=np.float32)
        o = np.asarray(one, dtype=np.float32)

        def run() -> None:
            ((fl - o) ** 2).sum(1)

    run()
    t0 = time.perf_counter()
    for _ in range(reps):
        run()
    return (time.perf_counter() - t0) / reps * 1000


# -- main -----------------------------------------------------------------------------------------


def configs(public: np.ndarray, quick: bool) -> list[tuple[str, Any]]:
    """(label, make(key)) of each configuration compared."""
    nz = {lift: Normaliser.fit(public, lift=lift) for lift in (0.0, 1.0, 1.5)}
    out: list[tuple[str, Any]] = []
    for bits in (1024,) if quick else (512, 1024, 2048):
        out.append((f"BioHash {bits} bits", lambda k, b=bits: BioHash(k, nz[0.0], bits=b)))
    iom = ((1024, 16, 1.5),) if quick else ((512, 16, 0.0), (1024, 16, 0.0), (1024, 16, 1.5))
    for m, q, lift in iom:
        out.append(
            (
                f"IoM m={m} q={q}" + (f" lift {lift}" if lift else ""),
                lambda k, m=m, q=q, lift=lift: IndexOfMax(k, nz[lift], m=m, q=q),
            )
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "reclaim-face-bench")
    ap.add_argument("--quick", action="store_true", help="two parameter choices per scheme")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    t_start = time.perf_counter()
    data = load(args.work)
    nz = Normaliser.fit(data.public_plain)
    log(
        f"public identities: {len(np.unique(data.public_owner))} ({len(data.public)} descriptors);"
        + "; ".join(
            f" {s.name}: {len(s.enrolled)} enrolled, {len(s.probes.owner)} images"
            for s in data.sets
        )
    )
    rows: list[dict[str, Any]] = []
    baselines: list[tuple[str, Any]] = [
        ("clear (L2, shipped)", None),
        ("clear, angle", None),
        ("clear, angle, lift 1.5", None),
    ]
    for label, make in [*baselines, *configs(data.public_plain, args.quick)]:
        t0 = time.perf_counter()
        if label.startswith("clear (L2"):
            scheme: Any = Clear()
        elif label == "clear, angle":
            scheme = ClearAngle(nz)
        elif label.startswith("clear, angle"):
            scheme = ClearAngle(Normaliser.fit(data.public_plain, lift=1.5))
        else:
            scheme = make(KEY_A)
        row: dict[str, Any] = {"scheme": label}
        for ps in data.sets:
            row[ps.name] = enrollment_scores(scheme, ps, scheme.codes(ps.probes.vectors))
        if make is not None:
            row.update(attack(make, data))
            code = scheme.codes(data.public[:50])
            row["bytes"] = int(code[0].nbytes)
            row["ms_per_face_vs_10k_shields"] = round(match_cost(scheme, code), 3)
        else:
            x, owner = targets(data)
            row["linkage_auc"] = linkage(scheme.similarity(*[scheme.codes(x)] * 2), owner)
            row["inversion_db_keys"] = row["inversion_db_only"] = 1.0
            row["bytes"] = 384 * 4
            row["ms_per_face_vs_10k_shields"] = round(match_cost(scheme, scheme.codes(x)), 3)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        log(f"  {label}: {row['seconds']} s")
    x, owner = targets(data)
    mean_face = np.repeat(data.public_plain.mean(0, keepdims=True), len(x), axis=0)
    t_rows = np.stack([x[owner == o] for o in owner])
    baseline = {
        "accepted": round(float(accepted(mean_face, t_rows, calibration().threshold).mean()), 4),
        "identified": round(float(identified(mean_face, owner, data).mean()), 4),
    }
    print_table(rows, data, baseline)
    results = {
        "command": "python bench/shield.py" + (" --quick" if args.quick else ""),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_at_start": os.getloadavg(),
        "numpy": np.__version__,
        "clear_threshold": calibration().threshold,
        "normaliser": "minus the mean of the public identities' plain photos, unit length",
        "public_identities": len(np.unique(data.public_owner)),
        "public_descriptors": len(data.public),
        "sets": {
            s.name: {"enrolled": len(s.enrolled), "images": len(s.probes.owner)} for s in data.sets
        },
        "inversion_targets": len(x),
        "inversion_gallery_identities": len(gallery(data)[1]),
        "inversion_population_mean": baseline,
        "rows": rows,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    if not args.no_write:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
        log(f"wrote {RESULTS}")


def print_table(rows: list[dict[str, Any]], data: Data, baseline: dict[str, float]) -> None:
    sets = [s.name for s in data.sets]
    short = {n: n.replace("LFW cal. half, ", "LFW ").replace(" (face bench)", "") for n in sets}
    print("\nrecall at FPR ≤ 0.1 % (own threshold) | linkage AUC across keys (same photo / same "
          "person) | inversion (identified): DB only, DB + keys | bytes | ms vs 10k")  # fmt: skip
    head = f"{'scheme':<24}" + "".join(f"{short[n][:16]:>17}" for n in sets)
    head += f"{'link photo':>11}{'person':>8}{'inv DB':>8}{'inv +key':>9}{'bytes':>7}{'ms':>7}"
    print(head)
    for r in rows:
        line = f"{r['scheme']:<24}" + "".join(
            f"{r[n]['recall_at_fpr_0.1pct']:>17.4f}" for n in sets
        )
        la = r["linkage_auc"]
        line += f"{la['same_photo']:>11.3f}{la['same_person']:>8.3f}"
        line += f"{r['inversion_db_only']:>8.3f}{r['inversion_db_keys']:>9.3f}"
        line += f"{r['bytes']:>7}{r['ms_per_face_vs_10k_shields']:>7.2f}"
        print(line)
    clear = rows[0]
    for n in sets:
        if "recall_at_shipped_threshold" in clear[n]:
            print(
                f"clear at the shipped threshold ({calibration().threshold}), {short[n]}: "
                f"recall {clear[n]['recall_at_shipped_threshold']}, "
                f"FPR {clear[n]['fpr_at_shipped_threshold']}"
            )
    for r in rows:
        if "linkage_auc_with_both_keys" not in r:
            continue
        lk = r["linkage_auc_with_both_keys"]
        print(
            f"{r['scheme']}: inversion with keys: cosine to the true descriptor "
            f"{r['inversion_db_keys_cosine_to_true']}, distance to her templates "
            f"{r['inversion_db_keys_mean_distance']}; linkage of inverted templates across two "
            f"platforms' keys: AUC {lk['same_photo']} / {lk['same_person']}"
        )
    print(
        "inversion = recovered descriptor accepted as her by clear search and nearer to her than "
        f"to anyone of {len(gallery(data)[1])} identities; the population mean as the recovered "
        f"face: {baseline['identified']:.3f} (accepted alone: {baseline['accepted']:.3f})"
    )
    counts = ", ".join(
        f"{short[s.name]}: {len(s.enrolled)} enrolled, {len(s.probes.owner)} images"
        for s in data.sets
    )
    print(f"sets — {counts}; public (attacker) identities: {len(np.unique(data.public_owner))}")


if __name__ == "__main__":
    main()
