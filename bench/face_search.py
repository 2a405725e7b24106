"""Benchmark of face search ("find me").

Prints, and writes to bench/results/face_search.json:

1. **Calibration.** Verification ROC of reclaim's face pipeline (HOG/CNN detection, 5-point
   alignment, dlib ResNet descriptor) on ``../shared/data/faces/deepface-pairs/master.csv``
   (300 labelled pairs): AUC, EER, TPR at FPR 1% and 0.1%. Those 300 pairs are all the pairs of
   25 photos of a handful of people: 262 negatives cannot resolve a 0.1% false-positive rate
   (one negative is 0.38%), and on them any threshold between the largest same-person distance
   and the smallest different-person distance looks perfect. So the operating threshold is set
   where the false-positive rate is 0.1% on a larger, disjoint set — LFW identities of the
   *calibration half* (a fixed hash split by name; the search corpus below uses only the other
   half), enrolled with 3 reference photos each and probed with the 7 manipulated variants of
   their other photos (the search corpus's fixture code) and every variant of the other
   identities — and master.csv and the plain LFW photos are reported beside it. The same
   variants chose SFace's weight in descriptor v3 (table printed). The score is a logistic fit
   of same/different on master.csv and the plain LFW photos (equal class weights). The
   calibration code is ``training/face_calibration/fit.py``, which alone writes
   ``src/reclaim/match/face_calibration.json``; here it runs in memory, and the search below
   uses the shipped file's threshold.
2. **Search.** A corpus of ≥ 1,000 images generated from the shared photos (fixture code in
   ``reclaim_fixtures.faces``; reclaim never edits images): for each enrolled identity (LFW,
   search half, 6 photos: 3 references, 3 probes), 7 variants of each probe photo (crop,
   Telegram JPEG q80 ≤ 1280 px, mirror, low resolution, occlusion, face pasted with feathered
   edges over another scene's face, photo inside a larger scene), plus distractors: the other
   identities of the search half (one photo as is, one as a random variant), real-color faces
   and the deepface scenes. The real CLI runs: ``reclaim enroll`` ×N, ``reclaim scan`` (faces
   on), ``reclaim findings --json``. Recall and false positives per enrolled identity at the
   calibrated threshold.
3. **Throughput** side by side with the ``face_recognition`` command-line tool (same dlib
   models) doing the same job — the enrolled people's reference photos as known people vs the
   corpus folder, ``--cpus 2`` — images/s and recall of each (face_recognition at its default
   tolerance 0.6, at reclaim's threshold, and at the tolerance where it makes no more false
   positives than reclaim; it matches on the nearest reference). Plus the cost of the CNN
   detector (off / as fallback / on every image) on a sample, to show why it is a fallback.
   ``--repeats N`` runs N such pairs, their order alternating, and prints each pair's speed
   ratios with their median and range (machines are noisy).

    python bench/face_search.py [--skip-fr] [--work DIR] [--identities 20]
                                [--repeats 3]

Generated files (corpus, cached descriptors) go to ``--work`` (default: a folder in the system
temp dir), never into the repo. Needs ``../shared/data/faces``.

Installing the comparison tool (not a dependency of reclaim; for this bench only)::

    .venv/bin/pip install --no-deps face_recognition     # + click if missing
    .venv/bin/pip show face_recognition                   # installed

``face_recognition`` imports ``face_recognition_models``, whose ``__init__`` uses
``pkg_resources`` (removed in setuptools 81). Do not downgrade setuptools in reclaim's venv: when
``pkg_resources`` is missing, the bench runs the installed package's CLI (``face_recognition.
face_recognition_cli.main``, same interpreter, same ``--cpus 2``) with a one-function stand-in
for it written to ``--work``. A separate install can be passed with ``--fr-bin``.

The scan runs with ``--check off``: the manipulation check (on by default when faces are searched)
is not part of the job face_recognition does. Times are wall clock and, steadier when other jobs
share the machine, CPU seconds of each tool's processes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from reclaim_fixtures.faces import VARIANTS, load_rgb, make_variant, scene_canvas, telegram_bytes

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))  # training/ (repository code, not an installed package)

from training.face_calibration.fit import (  # noqa: E402
    CAL_FILE,
    N_TEMPLATES,
    PARTS,
    SHARED,
    TARGET_FPR,
    _scenes,
    calibrate,
    combined,
    half,
    log,
    part_vectors,
)

RESULTS = HERE / "results" / "face_search.json"
# Identities that also appear among the deepface photos (used as scenes): never enrolled.
DEEPFACE_PEOPLE = {"Angelina_Jolie", "Jennifer_Aniston"}


# -- corpus ---------------------------------------------------------------------------------------


def build_corpus(work: Path, n_enrolled: int, seed: int = 7) -> dict[str, Any]:
    """Generate the search corpus (cached): manifest with every file's ground truth."""
    from reclaim.enroll import reference_face
    from reclaim.errors import ReclaimError
    from reclaim.faces.pipeline import find_faces

    root = work / f"corpus_{n_enrolled}_{seed}"
    manifest_path = root / "manifest.json"
    if manifest_path.exists():
        return json.loads(manifest_path.read_text())
    log(f"building the corpus in {root}")
    if root.exists():
        shutil.rmtree(root)
    (root / "corpus").mkdir(parents=True)
    (root / "known").mkdir()
    rng = np.random.default_rng(seed)
    lfw = SHARED / "lfw-gray"
    search_ids = sorted(d.name for d in lfw.iterdir() if d.is_dir() and half(d.name) == "search")
    six = [
        i for i in search_ids if len(list((lfw / i).iterdir())) >= 6 and i not in DEEPFACE_PEOPLE
    ]
    six.sort(key=lambda n: hashlib.sha1(b"enroll" + n.encode()).hexdigest())
    enrolled: dict[str, dict[str, Any]] = {}
    for ident in six:
        if len(enrolled) == n_enrolled:
            break
        refs, probes = [], []
        for p in sorted((lfw / ident).iterdir()):
            if len(refs) < N_TEMPLATES:
                try:
                    reference_face(p.read_bytes(), p.name)
                    refs.append(p)
                    continue
                except ReclaimError:
                    pass
            probes.append(p)
        if len(refs) == N_TEMPLATES and probes:
            enrolled[ident] = {"refs": refs, "probes": probes[:3]}
    scenes = _scenes()
    files: dict[str, dict[str, Any]] = {}

    def save(im: Any, truth: str | None, kind: str, source: str) -> None:
        name = f"c{len(files):05d}.jpg"
        (root / "corpus" / name).write_bytes(telegram_bytes(im))
        files[name] = {"identity": truth, "variant": kind, "source": source}

    def pick_scene() -> tuple[Any, tuple[int, int, int, int]]:
        return scenes[int(rng.integers(len(scenes)))]

    def face_box(im: Any) -> tuple[int, int, int, int]:
        f = find_faces(np.asarray(im))
        return f[0].box if f else (0, 0, im.width, im.height)

    for ident, e in enrolled.items():
        for k, p in enumerate(e["refs"]):
            shutil.copy(p, root / "known" / f"{ident}~{k}.jpg")
        for p in e["probes"]:
            im = load_rgb(p)
            box = face_box(im)
            for v in VARIANTS:
                save(make_variant(v, im, box, rng, pick_scene), ident, v, p.name)
    for ident in search_ids:
        if ident in enrolled:
            continue
        ps = sorted((lfw / ident).iterdir())
        save(load_rgb(ps[0]), None, "distractor-lfw", ps[0].name)
        im = load_rgb(ps[1])
        v = VARIANTS[int(rng.integers(len(VARIANTS)))]
        save(
            make_variant(v, im, face_box(im), rng, pick_scene), None, f"distractor-{v}", ps[1].name
        )
    rc = sorted((SHARED / "real-color").glob("*.jpg"))
    for i in rng.choice(len(rc), size=min(300, len(rc)), replace=False):
        save(load_rgb(rc[int(i)]), None, "distractor-real-color", rc[int(i)].name)
    for p in sorted((SHARED / "deepface-pairs").glob("*.jpg")):
        save(scene_canvas(load_rgb(p)), None, "distractor-deepface", p.name)
    manifest = {
        "enrolled": {i: {"refs": [str(p) for p in e["refs"]]} for i, e in enrolled.items()},
        "files": files,
        "corpus": str(root / "corpus"),
        "known": str(root / "known"),
    }
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


