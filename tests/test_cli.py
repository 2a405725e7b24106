"""The command line end to end: outputs, provenance kept in the case, one-line errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reclaim.cli import app
from reclaim.hashes import PdqHash
from reclaim.sources.base import Locator
from reclaim.store import CaseStore
from reclaim_fixtures.telegram import write_telegram_export

from .conftest import jpeg_bytes, photo_like

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    """Run the real CLI in a subprocess (as a user would) → (exit code, stdout, stderr)."""
    p = subprocess.run(
        [sys.executable, "-m", "reclaim.cli", *args], capture_output=True, text=True, timeout=120
    )
    return p.returncode, p.stdout, p.stderr


def test_hash_json_lines(tmp_path: Path) -> None:
    a = tmp_path / "a.jpg"
    b = tmp_path / "b.png"
    photo_like(1).save(a, quality=90)
    photo_like(1).save(b)
    code, out, err = run("hash", str(a), str(b), "--json")
    assert code == 0, err
    recs = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in recs] == [str(a), str(b)]
    for r in recs:
        assert {"path", "sha256", "md5", "pdq", "pdq_quality"} <= set(r)
        assert len(r["sha256"]) == 64 and len(r["md5"]) == 32 and len(r["pdq"]) == 64
    # Same picture, two encodings: different bytes, near-identical PDQ.
    assert recs[0]["sha256"] != recs[1]["sha256"]
    assert PdqHash.from_hex(recs[0]["pdq"]) - PdqHash.from_hex(recs[1]["pdq"]) <= 10


@pytest.mark.parametrize(
    ("make", "expect"),
    [
        (lambda d: d / "missing.jpg", "no such file"),
        (lambda d: d, "is a folder"),
        (lambda d: _write(d / "bad.jpg", b"\xff\xd8\xff\xe0 truncated"), "corrupt"),
        (lambda d: _write(d / "notes.txt", b"hello"), "not an image"),
    ],
)
def test_hash_bad_input_one_line_no_traceback(tmp_path: Path, make: object, expect: str) -> None:
    target = make(tmp_path)  # type: ignore[operator]
    code, out, err = run("hash", str(target), "--json")
    assert code != 0
    assert out == ""
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and expect in lines[0].lower(), err


def _write(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


def test_bad_sources_and_cases_are_one_line_errors(tmp_path: Path) -> None:
    f = tmp_path / "file.txt"
    f.write_text("x")
    for args, expect in [
        (("scan", str(tmp_path / "nope"), "--case", str(tmp_path / "c")), "no such file"),
        (("status", "--case", str(tmp_path / "nocase")), "not a reclaim case"),
        (("scan", str(tmp_path), "--case", str(f)), "is a file"),
    ]:
        code, _, err = run(*args)
        assert code == 2, (args, err)
        assert "Traceback" not in err and expect in err, (args, err)


def test_single_files_are_sources_too(tmp_path: Path) -> None:
    img = tmp_path / "one.jpg"
    img.write_bytes(jpeg_bytes(photo_like(8)))
    case = tmp_path / "case"
    code, _, err = run("scan", str(img), "--case", str(case))
    assert code == 0, err
    with CaseStore.open(case) as store:
        assert store.counts()["photos"] == 1
        assert store.conn.execute("SELECT kind FROM sightings").fetchone()[0] == "file"


def test_protect_writes_hashes_only(tmp_path: Path) -> None:
    private = tmp_path / "my private photo.jpg"
    private.write_bytes(jpeg_bytes(photo_like(3)))
    out = tmp_path / "hashes.csv"
    code, stdout, err = run("protect", str(private), "--out", str(out))
    assert code == 0, err
    text = out.read_text()
    assert "private" not in text and str(tmp_path) not in text  # no names, no paths
    rows = list(csv.DictReader(text.splitlines()))
    assert {r["signal_type"] for r in rows} == {"pdq", "md5"}
    code, hashed, _ = run("hash", str(private), "--json")
    rec = json.loads(hashed)
    by_type = {r["signal_type"]: r for r in rows}
    assert by_type["pdq"]["signal"] == rec["pdq"]
    assert by_type["md5"]["signal"] == rec["md5"]
    assert "numbers only" in stdout


def test_scan_mixed_sources_keeps_provenance(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    shared_bytes = jpeg_bytes(photo_like(42))
    (folder / "a.jpg").write_bytes(shared_bytes)
    archive = tmp_path / "album.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("x/a_again.jpg", shared_bytes)
        z.writestr("../evil.jpg", shared_bytes)
    export = write_telegram_export(tmp_path / "tg", layout="chat", chat=0)
    case = tmp_path / "case"
    code, out, err = run("scan", str(folder), str(archive), str(export.root), "--case", str(case))
    assert code == 0, err
    with CaseStore.open(case) as store:
        sha = store.conn.execute(
            "SELECT sha256 FROM items WHERE size=?", (len(shared_bytes),)
        ).fetchone()[0]
        places = store.sightings_of(sha)
        kinds = sorted(p.kind for p in places)
        tg = [
            Locator.from_json(r[0])
            for r in store.conn.execute("SELECT locator FROM sightings WHERE kind='telegram'")
        ]
        errors = dict(store.errors())
    assert kinds == ["archive", "file"]
    assert {p.member for p in places if p.kind == "archive"} == {"x/a_again.jpg"}
    assert any("climbs out" in why or "traversal" in why for why in errors.values())
    ok = [e for e in export.expected if e.status == "ok"]
    assert ok, "fixture has no plain photo"
    first = ok[0]
    match = [loc for loc in tg if loc.meta.get("message_id") == first.message_id]
    assert match, "telegram message lost"
    m = match[0].meta
    assert m["chat_name"] == first.chat_name and m["chat_type"] == first.chat_type
    assert m["date"] == first.date and m["sender"] == first.sender
    forwarded = [e for e in export.expected if e.forwarded_from]
    for e in forwarded:
        assert any(loc.meta.get("forwarded_from") == e.forwarded_from for loc in tg)
    missing = [e for e in export.expected if e.status == "missing"]
    assert missing and any("not included" in why for why in errors.values())
    # Status reports the same, as one JSON document.
    code, out, _ = run("status", "--case", str(case), "--json")
    st = json.loads(out)
    assert st["counts"]["missing_or_refused"] >= len(missing) + 1
    assert st["runs"][-1]["status"] == "done"


class _Images(BaseHTTPRequestHandler):
    body = jpeg_bytes(photo_like(7))

    def do_GET(self) -> None:
        if self.path == "/img.jpg":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)
        else:
            self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_fetch_keeps_downloads_as_evidence(tmp_path: Path, http_server: str) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{http_server}/img.jpg\n{http_server}/gone.jpg\n")
    case = tmp_path / "case"
    # `scan` refuses URL lists: only `fetch` touches the network.
    code, _, err = run("scan", str(urls), "--case", str(case))
    assert code == 2 and "reclaim fetch" in err
    code, _, err = run("fetch", str(urls), "--case", str(case))
    assert code == 0, err
    with CaseStore.open(case) as store:
        row = store.conn.execute("SELECT sha256, blob FROM items").fetchone()
        kept = (case / row[1]).read_bytes()
        errs = store.errors()
        loc = store.sightings_of(row[0])[0]
    assert kept == _Images.body
    assert loc.kind == "url" and loc.meta["status"] == 200 and loc.meta["fetched_at"]
    assert any("404" in why for _, why in errs)


def test_cli_runner_help_lists_commands() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("scan", "status", "hash", "protect", "fetch", "demo"):
        assert cmd in res.output


def test_decide_names_items_by_sha256_or_its_prefix(tmp_path: Path) -> None:
    from reclaim.report.custody import CustodyLog

    d = tmp_path / "d"
    d.mkdir()
    for i in range(2):
        (d / f"{i}.jpg").write_bytes(jpeg_bytes(photo_like(40 + i)))
    case = tmp_path / "case"
    assert runner.invoke(app, ["scan", str(d), "--case", str(case), "-j", "0"]).exit_code == 0
    with CaseStore.open(case) as store:
        a, b = sorted(r[0] for r in store.conn.execute("SELECT sha256 FROM items"))
    res = runner.invoke(app, ["decide", a, "confirmed", "--case", str(case), "--note", " moi "])
    assert res.exit_code == 0 and "confirmed" in res.output, res.output
    res = runner.invoke(app, ["decide", b[:10].upper(), "not_me", "--case", str(case)])
    assert res.exit_code == 0, res.output
    details = [e["details"] for e in CustodyLog(case).entries() if e["action"] == "decision"]
    assert [(x["item"], x["decision"], x["note"]) for x in details] == [
        (a, "confirmed", "moi"),
        (b, "not_me", ""),
    ]
    # Wrong input: one line, exit 2, nothing recorded.
    for args, why in (
        ([a, "maybe"], "decision must be one of confirmed, not_me, unsure"),
        (["0" * 12, "unsure"], "is not in this case"),
        ([a[:5], "unsure"], "at least its first 8 characters"),
    ):
        code, _out, err = run("decide", *args, "--case", str(case))
        assert code == 2 and why in err and len(err.strip().splitlines()) == 1, err
    assert len([e for e in CustodyLog(case).entries() if e["action"] == "decision"]) == 2
    # The decision is checked against DecisionKind before the case is even opened.
    code, _out, err = run("decide", a, "Confirmed", "--case", str(tmp_path / "nowhere"))
    assert code == 2 and "decision must be one of confirmed, not_me, unsure" in err, err
