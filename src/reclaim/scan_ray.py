"""The scan on a Ray cluster: ``reclaim scan SOURCES --case DIR --ray [ADDRESS]``.

The same analysis as a local scan (``reclaim.scan``), run as a Ray Data pipeline:

- the sources enumerate their places on the driver, and the places already recorded are skipped
  there (``scan``'s own resume: this module only replaces the local process pool);
- the places left go to the cluster in windows of a bounded size (``RayOptions.window`` places,
  ``window_bytes`` of bytes already read: archive members, downloads), each window a
  ``ray.data.from_items`` dataset of small blocks;
- without models (no face search, no ``--check full``) each block is analysed by a stateless
  Ray task (read, decode, hashes, metadata check); with models, by an actor pool whose actors
  load the face and detector models once, in their constructor, and then read, decode, hash,
  find faces and check each item (one decoding per item: the pixels never travel);
- every item is analysed by ``reclaim.scan._analyze_or_record``, the local scan's own function,
  under the same per-item time limit, memory ceiling and hard deadline as a local worker;
- the outcomes stream back to the driver with ``iter_batches`` (Ray Data's streaming executor
  holds back the workers when the driver falls behind) and go to ``scan``'s one writer of the
  case store, which writes them in small transactions, as in a local scan. The case, its rows
  and its custody entries are the local scan's.

A worker that dies (killed, out of memory, a node lost) is replaced and its block analysed
again: actors restart (``max_restarts``) and their calls are retried (``max_task_retries``),
tasks are retried (``max_retries``). Each outcome is handed to the writer once, by its place in
the window, however many times Ray delivered it. When a window still fails after Ray's retries
(an item that kills every worker it meets, or a cluster gone), its places not yet written are
analysed by the local scan's crash-isolating pool, which records an item that kills its worker
twice, alone, with the reason. A scan stopped at any moment resumes as a local one does.

Ray is imported only here, and this module only when ``--ray`` is given.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import pickle
import shutil
import tempfile
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from reclaim import scan as scan_mod
from reclaim.errors import InputError
from reclaim.media import MediaLimits
from reclaim.scan import Outcome, _analyze_or_record, _run_pool
from reclaim.sources import Entry

if TYPE_CHECKING:
    from reclaim.faces.pipeline import FaceOptions

__all__ = ["LOCAL", "RayOptions", "RayRunner", "no_usage_stats", "ray_cluster"]

log = logging.getLogger(__name__)

#: The ``RayOptions.address`` of ``reclaim scan --ray`` alone: a cluster on this machine for
#: the scan, shut down after it.
LOCAL = "local"


@dataclass
class RayOptions:
    """How a scan uses Ray.

    ``address``: ``local`` (a cluster on this machine for this scan, shut down after it),
    ``auto`` (the cluster ``ray start`` runs on this machine), or a cluster's address
    (``HOST:PORT`` of its head, ``ray://HOST:10001`` for Ray Client).
    ``workers``: analysing tasks or actors at a time (default: the cluster's CPUs).
    The ``local_*`` values size a local cluster only (a running cluster keeps its own).
    """

    address: str = LOCAL
    workers: int | None = None
    block: int = 4  # places per Ray task (the unit retried when a worker dies)
    window: int = 4096  # places per dataset
    window_bytes: int = 256 * 1024**2  # bytes already read (archive members) per dataset
    retries: int = 3  # Ray's retries of a block whose worker died, before the local fallback
    local_cpus: int | None = None  # default: this machine's cores
    local_object_store: int = 400 * 1024**2  # bytes of shared memory for the object store


# -- the cluster ---------------------------------------------------------------------------------


@contextlib.contextmanager
def ray_cluster(options: RayOptions) -> Iterator[None]:
    """Ray, started or joined for the block's duration.

    A session already open in this process (``ray.init`` by the caller: tests, notebooks) is
    used as it is and left open. Otherwise ``local`` starts a small cluster on this machine
    (a head and its workers: ``local_cpus`` CPUs, ``local_object_store`` bytes of object store,
    no dashboard, its logs and spilled objects in a temporary folder removed after it), and any
    other address joins that cluster; either is left at the end.
    """
    no_usage_stats()
    import ray

    if ray.is_initialized():
        yield
        return
    _quiet_ray_logs()
    temp: str | None = None
    try:
        if options.address == LOCAL:
            temp = tempfile.mkdtemp(prefix="reclaim-ray-", dir=_short_temp_root())
            ray.init(
                address="local",  # a new cluster, even where RAY_ADDRESS names another
                num_cpus=options.local_cpus or scan_mod.default_workers(),
                object_store_memory=options.local_object_store,
                include_dashboard=False,
                _temp_dir=temp,
                logging_level=logging.WARNING,
                log_to_driver=True,
            )
        else:
            _check_reachable(options.address)
            ray.init(address=options.address, logging_level=logging.WARNING, log_to_driver=True)
    except (OSError, ValueError, RuntimeError) as e:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
        raise InputError(f"cannot use the Ray cluster at {options.address!r}: {e}") from None
    try:
        yield
    finally:
        ray.shutdown()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def no_usage_stats() -> None:
    """Nothing phones home: Ray's usage statistics (on unless disabled explicitly) are off for
    this driver and for every process of a cluster it starts, which inherit the environment. A
    cluster started elsewhere keeps its own setting (``docs/scale.md``)."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"


def _short_temp_root() -> str:
    """Where a local cluster keeps its files: the temporary folder, unless its path is too long
    for the Unix sockets Ray makes inside (107 bytes in all, ~85 taken by Ray's own names)."""
    root = tempfile.gettempdir()
    if len(root) > 20 and os.access("/tmp", os.W_OK):
        return "/tmp"
    return root


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuse at once a HOST:PORT (or ray://HOST:PORT) where nothing listens: Ray itself keeps
    trying for minutes. ``auto`` and other forms are left to Ray."""
    import socket

    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as e:
        raise InputError(
            f"cannot reach the Ray cluster at {address!r}: {e.strerror or e} "
            "(is `ray start --head` running there?)"
        ) from None


def _quiet_ray_logs() -> None:
    """Ray Data's own progress bars and start/finish lines off: the scan shows its progress."""
    import ray.data

    with warnings.catch_warnings():  # its own deprecated settings, read on first use
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    for handler in logging.getLogger("ray.data").handlers:
        is_console = isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        )
        if is_console and not any(isinstance(f, _ConsoleQuiet) for f in handler.filters):
            handler.addFilter(_ConsoleQuiet())


class _ConsoleQuiet(logging.Filter):
    """Ray Data's lines below ERROR stay in its own log file, off the scan's terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def _cluster_cpus() -> int:
    import ray

    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return max(1, int(resources.get("CPU", 1)))


# -- the workers ---------------------------------------------------------------------------------

_PREPARED = False


def _prepare_worker() -> None:
    """Once per Ray worker process: what a local scan worker gets (``reclaim.scan._worker_init``)
    but dying with its parent, which Ray's raylet does for its workers: a memory ceiling, the
    hard per-item deadline (a kernel timer killing the worker: Ray then retries its block) and
    glibc keeping freed image buffers."""
    global _PREPARED
    if _PREPARED:
        return
    _PREPARED = True
    scan_mod._limit_memory(scan_mod.default_worker_memory(scan_mod.default_workers()))
    scan_mod._HARD = scan_mod._HardDeadline.create()
    scan_mod._keep_freed_memory()


def _analyse(
    batch: dict[str, np.ndarray], limits: MediaLimits, faces: FaceOptions | None, check: str
) -> dict[str, np.ndarray]:
    """One block: each place's outcome, by the local scan's own function (pickled: Ray Data
    carries bytes)."""
    _prepare_worker()
    out = [
        pickle.dumps(_analyze_or_record(pickle.loads(e), limits, faces, check))
        for e in batch["entry"]
    ]
    return {"i": batch["i"], "outcome": np.array(out, dtype=object)}


class _Analyser:
    """An actor of the pool: the models load once, here, then every block is analysed as by a
    stateless task (faces and detectors reuse the loaded models)."""

    def __init__(self, limits: MediaLimits, faces: FaceOptions | None, check: str) -> None:
        _prepare_worker()
        self.limits, self.faces, self.check = limits, faces, check
        _load_models(limits, faces, check)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return _analyse(batch, self.limits, self.faces, self.check)


def _load_models(limits: MediaLimits, faces: FaceOptions | None, check: str) -> None:
    """Load the face and detector models by analysing the sample face (reclaim demo's public-
    domain portrait) once; the result is dropped. Without it, they load on the first item."""
    from reclaim.analysis import analyze_bytes
    from reclaim.errors import ReclaimError
    from reclaim.sample import face_photo

    with contextlib.suppress(ReclaimError, OSError):
        analyze_bytes(face_photo()[0], limits, faces, check)


def needs_models(faces: FaceOptions | None, check: str) -> bool:
    """Whether the analysis runs models (face search, or detectors on every item)."""
    return faces is not None or check == "full"


# -- the runner ----------------------------------------------------------------------------------


class RayRunner:
    """A ``reclaim.scan.Runner`` on Ray: ``scan(store, sources, runner=RayRunner(options))``.

    Counts, for the caller: ``windows`` (datasets run), ``delivered`` (outcomes Ray handed back,
    duplicates included), ``fallback`` (places analysed by the local pool after a window failed).
    """

    def __init__(self, options: RayOptions | None = None) -> None:
        self.options = options or RayOptions()
        self.windows = 0
        self.delivered = 0
        self.fallback = 0

    def __call__(
        self,
        entries: Iterator[Entry],
        limits: MediaLimits,
        take: Callable[[Outcome], None],
        faces: FaceOptions | None,
        check: str,
    ) -> None:
        with ray_cluster(self.options):
            _quiet_ray_logs()
            workers = self.options.workers or _cluster_cpus()
            while window := self._next_window(entries):
                self._run_window(window, limits, take, faces, check, workers)

    def _next_window(self, entries: Iterator[Entry]) -> list[Entry]:
        """The next places to send, pulled from the driver's enumeration (which skips places
        already recorded), at most ``window`` of them and ``window_bytes`` of read bytes."""
        out: list[Entry] = []
        held = 0
        for e in entries:
            out.append(e)
            held += len(e.data or b"")
            if len(out) >= self.options.window or held >= self.options.window_bytes:
                break
        return out

    def _run_window(
        self,
        window: list[Entry],
        limits: MediaLimits,
        take: Callable[[Outcome], None],
        faces: FaceOptions | None,
        check: str,
        workers: int,
    ) -> None:
        self.windows += 1
        done: set[int] = set()
        try:
            with contextlib.closing(self._stream(window, limits, faces, check, workers)) as out:
                for k, outcome in out:
                    self.delivered += 1
                    if k in done:  # a retried block delivered twice: written once
                        continue
                    done.add(k)
                    take(outcome)
        except _RayFailed as e:
            log.warning(
                "Ray could not finish %d places (%s); analysing them here",
                len(window) - len(done),
                e,
            )
        rest = [e for k, e in enumerate(window) if k not in done]
        if rest:
            self.fallback += len(rest)
            _run_pool(iter(rest), limits, 1, take, faces=faces, check=check)

    def _stream(
        self,
        window: list[Entry],
        limits: MediaLimits,
        faces: FaceOptions | None,
        check: str,
        workers: int,
    ) -> Generator[tuple[int, Outcome], None, None]:
        """(place in window, outcome) as the cluster finishes them. Ray's own failures (past
        its retries) are raised as _RayFailed; what the caller raises while consuming (the
        writer's errors, Ctrl-C) goes through untouched."""
        import ray
        import ray.data

        opts = self.options
        rows = [{"i": k, "entry": pickle.dumps(e)} for k, e in enumerate(window)]
        ds: ray.data.Dataset = ray.data.from_items(
            rows, override_num_blocks=max(1, math.ceil(len(rows) / opts.block))
        )
        # Ray 2.60 deprecates passing retries as remote args (its replacement is not there yet)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if needs_models(faces, check):
                # One call at a time per actor, on the actor's main thread: the per-item
                # SIGALRM time limit of analyze_entry works there, as in a local worker. A
                # second block waits at each actor, so that it never waits for the driver.
                ds = ds.map_batches(
                    _Analyser,
                    batch_size=opts.block,
                    batch_format="numpy",
                    fn_constructor_args=(limits, faces, check),
                    compute=ray.data.ActorPoolStrategy(
                        size=workers,
                        max_tasks_in_flight_per_actor=2,
                        enable_true_multi_threading=True,
                    ),
                    max_restarts=opts.retries,
                    max_task_retries=opts.retries,
                    max_concurrency=1,
                )
            else:
                ds = ds.map_batches(
                    functools.partial(_analyse, limits=limits, faces=faces, check=check),
                    batch_size=opts.block,
                    batch_format="numpy",
                    compute=ray.data.TaskPoolStrategy(size=workers),
                    max_retries=opts.retries,
                )
        batches = iter(ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1))
        try:
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    return
                except ray.exceptions.RayError as e:
                    raise _RayFailed(_first_line(e)) from e
                for k, blob in zip(batch["i"], batch["outcome"], strict=True):
                    yield int(k), pickle.loads(blob)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:  # stops the dataset's execution when the scan stops early
                close()


class _RayFailed(Exception):
    """A window Ray could not finish after its retries."""


def _first_line(e: BaseException) -> str:
    return next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)


def cli_options(address: str | None, workers: int | None) -> RayOptions:
    """The options of ``reclaim scan --ray [ADDRESS]`` (``--workers``: the tasks or actors at a
    time, and the CPUs of a local cluster)."""
    return RayOptions(address=address or LOCAL, workers=workers, local_cpus=workers)