# -- the two tools ----------------------------------------------------------------------------


def _tree_cpu(root: int, seen: dict[int, float]) -> None:
    """Record the CPU seconds (user + system) of ``root`` and every process below it, by pid."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            f = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(d.name)] = int(f[1])
        cpu[int(d.name)] = (int(f[11]) + int(f[12])) / tick
    for pid, c in cpu.items():
        q = pid
        while q > 1 and q != root:
            q = parent.get(q, 1)
        if q == root:
            seen[pid] = max(c, seen.get(pid, 0.0))


def run_timed(cmd: list[str]) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run a command; (result, wall seconds, CPU seconds of its whole process tree).

    CPU time is steadier than wall-clock time on a machine shared with other jobs. It is
    sampled from /proc every 0.5 s (face_recognition's workers hang off a forkserver and are
    never waited for, so the usual child rusage misses them); a process's last < 0.5 s may be
    missed, the same for both tools."""
    t0 = time.perf_counter()
    seen: dict[int, float] = {}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        out: list[str] = []

        def drain() -> None:
            o, e = proc.communicate()
            out.extend([o, e])

        import threading

        th = threading.Thread(target=drain)
        th.start()
        while th.is_alive():
            _tree_cpu(proc.pid, seen)
            th.join(0.5)
    wall = time.perf_counter() - t0
    res = subprocess.CompletedProcess(cmd, proc.returncode, out[0], out[1])
    return res, wall, sum(seen.values())


