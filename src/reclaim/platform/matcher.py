"""The matcher: in-memory indexes over every bank's signals, kept current from the change log.

Which signal types are indexed, and how, is each type's ``index`` (``reclaim.hashes.Index``):
a PDQ-indexed type (``pdq``) puts its hash in a ``PdqIndex`` of its own (ids are signal ids); a
frames-indexed type (``vpdq``) puts every frame hash there, and the candidates it finds are
scored with the type's ``compare`` at the bank's distance (Meta's vPDQ rule); exact types
(``md5``, ``video_md5``, ``sha256``) are looked up by key in the store within the asking
tenant's signals. Results are filtered to the asking tenant's banks, and PDQ by each bank's own
distance; the index status counts only the asking tenant's hashes.

PDQ flavours (``reclaim.hashes.pdq``): an upload is hashed in each flavour the asking tenant's
banks use (``pdq_flavours``), and a lookup for one flavour's hash (``lookup(pdq_flavour=...)``)
keeps a PDQ hit only when the signal's flavour is that one: the signal's own (``reference``,
``pytx``; ``both`` matches either), else its bank's. A hash given as such (``raw_lookup``,
``lookup`` with ``signal=``) is looked up without a flavour: every signal may match it, as
before.

Replicas (docs/scale.md, "Platform replicas"). Several processes may share one database; each
keeps its own index and follows the change log (``changes``) incrementally:

- **Freshness.** Writes made through this process call ``refresh(force=True)`` and are
  matchable when the request returns. A background thread (``start``) polls the log every
  ``poll_interval`` seconds (±10 %), whether or not requests come, so a write made through
  another replica is matchable here within about ``poll_interval`` + one poll; deletions
  (content, bank) follow the same way. Without the thread (an app not started, a script),
  lookups poll at most every ``poll_interval`` as before.
- **Sequence gaps.** A sequence number is taken when a change is written, not when it commits,
  so a change may become visible after a later one has been read (a writer that does not take
  the store's log lock, a rolled-back transaction). Numbers skipped between two changes read
  are kept as *gaps* and asked for again at every poll until they appear or are
  ``gap_timeout_s`` old (a rollback's number never appears); at load, those missing among the
  last ``GAP_WINDOW`` numbers are kept the same way. Applying a change twice does nothing (a
  signal already indexed is skipped; an added signal since removed reads as gone), so a late
  change is applied whenever it comes.
- **No rebuild storms.** The load fills the index's brute-force delta and builds its tables
  once at the end. After that, adds and removals go to the delta and tombstones, and the index
  merges them into new tables when the delta passes a limit: each replica draws its own limit
  (``merge_jitter``: between 60 % and 100 % of the index's default) and draws again after each
  merge, so replicas following the same log merge at different moments, never all on one
  trigger.
- **Snapshots** (``snapshot_dir``, ``reclaim.platform.index_snapshot``). The index, the id
  map and the change-log position are saved to a folder every ``snapshot_every_s`` (on a
  thread of their own: the feed goes on), and after a load from the database. A replica that
  starts with a snapshot there maps it (the PDQ tables are read from the page cache, shared by
  the replicas of one machine) and replays the log from its position, instead of reading every
  signal; a snapshot of another database, format or set of types, or one that cannot be read,
  is set aside with a warning and the index loads from the database as before.
- **Retention** (``change_log_keep_s``). The feed's thread deletes log entries older than that
  (the newest is always kept) and the store appends a ``trim`` entry naming the highest number
  deleted. A snapshot below it is set aside; a replica that reads a ``trim`` entry past the
  position it had (cut off for longer than the retention) says so in ``health`` (not ready)
  rather than missing changes silently.
- **Readiness.** ``health`` says whether the index is loaded and how far behind the log it is
  (``feed_lag_s``: seconds since the last poll that read the log to its end began).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import socket
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reclaim.hashes import Index, SignalType, by_exchange_name, exchange_names
from reclaim.hashes.pdq import PDQ_MATCH_DISTANCE, PDQ_MIN_QUALITY
from reclaim.match.pdq_index import DEFAULT_DELTA_MAX, DEFAULT_FLAT_MAX, PdqIndex
from reclaim.platform import index_snapshot as snapshots
from reclaim.platform.store import Bank, Change, PlatformStore
from reclaim.platform.store.banks import ROW_FLAVOURS

__all__ = ["GAP_WINDOW", "IndexNotReady", "Match", "Matcher"]

log = logging.getLogger("reclaim.platform.matcher")

#: At load, sequence numbers missing among this many below the last one are watched as gaps.
GAP_WINDOW = 10_000
#: At most this many gap numbers are watched (the oldest are dropped beyond).
MAX_GAPS = 100_000
#: Changes read per query while following the log.
PAGE = 100_000
#: The index's default compaction ratio (tombstones / rows), jittered like the delta limit.
COMPACT_RATIO = 0.2
#: While loading, the index neither builds tables nor merges (one build at the end).
_NEVER = 1 << 62


class IndexNotReady(Exception):
    """The index is still loading: lookups are refused (the service answers 503)."""


@dataclass(frozen=True)
class Match:
    content_id: int
    bank_id: int
    bank: str
    distance: str


#: A PDQ signal's flavour code in ``_IdMap.flavour``: 0 not a PDQ signal (or gone), then the
#: bank's, each of ``ROW_FLAVOURS`` in turn.
NOT_PDQ, BANKS_FLAVOUR = 0, 1
_CODE: dict[str | None, int] = {None: BANKS_FLAVOUR}
_CODE.update({f: i + 2 for i, f in enumerate(ROW_FLAVOURS)})
_FLAVOUR_OF_CODE = {code: f for f, code in _CODE.items() if f is not None}
BOTH = _CODE["both"]


class _IdMap:
    """signal id → (content id, bank id, PDQ flavour code, indexed now) in dense numpy arrays
    (ids are auto-increment)."""

    def __init__(self) -> None:
        self.content = np.zeros(1024, dtype=np.int64)
        self.bank = np.zeros(1024, dtype=np.int64)
        self.flavour = np.zeros(1024, dtype=np.int8)
        self.live = np.zeros(1024, dtype=np.int8)

    def set(self, sid: int, content: int, bank: int, flavour: int = NOT_PDQ) -> None:
        if sid >= len(self.content):
            n = len(self.content)
            # doubling while small; a quarter more beyond 16M ids (a 100M map opened from a
            # snapshot grows to 125M, not 200M, as new ids arrive: ~2.3 GB on the heap, not 3.6)
            size = max(sid + 1, n + (n if n < 1 << 24 else n // 4), 1024)
            self.content = np.resize(self.content, size)
            self.bank = np.resize(self.bank, size)
            self.flavour = _grown(self.flavour, size)
            self.live = _grown(self.live, size)
        self.content[sid] = content
        self.bank[sid] = bank
        self.flavour[sid] = flavour
        self.live[sid] = 1

    def is_live(self, sid: int) -> bool:
        return sid < len(self.live) and bool(self.live[sid])

    def nbytes(self) -> int:
        return int(self.content.nbytes + self.bank.nbytes + self.flavour.nbytes + self.live.nbytes)


def _grown(arr: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


def _indexed_types() -> dict[str, SignalType]:
    """HMA name → signal type, for the types the matcher keeps in memory (not exact ones)."""
    out = {}
    for name in exchange_names():
        sig = by_exchange_name(name)
        if sig is not None and sig.index is not Index.EXACT:
            out[name] = sig
    return out


def _codes(codes: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(codes), np.uint8).reshape(-1, 32)


#: Rows read back per chunk from a load's spool files.
_SPOOL_ROWS = 1 << 20


def _spooled(spool: Path, st: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The (ids, (k, 32) codes) a streamed load wrote for ``st``, in chunks."""
    with open(spool / f"{st}.ids", "rb") as f_ids, open(spool / f"{st}.codes", "rb") as f_codes:
        while True:
            ids = np.fromfile(f_ids, dtype="<i8", count=_SPOOL_ROWS)
            if not len(ids):
                return
            codes = np.fromfile(f_codes, dtype=np.uint8, count=32 * len(ids))
            yield ids.astype(np.int64), codes.reshape(-1, 32)


