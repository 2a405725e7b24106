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

On disk: ``save``/``snapshot`` write one versioned file (header with CRCs, raw arrays) atomically;
``PdqIndex.open`` maps it and serves lookups from the mapped pages without reading the tables
(under a second at 100M hashes), still taking adds and removals; a merge of a mapped index
writes a new file rather than building in memory; ``build_file`` streams a bank too big to
build in memory (100M) into the file. Format, numbers, sharding: docs/pdq-and-vpdq.md.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import mmap
import os
import struct
import sys
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
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
    "FILE_VERSION",
    "PdqIndex",
    "PdqIndexFileError",
    "PdqIndexHit",
    "PdqIndexSnapshot",
    "hashes_from_hex",
    "shard_of",
    "shards_to_probe",
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
    #: Where the arrays are mapped from (``PdqIndex.open`` or a merge of a mapped base): the
    #: file's pages live in the page cache, not in this process's anonymous memory.
    mapped_from: str | None = None
    mapping: mmap.mmap | None = None

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
    m, b = _layout(n, nhash, radius)
    starts = np.arange(m, dtype=np.int64) * b
    offsets = np.empty((m, (1 << b) + 1), dtype=np.uint32)
    positions = np.empty((m, n), dtype=np.uint32)
    _fill_tables(codes, starts, b, offsets, positions)
    return _Base(codes, ids, np.zeros(n, dtype=np.uint8), m, b, starts, offsets, positions)


