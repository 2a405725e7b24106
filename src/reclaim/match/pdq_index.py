"""Exact PDQ range search (Hamming distance ≤ radius): multi-index hashing on direct-indexed tables.

- **Base**: the bulk of the hashes in multi-index hashing tables (Norouzi et al.): the 256 bits
  cut into ``m`` substrings of ``b`` bits (``choose_layout``), one CSR table per substring
  indexed directly by its value; a lookup probes every key within a few bit flips of the query's
  substrings, then verifies candidates on the full 256 bits.
- **Delta**: hashes added since the base was built, scanned by brute force, so an added hash is
  searchable as soon as ``add`` returns; past ``delta_max`` rows it is merged into a new base
  (on a background thread once the index is large). Up to ``flat_max`` hashes there is no base.

Exact by construction (recall 1.0, not by tuning): with ``r = m·a + c``, two hashes within ``r``
differ in at most ``a`` bits on one of the first ``c + 1`` substrings or ``a - 1`` on one of the
others, so probing that many flips reaches every hash within ``r``; where probing would cost more
than a scan, the base is scanned. Removals mark rows dead until the next merge (``compact``).
Kernels are numba-compiled (cached per machine) and release the GIL; a batch of queries is split
across cores. Thread-safe without a reader lock: a lookup reads one immutable snapshot, writers
are serialised, a merge runs beside both. Layouts, probe counts and memory per hash:
docs/pdq-and-vpdq.md.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import numba
import numpy as np
from llvmlite import ir  # type: ignore[import-untyped]
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from reclaim.hashes.pdq import PDQ_MATCH_DISTANCE

__all__ = [
    "DEFAULT_DELTA_MAX",
    "DEFAULT_FLAT_MAX",
    "PdqIndex",
    "PdqIndexHit",
    "hashes_from_hex",
]

PDQ_BITS = 256
PDQ_BYTES = 32
#: Up to this many hashes the index stays a brute-force scan (about 1.4 ns per hash): nothing
#: to build, and multi-index hashing is only ~1.1x faster at 3,000 hashes (2x at 10,000;
#: bench/pdq_index.py --crossover).
DEFAULT_FLAT_MAX = 4_096
#: Hashes added to a built index wait in a brute-force delta (about 1.4 ns per row per lookup)
#: of at most base/512 rows, within these bounds, before being merged into the tables: at 10M
#: hashes ~20k rows (under 30 µs per lookup), one rebuild per ~20k adds.
DEFAULT_DELTA_MAX = (4_096, 65_536)
#: Merges of a base up to this size run inside ``add``/``remove`` (about 0.1 s); larger ones
#: run on a background thread while lookups go on.
DEFAULT_SYNC_MERGE_MAX = 200_000
#: Substring widths considered, and the memory allowed for the tables' offsets per hash.
_MIN_BITS, _MAX_BITS = 8, 25
_OFFSET_BYTES_PER_HASH = 128
#: Relative costs (in random memory accesses) used to pick the substring width: a probe reads
#: an offset pair, a non-empty bucket its positions, a candidate its 32-byte code.
_COST_CANDIDATE = 1.2

F = TypeVar("F", bound=Callable[..., Any])
_jit = cast(Callable[[F], F], numba.njit(nogil=True, cache=True))
_jit_inline = cast(Callable[[F], F], numba.njit(inline="always"))
_intrinsic: Any = intrinsic
_cg: Any = cgutils


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


# -- compiled kernels ---------------------------------------------------------------------------


def _popcnt_impl(typingctx: Any, x: Any) -> Any:
    """Hardware popcount of a uint64 (llvm.ctpop)."""
    sig = types.uint64(types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return sig, codegen


def _prefetch_impl(typingctx: Any, arr: Any, idx: Any) -> Any:
    """Prefetch ``arr[idx]`` into cache (llvm.prefetch, read, high locality)."""
    sig = types.void(arr, idx)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        i = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = _cg.get_item_pointer(context, builder, aryty, ary, [i], wraparound=False)
        p8 = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [p8.type, i32, i32, i32])
        fn = _cg.get_or_insert_function(
            builder.module, fnty, "llvm.prefetch." + p8.type.intrinsic_name
        )
        builder.call(fn, [p8, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


_popcnt: Any = _intrinsic(_popcnt_impl)
_prefetch: Any = _intrinsic(_prefetch_impl)


@_jit_inline
def _extract(c0: Any, c1: Any, c2: Any, c3: Any, s: int, b: int) -> Any:
    """Bits [s, s+b) of the 256-bit value held in four little-endian uint64 words."""
    w = s >> 6
    o = s & 63
    if w == 0:
        lo, hi = c0, c1
    elif w == 1:
        lo, hi = c1, c2
    elif w == 2:
        lo, hi = c2, c3
    else:
        lo, hi = c3, np.uint64(0)
    v = lo >> np.uint64(o)
    if o + b > 64:
        v |= hi << np.uint64(64 - o)
    return v & ((np.uint64(1) << np.uint64(b)) - np.uint64(1))


@_jit
def _k_build(
    codes: Any, starts: Any, b: int, tables: Any, offsets: Any, positions: Any
) -> None:  # pragma: no cover - compiled
    """Counting sort of the rows by substring value, for each table in ``tables``."""
    n = codes.shape[0]
    nb = 1 << b
    keys = np.empty(n, np.uint32)
    for ti in range(tables.shape[0]):
        t = tables[ti]
        s = starts[t]
        off = offsets[t]
        off[:] = 0
        for i in range(n):
            k = _extract(codes[i, 0], codes[i, 1], codes[i, 2], codes[i, 3], s, b)
            keys[i] = k
            off[k + 1] += 1
        for k in range(nb):
            off[k + 1] += off[k]
        fill = off[:nb].copy()
        pos = positions[t]
        for i in range(n):
            k = keys[i]
            pos[fill[k]] = i
            fill[k] += 1


@_jit_inline
def _grow_hits(out_q: Any, out_p: Any, out_d: Any) -> Any:
    n = out_q.shape[0] * 2
    q2 = np.empty(n, np.int64)
    p2 = np.empty(n, np.int64)
    d2 = np.empty(n, np.int32)
    q2[: out_q.shape[0]] = out_q
    p2[: out_p.shape[0]] = out_p
    d2[: out_d.shape[0]] = out_d
    return q2, p2, d2


# The hot loops live in per-query functions writing into caller-sized buffers (-1: full, the
# caller grows them and runs the query again): growing arrays inside a hot loop costs numba
# reference counting on every iteration.


@_jit
def _mih_one(
    qs: Any,
    qi: int,
    codes: Any,
    offsets: Any,
    positions: Any,
    starts: Any,
    b: int,
    rads: Any,
    masks: Any,
    mask_count: Any,
    dead: Any,
    r: int,
    los: Any,
    his: Any,
    cand: Any,
    out_q: Any,
    out_p: Any,
    out_d: Any,
    cnt: int,
) -> int:  # pragma: no cover - compiled
    """Hits of query qi appended at out_*[cnt:]; returns the new count, -1 when out_* are
    full, or -2 - n when ``cand`` needs room for n candidates."""
    m = offsets.shape[0]
    flat = codes.reshape(-1)
    cap = out_q.shape[0]
    x0, x1, x2, x3 = qs[qi, 0], qs[qi, 1], qs[qi, 2], qs[qi, 3]
    for t in range(m):
        rad = rads[t]
        if rad < 0:
            continue
        key = _extract(x0, x1, x2, x3, starts[t], b)
        off = offsets[t]
        pos = positions[t]
        nmask = mask_count[rad]
        # Stage 1: every probed bucket's bounds (independent loads, overlapped by the CPU).
        tot = 0
        for mi in range(nmask):
            k2 = key ^ masks[mi]
            lo = off[k2]
            hi = off[k2 + 1]
            los[mi] = lo
            his[mi] = hi
            tot += hi - lo
        if tot > cand.shape[0]:
            return -2 - tot
        # Stage 2: gather candidate rows, prefetching their codes.
        c = 0
        for mi in range(nmask):
            for j in range(los[mi], his[mi]):
                p = pos[j]
                _prefetch(flat, p * 4)
                cand[c] = p
                c += 1
        # Stage 3: verify on all 256 bits.
        for ci in range(c):
            p = cand[ci]
            y0 = codes[p, 0] ^ x0
            y1 = codes[p, 1] ^ x1
            y2 = codes[p, 2] ^ x2
            y3 = codes[p, 3] ^ x3
            d = _popcnt(y0) + _popcnt(y1) + _popcnt(y2) + _popcnt(y3)
            if d <= r:
                dup = False  # reported already through an earlier table?
                for u in range(t):
                    if rads[u] >= 0:
                        du = _popcnt(_extract(y0, y1, y2, y3, starts[u], b))
                        if du <= rads[u]:
                            dup = True
                            break
                if not dup and dead[p] == 0:
                    if cnt == cap:
                        return -1
                    out_q[cnt] = qi
                    out_p[cnt] = p
                    out_d[cnt] = d
                    cnt += 1
    return cnt


@_jit
def _k_mih(
    qs: Any,
    codes: Any,
    offsets: Any,
    positions: Any,
    starts: Any,
    b: int,
    rads: Any,
    masks: Any,
    mask_count: Any,
    dead: Any,
    r: int,
) -> Any:  # pragma: no cover - compiled
    """Range search of every query through the tables: (query index, row, distance) per hit."""
    out_q = np.empty(64, np.int64)
    out_p = np.empty(64, np.int64)
    out_d = np.empty(64, np.int32)
    n_probe = 0
    for t in range(offsets.shape[0]):
        if rads[t] >= 0:
            n_probe = max(n_probe, mask_count[rads[t]])
    los = np.empty(n_probe, np.uint32)
    his = np.empty(n_probe, np.uint32)
    cand = np.empty(4096, np.uint32)
    cnt = 0
    for qi in range(qs.shape[0]):
        while True:
            res = _mih_one(
                qs, qi, codes, offsets, positions, starts, b, rads, masks, mask_count, dead, r,
                los, his, cand, out_q, out_p, out_d, cnt,
            )  # fmt: skip
            if res >= 0:
                cnt = res
                break
            if res == -1:
                out_q, out_p, out_d = _grow_hits(out_q, out_p, out_d)
            else:
                cand = np.empty(2 * (-2 - res), np.uint32)
    return out_q[:cnt], out_p[:cnt], out_d[:cnt]


@_jit
def _scan_one(
    qs: Any,
    qi: int,
    codes: Any,
    n: int,
    dead: Any,
    r: int,
    out_q: Any,
    out_p: Any,
    out_d: Any,
    cnt: int,
) -> int:  # pragma: no cover - compiled
    """Brute-force hits of query qi over codes[:n], appended like ``_mih_one`` (-1: full)."""
    cap = out_q.shape[0]
    x0, x1, x2, x3 = qs[qi, 0], qs[qi, 1], qs[qi, 2], qs[qi, 3]
    for p in range(n):
        d = (
            _popcnt(codes[p, 0] ^ x0)
            + _popcnt(codes[p, 1] ^ x1)
            + _popcnt(codes[p, 2] ^ x2)
            + _popcnt(codes[p, 3] ^ x3)
        )
        if d <= r and dead[p] == 0:
            if cnt == cap:
                return -1
            out_q[cnt] = qi
            out_p[cnt] = p
            out_d[cnt] = d
            cnt += 1
    return cnt


@_jit
def _k_scan(qs: Any, codes: Any, n: int, dead: Any, r: int) -> Any:  # pragma: no cover
    """Brute-force range search over codes[:n]: (query index, row, distance) per hit."""
    out_q = np.empty(64, np.int64)
    out_p = np.empty(64, np.int64)
    out_d = np.empty(64, np.int32)
    cnt = 0
    for qi in range(qs.shape[0]):
        while True:
            res = _scan_one(qs, qi, codes, n, dead, r, out_q, out_p, out_d, cnt)
            if res >= 0:
                cnt = res
                break
            out_q, out_p, out_d = _grow_hits(out_q, out_p, out_d)
    return out_q[:cnt], out_p[:cnt], out_d[:cnt]


# -- planning -----------------------------------------------------------------------------------


def _probe_radii(m: int, r: int) -> np.ndarray:
    """Per-table probe radius for an exact search at radius r (-1: table not probed)."""
    a, c = divmod(r, m)
    return np.array([a if t <= c else a - 1 for t in range(m)], dtype=np.int64)


def _n_masks(b: int, rad: int) -> int:
    return sum(math.comb(b, k) for k in range(rad + 1)) if rad >= 0 else 0


def _n_probes(m: int, b: int, r: int) -> int:
    return sum(_n_masks(b, int(rad)) for rad in _probe_radii(m, r))


def choose_layout(n: int, radius: int = PDQ_MATCH_DISTANCE) -> tuple[int, int]:
    """(m substrings, b bits) minimising the expected random reads of one lookup at ``radius``
    over ``n`` uniformly spread hashes, within _OFFSET_BYTES_PER_HASH of offset tables."""
    best: tuple[float, int, int] | None = None
    budget = max(_OFFSET_BYTES_PER_HASH * n, 1 << 20)
    for b in range(_MIN_BITS, _MAX_BITS + 1):
        m = PDQ_BITS // b
        if m * ((1 << b) + 1) * 4 > budget and best is not None:
            continue
        p = _n_probes(m, b, radius)
        load = n / (1 << b)
        cost = p * (1 + (1 - math.exp(-load)) + _COST_CANDIDATE * load)
        if best is None or cost < best[0]:
            best = (cost, m, b)
    assert best is not None
    return best[1], best[2]


def _masks(b: int, rad: int) -> tuple[np.ndarray, np.ndarray]:
    """XOR masks of b bits with popcount ≤ rad, by popcount; count[k] = masks of popcount ≤ k."""
    out = [np.zeros(1, dtype=np.uint64)]
    counts = [1]
    layer = np.array([0], dtype=np.uint64)
    top = np.array([-1], dtype=np.int64)  # highest set bit of each mask in the layer
    for _ in range(rad):
        bits = np.arange(b, dtype=np.int64)
        ok = bits[None, :] > top[:, None]
        rows, cols = np.nonzero(ok)
        layer = layer[rows] | (np.uint64(1) << cols.astype(np.uint64))
        top = cols
        out.append(layer)
        counts.append(counts[-1] + len(layer))
    return np.concatenate(out), np.array(counts, dtype=np.int64)


@dataclass
class _Plan:
    scan: bool  # brute-force the base instead of probing
    rads: np.ndarray
    masks: np.ndarray
    mask_count: np.ndarray


@dataclass
class _Base:
    """Hashes in multi-index tables; immutable except for the dead flags."""

    codes: np.ndarray  # (n, 4) uint64, rows sorted by id
    ids: np.ndarray  # (n,) int64, sorted
    dead: np.ndarray  # (n,) uint8
    m: int
    b: int
    starts: np.ndarray  # (m,) int64 first bit of each substring
    offsets: np.ndarray  # (m, 2**b + 1) uint32
    positions: np.ndarray  # (m, n) uint32
    n_dead: int = 0
    plans: dict[int, _Plan] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.ids)

    def plan(self, r: int) -> _Plan:
        p = self.plans.get(r)
        if p is None:
            rads = _probe_radii(self.m, r)
            probes = _n_probes(self.m, self.b, r)
            if probes > max(self.n // 4, 64):  # a scan is cheaper (or the masks too many)
                p = _Plan(True, rads, np.zeros(1, np.uint64), np.ones(1, np.int64))
            else:
                masks, count = _masks(self.b, int(rads.max()))
                p = _Plan(False, rads, masks, count)
            self.plans[r] = p
        return p

    def nbytes(self) -> int:
        arrays = (self.codes, self.ids, self.dead, self.offsets, self.positions)
        return sum(a.nbytes for a in arrays)


@dataclass(frozen=True)
class _State:
    """What a lookup reads: the base and the first ``dn`` rows of the delta arrays."""

    base: _Base | None
    dcodes: np.ndarray  # (capacity, 4) uint64
    dids: np.ndarray
    ddead: np.ndarray
    dn: int


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="pdq-index")
    return _POOL


_THREADS = max(1, min(8, os.cpu_count() or 1))
_POOL: ThreadPoolExecutor | None = None
#: A batch is split across threads only when each gets at least this many queries.
_MIN_QUERIES_PER_THREAD = 16


def _build_base(codes: np.ndarray, ids: np.ndarray, nhash: int | None, radius: int) -> _Base:
    """Tables over ``codes`` ((n, 4) uint64, rows sorted by ``ids``)."""
    n = len(ids)
    if nhash is None:
        m, b = choose_layout(n, radius)
    else:
        m, b = nhash, min(PDQ_BITS // nhash, _MAX_BITS)
    starts = np.arange(m, dtype=np.int64) * b
    offsets = np.empty((m, (1 << b) + 1), dtype=np.uint32)
    positions = np.empty((m, n), dtype=np.uint32)
    nthreads = min(_THREADS, m) if n >= 100_000 else 1
    groups = [np.arange(i, m, nthreads, dtype=np.int64) for i in range(nthreads)]
    if nthreads == 1:
        _k_build(codes, starts, b, groups[0], offsets, positions)
    else:
        # Own threads, not the search pool: a background build must not queue lookups.
        errors: list[BaseException] = []

        def work(g: np.ndarray) -> None:
            try:
                _k_build(codes, starts, b, g, offsets, positions)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=work, args=(g,)) for g in groups]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
    return _Base(codes, ids, np.zeros(n, dtype=np.uint8), m, b, starts, offsets, positions)


def _as_words(hashes: np.ndarray, what: str) -> np.ndarray:
    arr = np.ascontiguousarray(hashes, dtype=np.uint8)
    if arr.ndim != 2 or arr.shape[1] != PDQ_BYTES:
        raise ValueError(f"{what} must be an (n, {PDQ_BYTES}) uint8 array")
    if not arr.flags.writeable:  # one compiled signature: numba types read-only arrays apart
        arr = arr.copy()
    return arr.view("<u8")


class PdqIndex:
    """Exact range search over PDQ hashes (Hamming distance ≤ radius), with int64 ids.

    Ids need not be unique (vPDQ frames share their signal's id); ``remove`` drops every row
    of an id. ``nhash`` fixes the number of substrings (default: chosen from the size).
    """

    def __init__(
        self,
        max_radius: int = PDQ_MATCH_DISTANCE,
        *,
        flat_max: int = DEFAULT_FLAT_MAX,
        nhash: int | None = None,
        compact_ratio: float = 0.2,
        delta_max: int | None = None,
        sync_merge_max: int = DEFAULT_SYNC_MERGE_MAX,
    ) -> None:
        if not 0 <= max_radius < PDQ_BITS:
            raise ValueError(f"max_radius must be in 0..255, got {max_radius}")
        if nhash is not None and not 10 <= nhash <= 64:
            raise ValueError("nhash must be in 10..64 (substrings of 256 // nhash bits)")
        self.max_radius = max_radius
        self.flat_max = flat_max
        self._nhash = nhash
        self.compact_ratio = compact_ratio
        self.delta_max = delta_max
        self.sync_merge_max = sync_merge_max
        self._wlock = threading.Lock()  # writers (add, remove, merge swaps) one at a time
        self._merge_mutex = threading.Lock()  # one merge at a time
        self._start_lock = threading.Lock()  # one background merge thread at a time
        self._merge_thread: threading.Thread | None = None
        self._removed_log: list[np.ndarray] | None = None  # removals during a merge
        self.merge_error: BaseException | None = None
        # Lookups read one immutable snapshot (no reader lock): a merge swaps base and delta
        # together, an add publishes a longer delta; removals flip dead flags in place.
        self._state = _State(
            None,
            np.zeros((1024, 4), dtype=np.uint64),
            np.zeros(1024, dtype=np.int64),
            np.zeros(1024, dtype=np.uint8),
            0,
        )
        self._d_dead = 0  # dead rows in the delta

    # -- introspection ------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return "flat" if self._state.base is None else "multihash"

    @property
    def nhash(self) -> int:
        """Substrings of the current tables (0 while flat)."""
        base = self._state.base
        return 0 if base is None else base.m

    @property
    def substring_bits(self) -> int:
        base = self._state.base
        return 0 if base is None else base.b

    def __len__(self) -> int:
        st = self._state
        return st.dn + (0 if st.base is None else st.base.n) - self.tombstones

    @property
    def tombstones(self) -> int:
        base = self._state.base
        return self._d_dead + (0 if base is None else base.n_dead)

    @property
    def delta_size(self) -> int:
        return self._state.dn

    def memory_bytes(self) -> int:
        """Resident size of the arrays: codes, ids, tables, delta."""
        st = self._state
        delta = st.dcodes.nbytes + st.dids.nbytes + st.ddead.nbytes
        return delta + (0 if st.base is None else st.base.nbytes())

    # -- updates ------------------------------------------------------------------------------

    def add(self, ids: Iterable[int] | np.ndarray, hashes: np.ndarray) -> None:
        """Add hashes ((n, 32) uint8) under ``ids``; searchable when this returns."""
        words = _as_words(hashes, "hashes")
        id_arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, np.int64)
        if id_arr.shape != (words.shape[0],):
            raise ValueError("one id per hash")
        if not len(id_arr):
            return
        with self._wlock:
            st = self._state
            dn = st.dn
            need = dn + len(id_arr)
            dcodes, dids, ddead = st.dcodes, st.dids, st.ddead
            if need > len(dids):  # new arrays; lookups in flight keep the old ones
                size = max(need, 2 * len(dids))
                dcodes, dids, ddead = (
                    _grow(dcodes, size, dn),
                    _grow(dids, size, dn),
                    _grow(ddead, size, dn),
                )
            # Rows past st.dn are invisible to lookups until the new state is published.
            dcodes[dn:need] = words
            dids[dn:need] = id_arr
            ddead[dn:need] = 0
            self._state = _State(st.base, dcodes, dids, ddead, need)
        self._maybe_merge()

    def remove(self, ids: Iterable[int]) -> None:
        """Stop matching ``ids`` now (every row of each); rows are dropped at the next merge."""
        arr = np.unique(np.asarray(list(ids), dtype=np.int64))
        if not len(arr):
            return
        with self._wlock:
            st = self._state
            if st.base is not None:
                rows = _rows_of(st.base.ids, arr)
                rows = rows[st.base.dead[rows] == 0]
                st.base.dead[rows] = 1
                st.base.n_dead += len(rows)
            if st.dn:
                hit = np.isin(st.dids[: st.dn], arr) & (st.ddead[: st.dn] == 0)
                st.ddead[: st.dn][hit] = 1
                self._d_dead += int(hit.sum())
            if self._removed_log is not None:
                self._removed_log.append(arr)
        self._maybe_merge()

    def compact(self) -> None:
        """Merge the delta into the tables and drop removed rows now (waits for it)."""
        self.wait()
        self._merge()

    def wait(self) -> None:
        """Wait for a background merge to finish."""
        t = self._merge_thread
        if t is not None:
            t.join()

    def set_max_radius(self, radius: int) -> None:
        """Allow searches up to ``radius`` (more bit flips probed per table)."""
        if not 0 <= radius < PDQ_BITS:
            raise ValueError(f"radius must be in 0..255, got {radius}")
        self.max_radius = radius

    def _needs_merge(self) -> bool:
        st = self._state
        if st.base is None:
            return len(self) > self.flat_max or self._d_dead > self.compact_ratio * st.dn
        rows = st.base.n + st.dn
        return st.dn > self._delta_limit(st.base.n) or self.tombstones > self.compact_ratio * rows

    def _delta_limit(self, base_n: int) -> int:
        if self.delta_max is not None:
            return self.delta_max
        lo, hi = DEFAULT_DELTA_MAX
        return min(hi, max(lo, base_n // 512))

    def _maybe_merge(self) -> None:
        if not self._needs_merge():
            return
        with self._start_lock:
            if self._merge_thread is not None and self._merge_thread.is_alive():
                return  # it re-checks when done
            base = self._state.base
            if base is not None and base.n > self.sync_merge_max:
                t = threading.Thread(target=self._merge_loop, name="pdq-index-merge", daemon=True)
                self._merge_thread = t
                t.start()
                return
        self._merge()

    def _merge_loop(self) -> None:
        try:
            while True:
                self._merge()
                if not self._needs_merge():
                    return
        except BaseException as e:  # keep serving from the old structures; say why
            self.merge_error = e

    def _merge(self) -> None:
        """Rebuild: live base rows + live delta rows → new base (or a flat delta if small)."""
        with self._merge_mutex:
            with self._wlock:  # snapshot (copies of the small or mutable parts)
                st = self._state
                base, k = st.base, st.dn
                base_keep = None if base is None else base.dead == 0
                dlive = st.ddead[:k] == 0
                dcodes = st.dcodes[:k][dlive]
                dids = st.dids[:k][dlive]
                self._removed_log = []
            if base is not None and base_keep is not None:
                codes = np.concatenate([base.codes[base_keep], dcodes])
                ids = np.concatenate([base.ids[base_keep], dids])
            else:
                codes, ids = dcodes, dids
            if len(ids) > 1 and bool(np.any(ids[1:] < ids[:-1])):
                order = np.argsort(ids, kind="stable")
                ids = ids[order]
                codes = codes[order]
            codes = np.ascontiguousarray(codes)
            new_base = (
                None
                if len(ids) <= self.flat_max
                else _build_base(codes, ids, self._nhash, self.max_radius)
            )
            with self._wlock:
                removed = np.unique(np.concatenate(self._removed_log or [np.zeros(0, np.int64)]))
                self._removed_log = None
                st = self._state
                tail = slice(k, st.dn)  # rows added while merging stay in the delta
                tail_codes, tail_ids, tail_dead = st.dcodes[tail], st.dids[tail], st.ddead[tail]
                if new_base is None:  # small: everything stays flat
                    dead = np.isin(ids, removed).astype(np.uint8)
                    self._set_state(
                        None,
                        np.concatenate([codes, tail_codes]),
                        np.concatenate([ids, tail_ids]),
                        np.concatenate([dead, tail_dead]),
                    )
                else:
                    rows = _rows_of(new_base.ids, removed)
                    new_base.dead[rows] = 1
                    new_base.n_dead = len(rows)
                    self._set_state(new_base, tail_codes, tail_ids, tail_dead)

    def _set_state(
        self, base: _Base | None, codes: np.ndarray, ids: np.ndarray, dead: np.ndarray
    ) -> None:
        n = len(ids)
        size = max(1024, 2 * n)
        self._d_dead = int(dead.sum())
        self._state = _State(
            base, _grow(codes, size, n), _grow(ids, size, n), _grow(dead, size, n), n
        )

    # -- search -------------------------------------------------------------------------------

    def search(self, queries: np.ndarray, radius: int | None = None) -> list[list[PdqIndexHit]]:
        """Every indexed hash within ``radius`` (default ``max_radius``) of each query, nearest
        first (ties by id)."""
        r = self.max_radius if radius is None else radius
        if not 0 <= r <= self.max_radius:
            raise ValueError(f"radius {r} outside 0..{self.max_radius} (set_max_radius first)")
        q = _as_words(queries, "queries")
        nq = len(q)
        if not nq:
            return []
        st = self._state
        nthreads = min(_THREADS, nq // _MIN_QUERIES_PER_THREAD)
        if nthreads <= 1:
            qi, hid, hd = _search_part(st, q, r)
        else:
            bounds = np.linspace(0, nq, nthreads + 1).astype(int)
            futures = [
                _pool().submit(_search_part, st, q[bounds[i] : bounds[i + 1]], r)
                for i in range(nthreads)
            ]
            parts = [f.result() for f in futures]
            qi = np.concatenate([p[0] + bounds[i] for i, p in enumerate(parts)])
            hid = np.concatenate([p[1] for p in parts])
            hd = np.concatenate([p[2] for p in parts])
        out: list[list[PdqIndexHit]] = [[] for _ in range(nq)]
        if nq == 1:
            out[0] = [
                PdqIndexHit(i, d) for d, i in sorted(zip(hd.tolist(), hid.tolist(), strict=True))
            ]
        elif len(qi):
            order = np.lexsort((hid, hd, qi))
            for i, h, d in zip(
                qi[order].tolist(), hid[order].tolist(), hd[order].tolist(), strict=True
            ):
                out[i].append(PdqIndexHit(h, d))
        return out

    def search_one(self, query: np.ndarray | bytes, radius: int | None = None) -> list[PdqIndexHit]:
        arr = np.frombuffer(query, dtype=np.uint8) if isinstance(query, bytes) else query
        return self.search(arr.reshape(1, PDQ_BYTES), radius)[0]


def _search_part(st: _State, q: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query index, id, distance) of every hit of ``q`` in one snapshot."""
    base = st.base
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    if base is not None:
        plan = base.plan(r)
        if plan.scan:
            a, rows, d = _k_scan(q, base.codes, base.n, base.dead, r)
        else:
            a, rows, d = _k_mih(
                *(q, base.codes, base.offsets, base.positions, base.starts, base.b),
                *(plan.rads, plan.masks, plan.mask_count, base.dead, r),
            )
        parts.append((a, base.ids[rows], d))
    if st.dn:
        a, rows, d = _k_scan(q, st.dcodes, st.dn, st.ddead, r)
        parts.append((a, st.dids[rows], d))
    if len(parts) == 1:
        return parts[0]
    if not parts:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z.astype(np.int32)
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def _grow(arr: np.ndarray, size: int, used: int) -> np.ndarray:
    out = np.zeros((size, *arr.shape[1:]), dtype=arr.dtype)
    out[:used] = arr[:used]
    return out


def _rows_of(sorted_ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Every row of ``sorted_ids`` holding one of ``wanted`` (unique)."""
    lo = np.searchsorted(sorted_ids, wanted, side="left")
    hi = np.searchsorted(sorted_ids, wanted, side="right")
    counts = hi - lo
    sel = counts > 0
    lo, counts = lo[sel], counts[sel]
    if not len(lo):
        return np.zeros(0, dtype=np.int64)
    first = np.repeat(lo - np.cumsum(counts) + counts, counts)
    return (first + np.arange(int(counts.sum()))).astype(np.int64)