def reclaim_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reclaim.cli", *args], capture_output=True, text=True, check=False
    )


def run_reclaim(man: dict[str, Any], work: Path) -> dict[str, Any]:
    case = work / "case"
    if case.exists():
        shutil.rmtree(case)
    t0 = time.perf_counter()
    for ident, e in man["enrolled"].items():
        p = reclaim_cli("enroll", "--case", str(case), "--name", ident, "--consent", *e["refs"])
        if p.returncode != 0:
            raise SystemExit(f"enroll {ident} failed: {p.stderr.strip()}")
    t_enroll = time.perf_counter() - t0
    # --check off: the manipulation check is not part of the face job face_recognition does.
    p, t_scan, cpu_scan = run_timed(
        [sys.executable, "-m", "reclaim.cli", "scan", man["corpus"], "--case", str(case),
         "--check", "off"]
    )  # fmt: skip
    if p.returncode != 0:
        raise SystemExit(f"scan failed: {p.stderr.strip()}")
    t2 = time.perf_counter()
    p = reclaim_cli("findings", "--case", str(case), "--json")
    t_find = time.perf_counter() - t2
    found = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    import sqlite3

    with sqlite3.connect(case / "case.sqlite") as c:
        det = dict(c.execute("SELECT detector, COUNT(*) FROM faces GROUP BY detector").fetchall())
        no_face = c.execute("SELECT COUNT(*) FROM face_scans WHERE faces = 0").fetchone()[0]
    matches = {(f["enrollment"], Path(f["locator"]["path"]).name): f["distance"] for f in found}
    return {
        "all_distances": all_distances(case),
        "seconds_enroll": round(t_enroll, 2),
        "seconds_scan": round(t_scan, 2),
        "cpu_seconds_scan": round(cpu_scan, 2),
        "seconds_findings": round(t_find, 2),
        "faces_by_detector": det,
        "images_without_a_face": no_face,
        "matches": matches,
    }


def all_distances(case: Path, part: str = "v3") -> dict[tuple[str, str], float]:
    """Combined distance of every (enrollment, corpus file) pair, from the case store's faces and
    templates with reclaim's own rule (findings keep only the pairs within the threshold): for
    the recall-vs-false-positives curve and the misses below."""
    import sqlite3

    from reclaim.faces.pipeline import descriptor_from_bytes
    from reclaim.match.faces import match_templates

    with sqlite3.connect(case / "case.sqlite") as c:
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
    vecs = np.stack([descriptor_from_bytes(r[1]) for r in rows])
    out: dict[tuple[str, str], float] = {}
    for ident, t in temps.items():
        if part == "v3":
            _, _, comb = match_templates(vecs, np.stack(t))
        else:
            comb = combined(part_vectors(vecs, part), part_vectors(np.stack(t), part))
        for (sha, _), d in zip(rows, comb, strict=True):
            for n in names[sha]:
                key = (ident, n)
                out[key] = min(float(d), out.get(key, 9.0))
    return out


def recall_curve(
    man: dict[str, Any], dist: dict[tuple[str, str], float], threshold: float
) -> dict[str, Any]:
    """Recall against false positives over thresholds, and the ceiling: the best recall at ≤ 0.1%
    false positives on this corpus with the threshold chosen on the corpus's own labels (an
    oracle, never an operating point: it shows what no threshold choice can exceed)."""
    files = man["files"]
    pos = [d for (i, n), d in dist.items() if files[n]["identity"] == i]
    neg = sorted(d for (i, n), d in dist.items() if files[n]["identity"] != i)
    npos = sum(1 for f in files.values() if f["identity"] in man["enrolled"])
    nneg = len(man["enrolled"]) * len(files) - npos
    p = np.sort(np.array(pos))
    allowed = int(np.floor(TARGET_FPR * nneg))
    oracle = float(np.nextafter(neg[allowed], -np.inf)) if allowed < len(neg) else 9.0
    curve = []
    for t in (round(threshold * f, 4) for f in (0.96, 0.98, 1.0, 1.02, 1.04, 1.06)):
        fp = int(np.searchsorted(neg, t, side="right"))
        curve.append(
            {
                "threshold": t,
                "recall": round(int(np.searchsorted(p, t, side="right")) / npos, 4),
                "false_positives": fp,
                "fpr": round(fp / nneg, 6),
            }
        )
    return {
        "oracle_threshold_at_fpr_0.1pct": round(oracle, 4),
        "oracle_recall_at_fpr_0.1pct": round(
            int(np.searchsorted(p, oracle, side="right")) / npos, 4
        ),
        "curve": curve,
    }


