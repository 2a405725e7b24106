"""Her face templates encrypted at rest under a passphrase (issue 20, property 5).

Locking seals every template (scrypt key, AES-256-GCM per row) and wipes the clear copies from
``case.sqlite`` and its write-ahead log; face search and enrolling then need the passphrase,
everything else works without it, and a scan of a locked case defers face search without
losing anything. Synthetic descriptors throughout: no shared data needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from reclaim import enroll as E
from reclaim import scan as S
from reclaim.enroll import enroll, lock_templates, unenroll, unlock_templates
from reclaim.errors import InputError, StoreError
from reclaim.faces.pipeline import DESCRIPTOR_DIM, Face, descriptor_to_bytes
from reclaim.findings import list_findings
from reclaim.match.faces import search_new_faces
from reclaim.scan import find_faces_in_case, scan
from reclaim.sources import open_source
from reclaim.store import CaseStore
from reclaim.store.case import FaceRecord
from reclaim.store.templatelock import PASSPHRASE_ENV, TemplatesLocked, WrongPassphrase
from reclaim.web.app import create_app
from reclaim.web.jobs import Job, JobRunner

from .conftest import jpeg_bytes, photo_like
from .test_face_search import CAL, THR, add_item, at_distance, enroll_templates

PASS = "correct horse battery staple"
WRONG = "correct horse battery stapler"


def _db_bytes(case: Path) -> bytes:
    out = b""
    for suffix in ("", "-wal"):
        p = case / f"case.sqlite{suffix}"
        if p.exists():
            out += p.read_bytes()
    return out


def _leaks(template: bytes, db: bytes) -> list[int]:
    """Offsets (in the template) of every 32-byte run of its float32 values found in ``db``."""
    return [o for o in range(0, len(template) - 32 + 1, 4) if template[o : o + 32] in db]


def _people(seed: int) -> tuple[list[np.ndarray], np.ndarray, np.random.Generator]:
    """Ana's three templates (close together), Bea's one template, and the generator."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(0, 0.06, DESCRIPTOR_DIM)
    ana = [at_distance(centre, 0.1, rng) for _ in range(3)]
    bea = rng.normal(0, 0.06, DESCRIPTOR_DIM) + 0.3
    return ana, bea.astype(np.float32), rng


def _corpus(store: CaseStore, ana: list[np.ndarray], rng: np.random.Generator) -> None:
    """Items with faces near Ana (found), far from her (not found) and strangers."""
    centre = np.mean(ana, axis=0)
    for i, d in enumerate((0.1, 0.2, 0.3, 0.35, THR + 0.3)):
        add_item(store, f"ana-{i}.jpg", [at_distance(centre, d, rng)])
    for i in range(4):
        add_item(store, f"other-{i}.jpg", [rng.normal(0, 0.06, DESCRIPTOR_DIM) - 0.3])


def _finding_keys(store: CaseStore) -> list[tuple[str, str, tuple[int, ...], float, float]]:
    return [
        (f.enrollment, f.item_sha256, f.box, round(f.distance, 5), round(f.score, 5))
        for f in list_findings(store)
    ]


# -- locking ------------------------------------------------------------------------------------


def test_lock_leaves_no_clear_template_in_the_database_or_its_wal(tmp_path: Path) -> None:
    ana, bea, rng = _people(1)
    case = tmp_path / "case"
    with CaseStore.open(case, create=True) as store:
        _corpus(store, ana, rng)
        a = enroll_templates(store, "Ana", ana)
        b = enroll_templates(store, "Bea", [bea])
        clear = [descriptor_to_bytes(t) for t in [*ana, bea]]
        # The check below can see templates: before locking they are in the files.
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db = _db_bytes(case)
        assert all(_leaks(t, db) for t in clear)
        assert lock_templates(store, PASS) == 4
        assert store.templates_locked()
        db = _db_bytes(case)
        for t in clear:
            assert _leaks(t, db) == []  # not even 8 consecutive floats of any template
        wal = case / "case.sqlite-wal"
        assert not wal.exists() or wal.stat().st_size == 0
        # The templates are still there, sealed, and open with the passphrase only.
        assert store.enrollment_templates(a, PASS) == clear[:3]
        assert store.enrollment_templates(b, passphrase=PASS) == clear[3:]
        with pytest.raises(TemplatesLocked, match="locked with a passphrase"):
            store.enrollment_templates(a)
        # Everything else reads without it.
        assert [e["templates"] for e in store.enrollments()] == [3, 1]
        assert store.face_counts()["faces"] == 9 and store.counts()["photos"] == 9
    # After the case is closed and opened again, still nothing clear.
    with CaseStore.open(case) as store:
        assert store.templates_locked() and store.enrollment_templates(a, PASS) == clear[:3]
    db = _db_bytes(case)
    assert all(_leaks(t, db) == [] for t in clear)


