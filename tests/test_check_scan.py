"""The manipulation check inside ``reclaim scan``: stored per item, carried by findings, shown
in the evidence pack; levels ``off`` / ``metadata`` (default without face search)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reclaim.errors import InputError
from reclaim.scan import scan
from reclaim.sources import open_source
from reclaim.store import CaseStore

from .conftest import jpeg_bytes, photo_like
from .test_provenance import exif_jpeg


@pytest.fixture
def tagged_dir(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    (d / "faceapp.jpg").write_bytes(exif_jpeg({0x0131: "FaceApp"}))
    (d / "plain.jpg").write_bytes(jpeg_bytes(photo_like(3)))
    (d / "notes.txt").write_bytes(b"not an image")
    return d


def _sha(store: CaseStore, name: str) -> str:
    for sha, loc in store.conn.execute("SELECT item_sha256, locator FROM sightings"):
        if json.loads(loc)["path"].endswith(name):
            return str(sha)
    raise AssertionError(name)


def _item_check(store: CaseStore, sha256: str) -> dict[str, Any] | None:
    """The item's stored check as JSON (the ``checks.record`` column, read back)."""
    rec = store.item_check(sha256)
    return None if rec is None else rec.to_json()


def test_scan_checks_metadata_of_every_item_by_default(tmp_path: Path, tagged_dir: Path) -> None:
    with CaseStore.open(tmp_path / "case", create=True) as store:
        scan(store, [open_source(str(tagged_dir))], workers=0)
        edited = _item_check(store, _sha(store, "faceapp.jpg"))
        plain = _item_check(store, _sha(store, "plain.jpg"))
        assert edited is not None and plain is not None
        assert edited["verdict"] == "edited" and edited["level"] == "metadata"
        assert edited["signals"][0]["evidence"]["fr"]  # sentences in both languages
        assert plain["verdict"] == "no provenance evidence" and plain["score"] == 0.0
        assert _item_check(store, _sha(store, "notes.txt")) is None  # not a photo: not checked
        summary = store.checks_summary()
        assert len(summary) == 2
        assert summary[_sha(store, "faceapp.jpg")]["verdict"] == "edited"
        # the metadata level is met; a fuller level is still to do
        assert store.items_to_check("metadata") == []
        assert len(store.items_to_check("full")) == 2


def test_scan_check_off_and_bad_level(tmp_path: Path, tagged_dir: Path) -> None:
    with CaseStore.open(tmp_path / "case", create=True) as store:
        scan(store, [open_source(str(tagged_dir))], workers=0, check="off")
        assert store.checks_summary() == {}
        with pytest.raises(InputError, match="unknown check level"):
            scan(store, [open_source(str(tagged_dir))], workers=0, check="maybe")


def test_check_survives_in_the_pack_manifest(tmp_path: Path, tagged_dir: Path) -> None:
    import zipfile

    from reclaim.report.notices import Notifier
    from reclaim.report.pack import PackOptions, build_pack

    with CaseStore.open(tmp_path / "case", create=True) as store:
        scan(store, [open_source(str(tagged_dir))], workers=0)
        sha = _sha(store, "faceapp.jpg")
        res = build_pack(
            store,
            [sha],
            tmp_path / "pack.zip",
            PackOptions(Notifier("Test Person", "t@example.org"), lang="fr", pdf=False),
        )
    with zipfile.ZipFile(res.path) as z:
        man = json.loads(z.read("manifest.json"))
        report = z.read("report.html").decode()
    chk = man["items"][0]["manipulation_check"]
    assert chk["verdict"] == "edited" and chk["signals"][0]["name"]
    assert "RETOUCHÉE" in report and "FaceApp" in report


def test_item_page_says_which_signals_the_verdict_does_not_read(
    tmp_path: Path, tagged_dir: Path
) -> None:
    from fastapi.testclient import TestClient

    from reclaim.detectors.fusion import load_model
    from reclaim.web.app import create_app

    m = load_model()
    if m is None or "synthetic_image" in m.calibration:
        pytest.skip("the fitted fusion reads synthetic_image: nothing to mark on this photo")
    with CaseStore.open(tmp_path / "case", create=True) as store:
        scan(store, [open_source(str(tagged_dir))], workers=0, check="full")
        sha = _sha(store, "plain.jpg")
        rec = _item_check(store, sha)
    assert rec is not None
    syn = [s for s in rec["signals"] if s["name"] == "synthetic_image"]
    assert syn and syn[0]["in_verdict"] is False
    client = TestClient(create_app(tmp_path / "case", workers=0), base_url="http://127.0.0.1:8765")
    client.cookies.set("lang", "en")
    en = client.get(f"/item/{sha}").text
    assert "synthetic_image" in en and "not used in the verdict: too weak in our tests" in en
    client.cookies.set("lang", "fr")
    fr = client.get(f"/item/{sha}").text
    assert "non utilisé pour le verdict : trop faible dans nos tests" in fr


def test_face_backfill_refuses_an_unknown_check_level(tmp_path: Path, tagged_dir: Path) -> None:
    from reclaim.scan import find_faces_in_case

    with CaseStore.open(tmp_path / "case", create=True) as store:
        scan(store, [open_source(str(tagged_dir))], workers=0)
        with pytest.raises(InputError, match="use faces or off"):
            find_faces_in_case(store, workers=0, check="full")
        # nothing was started: no run recorded for the refused backfill
        runs = [r[0] for r in store.conn.execute("SELECT command FROM runs")]
        assert "faces" not in runs


def test_face_backfill_keeps_fuller_checks(tmp_path: Path, tagged_dir: Path) -> None:
    from reclaim.scan import find_faces_in_case

    with CaseStore.open(tmp_path / "case", create=True) as store:
        scan(store, [open_source(str(tagged_dir))], workers=0, check="full")
        before = store.checks_summary()
        assert {c["level"] for c in before.values()} == {"full"}
        stats = find_faces_in_case(store, workers=0)
        assert stats.checked == 0
        assert store.checks_summary() == before  # nothing redone or downgraded