def by_part(man: dict[str, Any], case: Path, cal: dict[str, Any]) -> dict[str, Any]:
    """Recall and false positives of each network's part alone on the corpus, at that part's own
    threshold (0.1 % false positives on the LFW calibration half), from the case's stored faces."""
    out = {}
    for part in PARTS:
        thr = float(cal["parts"][part]["threshold_at_fpr_0.1pct"])
        dist = all_distances(case, part)
        score = score_matches(man, dist, thr)
        out[part] = {
            "threshold": thr,
            **{k: score[k] for k in ("recall", "false_positives", "fpr")},
            "oracle_recall_at_fpr_0.1pct": recall_curve(man, dist, thr)[
                "oracle_recall_at_fpr_0.1pct"
            ],
        }
    return out


def misses_by_source(
    man: dict[str, Any], dist: dict[tuple[str, str], float], threshold: float
) -> list[dict[str, Any]]:
    """Missed positives grouped by the probe photo they were made from, most misses first."""
    miss: dict[str, list[str]] = defaultdict(list)
    for n, f in man["files"].items():
        i = f["identity"]
        if i in man["enrolled"] and dist.get((i, n), 9.0) > threshold:
            d = dist.get((i, n))
            miss[f["source"]].append(f"{f['variant']} " + ("no face" if d is None else f"{d:.3f}"))
    ranked = sorted(miss.items(), key=lambda kv: -len(kv[1]))
    return [{"source": k, "missed": v} for k, v in ranked]


_FR_SHIM = """\
# pkg_resources stand-in for face_recognition_models (setuptools >= 81 has none): bench only.
import importlib.util
import os


def resource_filename(package, name):
    spec = importlib.util.find_spec(package)
    return os.path.join(list(spec.submodule_search_locations)[0], name)
"""


def _fr_shim(work: Path) -> Path | None:
    """A folder holding a one-function ``pkg_resources`` when the real one is missing, so that
    ``face_recognition_models`` (imported by face_recognition) loads in reclaim's venv."""
    import importlib.util

    if importlib.util.find_spec("pkg_resources") is not None:
        return None
    d = work / "fr_shim"
    d.mkdir(parents=True, exist_ok=True)
    (d / "pkg_resources.py").write_text(_FR_SHIM)
    return d


def fr_command(arg: str | None, work: Path) -> list[str] | None:
    """How to run the face_recognition CLI: ``--fr-bin``, else the venv's package (with the
    pkg_resources stand-in where needed: same interpreter and process count as its script)."""
    if arg:
        return [arg]
    import importlib.util

    if importlib.util.find_spec("face_recognition") is None:
        exe = shutil.which("face_recognition")
        return [exe] if exe else None
    shim = _fr_shim(work)
    code = (
        "import sys; sys.argv[0] = 'face_recognition'; "
        + (f"sys.path.insert(0, {str(shim)!r}); " if shim else "")
        + "from face_recognition.face_recognition_cli import main; main()"
    )
    return [sys.executable, "-c", code]


def run_fr(man: dict[str, Any], cmd: list[str]) -> dict[str, Any]:
    p, dt, cpu = run_timed(
        [*cmd, "--cpus", "2", "--show-distance", "true", man["known"], man["corpus"]]
    )
    if p.returncode != 0 or "Please install" in p.stdout[:200]:
        raise SystemExit(f"face_recognition failed: {(p.stderr or p.stdout).strip()[-500:]}")
    best: dict[tuple[str, str], float] = {}
    for line in p.stdout.splitlines():
        parts = line.rsplit(",", 2)
        if len(parts) != 3 or parts[1] in ("unknown_person", "no_persons_found"):
            continue
        ident = parts[1].split("~")[0]
        key = (ident, Path(parts[0]).name)
        d = float(parts[2]) if parts[2] not in ("", "None") else 0.0
        best[key] = min(d, best.get(key, 9.0))
    return {"seconds": round(dt, 2), "cpu_seconds": round(cpu, 2), "matches": best}


