"""Crash safety of the scan (issue 18, item 5): workers die with the scan, the case lock goes
with its holder, and a worker that runs away (memory, time, crash) costs one item, not the scan.

The worker tests replace ``reclaim.scan.analyze_bytes`` (or ``reclaim.analysis.Media``, the
decoder) with monkeypatch: the pool's workers are forked from this process, so they run the
replacement.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import reclaim.analysis as analysis_mod
import reclaim.scan as scan_mod
from reclaim.media import MediaLimits
from reclaim.scan import scan
from reclaim.sources import open_source
from reclaim.store import CaseStore

from .conftest import jpeg_bytes, photo_like

HOSTILE = b"HOSTILE!"


def _places(case: Path) -> tuple[set[tuple[str, str | None, str | None]], int, int]:
    """(every place: key, item, error), items, signals."""
    with sqlite3.connect(case / "case.sqlite") as c:
        places = {
            (r[0], r[1], r[2])
            for r in c.execute("SELECT locator_key, item_sha256, error FROM sightings")
        }
        n_places = c.execute("SELECT COUNT(*) FROM sightings").fetchone()[0]
        items = c.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        signals = c.execute("SELECT COUNT(*) FROM signals").fetchone()[0]
    assert n_places == len(places)
    return places, items, signals


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.timeout(300)
def test_kill_9_of_the_scan_alone_then_rerun_resumes_at_once(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "dups").mkdir(parents=True)
    n = 240
    for i in range(n):
        (corpus / f"{i:04d}.jpg").write_bytes(jpeg_bytes(photo_like(i, (480, 360)), quality=85))
    for i in range(20):  # the same bytes in a second place: one item, two sightings
        (corpus / "dups" / f"d{i}.jpg").write_bytes((corpus / f"{i:04d}.jpg").read_bytes())
    (corpus / "bad.jpg").write_bytes(b"\xff\xd8\xff not really")
    case = tmp_path / "case"
    cmd = [sys.executable, "-m", "reclaim.cli", "scan", str(corpus), "--case", str(case), "-j", "2"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        killed_at = -1
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
            try:
                with sqlite3.connect(case / "case.sqlite", timeout=0.1) as c:
                    sightings = c.execute("SELECT COUNT(*) FROM sightings").fetchone()[0]
            except sqlite3.OperationalError:
                continue
            if sightings >= 40:
                os.kill(proc.pid, signal.SIGKILL)  # the scan's own process only, as a crash
                killed_at = sightings
                break
        proc.wait(timeout=30)
        assert killed_at >= 40, "scan finished or never started before it could be killed"
        # At once: no waiting for orphaned workers (they held the case's flock lock before).
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        # The workers went with the scan that started them.
        gone_by = time.monotonic() + 5
        while _group_alive(proc.pid) and time.monotonic() < gone_by:
            time.sleep(0.05)
        assert not _group_alive(proc.pid), "workers of the killed scan are still running"
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)

    with CaseStore.open(case) as store:
        runs = store.runs()
    assert [r["status"] for r in runs] == ["interrupted", "done"]
    assert 40 <= runs[-1]["stats"]["skipped"] < n + 21

    whole = tmp_path / "whole"
    with CaseStore.open(whole, create=True) as store:
        scan(store, [open_source(str(corpus))], workers=0)
    resumed, items, signals = _places(case)
    expected, items_whole, signals_whole = _places(whole)
    assert resumed == expected  # no place lost, none twice, same items and errors
    assert (items, signals) == (items_whole, signals_whole) == (n + 1, n * 3 + 2)


# -- runaway workers: each costs one item, with its reason ---------------------------------------


def _corpus(tmp_path: Path, n: int, hostile: tuple[int, ...]) -> Path:
    d = tmp_path / "corpus"
    d.mkdir()
    for i in range(n):
        data = HOSTILE + bytes([i]) * 64 if i in hostile else jpeg_bytes(photo_like(i, (96, 72)))
        (d / f"{i:03d}.jpg").write_bytes(data)
    return d


def _scan_with(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    runaway: Any,
    n: int = 40,
    hostile: tuple[int, ...] = (5,),
    where: str = "analyze_bytes",
    **kw: Any,
) -> tuple[dict[str, str], dict[str, str | None]]:
    """Scan a corpus where ``runaway(data)`` runs first when ``where`` (``analyze_bytes``, or
    ``Media``: the decoder) is given a hostile item's bytes.
    Returns ({file name: error} of failed places, {file name: item} of every place)."""
    mod = analysis_mod if where == "Media" else scan_mod
    real = getattr(mod, where)

    def analyze(data: bytes, *a: Any, **k: Any) -> Any:
        if data.startswith(HOSTILE):
            runaway(data)
        return real(data, *a, **k)

    monkeypatch.setattr(mod, where, analyze)
    d = _corpus(tmp_path, n, hostile)
    with CaseStore.open(tmp_path / "case", create=True) as store:
        scan(store, [open_source(str(d))], workers=2, **kw)
        errors = {Path(w).name: why for w, why in store.errors()}
        rows = store.conn.execute("SELECT locator_key, item_sha256 FROM sightings").fetchall()
    return errors, {Path(k.split("|")[1]).name: sha for k, sha in rows}


@pytest.mark.timeout(120)
def test_memory_ceiling_stops_a_runaway_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def allocate(data: bytes) -> None:
        import numpy as np

        # More than any worker may take (9 GiB > WORKER_MEMORY_MAX; address space only: the
        # calloc'd pages are never touched, so without a ceiling this succeeds, as a hostile
        # decode would, and nothing is said)
        big = np.zeros(9 * 2**30, dtype=np.uint8)
        del big

    errors, places = _scan_with(tmp_path, monkeypatch, allocate, where="Media")
    assert set(errors) == {"005.jpg"}, errors
    assert "memory ceiling" in errors["005.jpg"]
    assert len(places) == 40 and all(places.values())  # the item is kept, with its hashes


@pytest.mark.timeout(120)
def test_a_worker_that_dies_costs_its_item_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def die(data: bytes) -> None:
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer or a decoder crash would

    errors, places = _scan_with(tmp_path, monkeypatch, die, n=60, hostile=(5, 33))
    # the items in flight with a hostile one are retried alone, never blamed for its crash
    assert set(errors) == {"005.jpg", "033.jpg"}, errors
    assert all(why == scan_mod.CRASHED for why in errors.values())
    assert len(places) == 60


@pytest.mark.timeout(120)
def test_a_decoder_stuck_in_c_is_killed_past_the_time_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stuck(data: bytes) -> None:
        # SIGALRM held back, as in C code that never returns to the interpreter
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
        time.sleep(40)

    t0 = time.monotonic()
    errors, places = _scan_with(tmp_path, monkeypatch, stuck, limits=MediaLimits(timeout_s=1.0))
    took = time.monotonic() - t0
    # killed at 1 s + 5 s of grace, twice (the second time alone), instead of 40 s and more
    assert took < 30, took
    assert set(errors) == {"005.jpg"}, errors
    assert errors["005.jpg"] == scan_mod.CRASHED
    assert scan_mod.hard_deadline_s(1.0) == 6.0
    assert len(places) == 40


def _try_lock(case: Path) -> str:
    probe = [sys.executable, "-c", _TRY_LOCK, str(case)]
    done = subprocess.run(probe, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_lock_goes_with_its_holder_not_with_its_children(tmp_path: Path) -> None:
    case = tmp_path / "case"
    CaseStore.open(case, create=True).close()
    r, w = os.pipe()
    holder = os.fork()
    if holder == 0:  # a scan: takes the lock, forks a worker, dies without any cleanup
        try:
            CaseStore.open(case).acquire_lock()
            worker = os.fork()
            if worker == 0:
                time.sleep(60)
            else:
                os.write(w, f"{worker}\n".encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        worker = int(f.readline())
    os.waitpid(holder, 0)
    try:
        assert _try_lock(case) == "locked"  # the worker, still alive, holds nothing
    finally:
        os.kill(worker, signal.SIGKILL)


def test_a_second_writer_in_the_same_process_is_refused_and_the_lock_kept(
    tmp_path: Path,
) -> None:
    from reclaim.errors import StoreError

    case = tmp_path / "case"
    with CaseStore.open(case, create=True) as store:
        store.acquire_lock()
        with CaseStore.open(case) as other, pytest.raises(StoreError, match="another"):
            other.acquire_lock()
        assert _try_lock(case) == "refused"  # refusing the second did not drop the first
        store.release_lock()
        assert _try_lock(case) == "locked"


_TRY_LOCK = """
import sys
from reclaim.errors import StoreError
from reclaim.store import CaseStore
with CaseStore.open(sys.argv[1]) as s:
    try:
        s.acquire_lock()
    except StoreError:
        print("refused")
    else:
        print("locked")
"""
