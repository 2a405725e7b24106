"""Enrollment: consent first, one usable face per reference photo, templates only, and unenroll
deletes for good (down to the bytes of the database files).

The refusal rules and the deletion are tested with stand-in faces (``find_faces`` replaced),
so they need no shared data; the real detector is used for the zero-face refusal on a synthetic
image and, with ../shared/data, for two-face, blurred and tiny real photos.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from reclaim import enroll as E
from reclaim.enroll import (
    MAX_REFERENCE_SPREAD,
    ConsentRequired,
    EnrollmentRefused,
    consent_text,
    enroll,
    reference_face,
    unenroll,
)
from reclaim.errors import InputError, StoreError
from reclaim.faces.pipeline import DESCRIPTOR_DIM, Face, descriptor_to_bytes
from reclaim.store import CaseStore

from .conftest import jpeg_bytes, photo_like, shared_data


def _face(desc: np.ndarray, size: int = 200, blur: float = 150.0, pose: float = 0.05) -> Face:
    return Face(
        box=(10, 10, 10 + size, 10 + size),
        detector="hog",
        confidence=1.5,
        size=size,
        blur=blur,
        pose=pose,
        descriptor=np.asarray(desc, np.float32),
    )


def _person(seed: int, n: int, spread: float = 0.3) -> list[np.ndarray]:
    """n descriptors of one synthetic person: a centre and points ``spread`` away from it."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(0, 0.06, DESCRIPTOR_DIM)
    out = []
    for _ in range(n):
        u = rng.normal(size=DESCRIPTOR_DIM)
        out.append(centre + spread / 2 * u / np.linalg.norm(u))
    return out


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    """Three distinct JPEG files standing in for reference photos."""
    out = []
    for i in range(3):
        p = tmp_path / f"ref{i}.jpg"
        p.write_bytes(jpeg_bytes(photo_like(100 + i, (160, 120))))
        out.append(p)
    return out


def fake_detector(
    monkeypatch: pytest.MonkeyPatch, faces_by_call: list[list[Face]]
) -> Callable[..., list[Face]]:
    calls = iter(faces_by_call)

    def fake(rgb: np.ndarray, options: object = None, **kw: object) -> list[Face]:
        return next(calls)

    monkeypatch.setattr(E, "find_faces", fake)
    return fake


def _db_bytes(case: Path) -> bytes:
    out = b""
    for suffix in ("", "-wal"):
        p = case / f"case.sqlite{suffix}"
        if p.exists():
            out += p.read_bytes()
    return out


# -- consent ----------------------------------------------------------------------------------


def test_enrollment_is_refused_without_consent(tmp_path: Path) -> None:
    with CaseStore.open(tmp_path / "case", create=True) as store:
        # Consent is checked before anything is read: even a missing photo says "consent".
        with pytest.raises(ConsentRequired, match="consent"):
            enroll(store, "Ana", [tmp_path / "missing.jpg"], consent=False)
        assert store.enrollments() == []