def _layout(n: int, nhash: int | None, radius: int) -> tuple[int, int]:
    if nhash is None:
        return choose_layout(n, radius)
    return nhash, min(PDQ_BITS // nhash, _MAX_BITS)


def _fill_tables(
    codes: np.ndarray,
    starts: np.ndarray,
    b: int,
    offsets: np.ndarray,
    positions: np.ndarray,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Counting-sort every table (``offsets``/``positions`` may be views of a file mapping)."""
    m, n = positions.shape
    nthreads = min(_THREADS, m) if n >= 100_000 else 1
    groups = [np.arange(i, m, nthreads, dtype=np.int64) for i in range(nthreads)]
    if nthreads == 1 and progress is None:
        _k_build(codes, starts, b, groups[0], offsets, positions)
        return
    # Own threads, not the search pool: a background build must not queue lookups.
    errors: list[BaseException] = []
    done = [0]
    lock = threading.Lock()

    def work(g: np.ndarray) -> None:
        try:
            for t in g:  # one table per call: progress, and one key buffer at a time
                _k_build(codes, starts, b, g[g == t], offsets, positions)
                if progress is not None:
                    with lock:
                        done[0] += 1
                        progress(f"table {done[0]}/{m} built")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(g,)) for g in groups]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _as_words(hashes: np.ndarray, what: str) -> np.ndarray:
    arr = np.ascontiguousarray(hashes, dtype=np.uint8)
    if arr.ndim != 2 or arr.shape[1] != PDQ_BYTES:
        raise ValueError(f"{what} must be an (n, {PDQ_BYTES}) uint8 array")
    if not arr.flags.writeable:  # one compiled signature: numba types read-only arrays apart
        arr = arr.copy()
    return arr.view("<u8")


# -- on-disk form -------------------------------------------------------------------------------
#
# One file: a 20-byte prefix (magic, format version, header length, CRC-32 of the header), a
# JSON header (layout, radius, counts, user metadata, and for every array its dtype, shape,
# offset and CRC-32), then the arrays, raw little-endian, each at a 4 KiB-aligned offset.
# ``PdqIndex.open`` maps the file (copy-on-write, so removals flip dead flags privately) and
# points the index at the mapped pages: nothing is read but the header, the dead flags and the
# delta, whatever the size. Written to a temporary file in the same folder, fsynced, renamed.

FILE_MAGIC = b"RCLPDQIX"
FILE_FORMAT = "reclaim-pdq-index"
FILE_VERSION = 1
_PREFIX = struct.Struct("<8sIII")  # magic, version, header length, CRC-32 of the header
_ALIGN = 4096
_MAX_HEADER = 1 << 24
#: Sections up to this size are checked against their CRC-32 on every open (the dead flags,
#: the delta); larger ones only with ``verify=True`` (reading them is what opening avoids).
_VERIFY_ALWAYS_MAX = 256 << 20
_CHUNK_BYTES = 64 << 20
_BASE_SECTIONS = ("codes", "ids", "dead", "starts", "offsets", "positions")
_DELTA_SECTIONS = ("delta_codes", "delta_ids", "delta_dead")


class PdqIndexFileError(ValueError):
    """A file that is not a readable PDQ index (truncated, corrupt, another format or version)."""


def _aligned(x: int) -> int:
    return -(-x // _ALIGN) * _ALIGN


def _crc(arr: np.ndarray) -> int:
    flat = arr.reshape(-1).view(np.uint8)
    crc = 0
    for a in range(0, len(flat), _CHUNK_BYTES):
        crc = zlib.crc32(flat[a : a + _CHUNK_BYTES].data, crc)
    return crc


def _file_plan(
    fields: dict[str, Any], specs: list[tuple[str, str, tuple[int, ...]]]
) -> tuple[dict[str, Any], int, int]:
    """(header with section offsets and CRC placeholders, data start, file size)."""
    start = _ALIGN
    while True:
        sections = []
        off = start
        for name, dtype, shape in specs:
            nbytes = int(np.dtype(dtype).itemsize * math.prod(shape))
            sections.append(
                {"name": name, "dtype": dtype, "shape": list(shape), "offset": off,
                 "nbytes": nbytes, "crc32": "00000000"}
            )  # fmt: skip
            off = _aligned(off + nbytes)
        header = {**fields, "file_size": off, "sections": sections}
        if _PREFIX.size + len(_header_bytes(header)) <= start:
            return header, start, off
        start = _aligned(_PREFIX.size + len(_header_bytes(header)))


def _header_bytes(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _prefix_and_header(header: dict[str, Any], start: int) -> bytes:
    body = _header_bytes(header)
    assert _PREFIX.size + len(body) <= start  # CRCs are fixed-width: same length as planned
    pre = _PREFIX.pack(FILE_MAGIC, FILE_VERSION, len(body), zlib.crc32(body))
    return (pre + body).ljust(start, b"\0")


def _header_fields(
    index: PdqIndex, base: _Base | None, counts: dict[str, int], meta: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "byte_order": "little",
        "max_radius": index.max_radius,
        "flat_max": index.flat_max,
        "layout": {
            "kind": "flat" if base is None else "multihash",
            "m": 0 if base is None else base.m,
            "b": 0 if base is None else base.b,
        },
        "counts": counts,
        "meta": dict(meta or {}),
    }


def _temp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def _publish(tmp: Path, path: Path) -> None:
    """Rename a complete, fsynced temporary file over ``path`` (atomic), then fsync the folder."""
    os.replace(tmp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - folders that cannot be opened (not on Linux)
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_arrays(path: Path, fields: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write a complete index file from arrays in memory (or mapped), atomically."""
    specs = [(k, a.dtype.str, tuple(a.shape)) for k, a in arrays.items()]
    header, start, size = _file_plan(fields, specs)
    tmp = _temp_beside(path)
    try:
        with open(tmp, "wb") as f:
            f.write(b"\0" * start)
            for sec in header["sections"]:
                a = arrays[sec["name"]]
                f.seek(sec["offset"])
                flat = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
                crc = 0
                for i in range(0, len(flat), _CHUNK_BYTES):
                    part = flat[i : i + _CHUNK_BYTES].data
                    crc = zlib.crc32(part, crc)
                    f.write(part)
                sec["crc32"] = f"{crc:08x}"
            f.truncate(size)
            f.seek(0)
            f.write(_prefix_and_header(header, start))
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_header(path: Path, mm: mmap.mmap, size: int) -> dict[str, Any]:
    def bad(why: str) -> PdqIndexFileError:
        return PdqIndexFileError(f"{path}: not a readable PDQ index file: {why}")

    if size < _PREFIX.size:
        raise bad(f"{size} bytes, shorter than the {_PREFIX.size}-byte prefix (truncated?)")
    magic, version, hlen, hcrc = _PREFIX.unpack(mm[: _PREFIX.size])
    if magic != FILE_MAGIC:
        raise bad(f"wrong magic bytes {magic!r} (expected {FILE_MAGIC!r})")
    if version != FILE_VERSION:
        raise bad(
            f"format version {version}, this reclaim reads version {FILE_VERSION} "
            "(rebuild the file with this version, or upgrade)"
        )
    if hlen > _MAX_HEADER or _PREFIX.size + hlen > size:
        raise bad(f"header of {hlen} bytes does not fit in the {size}-byte file (truncated?)")
    body = mm[_PREFIX.size : _PREFIX.size + hlen]
    if zlib.crc32(body) != hcrc:
        raise bad("header checksum mismatch (the header is corrupt)")
    try:
        header = json.loads(body)
        if header["format"] != FILE_FORMAT or header["version"] != FILE_VERSION:
            raise bad("header names another format or version")
        if header["byte_order"] != "little" or sys.byteorder != "little":
            raise bad("only little-endian files on little-endian machines are supported")
        expected = int(header["file_size"])
        need = ("max_radius", "flat_max", "layout", "counts", "sections", "meta")
        if [k for k in need if k not in header]:
            raise bad(f"header lacks {[k for k in need if k not in header]}")
    except PdqIndexFileError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"malformed header ({e!r})") from e
    if size != expected:
        raise bad(f"{size} bytes, the header says {expected} (truncated or appended to)")
    return cast(dict[str, Any], header)


def _map_sections(
    path: Path, header: dict[str, Any], mm: mmap.mmap, verify: bool
) -> dict[str, np.ndarray]:
    def bad(why: str) -> PdqIndexFileError:
        return PdqIndexFileError(f"{path}: not a readable PDQ index file: {why}")

    out: dict[str, np.ndarray] = {}
    size = len(mm)
    try:
        for sec in header["sections"]:
            name, dtype = str(sec["name"]), np.dtype(sec["dtype"])
            shape = tuple(int(x) for x in sec["shape"])
            off, nbytes = int(sec["offset"]), int(sec["nbytes"])
            count = math.prod(shape)
            if nbytes != count * dtype.itemsize or off % _ALIGN or off + nbytes > size:
                raise bad(f"section {name} ({nbytes} bytes at {off}) does not fit the file")
            arr = np.frombuffer(mm, dtype=dtype, count=count, offset=off).reshape(shape)
            if (verify or nbytes <= _VERIFY_ALWAYS_MAX) and f"{_crc(arr):08x}" != sec["crc32"]:
                raise bad(f"section {name} fails its checksum (corrupt data)")
            out[name] = arr
    except PdqIndexFileError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"malformed section table ({e!r})") from e
    return out


