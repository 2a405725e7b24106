"""PDQ nearest-neighbour index on FAISS binary indexes, updated in place.

Two FAISS structures, chosen by size (measured in ``bench/pdq_index.py``):

- ``IndexBinaryFlat`` (exact brute force, SIMD popcount) while the index holds fewer than
  ``flat_max`` hashes: for single lookups it beats multi-index hashing up to a few hundred
  thousand hashes;
- ``IndexBinaryMultiHash`` (multi-index hashing, Norouzi et al.) above: the 256 bits are cut into
  ``nhash`` substrings of ``b`` bits; by the pigeonhole principle two hashes within distance
  ``r`` agree within ``r // nhash`` bits on at least one substring, so probing every key within
  ``nflip = max_radius // nhash`` bit flips of each query substring finds *every* hash within
  ``max_radius`` — the search is exact, not approximate (recall 1.0 by construction).

Updates never rebuild everything: ``add`` appends to the live FAISS index (both kinds support
incremental adds), so a new hash is searchable as soon as ``add`` returns. ``remove`` puts ids in a
tombstone set that searches filter out; the index is compacted (rebuilt without them) lazily, when
tombstones pass ``compact_ratio`` of its size. Crossing ``flat_max`` rebuilds once, as multi-hash.

Thread-safe: many concurrent searches (FAISS releases the GIL), one writer at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from reclaim.signals.pdq import PDQ_MATCH_DISTANCE

__all__ = [
    "DEFAULT_FLAT_MAX",
    "PdqIndex",
    "PdqIndexHit",
    "hashes_from_hex",
]

PDQ_BITS = 256
PDQ_BYTES = 32
#: Below this many hashes a flat (brute-force) index answers single lookups faster than
#: multi-index hashing (bench/pdq_index.py measures the crossover).
DEFAULT_FLAT_MAX = 300_000
#: 11 substrings of 23 bits: at radius 31, two bit flips per substring suffice (277 probes
#: each). Measured at 1M random hashes (2 cores): 16 x 16 bits probes fewer keys but its buckets
#: hold ~15 ids each and lookups ran 8x slower; 11 x 23 costs about twice the memory.
DEFAULT_NHASH = 11


@dataclass(frozen=True)
class PdqIndexHit:
    id: int
    distance: int


def hashes_from_hex(values: Sequence[str]) -> np.ndarray:
    """(n, 32) uint8 array from 64-hex-digit PDQ strings. Raises ValueError on a malformed one."""
    if not values:
        return np.zeros((0, PDQ_BYTES), dtype=np.uint8)
    try:
        joined = bytes.fromhex("".join(values))
    except ValueError as e:
        raise ValueError(f"a PDQ hash is not hexadecimal: {e}") from e
    if len(joined) != PDQ_BYTES * len(values) or any(len(v) != 64 for v in values):
        raise ValueError("every PDQ hash must be 64 hex digits")
    return np.frombuffer(joined, dtype=np.uint8).reshape(-1, PDQ_BYTES).copy()


class _RWLock:
    """Readers share, a writer excludes everyone (writer-preferring)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class PdqIndex:
    """Exact range search over PDQ hashes (Hamming distance ≤ radius), with int64 ids."""

    def __init__(
        self,
        max_radius: int = PDQ_MATCH_DISTANCE,
        *,
        flat_max: int = DEFAULT_FLAT_MAX,
        nhash: int = DEFAULT_NHASH,
        compact_ratio: float = 0.2,
    ) -> None:
        if not 0 <= max_radius < PDQ_BITS:
            raise ValueError(f"max_radius must be in 0..255, got {max_radius}")
        if not 4 <= nhash <= 64:
            raise ValueError("nhash must be in 4..64 (substrings of 256 // nhash bits)")
        self.max_radius = max_radius
        self.flat_max = flat_max
        self.nhash = nhash
        self.compact_ratio = compact_ratio
        self._lock = _RWLock()
        self._index: faiss.IndexBinary = faiss.IndexBinaryFlat(PDQ_BITS)
        self._ids = np.zeros(1024, dtype=np.int64)  # position in the FAISS index → id
        self._n = 0  # positions used (live + tombstoned)
        self._dead: set[int] = set()
        self._dead_arr = np.zeros(0, dtype=np.int64)  # sorted copy of _dead for vector filters

    # -- introspection ------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return "multihash" if isinstance(self._index, faiss.IndexBinaryMultiHash) else "flat"

    def __len__(self) -> int:
        return self._n - len(self._dead)

    @property
    def tombstones(self) -> int:
        return len(self._dead)

    # -- updates ------------------------------------------------------------------------------

    def add(self, ids: Iterable[int] | np.ndarray, hashes: np.ndarray) -> None:
        """Add hashes ((n, 32) uint8) under ``ids``; searchable when this returns."""
        codes = np.ascontiguousarray(hashes, dtype=np.uint8)
        if codes.ndim != 2 or codes.shape[1] != PDQ_BYTES:
            raise ValueError(f"hashes must be an (n, {PDQ_BYTES}) uint8 array")
        id_arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, np.int64)
        if id_arr.shape != (codes.shape[0],):
            raise ValueError("one id per hash")
        if not len(id_arr):
            return
        with self._lock.write():
            if self._dead:
                revived = self._dead.intersection(id_arr.tolist())
                if revived:  # an id removed then re-added: purge its old rows first
                    self._compact()
            need = self._n + len(id_arr)
            if need > len(self._ids):
                grown = np.zeros(max(need, 2 * len(self._ids)), dtype=np.int64)
                grown[: self._n] = self._ids[: self._n]
                self._ids = grown
            self._ids[self._n : need] = id_arr
            self._n = need
            if self.kind == "flat" and need - len(self._dead) > self.flat_max:
                self._rebuild(np.concatenate([self._codes(), codes]), self._ids[:need].copy())
            else:
                self._index.add(codes)

    def remove(self, ids: Iterable[int]) -> None:
        """Stop matching ``ids`` now; their rows are dropped at the next compaction."""
        with self._lock.write():
            arr = np.asarray(list(ids), dtype=np.int64)
            arr = arr[np.isin(arr, self._ids[: self._n])]  # unknown ids are no tombstones
            self._dead.update(arr.tolist())
            self._dead_arr = np.array(sorted(self._dead), dtype=np.int64)
            if self._n and len(self._dead) > self.compact_ratio * self._n:
                self._compact()

    def compact(self) -> None:
        with self._lock.write():
            self._compact()

    def _codes(self) -> np.ndarray:
        index: Any = self._index
        flat = index.storage if self.kind == "multihash" else index
        codes: np.ndarray = faiss.vector_to_array(flat.xb).reshape(-1, PDQ_BYTES)
        return codes

    def _compact(self) -> None:
        if not self._dead:
            return
        ids = self._ids[: self._n]
        keep = ~np.isin(ids, self._dead_arr)
        self._dead.clear()
        self._dead_arr = np.zeros(0, dtype=np.int64)
        self._rebuild(self._codes()[keep], ids[keep].copy())

    def _rebuild(self, codes: np.ndarray, ids: np.ndarray) -> None:
        index = self._new_index(len(ids))
        index.add(np.ascontiguousarray(codes))
        self._index = index
        self._ids = np.zeros(max(1024, 2 * len(ids)), dtype=np.int64)
        self._ids[: len(ids)] = ids
        self._n = len(ids)

    def _new_index(self, n: int) -> faiss.IndexBinary:
        if n <= self.flat_max:
            return faiss.IndexBinaryFlat(PDQ_BITS)
        mh = faiss.IndexBinaryMultiHash(PDQ_BITS, self.nhash, PDQ_BITS // self.nhash)
        mh.nflip = self.max_radius // self.nhash
        return mh

    def set_max_radius(self, radius: int) -> None:
        """Allow searches up to ``radius`` (more bit flips probed when using multi-hash)."""
        if not 0 <= radius < PDQ_BITS:
            raise ValueError(f"radius must be in 0..255, got {radius}")
        with self._lock.write():
            self.max_radius = radius
            if isinstance(self._index, faiss.IndexBinaryMultiHash):
                self._index.nflip = radius // self.nhash

    # -- search -------------------------------------------------------------------------------

    def search(self, queries: np.ndarray, radius: int | None = None) -> list[list[PdqIndexHit]]:
        """Every indexed hash within ``radius`` (default ``max_radius``) of each query."""
        r = self.max_radius if radius is None else radius
        if not 0 <= r <= self.max_radius:
            raise ValueError(f"radius {r} outside 0..{self.max_radius} (set_max_radius first)")
        q = np.ascontiguousarray(queries, dtype=np.uint8)
        if q.ndim != 2 or q.shape[1] != PDQ_BYTES:
            raise ValueError(f"queries must be an (n, {PDQ_BYTES}) uint8 array")
        out: list[list[PdqIndexHit]] = [[] for _ in range(len(q))]
        if not len(q):
            return out
        with self._lock.read():
            if self._n == 0:
                return out
            # FAISS binary range search keeps distances strictly below the radius.
            lims, dist, pos = self._index.range_search(q, r + 1)
            ids = self._ids[pos]
            if len(self._dead_arr):
                live = ~np.isin(ids, self._dead_arr)
            else:
                live = np.ones(len(ids), dtype=bool)
        for i in range(len(q)):
            a, b = int(lims[i]), int(lims[i + 1])
            hits = [PdqIndexHit(int(ids[j]), int(dist[j])) for j in range(a, b) if live[j]]
            hits.sort(key=lambda h: (h.distance, h.id))
            out[i] = hits
        return out

    def search_one(self, query: np.ndarray | bytes, radius: int | None = None) -> list[PdqIndexHit]:
        arr = np.frombuffer(query, dtype=np.uint8) if isinstance(query, bytes) else query
        return self.search(arr.reshape(1, PDQ_BYTES), radius)[0]

    def memory_bytes(self) -> int:
        """Rough resident size: codes, ids and (multi-hash) the hash tables' id lists."""
        n = self._n
        base = n * PDQ_BYTES + self._ids.nbytes
        if self.kind == "multihash":
            base += n * self.nhash * 8
        return base
