"""Face shields at the platform: match-on-upload throughput with N shields against hash-only,
memory per shield, and the cost of matching one face as the number of shields grows.

    python bench/shield_platform.py                    # 10,000 shields, the upload mix below
    python bench/shield_platform.py --shields 1000 --rounds 1 --quick

One server (``reclaim serve-platform``'s app under uvicorn, SQLite, ``--hash-workers`` decoding
workers), two tenants with the same hash bank content: ``plain`` holds no shield (its uploads are
hashed and looked up only: today's cost), ``shielded`` holds N shields (its uploads are also
searched for faces, which are matched against the shields). Both upload the same files to
``POST /m/lookup`` (HMA's match-on-upload) from ``--concurrency`` client threads, in alternating
rounds (plain, shielded, plain, …), so load on this machine hits both alike; the ratio is of
medians over rounds.

Uploads: a mix of what a platform receives, all re-encoded as Telegram does (≤1280 px, JPEG
q80): the photos of ``../shared/data/faces/deepface-pairs`` (portraits and group photos, 465 px
to 2,280 px), LFW photos (350 px), and ImageNet/COCO photos of ``../shared/data/detect/
diffusion-dev/real`` (mostly no face). The N shields: one real person (3 LFW photos, made with
her reclaim's ``make_shield`` and taken in through the intake endpoint, so some uploads match and
are queued for review) and N − 1 synthetic people around the shipped population mean, stored
through the same store call as intake (``add_shield``) to save time.

Matching cost: ``ShieldIndex.match`` of one face against 10k, 100k shields (and 1M when
``--million``: 3 GB of codes), synthetic codes, median of repeated calls.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as pyplatform
import random
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results" / "shield_platform.json"


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- uploads ------------------------------------------------------------------------------------


def uploads(quick: bool) -> tuple[list[tuple[str, bytes]], list[Path]]:
    """(kind, bytes) of the upload mix, and her 3 reference photos."""
    from reclaim_fixtures.faces import load_rgb, telegram_bytes

    rng = random.Random(20)
    faces = SHARED / "faces"
    deepface = sorted((faces / "deepface-pairs").glob("*.jpg"))
    lfw_people = sorted(p for p in (faces / "lfw-gray").iterdir() if p.is_dir())
    lfw = [sorted(p.iterdir())[0] for p in rng.sample(lfw_people, 40)]
    real = sorted((SHARED / "detect" / "diffusion-dev" / "real").iterdir())
    real = rng.sample(real, 60)
    her = sorted((faces / "lfw-gray" / "Colin_Powell").iterdir())
    chosen = [("portrait/group", p) for p in deepface] + [("lfw", p) for p in lfw]
    chosen += [("imagenet/coco", p) for p in real] + [("her", p) for p in her[3:13]]
    if quick:
        chosen = chosen[::4]
    out = [(kind, telegram_bytes(load_rgb(p))) for kind, p in chosen]
    return out, her[:3]


# -- shields ------------------------------------------------------------------------------------


def synthetic_people(n: int, seed: int = 1) -> np.ndarray:
    """(n × 3 × 384) descriptors: n people around the population mean, 3 photos each."""
    from reclaim.shield.protocol import population

    rng = np.random.default_rng(seed)
    mean = population().mean
    centre = mean + rng.normal(0, 0.06, (n, 1, mean.size))
    return np.asarray(centre + rng.normal(0, 0.08 / np.sqrt(mean.size), (n, 3, mean.size)))


def fill_shields(store: Any, keys: Any, tenant_id: int, tenant: str, n: int) -> float:
    """Store ``n`` synthetic shields for the tenant (layered, sealed codes, as intake stores them),
    spread over the active epochs. Returns seconds taken."""
    import secrets

    t0 = time.perf_counter()
    people = synthetic_people(n)
    epochs = keys.active()
    for k, epoch in enumerate(epochs):
        mine = people[k :: len(epochs)]
        if not len(mine):
            continue
        secret = keys.secret(epoch.epoch)
        codes = secret.intake_key(tenant).iom.codes(mine.reshape(-1, mine.shape[-1]))
        layered = secret.layer(tenant).apply(codes).reshape(len(mine), 3, -1)
        seal = secret.code_seal(tenant_id)
        for c in layered:
            sid = secrets.token_hex(16)
            store.add_shield(
                tenant_id,
                shield_id=sid,
                epoch=epoch.epoch,
                source="bench",
                receipt={"format": "bench"},
                revocation_commitment=secrets.token_hex(32),
                codes=[seal.seal(bytes(x.tobytes()), sid, i) for i, x in enumerate(c)],
            )
    return time.perf_counter() - t0


# -- the server ---------------------------------------------------------------------------------


class Server:
    def __init__(self, app: Any) -> None:
        import socket

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        cfg = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error")
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


def run_round(
    base: str, headers: dict[str, str], files: list[tuple[str, bytes]], concurrency: int
) -> dict[str, Any]:
    lat: list[float] = []
    queued = 0
    errors = 0

    def one(item: tuple[str, bytes]) -> None:
        nonlocal queued, errors
        with httpx.Client(timeout=300) as c:
            t = time.perf_counter()
            r = c.post(
                f"{base}/m/lookup",
                headers=headers,
                files={"photo": ("upload.jpg", item[1], "image/jpeg")},
            )
            lat.append(time.perf_counter() - t)
            if r.status_code != 200:
                errors += 1
            elif "X-Reclaim-Review-Item" in r.headers:
                queued += 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as ex:
        list(ex.map(one, files))
    wall = time.perf_counter() - t0
    lat.sort()
    return {
        "uploads": len(files),
        "seconds": round(wall, 2),
        "uploads_per_s": round(len(files) / wall, 2),
        "p50_ms": round(1000 * lat[len(lat) // 2], 1),
        "p99_ms": round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1),
        "queued_for_review": queued,
        "errors": errors,
    }


# -- matching cost alone ------------------------------------------------------------------------


def match_cost(sizes: list[int], reps: int = 30) -> list[dict[str, Any]]:
    """ms to match one face (3 faces: an upload's cap) against n shields of 3 templates."""
    from reclaim.platform.shields import equal_share

    rng = np.random.default_rng(5)
    out = []
    for n in sizes:
        stored = rng.integers(0, 16, size=(3 * n, 1024), dtype=np.uint8)
        for faces in (1, 3):
            q = rng.integers(0, 16, size=(faces, 1024), dtype=np.uint8)
            equal_share(stored, q)
            times = []
            for _ in range(max(3, reps if n <= 100_000 else 5)):
                t = time.perf_counter()
                equal_share(stored, q)
                times.append(time.perf_counter() - t)
            out.append(
                {
                    "shields": n,
                    "faces": faces,
                    "ms_median": round(1000 * statistics.median(times), 2),
                    "codes_mb": round(stored.nbytes / 2**20, 1),
                }
            )
            log(f"  match cost n={n:,} faces={faces}: {out[-1]['ms_median']} ms")
        del stored
    return out


# -- accuracy of the platform's fast face path ------------------------------------------------


def accuracy(identities: int, seed: int = 7, keys: int = 5) -> dict[str, Any]:
    """Shield recall and false matches with uploads' faces found the platform's two ways.

    ``identities`` LFW people with ≥ 5 photos: her side's templates from photos 1–3 (the full
    pipeline, as ``reclaim enroll``), one shield each under one intake key; uploads are the 7
    manipulated variants (crop, jpeg, mirror, lowres, occlusion, swap, inscene) of each of her
    other photos, Telegram-encoded, their faces (the 3 largest, as the service) found with
    ``fast`` (YuNet only) or ``full`` (YuNet + HOG + CNN) options; an upload's score for a
    shield is its best face's, as on the service. Impostors: every upload against every other
    shield (per (upload, shield) pair). Scored under ``keys`` fixed intake keys: mean and
    range over keys.
    """
    from reclaim.analysis import analyze_bytes
    from reclaim.faces.detect import FaceOptions
    from reclaim.faces.pipeline import find_faces
    from reclaim.media import MediaLimits
    from reclaim.shield.protocol import EpochSecret, population, shield_score
    from reclaim_fixtures.faces import VARIANTS, load_rgb, make_variant, scene_canvas
    from reclaim_fixtures.faces import telegram_bytes as tg

    rng = np.random.default_rng(seed)
    lfw = SHARED / "faces" / "lfw-gray"
    people = [p for p in sorted(lfw.iterdir()) if p.is_dir() and len(list(p.iterdir())) >= 5]
    people = [people[i] for i in sorted(rng.choice(len(people), identities, replace=False))]
    scenes_dir = SHARED / "faces" / "deepface-pairs"
    scenes = []
    for p in sorted(scenes_dir.glob("*.jpg"))[:12]:
        im = scene_canvas(load_rgb(p))
        f = find_faces(np.asarray(im))
        if f:
            scenes.append((im, f[0].box))
    import hashlib

    # fixed keys (reproducible), several: the false-match rate at a fixed threshold varies
    # with the key drawn (m = 1,024 random hash functions)
    ioms = [
        EpochSecret(1, hashlib.sha256(f"bench key {i}".encode()).digest()).intake_key("b").iom
        for i in range(keys)
    ]
    options = {
        "full": FaceOptions(max_faces=3),
        "fast": FaceOptions(max_faces=3, hog=False, cnn="off"),
    }
    enrolled: list[np.ndarray] = []  # clear templates (k × 384) per person
    probes: dict[str, list[tuple[int, str, np.ndarray | None]]] = {k: [] for k in options}
    # (owner, variant, descriptors of the upload's faces: k × 384, or None when none found)
    lim = MediaLimits()
    for k, person in enumerate(people):
        photos = sorted(person.iterdir())
        tpl = []
        for p in photos[:3]:
            f = find_faces(np.asarray(load_rgb(p)))
            if f:
                tpl.append(f[0].descriptor)
        enrolled.append(np.array(tpl))
        for p in photos[3:]:
            im = load_rgb(p)
            f = find_faces(np.asarray(im))
            if not f:
                continue
            for v in VARIANTS:
                data = tg(
                    make_variant(v, im, f[0].box, rng, lambda: scenes[rng.integers(len(scenes))])
                )
                for name, opt in options.items():
                    faces = analyze_bytes(data, lim, faces=opt).faces or []
                    d = (
                        np.stack([np.frombuffer(f.descriptor, "<f4") for f in faces])
                        if faces
                        else None
                    )
                    probes[name].append((k, v, d))
        log(f"  accuracy: {k + 1}/{len(people)} people")
    thr = population().threshold
    out: dict[str, Any] = {"identities": len(people), "threshold": thr, "keys": keys}
    for name, rows in probes.items():
        per_key = []
        missed = sum(d is None for _, _, d in rows)
        for iom in ioms:
            stored = [iom.codes(t) for t in enrolled]
            pos, neg = [], []
            for owner, _v, d in rows:
                if d is None:
                    pos.append(-1.0)
                    continue
                q = iom.codes(d)  # every face the upload's worker described (≤ 3): any matches
                for k, codes in enumerate(stored):
                    score = float(shield_score((q[:, None, :] == codes[None]).mean(-1)).max())
                    (pos if k == owner else neg).append(score)
            p, n = np.array(pos), np.sort(np.array(neg))[::-1]
            at = n[int(np.floor(0.001 * len(n)))]
            per_key.append(
                {
                    "recall_at_shipped_threshold": float((p >= thr).mean()),
                    "fpr_at_shipped_threshold": float((n >= thr).mean()),
                    "recall_at_fpr_0.1pct": float((p > at).mean()),
                    "impostor_pairs": len(n),
                }
            )
        summary: dict[str, Any] = {"uploads_of_her": len(rows), "no_face_found": missed}
        for key in (
            "recall_at_shipped_threshold",
            "fpr_at_shipped_threshold",
            "recall_at_fpr_0.1pct",
        ):
            vals = [r[key] for r in per_key]
            summary[key] = round(float(np.mean(vals)), 6)
            summary[key + "_range"] = [round(min(vals), 6), round(max(vals), 6)]
        summary["impostor_pairs"] = per_key[0]["impostor_pairs"]
        out[name] = summary
    return out


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shields", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3, help="rounds per tenant, alternating")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--hash-workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="a quarter of the uploads")
    ap.add_argument("--million", action="store_true", help="also time matching at 1M shields")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument(
        "--accuracy", type=int, default=40, help="LFW people for the fast/full accuracy (0: skip)"
    )
    ap.add_argument(
        "--detect", choices=["fast", "full"], default="fast", help="the service's face path"
    )
    ap.add_argument("--accuracy-only", action="store_true", help="print the accuracy only")
    a = ap.parse_args()
    if not (SHARED / "faces").is_dir():
        sys.exit(f"needs {SHARED} (faces and detect sets)")

    from reclaim.api.app import create_app
    from reclaim.api.deps import Settings
    from reclaim.faces.pipeline import find_faces
    from reclaim.platform.store import SqlitePlatformStore
    from reclaim.shield.protocol import make_shield
    from reclaim_fixtures.faces import load_rgb

    if a.accuracy_only:
        print(json.dumps(accuracy(a.accuracy or 40), indent=1))
        return
    files, her = uploads(a.quick)
    kinds: dict[str, int] = {}
    for k, _ in files:
        kinds[k] = kinds.get(k, 0) + 1
    log(f"{len(files)} uploads: {kinds}")

    work = Path(tempfile.mkdtemp(prefix="reclaim-shield-bench-"))
    store = SqlitePlatformStore(work / "platform.db")
    store.migrate()
    tokens = {}
    for tenant in ("plain", "shielded"):
        tid = store.ensure_tenant(tenant)
        tokens[tenant] = {
            "Authorization": f"Bearer {store.create_token(tid, 'bench', ('hash', 'match'))}"
        }
    settings = Settings(
        shield_keys=str(work / "shield-keys.json"),
        hash_workers=a.hash_workers,
        hash_queue=64,
        poll_interval_s=3600.0,
        max_upload_bytes=16_000_000,
        shield_detect=a.detect,
    )
    rss0 = rss_mb()
    app = create_app(store, settings)
    sh = app.state.platform.shields
    shielded_id = store.ensure_tenant("shielded")
    log(f"storing {a.shields - 1:,} synthetic shields …")
    fill_s = fill_shields(store, sh.keys, shielded_id, "shielded", a.shields - 1)

    rounds: dict[str, list[dict[str, Any]]] = {"plain": [], "shielded": []}
    with Server(app) as base:
        # her real shield, through her reclaim's protocol and the public intake endpoint
        templates = [find_faces(np.asarray(load_rgb(p)))[0].descriptor for p in her]
        keys = httpx.get(f"{base}/shield/v1/shielded/intake-key", timeout=60).json()
        from reclaim.shield.protocol import IntakeKey

        intake = IntakeKey.from_json(keys["keys"][0])
        made = make_shield(templates, intake, "bench consent")
        r = httpx.post(
            f"{base}/shield/v1/shielded/intake",
            content=made.shield.dumps().encode(),
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        assert r.status_code == 201, r.text
        t = time.perf_counter()
        sh.index.refresh(force=True)
        load_s = time.perf_counter() - t
        rss_loaded = rss_mb()
        held = sh.index.templates(shielded_id)
        log(f"{sh.index.count(shielded_id):,} shields ({held:,} templates) in the index")
        # warm-up: models loaded in every worker, schemes drawn
        for tenant in ("plain", "shielded"):
            run_round(base, tokens[tenant], files[: 2 * a.hash_workers], a.concurrency)
        for k in range(a.rounds):
            for tenant in ("plain", "shielded") if k % 2 == 0 else ("shielded", "plain"):
                res = run_round(base, tokens[tenant], files, a.concurrency)
                rounds[tenant].append(res)
                log(f"  round {k + 1} {tenant}: {res}")

    med = {t: statistics.median(r["uploads_per_s"] for r in rs) for t, rs in rounds.items()}
    ratio = med["shielded"] / med["plain"]
    sizes = [10_000, 100_000] + ([1_000_000] if a.million else [])
    log("matching cost alone …")
    cost = match_cost(sizes)
    codes_bytes = held * 1024
    acc = accuracy(a.accuracy) if a.accuracy else None
    out = {
        "command": "python bench/shield_platform.py " + " ".join(sys.argv[1:]),
        "machine": f"{pyplatform.machine()}, {os.cpu_count()} cores",
        "load_average_at_start": list(os.getloadavg()),
        "uploads": kinds,
        "shields": a.shields,
        "templates_held": held,
        "hash_workers": a.hash_workers,
        "concurrency": a.concurrency,
        "store_fill_s": round(fill_s, 1),
        "index_load_s": round(load_s, 2),
        "rss_mb": {"before_app": round(rss0, 1), "index_loaded": round(rss_loaded, 1)},
        "codes_bytes_per_shield": round(codes_bytes / max(1, sh.index.count(shielded_id))),
        "rounds": rounds,
        "uploads_per_s_median": med,
        "ratio_shielded_to_hash_only": round(ratio, 3),
        "match_cost": cost,
        "shield_detect": a.detect,
        "accuracy_fast_vs_full": acc,
    }
    print_table(out)
    if not a.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=1) + "\n")
        log(f"wrote {RESULTS}")


