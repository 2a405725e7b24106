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

Replicas (``--replicas 2``, PostgreSQL: ``--postgres DSN``, default
``$RECLAIM_TEST_POSTGRES_DSN``): the same N hashes bulk-loaded into a fresh schema of that
database, two ``serve-platform`` processes (A and B) on it, each with its own index following
the change log (docs/scale.md, "Platform replicas"). Three runs, same client, same machine:
A alone with lookups only; A alone with lookups while writers add hashes through A; A and B
with lookups spread over both while writers add through A. During the last, a probe writes a
fresh hash through A every ``--probe-every`` s and polls B until B matches it: the freshness
(write on A → found on B: median, p99, max). Each replica's load time, index memory, RSS and
merges come from its ``/health/ready``. Results go to the ``replicas_postgres`` key of the same
JSON file (the single-replica SQLite numbers stay as they are, and vice versa).

Usage: python bench/service_load.py [--hashes 1000000] [--seconds 30] [--concurrency 8]
       [--hostile-clients 2]
       python bench/service_load.py --replicas 2 [--postgres DSN] [--hashes 1000000]
       [--seconds 30] [--concurrency 8] [--write-rate 50] [--probe-every 0.25]
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

from reclaim.platform.store import PostgresPlatformStore, SqlitePlatformStore  # noqa: E402
from reclaim_fixtures.hostile_media import hostile_samples  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "service_load.json"
#: Concurrent writers (replica mode), sharing ``--write-rate``.
WRITERS = 4


def bank_codes(n: int, rng: np.random.Generator) -> np.ndarray:
    """N bank hashes: perturbed variants of 2,000 seed hashes, then random ones."""
    seeds = rng.integers(0, 256, size=(2000, 32), dtype=np.uint8)
    n_var = n // 2
    src = seeds[rng.integers(0, len(seeds), size=n_var)]
    k = rng.integers(0, 49, size=n_var).astype(np.uint8)
    mask = rng.integers(0, 256, size=(n_var, 256), dtype=np.uint8) < k[:, None]
    return np.concatenate(
        [src ^ np.packbits(mask, axis=1), rng.integers(0, 256, (n - n_var, 32), dtype=np.uint8)]
    )


def build_db(path: Path, n: int, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    store = SqlitePlatformStore(path)
    store.migrate()
    tid = store.create_tenant("bench")
    token = store.create_token(tid, "load", ["match", "hash"])
    bank = store.create_bank(tid, "BENCH")
    store.close()
    codes = bank_codes(n, rng)
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


def build_pg(dsn: str, schema: str, n: int, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """The same database in a fresh PostgreSQL schema (COPY; the schema is the service's own,
    created by its migrations); a token with match and curate scopes, and the hashes."""
    import psycopg

    store = PostgresPlatformStore(dsn, schema=schema)
    store.migrate()
    tid = store.create_tenant("bench")
    token = store.create_token(tid, "load", ["match", "hash", "curate"])
    bank = store.create_bank(tid, "BENCH")
    store.close()
    codes = bank_codes(n, rng)
    now = time.time()
    with psycopg.connect(dsn) as con:
        con.execute(f'SET search_path TO "{schema}"')
        with con.cursor() as cur:
            with cur.copy(
                "COPY contents (id, bank_id, tenant_id, metadata, created_at) FROM STDIN"
            ) as cp:
                for i in range(n):
                    cp.write_row((i + 1, bank.id, tid, "{}", now))
            with cur.copy(
                "COPY signals (id, content_id, bank_id, tenant_id, signal_type, value, quality) "
                "FROM STDIN"
            ) as cp:
                for i in range(n):
                    cp.write_row((i + 1, i + 1, bank.id, tid, "pdq", codes[i].tobytes().hex(), 90))
            with cur.copy("COPY changes (signal_id, op, at) FROM STDIN") as cp:
                for i in range(n):
                    cp.write_row((i + 1, "add", now))
            for table in ("contents", "signals"):
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), %s)", (max(n, 1),)
                )
            cur.execute("ANALYZE")
    return token, codes