def test_wrong_or_missing_passphrase_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    ana, _, _ = _people(2)
    with CaseStore.open(tmp_path / "case", create=True) as store:
        a = enroll_templates(store, "Ana", ana)
        with pytest.raises(InputError, match="at least 10 characters"):
            lock_templates(store, "short")
        assert not store.templates_locked()
        lock_templates(store, PASS)
        sealed = store.conn.execute("SELECT descriptor FROM templates ORDER BY id").fetchall()
        for bad in (WRONG, PASS.upper(), " " + PASS):
            with pytest.raises(WrongPassphrase, match="wrong passphrase"):
                store.enrollment_templates(a, bad)
            with pytest.raises(WrongPassphrase):
                unlock_templates(store, bad)
            with pytest.raises(WrongPassphrase):
                lock_templates(store, bad)  # locking again checks it too
        with pytest.raises(TemplatesLocked):
            unlock_templates(store, None)
        assert isinstance(WrongPassphrase("x"), TemplatesLocked)
        assert issubclass(TemplatesLocked, InputError)
        # Nothing changed: still locked, the same sealed bytes.
        assert store.templates_locked()
        again = store.conn.execute("SELECT descriptor FROM templates ORDER BY id").fetchall()
        assert again == sealed
        # Locking again with the right one only wipes again.
        assert lock_templates(store, PASS) == 0
        assert store.enrollment_templates(a, PASS) == [descriptor_to_bytes(t) for t in ana]


def test_a_sealed_template_is_bound_to_its_enrollment_and_row(tmp_path: Path) -> None:
    ana, bea, _ = _people(3)
    with CaseStore.open(tmp_path / "case", create=True) as store:
        a = enroll_templates(store, "Ana", ana[:2])
        enroll_templates(store, "Bea", [bea])
        lock_templates(store, PASS)
        rows = store.conn.execute("SELECT id, descriptor FROM templates ORDER BY id").fetchall()
        # Bea's sealed template copied over Ana's first one: it does not open there.
        store.conn.execute("UPDATE templates SET descriptor=? WHERE id=?", (rows[2][1], rows[0][0]))
        with pytest.raises(StoreError, match="altered or copied"):
            store.enrollment_templates(a, PASS)
        # Ana's two templates swapped with each other: refused as well.
        store.conn.execute("UPDATE templates SET descriptor=? WHERE id=?", (rows[1][1], rows[0][0]))
        store.conn.execute("UPDATE templates SET descriptor=? WHERE id=?", (rows[0][1], rows[1][0]))
        with pytest.raises(StoreError, match="altered or copied"):
            store.enrollment_templates(a, PASS)


# -- face search ------------------------------------------------------------------------------


def test_face_search_with_the_passphrase_finds_what_it_found_before_locking(
    tmp_path: Path,
) -> None:
    ana, bea, _ = _people(4)

    def build(case: Path, lock: bool) -> CaseStore:
        store = CaseStore.open(case, create=True)
        _corpus(store, ana, np.random.default_rng(40))  # the same corpus in both cases
        enroll_templates(store, "Ana", ana)
        enroll_templates(store, "Bea", [bea])
        if lock:
            lock_templates(store, PASS)
        return store

    with build(tmp_path / "clear", False) as store:
        assert search_new_faces(store, CAL) > 0
        before = _finding_keys(store)
    with build(tmp_path / "locked", True) as store:
        waiting = store.faces_awaiting_search()
        assert waiting == 9
        with pytest.raises(TemplatesLocked, match="face search needs it"):
            search_new_faces(store, CAL)
        with pytest.raises(WrongPassphrase):
            search_new_faces(store, CAL, passphrase=WRONG)
        # Nothing was marked searched: the faces still wait, nothing was found.
        assert store.faces_awaiting_search() == waiting and store.findings() == []
        assert search_new_faces(store, CAL, passphrase=PASS) == len(before)
        assert _finding_keys(store) == before
        assert store.faces_awaiting_search() == 0
        assert search_new_faces(store, CAL) == 0  # nothing new: no passphrase needed


