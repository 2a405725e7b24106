"""The scan: sources → safe decoding → signals → case store, in parallel, resumable.

Sources are walked in the main process; each entry not already recorded (same place, same
fingerprint) is analysed by a worker process; results are written in small transactions. A
scan killed at any moment is rerun with the same command: places already recorded are skipped,
the rest is analysed, and nothing is written twice.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from reclaim.errors import ItemTimeout, MediaError, MediaTooLarge
from reclaim.media import Media, MediaLimits, sniff
from reclaim.signals import SignalType, default_signals
from reclaim.sources import Entry, Source
from reclaim.store import CaseStore, ItemRecord, SightingRecord


@dataclass
class Outcome:
    """What analysing one entry produced: a sighting, and the item when bytes were read."""

    sighting: SightingRecord
    item: ItemRecord | None = None
    keep_bytes: bytes | None = None  # bytes reclaim must keep itself (downloads)


@dataclass
class ScanStats:
    seen: int = 0
    skipped: int = 0  # already recorded by an earlier run
    analysed: int = 0
    new_items: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic)
    current: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "seen": self.seen,
            "skipped": self.skipped,
            "analysed": self.analysed,
            "new_items": self.new_items,
            "errors": self.errors,
            "seconds": round(time.monotonic() - self.started, 3),
        }


# -- analysis (runs in workers) ---------------------------------------------------------------

_SIGNALS: list[SignalType] | None = None


def _signals() -> list[SignalType]:
    global _SIGNALS
    if _SIGNALS is None:
        _SIGNALS = default_signals()
    return _SIGNALS


def analyze_bytes(data: bytes, limits: MediaLimits) -> ItemRecord:
    """Every signal for one item's bytes. Never raises for bad media: the error is recorded."""
    sha = hashlib.sha256(data).hexdigest()
    md5 = hashlib.md5(data).hexdigest()
    item = ItemRecord(sha256=sha, md5=md5, size=len(data), kind="other", format="unknown")
    item.signals = [("sha256", sha, None), ("md5", md5, None)]
    try:
        media = Media(data, limits)
        item.kind, item.format = media.kind, media.format
        for sig in _signals():
            if not sig.needs_pixels or media.kind not in sig.kinds:
                continue
            value = sig.compute(media)
            if value is not None:
                item.signals.append((value.signal, value.value, value.quality))
        item.info = dict(media.info)
    except MediaError as e:
        item.error = f"{type(e).__name__}: {e}"
        item.signals = item.signals[:2]
    except Exception as e:  # a decoder bug must not stop the scan; record it plainly
        item.error = f"unexpected decoder error: {type(e).__name__}: {e}"
        item.signals = item.signals[:2]
    info = item.info
    item.width = _int_or_none(info.get("width"))
    item.height = _int_or_none(info.get("height"))
    dur = info.get("duration_s")
    item.duration_s = float(dur) if isinstance(dur, int | float) else None
    return item


def _int_or_none(v: object) -> int | None:
    return int(v) if isinstance(v, int | float) else None


@dataclass
class _Unit:
    entry: Entry
    attempts: int = 0


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise ItemTimeout("took longer than the per-item time limit")


def analyze_entry(entry: Entry, limits: MediaLimits) -> Outcome:
    """Read and analyse one entry within the per-item time limit. Never raises for bad input."""
    loc = entry.locator
    if entry.error is not None:
        return Outcome(SightingRecord(loc, None, entry.fingerprint, entry.error))
    use_alarm = limits.timeout_s > 0 and _in_main_thread()
    old = signal.signal(signal.SIGALRM, _on_alarm) if use_alarm else None
    data: bytes | None = None
    try:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, limits.timeout_s)
        try:
            if entry.path is not None:
                size = entry.path.stat().st_size
                if size > limits.max_bytes:
                    raise MediaTooLarge(f"file of {size} bytes exceeds the {limits.max_bytes} cap")
            data = entry.read()
        except OSError as e:
            return Outcome(SightingRecord(loc, None, None, f"cannot read: {e.strerror or e}"))
        except MediaTooLarge as e:
            return Outcome(SightingRecord(loc, None, entry.fingerprint, str(e)))
        if use_alarm and sniff(data[:64])[0] == "video":
            signal.setitimer(signal.ITIMER_REAL, max(limits.timeout_s, limits.video_timeout_s))
        item = analyze_bytes(data, limits)
    except ItemTimeout as e:
        if data is None:
            return Outcome(SightingRecord(loc, None, None, f"reading {e}"))
        item = _error_item(data, str(e))
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    keep = data if loc.kind == "url" else None
    return Outcome(SightingRecord(loc, item.sha256, entry.fingerprint), item, keep)


def _error_item(data: bytes, error: str) -> ItemRecord:
    sha = hashlib.sha256(data).hexdigest()
    md5 = hashlib.md5(data).hexdigest()
    item = ItemRecord(sha, md5, len(data), "other", "unknown", error=error)
    item.signals = [("sha256", sha, None), ("md5", md5, None)]
    return item


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _work_chunk(entries: list[Entry], limits: MediaLimits) -> list[Outcome]:
    return [analyze_entry(e, limits) for e in entries]


