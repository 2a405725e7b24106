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

On-disk form (``--on-disk DIR``): per size, the time to save the built index and to stream
the same bank into a file (``PdqIndex.build_file``, no index in memory), then, in a fresh
process, the file opened cold (its pages dropped from the page cache first): open time, memory
after open (RssAnon: the process's own; RssFile: pages of the mapping it touched, which are page
cache, shared and reclaimable), single lookups while cold, ``warm()`` (one sequential read),
batched lookups/s on 2 cores, single-query lookups/s on 1 core and p50/p99 latency, memory and
cached file pages after the lookups, recall of the planted matches, exactness against FAISS
brute force on a sample (5M rows at a time over the mapped codes), and (up to
``--disk-merge-max``) one merge of the opened index into a new file. Sizes over
``--in-ram-max`` (default 30M) are only streamed to disk: ``--sizes 100000000 --on-disk DIR``.
Rows of sizes not rerun are kept from the existing results file.

Usage: python bench/pdq_index.py [--sizes 1000000 10000000] [--crossover] [--queries 10000]
       [--on-disk DIR [--keep]]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import subprocess
import sys
import threading
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


def bench_size(
    n: int, seeds: np.ndarray, nq: int, rng: np.random.Generator, disk: Path | None = None
) -> dict[str, Any]:
    print(f"\n== {n:,} hashes ==", flush=True)
    bank, gen_s = timed(lambda: make_bank(n, seeds, rng, CLUSTER))
    q, planted, dist = make_queries(bank, seeds, nq, rng)
    print(f"generated bank in {gen_s:.1f} s", flush=True)
    ids = np.arange(n, dtype=np.int64)

    faiss.omp_set_num_threads(2)
    r0 = rss_mb()
    index = PdqIndex(31)
    with MemSampler() as build_mem:
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
    on_disk: dict[str, Any] = {}
    if disk is not None:  # the same index on disk, saved and streamed (before the updates)
        path = disk / f"pdq-{n}.pdqi"
        _, save_s = timed(lambda: index.save(path))
        np.savez(disk / f"pdq-{n}-queries.npz", q=q, planted=planted, dist=dist)
        other = disk / f"pdq-{n}-streamed.pdqi"
        step = 500_000
        with MemSampler() as mem:
            _, stream_s = timed(
                lambda: PdqIndex.build_file(
                    other, ((ids[a : a + step], bank[a : a + step]) for a in range(0, n, step)), n
                )
            )
        other.unlink()
        on_disk = {
            "built": "in memory, then PdqIndex.save",
            "save_s": round(save_s, 2),
            "stream_build_s": round(stream_s, 2),
            "stream_build_peak_rss_anon_mb": mem.peak["RssAnon"],
            "stream_build_peak_rss_file_mb": mem.peak["RssFile"],
            "stream_build_anon_growth_mb": round(mem.peak["RssAnon"] - mem.start["RssAnon"], 1),
            "note": "peak RSS of the bench process, which also holds the bank and the index "
            "built in memory; the growth is what the streamed build added",
        }
        print(f"saved in {save_s:.1f} s; streamed build of the same bank {on_disk}", flush=True)
    updates = bench_updates(index, n, rng, q)

    out = {
        "hashes": n,
        "index_kind": index.kind,
        "nhash": index.nhash,
        "substring_bits": index.substring_bits,
        "build_s": round(build_s, 2),
        "ram_index_mb": round(ram_index, 1),
        "build_peak_rss_anon_mb": build_mem.peak["RssAnon"],
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
    if on_disk:
        out["on_disk"] = on_disk
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


# -- on-disk form -------------------------------------------------------------------------------


def mem_status() -> dict[str, float]:
    """This process's memory (MB): VmRSS = RssAnon (its own heap: what it costs) + RssFile
    (pages of mapped files it has touched: page cache, shared with every process mapping the
    same file and reclaimable by the kernel) + RssShmem; VmHWM is the peak VmRSS."""
    out: dict[str, float] = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key] = round(int(rest.split()[0]) / 1024, 1)
    return out