def score_matches(
    man: dict[str, Any], matches: dict[tuple[str, str], float], threshold: float
) -> dict[str, Any]:
    files = man["files"]
    enrolled = list(man["enrolled"])
    per: dict[str, Any] = {}
    by_variant: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    fp_list = []
    for ident in enrolled:
        pos = [n for n, f in files.items() if f["identity"] == ident]
        neg = [n for n, f in files.items() if f["identity"] != ident]
        hit = [n for n in pos if matches.get((ident, n), 9.0) <= threshold]
        fps = [n for n in neg if matches.get((ident, n), 9.0) <= threshold]
        for n in pos:
            v = files[n]["variant"]
            by_variant[v][1] += 1
            by_variant[v][0] += n in hit
        for n in fps:
            fp_list.append(
                {"enrollment": ident, "file": n, **files[n], "distance": matches[(ident, n)]}
            )
        per[ident] = {
            "positives": len(pos),
            "found": len(hit),
            "recall": round(len(hit) / len(pos), 4),
            "false_positives": len(fps),
            "negatives": len(neg),
            "fpr": round(len(fps) / len(neg), 5),
        }
    tp = sum(p["found"] for p in per.values())
    npos = sum(p["positives"] for p in per.values())
    fp = sum(p["false_positives"] for p in per.values())
    nneg = sum(p["negatives"] for p in per.values())
    return {
        "threshold": threshold,
        "recall": round(tp / npos, 4),
        "false_positives": fp,
        "negative_pairs": nneg,
        "fpr": round(fp / nneg, 6),
        "images_with_a_false_positive": len({f["file"] for f in fp_list}),
        "recall_by_variant": {v: round(a / b, 4) for v, (a, b) in sorted(by_variant.items())},
        "per_identity": per,
        "false_positive_list": sorted(fp_list, key=lambda f: f["distance"])[:30],
    }


def cnn_cost(man: dict[str, Any], n: int = 24) -> dict[str, Any]:
    """Seconds per image of face detection + descriptors with the CNN off / fallback / always."""
    from reclaim.faces.pipeline import FaceOptions, find_faces
    from reclaim.media import Media

    names = sorted(man["files"])
    rng = np.random.default_rng(3)
    pick = [names[int(i)] for i in rng.choice(len(names), size=min(n, len(names)), replace=False)]
    imgs = []
    for name in pick:
        m = Media((Path(man["corpus"]) / name).read_bytes())
        imgs.append(np.asarray(m.image(max_side=2048)))
    out: dict[str, Any] = {"images": len(imgs)}
    find_faces(imgs[0], FaceOptions(cnn="always"))  # load models outside the timing
    for mode in ("off", "fallback", "always"):
        o = FaceOptions(cnn=mode)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        nf = sum(len(find_faces(im, o)) for im in imgs)
        out[mode] = {"s_per_image": round((time.perf_counter() - t0) / len(imgs), 3), "faces": nf}
    return out


def per_image_cost(man: dict[str, Any], work: Path, n: int = 30) -> dict[str, Any] | None:
    """One process, same images: seconds per image of reclaim's face pipeline and of
    face_recognition's (load_image_file + face_encodings, as its CLI does), by image size."""
    shim = _fr_shim(work)
    if shim is not None:
        sys.path.insert(0, str(shim))
    try:
        import face_recognition  # type: ignore[import-not-found]
    except (Exception, SystemExit):  # it calls quit() when its models cannot be imported
        return None
    from reclaim.faces.pipeline import FaceOptions, find_faces
    from reclaim.media import Media

    corpus = Path(man["corpus"])
    sizes = {}
    for name in sorted(man["files"]):
        with open(corpus / name, "rb") as fh:
            from PIL import Image

            sizes[name] = max(Image.open(fh).size)
    rng = np.random.default_rng(5)
    out: dict[str, Any] = {}
    find_faces(np.zeros((64, 64, 3), np.uint8))  # load models outside the timing
    face_recognition.face_encodings(np.zeros((64, 64, 3), np.uint8))
    for bucket, test in (("<=400px", lambda s: s <= 400), (">400px", lambda s: s > 400)):
        names = [k for k, v in sizes.items() if test(v)]
        pick = [names[int(i)] for i in rng.choice(len(names), min(n, len(names)), replace=False)]
        t0 = time.perf_counter()
        nf = 0
        for name in pick:
            m = Media((corpus / name).read_bytes())
            nf += len(find_faces(np.asarray(m.image(max_side=2048)), FaceOptions()))
        ours = (time.perf_counter() - t0) / len(pick)
        t0 = time.perf_counter()
        nfr = 0
        for name in pick:
            img = face_recognition.load_image_file(corpus / name)
            nfr += len(face_recognition.face_encodings(img))
        theirs = (time.perf_counter() - t0) / len(pick)
        out[bucket] = {
            "images": len(pick),
            "reclaim_s_per_image": round(ours, 4),
            "face_recognition_s_per_image": round(theirs, 4),
            "ratio": round(theirs / ours, 3),
            "reclaim_faces": nf,
            "face_recognition_faces": nfr,
        }
    return out


