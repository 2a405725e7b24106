"""PDQ index: exact range search (checked against independent brute force), adds, removals,
merges (also in the background, with updates racing them), layout arithmetic."""

from __future__ import annotations

import itertools
import math
import threading

import numpy as np
import pytest

import reclaim.match.pdq_index as pi
from reclaim.hashes.pdq import PdqHash
from reclaim.match.pdq_index import PdqIndex, hashes_from_hex

RNG = np.random.default_rng(1234)


def flip_bits(codes: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Copy of ``codes`` with exactly counts[i] distinct bits flipped in row i."""
    out = codes.copy()
    for i, k in enumerate(counts):
        bits = rng.choice(256, size=int(k), replace=False)
        for b in bits:
            out[i, b // 8] ^= np.uint8(1 << (b % 8))
    return out


def brute(codes: np.ndarray, ids: np.ndarray, q: np.ndarray, r: int) -> list[set[tuple[int, int]]]:
    """Reference: Hamming distances by unpacking bits (independent of FAISS)."""
    cb = np.unpackbits(codes, axis=1)
    res = []
    for row in np.unpackbits(q, axis=1):
        d = (cb != row).sum(axis=1)
        sel = np.nonzero(d <= r)[0]
        res.append({(int(ids[j]), int(d[j])) for j in sel})
    return res


def as_set(hits: list) -> set[tuple[int, int]]:
    return {(h.id, h.distance) for h in hits}


def _data(n: int, nq: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    codes = RNG.integers(0, 256, size=(n, 32), dtype=np.uint8)
    ids = RNG.permutation(10 * n)[:n].astype(np.int64) + 1
    src = RNG.integers(0, n, size=nq)
    q = flip_bits(codes[src], RNG.integers(0, 40, size=nq), RNG)  # distances 0..39
    return codes, ids, q


@pytest.mark.parametrize("flat_max", [10**9, 100])  # flat, and multi-index hashing
def test_range_search_is_exact(flat_max: int) -> None:
    codes, ids, q = _data(3000, 200)
    idx = PdqIndex(31, flat_max=flat_max)
    idx.add(ids, codes)
    assert idx.kind == ("flat" if flat_max > 3000 else "multihash")
    got = idx.search(q)
    want = brute(codes, ids, q, 31)
    assert [as_set(g) for g in got] == want
    assert sum(len(w) for w in want) > 100  # the planted near-duplicates are there
    # distance is sorted ascending
    for g in got:
        assert [h.distance for h in g] == sorted(h.distance for h in g)


def test_boundary_31_in_32_out() -> None:
    base = RNG.integers(0, 256, size=(1, 32), dtype=np.uint8)
    for flat_max in (10**9, 0):
        idx = PdqIndex(31, flat_max=flat_max)
        idx.add([7], base)
        at31 = flip_bits(base, np.array([31]), RNG)
        at32 = flip_bits(base, np.array([32]), RNG)
        assert [(h.id, h.distance) for h in idx.search_one(at31[0])] == [(7, 31)]
        assert idx.search_one(at32[0]) == []
        assert idx.search_one(at31[0], radius=30) == []


def test_incremental_add_crosses_to_multihash_and_stays_exact() -> None:
    codes, ids, q = _data(2000, 100)
    idx = PdqIndex(31, flat_max=1000)
    idx.add(ids[:900], codes[:900])
    assert idx.kind == "flat"
    idx.add(ids[900:1500], codes[900:1500])
    assert idx.kind == "multihash"
    idx.add(ids[1500:], codes[1500:])  # incremental add into the multi-hash index
    assert len(idx) == 2000
    assert [as_set(g) for g in idx.search(q)] == brute(codes, ids, q, 31)


@pytest.mark.parametrize("flat_max", [10**9, 100])
def test_remove_then_compact_then_readd(flat_max: int) -> None:
    codes, ids, q = _data(1000, 100)
    idx = PdqIndex(31, flat_max=flat_max, compact_ratio=0.5)
    idx.add(ids, codes)
    gone = ids[:100]
    idx.remove([*gone.tolist(), -5])  # unknown ids are ignored
    assert len(idx) == 900 and idx.tombstones == 100
    keep = ~np.isin(ids, gone)
    assert [as_set(g) for g in idx.search(q)] == brute(codes[keep], ids[keep], q, 31)
    idx.compact()
    assert idx.tombstones == 0 and len(idx) == 900
    assert [as_set(g) for g in idx.search(q)] == brute(codes[keep], ids[keep], q, 31)
    idx.add(gone[:10], codes[:10])  # removed ids may come back
    keep2 = keep.copy()
    keep2[:10] = True
    assert [as_set(g) for g in idx.search(q)] == brute(codes[keep2], ids[keep2], q, 31)


def test_readd_of_tombstoned_id_purges_old_row() -> None:
    codes, ids, _ = _data(10, 1)
    idx = PdqIndex(31)
    idx.add(ids, codes)
    idx.remove([int(ids[0])])
    other = flip_bits(codes[:1], np.array([100]), RNG)
    idx.add(ids[:1], other)
    assert [(h.id, h.distance) for h in idx.search_one(other[0])] == [(int(ids[0]), 0)]
    assert int(ids[0]) not in {h.id for h in idx.search_one(codes[0])}


def test_wider_radius_needs_set_max_radius() -> None:
    codes, ids, q = _data(500, 50)
    idx = PdqIndex(31, flat_max=10)
    idx.add(ids, codes)
    with pytest.raises(ValueError, match="radius"):
        idx.search(q, 40)
    idx.set_max_radius(47)
    assert [as_set(g) for g in idx.search(q, 40)] == brute(codes, ids, q, 40)


def test_hex_parsing_matches_pdqhash_value_type() -> None:
    hexes = [str(PdqHash(bytes(RNG.integers(0, 256, 32, dtype=np.uint8)))) for _ in range(5)]
    arr = hashes_from_hex(hexes)
    assert [PdqHash(bytes(row)).__str__() for row in arr] == hexes
    with pytest.raises(ValueError):
        hashes_from_hex(["zz" * 32])
    with pytest.raises(ValueError):
        hashes_from_hex(["ab" * 31])
    with pytest.raises(ValueError):
        PdqIndex(31).add([1], np.zeros((1, 31), dtype=np.uint8))


# -- multi-index hashing: layout arithmetic ------------------------------------------------------

POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def brute_pop(
    codes: np.ndarray, ids: np.ndarray, q: np.ndarray, r: int
) -> list[set[tuple[int, int]]]:
    """Reference for larger sets: byte popcount table (no code shared with the index)."""
    out = []
    for row in q:
        d = POP8[codes ^ row].sum(axis=1)
        sel = np.nonzero(d <= r)[0]
        out.append({(int(ids[j]), int(d[j])) for j in sel})
    return out


@pytest.mark.parametrize("m", [1, 2, 3, 5, 9, 11, 12, 16, 21, 32])
def test_probe_radii_reach_every_hash_within_r(m: int) -> None:
    """Pigeonhole: any split of <= r differing bits over m substrings leaves one substring t
    within its probe radius. A split defeating every table needs >= sum(rad_t + 1) bits, so
    that sum must exceed r; and no radius is wasted (the sum is exactly r + 1)."""
    for r in range(70):
        rads = pi._probe_radii(m, r)
        assert len(rads) == m
        assert int((rads + 1).sum()) == r + 1
        assert int(rads.max()) - int(rads.min()) <= 1  # probes spread evenly


def test_probe_radii_exhaustive_small() -> None:
    for m, r in itertools.product(range(1, 5), range(13)):
        rads = pi._probe_radii(m, r)
        for split in itertools.product(range(r + 1), repeat=m):
            if sum(split) <= r:
                assert any(d <= rad for d, rad in zip(split, rads, strict=True)), (m, r, split)


@pytest.mark.parametrize(("b", "rad"), [(8, 0), (8, 3), (12, 2), (23, 2), (16, 4)])
def test_masks_are_every_flip_pattern_once(b: int, rad: int) -> None:
    masks, count = pi._masks(b, rad)
    assert len(set(masks.tolist())) == len(masks) == sum(math.comb(b, k) for k in range(rad + 1))
    pops = [bin(int(x)).count("1") for x in masks]
    assert pops == sorted(pops) and max(pops) <= rad and all(int(x) < (1 << b) for x in masks)
    for k in range(rad + 1):
        assert count[k] == sum(1 for p in pops if p <= k)


def test_layout_respects_memory_budget() -> None:
    for n in (100, 5_000, 200_000, 1_000_000, 10_000_000):
        m, b = pi.choose_layout(n, 31)
        assert m * b <= 256 and 8 <= b <= 25
        assert m * ((1 << b) + 1) * 4 <= max(128 * n, 1 << 20)


# -- multi-index hashing: exactness on skewed data ------------------------------------------------


def clustered(n: int, families: int, rng: np.random.Generator) -> np.ndarray:
    """Half near-duplicates of a few seeds (0..24 bits off: crowded buckets), half random."""
    seeds = rng.integers(0, 256, size=(families, 32), dtype=np.uint8)
    var = seeds[rng.integers(0, families, size=n // 2)]
    var = flip_bits(var, rng.integers(0, 25, size=len(var)), rng)
    return np.concatenate([var, rng.integers(0, 256, size=(n - len(var), 32), dtype=np.uint8)])


def near_queries(codes: np.ndarray, nq: int, dmax: int, rng: np.random.Generator) -> np.ndarray:
    src = rng.integers(0, len(codes), size=nq)
    return flip_bits(codes[src], rng.integers(0, dmax + 1, size=nq), rng)


def test_multihash_exact_on_clustered_data_at_several_radii() -> None:
    rng = np.random.default_rng(7)
    codes = clustered(12_000, 20, rng)
    ids = rng.permutation(10**6)[: len(codes)].astype(np.int64)  # not sorted on purpose
    q = np.concatenate(
        [near_queries(codes, 150, 45, rng), rng.integers(0, 256, (30, 32), dtype=np.uint8)]
    )
    idx = PdqIndex(31, flat_max=0)
    idx.add(ids, codes)
    assert idx.kind == "multihash" and idx.delta_size == 0
    base = idx._state.base
    assert base is not None and not base.plan(31).scan  # the tables answer, not a scan
    want31 = brute_pop(codes, ids, q, 31)
    assert sum(len(w) for w in want31) > 1000  # crowded: many hits per query
    got = idx.search(q)
    assert [as_set(g) for g in got] == want31
    assert all(len(g) == len(as_set(g)) for g in got)  # a hash reached via k tables: once
    for r in (0, 5, 16):
        assert [as_set(g) for g in idx.search(q, r)] == brute_pop(codes, ids, q, r)
    idx.set_max_radius(48)
    assert not base.plan(48).scan
    assert [as_set(g) for g in idx.search(q, 48)] == brute_pop(codes, ids, q, 48)


@pytest.mark.parametrize("nhash", [12, 16, 21, 32])
def test_fixed_substring_counts_are_exact(nhash: int) -> None:
    rng = np.random.default_rng(nhash)
    codes = clustered(3000, 5, rng)
    ids = np.arange(len(codes), dtype=np.int64)
    q = near_queries(codes, 60, 36, rng)
    idx = PdqIndex(31, flat_max=0, nhash=nhash)
    idx.add(ids, codes)
    assert idx.nhash == nhash and idx.substring_bits == min(256 // nhash, 25)
    assert [as_set(g) for g in idx.search(q)] == brute_pop(codes, ids, q, 31)


def test_wide_radius_falls_back_to_a_scan_and_stays_exact() -> None:
    rng = np.random.default_rng(3)
    codes = clustered(3000, 5, rng)
    ids = np.arange(len(codes), dtype=np.int64)
    q = near_queries(codes, 20, 80, rng)
    idx = PdqIndex(120, flat_max=0)
    idx.add(ids, codes)
    base = idx._state.base
    assert base is not None and base.plan(120).scan
    assert [as_set(g) for g in idx.search(q, 120)] == brute_pop(codes, ids, q, 120)


def test_batch_results_equal_single_lookups_and_are_ordered() -> None:
    rng = np.random.default_rng(11)
    codes = clustered(8000, 10, rng)
    ids = rng.permutation(len(codes)).astype(np.int64)
    q = near_queries(codes, 200, 40, rng)  # enough queries to be split across threads
    idx = PdqIndex(31, flat_max=0, delta_max=10_000)
    idx.add(ids[:6000], codes[:6000])
    idx.add(ids[6000:], codes[6000:])  # these stay in the delta
    assert idx.delta_size == 2000
    batch = idx.search(q)
    assert batch == [idx.search_one(row) for row in q]
    assert batch[0] == idx.search_one(q[0].tobytes())
    for hits in batch:
        assert [(h.distance, h.id) for h in hits] == sorted((h.distance, h.id) for h in hits)
    assert [as_set(g) for g in batch] == brute_pop(codes, ids, q, 31)


def test_duplicate_ids_are_removed_together() -> None:
    """vPDQ frames share their video's id: remove() drops every row of the id."""
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 256, (6000, 32), dtype=np.uint8)
    ids = np.repeat(np.arange(2000, dtype=np.int64), 3)
    for flat_max in (10**6, 0):
        idx = PdqIndex(31, flat_max=flat_max)
        idx.add(ids, codes)
        idx.add([7, 7], codes[:2] ^ np.uint8(0xFF))  # more rows of id 7, in the delta
        idx.remove([7, 3])
        assert len(idx) == 6000 - 6 and idx.tombstones == 8
        for row in (*codes[9:12], *codes[21:24], *(codes[:2] ^ np.uint8(0xFF))):
            assert {h.id for h in idx.search_one(row)}.isdisjoint({3, 7})
        assert [h.id for h in idx.search_one(codes[12])] == [4]