def _fake_faces(monkeypatch: pytest.MonkeyPatch, by_name: dict[str, np.ndarray]) -> None:
    """Scans find one face per file, the descriptor given for its name (no detector run)."""
    real = S.analyze_entry

    def analyze(entry: object, limits: object, faces: object = None, check: str = "off") -> object:
        o = real(entry, limits, None, "off")  # type: ignore[arg-type]
        if o.item is not None and faces is not None:
            d = by_name[Path(o.sighting.locator.path).name]
            o.item.faces = [
                FaceRecord(
                    box=(5, 5, 85, 85), size=80, detector="hog", confidence=1.0, blur=100.0,
                    pose=0.0, quality=1.0, descriptor=descriptor_to_bytes(d),
                )
            ]  # fmt: skip
            o.item.face_frames = 1
        return o

    monkeypatch.setattr(S, "analyze_entry", analyze)


def _photos(folder: Path, names: list[str]) -> Path:
    """Distinct JPEG files (their bytes depend on the name)."""
    folder.mkdir(parents=True)
    for n in names:
        (folder / n).write_bytes(jpeg_bytes(photo_like(300 + ord(n[0]), (96, 96))))
    return folder


def test_scan_of_a_locked_case_scans_and_defers_face_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana, _, rng = _people(5)
    centre = np.mean(ana, axis=0)
    near = {"a.jpg": at_distance(centre, 0.15, rng), "b.jpg": at_distance(centre, 0.25, rng)}
    far = {"c.jpg": rng.normal(0, 0.06, DESCRIPTOR_DIM) - 0.3}
    _fake_faces(monkeypatch, near | far | {"d.jpg": at_distance(centre, 0.2, rng)})
    src = _photos(tmp_path / "src", ["a.jpg", "b.jpg", "c.jpg"])
    with CaseStore.open(tmp_path / "case", create=True) as store:
        enroll_templates(store, "Ana", ana)
        lock_templates(store, PASS)
        # A wrong passphrase is refused before the scan starts, not after it.
        with pytest.raises(WrongPassphrase):
            scan(store, [open_source(str(src))], workers=0, faces=True, check="off",
                 passphrase=WRONG)  # fmt: skip
        assert store.runs() == []
        st = scan(store, [open_source(str(src))], workers=0, faces=True, check="off")
        # Scanned, hashed, faces found and kept: only the search waits.
        assert st.new_items == 3 and st.faces == 3 and st.errors == 0
        assert st.findings == 0 and st.face_search_deferred == 3
        assert st.as_dict()["face_search_deferred"] == 3
        assert store.counts()["photos"] == 3 and store.face_counts()["faces"] == 3
        assert store.findings() == [] and store.faces_awaiting_search() == 3
        assert store.runs()[-1]["status"] == "done"
        # The next search given the passphrase finds them: nothing was lost.
        back = find_faces_in_case(store, workers=0, check="off", passphrase=PASS)
        assert back.findings == 2 and back.face_search_deferred == 0
        assert {Path(f.locator.path).name for f in store.findings() if f.locator} == set(near)
        # A scan given the passphrase searches at once.
        src2 = _photos(tmp_path / "src2", ["d.jpg"])
        st = scan(store, [open_source(str(src2))], workers=0, faces=True, check="off",
                  passphrase=PASS)  # fmt: skip
        assert st.findings == 1 and st.face_search_deferred == 0
        assert "face_search_deferred" not in st.as_dict()


# -- enrolling, unlocking, unenrolling -----------------------------------------------------------


def _face(desc: np.ndarray) -> Face:
    return Face(
        box=(10, 10, 210, 210), detector="hog", confidence=1.5, size=200, blur=150.0, pose=0.05,
        descriptor=np.asarray(desc, np.float32),
    )  # fmt: skip


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    out = []
    for i in range(2):
        p = tmp_path / f"ref{i}.jpg"
        p.write_bytes(jpeg_bytes(photo_like(100 + i, (160, 120))))
        out.append(p)
    return out