def schema_dsn(dsn: str, schema: str) -> str:
    """``dsn`` with the schema first on the search path (libpq's ``options``)."""
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}options=-csearch_path%3D{schema}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(db: Path | str, port: int, **kw: Any) -> subprocess.Popen[bytes]:
    extra = "".join(f", {k}={v!r}" for k, v in kw.items())
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'src')!r})\n"
        "from reclaim.api.cli import serve_platform\n"
        f"serve_platform('127.0.0.1', {port}, {str(db)!r}, workers_log_level='warning'{extra})\n"
    )
    return subprocess.Popen([sys.executable, "-c", code])


def wait_ready(base: str, proc: subprocess.Popen[bytes], path: str = "/status") -> float:
    """Seconds until ``path`` answers 200 (the index loaded and following the log)."""
    t = time.time()
    while True:
        try:
            if httpx.get(base + path, timeout=1).status_code == 200:
                return time.time() - t
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("server exited")
        time.sleep(0.2)


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


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.array(values), q)), 3) if values else None


async def mixed(
    bases: list[str],
    token: str,
    queries: list[tuple[str, int]],
    seconds: float,
    conc: int,
    write_rate: float,
    probe_every: float,
    seed: int,
) -> dict[str, Any]:
    """Lookups spread over ``bases`` (``conc`` at a time), ``WRITERS`` writers adding random
    hashes through ``bases[0]`` at ``write_rate`` per second in all, and, with two replicas or
    more, the freshness probe: a hash written through ``bases[0]``, then ``bases[1]`` polled
    every 10 ms until it matches."""
    rng = np.random.default_rng(seed)
    lat: list[float] = []
    per_base = [0] * len(bases)
    errors = missed = 0
    w_lat: list[float] = []
    w_err = 0
    fresh: list[float] = []
    not_found = 0
    stop = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=conc + 4, max_keepalive_connections=conc + 4)
    clients = [httpx.AsyncClient(base_url=b, headers=headers, limits=limits) for b in bases]

    async def worker(w: int) -> None:
        nonlocal errors, missed
        i = w
        k = w % len(bases)
        while time.perf_counter() < stop:
            sig, want = queries[i % len(queries)]
            i += conc
            t = time.perf_counter()
            try:
                r = await clients[k].get(
                    "/m/raw_lookup",
                    params={"signal": sig, "signal_type": "pdq", "include_distance": "true"},
                )
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            lat.append(time.perf_counter() - t)
            per_base[k] += 1
            if not ok:
                errors += 1
            elif want >= 0 and want not in {m["bank_content_id"] for m in r.json()["matches"]}:
                missed += 1

    async def write(pdq: str) -> bool:
        r = await clients[0].post("/c/bank/BENCH/signal", json={"pdq": pdq, "quality": {"pdq": 90}})
        return r.status_code == 200

    async def writer(rate: float) -> None:
        nonlocal w_err
        nxt = time.perf_counter()
        while time.perf_counter() < stop:
            nxt += 1.0 / rate
            t = time.perf_counter()
            try:
                ok = await write(bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex())
            except httpx.HTTPError:
                ok = False
            w_lat.append(time.perf_counter() - t)
            w_err += not ok
            await asyncio.sleep(max(0.0, nxt - time.perf_counter()))

    async def probe() -> None:
        nonlocal not_found
        await asyncio.sleep(1.0)
        while time.perf_counter() < stop - 6:
            pdq = bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex()
            if not await write(pdq):
                not_found += 1
                continue
            t0 = time.perf_counter()
            while True:
                r = await clients[1].get(
                    "/m/raw_lookup", params={"signal": pdq, "signal_type": "pdq"}
                )
                if r.status_code == 200 and r.json()["matches"]:
                    fresh.append(time.perf_counter() - t0)
                    break
                if time.perf_counter() - t0 > 30:
                    not_found += 1
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(probe_every)

    tasks = [worker(w) for w in range(conc)]
    if write_rate > 0:
        tasks += [writer(write_rate / WRITERS) for _ in range(WRITERS)]
    if len(bases) > 1 and probe_every > 0:
        tasks.append(probe())
    t0 = time.perf_counter()
    try:
        await asyncio.gather(*tasks)
    finally:
        for c in clients:
            await c.aclose()
    wall = time.perf_counter() - t0
    arr = np.array(lat) * 1000
    out: dict[str, Any] = {
        "replicas": len(bases),
        "concurrency": conc,
        "requests": len(lat),
        "seconds": round(wall, 2),
        "lookups_per_s": round(len(lat) / wall, 1),
        "lookups_per_replica": per_base,
        "p50_ms": round(float(np.percentile(arr, 50)), 2),
        "p90_ms": round(float(np.percentile(arr, 90)), 2),
        "p99_ms": round(float(np.percentile(arr, 99)), 2),
        "errors": errors,
        "near_duplicates_missed": missed,
        "writes": len(w_lat),
        "writes_per_s": round(len(w_lat) / wall, 1),
        "write_p50_ms": None if not w_lat else round(float(np.percentile(w_lat, 50)) * 1000, 1),
        "write_p99_ms": None if not w_lat else round(float(np.percentile(w_lat, 99)) * 1000, 1),
        "write_errors": w_err,
    }
    if len(bases) > 1 and probe_every > 0:
        out["freshness_s"] = {
            "probes": len(fresh),
            "median": _pct(fresh, 50),
            "p90": _pct(fresh, 90),
            "p99": _pct(fresh, 99),
            "max": round(max(fresh), 3) if fresh else None,
            "not_found_within_30s": not_found,
        }
    return out