def print_table(out: dict[str, Any]) -> None:
    print(f"\nuploads: {out['uploads']}; {out['shields']:,} shields; {out['machine']}")
    print(f"{'tenant':<12}{'uploads/s (median)':>20}{'p50 ms':>10}{'p99 ms':>10}{'queued':>8}")
    for t, rs in out["rounds"].items():
        p50 = statistics.median(r["p50_ms"] for r in rs)
        p99 = statistics.median(r["p99_ms"] for r in rs)
        q = rs[-1]["queued_for_review"]
        print(f"{t:<12}{out['uploads_per_s_median'][t]:>20.2f}{p50:>10.1f}{p99:>10.1f}{q:>8}")
    print(f"hashed + matched / hash-only: {out['ratio_shielded_to_hash_only']:.3f}")
    print(
        f"codes: {out['codes_bytes_per_shield']} bytes per shield; index load "
        f"{out['index_load_s']} s; RSS {out['rss_mb']}"
    )
    for c in out["match_cost"]:
        print(f"match {c['faces']} face(s) vs {c['shields']:>9,} shields: {c['ms_median']} ms")
    acc = out["accuracy_fast_vs_full"]
    if acc:
        print(f"\nuploads' faces found fast vs full ({acc['identities']} LFW people, 7 variants)")
        head = ("path", "uploads", "no face", "recall@thr", "FPR@thr", "recall@0.1%")
        print(f"{head[0]:<6}{head[1]:>9}{head[2]:>9}{head[3]:>12}{head[4]:>10}{head[5]:>13}")
        for k in ("fast", "full"):
            r = acc[k]
            print(
                f"{k:<6}{r['uploads_of_her']:>9}{r['no_face_found']:>9}"
                f"{r['recall_at_shipped_threshold']:>12.4f}{r['fpr_at_shipped_threshold']:>10.5f}"
                f"{r['recall_at_fpr_0.1pct']:>13.4f}"
            )
            lo, hi = r["fpr_at_shipped_threshold_range"]
            rlo, rhi = r["recall_at_shipped_threshold_range"]
            print(
                f"      over {acc['keys']} keys: recall {rlo:.4f}–{rhi:.4f}, FPR {lo:.5f}–{hi:.5f}"
            )


if __name__ == "__main__":
    main()
