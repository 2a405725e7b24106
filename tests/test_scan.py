"""The scan spine: idempotent, resumable after kill -9, errors recorded and the scan goes on."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reclaim.media import MediaLimits
from reclaim.scan import scan
from reclaim.sources import open_source
from reclaim.store import CaseStore

from .conftest import jpeg_bytes, photo_like


def _counts(case: Path) -> tuple[int, int, int]:
    with sqlite3.connect(case / "case.sqlite") as c:
        items = c.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        sightings = c.execute("SELECT COUNT(*) FROM sightings").fetchone()[0]
        signals = c.execute("SELECT COUNT(*) FROM signals").fetchone()[0]
    return items, sightings, signals


@pytest.mark.parametrize("workers", [0, 2])
def test_scan_is_idempotent_and_dedupes_bytes(
    photo_dir: Path, tmp_path: Path, workers: int
) -> None:
    # The same bytes in two places: one item, two sightings.
    (photo_dir / "copy_of_p0.jpg").write_bytes((photo_dir / "p0.jpg").read_bytes())
    (photo_dir / "notes.txt").write_text("not an image")
    case = tmp_path / "case"
    with CaseStore.open(case, create=True) as store:
        s1 = scan(store, [open_source(str(photo_dir))], workers=workers)
    assert s1.seen == 8 and s1.analysed == 8 and s1.new_items == 7
    items, sightings, signals = _counts(case)
    assert (items, sightings) == (7, 8)
    # sha256 + md5 for all 7, pdq for the 6 photos.
    assert signals == 7 * 2 + 6
    with CaseStore.open(case) as store:
        s2 = scan(store, [open_source(str(photo_dir))], workers=workers)
        assert s2.skipped == 8 and s2.analysed == 0 and s2.new_items == 0
        assert _counts(case) == (items, sightings, signals)
        errs = store.errors()
    assert [w for w, _ in errs] == [str(photo_dir / "notes.txt")]
    assert "not an image" in errs[0][1]


def test_changed_file_is_a_new_item_and_old_sighting_kept(photo_dir: Path, tmp_path: Path) -> None:
    case = tmp_path / "case"
    with CaseStore.open(case, create=True) as store:
        scan(store, [open_source(str(photo_dir))], workers=0)
        (photo_dir / "p0.jpg").write_bytes(jpeg_bytes(photo_like(99)))
        s = scan(store, [open_source(str(photo_dir))], workers=0)
        assert s.analysed == 1 and s.new_items == 1
        p0 = str(photo_dir / "p0.jpg")
        shas = [
            r[0]
            for r in store.conn.execute(
                "SELECT item_sha256 FROM sightings WHERE locator_key=?", (f"file|{p0}",)
            )
        ]
    assert len(set(shas)) == 2  # what was seen there before stays on record


def test_bad_items_recorded_and_scan_goes_on(tmp_path: Path) -> None:
    d = tmp_path / "mixed"
    d.mkdir()
    good = jpeg_bytes(photo_like(5))
    (d / "good.jpg").write_bytes(good)
    (d / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (d / "empty.png").write_bytes(b"")
    (d / "random.webp").write_bytes(os.urandom(4096))
    case = tmp_path / "case"
    with CaseStore.open(case, create=True) as store:
        st = scan(store, [open_source(str(d))], workers=0)
        errs = dict(store.errors())
    assert st.analysed == 4 and st.errors == 3
    assert set(errs) == {str(d / n) for n in ("truncated.jpg", "empty.png", "random.webp")}
    assert "truncated" in errs[str(d / "truncated.jpg")].lower()


def test_per_item_timeout(photo_dir: Path, tmp_path: Path) -> None:
    case = tmp_path / "case"
    with CaseStore.open(case, create=True) as store:
        st = scan(
            store, [open_source(str(photo_dir))], workers=0, limits=MediaLimits(timeout_s=1e-6)
        )
        errs = store.errors()
    assert st.errors == 6
    assert all("time limit" in why for _, why in errs)


def test_second_writer_refused(photo_dir: Path, tmp_path: Path) -> None:
    from reclaim.errors import StoreError

    case = tmp_path / "case"
    with CaseStore.open(case, create=True) as a, CaseStore.open(case) as b:
        a.acquire_lock()
        with pytest.raises(StoreError, match="another reclaim process"):
            scan(b, [open_source(str(photo_dir))], workers=0)


def test_kill_9_mid_scan_then_resume_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    n = 360
    for i in range(n):
        (corpus / f"{i:04d}.jpg").write_bytes(jpeg_bytes(photo_like(i, (480, 360)), quality=85))
    # 20 exact duplicates in a subfolder: they must stay one item each, with two sightings.
    (corpus / "dups").mkdir()
    for i in range(20):
        (corpus / "dups" / f"d{i}.jpg").write_bytes((corpus / f"{i:04d}.jpg").read_bytes())
    case = tmp_path / "case"
    cmd = [sys.executable, "-m", "reclaim.cli", "scan", str(corpus), "--case", str(case), "-j", "2"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 60
    killed_at = -1
    while time.monotonic() < deadline:
        time.sleep(0.02)
        if not (case / "case.sqlite").exists():
            continue
        try:
            _, sightings, _ = _counts(case)
        except sqlite3.OperationalError:
            continue
        if sightings >= 40:
            os.killpg(proc.pid, signal.SIGKILL)  # the scan and its workers, no cleanup
            killed_at = sightings
            break
    proc.wait(timeout=30)
    assert killed_at >= 40, "scan finished or never started before it could be killed"
    _, sightings_before, _ = _counts(case)
    assert sightings_before < n + 20, "kill came too late to test resuming"

    with CaseStore.open(case) as store:
        assert store.runs()[-1]["status"] == "interrupted"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    items, sightings, signals = _counts(case)
    assert items == n
    assert sightings == n + 20
    assert signals == n * 3
    with sqlite3.connect(case / "case.sqlite") as c:
        dup_places = c.execute(
            "SELECT COUNT(*) FROM (SELECT locator_key FROM sightings GROUP BY locator_key "
            "HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        missing = c.execute(
            "SELECT COUNT(*) FROM items i WHERE NOT EXISTS "
            "(SELECT 1 FROM signals s WHERE s.item_sha256 = i.sha256 AND s.signal = 'pdq')"
        ).fetchone()[0]
    assert dup_places == 0 and missing == 0
    with CaseStore.open(case) as store:
        runs = store.runs()
    assert [r["status"] for r in runs] == ["interrupted", "done"]
    assert runs[-1]["stats"]["skipped"] == sightings_before


# -- places that are not regular files (issue 18, item 4) ---------------------------------------


def _without_root_overrides() -> None:
    """preexec_fn: take away root's power to read any folder (CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH, from the capability bounding set, so the command it runs does not get
    them back): root then meets a chmod 000 folder as anyone would. Nothing to do for a user."""
    import ctypes

    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
        for cap in (cap_dac_override, cap_dac_read_search):
            libc.prctl(pr_capbset_drop, cap, 0, 0, 0)


@pytest.mark.timeout(120)
def test_fifo_socket_link_and_unreadable_folder_recorded_with_reason(tmp_path: Path) -> None:
    import socket

    d = tmp_path / "folder"
    (d / "locked").mkdir(parents=True)
    (d / "locked" / "hidden.jpg").write_bytes(jpeg_bytes(photo_like(3)))
    (d / "good.jpg").write_bytes(jpeg_bytes(photo_like(4)))
    os.mkfifo(d / "pipe.jpg")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(d / "sock"))
    sock.close()
    (d / "elsewhere").symlink_to(tmp_path)  # a link to a folder: not followed, but said
    (d / "locked").chmod(0o000)
    try:
        _scan_and_check_reasons(d, tmp_path / "case")
    finally:
        (d / "locked").chmod(0o755)


def _scan_and_check_reasons(d: Path, case: Path) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", f"import os; os.listdir({str(d / 'locked')!r})"],
        capture_output=True,
        preexec_fn=_without_root_overrides,
    )
    if probe.returncode == 0:
        pytest.skip("cannot make a folder unreadable here (root without CAP_SETPCAP?)")
    reclaim = [sys.executable, "-m", "reclaim.cli"]
    scanned = subprocess.run(
        [*reclaim, "scan", str(d), "--case", str(case), "-j", "0"],
        capture_output=True,
        text=True,
        timeout=90,
        preexec_fn=_without_root_overrides,
    )
    assert scanned.returncode == 0, scanned.stderr
    status = subprocess.run(
        [*reclaim, "status", "--case", str(case), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    errs = dict(json.loads(status.stdout)["errors"])
    assert "named pipe (FIFO)" in errs.get(str(d / "pipe.jpg"), ""), errs
    assert "socket" in errs.get(str(d / "sock"), ""), errs
    assert "symbolic link not followed" in errs.get(str(d / "elsewhere"), ""), errs
    assert "folder cannot be read" in errs.get(str(d / "locked"), ""), errs
    assert str(d / "good.jpg") not in errs