def make_queries(codes: np.ndarray, rng: np.random.Generator) -> list[tuple[str, int]]:
    """20,000 queries: half near-duplicates (distance 0-31) of bank hashes, half random."""
    nq = 20_000
    src = rng.integers(0, len(codes), size=nq // 2)
    d = rng.integers(0, 32, size=nq // 2)
    ranks = rng.random((nq // 2, 256)).argsort(1).argsort(1)
    near = codes[src] ^ np.packbits(ranks < d[:, None], axis=1)
    rand = rng.integers(0, 256, size=(nq // 2, 32), dtype=np.uint8)
    queries = [(near[i].tobytes().hex(), int(src[i]) + 1) for i in range(nq // 2)]
    queries += [(rand[i].tobytes().hex(), -1) for i in range(nq // 2)]
    order = rng.permutation(nq)
    return [queries[i] for i in order]


def run_replicas(args: argparse.Namespace) -> dict[str, Any]:
    import uuid

    dsn = args.postgres
    if not dsn:
        raise SystemExit(
            "--replicas needs PostgreSQL: --postgres DSN or $RECLAIM_TEST_POSTGRES_DSN"
        )
    rng = np.random.default_rng(7)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    t = time.time()
    token, codes = build_pg(dsn, schema, args.hashes, rng)
    build_s = time.time() - t
    print(f"PostgreSQL schema {schema} with {args.hashes:,} hashes in {build_s:.1f} s", flush=True)
    queries = make_queries(codes, rng)
    db = schema_dsn(dsn, schema)
    procs: list[subprocess.Popen[bytes]] = []
    runs: list[dict[str, Any]] = []
    health: dict[str, Any] = {}
    try:
        ports = [free_port() for _ in range(args.replicas)]
        bases = [f"http://127.0.0.1:{p}" for p in ports]
        t = time.time()
        procs = [serve(db, p, hash_workers=1) for p in ports]
        for base, proc in zip(bases, procs, strict=True):
            wait_ready(base, proc, "/health/ready")
        startup_s = time.time() - t
        print(f"{args.replicas} replicas ready (indexes loaded) in {startup_s:.1f} s", flush=True)
        conc = args.concurrency[-1]
        asyncio.run(mixed(bases[:1], token, queries[:200], 2.0, conc, 0, 0, 1))  # warm-up
        asyncio.run(mixed(bases[1:2], token, queries[:200], 2.0, conc, 0, 0, 1))
        plan = [
            ("A alone, lookups only", bases[:1], 0.0),
            ("A alone, writes on A", bases[:1], args.write_rate),
            ("A + B, writes on A", bases, args.write_rate),
        ]
        for i, (label, where, rate) in enumerate(plan):
            r = asyncio.run(
                mixed(where, token, queries, args.seconds, conc, rate, args.probe_every, 100 + i)
            )
            r["run"] = label
            print(json.dumps(r), flush=True)
            runs.append(r)
        for name, base in zip("AB", bases, strict=False):
            h = httpx.get(base + "/health/ready", timeout=10).json()
            health[name] = {
                "ready": h["ready"],
                "load_s": h["index"]["load_s"],
                "hashes": h["index"]["hashes"]["pdq"],
                "index_memory_mb": round(h["index"]["memory_bytes"] / 2**20, 1),
                "rss_mb": None
                if h["process"]["rss_bytes"] is None
                else round(h["process"]["rss_bytes"] / 2**20, 1),
                "merges": h["index"]["merges"]["pdq"],
                "feed_lag_s": h["feed"]["lag_s"],
                "gaps_filled": h["feed"]["gaps_filled"],
                "gaps_expired": h["feed"]["gaps_expired"],
            }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(20)
        store = PostgresPlatformStore(dsn, schema=schema)
        store.drop_schema()
        store.close()
    result = {
        "backend": "postgresql (one local server; the replicas, client and database share the "
        "machine)",
        "hashes": args.hashes,
        "machine": f"{os.cpu_count()} cores (client, both replicas and PostgreSQL share them)",
        "poll_interval_s": 1.0,
        "db_build_s": round(build_s, 1),
        "replicas_ready_s": round(startup_s, 1),
        "concurrency": args.concurrency[-1],
        "write_rate_target_per_s": args.write_rate,
        "runs": runs,
        "replicas": health,
    }
    print(
        "\n| run | lookups/s | p50 ms | p99 ms | errors | near-dups missed | writes/s "
        "| write p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r['run']} | {r['lookups_per_s']:,} | {r['p50_ms']} | {r['p99_ms']} "
            f"| {r['errors']} | {r['near_duplicates_missed']} | {r['writes_per_s']} "
            f"| {r['write_p99_ms'] or '-'} |"
        )
    f = runs[-1].get("freshness_s", {})
    print(
        f"\nfreshness, write on A -> matched on B ({f.get('probes')} probes): median "
        f"{f.get('median')} s, p90 {f.get('p90')} s, p99 {f.get('p99')} s, max {f.get('max')} s, "
        f"not found within 30 s: {f.get('not_found_within_30s')} (target <= 5 s)"
    )
    print("\n| replica | load s | hashes | index MiB | RSS MiB | merges | feed lag s |")
    print("|---|---|---|---|---|---|---|")
    for name, h in health.items():
        print(
            f"| {name} | {h['load_s']} | {h['hashes']:,} | {h['index_memory_mb']} "
            f"| {h['rss_mb']} | {h['merges']} | {h['feed_lag_s']} |"
        )
    return result


def save(out: Path, key: str | None, result: dict[str, Any]) -> None:
    """Write ``result`` to ``out``: the whole file (``key`` None: the single-replica run, the
    replica results kept), or under ``key`` (the rest kept)."""
    old: dict[str, Any] = {}
    if out.exists():
        try:
            old = json.loads(out.read_text())
        except ValueError:
            old = {}
    if key is None:
        merged = {
            **result,
            **(
                {"replicas_postgres": old["replicas_postgres"]}
                if "replicas_postgres" in old
                else {}
            ),
        }
    else:
        merged = {**old, key: result}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hashes", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--hostile-clients", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--replicas", type=int, default=1, help="2: two replicas on PostgreSQL (see above)"
    )
    ap.add_argument("--postgres", default=os.environ.get("RECLAIM_TEST_POSTGRES_DSN"))
    ap.add_argument("--write-rate", type=float, default=50.0, help="writes/s through A, in all")
    ap.add_argument("--probe-every", type=float, default=0.25, help="s between freshness probes")
    args = ap.parse_args()
    if args.replicas > 1:
        save(args.out, "replicas_postgres", run_replicas(args))
        return
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "platform.db"
        t = time.time()
        token, codes = build_db(db, args.hashes, rng)
        build_s = time.time() - t
        print(f"database with {args.hashes:,} hashes in {build_s:.1f} s", flush=True)
        queries = make_queries(codes, rng)

        port = free_port()
        t = time.time()
        proc = serve(db, port)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, proc)
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
    save(args.out, None, result)


if __name__ == "__main__":
    main()
