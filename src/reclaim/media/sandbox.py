"""Decoding in a child process with a memory ceiling and a wall-clock limit.

Per-frame checks (``reclaim.media.bounds``, ``image.iter_frames``) refuse what a file declares;
this is the backstop for what no check foresaw (a decoder bug, a format not parsed here): the
work runs in a worker process whose memory is capped with ``RLIMIT_DATA`` and which the parent
kills when it overruns its time. Each failure becomes one MediaError line (MediaTooLarge,
ItemTimeout, DecodeError) and the next call gets a fresh worker.

Why RLIMIT_DATA and not RLIMIT_AS: both are enforced when memory is mapped, not touched (so a
calloc'd canvas counts), but RLIMIT_AS also counts what is only reserved — file mappings of the
shared libraries and models, ``PROT_NONE`` malloc-arena reservations (64 MB per thread) and
thread stacks. Measured after ``reclaim check`` on one photo (onnxruntime, OpenCV, NudeNet
loaded, 2 cores): VmSize 1.44 GB, VmData 0.83 GB, RSS 0.66 GB; VmSize grows with the number of
cores (one onnxruntime thread per core) without any memory being used. RLIMIT_DATA (Linux
>= 4.7) counts private writable mappings: the heap and every anonymous mmap, where all pixel
buffers live, and nothing that depends on the core count.

Start method: ``fork`` when the caller has a single thread (the CLI: the worker inherits what
is already imported, ~10 ms to start), else ``forkserver`` with ``reclaim.analysis`` preloaded (the
web app and the platform service run threads, which ``fork`` must not copy). A worker is kept
for the next call, so the start is paid once per command or service worker, not per file.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import multiprocessing
import os
import resource
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING, Any, TypeVar

from reclaim.errors import DecodeError, ItemTimeout, MediaError, MediaTooLarge
from reclaim.media.limits import MediaLimits
from reclaim.media.sniff import sniff

if TYPE_CHECKING:
    from reclaim.faces.detect import FaceOptions
    from reclaim.store.case import ItemRecord

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1
_PRELOAD = ["reclaim.analysis"]
_restart_after_reply = False  # set in the worker after a MemoryError: its heap may be bloated


def die_with_parent(parent_pid: int | None = None) -> None:
    """Ask Linux to SIGKILL this worker when its parent dies (no orphans holding memory or a
    lock). With ``parent_pid``, exit at once when the parent already died before the request
    took effect (then this process has been re-parented)."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: only the check below runs
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def _serve(conn: Connection, memory_bytes: int, nice: int = 0) -> None:
    """The worker: run each ``(fn, args)`` received and send back ``(status, value)``."""
    global _restart_after_reply
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if nice > 0:
        with contextlib.suppress(OSError):
            os.nice(nice)
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    # One core per worker: the pool is the parallelism (a multi-threaded BLAS or OpenMP
    # runtime spinning in every worker slows them all down on a busy machine).
    with contextlib.suppress(Exception):
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        threadpool_limits(1)
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return
        reply: tuple[str, Any]
        try:
            reply = ("ok", fn(*args))
        except MemoryError:
            _restart_after_reply = True
            reply = ("memory", None)
        except BaseException as e:
            reply = ("exc", e)
        # The third member tells the parent that this worker exits after replying.
        try:
            conn.send((*reply, _restart_after_reply))
        except Exception as e:  # an unpicklable result or exception
            why = DecodeError(f"unexpected worker error: {type(e).__name__}: {e}")
            conn.send(("exc", why, _restart_after_reply))
        if _restart_after_reply:
            return


def _context(start_method: str | None) -> BaseContext:
    method = start_method or ("fork" if threading.active_count() == 1 else "forkserver")
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def gb(n: int) -> str:
    return f"{n / (1 << 30):.3g} GB"