def test_enrolling_into_a_locked_case_seals_the_new_templates(
    tmp_path: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ana, bea, rng = _people(6)
    cleo = [at_distance(bea + 0.05, 0.1, rng) for _ in range(2)]
    calls: list[int] = []

    def detector(rgb: np.ndarray, options: object = None, **kw: object) -> list[Face]:
        calls.append(1)
        return [_face(cleo[len(calls) - 1])]

    monkeypatch.setattr(E, "find_faces", detector)
    case = tmp_path / "case"
    with CaseStore.open(case, create=True) as store:
        enroll_templates(store, "Ana", ana)
        add_item(store, "cleo.jpg", [at_distance(np.mean(cleo, axis=0), 0.1, rng)])
        lock_templates(store, PASS)
        with pytest.raises(TemplatesLocked, match="enrolling needs it"):
            enroll(store, "Cleo", photos, consent=True)
        with pytest.raises(WrongPassphrase):
            enroll(store, "Cleo", photos, consent=True, passphrase=WRONG)
        assert calls == []  # refused before any photo was read
        assert [e["name"] for e in store.enrollments()] == ["Ana"]
        res = enroll(store, "Cleo", photos, consent=True, passphrase=PASS)
        assert res.templates == 2 and res.findings == 1  # searched with the passphrase
        new = [descriptor_to_bytes(d) for d in cleo]
        assert store.enrollment_templates(res.enrollment_id, PASS) == new
        with pytest.raises(TemplatesLocked):
            store.enrollment_templates(res.enrollment_id)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db = _db_bytes(case)
    assert all(_leaks(t, db) == [] for t in new)  # never written in the clear


def test_unlock_restores_the_clear_templates(tmp_path: Path) -> None:
    ana, bea, rng = _people(7)
    with CaseStore.open(tmp_path / "case", create=True) as store:
        _corpus(store, ana, rng)
        a = enroll_templates(store, "Ana", ana)
        b = enroll_templates(store, "Bea", [bea])
        lock_templates(store, PASS)
        assert unlock_templates(store, PASS) == 4
        assert not store.templates_locked()
        assert store.enrollment_templates(a) == [descriptor_to_bytes(t) for t in ana]
        assert store.enrollment_templates(b) == [descriptor_to_bytes(bea)]
        assert unlock_templates(store, None) == 0  # not locked: nothing to do
        assert search_new_faces(store, CAL) > 0  # no passphrase needed any more
        # It can be locked again, under another passphrase.
        lock_templates(store, "another long passphrase")
        with pytest.raises(WrongPassphrase):
            store.enrollment_templates(a, PASS)
        assert store.enrollment_templates(a, "another long passphrase")[0] == descriptor_to_bytes(
            ana[0]
        )


def test_unenroll_in_a_locked_case_still_deletes_for_good(tmp_path: Path) -> None:
    ana, bea, _ = _people(8)
    case = tmp_path / "case"
    with CaseStore.open(case, create=True) as store:
        enroll_templates(store, "Ana", ana)
        b = enroll_templates(store, "Bea", [bea])
        lock_templates(store, PASS)
        rows = store.conn.execute(
            "SELECT enrollment_id, descriptor FROM templates ORDER BY id"
        ).fetchall()
        ana_sealed = [bytes(d) for e, d in rows if e != b]
        bea_sealed = [bytes(d) for e, d in rows if e == b]
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert all(s in _db_bytes(case) for s in ana_sealed)  # the check below can see them
        unenroll(store, "Ana")  # no passphrase needed to withdraw consent
        assert [e["name"] for e in store.enrollments()] == ["Bea"]
        db = _db_bytes(case)
        for s in ana_sealed:
            assert s not in db and s[:40] not in db  # not even the sealed copy
        assert all(s in db for s in bea_sealed)
        assert store.enrollment_templates(b, PASS) == [descriptor_to_bytes(bea)]
        # Everyone unenrolled: the lock goes without the passphrase (a forgotten one never
        # keeps her from enrolling again).
        unenroll(store, "Bea")
        assert unlock_templates(store, None) == 0 and not store.templates_locked()


# -- the command line --------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    full = {k: v for k, v in os.environ.items() if k != PASSPHRASE_ENV} | (env or {})
    p = subprocess.run(
        [sys.executable, "-m", "reclaim.cli", *args], capture_output=True, text=True,
        timeout=300, env=full, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return p.returncode, p.stdout, p.stderr


def test_cli_lock_search_later_and_unlock(tmp_path: Path) -> None:
    ana, _, _ = _people(9)
    case, twin = tmp_path / "case", tmp_path / "twin"
    for root in (case, twin):
        with CaseStore.open(root, create=True) as store:
            _corpus(store, ana, np.random.default_rng(90))
            enroll_templates(store, "Ana", ana)
    with CaseStore.open(twin) as store:  # never locked: what the shipped calibration finds
        expected = search_new_faces(store)
        before = _finding_keys(store)
    assert expected > 0
    c = str(case)
    code, out, err = cli("lock-templates", "--case", c)  # no terminal, no passphrase
    assert code == 2 and "give the passphrase" in err and "Traceback" not in err
    code, out, err = cli("lock-templates", "--case", c, env={PASSPHRASE_ENV: "short"})
    assert code == 2 and "at least 10 characters" in err
    code, out, err = cli("lock-templates", "--case", c, env={PASSPHRASE_ENV: PASS})
    assert code == 0, err
    assert "3 template(s) of 1 enrolled person(s) encrypted" in out
    assert PASS not in out + err
    code, out, err = cli("enrollments", "--case", c)
    assert code == 0 and "locked with a passphrase" in out
    code, out, err = cli("status", "--case", c, "--json")
    assert code == 0 and json.loads(out)["face_search"] == {
        "templates_locked": True,
        "faces_awaiting_search": 9,
    }
    # Face search without the passphrase: faces looked for, the search skipped, and said so.
    code, out, err = cli("faces", "--case", c, "--check", "off")
    assert code == 0, err
    assert "face search skipped" in err and f"reclaim faces --case {c}" in err
    assert "9 face(s) were not compared" in err
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(WRONG + "\n")
    code, out, err = cli("faces", "--case", c, "--passphrase-file", str(wrong))
    assert code == 2 and "wrong passphrase" in err and len(err.strip().splitlines()) == 1
    right = tmp_path / "right.txt"
    right.write_text(PASS + "\n")
    code, out, err = cli("faces", "--case", c, "--check", "off", "--passphrase-file", str(right))
    assert code == 0, err
    assert f"{expected} new findings" in out and "face search skipped" not in err
    code, out, err = cli("findings", "--case", c, "--json")  # no passphrase needed
    assert code == 0 and len(out.splitlines()) == expected
    with CaseStore.open(case) as store:
        assert _finding_keys(store) == before
    code, out, err = cli("unlock-templates", "--case", c, env={PASSPHRASE_ENV: WRONG})
    assert code == 2 and "wrong passphrase" in err
    code, out, err = cli("unlock-templates", "--case", c, "--passphrase-file", str(right))
    assert code == 0 and "3 template(s) are stored in the clear again" in out
    code, out, err = cli("unlock-templates", "--case", c)
    assert code == 2 and "not locked" in err


# -- the web app ------------------------------------------------------------------------------


def _job(runner: JobRunner) -> Job | None:
    return runner.current


def test_web_asks_for_the_passphrase_where_face_search_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana, _, rng = _people(10)
    centre = np.mean(ana, axis=0)
    _fake_faces(
        monkeypatch,
        {"a.jpg": at_distance(centre, 0.15, rng), "b.jpg": rng.normal(0, 0.06, DESCRIPTOR_DIM)},
    )
    src = _photos(tmp_path / "src", ["a.jpg", "b.jpg"])
    case = tmp_path / "case"
    with CaseStore.open(case, create=True) as store:
        enroll_templates(store, "Ana", ana)
        lock_templates(store, PASS)
    app = create_app(case, workers=0)
    runner: JobRunner = app.state.web.jobs
    client = TestClient(app, base_url="http://127.0.0.1:8765")
    en = {"accept-language": "en"}
    page = client.get("/sources", headers=en).text
    assert 'name="passphrase"' in page and "face search waits" in page
    fr = client.get("/sources", headers={"accept-language": "fr"}).text
    assert "Phrase secrète de vos modèles de visage" in fr
    # A wrong passphrase is refused on the form; the scan does not start.
    r = client.post("/sources", data={"path": str(src), "passphrase": WRONG}, headers=en)
    assert r.status_code == 400 and "wrong passphrase" in r.text and WRONG not in r.text
    assert _job(runner) is None
    # Without it the scan runs, and says face search waits.
    r = client.post("/sources", data={"path": str(src)}, headers=en)
    assert r.status_code == 200
    job = _job(runner)
    assert job is not None
    deadline = time.monotonic() + 60
    while job.running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.failure is None and job.face_search_deferred == 2
    part = client.get("/jobs/current", headers=en).text
    assert "Face search skipped" in part and "/enroll#search" in part
    part = client.get("/jobs/current", headers={"accept-language": "fr"}).text
    assert "Recherche de visage non faite" in part
    findings = client.get("/findings", headers=en).text
    assert "2 faces wait for face search" in findings
    enroll_page = client.get("/enroll", headers=en).text
    assert 'action="/enroll/search"' in enroll_page and "2 faces found in your scans" in enroll_page
    assert 'id="enroll-passphrase" name="passphrase"' in enroll_page  # enrolling seals with it
    r = client.post("/enroll/search", data={"passphrase": WRONG}, headers=en)
    assert r.status_code == 400 and "wrong passphrase" in r.text and WRONG not in r.text
    r = client.post("/enroll/search", data={"passphrase": PASS}, headers=en)
    assert r.status_code == 200 and "Face search done: 1 new findings" in r.text
    assert PASS not in r.text
    assert 'action="/enroll/search"' not in r.text  # nothing waits any more
    with CaseStore.open(case) as store:
        assert [Path(f.locator.path).name for f in store.findings() if f.locator] == ["a.jpg"]
