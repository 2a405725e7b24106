"""PDQ FAISS index: exact range search (checked against brute force), adds, removals."""

from __future__ import annotations

import numpy as np
import pytest

from reclaim.match.pdq_index import PdqIndex, hashes_from_hex
from reclaim.signals.pdq import PdqHash

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
