"""The scan: sources → safe decoding → signals → case store, in parallel, resumable.

Sources are walked in the main process; each entry not already recorded (same place, same
fingerprint) is analysed by a worker process; results are written in small transactions. A
scan killed at any moment is rerun with the same command: places already recorded are skipped,
the rest is analysed, and nothing is written twice.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from reclaim.analysis import CHECK_LEVELS, analyze_bytes, error_item
from reclaim.errors import InputError, ItemTimeout
from reclaim.hashes import signal_types
from reclaim.media import MediaLimits, sniff
from reclaim.media.sandbox import die_with_parent
from reclaim.sources import Entry, Locator, Source
from reclaim.sources.base import FileTooLarge
from reclaim.store import CaseStore, ItemRecord, SightingRecord
from reclaim.store.templatelock import Passphrase, TemplateKey
from reclaim.verdicts import CheckLevel

if TYPE_CHECKING:
    from reclaim.faces.pipeline import FaceOptions


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
    faces: int = 0  # faces found in new items (when face search is on)
    findings: int = 0  # new findings of enrolled people
    # faces not matched against the enrolled people because their templates are locked and no
    # passphrase was given: they wait for the next search that has it (reclaim faces)
    face_search_deferred: int = 0

    def as_dict(self) -> dict[str, Any]:
        d = {
            "seen": self.seen,
            "skipped": self.skipped,
            "analysed": self.analysed,
            "new_items": self.new_items,
            "errors": self.errors,
            "faces": self.faces,
            "findings": self.findings,
            "seconds": round(time.monotonic() - self.started, 3),
        }
        if self.face_search_deferred:
            d["face_search_deferred"] = self.face_search_deferred
        return d


def _search_or_defer(store: CaseStore, key: TemplateKey | None) -> tuple[int, int]:
    """Match the enrolled people against the new faces: (new findings, faces left waiting).

    Without the key of locked templates nothing is matched and nothing is marked searched:
    the faces wait, counted, for the next search given the passphrase."""
    from reclaim.match.faces import search_new_faces

    if key is None and store.templates_locked():
        return 0, store.faces_awaiting_search()
    return search_new_faces(store, passphrase=key), 0


def _key_for_search(store: CaseStore, passphrase: Passphrase) -> TemplateKey | None:
    """The key of the case's locked templates, checked before a long run starts (a wrong
    passphrase is refused at once, not after hours of scanning); None without a passphrase."""
    if passphrase is None or passphrase == "":
        return None
    return store.template_key(passphrase)


# -- one entry (runs in workers) ----------------------------------------------------------------


@dataclass
class _Unit:
    entry: Entry
    attempts: int = 0


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise ItemTimeout("took longer than the per-item time limit")


def analyze_entry(
    entry: Entry, limits: MediaLimits, faces: FaceOptions | None = None, check: str = "off"
) -> Outcome:
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
            _arm_hard_deadline(limits.timeout_s)
        try:  # a path is opened only when it is a regular file (never a FIFO: no hang)
            data = entry.read(limits.max_bytes)
        except FileTooLarge as e:
            return Outcome(SightingRecord(loc, None, entry.fingerprint, str(e)))
        except OSError as e:
            return Outcome(SightingRecord(loc, None, None, f"cannot read: {e.strerror or e}"))
        if use_alarm and sniff(data[:64])[0] == "video":
            video_s = max(limits.timeout_s, limits.video_timeout_s)
            signal.setitimer(signal.ITIMER_REAL, video_s)
            _arm_hard_deadline(video_s)
        item = analyze_bytes(data, limits, faces, check)
    except ItemTimeout as e:
        if data is None:
            return Outcome(SightingRecord(loc, None, None, f"reading {e}"))
        item = error_item(data, str(e))
    finally:
        if use_alarm:
            _arm_hard_deadline(0)
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    keep = data if loc.kind == "url" else None
    return Outcome(SightingRecord(loc, item.sha256, entry.fingerprint), item, keep)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _work_chunk(
    entries: list[Entry], limits: MediaLimits, faces: FaceOptions | None = None, check: str = "off"
) -> list[Outcome]:
    return [_analyze_or_record(e, limits, faces, check) for e in entries]


def _analyze_or_record(
    entry: Entry, limits: MediaLimits, faces: FaceOptions | None, check: str
) -> Outcome:
    """analyze_entry, with anything it still raises (a MemoryError while reading the bytes
    under the worker's memory ceiling, a bug) recorded for this entry alone, not raised into
    the chunk (which would lose the chunk's other items, or stop the scan)."""
    try:
        return analyze_entry(entry, limits, faces, check)
    except Exception as e:
        why = f"analysis failed: {type(e).__name__}: {_first_line(e)}".rstrip(": ")
        return Outcome(SightingRecord(entry.locator, None, None, why))


def _first_line(e: BaseException) -> str:
    return next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")


def _worker_init(parent_pid: int, memory_budget: int) -> None:
    """Set up a scan worker: it dies with the scan, within a memory ceiling and a hard
    per-item wall-clock limit.

    - Ctrl-C is handled by the parent, which stops the pool; workers ignore it.
    - Die with the parent: ``PR_SET_PDEATHSIG`` asks the kernel to SIGKILL this worker when the
      scan process dies (kill -9 included), so no orphan keeps decoding (or, as once, keeps the
      case locked). The parent may have died between the fork and this call, in which case
      the signal will never come: the parent pid is checked after setting it, and a worker
      whose parent is already gone exits at once. (The kernel ties the signal to the thread
      that forked the worker: the pool is made, used and shut down by one thread, which
      outlives it, in the web app's scan thread as on the command line.)
    - Memory ceiling (``RLIMIT_DATA``, see ``_limit_memory``): a hostile file makes the
      worker's allocations fail (MemoryError, recorded with the item) or the worker die (the
      pool is restarted and the item recorded), instead of taking the machine's memory.
    - Hard wall-clock limit (``_HardDeadline``): the per-item SIGALRM only interrupts Python
      code; a decoder stuck in C is killed by a kernel timer a little after it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    _limit_memory(memory_budget)
    global _HARD
    _HARD = _HardDeadline.create()
    _keep_freed_memory()


#: Memory a scan worker may add to what it started with (``RLIMIT_DATA``: heap and private
#: writable mappings, which is where decoded frames and model tensors live). Measured peak data
#: size of one worker (``VmData``, Python 3.11, Linux, dlib and onnxruntime models loaded) over
#: 14 face photos, a 12 MP and a 108 MP JPEG and a short HD video: 1.30 GiB with faces searched and
#: checked at level ``faces``, 1.83 GiB at level ``full``. With a 3 GiB ceiling that corpus
#: scans without an error; an item allocating (and touching) memory without end is stopped at
#: the ceiling with MemoryError, and the same worker then analyses the 108 MP photo normally.
#: The default shares half the machine's memory among the workers, between 3 and 8 GiB each.
WORKER_MEMORY_MIN = 3 * 1024**3
WORKER_MEMORY_MAX = 8 * 1024**3


def default_worker_memory(workers: int) -> int:
    """Bytes each of ``workers`` scan workers may allocate beyond what it started with."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return WORKER_MEMORY_MIN
    per_worker = total // (2 * max(1, workers))
    return max(WORKER_MEMORY_MIN, min(WORKER_MEMORY_MAX, per_worker))


def _limit_memory(budget: int) -> None:
    """Cap this process's data size at what it holds now plus ``budget`` bytes (0: no cap).

    ``RLIMIT_DATA``, not ``RLIMIT_AS``: the address-space limit also counts what is only
    reserved, never used (thread stacks, glibc's per-thread malloc arenas, 64 MiB each, and
    the libraries' mappings), which grows with the cores onnxruntime and OpenCV start threads
    for: at a peak data size of 1.83 GiB the address space was 2.29 GiB on 2 cores, and more
    on a many-core machine. What the worker starts with (copied from the parent by fork:
    large in the web app) is counted in, so the ceiling is what the worker may add.
    """
    import resource

    if budget <= 0:
        return
    start = _vm_data_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = start + budget
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft != resource.RLIM_INFINITY:
        limit = min(limit, soft)
    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


def _vm_data_bytes() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class _HardDeadline:
    """A kernel timer that SIGKILLs this worker when an item overruns its time limit.

    The per-item SIGALRM raises ItemTimeout only when the interpreter runs Python code again; a
    decoder looping in C (or blocked with the signal masked) would hold the worker for ever.
    This POSIX timer (``timer_create``, ``CLOCK_MONOTONIC``, delivering SIGKILL) needs no
    Python code to run: past the limit plus a grace, the worker is killed, the pool is
    restarted, and an item that kills a worker twice is recorded with the reason. Only in pool
    workers (never in the scan's own process) and only on Linux; elsewhere, absent.
    """

    def __init__(self, libc: Any, timer: Any) -> None:
        self._libc = libc
        self._timer = timer

    @classmethod
    def create(cls) -> _HardDeadline | None:
        import ctypes
        import sys

        if not sys.platform.startswith("linux"):
            return None

        class SigEvent(ctypes.Structure):
            _fields_ = [
                ("sigev_value", ctypes.c_void_p),
                ("sigev_signo", ctypes.c_int),
                ("sigev_notify", ctypes.c_int),
                ("_pad", ctypes.c_int * 12),  # struct sigevent is 64 bytes on Linux
            ]

        clock_monotonic, sigev_signal = 1, 0
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            create = libc.timer_create
        except (OSError, AttributeError):  # glibc < 2.34 keeps it in librt
            try:
                libc = ctypes.CDLL("librt.so.1", use_errno=True)
                create = libc.timer_create
            except (OSError, AttributeError):
                return None
        timer = ctypes.c_void_p()
        event = SigEvent(None, signal.SIGKILL, sigev_signal)
        if create(clock_monotonic, ctypes.byref(event), ctypes.byref(timer)) != 0:
            return None
        return cls(libc, timer)

    def arm(self, seconds: float) -> None:
        """Kill this process in ``seconds`` (0: disarm)."""
        import ctypes

        class TimeSpec(ctypes.Structure):
            _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

        class ITimerSpec(ctypes.Structure):
            _fields_ = [("it_interval", TimeSpec), ("it_value", TimeSpec)]

        whole = int(seconds)
        value = TimeSpec(whole, int((seconds - whole) * 1e9))
        spec = ITimerSpec(TimeSpec(0, 0), value)
        self._libc.timer_settime(self._timer, 0, ctypes.byref(spec), None)


_HARD: _HardDeadline | None = None


def hard_deadline_s(limit_s: float) -> float:
    """When a worker stuck on an item is killed: the item's limit plus a grace for the
    ItemTimeout to be raised and recorded the ordinary way."""
    return limit_s + max(5.0, 0.25 * limit_s)


def _arm_hard_deadline(limit_s: float) -> None:
    if _HARD is not None:
        _HARD.arm(hard_deadline_s(limit_s) if limit_s > 0 else 0.0)


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


#: What analyses a scan's entries in place of the local pool: (entries not yet recorded,
#: limits, the writer's ``take``, face options, check level); it hands every entry's outcome to
#: ``take`` exactly once, in the calling thread (the case store's one writer).
Runner = Callable[
    [Iterator[Entry], MediaLimits, Callable[[Outcome], None], "FaceOptions | None", str], None
]


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
    faces: bool | None = None,
    face_options: FaceOptions | None = None,
    check: str = "auto",
    worker_memory: int | None = None,
    passphrase: Passphrase = None,
    runner: Runner | None = None,
) -> ScanStats:
    """Scan ``sources`` into ``store``. Returns counts; per-item problems are recorded, not raised.

    ``workers=0`` analyses in this process (debugging, tests); default: one per core.
    ``faces``: look for faces in new items and match them against the enrolled people.
    ``None`` (default) does so when the case has an enrollment, so a hash-only case pays
    nothing (``reclaim faces`` searches items scanned before an enrollment); True/False force it.
    ``check``: one of CHECK_LEVELS, or ``auto``: ``faces`` when faces are searched, else
    ``metadata``. ``worker_memory``: bytes each worker may allocate (default
    ``default_worker_memory``; 0: no ceiling).
    ``passphrase`` (or its ``TemplateKey``): of the case's locked face templates (checked before
    the run: WrongPassphrase). Without it a locked case is scanned, hashed and its faces found
    as always, but not matched against the enrolled people: ``face_search_deferred`` counts
    the faces that wait for the next search given it.
    ``runner``: analyses the entries not yet recorded in place of the local pool and hands
    each outcome to the writer (``reclaim.scan_ray``: the same scan on a Ray cluster).
    """
    if check not in (*CHECK_LEVELS, "auto"):
        raise InputError(
            f"unknown check level {check!r}: use one of auto, {', '.join(CHECK_LEVELS)}"
        )
    limits = limits or MediaLimits()
    workers = default_workers() if workers is None else workers
    face_opts: FaceOptions | None = None
    if faces or (faces is None and store.has_enrollments()):
        from reclaim.faces.pipeline import FaceOptions, models_dir

        models_dir()  # fail now, with a clear message, if the face models are missing
        face_opts = face_options or FaceOptions()
    if check == "auto":
        check = "faces" if face_opts is not None else "metadata"
    key = _key_for_search(store, passphrase) if face_opts is not None else None
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
            if o.item is not None and o.item.faces:
                stats.faces += len(o.item.faces)
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
        if runner is not None:
            runner(todo(), limits, take, face_opts, check)
        elif workers == 0:
            for e in todo():
                take(_analyze_or_record(e, limits, face_opts, check))
        else:
            _run_pool(
                todo(), limits, workers, take, faces=face_opts, check=check, memory=worker_memory
            )
        flush()
        if face_opts is not None:
            stats.findings, stats.face_search_deferred = _search_or_defer(store, key)
        status = "done"
    finally:
        try:
            flush()
        finally:
            store.finish_run(run_id, status, stats.as_dict())
            _custody_acquisition(store, run_id, command, sources, status, stats)
            store.release_lock()
    return stats


def _custody_acquisition(
    store: CaseStore,
    run_id: int,
    command: str,
    sources: list[Source],
    status: str,
    stats: ScanStats,
) -> None:
    """One custody entry per scan run: what was read, from where, with what result (and one
    for the analysis when it analysed anything)."""
    entries: list[tuple[str, dict[str, Any]]] = [
        (
            "acquisition",
            {
                "run": run_id,
                "command": command,
                "sources": [s.describe() for s in sources],
                "status": status,
                **stats.as_dict(),
            },
        )
    ]
    if stats.analysed:
        entries.append(
            (
                "analysis",
                {
                    "run": run_id,
                    "signals": [s.name for s in signal_types()],
                    "items_analysed": stats.analysed,
                    "errors": stats.errors,
                },
            )
        )
    _custody_append(store, entries)


def _custody_append(store: CaseStore, entries: list[tuple[str, dict[str, Any]]]) -> None:
    """Append a run's custody entries (action, details), in order. The run's own record (the
    runs table) stands: never lose the run over the custody file."""
    from reclaim.report.custody import CustodyLog

    with contextlib.suppress(OSError):
        log = CustodyLog(store.root)
        for action, details in entries:
            log.append(action, details)


def _run_pool(
    entries: Iterator[Entry],
    limits: MediaLimits,
    workers: int,
    take: Callable[[Outcome], None],
    chunk: int = 8,
    faces: FaceOptions | None = None,
    check: str = "off",
    memory: int | None = None,
) -> None:
    """Feed entries to a process pool with bounded memory (at most a few chunks in flight).

    A worker that dies (a decoder crash, past its memory ceiling or its hard time limit: see
    ``_worker_init``) breaks the pool: it is restarted, and the entries that were in flight
    are retried one at a time, each alone in the pool, so that a second death is the entry's
    own and no other entry is blamed for it; an entry that kills a worker twice is recorded as
    an error instead of stopping the scan.
    """
    max_inflight = workers * 3
    budget = default_worker_memory(workers) if memory is None else memory
    retry: list[_Unit] = []
    it = iter(entries)
    exhausted = False

    def next_chunk(busy: bool) -> list[_Unit]:
        nonlocal exhausted
        if retry:  # suspects of a crash run alone
            return [] if busy else [retry.pop(0)]
        out: list[_Unit] = []
        while len(out) < chunk and not exhausted:
            try:
                out.append(_Unit(next(it)))
            except StopIteration:
                exhausted = True
        return out

    while True:
        pool = ProcessPoolExecutor(
            max_workers=workers, initializer=_worker_init, initargs=(os.getpid(), budget)
        )
        inflight: dict[Future[list[Outcome]], list[_Unit]] = {}
        broken = False
        try:
            while True:
                while len(inflight) < max_inflight:
                    units = next_chunk(bool(inflight))
                    if not units:
                        break
                    try:
                        fut = pool.submit(
                            _work_chunk, [u.entry for u in units], limits, faces, check
                        )
                    except BrokenProcessPool:  # a worker died since the last wait
                        retry[:0] = units  # these never ran: no attempt counted
                        broken = True
                        break
                    inflight[fut] = units
                if broken:
                    for units in inflight.values():
                        _requeue(units, retry, take)
                    inflight.clear()
                    break
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
            take(Outcome(SightingRecord(u.entry.locator, None, None, CRASHED)))
        else:
            retry.append(u)


#: The reason recorded for an item whose worker died twice, the second time alone in the pool.
CRASHED = (
    "the worker analysing this item died twice (a decoder crash, or past the worker's memory "
    "ceiling or the item's time limit); skipped"
)


# -- faces of items already scanned (``reclaim faces``) -----------------------------------------


@dataclass
class FaceBackfillStats:
    pending: int = 0  # items whose faces were never looked for
    done: int = 0  # of those, looked at now
    faces: int = 0
    errors: int = 0  # items whose faces could not be looked for (recorded with the reason)
    unavailable: int = 0  # items whose bytes are no longer at any recorded place (still pending)
    findings: int = 0
    checked: int = 0  # items whose manipulation check was raised to the ``faces`` level
    face_search_deferred: int = 0  # faces not matched: templates locked, no passphrase
    started: float = field(default_factory=time.monotonic)
    current: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = {
            "pending": self.pending,
            "done": self.done,
            "faces": self.faces,
            "errors": self.errors,
            "unavailable": self.unavailable,
            "findings": self.findings,
            "checked": self.checked,
            "seconds": round(time.monotonic() - self.started, 3),
        }
        if self.face_search_deferred:
            d["face_search_deferred"] = self.face_search_deferred
        return d


def _backfill_entries(store: CaseStore, pending: list[str]) -> Iterator[Entry]:
    """One entry per pending item, from the first recorded place that still holds a file of
    the item's size (reclaim's own copy first); archives are opened once each, last."""
    from reclaim.errors import ReclaimError
    from reclaim.sources import open_source

    archives: dict[str, set[str]] = {}
    for sha in pending:
        blob = store.item_blob(sha)
        if blob and (store.root / blob).is_file():
            p = store.root / blob
            yield Entry(Locator("file", str(p)), path=p)
            continue
        in_archives: list[Locator] = []
        found = False
        for loc in store.sightings_of(sha):
            if loc.kind == "archive":
                in_archives.append(loc)
                continue
            if loc.kind == "file":
                p = Path(loc.path)
            elif loc.kind == "telegram" and loc.member:
                # read where a link inside the export points, as the scan did (never outside)
                p = (Path(loc.path) / loc.member).resolve()
                if not p.is_relative_to(loc.path):
                    continue
            else:
                continue
            if p.is_file():
                yield Entry(loc, path=p)
                found = True
                break
        if not found:
            for loc in in_archives:
                archives.setdefault(loc.path, set()).add(loc.key)
    for path, keys in archives.items():
        try:
            src = open_source(path)
            for e in src.entries():
                if e.locator.key in keys and e.error is None:
                    keys.discard(e.locator.key)
                    yield e
                    if not keys:
                        break
        except (ReclaimError, OSError):
            continue


def find_faces_in_case(
    store: CaseStore,
    *,
    workers: int | None = None,
    limits: MediaLimits | None = None,
    face_options: FaceOptions | None = None,
    on_progress: Callable[[FaceBackfillStats], None] | None = None,
    check: str = "faces",
    passphrase: Passphrase = None,
) -> FaceBackfillStats:
    """Look for faces in every scanned item not yet searched, then match the enrolled people
    against every face not matched yet (those a scan of a locked case left waiting included:
    ``passphrase`` opens them, as in ``scan``).

    Bytes are read again from where the scan saw them (files, Telegram exports, archives,
    reclaim's own downloads); items no longer there stay pending and are counted.
    ``check="faces"`` (the default, as in a scan with someone enrolled) also runs the pixel
    detectors on the items where faces are found now, unless they were checked at that level
    or a fuller one already; ``"off"`` leaves the checks as they are.
    """
    from reclaim.faces.pipeline import FaceOptions, models_dir

    if check not in ("faces", "off"):
        raise InputError(f"unknown check level {check!r} for the backfill: use faces or off")
    key = _key_for_search(store, passphrase)
    models_dir()
    opts = face_options or FaceOptions()
    limits = limits or MediaLimits()
    workers = default_workers() if workers is None else workers
    stats = FaceBackfillStats()
    store.acquire_lock()
    run_id = store.start_run("faces", [str(store.root)])
    status = "failed"
    try:
        pending = store.items_without_faces()
        stats.pending = len(pending)
        wanted = set(pending)
        to_check = set(store.items_to_check("faces")) if check == "faces" else set()
        batch: list[ItemRecord] = []

        def flush() -> None:
            if batch:
                store.record_faces(batch)
                upgraded = [
                    (it.sha256, it.check)
                    for it in batch
                    if it.sha256 in to_check
                    and it.check is not None
                    and it.check.level == CheckLevel.FACES
                ]
                stats.checked += store.record_checks(upgraded)
                batch.clear()

        def take(o: Outcome) -> None:
            it = o.item
            if it is None or it.sha256 not in wanted:
                stats.unavailable += 1  # unreadable, or the file changed since the scan
            else:
                wanted.discard(it.sha256)
                stats.done += 1
                if it.faces is None and it.face_error is None:
                    it.face_error = it.error or "faces could not be looked for"
                if it.face_error is not None:
                    stats.errors += 1
                stats.faces += len(it.faces or [])
                batch.append(it)
                if len(batch) >= 32:
                    flush()
            if on_progress is not None:
                stats.current = o.sighting.locator.display()
                on_progress(stats)

        entries = _backfill_entries(store, pending)
        # items all checked at this level already (a scan with --check full): no check work
        level = check if wanted & to_check else "off"
        if workers == 0:
            for e in entries:
                take(_analyze_or_record(e, limits, opts, level))
        else:
            _run_pool(entries, limits, workers, take, faces=opts, check=level)
        flush()
        stats.unavailable = len(wanted)
        stats.findings, stats.face_search_deferred = _search_or_defer(store, key)
        status = "done"
    finally:
        try:
            store.finish_run(run_id, status, stats.as_dict())
            _custody_face_backfill(store, run_id, status, check, stats)
        finally:
            store.release_lock()
    return stats


def _custody_face_backfill(
    store: CaseStore, run_id: int, status: str, check: str, stats: FaceBackfillStats
) -> None:
    """One custody entry per ``reclaim faces`` run: an analysis of items already acquired
    (their bytes read again from where the scan saw them, checked against their SHA-256),
    with the keys of a scan's analysis entry and what the backfill found."""
    details = {
        "run": run_id,
        "command": "faces",
        "status": status,
        "signals": ["faces"],
        "check": check,
        "items_analysed": stats.done,
        **stats.as_dict(),
    }
    _custody_append(store, [("analysis", details)])