def test_empty_and_malformed_inputs() -> None:
    idx = PdqIndex(31)
    q = RNG.integers(0, 256, (3, 32), dtype=np.uint8)
    assert idx.search(q) == [[], [], []]
    assert idx.search(np.zeros((0, 32), dtype=np.uint8)) == []
    idx.add([], np.zeros((0, 32), dtype=np.uint8))
    idx.remove([])
    assert len(idx) == 0
    with pytest.raises(ValueError, match="queries"):
        idx.search(np.zeros((2, 16), dtype=np.uint8))
    with pytest.raises(ValueError, match="one id per hash"):
        idx.add([1, 2], np.zeros((1, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match="nhash"):
        PdqIndex(31, nhash=3)
    with pytest.raises(ValueError, match="max_radius"):
        PdqIndex(256)


# -- updates: delta merges, background merges racing updates, concurrent lookups ----------------


def test_delta_merges_as_it_grows_and_stays_exact() -> None:
    rng = np.random.default_rng(21)
    codes = clustered(4000, 8, rng)
    ids = np.arange(1, len(codes) + 1, dtype=np.int64)
    q = near_queries(codes, 40, 36, rng)
    idx = PdqIndex(31, flat_max=500, delta_max=300)
    for a in range(0, len(codes), 250):
        idx.add(ids[a : a + 250], codes[a : a + 250])
        assert idx.delta_size <= (300 if idx.kind == "multihash" else 500)
        # every hash added so far is found, the rest are not
        got = idx.search(q[:10])
        assert [as_set(g) for g in got] == brute_pop(codes[: a + 250], ids[: a + 250], q[:10], 31)
    assert idx.kind == "multihash" and len(idx) == len(codes)
    assert [as_set(g) for g in idx.search(q)] == brute_pop(codes, ids, q, 31)
    idx.remove(ids[:1000].tolist())  # past compact_ratio: merged away at once
    assert idx.tombstones == 0 and len(idx) == 3000
    assert [as_set(g) for g in idx.search(q)] == brute_pop(codes[1000:], ids[1000:], q, 31)


def test_background_merge_with_updates_racing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """While a merge builds new tables (held here on an event), lookups see the old base plus
    the delta, adds are searchable at once, removals take effect at once and survive the swap."""
    rng = np.random.default_rng(31)
    codes = clustered(3000, 6, rng)
    ids = np.arange(len(codes), dtype=np.int64)
    idx = PdqIndex(31, flat_max=500, delta_max=100, sync_merge_max=0)
    idx.add(ids[:2000], codes[:2000])  # the first build is synchronous
    assert idx.kind == "multihash" and idx.delta_size == 0

    started, release = threading.Event(), threading.Event()
    real_build = pi._build_base

    def slow_build(*args: object, **kw: object) -> pi._Base:
        started.set()
        assert release.wait(10)
        return real_build(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(pi, "_build_base", slow_build)
    idx.add(ids[2000:2200], codes[2000:2200])  # delta > 100: background merge starts
    assert started.wait(10)
    idx.add(ids[2200:2500], codes[2200:2500])  # during the merge
    removed = [5, 2100, 2300]  # one in the old base, one in the merging delta, one newer
    idx.remove(removed)
    live = np.ones(2500, dtype=bool)
    live[removed] = False
    q = np.concatenate([codes[removed], near_queries(codes[:2500], 40, 36, rng)])
    want = brute_pop(codes[:2500][live], ids[:2500][live], q, 31)
    assert [as_set(g) for g in idx.search(q)] == want  # mid-merge
    release.set()
    idx.wait()
    assert idx.merge_error is None
    assert len(idx) == 2497
    assert [as_set(g) for g in idx.search(q)] == want  # after the swap (and follow-up merge)
    idx.compact()
    assert idx.tombstones == 0 and idx.delta_size == 0
    assert [as_set(g) for g in idx.search(q)] == want


def test_lookups_run_concurrently_with_updates() -> None:
    rng = np.random.default_rng(41)
    codes = clustered(6000, 10, rng)
    ids = np.arange(len(codes), dtype=np.int64)
    idx = PdqIndex(31, flat_max=1000, delta_max=500)
    idx.add(ids[:3000], codes[:3000])
    q = codes[:50]  # exact copies: each must always find its own id (never removed)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                for i, hits in enumerate(idx.search(q)):
                    assert i in {h.id for h in hits}
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for a in range(3000, 6000, 200):
        idx.add(ids[a : a + 200], codes[a : a + 200])
        idx.remove(ids[a : a + 20].tolist())
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    live = np.ones(6000, dtype=bool)
    for a in range(3000, 6000, 200):
        live[a : a + 20] = False
    qq = near_queries(codes, 50, 36, rng)
    assert [as_set(g) for g in idx.search(qq)] == brute_pop(codes[live], ids[live], qq, 31)
