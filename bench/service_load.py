"""Service load benchmark: sustained ``/m/raw_lookup`` throughput and latency at 1M hashes.

Builds a SQLite platform database with one tenant, one bank and N PDQ hashes (default 1M;
perturbed variants of generated seed hashes plus random ones, written with bulk SQL inserts for
speed — the schema is the service's own, created by its migrations), starts
``reclaim serve-platform``'s app under uvicorn on 127.0.0.1 in a child process, then drives
``GET /m/raw_lookup?include_distance=true`` from an asyncio httpx client with a bounded number of
concurrent requests for a fixed time. Half the queries are near-duplicates (distance 0–31) of
bank hashes, half random. Reports lookups/s, p50/p90/p99 latency, errors, and whether every
near-duplicate was found. Client and server share the same 2 cores.

Each concurrency level runs twice in the same server: clean, then with hostile uploads mixed
in — ``--hostile-clients`` clients that keep posting the crafted files of
``reclaim_fixtures.hostile_media`` (GIF screen/frame bombs, APNG/WebP with many huge frames, a TIFF
page bomb) to ``POST /h/hash`` while the lookups run. They are hashed in the service's bounded,
sandboxed worker pool (refused, stopped at the time limit or memory ceiling, or answered 503
when the pool is full), never on the event loop. Target: lookup p99 within 2x of the clean run.

Usage: python bench/service_load.py [--hashes 1000000] [--seconds 30] [--concurrency 8]
       [--hostile-clients 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from reclaim.platform.store import SqlitePlatformStore  # noqa: E402
from reclaim_fixtures.hostile_media import hostile_samples  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "service_load.json"


def build_db(path: Path, n: int, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    store = SqlitePlatformStore(path)
    store.migrate()
    tid = store.create_tenant("bench")
    token = store.create_token(tid, "load", ["match", "hash"])
    bank = store.create_bank(tid, "BENCH")
    store.close()
    seeds = rng.integers(0, 256, size=(2000, 32), dtype=np.uint8)
    n_var = n // 2
    src = seeds[rng.integers(0, len(seeds), size=n_var)]
    k = rng.integers(0, 49, size=n_var).astype(np.uint8)
    mask = rng.integers(0, 256, size=(n_var, 256), dtype=np.uint8) < k[:, None]
    codes = np.concatenate(
        [src ^ np.packbits(mask, axis=1), rng.integers(0, 256, (n - n_var, 32), dtype=np.uint8)]
    )
    con = sqlite3.connect(path)
    now = time.time()
    with con:
        con.executemany(
            "INSERT INTO contents (id, bank_id, tenant_id, metadata, created_at) "
            "VALUES (?, ?, ?, '{}', ?)",
            ((i + 1, bank.id, tid, now) for i in range(n)),
        )
        con.executemany(
            "INSERT INTO signals (id, content_id, bank_id, tenant_id, signal_type, value, quality)"
            " VALUES (?, ?, ?, ?, 'pdq', ?, 90)",
            ((i + 1, i + 1, bank.id, tid, codes[i].tobytes().hex()) for i in range(n)),
        )
        con.executemany(
            "INSERT INTO changes (signal_id, op, at) VALUES (?, 'add', ?)",
            ((i + 1, now) for i in range(n)),
        )
    con.close()
    return token, codes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(db: Path, port: int) -> subprocess.Popen[bytes]:
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'src')!r})\n"
        "from reclaim.api.cli import serve_platform\n"
        f"serve_platform('127.0.0.1', {port}, {str(db)!r}, workers_log_level='warning')\n"
    )
    return subprocess.Popen([sys.executable, "-c", code])


async def hostile(client: httpx.AsyncClient, stop: float, k: int, seen: dict[str, int]) -> None:
    """Keep posting hostile files to /h/hash until ``stop``; count the answers by status."""
    samples = list(hostile_samples().items())
    i = k
    while time.perf_counter() < stop:
        name, data = samples[i % len(samples)]
        i += 1
        try:
            r = await client.post("/h/hash", files={"photo": (name, data)}, timeout=120)
            key = str(r.status_code)
            if r.status_code == 503:
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
        except httpx.HTTPError as e:
            key = type(e).__name__
        seen[key] = seen.get(key, 0) + 1


async def load(
    base: str,
    token: str,
    queries: list[tuple[str, int]],
    seconds: float,
    conc: int,
    hostile_clients: int = 0,
) -> dict[str, Any]:
    lat: list[float] = []
    errors = 0
    missed = 0
    done = 0
    stop = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:

        async def worker(w: int) -> None:
            nonlocal errors, missed, done
            i = w
            while time.perf_counter() < stop:
                sig, want = queries[i % len(queries)]
                i += conc
                t = time.perf_counter()
                try:
                    r = await client.get(
                        "/m/raw_lookup",
                        params={"signal": sig, "signal_type": "pdq", "include_distance": "true"},
                    )
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                lat.append(time.perf_counter() - t)
                done += 1
                if not ok:
                    errors += 1
                elif want >= 0 and want not in {m["bank_content_id"] for m in r.json()["matches"]}:
                    missed += 1

        seen: dict[str, int] = {}
        async with httpx.AsyncClient(base_url=base, headers=headers) as bad:
            t0 = time.perf_counter()
            await asyncio.gather(
                *(worker(w) for w in range(conc)),
                *(hostile(bad, stop, k, seen) for k in range(hostile_clients)),
            )
            wall = time.perf_counter() - t0
    arr = np.array(lat) * 1000
    return {
        "requests": done,
        "seconds": round(wall, 2),
        "lookups_per_s": round(done / wall, 1),
        "p50_ms": round(float(np.percentile(arr, 50)), 2),
        "p90_ms": round(float(np.percentile(arr, 90)), 2),
        "p99_ms": round(float(np.percentile(arr, 99)), 2),
        "errors": errors,
        "near_duplicates_missed": missed,
        "hostile_clients": hostile_clients,
        "hostile_answers": seen,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hashes", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--hostile-clients", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "platform.db"
        t = time.time()
        token, codes = build_db(db, args.hashes, rng)
        build_s = time.time() - t
        print(f"database with {args.hashes:,} hashes in {build_s:.1f} s", flush=True)
        nq = 20_000
        src = rng.integers(0, len(codes), size=nq // 2)
        d = rng.integers(0, 32, size=nq // 2)
        ranks = rng.random((nq // 2, 256)).argsort(1).argsort(1)
        near = codes[src] ^ np.packbits(ranks < d[:, None], axis=1)
        rand = rng.integers(0, 256, size=(nq // 2, 32), dtype=np.uint8)
        queries = [(near[i].tobytes().hex(), int(src[i]) + 1) for i in range(nq // 2)]
        queries += [(rand[i].tobytes().hex(), -1) for i in range(nq // 2)]
        order = rng.permutation(nq)
        queries = [queries[i] for i in order]

        port = free_port()
        t = time.time()
        proc = serve(db, port)
        base = f"http://127.0.0.1:{port}"
        try:
            while True:
                try:
                    if httpx.get(base + "/status", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None:
                    raise SystemExit("server exited")
                time.sleep(0.5)
            startup_s = time.time() - t
            print(f"server up (index loaded) in {startup_s:.1f} s", flush=True)
            runs = []
            for conc in args.concurrency:
                asyncio.run(load(base, token, queries[:200], 2.0, conc))  # warm-up
                for bad in (0, args.hostile_clients):
                    r = asyncio.run(load(base, token, queries, args.seconds, conc, bad))
                    r["concurrency"] = conc
                    r["mix"] = "clean" if bad == 0 else "hostile"
                    print(json.dumps(r), flush=True)
                    runs.append(r)
        finally:
            proc.terminate()
            proc.wait(10)
    result = {
        "hashes": args.hashes,
        "machine": f"{os.cpu_count()} cores (client and server share them)",
        "db_build_s": round(build_s, 1),
        "server_startup_s": round(startup_s, 1),
        "runs": runs,
    }
    print(
        "\n| concurrency | mix | lookups/s | p50 ms | p90 ms | p99 ms | errors "
        "| near-dups missed | hostile answers |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r['concurrency']} | {r['mix']} | {r['lookups_per_s']:,} | {r['p50_ms']} "
            f"| {r['p90_ms']} | {r['p99_ms']} | {r['errors']} | {r['near_duplicates_missed']} "
            f"| {r['hostile_answers'] or ''} |"
        )
    for conc in args.concurrency:
        pair = {r["mix"]: r for r in runs if r["concurrency"] == conc}
        if len(pair) == 2:
            ratio = pair["hostile"]["p99_ms"] / max(pair["clean"]["p99_ms"], 1e-9)
            print(f"concurrency {conc}: hostile p99 / clean p99 = {ratio:.2f} (target <= 2)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
