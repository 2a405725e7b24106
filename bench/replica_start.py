"""How long a platform replica takes to start: reading every signal from the database vs opening
the match index's snapshot (``serve-platform --index-snapshot DIR``) and replaying the change log
written since it.

On PostgreSQL (``--postgres DSN`` or ``$RECLAIM_TEST_POSTGRES_DSN``; else a SQLite file), a fresh
schema with ``--hashes`` PDQ signals (the same bank as bench/service_load.py). Each step runs in
a fresh process, so its time and memory are its own:

1. ``database``: a matcher loads every signal from the database into memory (no snapshot
   folder), then saves a snapshot (time, size on disk).
1b. ``database-streamed``: the same load with an empty snapshot folder: each index is streamed
   to its file and then served from the mapped file (what a first start with
   ``--index-snapshot`` does); its peak memory against the in-memory load's.
2. ``--changes`` writes after the snapshot (half additions, half removals), as the log goes on
   while a replica is down.
3. ``snapshot, cold``: the snapshot's files dropped from the page cache first (a replica on a
   new machine or after a reboot): open, ``warm()``, replay the changes since it.
4. ``snapshot, warm``: the same with the pages still cached (a replica restarting on the same
   machine as another one, or itself).
5. ``database, after``: a full load again, after the changes: the reference the snapshot's
   answers are compared to.

Each step answers the same 2,000 lookups (near-duplicates of bank hashes at distance 0..31,
random hashes, the changed hashes); their digests must be equal between steps 3, 4 and 5.

Usage: python bench/replica_start.py [--hashes 1000000] [--changes 10000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from service_load import build_db, build_pg, schema_dsn  # noqa: E402

from reclaim.platform.matcher import Matcher  # noqa: E402
from reclaim.platform.store import open_store  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "replica_start.json"


def mem_mb() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "RssAnon", "RssFile"):
            out[key] = round(int(rest.split()[0]) / 1024, 1)
    return out


class AnonPeak:
    """The process's peak anonymous memory (RssAnon sampled every 20 ms): VmHWM also counts
    the mapped file's pages, which are page cache, not the process's own."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, mem_mb()["RssAnon"])
            self._stop.wait(0.02)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return round(max(self.peak, mem_mb()["RssAnon"]), 1)


def drop_cache(folder: Path) -> None:
    """Ask the kernel to drop the folder's files from the page cache (clean pages: it does)."""
    for p in folder.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def answers_digest(m: Matcher, tenant: int, queries: list[str]) -> tuple[str, int, float]:
    h = hashlib.sha256()
    hits = 0
    m.lookup(tenant, "pdq", queries[0])  # the first one (kernels loading) is not timed
    t = time.perf_counter()
    for q in queries:
        got = sorted((x.content_id, x.distance) for x in m.lookup(tenant, "pdq", q))
        hits += len(got)
        h.update(json.dumps(got).encode())
    return h.hexdigest()[:16], hits, round(len(queries) / (time.perf_counter() - t), 1)


def worker(db: str, snaps: Path, mode: str, qfile: Path) -> dict[str, Any]:
    queries = json.loads(qfile.read_text())
    store = open_store(db)
    tenant = store.ensure_tenant("bench")
    if mode == "snapshot-cold":
        drop_cache(snaps)
    before = mem_mb()
    sampler = AnonPeak()
    t = time.perf_counter()
    folder = {"database": None, "database-after": None, "database-streamed": snaps / "fresh"}
    m = Matcher(store, snapshot_dir=folder.get(mode, snaps))
    load_s = time.perf_counter() - t
    anon_peak = sampler.stop()
    out: dict[str, Any] = {
        "mode": mode,
        "load_s": round(load_s, 2),
        "source": m.load_source,
        "snapshot_error": m.snapshot_error,
        "signals": len(m.indexes["pdq"]),
        "mem_before_mb": before,
        "mem_after_load_mb": mem_mb(),
        "anon_peak_during_load_mb": anon_peak,
    }
    digest, hits, rate = answers_digest(m, tenant, queries)
    out |= {"answers_digest": digest, "hits": hits, "single_lookups_per_s": rate}
    if mode == "database":
        m.snapshot_dir = snaps
        t = time.perf_counter()
        folder = m.save_snapshot()
        out["save_s"] = round(time.perf_counter() - t, 2)
        out["snapshot_mb"] = round(sum(p.stat().st_size for p in folder.iterdir()) / 2**20, 1)
    store.close()
    return out


def run_worker(db: str, snaps: Path, mode: str, qfile: Path) -> dict[str, Any]:
    got = subprocess.run(
        [sys.executable, __file__, "--_worker", db, str(snaps), mode, str(qfile)],
        check=True,
        capture_output=True,
        text=True,
    )
    row: dict[str, Any] = json.loads(got.stdout.strip().splitlines()[-1])
    print(json.dumps(row), flush=True)
    return row


