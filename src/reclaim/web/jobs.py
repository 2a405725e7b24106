"""Background scans for the web app: one at a time per case, progress readable at any moment.

A scan holds the case lock for its whole run, in its thread (the lock is per process; the store
keeps a table so that a second writer in the same process is refused, not let through). While it
runs, the pages' own writes meet it as the domain operations decide: an enrollment or a deletion
is refused with "a scan is running" (HTTP 409; the form works once the scan has finished), and a
decision is recorded at once (it takes no case lock: it touches nothing a scan writes).

When the case's face templates are locked, the scan form may carry their passphrase: it is
checked before the scan starts (a wrong one is refused on the form) and only the key derived
from it reaches the scan's thread; it is never stored. Without it the scan runs and face search
waits (``Job.face_search_deferred``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from reclaim.errors import ReclaimError
from reclaim.scan import ScanStats, scan
from reclaim.sources import Source, SourceLimits, open_source
from reclaim.store import CaseStore
from reclaim.store.templatelock import TemplateKey


@dataclass
class Job:
    id: int
    sources: list[str]
    started: float = field(default_factory=time.time)
    finished: float | None = None
    seen: int = 0
    analysed: int = 0
    skipped: int = 0
    errors: int = 0
    new_items: int = 0
    current: str = ""
    failure: str | None = None
    findings: int = 0
    face_search_deferred: int = 0  # faces not searched: templates locked, no passphrase given

    @property
    def running(self) -> bool:
        return self.finished is None


class JobRunner:
    """Runs scans in a thread of the server; the page polls ``current``."""

    def __init__(self, case: Path) -> None:
        self.case = case
        self._lock = threading.Lock()
        self._jobs: list[Job] = []

    @property
    def current(self) -> Job | None:
        with self._lock:
            return self._jobs[-1] if self._jobs else None

    def start(
        self,
        specs: list[str],
        *,
        network: bool = False,
        workers: int | None = None,
        passphrase: str | None = None,
    ) -> Job:
        """Open every source first (so a bad path is refused at once), then scan in background.

        Raises ReclaimError (InputError/SourceError) with a one-line reason for a bad source, and
        when a scan is already running; WrongPassphrase when ``passphrase`` does not open the
        case's locked face templates.
        """
        with self._lock:
            if self._jobs and self._jobs[-1].running:
                raise ReclaimError("a scan is already running; wait for it to finish")
            key: TemplateKey | None = None
            if passphrase and (self.case / "case.sqlite").exists():
                with CaseStore.open(self.case) as store:
                    key = store.template_key(passphrase)
            sources: list[Source] = []
            for spec in specs:
                if network:
                    from reclaim.sources import urllist

                    sources.append(urllist.open_url_list(spec, SourceLimits()))
                else:
                    sources.append(open_source(spec))
            job = Job(id=len(self._jobs) + 1, sources=specs)
            self._jobs.append(job)
        t = threading.Thread(target=self._run, args=(job, sources, workers, key), daemon=True)
        t.start()
        return job

    def _run(
        self, job: Job, sources: list[Source], workers: int | None, key: TemplateKey | None
    ) -> None:
        def progress(s: ScanStats) -> None:
            job.seen, job.analysed, job.skipped = s.seen, s.analysed, s.skipped
            job.errors, job.new_items, job.current = s.errors, s.new_items, s.current

        try:
            with CaseStore.open(self.case, create=True) as store:
                st = scan(
                    store,
                    sources,
                    workers=workers,
                    on_progress=progress,
                    command="web",
                    passphrase=key,
                )
                progress(st)
                job.findings, job.face_search_deferred = st.findings, st.face_search_deferred
        except ReclaimError as e:
            job.failure = str(e)
        except Exception as e:  # the page must say it, never hang
            job.failure = f"unexpected error: {type(e).__name__}: {e}"
        finally:
            job.finished = time.time()