def _worker_init() -> None:
    # Ctrl-C is handled by the parent, which stops the pool; workers just die with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _keep_freed_memory()


def _keep_freed_memory() -> None:
    """Let glibc reuse freed image buffers instead of returning them to the kernel.

    Decoded frames are megabytes each; by default glibc serves them with mmap and gives them back
    on free, so every image pays page faults to zero fresh memory (measured: ~28% of a worker's
    time on 1 MP JPEGs). Keeping them in the heap removes that cost.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 256 * 1024 * 1024)
        libc.mallopt(m_trim_threshold, 512 * 1024 * 1024)
    except (OSError, AttributeError):  # not glibc: keep the defaults
        pass


# -- orchestration (main process) ---------------------------------------------------------------


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def iter_entries(sources: Iterable[Source]) -> Iterator[Entry]:
    for src in sources:
        yield from src.entries()


def scan(
    store: CaseStore,
    sources: list[Source],
    *,
    limits: MediaLimits | None = None,
    workers: int | None = None,
    command: str = "scan",
    on_progress: Callable[[ScanStats], None] | None = None,
    flush_every: int = 64,
) -> ScanStats:
    """Scan ``sources`` into ``store``. Returns counts; per-item problems are recorded, not raised.

    ``workers=0`` analyses in this process (debugging, tests); default: one per core.
    """
    limits = limits or MediaLimits()
    workers = default_workers() if workers is None else workers
    stats = ScanStats()
    store.acquire_lock()
    run_id = store.start_run(command, [s.describe() for s in sources])
    pending: list[Outcome] = []
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal pending, last_flush
        if not pending:
            return
        batch: list[tuple[ItemRecord | None, SightingRecord]] = []
        for o in pending:
            if o.item is not None and o.keep_bytes is not None:
                o.item.blob = store.keep_blob(o.item.sha256, o.keep_bytes)
            batch.append((o.item, o.sighting))
        stats.new_items += store.record(batch, run_id)
        pending = []
        last_flush = time.monotonic()

    def take(o: Outcome) -> None:
        stats.analysed += 1
        if o.sighting.error is not None or (o.item is not None and o.item.error is not None):
            stats.errors += 1
        pending.append(o)
        if len(pending) >= flush_every or time.monotonic() - last_flush > 1.0:
            flush()
        if on_progress is not None:
            stats.current = o.sighting.locator.display()
            on_progress(stats)

    def todo() -> Iterator[Entry]:
        for e in iter_entries(sources):
            stats.seen += 1
            if e.fingerprint is not None and store.has_done(e.locator.key, e.fingerprint):
                stats.skipped += 1
                if on_progress is not None:
                    on_progress(stats)
                continue
            yield e

    status = "failed"
    try:
        if workers == 0:
            for e in todo():
                take(analyze_entry(e, limits))
        else:
            _run_pool(todo(), limits, workers, take)
        flush()
        status = "done"
    finally:
        try:
            flush()
        finally:
            store.finish_run(run_id, status, stats.as_dict())
            store.release_lock()
    return stats


def _run_pool(
    entries: Iterator[Entry],
    limits: MediaLimits,
    workers: int,
    take: Callable[[Outcome], None],
    chunk: int = 8,
) -> None:
    """Feed entries to a process pool with bounded memory (at most a few chunks in flight).

    A worker that dies (a decoder crash) breaks the pool: it is restarted, the chunks that were
    in flight are retried one entry at a time, and an entry that kills a worker twice is
    recorded as an error instead of stopping the scan.
    """
    max_inflight = workers * 3
    retry: list[_Unit] = []
    it = iter(entries)
    exhausted = False

    def next_chunk() -> list[_Unit]:
        nonlocal exhausted
        if retry:
            return [retry.pop(0)]
        out: list[_Unit] = []
        while len(out) < chunk and not exhausted:
            try:
                out.append(_Unit(next(it)))
            except StopIteration:
                exhausted = True
        return out

    while True:
        pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init)
        inflight: dict[Future[list[Outcome]], list[_Unit]] = {}
        broken = False
        try:
            while True:
                while len(inflight) < max_inflight:
                    units = next_chunk()
                    if not units:
                        break
                    fut = pool.submit(_work_chunk, [u.entry for u in units], limits)
                    inflight[fut] = units
                if not inflight:
                    return
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in done:
                    units = inflight.pop(fut)
                    try:
                        outcomes = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        _requeue(units, retry, take)
                        continue
                    for o in outcomes:
                        take(o)
                if broken:
                    for units in inflight.values():
                        _requeue(units, retry, take)
                    inflight.clear()
                    break
        finally:
            pool.shutdown(wait=not broken, cancel_futures=True)


def _requeue(units: list[_Unit], retry: list[_Unit], take: Callable[[Outcome], None]) -> None:
    for u in units:
        u.attempts += 1
        if u.attempts >= 2 and len(units) == 1:
            take(
                Outcome(
                    SightingRecord(
                        u.entry.locator, None, None, "the decoder crashed on this item (skipped)"
                    )
                )
            )
        else:
            retry.append(u)