def change(db: str, codes: np.ndarray, n: int, rng: np.random.Generator) -> list[str]:
    """``n`` writes through the store: n/2 new signals, n/2 contents removed. Their hashes."""
    store = open_store(db)
    tid = store.ensure_tenant("bench")
    bank = store.get_bank(tid, "BENCH")
    assert bank is not None
    new = [bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex() for _ in range(n // 2)]
    for i in range(0, len(new), 500):
        store.add_contents(tid, bank, [([("pdq", x, 90)], {}) for x in new[i : i + 500]])
    gone = rng.choice(len(codes), size=n - n // 2, replace=False)
    for cid in gone:
        store.remove_content(tid, bank, int(cid) + 1)
    store.close()
    return new + [codes[i].tobytes().hex() for i in gone[:500]]


def make_queries(codes: np.ndarray, changed: list[str], rng: np.random.Generator) -> list[str]:
    out = []
    for _ in range(1000):
        row = codes[rng.integers(len(codes))].copy()
        bits = rng.choice(256, size=int(rng.integers(0, 32)), replace=False)
        for b in bits:
            row[b // 8] ^= 1 << (b % 8)
        out.append(row.tobytes().hex())
    out += [bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex() for _ in range(500)]
    out += changed[:500]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hashes", type=int, default=1_000_000)
    ap.add_argument("--changes", type=int, default=10_000)
    ap.add_argument("--postgres", default=os.environ.get("RECLAIM_TEST_POSTGRES_DSN"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--_worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker:
        db, snaps, mode, qfile = args._worker
        print(json.dumps(worker(db, Path(snaps), mode, Path(qfile))))
        return
    rng = np.random.default_rng(24)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="replica-start-") as tmp:
        snaps, qfile = Path(tmp) / "snapshots", Path(tmp) / "queries.json"
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        t = time.time()
        if args.postgres:
            _, codes = build_pg(args.postgres, schema, args.hashes, rng)
            db, backend = schema_dsn(args.postgres, schema), "PostgreSQL"
        else:
            _, codes = build_db(Path(tmp) / "platform.db", args.hashes, rng)
            db, backend = str(Path(tmp) / "platform.db"), "SQLite"
        print(f"{backend} with {args.hashes:,} hashes in {time.time() - t:.1f} s", flush=True)
        qfile.write_text(json.dumps(make_queries(codes, [], rng)))
        try:
            first = ("database", "database-streamed")
            rows = [run_worker(db, snaps, mode, qfile) for mode in first]
            t = time.time()
            changed = change(db, codes, args.changes, rng)
            change_s = time.time() - t
            qfile.write_text(json.dumps(make_queries(codes, changed, np.random.default_rng(5))))
            for mode in ("snapshot-cold", "snapshot-warm", "database-after"):
                rows.append(run_worker(db, snaps, mode, qfile))
        finally:
            if args.postgres:
                from reclaim.platform.store import PostgresPlatformStore

                s = PostgresPlatformStore(args.postgres, schema=schema)
                s.drop_schema()
                s.close()
    ref = rows[-1]["answers_digest"]
    result = {
        "hashes": args.hashes,
        "changes_after_snapshot": args.changes,
        "backend": backend,
        "machine": f"{os.cpu_count()} cores",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "change_write_s": round(change_s, 1),
        "rows": rows,
        "streamed_answers_equal_in_memory": rows[1]["answers_digest"] == rows[0]["answers_digest"],
        "snapshot_answers_equal_database": all(
            r["answers_digest"] == ref for r in rows if r["mode"].startswith("snapshot")
        ),
        "speedup_cold": round(rows[-1]["load_s"] / rows[2]["load_s"], 1),
        "speedup_warm": round(rows[-1]["load_s"] / rows[3]["load_s"], 1),
        "total_s": round(time.time() - t0, 1),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(
        f"\n{backend}, {args.hashes:,} hashes, {args.changes:,} changes written after the snapshot"
    )
    print(
        "| start | load s | from | peak anon MB | peak RSS MB | RssAnon MB | RssFile MB "
        "| lookups/s (1 thread) | answers |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mem = r["mem_after_load_mb"]
        print(
            f"| {r['mode']} | {r['load_s']} | {r['source']} | {r['anon_peak_during_load_mb']:.0f} "
            f"| {mem['VmHWM']:.0f} "
            f"| {mem['RssAnon']:.0f} | {mem['RssFile']:.0f} | {r['single_lookups_per_s']:,} "
            f"| {r['answers_digest']} |"
        )
    print(
        f"snapshot: saved in {rows[0]['save_s']} s, {rows[0]['snapshot_mb']} MB; start from it "
        f"{result['speedup_cold']}x (cold) / {result['speedup_warm']}x (warm) faster than from "
        f"the database; answers equal: {result['snapshot_answers_equal_database']}; streamed "
        f"load's answers equal the in-memory load's: {result['streamed_answers_equal_in_memory']}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
