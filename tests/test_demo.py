"""``reclaim demo``, the README's first command: the whole journey on sample data, on a clean
machine (no ../shared): a public-domain face among abstract patterns, enrolled, found in every
copy and in nothing else, confirmed, a request drafted, a pack built and verified."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from reclaim.demo import DEMO_ACTOR, DEMO_CONSENT_BY, place_words, sample_place
from reclaim.errors import InputError
from reclaim.report.custody import CustodyLog
from reclaim.report.seal import resolve_pin
from reclaim.report.verify import verify_pack
from reclaim.sample import FACE_NAME, FACE_PLACES, face_photo, make_sample_collection
from reclaim.sources import open_source
from reclaim.sources.base import Locator
from reclaim.store import CaseStore


def _demo(cwd: Path, where: str) -> subprocess.CompletedProcess[str]:
    """The README's first command, as a user runs it (a new process, default workers), with
    ``--dir`` relative to ``cwd`` as the default one is."""
    return subprocess.run(
        [sys.executable, "-m", "reclaim.cli", "demo", "--dir", where],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.mark.slow
def test_the_demo_shows_the_whole_journey(tmp_path: Path) -> None:
    p = _demo(tmp_path, "my demo")  # a space: the printed commands must quote it
    where = tmp_path / "my demo"
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    case, sample_root = where / "case", (where / "sample").resolve()

    with CaseStore.open(case) as store:
        # Enrolled, with the consent recorded as the demo's.
        (enr,) = store.enrollments()
        assert enr["name"] == FACE_NAME
        row = store.conn.execute("SELECT consented_by, consent_text FROM consents").fetchone()
        assert row[0] == DEMO_CONSENT_BY and "consent" in row[1].lower()
        # Faces were searched and every item with one was checked for manipulation.
        assert store.face_counts()["items_searched_for_faces"] > 20
        found = store.findings(FACE_NAME)
        places = {sample_place(f.locator, sample_root) for f in found}
        # Every copy of the face, and none of the abstract patterns.
        assert places == set(FACE_PLACES), places ^ set(FACE_PLACES)
        assert len(found) == len(FACE_PLACES)
        assert all(f.check is not None and f.check["level"] == "faces" for f in found)
        confirmed = {
            r[0]
            for r in store.conn.execute(
                "SELECT item_sha256 FROM decisions WHERE decision = ?", ("confirmed",)
            )
        }
        assert confirmed == {f.item_sha256 for f in found}
        # One removal request drafted, for a place a platform can act on (a Telegram message).
        (req,) = store.requests()
        assert req.status.value == "draft" and req.item_sha256 in confirmed
        assert req.destination == "telegram" and req.place is not None
        assert req.place.kind == "telegram"
        assert str(sample_root) not in req.letter  # a letter never names a local path

    # The pack verifies, holds exactly the confirmed items, and was signed by the case's key.
    pack = where / "evidence.zip"
    check = verify_pack(pack, expected_key=resolve_pin(str(case)))
    assert check.ok, check.problems
    assert check.items == len(FACE_PLACES) and check.key_pinned
    with zipfile.ZipFile(pack) as z:
        names = z.namelist()
        assert "requests.json" in names and any(n.startswith("requests/request-") for n in names)
        originals = {
            n.split("/")[1].split(".")[0] for n in z.namelist() if n.startswith("originals/")
        }
    assert originals == confirmed

    # Who did what is in the custody log, named as the demo.
    actions = {e["action"]: e["actor"] for e in CustodyLog(case).entries()}
    for action in ("enrollment", "decision", "request.drafted", "export"):
        assert actions.get(action) == DEMO_ACTOR, actions

    # Progress is shown step by step, and the last line is the one command to open the web app.
    out = p.stdout
    assert [f"{n}/7" in out for n in range(1, 8)] == [True] * 7
    n = len(FACE_PLACES)
    assert f"{n} of the {n} copies of the face found, none of the patterns" in out
    assert "Telegram chat “sample channel”, message" in out
    assert f"reclaim request show --case 'my demo/case' {req.id}" in out
    assert "  · phone-backup/broken.jpg: " in out  # what could not be read, and why
    last = [ln.strip() for ln in out.splitlines() if ln.strip()][-1]
    assert last == "reclaim serve --case 'my demo/case'"
    # That command's case opens in the web app, which lists every finding.
    from fastapi.testclient import TestClient

    from reclaim.web.app import create_app

    served = tmp_path / shlex.split(last)[-1]
    page = TestClient(create_app(served), base_url="http://127.0.0.1:8765").get("/findings")
    assert page.status_code == 200 and all(sha in page.text for sha in confirmed)

    # Run again on the same folder: it goes on where it was, nothing twice.
    p2 = _demo(tmp_path, "my demo")
    assert p2.returncode == 0, p2.stdout + p2.stderr
    assert "already enrolled" in p2.stdout and "0 newly confirmed" in p2.stdout
    assert "drafted by an earlier run" in p2.stdout
    with CaseStore.open(case) as store:
        assert len(store.findings(FACE_NAME)) == len(FACE_PLACES)
        n = store.conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
        assert n == len(FACE_PLACES) and len(store.requests()) == 1
    assert verify_pack(pack, expected_key=resolve_pin(str(case))).ok


def test_the_sample_places_each_copy_of_the_face_where_a_scan_finds_it(tmp_path: Path) -> None:
    root = tmp_path / "sample"
    sample = make_sample_collection(root)
    assert sample.face_places == FACE_PLACES
    assert set(FACE_PLACES.values()) >= {"jpeg", "crop", "mirror", "inscene"}
    # The reference photo is matplotlib's file itself, kept apart from the scanned sources.
    data, box = face_photo()
    (ref,) = sample.reference
    assert ref.read_bytes() == data and ref.parent.name == "reference"
    assert "public domain" in (ref.parent / "ABOUT.txt").read_text()
    assert all(root / "reference" != s for s in sample.sources)
    with Image.open(ref) as im:
        w, h = im.size
    assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h

    # Every placed variant is listed by the sources as a scan would see it, as its own bytes.
    seen: dict[tuple[str, str], bytes] = {}
    for src in sample.sources:
        for entry in open_source(str(src)).entries():
            place = sample_place(entry.locator, root)
            if place in FACE_PLACES:
                seen[place] = entry.read()
                if entry.locator.kind == "telegram":
                    assert entry.locator.meta["date"].startswith("2024-05-0")
                    assert entry.locator.meta["date_unixtime"]
    assert set(seen) == set(FACE_PLACES)
    assert len({hashlib.sha256(b).digest() for b in seen.values()}) == len(FACE_PLACES)
    for b in seen.values():
        assert b != data
        with Image.open(io.BytesIO(b)) as im:
            assert im.format == "JPEG" and max(im.size) <= 1280

    # Made again: the same bytes, files untouched (a demo run again skips what it scanned).
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    make_sample_collection(root)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before

    # Without faces: the abstract patterns only, as before.
    bare = make_sample_collection(tmp_path / "bare", faces=False)
    assert bare.reference == [] and bare.face_places == {}
    assert not (tmp_path / "bare" / "phone-backup" / "IMG_1100.jpg").exists()
    export = json.loads((tmp_path / "bare" / "telegram-export" / "result.json").read_text())
    assert len(export["messages"]) == 6


def test_without_matplotlib_the_demo_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    with pytest.raises(InputError, match="pip install matplotlib"):
        face_photo()


def test_places_are_said_in_words(tmp_path: Path) -> None:
    tg = Locator(
        "telegram",
        str(tmp_path / "export"),
        "photos/p.jpg",
        {"chat_name": "Les filles", "message_id": 7, "date": "2024-05-03T21:15:00", "sender": "Bob",
         "forwarded_from": "X"},
    )  # fmt: skip
    assert place_words(tg) == (
        "Telegram chat “Les filles”, message 7 of 2024-05-03 21:15, sent by Bob (forwarded from X)"
    )
    z = Locator("archive", str(tmp_path / "a.zip"), "album/p.jpg")
    assert place_words(z, tmp_path) == "archive a.zip, file album/p.jpg"
    f = Locator("file", str(tmp_path / "phone" / "2024" / "IMG_1.jpg"))
    assert place_words(f, tmp_path) == "folder phone/2024, file IMG_1.jpg"
    assert sample_place(f, tmp_path) == ("phone", "2024/IMG_1.jpg")
    assert sample_place(z, tmp_path) == ("a.zip", "album/p.jpg")
    assert sample_place(f, tmp_path / "elsewhere") is None