def pair_row(fr: dict[str, Any], ours: dict[str, Any]) -> dict[str, float]:
    """One side-by-side throughput measurement: seconds and reclaim's speed ratios."""
    scan, enroll = ours["seconds_scan"], ours["seconds_enroll"]
    return {
        "face_recognition_seconds": fr["seconds"],
        "face_recognition_cpu_seconds": fr["cpu_seconds"],
        "reclaim_scan_seconds": scan,
        "reclaim_scan_cpu_seconds": ours["cpu_seconds_scan"],
        "reclaim_enroll_seconds": enroll,
        "ratio_scan": round(fr["seconds"] / scan, 3),
        "ratio_scan_cpu": round(fr["cpu_seconds"] / ours["cpu_seconds_scan"], 3),
        "ratio_end_to_end": round(fr["seconds"] / (scan + enroll + ours["seconds_findings"]), 3),
    }


def print_pairs(pairs: list[dict[str, float]]) -> None:
    print(f"{len(pairs)} throughput pairs (order alternating; the first is the one above):")
    for k, p in enumerate(pairs):
        print(
            f"  pair {k + 1}: face_recognition {p['face_recognition_seconds']:.1f} s, reclaim scan "
            f"{p['reclaim_scan_seconds']:.1f} s + enroll {p['reclaim_enroll_seconds']:.1f} s: "
            f"scan {p['ratio_scan']:.2f}x ({p['ratio_scan_cpu']:.2f}x CPU), end to end "
            f"{p['ratio_end_to_end']:.2f}x"
        )
    for key, label in (
        ("ratio_scan", "scan only, wall clock"),
        ("ratio_scan_cpu", "scan only, CPU seconds"),
        ("ratio_end_to_end", "end to end"),
    ):
        v = [p[key] for p in pairs]
        print(f"  {label}: median {np.median(v):.2f}x, range {min(v):.2f}–{max(v):.2f}x")


def print_weight_table(rows: list[dict[str, Any]]) -> None:
    """An SFace-weight table (``weight_row`` rows), one line per weight."""
    for row in rows:
        tprs = " ".join(f"{v:.4f}" for k, v in row.items() if k.startswith("tpr"))
        print(f"  w {row['weight']:<4} {tprs}  mean {row['mean']:.4f}")


