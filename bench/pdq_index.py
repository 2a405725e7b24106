"""PDQ index benchmark: reclaim's multi-index hashing vs FAISS brute force on 1M and 10M hashes.

Banks are realistic: half are perturbed variants of real image hashes (Meta's PDQ regression
needles/haystack and hashes of generated images, each variant with Binomial(256, k/256) bits
flipped, k uniform in 0..48, so banks hold clusters of near-duplicates like real ones), half are
uniformly random. Queries: 10,000, of which 5,000 are true near-duplicates of a bank row at an
exact distance uniform in 0..31, 2,500 random and 2,500 variants of a seed at distance 40..64.

Reported per size: build time, RAM (resident growth while building), recall of the planted
matches (overall and by distance band), lookups/s on 2 cores (batched range search, OpenMP 2
threads) and sequential single-query lookups/s (one thread, as a request handler would), and the
same for brute force (FAISS IndexBinaryFlat: SIMD popcount over every hash). Brute force at
large sizes runs on a random sample of the queries and is extrapolated per query (said in the
table). Exactness: on the sample, the index returns exactly brute force's result sets.

Then incremental updates on the built index: 20 adds of 1,000 hashes (each checked searchable
as soon as ``add`` returns), lookups/s with that delta pending (at large sizes a background
merge is usually running meanwhile, on the same 2 cores), and the wall time of ``compact()``
(waits for a merge in flight, then merges what is left).

Also measures where multi-index hashing overtakes the flat index (single lookups), and
extrapolates RAM and speed to 100M hashes from the measured sizes (linear fits).

Usage: python bench/pdq_index.py [--sizes 1000000 10000000] [--crossover] [--queries 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from reclaim.match.pdq_index import PdqIndex, hashes_from_hex  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "threatexchange" / "pdq" / "data" / "reg-test-input"
RESULTS = ROOT / "bench" / "results" / "pdq_index.json"
#: Near-duplicate family size (variants per base image); --cluster-size 0 is the stress case.
CLUSTER = 4


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def seed_hashes(rng: np.random.Generator) -> np.ndarray:
    """Real PDQ hashes: Meta's needles + haystack (if present) and hashes of generated images."""
    import pdqhash

    seeds: list[np.ndarray] = []
    for name in ("needles.txt", "haystack.txt"):
        p = SHARED / name
        if p.exists():
            lines = [x.strip() for x in p.read_text().split() if len(x.strip()) == 64]
            seeds.append(hashes_from_hex(lines))
    imgs = []
    for _ in range(300):  # smooth random fields: photo-like low-frequency content
        small = rng.integers(0, 256, size=(8, 8, 3)).astype(np.float32)
        big = np.kron(small, np.ones((32, 32, 1), dtype=np.float32))
        big += rng.normal(0, 12, size=big.shape)
        imgs.append(np.clip(big, 0, 255).astype(np.uint8))
    gen = np.stack([np.packbits(pdqhash.compute(im)[0].astype(np.uint8)) for im in imgs])
    seeds.append(gen)
    out = np.concatenate(seeds)
    return out