def _open_file(
    path: str | os.PathLike[str], verify: bool
) -> tuple[dict[str, Any], _Base | None, dict[str, np.ndarray]]:
    """Map an index file: (header, mapped base or None, every section)."""
    p = Path(path)
    with open(p, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise PdqIndexFileError(f"{p}: not a readable PDQ index file: empty file")
        # Copy-on-write: writes (dead flags) stay in this process; the file is never changed.
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    header = _read_header(p, mm, size)
    arrays = _map_sections(p, header, mm, verify)

    def bad(why: str) -> PdqIndexFileError:
        return PdqIndexFileError(f"{p}: not a readable PDQ index file: {why}")

    try:
        lay, counts = header["layout"], header["counts"]
        kind, m, b = str(lay["kind"]), int(lay["m"]), int(lay["b"])
        n, k = int(counts["base_rows"]), int(counts["delta_rows"])
        radius, flat_max = int(header["max_radius"]), int(header["flat_max"])
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"malformed layout or counts ({e!r})") from e
    if not 0 <= radius < PDQ_BITS or flat_max < 0 or n < 0 or k < 0:
        raise bad(f"impossible values (max_radius {radius}, flat_max {flat_max}, rows {n}, {k})")
    if kind not in ("flat", "multihash") or (
        kind == "multihash" and not (1 <= b <= 32 and m >= 1 and m * b <= PDQ_BITS)
    ):
        raise bad(f"unknown layout {kind} {m} x {b} bits")
    missing = [x for x in _DELTA_SECTIONS if x not in arrays]
    if kind == "multihash":
        missing += [x for x in _BASE_SECTIONS if x not in arrays]
    if missing:
        raise bad(f"missing sections {missing}")
    for name, need in {"delta_codes": (k, 4), "delta_ids": (k,), "delta_dead": (k,)}.items():
        if arrays[name].shape != need:
            raise bad(f"section {name} has shape {arrays[name].shape}, the counts need {need}")
    if kind == "flat":
        return header, None, arrays
    want = {
        "codes": (n, 4), "ids": (n,), "dead": (n,), "starts": (m,),
        "offsets": (m, (1 << b) + 1), "positions": (m, n),
    }  # fmt: skip
    for name, need in want.items():
        if arrays[name].shape != need:
            raise bad(f"section {name} has shape {arrays[name].shape}, the layout needs {need}")
    if not np.array_equal(arrays["starts"], np.arange(m, dtype=np.int64) * b):
        raise bad("substring starts do not match the layout (corrupt data)")
    offsets = arrays["offsets"]
    if m and (np.any(offsets[:, 0] != 0) or np.any(offsets[:, -1] != n)):
        raise bad("table offsets do not span the rows (corrupt data)")
    dead = arrays["dead"]
    n_dead = int(np.count_nonzero(dead))
    if n_dead != int(counts["base_dead"]):
        raise bad(f"{n_dead} removed rows, the header says {counts['base_dead']}")
    if verify and n > 1 and bool(np.any(arrays["ids"][1:] < arrays["ids"][:-1])):
        raise bad("ids are not sorted")
    mm.madvise(mmap.MADV_RANDOM)  # lookups read scattered pages: no read-ahead
    base = _Base(
        arrays["codes"], arrays["ids"], dead, m, b, arrays["starts"],
        offsets, arrays["positions"], n_dead, mapped_from=str(p), mapping=mm,
    )  # fmt: skip
    return header, base, arrays


