"""One journey, two front ends, one evidence trail.

A person enrolls her face with consent, scans a folder, marks one finding "it's me" and another
"not me", withdraws her enrollment and exports an evidence pack; once through the command line
(typer's CliRunner, in this process) and once through the web app (FastAPI's TestClient of
``create_app``, with the Host it accepts). Both custody logs must hold the same entries, in the
same order, with the same details: the trail is written by the domain operations, never by a
front end.

Faces are stand-ins (``find_faces`` replaced, as in test_enroll.py) so the journey needs no
shared data and is the same on both sides: reference photos and scanned photos are told apart
by their width, and each gets a fixed descriptor.

Also here: how a write meets a running scan. The scan holds the case lock for its whole run;
enrolling or unenrolling then is refused with a message that names the scan (CLI and web alike),
while a decision is recorded at once (it touches nothing a scan writes).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from reclaim import enroll as E
from reclaim.cli import app as cli
from reclaim.faces import pipeline
from reclaim.faces.pipeline import DESCRIPTOR_DIM, Face
from reclaim.findings import list_findings
from reclaim.report.custody import CustodyLog, default_actor, verify_chain
from reclaim.store import CaseStore
from reclaim.web.app import create_app

from .conftest import jpeg_bytes, photo_like

NAME = "Ana"
REF_WIDTHS = (301, 302, 303)  # her reference photos
HER_WIDTH = 330  # a scanned photo of her
STRANGER_WIDTH = 350  # a scanned photo of someone else
NOTIFIER = {"name": "Ana B.", "email": "ana@example.org"}

_rng = np.random.default_rng(19)
_CENTRE = _rng.normal(0, 0.06, DESCRIPTOR_DIM)
_STRANGER = _rng.normal(0, 0.06, DESCRIPTOR_DIM)


def _near(centre: np.ndarray, d: float, seed: int) -> np.ndarray:
    u = np.random.default_rng(seed).normal(size=DESCRIPTOR_DIM)
    return (centre + d * u / np.linalg.norm(u)).astype(np.float32)


def _face(desc: np.ndarray, size: int = 120) -> Face:
    return Face(
        box=(20, 20, 20 + size, 20 + size), detector="hog", confidence=1.5, size=size,
        blur=150.0, pose=0.05, descriptor=desc,
    )  # fmt: skip


def fake_find_faces(rgb: np.ndarray, options: object = None, **kw: Any) -> list[Face]:
    w = rgb.shape[1]
    if w in REF_WIDTHS:
        return [_face(_near(_CENTRE, 0.15, w))]
    if w == HER_WIDTH:
        return [_face(_near(_CENTRE, 0.1, int(rgb[0, 0, 0]) + 1000), size=100)]
    if w == STRANGER_WIDTH:
        return [_face(_STRANGER, size=100)]
    return []


@pytest.fixture(autouse=True)
def stand_in_faces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(E, "find_faces", fake_find_faces)  # reference photos
    monkeypatch.setattr(pipeline, "find_faces", fake_find_faces)  # scans (media_faces)


@pytest.fixture
def material(tmp_path: Path) -> tuple[list[Path], Path]:
    """Three reference photos, and a folder: two photos of her, one of a stranger, one with no
    face. Both front ends use these same files, so item hashes and sources are the same."""
    refs = []
    for i, w in enumerate(REF_WIDTHS):
        p = tmp_path / f"ref{i}.jpg"
        p.write_bytes(jpeg_bytes(photo_like(200 + i, (w, 360))))
        refs.append(p)
    folder = tmp_path / "found"
    folder.mkdir()
    for i, (w, name) in enumerate(
        [(HER_WIDTH, "her-1"), (HER_WIDTH, "her-2"), (STRANGER_WIDTH, "other"), (640, "view")]
    ):
        (folder / f"{name}.jpg").write_bytes(jpeg_bytes(photo_like(300 + i, (w, 400))))
    return refs, folder


def _her_findings(case: Path) -> list[str]:
    """Items where she was found, in a fixed order (her-1, her-2), read from the case."""
    with CaseStore.open(case) as s:
        found = list_findings(s, NAME)
    by_file = {Path(f.locator.path).name: f.item_sha256 for f in found if f.locator}
    assert sorted(by_file) == ["her-1.jpg", "her-2.jpg"], by_file
    return [by_file["her-1.jpg"], by_file["her-2.jpg"]]


# -- the two journeys ---------------------------------------------------------------------------


def cli_journey(case: Path, refs: list[Path], folder: Path, tmp_path: Path) -> None:
    runner = CliRunner()

    def run(*args: str) -> str:
        r = runner.invoke(cli, list(args))
        assert r.exit_code == 0, (args, r.output)
        return r.output

    run("enroll", *map(str, refs), "--case", str(case), "--name", NAME, "--consent")
    run("scan", str(folder), "--case", str(case), "--workers", "0")
    mine, not_mine = _her_findings(case)
    run("decide", mine, "confirmed", "--case", str(case), "--note", "c'est moi")
    run("decide", not_mine, "not_me", "--case", str(case))
    run("unenroll", "--case", str(case), "--name", NAME)
    run(
        "pack", "--case", str(case), "--out", str(tmp_path / "cli-pack.zip"),
        "--name", NOTIFIER["name"], "--email", NOTIFIER["email"],
    )  # fmt: skip


def _wait_for_scan(client: TestClient) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        part = client.get("/jobs/current", headers={"accept-language": "en"}).text
        if "Scan finished" in part:
            return
        time.sleep(0.05)
    raise AssertionError(f"the scan did not finish: {part}")


def web_journey(case: Path, refs: list[Path], folder: Path) -> None:
    client = TestClient(create_app(case, workers=0), base_url="http://127.0.0.1:8765")
    origin = {"origin": "http://127.0.0.1:8765"}  # a same-site form post, as a browser sends it
    files = [("photos", (p.name, p.read_bytes(), "image/jpeg")) for p in refs]
    r = client.post("/enroll", data={"name": NAME, "consent": "1"}, files=files, headers=origin)
    assert r.status_code == 200, r.text
    r = client.post("/sources", data={"path": str(folder)}, headers=origin)
    assert r.status_code == 200, r.text
    _wait_for_scan(client)
    mine, not_mine = _her_findings(case)
    for sha, decision, note in ((mine, "confirmed", "c'est moi"), (not_mine, "not_me", "")):
        r = client.post(
            f"/item/{sha}/decision", data={"decision": decision, "note": note}, headers=origin,
            follow_redirects=False,
        )  # fmt: skip
        assert r.status_code == 303, r.text
    r = client.post(f"/enroll/{NAME}/delete", headers=origin, follow_redirects=False)
    assert r.status_code == 303, r.text
    r = client.post("/export", data={**NOTIFIER, "lang": "fr"}, headers=origin)
    assert r.status_code == 200 and "/exports/evidence-" in r.text, r.text


# -- comparing the trails -------------------------------------------------------------------------

#: Per action, the detail fields that differ between two correct runs, and why:
#:   acquisition.command   names the front end that ran the scan ("scan" or "web"): kept as is
#:                         would say which door was used, not what happened;
#:   acquisition.seconds   a duration;
#:   export.pack           the file name (chosen by the person on the CLI, time-stamped by the
#:                         web app);
#:   export.manifest_sha256, export.files (values)
#:                         hashes of files that hold a creation time and the case's own key;
#:                         the file NAMES are compared;
#:   export.seal_key       each case has its own signing key: must be a fingerprint.
#: Entry fields ``at``, ``hash`` and ``prev`` are times and hashes of the above; ``seq``,
#: ``actor``, ``action``, ``tool`` and every other detail are compared as they are.
_VARIES = {"acquisition": {"command", "seconds"}, "export": {"pack", "manifest_sha256", "seal_key"}}


def normalised(entry: dict[str, Any]) -> dict[str, Any]:
    details = dict(entry["details"])
    for k in _VARIES.get(entry["action"], set()):
        assert k in details, (entry["action"], k)
        details[k] = "<varies>"
    if entry["action"] == "export":
        assert re.fullmatch(r"SHA256:[0-9a-f]{64}", entry["details"]["seal_key"])
        details["files"] = sorted(details["files"])
    kept = {k: v for k, v in entry.items() if k not in ("at", "hash", "prev", "details")}
    return kept | {"details": details}


def test_cli_and_web_write_the_same_custody_log(
    tmp_path: Path, material: tuple[list[Path], Path]
) -> None:
    refs, folder = material
    cli_case, web_case = tmp_path / "cli-case", tmp_path / "web-case"
    cli_journey(cli_case, refs, folder, tmp_path)
    web_journey(web_case, refs, folder)

    cli_log, web_log = CustodyLog(cli_case).entries(), CustodyLog(web_case).entries()
    assert verify_chain(cli_log) == [] and verify_chain(web_log) == []
    actions = [e["action"] for e in cli_log]
    assert actions == [
        "enrollment", "acquisition", "analysis", "decision", "decision", "deletion", "export"
    ], actions  # fmt: skip
    assert [e["action"] for e in web_log] == actions
    for n, (c, w) in enumerate(zip(cli_log, web_log, strict=True), 1):
        assert normalised(c) == normalised(w), f"entry {n} ({c['action']}) differs"
    # What the entries say, once (the comparison above makes it hold for both).
    by = {e["action"]: e for e in cli_log}
    assert by["enrollment"]["details"] == {"name": NAME, "templates": 3}
    assert by["deletion"]["details"] == {"enrollment": NAME}
    assert by["acquisition"]["details"]["findings"] == 2
    assert by["acquisition"]["details"]["command"] == "scan"
    assert web_log[1]["details"]["command"] == "web"
    assert all(e["actor"] == default_actor() for e in cli_log)
    mine = cli_log[3]["details"]["item"]
    assert by["export"]["details"]["items"] == [mine]


# -- a write while a scan runs -------------------------------------------------------------------


@pytest.fixture
def scanning(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A case with one item, and a scan 'running' in it: a run row and the case lock held (as
    ``scan`` holds it for its whole run), here by this process, as the web app's scan thread
    holds it."""
    case = tmp_path / "case"
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.jpg").write_bytes(jpeg_bytes(photo_like(7)))
    r = CliRunner().invoke(cli, ["scan", str(d), "--case", str(case), "--workers", "0"])
    assert r.exit_code == 0, r.output
    with CaseStore.open(case) as s:
        sha = s.conn.execute("SELECT sha256 FROM items").fetchone()[0]
    holder = CaseStore.open(case)
    holder.acquire_lock()
    run_id = holder.start_run("web", [str(d)])
    try:
        yield case, sha
    finally:
        holder.finish_run(run_id, "done", {})
        holder.close()