def flip_binomial(base: np.ndarray, k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row with ~Binomial(256, k/256) bits flipped (vectorised)."""
    mask = rng.integers(0, 256, size=(len(base), 256), dtype=np.uint8) < k[:, None]
    out: np.ndarray = base ^ np.packbits(mask, axis=1)
    return out


def flip_exact(base: np.ndarray, d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row with exactly d[i] distinct bits flipped."""
    ranks = rng.random((len(base), 256)).argsort(axis=1).argsort(axis=1)
    out: np.ndarray = base ^ np.packbits(ranks < d[:, None], axis=1)
    return out


def make_bank(
    n: int, seeds: np.ndarray, rng: np.random.Generator, cluster: int = CLUSTER
) -> np.ndarray:
    """Half variants, half random. ``cluster`` > 0: the variants come in families of about
    ``cluster`` near-duplicates of one base image, each base a real seed hash with ~80 bits
    flipped (a distinct image keeping real hashes' bit statistics); 0: every variant is drawn
    around the ~1,750 seeds themselves (clusters grow with the bank: at 10M, ~2,900 variants per
    seed, ~100 matches per query — a stress case, not a real bank)."""
    bank = np.empty((n, 32), dtype=np.uint8)
    n_var = n // 2
    if cluster > 0:
        n_base = max(1, n_var // cluster)
        bases = flip_binomial(
            seeds[rng.integers(0, len(seeds), size=n_base)],
            np.full(n_base, 80, dtype=np.uint8),
            rng,
        )
    else:
        bases = seeds
    chunk = 500_000
    for a in range(0, n_var, chunk):
        b = min(n_var, a + chunk)
        src = bases[rng.integers(0, len(bases), size=b - a)]
        bank[a:b] = flip_binomial(src, rng.integers(0, 49, size=b - a).astype(np.uint8), rng)
    bank[n_var:] = rng.integers(0, 256, size=(n - n_var, 32), dtype=np.uint8)
    return bank


def make_queries(
    bank: np.ndarray, seeds: np.ndarray, nq: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Queries, planted source row (-1 for negatives) and planted distance."""
    n_true = nq // 2
    src = rng.integers(0, len(bank), size=n_true)
    d = rng.integers(0, 32, size=n_true)
    true_q = flip_exact(bank[src], d, rng)
    n_rand = (nq - n_true) // 2
    rand_q = rng.integers(0, 256, size=(n_rand, 32), dtype=np.uint8)
    n_far = nq - n_true - n_rand
    far_q = flip_exact(
        seeds[rng.integers(0, len(seeds), size=n_far)], rng.integers(40, 65, size=n_far), rng
    )
    q = np.concatenate([true_q, rand_q, far_q])
    planted = np.concatenate([src, -np.ones(nq - n_true, dtype=np.int64)])
    dist = np.concatenate([d, -np.ones(nq - n_true, dtype=np.int64)])
    return q, planted, dist


def timed(fn: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    r = fn()
    return r, time.perf_counter() - t


def single_rate(fn: Any, queries: np.ndarray, budget_s: float = 6.0) -> float:
    """Sequential one-query-at-a-time lookups/s (stops after budget_s)."""
    faiss.omp_set_num_threads(1)
    t0 = time.perf_counter()
    n = 0
    for i in range(len(queries)):
        fn(queries[i : i + 1])
        n += 1
        if time.perf_counter() - t0 > budget_s:
            break
    rate = n / (time.perf_counter() - t0)
    faiss.omp_set_num_threads(2)
    return rate


def bench_size(n: int, seeds: np.ndarray, nq: int, rng: np.random.Generator) -> dict[str, Any]:
    print(f"\n== {n:,} hashes ==", flush=True)
    bank, gen_s = timed(lambda: make_bank(n, seeds, rng, CLUSTER))
    q, planted, dist = make_queries(bank, seeds, nq, rng)
    print(f"generated bank in {gen_s:.1f} s", flush=True)
    ids = np.arange(n, dtype=np.int64)

    faiss.omp_set_num_threads(2)
    r0 = rss_mb()
    index = PdqIndex(31)
    _, build_s = timed(lambda: index.add(ids, bank))
    ram_index = rss_mb() - r0
    print(
        f"index ({index.kind}, {index.nhash} x {index.substring_bits} bits) built in "
        f"{build_s:.1f} s, +{ram_index:.0f} MB RSS, arrays {index.memory_bytes() / 1e6:.0f} MB",
        flush=True,
    )

    index.search(q[:64])  # warm-up (first call loads the compiled kernels)
    res, batch_s = timed(lambda: index.search(q))
    found = np.array([planted[i] in {h.id for h in res[i]} for i in range(len(planted))])
    true = planted >= 0
    recall = float(found[true].mean())
    bands = {}
    for lo in range(0, 32, 8):
        sel = true & (dist >= lo) & (dist < lo + 8)
        bands[f"{lo}-{lo + 7}"] = float(found[sel].mean())
    hits_per_q = float(np.mean([len(r) for r in res]))
    single = single_rate(lambda x: index.search(x), q[:: max(1, len(q) // 5000)])

    r1 = rss_mb()
    flat = faiss.IndexBinaryFlat(256)
    _, flat_build_s = timed(lambda: flat.add(bank))
    ram_flat = rss_mb() - r1
    sample = rng.choice(len(q), size=min(len(q), max(100, 400_000_000 // n)), replace=False)
    (lims, fd, fi), bf_s = timed(lambda: flat.range_search(q[sample], 32))
    exact = all(
        {(int(fi[j]), int(fd[j])) for j in range(lims[k], lims[k + 1])}
        == {(h.id, h.distance) for h in res[i]}
        for k, i in enumerate(sample)
    )
    bf_rate = len(sample) / bf_s
    bf_single = single_rate(lambda x: flat.range_search(x, 32), q[sample][:200], 4.0)
    flat.reset()  # free its copy of the codes before the update runs
    updates = bench_updates(index, n, rng, q)

    out = {
        "hashes": n,
        "index_kind": index.kind,
        "nhash": index.nhash,
        "substring_bits": index.substring_bits,
        "build_s": round(build_s, 2),
        "ram_index_mb": round(ram_index, 1),
        "index_arrays_mb": round(index.memory_bytes() / 1e6, 1),
        "bytes_per_hash": round(index.memory_bytes() / n, 1),
        "ram_codes_mb": round(n * 32 / 1e6, 1),
        "queries": len(q),
        "true_queries": int(true.sum()),
        "recall_d_le_31": recall,
        "recall_by_distance": bands,
        "mean_hits_per_query": round(hits_per_q, 2),
        "lookups_per_s_2cores_batch": round(len(q) / batch_s, 1),
        "lookups_per_s_1core_single": round(single, 1),
        "brute_force_build_s": round(flat_build_s, 2),
        "brute_force_ram_mb": round(ram_flat, 1),
        "brute_force_sampled_queries": len(sample),
        "brute_force_extrapolated": bool(len(sample) < len(q)),
        "brute_force_lookups_per_s_2cores_batch": round(bf_rate, 1),
        "brute_force_lookups_per_s_1core_single": round(bf_single, 1),
        "speedup_vs_brute_force_batch": round(len(q) / batch_s / bf_rate, 1),
        "speedup_vs_brute_force_single": round(single / bf_single, 1),
        "identical_to_brute_force_on_sample": exact,
        "updates": updates,
    }
    print(json.dumps(out, indent=1), flush=True)

    return out


def bench_updates(
    index: PdqIndex, n: int, rng: np.random.Generator, q: np.ndarray
) -> dict[str, Any]:
    """Adds to a built index: active at once, lookups with the delta pending, merge time."""
    lat = []
    for i in range(20):
        new = rng.integers(0, 256, size=(1000, 32), dtype=np.uint8)
        new_ids = np.arange(n + 1000 * i, n + 1000 * (i + 1), dtype=np.int64)
        _, s = timed(lambda new=new, new_ids=new_ids: index.add(new_ids, new))
        lat.append(s)
        hits = index.search(new[::100])
        assert all(int(new_ids[100 * k]) in {h.id for h in hs} for k, hs in enumerate(hits))
    delta = index.delta_size
    _, s = timed(lambda: index.search(q))
    single = single_rate(lambda x: index.search(x), q[:: max(1, len(q) // 2000)], 3.0)
    _, merge_s = timed(index.compact)
    out = {
        "adds": "20 x 1,000 hashes, each searchable when add returned",
        "add_ms_median": round(1000 * float(np.median(lat)), 2),
        "add_ms_max": round(1000 * max(lat), 2),
        "delta_rows_pending": delta,
        "lookups_per_s_2cores_batch_with_delta": round(len(q) / s, 1),
        "lookups_per_s_1core_single_with_delta": round(single, 1),
        "merge_s": round(merge_s, 2),
    }
    print("updates:", out, flush=True)
    return out


def crossover(rng: np.random.Generator, seeds: np.ndarray) -> list[dict[str, Any]]:
    """Single-lookup speed of flat vs multi-hash at growing sizes."""
    rows = []
    for n in (3_000, 10_000, 30_000, 100_000, 300_000):
        bank = make_bank(n, seeds, rng, CLUSTER)
        q, _, _ = make_queries(bank, seeds, 1000, rng)
        ids = np.arange(n, dtype=np.int64)
        row: dict[str, Any] = {"hashes": n}
        for kind, flat_max in (("flat", 10**12), ("multihash", 0)):
            idx = PdqIndex(31, flat_max=flat_max)
            idx.add(ids, bank)
            idx.search(q[:10])  # warm-up
            row[kind] = round(single_rate(lambda x, i=idx: i.search(x), q, 2.0), 1)
        print(row, flush=True)
        rows.append(row)
    return rows


def extrapolate(rows: list[dict[str, Any]], target: int = 100_000_000) -> dict[str, Any]:
    """Linear fits through the measured sizes (RAM ∝ n; time per lookup a + b·n)."""
    if len(rows) < 2:
        return {}
    ns = np.array([r["hashes"] for r in rows], dtype=float)
    ram = np.array([r["ram_index_mb"] for r in rows])
    per_q = 1.0 / np.array([r["lookups_per_s_2cores_batch"] for r in rows])
    per_q1 = 1.0 / np.array([r["lookups_per_s_1core_single"] for r in rows])
    bf = 1.0 / np.array([r["brute_force_lookups_per_s_2cores_batch"] for r in rows])
    fit = lambda y: np.polyfit(ns, y, 1)  # noqa: E731
    at = lambda y: float(np.polyval(fit(y), target))  # noqa: E731
    return {
        "hashes": target,
        "method": "linear fit through the measured sizes",
        "ram_index_gb": round(at(ram) / 1000, 1),
        "lookups_per_s_2cores_batch": round(1 / at(per_q), 1),
        "lookups_per_s_1core_single": round(1 / at(per_q1), 1),
        "brute_force_lookups_per_s_2cores_batch": round(1 / at(bf), 2),
    }


def main() -> None:
    global CLUSTER
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--crossover", action="store_true")
    ap.add_argument("--cluster-size", type=int, default=CLUSTER)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    CLUSTER = args.cluster_size
    rng = np.random.default_rng(20240501)
    t0 = time.time()
    seeds = seed_hashes(rng)
    print(f"{len(seeds)} seed hashes (real: {len(seeds) - 300}, generated images: 300)")
    result: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "index": "reclaim multi-index hashing (numba kernels); brute force: FAISS IndexBinaryFlat",
        "faiss": faiss.__version__,
        "seed_hashes": len(seeds),
        "cluster_size": CLUSTER,
    }
    if args.crossover:
        result["crossover_single_lookups_per_s"] = crossover(rng, seeds)
    rows = [bench_size(n, seeds, args.queries, rng) for n in args.sizes]
    result["sizes"] = rows
    result["extrapolated"] = extrapolate(rows)
    result["total_s"] = round(time.time() - t0, 1)

    print(
        "\n| hashes | index | build s | RAM MB | recall d≤31 | lookups/s 2c | single/s 1c "
        "| brute/s 2c | brute single/s | speedup batch | speedup single | exact |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['hashes']:,} | {r['index_kind']} {r['nhash']}x{r['substring_bits']} "
            f"| {r['build_s']} | {r['ram_index_mb']} "
            f"| {r['recall_d_le_31']:.4f} | {r['lookups_per_s_2cores_batch']:,} "
            f"| {r['lookups_per_s_1core_single']:,} "
            f"| {r['brute_force_lookups_per_s_2cores_batch']:,}"
            f"{'*' if r['brute_force_extrapolated'] else ''} "
            f"| {r['brute_force_lookups_per_s_1core_single']:,} "
            f"| {r['speedup_vs_brute_force_batch']}x | {r['speedup_vs_brute_force_single']}x "
            f"| {r['identical_to_brute_force_on_sample']} |"
        )
    print("* brute force on a random sample of the queries, rate extrapolated per query")
    if result["extrapolated"]:
        print("100M extrapolated:", json.dumps(result["extrapolated"]))
    print(f"total {result['total_s']} s (load average at start {result['load_average_at_start']})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