def _base_specs(n: int, m: int, b: int) -> list[tuple[str, str, tuple[int, ...]]]:
    return [
        ("codes", "<u8", (n, 4)),
        ("ids", "<i8", (n,)),
        ("dead", "|u1", (n,)),
        ("starts", "<i8", (m,)),
        ("offsets", "<u4", (m, (1 << b) + 1)),
        ("positions", "<u4", (m, n)),
        ("delta_codes", "<u8", (0, 4)),
        ("delta_ids", "<i8", (0,)),
        ("delta_dead", "|u1", (0,)),
    ]


Chunks = Iterable[tuple[np.ndarray, np.ndarray]]


def _build_file(
    path: Path,
    chunks: Chunks,
    n: int,
    fields: dict[str, Any],
    nhash: int | None,
    progress: Callable[[str], None] | None,
    durable: bool = True,
) -> None:
    """Stream ``n`` (ids, hashes) rows into a new index file: the codes and ids are written
    straight to the file's mapping, then each table is counting-sorted into it. Anonymous
    memory: one uint32 key per row and one offsets table per building thread (plus the ids
    and their order, n × 16 bytes, if the chunks' ids are not ascending). ``durable=False``
    (a merge's file, unlinked once mapped): no fsync, no rename."""
    say = progress or (lambda _msg: None)
    m, b = _layout(n, nhash, int(fields["max_radius"]))
    fields = {**fields, "layout": {"kind": "multihash", "m": m, "b": b}}
    fields["counts"] = {"base_rows": n, "base_dead": 0, "delta_rows": 0, "delta_dead": 0}
    header, start, size = _file_plan(fields, _base_specs(n, m, b))
    tmp = _temp_beside(path)
    try:
        with open(tmp, "w+b") as f:
            f.truncate(size)  # sparse: zeros (the dead flags) cost nothing
            mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_WRITE)
            try:
                _fill_file(mm, header, chunks, n, m, b, path.parent, say)
                mm[:start] = _prefix_and_header(header, start)
                mm.flush()
            finally:
                with contextlib.suppress(BufferError):  # views held by a traceback: GC frees
                    mm.close()
            if durable:
                os.fsync(f.fileno())
        if durable:
            _publish(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fill_file(
    mm: mmap.mmap,
    header: dict[str, Any],
    chunks: Chunks,
    n: int,
    m: int,
    b: int,
    folder: Path,
    say: Callable[[str], None],
) -> None:
    """Rows, tables and section CRCs into a new file's mapping (views die on return)."""
    views = {
        sec["name"]: np.frombuffer(
            mm, np.dtype(sec["dtype"]), math.prod(sec["shape"]), sec["offset"]
        ).reshape(sec["shape"])
        for sec in header["sections"]
    }
    codes, ids = views["codes"], views["ids"]
    ordered = _stream_rows(chunks, n, codes.view(np.uint8).reshape(n, PDQ_BYTES), ids)
    say(f"{n:,} rows written")
    if not ordered:
        _sort_rows_by_id(codes, ids, folder)
        say("rows sorted by id")
    views["starts"][:] = np.arange(m, dtype=np.int64) * b
    _fill_tables(codes, views["starts"], b, views["offsets"], views["positions"], say)
    for sec in header["sections"]:
        sec["crc32"] = f"{_crc(views[sec['name']]):08x}"
    say("checksums computed")


def _stream_rows(chunks: Chunks, n: int, out_codes: np.ndarray, out_ids: np.ndarray) -> bool:
    """Copy the chunks' rows into the outputs; True when the ids came in ascending order."""
    at = 0
    ordered = True
    last: int | None = None
    for cids, chashes in chunks:
        h = np.asarray(chashes)
        if h.ndim != 2 or h.shape[1] != PDQ_BYTES or h.dtype != np.uint8:
            raise ValueError(f"hashes must be (k, {PDQ_BYTES}) uint8 arrays")
        i = np.asarray(cids, dtype=np.int64)
        if i.shape != (len(h),):
            raise ValueError("one id per hash")
        if at + len(h) > n:
            raise ValueError(f"the chunks hold more than the {n:,} rows announced")
        if len(i):
            if (last is not None and i[0] < last) or bool(np.any(i[1:] < i[:-1])):
                ordered = False
            last = int(i[-1])
        out_codes[at : at + len(h)] = h
        out_ids[at : at + len(h)] = i
        at += len(h)
    if at != n:
        raise ValueError(f"the chunks hold {at:,} rows, {n:,} were announced")
    return ordered


def _sort_rows_by_id(codes: np.ndarray, ids: np.ndarray, folder: Path) -> None:
    """Reorder mapped rows by id, stable (the codes go through a temporary file)."""
    order = np.argsort(ids, kind="stable")
    ids[:] = ids[order]
    n = len(order)
    with tempfile.TemporaryFile(dir=folder) as f:
        flat = codes.reshape(-1).view(np.uint8)
        for a in range(0, len(flat), _CHUNK_BYTES):
            f.write(flat[a : a + _CHUNK_BYTES].data)
        f.flush()
        src_mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            src = np.frombuffer(src_mm, np.uint64).reshape(n, 4)
            step = _CHUNK_BYTES // PDQ_BYTES
            for a in range(0, n, step):
                codes[a : a + step] = src[order[a : a + step]]
            del src
        finally:
            src_mm.close()


def _merged_rows(
    base: _Base, keep: np.ndarray, dcodes: np.ndarray, dids: np.ndarray, step: int = 1 << 20
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Live base rows and live delta rows, by id (stable: base rows first on equal ids)."""
    order = np.argsort(dids, kind="stable")
    dids, dcodes = dids[order], dcodes[order]
    ins = np.searchsorted(base.ids, dids, side="right")  # delta row goes before base row ins
    for a in range(0, max(base.n, 1), step):
        b = min(base.n, a + step)
        last = b >= base.n
        lo = np.searchsorted(ins, a, side="left")
        hi = len(ins) if last else np.searchsorted(ins, b, side="left")
        k = keep[a:b]
        ids = np.concatenate([base.ids[a:b][k], dids[lo:hi]])
        codes = np.concatenate([base.codes[a:b][k], dcodes[lo:hi]])
        if hi > lo:
            o = np.argsort(ids, kind="stable")
            ids, codes = ids[o], codes[o]
        yield ids, codes.view(np.uint8).reshape(-1, PDQ_BYTES)


def _merge_to_file(
    base: _Base, keep: np.ndarray, dcodes: np.ndarray, dids: np.ndarray, index: PdqIndex
) -> _Base:
    """Merge of a mapped base: a new file beside the old one, mapped, then unlinked (its pages
    stay until the last lookup using it lets go; nothing is left on disk after a crash)."""
    n = int(np.count_nonzero(keep)) + len(dids)
    folder = Path(index.merge_dir or Path(base.mapped_from or ".").parent)
    path = folder / f".pdq-index-merge-{os.getpid()}-{next(_MERGE_SEQ)}"
    fields = _header_fields(index, base, {}, None)
    rows = _merged_rows(base, keep, dcodes, dids)
    _build_file(path, rows, n, fields, index._nhash, None, durable=False)
    try:
        _, new_base, _ = _open_file(path, verify=False)
    finally:
        path.unlink(missing_ok=True)
    assert new_base is not None
    new_base.mapped_from = f"{path} (unlinked)"
    return new_base


# -- sharding beyond one machine ----------------------------------------------------------------


def shard_of(hashes: np.ndarray, prefix_bits: int) -> np.ndarray:
    """Shard number of each (n, 32) uint8 hash under prefix sharding: its first
    ``prefix_bits`` bits (the first hex digits of its 64-digit form), 2**prefix_bits shards."""
    if not 0 <= prefix_bits <= 24:
        raise ValueError(f"prefix_bits must be in 0..24, got {prefix_bits}")
    arr = np.asarray(hashes, dtype=np.uint8).reshape(-1, PDQ_BYTES)
    top = (
        (arr[:, 0].astype(np.int64) << 16)
        | (arr[:, 1].astype(np.int64) << 8)
        | arr[:, 2].astype(np.int64)
    )
    return top >> (24 - prefix_bits)


def shards_to_probe(query: np.ndarray | bytes, prefix_bits: int, radius: int) -> np.ndarray:
    """Every shard that may hold a hash within ``radius`` of ``query`` under prefix sharding:
    those whose prefix differs from the query's in at most ``radius`` bits, sum over
    k ≤ radius of C(prefix_bits, k) shards. A near-duplicate may differ anywhere, prefix bits
    included, so at PDQ's radius 31 with ≤ 31 prefix bits this is every shard; only narrow
    radii (an exact-match lookup: one shard) route to fewer."""
    q = np.frombuffer(query, np.uint8) if isinstance(query, bytes) else np.asarray(query)
    mine = int(shard_of(q.reshape(1, PDQ_BYTES), prefix_bits)[0])
    every = np.arange(1 << prefix_bits, dtype=np.int64)
    dist = np.array([bin(int(x)).count("1") for x in every ^ mine], dtype=np.int64)
    out: np.ndarray = every[dist <= radius]
    return out


_MERGE_SEQ = itertools.count()


@dataclass(frozen=True)
class PdqIndexSnapshot:
    """One consistent state of a ``PdqIndex`` (``PdqIndex.snapshot()``), ready to save."""

    fields: dict[str, Any]
    arrays: dict[str, np.ndarray]

    def save(self, path: str | os.PathLike[str], meta: Mapping[str, Any] | None = None) -> None:
        """Write it to ``path`` atomically; ``meta`` (JSON values) comes back as ``.meta``."""
        _write_arrays(Path(path), {**self.fields, "meta": dict(meta or {})}, self.arrays)


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
        merge_dir: str | os.PathLike[str] | None = None,
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
        #: Where merges of a mapped base write their new file (default: beside the old one).
        self.merge_dir = merge_dir
        #: The ``meta`` stored with ``save`` (e.g. the change-feed position), after ``open``.
        self.meta: dict[str, Any] = {}

    # -- on-disk form -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str], meta: Mapping[str, Any] | None = None) -> None:
        """Write the index as it is now (tables, removals, delta) to ``path``, atomically (a
        temporary file beside it, fsynced, renamed over it). ``meta``: JSON values kept in the
        header (``PdqIndex.open(...).meta``), e.g. the change-feed position it reflects. Safe
        beside lookups, adds and a merge in flight (it writes one consistent snapshot).
        ``snapshot().save(...)`` does the same in two steps."""
        self.snapshot().save(path, meta)

    def snapshot(self) -> PdqIndexSnapshot:
        """The index as it is now, to save later (fast: the tables are shared, immutable; the
        dead flags and the delta are copied). Take it under the lock that orders your changes,
        with the change-feed position, then write it outside that lock."""
        with self._wlock:
            st = self._state
            base = st.base
            dead = None if base is None else base.dead.copy()  # flipped in place by remove
            dn = st.dn
            dcodes, dids, ddead = st.dcodes[:dn].copy(), st.dids[:dn].copy(), st.ddead[:dn].copy()
        counts = {
            "base_rows": 0 if base is None else base.n,
            "base_dead": 0 if dead is None else int(np.count_nonzero(dead)),
            "delta_rows": dn,
            "delta_dead": int(np.count_nonzero(ddead)),
        }
        arrays: dict[str, np.ndarray] = {}
        if base is not None and dead is not None:
            arrays = {
                "codes": base.codes, "ids": base.ids, "dead": dead, "starts": base.starts,
                "offsets": base.offsets, "positions": base.positions,
            }  # fmt: skip
        arrays |= {"delta_codes": dcodes, "delta_ids": dids, "delta_dead": ddead}
        return PdqIndexSnapshot(_header_fields(self, base, counts, None), arrays)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        verify: bool = False,
        merge_dir: str | os.PathLike[str] | None = None,
        delta_max: int | None = None,
        sync_merge_max: int = DEFAULT_SYNC_MERGE_MAX,
        compact_ratio: float = 0.2,
    ) -> PdqIndex:
        """The index ``save`` (or ``build_file``) wrote, mapped from disk: reads the header,
        the dead flags and the delta, not the tables, so it takes about as long at 100M hashes
        as at 10k; lookups then read the mapped pages (the OS page cache holds them, shared by
        every process mapping the file). Adds and removals work as usual (removals flip dead
        flags in a private copy-on-write page, the file never changes); a merge of the mapped
        tables builds a new file in ``merge_dir`` (default: beside this one), maps it and
        unlinks it, so memory stays as low as after opening (``save`` writes a new snapshot).

        Raises ``PdqIndexFileError`` (a ValueError) naming what is wrong for a truncated,
        corrupt, foreign or other-version file. ``verify=True`` also checks every array's
        CRC-32 and the id order (reads the whole file)."""
        header, base, arrays = _open_file(path, verify)
        index = cls(
            int(header["max_radius"]),
            flat_max=int(header["flat_max"]),
            compact_ratio=compact_ratio,
            delta_max=delta_max,
            sync_merge_max=sync_merge_max,
            merge_dir=merge_dir,
        )
        dcodes, dids, ddead = (np.array(arrays[k]) for k in _DELTA_SECTIONS)
        index._set_state(base, dcodes, dids, ddead)
        index.meta = dict(header["meta"])
        return index

    @classmethod
    def build_file(
        cls,
        path: str | os.PathLike[str],
        chunks: Iterable[tuple[np.ndarray, np.ndarray]],
        n: int,
        *,
        max_radius: int = PDQ_MATCH_DISTANCE,
        nhash: int | None = None,
        flat_max: int = DEFAULT_FLAT_MAX,
        meta: Mapping[str, Any] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        """Write the file ``PdqIndex(max_radius).add(all rows); save(path)`` would write,
        without holding the index in memory: ``chunks`` yields ``(ids, (k, 32) uint8
        hashes)`` for ``n`` rows in all; they are written to the file's mapping and each
        table is counting-sorted straight into it. Anonymous memory ~4n bytes (plus 16n when
        the ids do not come in ascending order) instead of ~100n for an in-memory build."""
        if not 0 <= max_radius < PDQ_BITS:
            raise ValueError(f"max_radius must be in 0..255, got {max_radius}")
        if n <= flat_max:  # small: a flat index, built in memory
            index = cls(max_radius, flat_max=flat_max, nhash=nhash)
            for ids, hashes in chunks:
                index.add(ids, hashes)
            if len(index) != n:
                raise ValueError(f"the chunks hold {len(index):,} rows, {n:,} were announced")
            index.save(path, meta)
            return
        if n >= 1 << 32:
            raise ValueError("at most 2**32 - 1 rows per file (row numbers are uint32)")
        shell = cls(max_radius, flat_max=flat_max)
        fields = _header_fields(shell, None, {}, dict(meta or {}))
        _build_file(Path(path), chunks, n, fields, nhash, progress)

    @property
    def mapped_from(self) -> str | None:
        """The file the tables are mapped from (None: in memory)."""
        base = self._state.base
        return None if base is None else base.mapped_from

    def warm(self) -> int:
        """Read the mapped tables into the page cache in one sequential pass (disk speed),
        rather than one page fault per scattered read as lookups come; returns the bytes
        touched (0 in memory). Worth it when the file is not already cached, e.g. on a fresh
        machine: a replica restarting on the same machine finds the pages still cached."""
        base = self._state.base
        if base is None or base.mapping is None:
            return 0
        mm = base.mapping
        mm.madvise(mmap.MADV_SEQUENTIAL)
        try:
            total = 0
            for a in (base.codes, base.ids, base.dead, base.offsets, base.positions):
                flat = a.reshape(-1).view(np.uint8)
                for i in range(0, len(flat), _CHUNK_BYTES):
                    part = flat[i : i + _CHUNK_BYTES]
                    int(part[:: mmap.PAGESIZE].sum())  # one byte per page: fault it in
                    total += len(part)
        finally:
            mm.madvise(mmap.MADV_RANDOM)
        return total

    def mapped_bytes(self) -> int:
        """The part of ``memory_bytes`` that is mapped from a file (page cache, not heap)."""
        base = self._state.base
        if base is None or base.mapped_from is None:
            return 0
        return base.nbytes()

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
        """Size of the arrays: codes, ids, tables, delta (``mapped_bytes()`` of it is a mapped
        file's, held in the page cache rather than this process's heap)."""
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
            n_live = len(dids) + (0 if base_keep is None else int(np.count_nonzero(base_keep)))
            try:
                new_base: _Base | None
                if (
                    base is not None
                    and base_keep is not None
                    and base.mapped_from is not None
                    and n_live > self.flat_max
                ):  # a mapped base merges into a new file: memory stays as after opening
                    new_base = _merge_to_file(base, base_keep, dcodes, dids, self)
                    codes, ids = dcodes, dids  # unused below
                else:
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
            except BaseException:
                with self._wlock:
                    self._removed_log = None  # the old structures keep serving
                raise
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