def _model_cache_state() -> str:
    """Whether reclaim's model cache (faces/modelcache) held entries when the bench began:
    with it, each process loads the face models ~1.5 s faster."""
    from reclaim.faces.modelcache import cache_dir

    d = cache_dir()
    if d is None:
        return "off"
    n = len(list(d.glob("*.bin"))) if d.is_dir() else 0
    return f"{'warm' if n else 'cold'} ({n} entries in {d})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only-calibration", action="store_true")
    ap.add_argument("--skip-fr", action="store_true", help="skip the face_recognition run")
    ap.add_argument("--fr-bin", help="face_recognition executable (default: the venv's)")
    ap.add_argument("--identities", type=int, default=20, help="enrolled identities")
    ap.add_argument(
        "--repeats", type=int, default=1,
        help="throughput pairs (reclaim, face_recognition) to run, in alternating order",
    )  # fmt: skip
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "reclaim-face-bench")
    args = ap.parse_args()
    if not SHARED.exists():
        raise SystemExit(f"shared data not found at {SHARED}")
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_at_start": os.getloadavg(),
        "model_cache_at_start": _model_cache_state(),
    }

    t0 = time.perf_counter()
    cal = calibrate(args.work)
    results["calibration_seconds"] = round(time.perf_counter() - t0, 1)
    shipped = json.loads(CAL_FILE.read_text()) if CAL_FILE.exists() else cal
    results["calibration"] = cal
    results["shipped_threshold"] = shipped["threshold"]
    m, lf = cal["master_csv"], cal["lfw_calibration_half"]
    print("\n(1) verification ROC (reclaim: HOG, CNN fallback, YuNet; 5-point; descriptor v3)")
    print(f"{'set':<40}{'pairs +/-':>14}{'AUC':>8}{'EER':>8}{'TPR@1%':>8}{'TPR@0.1%':>10}")
    rows = [("deepface master.csv", m), ("LFW calibration half, 3 templates", lf)]
    rows += [(f"  LFW cal., {PARTS[k]}", cal["parts"][k]) for k in ("dlib", "sface")]
    for label, s in rows:
        print(
            f"{label:<40}{s['positives']:>7}/{s['negatives']:<7}{s['auc']:>7.4f}{s['eer']:>8.4f}"
            f"{s['tpr_at_fpr_1pct']:>8.4f}{s['tpr_at_fpr_0.1pct']:>10.4f}"
        )
    print(
        f"master.csv: same person ≤ {m['max_same_person_distance']}, different ≥ "
        f"{m['min_different_person_distance']}, EER threshold {m['eer_threshold']}; smallest "
        f"resolvable FPR {m['smallest_resolvable_fpr']:.4f}"
    )
    print(
        f"threshold at FPR 0.1% (variants of the LFW calibration half): {cal['threshold']}  "
        f"(plain LFW photos: {lf['threshold_at_fpr_0.1pct']}; shipped: "
        f"{shipped['threshold']}); score = 1/(1+exp({cal['logistic']['slope']}·(d − "
        f"{cal['logistic']['midpoint']})))"
    )
    print("SFace weight (LFW calibration half, 3 templates; TPR at FPR 0.01/0.03/0.1%):")
    print_weight_table(cal["sface_weight_selection"])
    vt = cal["sface_weight_selection_variants"]
    print(
        f"SFace weight on manipulated variants of the calibration half ({vt['identities']} "
        f"identities, {vt['positives']} positives, {vt['negative_pairs']} negative pairs; TPR at "
        "FPR 0.01/0.03/0.1%):"
    )
    print_weight_table(vt["table"])
    if args.only_calibration:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1, default=str) + "\n")
        return

    man = build_corpus(args.work, args.identities)
    n_files = len(man["files"])
    kinds = Counter(f["variant"] for f in man["files"].values())
    results["corpus"] = {"images": n_files, "enrolled": len(man["enrolled"]), "kinds": kinds}
    log(f"corpus: {n_files} images, {len(man['enrolled'])} enrolled identities")

    thr = float(shipped["threshold"])
    log("running reclaim (enroll, scan, findings)")
    ours = run_reclaim(man, args.work)
    alld = ours.pop("all_distances")
    ours_score = score_matches(man, ours.pop("matches"), thr)
    results["reclaim"] = {**ours, **ours_score}
    results["reclaim"]["recall_curve"] = recall_curve(man, alld, thr)
    results["reclaim"]["by_part"] = by_part(man, args.work / "case", cal)
    results["reclaim"]["misses_by_source"] = misses_by_source(man, alld, thr)
    ips = n_files / ours["seconds_scan"]
    total = ours["seconds_enroll"] + ours["seconds_scan"] + ours["seconds_findings"]
    results["reclaim"]["images_per_s_scan"] = round(ips, 2)
    results["reclaim"]["images_per_s_total"] = round(n_files / total, 2)

    fr = None
    cmd = None if args.skip_fr else fr_command(args.fr_bin, args.work)
    if cmd:
        log("running face_recognition --cpus 2")
        fr = run_fr(man, cmd)
        fm = fr.pop("matches")
        fr["at_default_0.6"] = score_matches(man, fm, 0.6)
        fr["at_reclaim_threshold"] = score_matches(man, fm, thr)
        # Fair comparison: face_recognition's threshold lowered until it makes no more false
        # positives than reclaim did (its output only lists distances ≤ 0.6).
        files = man["files"]
        negs = sorted(d for (i, n), d in fm.items() if files[n]["identity"] != i)
        k = results["reclaim"]["false_positives"]
        eq = float(np.nextafter(negs[k], -np.inf)) if k < len(negs) else 0.6
        fr["at_equal_false_positives"] = score_matches(man, fm, np.floor(eq * 1e4) / 1e4)
        fr["images_per_s"] = round(n_files / fr["seconds"], 2)
        results["face_recognition"] = fr
        # Machines are noisy: more pairs, each side by side, the order alternating.
        pairs = [pair_row(fr, ours)]
        for i in range(1, args.repeats):
            log(f"throughput pair {i + 1} of {args.repeats}")
            runs: dict[str, dict[str, Any]] = {}
            for who in ("fr", "reclaim") if i % 2 else ("reclaim", "fr"):
                runs[who] = run_fr(man, cmd) if who == "fr" else run_reclaim(man, args.work)
            pairs.append(pair_row(runs["fr"], runs["reclaim"]))
        results["throughput_pairs"] = pairs
    elif not args.skip_fr:
        log("face_recognition not installed: see this script's docstring; comparison skipped")
    log("CNN cost on a sample")
    results["cnn_cost"] = cnn_cost(man)
    log("per-image cost by size, one process")
    results["per_image_cost"] = per_image_cost(man, args.work)

    r = results["reclaim"]
    print(f"\n(2) search: {n_files} images, {len(man['enrolled'])} enrolled identities")
    print(f"corpus: {dict(sorted(kinds.items()))}")
    print(
        f"reclaim at threshold {thr}: recall {r['recall']:.4f}, false positives "
        f"{r['false_positives']} of {r['negative_pairs']} (enrollment, other image) pairs = "
        f"FPR {r['fpr']:.5f}"
    )
    print(
        "recall by variant: " + ", ".join(f"{k} {v:.3f}" for k, v in r["recall_by_variant"].items())
    )
    print(f"{'identity':<26}{'recall':>8}{'found':>7}{'FP':>5}{'FPR':>9}")
    for ident, s in r["per_identity"].items():
        print(
            f"{ident:<26}{s['recall']:>8.3f}{s['found']:>4}/{s['positives']:<3}"
            f"{s['false_positives']:>4}{s['fpr']:>10.5f}"
        )
    for part, v in r["by_part"].items():
        print(
            f"  {PARTS[part]:<22} at its own LFW threshold {v['threshold']}: recall "
            f"{v['recall']:.4f}, {v['false_positives']} FP (FPR {v['fpr']:.5f}); oracle recall at "
            f"FPR 0.1% {v['oracle_recall_at_fpr_0.1pct']:.4f}"
        )
    rc = r["recall_curve"]
    print(
        "recall vs false positives by threshold: "
        + ", ".join(
            f"{c['threshold']:.2f}: {c['recall']:.3f}/{c['false_positives']} FP"
            for c in rc["curve"]
        )
    )
    print(
        f"ceiling (oracle threshold {rc['oracle_threshold_at_fpr_0.1pct']} chosen on this corpus's "
        f"own labels for FPR 0.1%, not an operating point): recall "
        f"{rc['oracle_recall_at_fpr_0.1pct']:.4f}"
    )
    for m in r["misses_by_source"][:6]:
        print(f"  missed from {m['source']}: {', '.join(m['missed'])}")
    for f in r["false_positive_list"][:10]:
        print(
            f"  FP {f['enrollment']} ← {f['file']} ({f['variant']}, {f['source']}) "
            f"d={f['distance']:.3f}"
        )
    print("\n(3) throughput, same job, same corpus, 2 processes")
    print(f"{'tool':<44}{'seconds':>9}{'images/s':>10}{'recall':>8}{'FP':>6}")
    print(
        f"{'reclaim enroll+scan+findings':<44}{total:>9.1f}{n_files / total:>10.2f}"
        f"{r['recall']:>8.4f}{r['false_positives']:>6}"
    )
    print(f"{'  of which reclaim scan --check off':<44}{ours['seconds_scan']:>9.1f}{ips:>10.2f}")
    if fr is not None:
        rows = [
            ("face_recognition, tolerance 0.6 (default)", "at_default_0.6"),
            (f"face_recognition, tolerance {thr}", "at_reclaim_threshold"),
            (
                f"face_recognition, tolerance {fr['at_equal_false_positives']['threshold']}",
                "at_equal_false_positives",
            ),
        ]
        for label, key in rows:
            s = fr[key]
            print(
                f"{label:<44}{fr['seconds']:>9.1f}{fr['images_per_s']:>10.2f}{s['recall']:>8.4f}"
                f"{s['false_positives']:>6}"
            )
        first = results["throughput_pairs"][0]
        scan_ratio, cpu_ratio = first["ratio_scan"], first["ratio_scan_cpu"]
        results["speed_ratio_end_to_end"] = e2e = first["ratio_end_to_end"]
        print(f"speed ratio reclaim/face_recognition (end to end): {e2e:.2f}x")
        print(
            f"speed ratio, scan only: {scan_ratio:.2f}x wall clock; {cpu_ratio:.2f}x in CPU "
            f"seconds (face_recognition {fr['cpu_seconds']:.0f} s, reclaim scan "
            f"{ours['cpu_seconds_scan']:.0f} s; CPU time is steadier when other jobs share the "
            f"machine: load average at start {results['load_average_at_start'][0]:.1f})"
        )
        print(f"reclaim's model cache at start: {results['model_cache_at_start']}")
        results["speed_ratio_scan"] = scan_ratio
        results["speed_ratio_scan_cpu"] = cpu_ratio
        if len(results["throughput_pairs"]) > 1:
            print_pairs(results["throughput_pairs"])
    c = results["cnn_cost"]
    print(
        f"CNN cost on {c['images']} corpus images, one process: "
        f"off {c['off']['s_per_image']} s/img, "
        f"fallback {c['fallback']['s_per_image']} s/img, always {c['always']['s_per_image']} s/img "
        f"({c['always']['faces']} vs {c['fallback']['faces']} faces)"
    )
    print(f"reclaim faces by detector: {ours['faces_by_detector']}")
    pc = results["per_image_cost"]
    if pc:
        print("one process, same images, face work only (decode + detect + describe):")
        for bucket, v in pc.items():
            print(
                f"  {bucket:>8}: reclaim {v['reclaim_s_per_image']:.3f} s/img "
                f"({v['reclaim_faces']} faces), face_recognition "
                f"{v['face_recognition_s_per_image']:.3f} s/img ({v['face_recognition_faces']} "
                f"faces): {v['ratio']:.2f}x"
            )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, default=str) + "\n")
    log(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