def cached_mb(path: Path) -> float:
    """How much of ``path`` is in the page cache now (mincore over a fresh mapping)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, *[ctypes.c_int] * 3, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = path.stat().st_size
    page = os.sysconf("SC_PAGE_SIZE")
    with open(path, "rb") as f:
        addr = libc.mmap(None, size, 1, 1, f.fileno(), 0)  # PROT_READ, MAP_SHARED
        if addr in (None, ctypes.c_void_p(-1).value):
            return float("nan")
        try:
            vec = (ctypes.c_ubyte * ((size + page - 1) // page))()
            if libc.mincore(addr, size, vec) != 0:
                return float("nan")
            resident = int((np.frombuffer(bytes(vec), dtype=np.uint8) & 1).sum())
        finally:
            libc.munmap(addr, size)
    return round(resident * page / 1e6, 1)


def drop_from_page_cache(path: Path) -> None:
    """Evict this one file's clean pages (posix_fadvise DONTNEED): a cold open, without
    touching the rest of the machine's page cache."""
    with open(path, "rb") as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def bank_chunks(n: int, seeds: np.ndarray, rng: np.random.Generator, cluster: int = CLUSTER) -> Any:
    """``make_bank``'s distribution in chunks of 500k rows (ids 0..n-1, ascending), so a 100M
    bank never sits in memory."""
    chunk = 500_000
    n_var = n // 2
    n_base = max(1, n_var // cluster) if cluster > 0 else 0
    if cluster > 0:
        bases = np.empty((n_base, 32), dtype=np.uint8)
        for a in range(0, n_base, chunk):
            b = min(n_base, a + chunk)
            bases[a:b] = flip_binomial(
                seeds[rng.integers(0, len(seeds), size=b - a)],
                np.full(b - a, 80, dtype=np.uint8),
                rng,
            )
    else:
        bases = seeds
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        out = np.empty((b - a, 32), dtype=np.uint8)
        nv = max(0, min(b, n_var) - a)
        if nv:
            src = bases[rng.integers(0, len(bases), size=nv)]
            out[:nv] = flip_binomial(src, rng.integers(0, 49, size=nv).astype(np.uint8), rng)
        out[nv:] = rng.integers(0, 256, size=(b - a - nv, 32), dtype=np.uint8)
        yield np.arange(a, b, dtype=np.int64), out


class MemSampler:
    """Peak RssAnon / RssFile of this process while a block runs (sampled every 0.2 s)."""

    def __init__(self) -> None:
        self.peak = {"RssAnon": 0.0, "RssFile": 0.0}
        self.start: dict[str, float] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            m = mem_status()
            for k in self.peak:
                self.peak[k] = max(self.peak[k], m.get(k, 0.0))

    def __enter__(self) -> MemSampler:
        self.start = mem_status()
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def stream_build(
    n: int, seeds: np.ndarray, rng: np.random.Generator, nq: int, folder: Path
) -> tuple[Path, dict[str, Any]]:
    """Build the on-disk form of an n-hash bank straight from generated chunks (no in-memory
    index), then the queries, from rows read back through the mapping."""
    path = folder / f"pdq-{n}.pdqi"
    last = [time.perf_counter()]

    def progress(msg: str) -> None:
        if time.perf_counter() - last[0] > 10 or "rows" in msg or "checksums" in msg:
            last[0] = time.perf_counter()
            print(f"  build: {msg} ({mem_status()})", flush=True)

    with MemSampler() as mem:
        _, build_s = timed(
            lambda: PdqIndex.build_file(
                path, bank_chunks(n, seeds, rng), n, max_radius=31, progress=progress
            )
        )
    opened = PdqIndex.open(path)
    base = opened._state.base
    assert base is not None
    bank = base.codes.view(np.uint8).reshape(n, 32)
    q, planted, dist = make_queries(bank, seeds, nq, rng)
    del bank, base, opened
    np.savez(folder / f"pdq-{n}-queries.npz", q=q, planted=planted, dist=dist)
    info = {
        "built": "streamed to disk (PdqIndex.build_file; bank generated in 500k chunks)",
        "stream_build_s": round(build_s, 1),
        "stream_build_peak_rss_anon_mb": mem.peak["RssAnon"],
        "stream_build_peak_rss_file_mb": mem.peak["RssFile"],
        "stream_build_anon_growth_mb": round(mem.peak["RssAnon"] - mem.start["RssAnon"], 1),
    }
    print(f"streamed build of {n:,} hashes: {info}", flush=True)
    return path, info


def single_latencies(index: PdqIndex, q: np.ndarray, budget_s: float) -> list[float]:
    """Seconds of each single-query lookup, in order, until ``q`` or ``budget_s`` runs out."""
    lat: list[float] = []
    t0 = time.perf_counter()
    for i in range(len(q)):
        t = time.perf_counter()
        index.search(q[i : i + 1])
        lat.append(time.perf_counter() - t)
        if time.perf_counter() - t0 > budget_s:
            break
    return lat


def open_worker(path: Path, qfile: Path, disk_merge: bool) -> dict[str, Any]:
    """Runs in a fresh process: open the file cold, look up, measure (printed as JSON)."""
    data = np.load(qfile)
    q, planted, dist = data["q"], data["planted"], data["dist"]
    drop_from_page_cache(path)
    out: dict[str, Any] = {"file_mb": round(path.stat().st_size / 1e6, 1)}
    out["page_cache_file_mb_before_open"] = cached_mb(path)
    out["mem_before_open_mb"] = mem_status()
    index, open_s = timed(lambda: PdqIndex.open(path))
    out["open_s_cold"] = round(open_s, 3)
    out["mem_after_open_mb"] = mem_status()
    out["page_cache_file_mb_after_open"] = cached_mb(path)
    index.search(q[:1])  # kernels loaded (numba cache) before timing
    # Cold lookups: page faults to disk until the pages they need are cached.
    t0 = time.perf_counter()
    lat = single_latencies(index, q[:2000], 15.0)
    out["cold_single_lookups"] = len(lat)
    out["cold_single_lookups_per_s"] = round(len(lat) / (time.perf_counter() - t0), 1)
    out["cold_single_p50_ms"] = round(1000 * float(np.percentile(lat, 50)), 3)
    out["cold_single_p99_ms"] = round(1000 * float(np.percentile(lat, 99)), 3)
    warmed, warm_s = timed(index.warm)
    out["warm_s"] = round(warm_s, 2)
    out["warm_mb"] = round(warmed / 1e6, 1)
    out["mem_after_warm_mb"] = mem_status()
    res, batch_s = timed(lambda: index.search(q))
    out["lookups_per_s_2cores_batch"] = round(len(q) / batch_s, 1)
    lat = single_latencies(index, q, 10.0)
    out["single_lookups"] = len(lat)
    out["lookups_per_s_1core_single"] = round(len(lat) / sum(lat), 1)
    out["single_p50_ms"] = round(1000 * float(np.percentile(lat, 50)), 3)
    out["single_p99_ms"] = round(1000 * float(np.percentile(lat, 99)), 3)
    out["mem_after_lookups_mb"] = mem_status()
    out["page_cache_file_mb_after_lookups"] = cached_mb(path)
    found = np.array([planted[i] in {h.id for h in res[i]} for i in range(len(planted))])
    true = planted >= 0
    out["recall_d_le_31"] = float(found[true].mean())
    out["recall_by_distance"] = {
        f"{lo}-{lo + 7}": float(found[true & (dist >= lo) & (dist < lo + 8)].mean())
        for lo in range(0, 32, 8)
    }
    out.update(brute_force_check(index, q, res))
    if disk_merge:
        rng = np.random.default_rng(1)
        n = len(index)
        new = rng.integers(0, 256, size=(20_000, 32), dtype=np.uint8)
        index.add(np.arange(n, n + 20_000, dtype=np.int64), new)
        index.remove(list(range(0, 20_000, 2)))
        _, merge_s = timed(index.compact)
        assert index.merge_error is None and index.delta_size == 0
        hits = index.search(new[:200])
        assert all(n + k in {h.id for h in hs} for k, hs in enumerate(hits))
        out["merge_to_file_s"] = round(merge_s, 2)
        out["merge_note"] = "20,000 adds + 10,000 removals, then compact(): a new mapped file"
        out["mem_after_merge_mb"] = mem_status()
    return out


def brute_force_check(index: PdqIndex, q: np.ndarray, res: list[list[Any]]) -> dict[str, Any]:
    """FAISS brute force over the mapped codes, 5M rows at a time, on a sample of queries:
    are the index's result sets exactly brute force's?"""
    base = index._state.base
    assert base is not None
    n = base.n
    codes = base.codes.view(np.uint8).reshape(n, 32)
    rng = np.random.default_rng(2)
    sample = rng.choice(len(q), size=min(len(q), max(100, 400_000_000 // n)), replace=False)
    want: list[set[tuple[int, int]]] = [set() for _ in sample]
    faiss.omp_set_num_threads(2)
    t = time.perf_counter()
    step = 5_000_000
    for a in range(0, n, step):
        flat = faiss.IndexBinaryFlat(256)
        flat.add(np.ascontiguousarray(codes[a : a + step]))
        lims, fd, fi = flat.range_search(q[sample], 32)
        for k in range(len(sample)):
            for j in range(lims[k], lims[k + 1]):
                want[k].add((int(base.ids[a + int(fi[j])]), int(fd[j])))
        flat.reset()
    bf_s = time.perf_counter() - t
    exact = all(want[k] == {(h.id, h.distance) for h in res[i]} for k, i in enumerate(sample))
    return {
        "brute_force_sampled_queries": len(sample),
        "brute_force_lookups_per_s_2cores_batch": round(len(sample) / bf_s, 2),
        "identical_to_brute_force_on_sample": exact,
    }


def run_open_worker(path: Path, qfile: Path, disk_merge: bool) -> dict[str, Any]:
    """The open/lookup measurements in a fresh process (its memory is the open index's)."""
    cmd = [sys.executable, __file__, "--_open-worker", str(path), str(qfile)]
    if disk_merge:
        cmd.append("--_disk-merge")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"open worker failed:\n{proc.stdout}\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"on disk, opened in a fresh process: {json.dumps(result)}", flush=True)
    return result


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
    rows = [r for r in rows if "lookups_per_s_2cores_batch" in r]
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
    ap.add_argument(
        "--on-disk",
        type=Path,
        metavar="DIR",
        help="also measure the on-disk form (files written in DIR, deleted after)",
    )
    ap.add_argument(
        "--in-ram-max",
        type=int,
        default=30_000_000,
        help="larger sizes are only built streamed to disk (an in-memory build needs ~2x the "
        "index at its peak: it does not fit at 100M on a 24 GB machine shared with others)",
    )
    ap.add_argument(
        "--disk-merge-max",
        type=int,
        default=10_000_000,
        help="up to this size, also time a merge of the opened index (writes a new file)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the index files in DIR")
    ap.add_argument("--_open-worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--_disk-merge", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._open_worker:
        path, qfile = args._open_worker
        print(json.dumps(open_worker(path, qfile, args._disk_merge)))
        return
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
    if args.on_disk:
        args.on_disk.mkdir(parents=True, exist_ok=True)
        free = os.statvfs(args.on_disk)
        print(
            f"on-disk files in {args.on_disk} ({free.f_bavail * free.f_frsize / 1e9:.0f} GB free)"
        )
    rows = []
    for n in args.sizes:
        if n <= args.in_ram_max:
            row = bench_size(n, seeds, args.queries, rng, args.on_disk)
        elif args.on_disk:
            print(f"\n== {n:,} hashes (on disk only) ==", flush=True)
            row = {
                "hashes": n,
                "in_ram": f"not built (over --in-ram-max {args.in_ram_max:,}): see on_disk",
            }
            _, row["on_disk"] = stream_build(n, seeds, rng, args.queries, args.on_disk)
        else:
            raise SystemExit(f"{n:,} is over --in-ram-max: give --on-disk DIR")
        if args.on_disk:
            path = args.on_disk / f"pdq-{n}.pdqi"
            qfile = args.on_disk / f"pdq-{n}-queries.npz"
            try:
                row["on_disk"].update(run_open_worker(path, qfile, n <= args.disk_merge_max))
            finally:
                if not args.keep:
                    path.unlink(missing_ok=True)
                    qfile.unlink(missing_ok=True)
        row["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        rows.append(row)
    # Sizes not run now keep their earlier rows (a 100M run does not erase the 1M/10M ones).
    if args.out.exists():
        old = json.loads(args.out.read_text())
        kept = [r for r in old.get("sizes", []) if r["hashes"] not in set(args.sizes)]
        rows = sorted(kept + rows, key=lambda r: int(r["hashes"]))
        for key in ("crossover_single_lookups_per_s",):
            if key in old and key not in result:
                result[key] = old[key]
    result["sizes"] = rows
    result["extrapolated"] = extrapolate(rows)
    result["total_s"] = round(time.time() - t0, 1)
    print_tables(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


def print_tables(result: dict[str, Any]) -> None:
    rows = result["sizes"]
    print(
        "\n| hashes | index | build s | RAM MB | recall d≤31 | lookups/s 2c | single/s 1c "
        "| brute/s 2c | brute single/s | speedup batch | speedup single | exact |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "lookups_per_s_2cores_batch" not in r:
            print(f"| {r['hashes']:,} | {r['in_ram']} |")
            continue
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
    disk = [r for r in rows if "on_disk" in r and "open_s_cold" in r["on_disk"]]
    if disk:
        print(
            "\nOn-disk form, opened cold in a fresh process (anon = the process's own memory; "
            "file = mapped pages it touched, i.e. page cache)"
        )
        print(
            "| hashes | file GB | build in RAM s | streamed build s (anon growth MB) | open s "
            "| anon/file MB after open | cold single/s (p99 ms) | warm s "
            "| lookups/s 2c | single/s 1c | p99 ms | anon/file MB after lookups | recall "
            "| exact | merge s |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in disk:
            d = r["on_disk"]
            a, b = d["mem_after_open_mb"], d["mem_after_lookups_mb"]
            print(
                f"| {r['hashes']:,} | {d['file_mb'] / 1000:.2f} | {r.get('build_s', '-')} "
                f"| {d['stream_build_s']} ({d.get('stream_build_anon_growth_mb', 0):.0f}) "
                f"| {d['open_s_cold']} | {a['RssAnon']:.0f}/{a['RssFile']:.0f} "
                f"| {d['cold_single_lookups_per_s']} ({d['cold_single_p99_ms']}) "
                f"| {d['warm_s']} | {d['lookups_per_s_2cores_batch']:,} "
                f"| {d['lookups_per_s_1core_single']:,} | {d['single_p99_ms']} "
                f"| {b['RssAnon']:.0f}/{b['RssFile']:.0f} | {d['recall_d_le_31']:.4f} "
                f"| {d['identical_to_brute_force_on_sample']} | {d.get('merge_to_file_s', '-')} |"
            )
    if result["extrapolated"]:
        print("100M extrapolated (in-memory rows):", json.dumps(result["extrapolated"]))
    print(f"total {result['total_s']} s (load average at start {result['load_average_at_start']})")


if __name__ == "__main__":
    main()