class Sandbox:
    """One worker process, reused from call to call; killed and replaced when a call overruns
    its time or the worker dies. Thread-safe: calls are serialised."""

    def __init__(self, memory_bytes: int, start_method: str | None = None, nice: int = 0) -> None:
        self.memory_bytes = memory_bytes
        self.start_method = start_method
        self.nice = nice
        self.starts = 0
        self._proc: Any = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the worker now (otherwise the first call does)."""
        with self._lock:
            self._ensure()

    def _ensure(self) -> Connection:
        if self._proc is not None and self._proc.is_alive() and self._conn is not None:
            return self._conn
        self._stop()
        ctx = _context(self.start_method)
        parent, child = ctx.Pipe()
        proc = ctx.Process(  # type: ignore[attr-defined]
            target=_serve,
            args=(child, self.memory_bytes, self.nice),
            name="reclaim-decode",
            daemon=True,
        )
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        self.starts += 1
        return parent

    def _stop(self) -> int | None:
        """Kill the worker (if any) and return its exit code."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is None:
            return None
        if proc.is_alive():
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGKILL)
        proc.join(5)
        code: int | None = proc.exitcode
        return code

    def close(self) -> None:
        with self._lock:
            self._stop()

    def kill(self) -> None:
        """Kill the worker now, even while a call runs (that call raises DecodeError)."""
        proc = self._proc
        if proc is not None and proc.is_alive():
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGKILL)

    def call(self, fn: Callable[..., T], args: tuple[Any, ...], timeout_s: float) -> T:
        """``fn(*args)`` in the worker within ``timeout_s`` seconds and the memory ceiling.

        ``fn`` and its arguments must be picklable (a module-level function). Exceptions raised
        by ``fn`` are raised here. Raises ItemTimeout (the worker is killed), MediaTooLarge
        (MemoryError under the ceiling), DecodeError (the worker died, e.g. a crash)."""
        with self._lock:
            conn = self._ensure()
            try:
                conn.send((fn, args))
            except (BrokenPipeError, OSError):
                self._stop()
                conn = self._ensure()
                conn.send((fn, args))
            if not conn.poll(timeout_s if timeout_s > 0 else None):
                self._stop()
                raise ItemTimeout(f"took longer than the {timeout_s:g} s limit; stopped")
            try:
                status, value, exiting = conn.recv()
            except (EOFError, OSError):
                code = self._stop()
                if code == -signal.SIGKILL:  # the kernel's OOM killer, or someone else
                    raise MediaTooLarge(
                        "the decoder was killed (out of memory?) under the "
                        f"{gb(self.memory_bytes)} memory ceiling"
                    ) from None
                raise DecodeError(f"the decoder process died (exit code {code})") from None
            if exiting:
                self._stop()
        if status == "ok":
            result: T = value
            return result
        if status == "memory":
            raise MediaTooLarge(
                f"decoding needs more than the {gb(self.memory_bytes)} memory ceiling"
            )
        exc: BaseException = value
        raise exc


def time_limit(data: bytes, limits: MediaLimits) -> float:
    """The scan's per-item limit: ``timeout_s``, or ``video_timeout_s`` for a video."""
    if sniff(data[:64])[0] == "video":
        return max(limits.timeout_s, limits.video_timeout_s)
    return limits.timeout_s


def analyze_in_worker(
    data: bytes,
    limits: MediaLimits,
    faces: FaceOptions | None = None,
    pdq_flavour: str | None = None,
) -> ItemRecord:
    """Worker side of :func:`analyze_isolated`: ``analyze_bytes``, with a MemoryError it recorded
    as a decoder error turned into MediaTooLarge (and the worker replaced after replying).
    With ``faces``, the item's faces too (the platform's face shields): their descriptors go
    back to the caller in memory only. ``pdq_flavour``: a photo's PDQ in that flavour."""
    global _restart_after_reply
    from reclaim.analysis import OUT_OF_MEMORY, analyze_bytes

    item = analyze_bytes(data, limits, faces=faces, pdq_flavour=pdq_flavour)
    # analyze_bytes records a MemoryError as OUT_OF_MEMORY: one MediaTooLarge line naming this
    # worker's ceiling instead.
    if item.error and item.error.startswith(OUT_OF_MEMORY):
        _restart_after_reply = True
        item.error = (
            f"MediaTooLarge: decoding needs more than the {gb(limits.max_memory_bytes)} "
            "memory ceiling"
        )
    return item


def analyze_isolated(
    data: bytes, limits: MediaLimits, sandbox: Sandbox | None = None
) -> ItemRecord:
    """``reclaim.analysis.analyze_bytes`` in a sandboxed worker: an ItemRecord whose ``error`` also
    says when the worker ran out of time or memory (never raises for bad media)."""
    box = sandbox or shared_sandbox(limits.max_memory_bytes)
    try:
        return box.call(analyze_in_worker, (data, limits), time_limit(data, limits))
    except MediaError as e:
        from reclaim.store.case import ItemRecord

        sha, md5 = hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()
        item = ItemRecord(sha, md5, len(data), "other", "unknown", error=f"{type(e).__name__}: {e}")
        item.signals = [("sha256", sha, None), ("md5", md5, None)]
        return item


_shared: dict[int, Sandbox] = {}
_shared_lock = threading.Lock()