def _rss_bytes() -> int | None:
    """This process's resident memory (Linux), or None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class Matcher:
    """See the module docstring. ``load=False``: build empty; ``start()`` (or ``load()``) loads.

    ``merge_jitter``: how far below the index's default delta limit (and compaction ratio) this
    replica's are drawn (0: exactly the default, as a single process needs); ``seed`` fixes the
    draws (tests). ``snapshot_dir``: where snapshots are saved and opened (None: never);
    ``snapshot_every_s``: how often the background thread saves one (0: only after a load from
    the database and on ``save_snapshot``)."""

    def __init__(
        self,
        store: PlatformStore,
        poll_interval: float = 1.0,
        flat_max: int | None = None,
        *,
        load: bool = True,
        gap_timeout_s: float = 120.0,
        merge_jitter: float = 0.4,
        seed: int | None = None,
        snapshot_dir: str | os.PathLike[str] | None = None,
        snapshot_every_s: float = 900.0,
        change_log_keep_s: float | None = None,
    ) -> None:
        if not 0.0 <= merge_jitter < 1.0:
            raise ValueError("merge_jitter must be in [0, 1)")
        self.store = store
        self.poll_interval = poll_interval
        self.gap_timeout_s = gap_timeout_s
        self.merge_jitter = merge_jitter
        flat = DEFAULT_FLAT_MAX if flat_max is None else flat_max
        self.types = _indexed_types()
        self._flat_max = dict.fromkeys(self.types, flat)
        self._reset()  # indexes, id map, values, flavour counts, position and gaps: empty
        self.banks: dict[int, Bank] = {}
        self.gaps_filled = 0  # gap numbers that turned up later (and were applied)
        self.gaps_expired = 0  # given up after gap_timeout_s (a rollback's, most likely)
        self.loaded = False
        self.loading = False
        self.load_s: float | None = None
        self.built_at = 0.0
        #: Wall time at which the last poll that read the log to its end began.
        self.caught_up_at = 0.0
        self.polls = 0
        self.last_error: str | None = None
        self.replica = f"{socket.gethostname()}:{os.getpid()}"
        self._last_poll = 0.0
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        #: Merges: this replica's current draw per index, the delta size last seen, and when
        #: each merge was seen (monotonic; the last 100).
        self._jitter = {st: self._draw() for st in self.types}
        self._delta_seen = {st: 0 for st in self.types}
        self.merges: dict[str, int] = {st: 0 for st in self.types}
        self.merge_times: list[float] = []
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.snapshot_dir = None if snapshot_dir is None else Path(snapshot_dir)
        self.snapshot_every_s = snapshot_every_s
        #: Where the index came from ("database", "snapshot"), and the last snapshot saved.
        self.load_source: str | None = None
        self.snapshot_seq: int | None = None
        self.snapshot_saved_at: float | None = None
        self.snapshot_error: str | None = None
        self._snapshot_due = math.inf  # monotonic time of the next save
        #: Change-log entries older than this are deleted by the feed's thread (None: kept).
        self.change_log_keep_s = change_log_keep_s
        self.trimmed = 0
        self._trim_due = 0.0
        #: Set when the log was trimmed past this process's position: it missed changes and
        #: is not ready until restarted (it then loads from the signals or a newer snapshot).
        self.behind_trim: str | None = None
        self._saving: threading.Thread | None = None
        if load:
            self.load()

    def _reset(self) -> None:
        """The empty state (at construction; and a snapshot half applied is dropped)."""
        #: One index per indexed signal type (HMA name).
        self.indexes = {
            st: PdqIndex(PDQ_MATCH_DISTANCE, flat_max=self._flat_max[st]) for st in self.types
        }
        #: Frames-indexed values by signal id, for scoring the candidates the index finds.
        self.values: dict[int, str] = {}
        self.ids = _IdMap()
        #: bank id → flavour code → how many of its PDQ signals carry it (``pdq_flavours``)
        self.flavour_counts: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        #: The highest change-log number applied, and the lower ones not seen yet (number →
        #: when first missed, monotonic).
        self.seq = 0
        self.gaps: dict[int, float] = {}
        self.loaded_signals = 0  # while loading: signals read so far

    # -- loading and following changes ------------------------------------------------------

    def load(self) -> None:
        """Load every current signal (once; the change log is followed from there)."""
        with self._lock:
            if self.loaded:
                return
            self.loading = True
            began = time.time()
            try:
                self._load()
            finally:
                self.loading = False
            self.load_s = time.time() - began
            self.caught_up_at = began
            self.built_at = time.time()
            self._last_poll = time.monotonic()
            self.loaded = True
        log.info(
            "match index loaded: %d signals in %.1f s (change log at %d)",
            self.loaded_signals,
            self.load_s,
            self.seq,
        )

    def _load(self) -> None:
        if self.snapshot_dir is not None:
            try:
                if self._load_snapshot(self.snapshot_dir):
                    return
            except Exception as e:  # unusable: say why, load from the database
                log.warning("index snapshot not used (%s): loading from the database", e)
                self.snapshot_error = f"{type(e).__name__}: {str(e)[:200]}"
                self._reset()
            try:
                self._load_into_snapshot(self.snapshot_dir)
                return
            except Exception as e:  # a full disk, a folder not writable: load in memory
                log.warning("match index not streamed to a snapshot (%s): loading in memory", e)
                self.snapshot_error = f"{type(e).__name__}: {str(e)[:200]}"
                self._reset()
            self._snapshot_due = time.monotonic()  # try to save one once loaded
        self.load_source = "database"
        self.seq = self.store.last_change()
        self.gaps = dict.fromkeys(self._missing_below(self.seq), time.monotonic())
        self._reload_banks()
        for idx in self.indexes.values():  # no tables, no merges: one build at the end
            idx.flat_max = _NEVER
            idx.delta_max = _NEVER
        try:
            for page in self._signal_pages():
                self._apply_adds(page, tune=False)
        finally:
            for st, idx in self.indexes.items():
                idx.flat_max = self._flat_max[st]
                idx.compact_ratio = COMPACT_RATIO
                idx.delta_max = None
        for st, idx in self.indexes.items():
            if len(idx):
                idx.compact()
            self._delta_seen[st] = idx.delta_size
            self._tune(st)

    def _signal_pages(self) -> Iterator[list[Change]]:
        """Every current signal of the indexed types, a page at a time, by id (a load); counts
        them in ``loaded_signals`` as they are read."""
        after = 0
        while self.types:
            page = self.store.live_signals(list(self.types), after_id=after)
            if not page:
                return
            yield page
            self.loaded_signals += len(page)
            after = page[-1].signal_id

    def _missing_below(self, seq: int) -> list[int]:
        """Numbers missing from the log among the last ``GAP_WINDOW`` up to ``seq`` (watched as
        gaps after a load), not counting those below what a trim kept."""
        lo = max(0, seq - GAP_WINDOW, self.store.trim_horizon())
        seen = set(self.store.change_seqs(lo, seq))
        return [s for s in range(lo + 1, seq + 1) if s not in seen]

    # -- snapshots ----------------------------------------------------------------------------

    def _load_into_snapshot(self, root: Path) -> None:
        """Load every signal from the database straight into a new snapshot, then open it: each
        index is streamed to its file (``PdqIndex.build_file``) instead of built in memory, so
        a bank whose in-memory build would not fit (~2x the index at its peak: ~21 GB at 100M
        PDQ hashes) loads with about the id map and one table's sort in memory."""
        seq = self.store.last_change()
        gaps = self._missing_below(seq)
        self._reload_banks()
        radius = {st: idx.max_radius for st, idx in self.indexes.items()}
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".spool-", dir=root) as tmp:
            spool = Path(tmp)
            rows = dict.fromkeys(self.types, 0)
            with contextlib.ExitStack() as files:
                outs = {
                    st: (
                        files.enter_context(open(spool / f"{st}.ids", "wb")),
                        files.enter_context(open(spool / f"{st}.codes", "wb")),
                    )
                    for st in self.types
                }
                for page in self._signal_pages():
                    ids, codes = self._collect_adds(page)
                    for st, these in ids.items():
                        outs[st][0].write(np.asarray(these, dtype="<i8").tobytes())
                        outs[st][1].write(b"".join(codes[st]))
                        rows[st] += len(these)
            id_map, signals = self._id_map_arrays(copy=False)
            state = self._snapshot_state(seq, gaps, signals)

            def write_indexes(folder: Path) -> None:
                for st in self.types:
                    PdqIndex.build_file(
                        folder / f"{st}.pdqi",
                        _spooled(spool, st),
                        rows[st],
                        max_radius=radius[st],
                        flat_max=self._flat_max[st],
                        meta={"seq": seq},
                    )

            snapshots.write_snapshot(root, state, write_indexes, id_map, dict(self.values))
        self._reset()
        if not self._load_snapshot(root):
            raise RuntimeError(f"the snapshot just written in {root} is not there")
        self.load_source = "database"  # through a snapshot: opened from what was just read
        self.snapshot_seq = seq
        self.snapshot_saved_at = state.created_at

    def _load_snapshot(self, root: Path) -> bool:
        """Open the newest snapshot and replay the log from it; False when there is none."""
        folder = snapshots.current_snapshot(root)
        if folder is None:
            return False
        state = snapshots.read_state(folder)
        if sorted(state.types) != sorted(self.types):
            raise snapshots.SnapshotMismatch(
                f"it holds types {state.types}, this service indexes {sorted(self.types)}"
            )
        last = self.store.last_change()
        if state.seq > last:
            raise snapshots.SnapshotMismatch(
                f"it is at change {state.seq}, the database's log ends at {last}: another database"
            )
        horizon = self.store.trim_horizon()
        if state.seq < horizon:
            raise snapshots.SnapshotMismatch(
                f"the change log was trimmed past it (it is at change {state.seq}, entries up "
                f"to {horizon} were deleted)"
            )
        if state.anchor is not None and self.store.change_stamp(state.seq) != state.anchor:
            raise snapshots.SnapshotMismatch(
                f"the database's change {state.seq} is not the one it was taken at: "
                "another database"
            )
        indexes = snapshots.open_indexes(folder, list(self.types), root)
        for idx in indexes.values():
            idx.warm()  # one sequential read now, not a page fault per lookup later
            idx.search_one(bytes(32))  # the lookup kernels loaded now, not on a request
        arrays = snapshots.read_ids(folder)
        values = snapshots.read_values(folder)
        ids = _IdMap()
        ids.content, ids.bank = arrays["content"], arrays["bank"]
        ids.flavour, ids.live = arrays["flavour"], arrays["live"]
        counts: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        pdq = (ids.live != 0) & (ids.flavour != NOT_PDQ)
        keys, n = np.unique(
            ids.bank[pdq] * 256 + ids.flavour[pdq].astype(np.int64), return_counts=True
        )
        for key, k in zip(keys.tolist(), n.tolist(), strict=True):
            counts[key // 256][key % 256] = k
        self.indexes, self.ids, self.values, self.flavour_counts = indexes, ids, values, counts
        self.seq = state.seq
        now = time.monotonic()
        self.gaps = dict.fromkeys(state.gaps, now)
        self.loaded_signals = int(np.count_nonzero(ids.live))
        self._reload_banks()
        for st in self.types:
            self._delta_seen[st] = self.indexes[st].delta_size
            self._tune(st)
        self.load_source = "snapshot"
        self.snapshot_seq = state.seq
        self._poll()  # the changes since it, before the first lookup
        log.info(
            "match index opened from snapshot %s (change %d, %d signals), then %d changes replayed",
            folder.name,
            state.seq,
            state.signals,
            self.seq - state.seq,
        )
        self._snapshot_due = now + self.snapshot_every_s if self.snapshot_every_s else math.inf
        return True

    def save_snapshot(self) -> Path:
        """Save the index as it is now into ``snapshot_dir`` (taken under the feed's lock, in
        well under a second: the tables are shared, only removal flags, delta and id map are
        copied; written outside it). Returns the snapshot's folder."""
        if self.snapshot_dir is None:
            raise ValueError("no snapshot_dir given")
        with self._lock:
            self._ready()
            seq = self.seq
            gaps = sorted(self.gaps)
            taken = {st: idx.snapshot() for st, idx in self.indexes.items()}
            ids, signals = self._id_map_arrays(copy=True)  # the feed changes them after
            values = dict(self.values)
        state = self._snapshot_state(seq, gaps, signals)

        def write_indexes(folder: Path) -> None:
            for st, snap in taken.items():
                snap.save(folder / f"{st}.pdqi", {"seq": seq})

        folder = snapshots.write_snapshot(self.snapshot_dir, state, write_indexes, ids, values)
        self.snapshot_seq = seq
        self.snapshot_saved_at = state.created_at
        log.info("match index snapshot saved: %s (%d signals)", folder.name, state.signals)
        return folder

    def _id_map_arrays(self, copy: bool) -> tuple[dict[str, np.ndarray], int]:
        """The id map's arrays up to the highest live signal id, and how many are live."""
        live = np.flatnonzero(self.ids.live)
        n = int(live[-1]) + 1 if len(live) else 0
        arrays = {key: getattr(self.ids, key)[:n] for key in snapshots.ID_ARRAYS}
        return ({k: np.array(a) for k, a in arrays.items()} if copy else arrays), len(live)

    def _snapshot_state(self, seq: int, gaps: list[int], signals: int) -> snapshots.SnapshotState:
        """A snapshot's state at change ``seq``, with the log's entry there (its anchor)."""
        anchor = self.store.change_stamp(seq) if seq else None
        if seq and anchor is None:
            raise RuntimeError(f"change {seq} not found in the log")
        return snapshots.SnapshotState(
            seq=seq,
            anchor=anchor,
            gaps=gaps,
            types=sorted(self.types),
            signals=signals,
            created_at=time.time(),
            replica=self.replica,
        )

    def _maybe_snapshot(self) -> None:
        """Start a save on its own thread when one is due (the feed goes on meanwhile)."""
        if self.snapshot_dir is None or time.monotonic() < self._snapshot_due:
            return
        if self._saving is not None and self._saving.is_alive():
            return
        every = self.snapshot_every_s
        self._snapshot_due = time.monotonic() + every if every else math.inf

        def save() -> None:
            try:
                self.save_snapshot()
                self.snapshot_error = None
            except Exception as e:  # the disk full, the database away: retry at the next
                log.warning("match index snapshot failed: %s", str(e).splitlines()[0][:200])
                self.snapshot_error = f"{type(e).__name__}: {str(e)[:200]}"
            finally:
                self.store.close()  # this thread's connection

        self._saving = threading.Thread(target=save, name="matcher-snapshot", daemon=True)
        self._saving.start()

    def _reload_banks(self) -> None:
        self.banks = {b.id: b for b in self.store.all_banks()}
        widest = max([PDQ_MATCH_DISTANCE, *(b.pdq_distance for b in self.banks.values())])
        for index in self.indexes.values():
            if widest > index.max_radius:
                index.set_max_radius(widest)

    def _apply_adds(self, changes: list[Change], tune: bool = True) -> None:
        ids, codes = self._collect_adds(changes)
        for st, these in ids.items():
            if not these:
                continue
            index = self.indexes[st]
            if tune:
                self._tune(st)
            before = index.delta_size
            index.add(np.array(these, dtype=np.int64), _codes(codes[st]))
            if tune:
                self._seen_merge(st, before + len(these))

    def _collect_adds(
        self, changes: list[Change]
    ) -> tuple[dict[str, list[int]], dict[str, list[bytes]]]:
        """Record the added signals in the id map (and vPDQ values, flavour counts); the
        index codes to add, per indexed type: (signal ids, 32-byte codes)."""
        ids: dict[str, list[int]] = defaultdict(list)
        codes: dict[str, list[bytes]] = defaultdict(list)
        for c in changes:
            if c.signal_type is None or c.value is None or c.bank_id is None:
                continue  # added then deleted before we saw it
            if c.content_id is None or self.ids.is_live(c.signal_id):
                continue  # already indexed (loaded, or a change read twice)
            code = NOT_PDQ
            if c.signal_type == "pdq":
                code = _CODE.get(c.pdq_flavour, BANKS_FLAVOUR)
                self.flavour_counts[c.bank_id][code] += 1
            self.ids.set(c.signal_id, c.content_id, c.bank_id, code)
            sig = self.types.get(c.signal_type)
            if sig is None:
                continue  # an exact type: looked up in the store
            if sig.index is Index.PDQ_FRAMES:
                self.values[c.signal_id] = c.value
            got = sig.index_codes(c.value, c.quality)  # none: too featureless to match on
            ids[c.signal_type].extend([c.signal_id] * len(got))
            codes[c.signal_type].extend(got)
        return ids, codes

    def _apply_dels(self, sids: list[int]) -> None:
        gone = [sid for sid in sids if self.ids.is_live(sid)]
        if not gone:
            return
        for st, index in self.indexes.items():
            self._tune(st)
            before = index.delta_size
            index.remove(gone)
            self._seen_merge(st, before)
        for sid in gone:
            self.values.pop(sid, None)
            self._forget_flavour(sid)
            self.ids.live[sid] = 0

    def _apply(self, changes: list[Change]) -> None:
        adds = [c for c in changes if c.op == "add"]
        unknown = any(c.bank_id is not None and c.bank_id not in self.banks for c in adds)
        if unknown or any(c.op == "bank" for c in changes):
            self._reload_banks()
        self._apply_adds(adds)
        self._apply_dels([c.signal_id for c in changes if c.op == "del"])

    # -- merges, staggered per replica --------------------------------------------------------

    def _draw(self) -> float:
        return 1.0 - self._rng.uniform(0.0, self.merge_jitter)

    def _tune(self, st: str) -> None:
        """Set the index's merge triggers to this replica's draw (before each write to it)."""
        index = self.indexes[st]
        self._seen_merge(st, self._delta_seen[st])
        base_n = len(index) + index.tombstones - index.delta_size
        lo, hi = DEFAULT_DELTA_MAX
        default = min(hi, max(lo, base_n // 512))
        f = self._jitter[st]
        index.delta_max = max(1, int(default * f))
        index.compact_ratio = COMPACT_RATIO * f

    def _seen_merge(self, st: str, expected: int) -> None:
        """A delta smaller than ``expected`` was merged into new tables: count it, draw again."""
        index = self.indexes[st]
        size = index.delta_size
        if size < expected:
            self.merges[st] += 1
            self.merge_times = [*self.merge_times[-99:], time.monotonic()]
            self._jitter[st] = self._draw()
        self._delta_seen[st] = size

    # -- following the log --------------------------------------------------------------------

    def refresh(self, force: bool = False) -> None:
        """Apply changes logged since the last poll. ``force``: now (after a write through
        this process); else at most every ``poll_interval`` s, and not at all while the
        background poller runs (it keeps the index current). Nothing while loading: the load
        and the poll after it see every change."""
        if not self.loaded:
            return
        if not force and (self.polling or time.monotonic() - self._last_poll < self.poll_interval):
            return
        with self._lock:
            self._poll()

    def _poll(self) -> None:
        began = time.time()
        start = self.seq
        self._last_poll = time.monotonic()
        applied = False
        if self.gaps:
            self._expire_gaps()
            late = self.store.changes_at(sorted(self.gaps)) if self.gaps else []
            if late:
                for c in late:
                    self.gaps.pop(c.seq, None)
                self.gaps_filled += len(late)
                log.info("change log: %d late change(s) applied", len(late))
                self._apply(late)
                applied = True
        while True:
            changes = self.store.changes_since(self.seq, limit=PAGE)
            if not changes:
                break
            for c in changes:
                if c.op == "trim" and c.signal_id > start and self.behind_trim is None:
                    self._trimmed_past(start, c.signal_id)
            self._note_gaps(changes)
            self._apply(changes)
            self.seq = changes[-1].seq
            applied = True
            if len(changes) < PAGE:
                break
        if applied:
            self.built_at = time.time()
        self.caught_up_at = began
        self.polls += 1

    def _trimmed_past(self, position: int, horizon: int) -> None:
        self.behind_trim = (
            f"the change log was trimmed past this replica's position (change {position}; "
            f"entries up to {horizon} were deleted before it read them): restart it to load again"
        )
        log.error("match index: %s", self.behind_trim)

    def _maybe_trim(self) -> None:
        """Delete change-log entries older than ``change_log_keep_s`` (at most every 10th of
        that, and hourly), and stop watching gap numbers below what is kept."""
        keep = self.change_log_keep_s
        if keep is None or time.monotonic() < self._trim_due:
            return
        self._trim_due = time.monotonic() + min(3600.0, max(keep / 10, 0.05))
        n = self.store.trim_changes(time.time() - keep)
        self.trimmed += n
        if n:
            log.info("change log: %d entries older than %.0f s deleted", n, keep)
        horizon = self.store.trim_horizon()
        with self._lock:
            for s in [s for s in self.gaps if s <= horizon]:
                del self.gaps[s]

    def _note_gaps(self, changes: list[Change]) -> None:
        now = time.monotonic()
        expect = self.seq + 1
        for c in changes:
            if c.seq > expect:
                first = max(expect, c.seq - MAX_GAPS)
                self.gaps.update(dict.fromkeys(range(first, c.seq), now))
            expect = c.seq + 1
        if len(self.gaps) > MAX_GAPS:
            for s in sorted(self.gaps)[: len(self.gaps) - MAX_GAPS]:
                del self.gaps[s]
                self.gaps_expired += 1

    def _expire_gaps(self) -> None:
        old = time.monotonic() - self.gap_timeout_s
        stale = [s for s, t in self.gaps.items() if t < old]
        for s in stale:
            del self.gaps[s]
        if stale:
            self.gaps_expired += len(stale)
            log.info(
                "change log: %d missing number(s) given up after %.0f s",
                len(stale),
                self.gap_timeout_s,
            )

    # -- the background poller ----------------------------------------------------------------

    @property
    def polling(self) -> bool:
        t = self._poller
        return t is not None and t.is_alive()

    def start(self) -> None:
        """Start the background thread: it loads the index (when not loaded), then polls the
        change log every ``poll_interval`` s (±10 %) until ``stop``."""
        if self.polling:
            return
        self._stop.clear()
        self._poller = threading.Thread(target=self._run, name="matcher-feed", daemon=True)
        self._poller.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for t in (self._poller, self._saving):
            if t is not None:
                t.join(timeout)

    def _run(self) -> None:
        backoff = 1.0
        try:
            while not self._stop.is_set():
                try:
                    if not self.loaded:
                        self.load()
                    self.refresh(force=True)
                    self.last_error = None
                    self._maybe_snapshot()
                    self._maybe_trim()
                    backoff = 1.0
                except Exception as e:  # the database away: keep serving, retry, say why
                    self.last_error = type(e).__name__
                    log.warning(
                        "match index: %s: %s",
                        "load failed" if not self.loaded else "change log poll failed",
                        str(e).splitlines()[0][:200],
                    )
                    if not self.loaded:
                        self._stop.wait(backoff)
                        backoff = min(30.0, 2 * backoff)
                        continue
                wait = max(self.poll_interval, 0.05) * self._rng.uniform(0.9, 1.1)
                self._stop.wait(wait)
        finally:
            self.store.close()  # this thread's connection

    # -- health -------------------------------------------------------------------------------

    def feed_lag_s(self) -> float | None:
        """Seconds since the last poll that read the log to its end began (None: not loaded)."""
        if not self.loaded:
            return None
        return max(0.0, time.time() - self.caught_up_at)

    def memory_bytes(self) -> int:
        """The index's arrays, the id map and the vPDQ values kept for scoring (approximate)."""
        values = sum(len(v) + 49 for v in self.values.values()) + 100 * len(self.values)
        return sum(i.memory_bytes() for i in self.indexes.values()) + self.ids.nbytes() + values

    def health(self, max_lag_s: float) -> dict[str, Any]:
        """Readiness for a load balancer: ``ready`` when loaded and at most ``max_lag_s``
        behind the change log (``reason`` says why not), with the index's size, memory and
        merges and the feed's state. Counts are over every tenant (no tenant's own)."""
        lag = self.feed_lag_s()
        reason = None
        if not self.loaded:
            reason = (
                "match index loading" if self.loading or self.polling else "match index not loaded"
            )
        elif self.behind_trim is not None:
            reason = self.behind_trim
        elif lag is not None and lag > max_lag_s:
            reason = f"change feed {lag:.1f} s behind (bound {max_lag_s:g} s)"
            if self.last_error:
                reason += f"; last poll failed ({self.last_error})"
        hashes = {st: len(i) for st, i in self.indexes.items()}
        merge_errors = [
            type(i.merge_error).__name__ for i in self.indexes.values() if i.merge_error
        ]
        return {
            "ready": reason is None,
            **({"reason": reason} if reason else {}),
            "replica": self.replica,
            "index": {
                "loaded": self.loaded,
                "signals_loaded": self.loaded_signals,
                "load_s": None if self.load_s is None else round(self.load_s, 3),
                "source": self.load_source,
                "hashes": hashes,
                "delta": {st: i.delta_size for st, i in self.indexes.items()},
                "tombstones": {st: i.tombstones for st, i in self.indexes.items()},
                "merges": dict(self.merges),
                "merge_errors": merge_errors,
                "memory_bytes": self.memory_bytes(),
            },
            "feed": {
                "seq": self.seq,
                "lag_s": None if lag is None else round(lag, 3),
                "max_lag_s": max_lag_s,
                "poll_interval_s": self.poll_interval,
                "polling": self.polling,
                "polls": self.polls,
                "gaps_open": len(self.gaps),
                "gaps_filled": self.gaps_filled,
                "gaps_expired": self.gaps_expired,
                "trimmed": self.trimmed,
                "behind_trim": self.behind_trim is not None,
                "last_error": self.last_error,
            },
            "snapshot": {
                "dir": None if self.snapshot_dir is None else str(self.snapshot_dir),
                "seq": self.snapshot_seq,
                "saved_at": self.snapshot_saved_at,
                "error": self.snapshot_error,
            },
            "process": {"rss_bytes": _rss_bytes()},
        }

    def _forget_flavour(self, sid: int) -> None:
        if sid >= len(self.ids.flavour) or self.ids.flavour[sid] == NOT_PDQ:
            return
        counts = self.flavour_counts[int(self.ids.bank[sid])]
        code = int(self.ids.flavour[sid])
        counts[code] -= 1
        if counts[code] <= 0:
            del counts[code]
        self.ids.flavour[sid] = NOT_PDQ

    # -- flavours -----------------------------------------------------------------------------

    def pdq_flavours(self, tenant_id: int, banks: set[str] | None = None) -> list[str]:
        """The PDQ flavours an upload must be hashed in to match the tenant's PDQ signals (in
        ``banks`` when given), ``pytx`` first: each bank's own for the signals that follow it,
        and the flavours signals carry (``both`` needs none of its own). Empty when no signal
        needs one (no PDQ signal, or only ``both``). IndexNotReady while loading."""
        self._ready()
        self.refresh()
        need: set[str] = set()
        with self._lock:
            for bank_id, counts in self.flavour_counts.items():
                b = self._bank_ok(bank_id, tenant_id, banks)
                if b is None:
                    continue
                for code, n in counts.items():
                    if n <= 0 or code == BOTH:
                        continue
                    need.add(b.pdq_flavour if code == BANKS_FLAVOUR else _FLAVOUR_OF_CODE[code])
        return sorted(need, key=lambda f: (f != "pytx", f))

    def _flavour_ok(self, sid: int, bank: Bank, flavour: str) -> bool:
        code = int(self.ids.flavour[sid]) if sid < len(self.ids.flavour) else NOT_PDQ
        if code in (NOT_PDQ, BOTH):
            return True
        if code == BANKS_FLAVOUR:
            return bank.pdq_flavour == flavour
        return bool(_FLAVOUR_OF_CODE[code] == flavour)

    # -- lookups ------------------------------------------------------------------------------

    def _ready(self) -> None:
        if not self.loaded:
            raise IndexNotReady(
                f"the match index is loading ({self.loaded_signals:,} signals so far); "
                "retry shortly"
            )

    def _bank_ok(self, bank_id: int, tenant_id: int, banks: set[str] | None) -> Bank | None:
        b = self.banks.get(bank_id)
        if b is None or b.tenant_id != tenant_id:
            return None
        if banks is not None and b.name not in banks:
            return None
        return b

    def lookup(
        self,
        tenant_id: int,
        signal_type: str,
        value: str,
        banks: set[str] | None = None,
        quality: int | None = None,
        pdq_flavour: str | None = None,
    ) -> list[Match]:
        """Matches of one canonical signal value among the tenant's banks. ``pdq_flavour``: the
        flavour a PDQ hash was computed in (an upload's); only PDQ signals of that flavour (or
        ``both``) match it. None: any signal may (a hash given as such). IndexNotReady while
        the index loads (a partial index would miss matches)."""
        self._ready()
        self.refresh()
        sig = self.types.get(signal_type)
        if sig is not None:
            codes = sig.index_codes(value, quality)
            if not codes:
                return []  # too featureless to match on
            if sig.index is Index.PDQ:
                return self._lookup_pdq(signal_type, tenant_id, codes[0], banks, pdq_flavour)
            return self._lookup_frames(sig, signal_type, tenant_id, value, codes, banks)
        out = []
        for _sid, cid, bid in self.store.exact_lookup(tenant_id, signal_type, value):
            b = self._bank_ok(bid, tenant_id, banks)
            if b is not None:
                out.append(Match(cid, b.id, b.name, "0"))
        return out

    def _lookup_pdq(
        self,
        signal_type: str,
        tenant_id: int,
        bits: bytes,
        banks: set[str] | None,
        flavour: str | None = None,
    ) -> list[Match]:
        out = []
        seen: set[int] = set()
        for hit in self.indexes[signal_type].search_one(bits):
            bid = int(self.ids.bank[hit.id])
            b = self._bank_ok(bid, tenant_id, banks)
            if b is None or hit.distance > b.pdq_distance:
                continue
            if flavour is not None and not self._flavour_ok(hit.id, b, flavour):
                continue
            cid = int(self.ids.content[hit.id])
            if cid not in seen:
                seen.add(cid)
                out.append(Match(cid, b.id, b.name, str(hit.distance)))
        return out

    def _lookup_frames(
        self,
        sig: SignalType,
        signal_type: str,
        tenant_id: int,
        value: str,
        codes: list[bytes],
        banks: set[str] | None,
    ) -> list[Match]:
        found = self.indexes[signal_type].search(_codes(codes))
        candidates = {h.id for hits in found for h in hits}
        out = []
        for sid in sorted(candidates):
            b = self._bank_ok(int(self.ids.bank[sid]), tenant_id, banks)
            target = self.values.get(sid)
            if b is None or target is None:
                continue
            cmp = sig.at_distance(b.pdq_distance).compare(value, target)
            if cmp.match:
                out.append(Match(int(self.ids.content[sid]), b.id, b.name, cmp.hma_distance()))
        return out

    def status(self, tenant_id: int) -> dict[str, dict[str, object]]:
        """HMA's index status for one tenant: ``size`` counts that tenant's hashes only (PDQ:
        those the index matches on, quality >= 50 or unknown); ``built_to`` is when this
        process last applied a change."""
        built = int(self.built_at)
        counts = self.store.signal_counts(tenant_id, PDQ_MIN_QUALITY)
        return {
            st: {"present": True, "built_to": built, "size": counts.get(st, 0)}
            for st in exchange_names()
        }