def test_cli_without_consent_shows_the_text_and_stores_nothing(tmp_path: Path) -> None:
    case = tmp_path / "case"
    photo = tmp_path / "me.jpg"
    photo.write_bytes(jpeg_bytes(photo_like(1)))
    p = subprocess.run(
        [sys.executable, "-m", "reclaim.cli", "enroll", "--case", str(case), "--name", "Ana",
         str(photo)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "--consent" in p.stderr
    assert " ".join(consent_text("Ana").split()) in " ".join(p.stdout.split())
    assert not case.exists()


def test_consent_record_keeps_who_when_and_the_exact_text(
    tmp_path: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_detector(monkeypatch, [[_face(d)] for d in _person(1, 2)])
    before = datetime.now(UTC)
    with CaseStore.open(tmp_path / "case", create=True) as store:
        res = enroll(store, "Ana", photos[:2], consent=True, consented_by="Ana's guardian")
        (rec,) = store.enrollments()
    assert res.templates == 2 and rec["templates"] == 2
    assert rec["name"] == "Ana" and rec["consented_by"] == "Ana's guardian"
    assert rec["consent_text"] == consent_text("Ana", "Ana's guardian")
    assert "Ana's guardian" in rec["consent_text"] and "unenroll" in rec["consent_text"]
    when = datetime.fromisoformat(rec["consented_at"].replace("Z", "+00:00"))
    assert before.replace(microsecond=0) <= when <= datetime.now(UTC)


# -- reference photo checks -----------------------------------------------------------------------


def test_zero_face_reference_refused_by_the_real_detector(tmp_path: Path) -> None:
    with pytest.raises(EnrollmentRefused, match=r"p\.jpg: no face found"):
        reference_face(jpeg_bytes(photo_like(7, (200, 150))), "p.jpg")


@pytest.mark.parametrize(
    ("faces", "reason"),
    [
        ([], "no face found"),
        (
            [_face(np.zeros(DESCRIPTOR_DIM), 200), _face(np.ones(DESCRIPTOR_DIM), 120)],
            "2 faces found",
        ),
        ([_face(np.zeros(DESCRIPTOR_DIM), 60)], "too small (60 px"),
        ([_face(np.zeros(DESCRIPTOR_DIM), blur=4.0)], "too blurred (sharpness 4.0"),
        ([_face(np.zeros(DESCRIPTOR_DIM), pose=0.45)], "turned away (pose 0.45"),
    ],
)
def test_reference_refusals_say_why(
    monkeypatch: pytest.MonkeyPatch, faces: list[Face], reason: str
) -> None:
    fake_detector(monkeypatch, [faces])
    with pytest.raises(EnrollmentRefused, match=r"^me\.jpg: ") as e:
        reference_face(jpeg_bytes(photo_like(1, (160, 120))), "me.jpg")
    assert reason in str(e.value)


def test_a_tiny_background_face_does_not_make_a_photo_ambiguous(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    me = _face(np.zeros(DESCRIPTOR_DIM), 200)
    fake_detector(monkeypatch, [[me, _face(np.ones(DESCRIPTOR_DIM), 30)]])
    assert reference_face(jpeg_bytes(photo_like(1, (160, 120))), "me.jpg") is me


def test_not_a_photo_and_unreadable_files_are_refused(tmp_path: Path, photos: list[Path]) -> None:
    with pytest.raises(EnrollmentRefused, match="cannot be read"):
        reference_face(b"\xff\xd8\xff\xe0 truncated", "bad.jpg")
    with CaseStore.open(tmp_path / "case", create=True) as store:
        with pytest.raises(EnrollmentRefused, match=r"nope\.jpg: no such file"):
            enroll(store, "Ana", [tmp_path / "nope.jpg"], consent=True)
        assert store.enrollments() == []


def test_any_refused_photo_refuses_the_whole_enrollment(
    tmp_path: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _person(2, 2)
    fake_detector(monkeypatch, [[_face(good[0])], [], [_face(good[1])]])
    with CaseStore.open(tmp_path / "case", create=True) as store:
        with pytest.raises(EnrollmentRefused, match=r"ref1\.jpg: no face found"):
            enroll(store, "Ana", photos, consent=True)
        assert store.enrollments() == []


def test_photos_of_different_people_are_refused(
    tmp_path: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = _person(3, 2)
    other = _person(4, 1)
    assert np.linalg.norm(ana[0] - other[0]) > MAX_REFERENCE_SPREAD
    fake_detector(monkeypatch, [[_face(ana[0])], [_face(other[0])], [_face(ana[1])]])
    with CaseStore.open(tmp_path / "case", create=True) as store:
        with pytest.raises(EnrollmentRefused, match=r"ref1\.jpg: does not look like the same"):
            enroll(store, "Ana", photos, consent=True)
        assert store.enrollments() == []


def test_a_name_is_enrolled_once(
    tmp_path: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_detector(monkeypatch, [[_face(d)] for d in _person(5, 2)])
    with CaseStore.open(tmp_path / "case", create=True) as store:
        enroll(store, "Ana", photos[:1], consent=True)
        with pytest.raises(StoreError, match="already enrolled"):
            enroll(store, "Ana", photos[1:2], consent=True)
        with pytest.raises(InputError, match="name"):
            enroll(store, "  ", photos[:1], consent=True)


# -- templates only; unenroll deletes for good ----------------------------------------------------


def test_templates_are_stored_never_the_photos(
    tmp_path: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    descs = _person(6, 3)
    fake_detector(monkeypatch, [[_face(d)] for d in descs])
    case = tmp_path / "case"
    with CaseStore.open(case, create=True) as store:
        res = enroll(store, "Ana", photos, consent=True)
        stored = store.enrollment_templates(res.enrollment_id)
    assert stored == [descriptor_to_bytes(d) for d in descs]
    db = _db_bytes(case)
    for p in photos:
        data = p.read_bytes()
        # No photo bytes (a slice from the middle of each JPEG's image data), no file name.
        assert data[len(data) // 2 : len(data) // 2 + 48] not in db
        assert p.name.encode() not in db


def test_unenroll_deletes_templates_consent_and_findings_for_good(
    tmp_path: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ana, bea = _person(7, 2), _person(8, 1)
    fake_detector(monkeypatch, [[_face(ana[0])], [_face(ana[1])], [_face(bea[0])]])
    case = tmp_path / "case"
    with CaseStore.open(case, create=True) as store:
        enroll(store, "Ana Example", photos[:2], consent=True, consented_by="Ana Example")
        enroll(store, "Bea", photos[2:], consent=True)
        eid = store.enrollments()[0]["id"]
        store.conn.execute(
            "INSERT INTO items(sha256, md5, size, kind, format, first_seen_at, analyzed_at, "
            "analyzer) VALUES ('ab', 'cd', 1, 'photo', 'jpeg', 't', 't', 't')"
        )
        store.conn.execute(
            "INSERT INTO faces(item_sha256, left, top, right, bottom, size, detector, "
            "confidence, blur, pose, quality, descriptor) "
            "VALUES ('ab', 0, 0, 9, 9, 9, 'hog', 1, 1, 0, 1, zeroblob(1024))"
        )
        store.upsert_findings([(eid, "ab", 1, 0.2, 0.2, 0.2, 0.9, 1)])
        ana_bytes = [descriptor_to_bytes(d) for d in ana]
        text = store.enrollments()[0]["consent_text"].encode()
        # The check below can see templates: before unenroll they are in the files.
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db = _db_bytes(case)
        assert all(b in db for b in ana_bytes) and text in db
        unenroll(store, "Ana Example")
        assert [e["name"] for e in store.enrollments()] == ["Bea"]
        assert store.findings() == []
        for table in ("templates", "consents", "findings"):
            n = store.conn.execute(
                f"SELECT COUNT(*) FROM {table} WHERE enrollment_id=?", (eid,)
            ).fetchone()[0]
            assert n == 0
    db = _db_bytes(case)
    for b in ana_bytes:
        assert b not in db
        assert b[:64] not in db  # not even a fragment
    assert text not in db and b"Ana Example" not in db
    assert descriptor_to_bytes(bea[0]) in db  # the other enrollment is untouched
    wal = case / "case.sqlite-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_unenroll_unknown_name_lists_who_is_enrolled(
    tmp_path: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_detector(monkeypatch, [[_face(_person(9, 1)[0])]])
    with CaseStore.open(tmp_path / "case", create=True) as store:
        enroll(store, "Ana", photos[:1], consent=True)
        with pytest.raises(InputError, match=r"no enrollment named 'Bo'.*'Ana'"):
            unenroll(store, "Bo")


# -- real photos (../shared/data) -----------------------------------------------------------------


def _real(name: str, max_side: int = 700) -> Image.Image:
    p = shared_data("faces", "deepface-pairs", name)
    with Image.open(p) as im:
        im = im.convert("RGB")
        im.thumbnail((max_side, max_side))
        return im


def test_real_reference_photos_accepted_or_refused_with_reasons() -> None:
    good = _real("img1.jpg")
    f = reference_face(jpeg_bytes(good), "good.jpg")
    assert f.size >= E.MIN_FACE_PX
    # Two people side by side.
    other = _real("img20.jpg").resize(good.size)
    pair = Image.new("RGB", (good.width * 2, good.height))
    pair.paste(good, (0, 0))
    pair.paste(other, (good.width, 0))
    with pytest.raises(EnrollmentRefused, match=r"pair\.jpg: 2 faces found"):
        reference_face(jpeg_bytes(pair), "pair.jpg")
    blurred = good.filter(ImageFilter.GaussianBlur(f.size / 25))
    with pytest.raises(EnrollmentRefused, match="too blurred"):
        reference_face(jpeg_bytes(blurred), "blurred.jpg")
    tiny = good.resize((good.width * 60 // f.size, good.height * 60 // f.size))
    with pytest.raises(EnrollmentRefused, match="too small"):
        reference_face(jpeg_bytes(tiny), "tiny.jpg")


def test_oversized_reference_photo_refused_before_reading(tmp_path: Path) -> None:
    from reclaim.enroll import EnrollmentRefused, enroll
    from reclaim.media import MediaLimits
    from reclaim.store import CaseStore

    big = tmp_path / "huge.jpg"
    with open(big, "wb") as f:
        f.truncate(MediaLimits().max_bytes + 1)  # sparse: costs no disk
    with (
        CaseStore.open(tmp_path / "case", create=True) as store,
        pytest.raises(EnrollmentRefused, match="exceeds the"),
    ):
        enroll(store, "X", [big], consent=True)


# -- the evidence trail ---------------------------------------------------------------------------


def test_enroll_and_unenroll_write_their_custody_entries_whoever_calls(
    tmp_path: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from reclaim.report.custody import CustodyLog, verify_chain

    fake_detector(monkeypatch, [[_face(d)] for d in _person(11, 2)])
    case = tmp_path / "case"
    with CaseStore.open(case, create=True) as store:
        enroll(store, " Ana ", photos[:2], consent=True, actor="lea")
        assert not store.holds_lock()  # held for the write only
        unenroll(store, "Ana")
        with pytest.raises(InputError):
            unenroll(store, "Ana")  # nothing deleted, nothing logged
    log = CustodyLog(case).entries()
    assert verify_chain(log) == []
    assert [(e["action"], e["details"], e["actor"]) for e in log] == [
        ("enrollment", {"name": "Ana", "templates": 2}, "lea"),
        ("deletion", {"enrollment": "Ana"}, log[1]["actor"]),
    ]


def test_a_deletion_is_logged_even_when_old_copies_remain_in_the_wal(
    tmp_path: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from reclaim.report.custody import CustodyLog

    fake_detector(monkeypatch, [[_face(_person(12, 1)[0])]])
    case = tmp_path / "case"
    with CaseStore.open(case, create=True) as store:
        enroll(store, "Ana", photos[:1], consent=True)
        reader = sqlite3.connect(case / "case.sqlite")  # another program, mid-read
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM enrollments").fetchone()
        try:
            with pytest.raises(StoreError, match="the deletion is done"):
                unenroll(store, "Ana")
        finally:
            reader.close()
        assert store.enrollments() == []
    assert [e["action"] for e in CustodyLog(case).entries()] == ["enrollment", "deletion"]