def shared_sandbox(memory_bytes: int) -> Sandbox:
    """The process's sandbox for this memory ceiling (one worker, started on first use)."""
    with _shared_lock:
        box = _shared.get(memory_bytes)
        if box is None:
            box = _shared[memory_bytes] = Sandbox(memory_bytes)
        return box


def probe_in_worker(data: bytes, limits: MediaLimits, max_side: int | None) -> tuple[int, int]:
    """Worker side of :func:`probe_isolated`: decode the still image, return its size."""
    from reclaim.media import Media

    return Media(data, limits).image(max_side=max_side).size


def probe_isolated(data: bytes, limits: MediaLimits, max_side: int | None = None) -> None:
    """Decode a still image once in a sandboxed worker (within the memory ceiling and time
    limit) before the caller decodes it in its own process. Raises MediaError with the reason."""
    shared_sandbox(limits.max_memory_bytes).call(
        probe_in_worker, (data, limits, max_side), limits.timeout_s
    )


class PoolFull(MediaError):
    """Every worker of a DecodePool is busy and its queue is full: retry later."""


class DecodePool:
    """A bounded pool of sandboxed workers for an asyncio service.

    ``workers`` calls run at once, ``queue`` more wait; beyond that ``run`` raises PoolFull at
    once (the service answers 503), so a burst of hostile uploads never stalls the event loop
    or piles up. Each worker is a :class:`Sandbox` (memory ceiling, killed on overrun and
    replaced), so one bad file costs its own call only. Workers start on first use (the most
    recently used is reused first), or all at once with ``start``. They run at a lower CPU
    priority (``nice``), so the event loop and cheap requests (lookups) get the CPU first
    while a hostile upload burns its time limit."""

    def __init__(
        self,
        workers: int,
        queue: int,
        memory_bytes: int,
        start_method: str = "forkserver",
        nice: int = 10,
    ) -> None:
        import queue as _queue

        self.workers = max(1, workers)
        self.capacity = self.workers + max(0, queue)
        self._boxes: _queue.LifoQueue[Sandbox] = _queue.LifoQueue()
        self._all = [Sandbox(memory_bytes, start_method, nice) for _ in range(self.workers)]
        for box in self._all:
            self._boxes.put(box)
        self._executor: Any = None
        self._admitted = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        """Calls running or waiting."""
        return self._admitted

    def _pool(self) -> Any:
        from concurrent.futures import ThreadPoolExecutor

        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, "reclaim-decode")
            return self._executor

    def start(self) -> None:
        """Start every worker now (a service's startup), instead of on first use."""
        self._pool()
        for box in self._all:
            box.start()

    def close(self) -> None:
        """Kill the workers; calls in flight fail with DecodeError."""
        with self._lock:
            ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=True)
        for box in self._all:
            box.kill()

    def _release(self, _f: Any) -> None:
        with self._lock:
            self._admitted -= 1

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...], timeout_s: float) -> T:
        box = self._boxes.get()
        try:
            return box.call(fn, args, timeout_s)
        finally:
            self._boxes.put(box)

    async def run(self, fn: Callable[..., T], args: tuple[Any, ...], timeout_s: float) -> T:
        """``fn(*args)`` in a worker, awaited without blocking the event loop.

        Raises PoolFull when ``workers + queue`` calls are already in flight, and whatever
        :meth:`Sandbox.call` raises."""
        import asyncio

        executor = self._pool()
        with self._lock:
            if self._admitted >= self.capacity:
                waiting = self.capacity - self.workers
                raise PoolFull(
                    f"all {self.workers} decoding workers are busy and {waiting} requests "
                    "wait; retry later"
                )
            self._admitted += 1
        try:
            fut = executor.submit(self._call, fn, args, timeout_s)
        except RuntimeError:  # shut down meanwhile
            self._release(None)
            raise PoolFull("the decoding workers are shutting down; retry later") from None
        fut.add_done_callback(self._release)
        result: T = await asyncio.wrap_future(fut)
        return result


def preview_in_worker(data: bytes, limits: MediaLimits) -> bytes | None:
    """A small, heavily blurred JPEG of a photo (moderators' preview), made in a worker;
    None when the photo cannot be decoded."""
    import io

    from PIL import ImageFilter

    from reclaim.media import Media

    try:
        im = Media(data, limits).image(max_side=256).convert("RGB")
        im = im.filter(ImageFilter.GaussianBlur(radius=max(6, max(im.size) // 12)))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=60)
        return buf.getvalue()
    except Exception:  # a preview is a convenience; the item is queued without one
        return None