def test_enroll_and_unenroll_during_a_scan_say_a_scan_is_running(
    scanning: tuple[Path, str], material: tuple[list[Path], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    case, _ = scanning
    refs, _folder = material
    monkeypatch.setattr("reclaim.enroll.LOCK_WAIT_S", 0.3)
    before = CustodyLog(case).entries()
    r = CliRunner().invoke(
        cli, ["enroll", *map(str, refs), "--case", str(case), "--name", NAME, "--consent"]
    )
    assert r.exit_code == 2 and "a scan is running in this case" in r.output, r.output
    client = TestClient(create_app(case, workers=0), base_url="http://127.0.0.1:8765")
    files = [("photos", (p.name, p.read_bytes(), "image/jpeg")) for p in refs]
    r = client.post("/enroll", data={"name": NAME, "consent": "1"}, files=files)
    assert r.status_code == 409 and "a scan is running in this case" in r.text, r.text
    r = client.post(f"/enroll/{NAME}/delete", follow_redirects=False)
    assert r.status_code == 409 and "a scan is running in this case" in r.text, r.text
    with CaseStore.open(case) as s:
        assert s.enrollments() == []
    assert CustodyLog(case).entries() == before  # nothing happened, nothing logged


def test_a_decision_during_a_scan_is_recorded_at_once(scanning: tuple[Path, str]) -> None:
    case, sha = scanning
    client = TestClient(create_app(case, workers=0), base_url="http://127.0.0.1:8765")
    t0 = time.monotonic()
    r = client.post(
        f"/item/{sha}/decision", data={"decision": "not_me", "note": ""}, follow_redirects=False
    )
    assert r.status_code == 303 and time.monotonic() - t0 < 5
    r = CliRunner().invoke(cli, ["decide", sha, "confirmed", "--case", str(case)])
    assert r.exit_code == 0, r.output
    decisions = [e["details"]["decision"] for e in CustodyLog(case).entries()[-2:]]
    assert decisions == ["not_me", "confirmed"]
