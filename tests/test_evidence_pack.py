"""Evidence packs: built from a case, verified, and every kind of tampering named."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from reclaim.report.custody import CustodyLog, verify_chain
from reclaim.report.notices import Notifier
from reclaim.report.pack import PackOptions, build_pack
from reclaim.report.verify import verify_pack
from reclaim.scan import scan
from reclaim.sources import open_source
from reclaim.store import CaseStore

from .conftest import jpeg_bytes, photo_like

ME = Notifier("Léa Martin", "lea@example.org")


@pytest.fixture
def case_with_items(tmp_path: Path) -> tuple[Path, list[str]]:
    d = tmp_path / "found"
    d.mkdir()
    for i in range(3):
        (d / f"img{i}.jpg").write_bytes(jpeg_bytes(photo_like(10 + i)))
    case = tmp_path / "case"
    with CaseStore.open(case, create=True) as store:
        scan(store, [open_source(str(d))], workers=0)
        shas = [r[0] for r in store.conn.execute("SELECT sha256 FROM items ORDER BY sha256")]
    return case, shas


def _pack(case: Path, shas: list[str], out: Path, **kw: object) -> None:
    with CaseStore.open(case) as store:
        build_pack(store, shas, out, PackOptions(notifier=ME, pdf=False, **kw))  # type: ignore[arg-type]


def _rewrite(src: Path, dst: Path, name: str, change: object) -> None:
    """Copy a ZIP, passing member ``name`` through ``change(bytes) -> bytes``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == name:
                data = change(data)  # type: ignore[operator]
            zout.writestr(info.filename, data)


def test_pack_contents_and_verification(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    _pack(case, shas, out)
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("manifest.json"))
        for it in manifest["items"]:
            import hashlib

            assert hashlib.sha256(z.read(it["file"])).hexdigest() == it["sha256"]
            assert it["seen_at"] and it["acquired_at"] and it["md5"] and it["pdq"]
        html = z.read("report.html").decode()
        pharos = z.read("pharos.txt").decode()
    assert {"manifest.json", "custody.jsonl", "SEAL.json", "report.html", "pharos.txt"} <= names
    assert len([n for n in names if n.startswith("originals/")]) == 3
    assert "aperçu flouté" in html and "226-8-1" in pharos
    check = verify_pack(out)
    assert check.ok, check.problems
    assert check.items == 3 and check.files_checked >= 5


def test_one_byte_of_an_original_is_named(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    _pack(case, shas, out)
    bad = tmp_path / "bad.zip"
    target = f"originals/{shas[1]}.jpg"
    _rewrite(out, bad, target, lambda b: b[:500] + bytes([b[500] ^ 1]) + b[501:])
    check = verify_pack(bad)
    assert not check.ok
    assert any(target in p and "altered" in p and shas[1][:16] in p for p in check.problems)
    assert not any(f"originals/{shas[0]}" in p for p in check.problems)


def test_manifest_change_is_named(case_with_items: tuple[Path, list[str]], tmp_path: Path) -> None:
    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    _pack(case, shas, out)
    bad = tmp_path / "bad.zip"
    _rewrite(out, bad, "manifest.json", lambda b: b.replace(b'"size": ', b'"size": 1', 1))
    problems = verify_pack(bad).problems
    assert any(p.startswith("manifest.json: altered") for p in problems)


def test_custody_entry_change_is_named(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    case, shas = case_with_items
    log = CustodyLog(case)
    log.append("decision", {"item": shas[0], "decision": "confirmed"}, actor="lea")
    out = tmp_path / "pack.zip"
    _pack(case, shas, out)

    def edit(b: bytes) -> bytes:
        lines = b.decode().splitlines()
        k = next(i for i, ln in enumerate(lines) if json.loads(ln)["action"] == "decision")
        e = json.loads(lines[k])
        e["details"]["decision"] = "not_me"  # rewrite history
        lines[k] = json.dumps(e, sort_keys=True, ensure_ascii=False)
        return ("\n".join(lines) + "\n").encode()

    bad = tmp_path / "bad.zip"
    _rewrite(out, bad, "custody.jsonl", edit)
    problems = verify_pack(bad).problems
    seq = next(e["seq"] for e in log.entries() if e["action"] == "decision")
    assert any(f"entry {seq} (decision): content altered" in p for p in problems)


def test_added_file_and_truncated_log_are_named(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    _pack(case, shas, out)
    with zipfile.ZipFile(out, "a") as z:
        z.writestr("originals/extra.jpg", b"x")
    assert any("extra.jpg: added after export" in p for p in verify_pack(out).problems)
    bad = tmp_path / "bad.zip"
    _rewrite(out, bad, "custody.jsonl", lambda b: b"\n".join(b.splitlines()[:-1]) + b"\n")
    assert any("not the sealed one" in p for p in verify_pack(bad).problems)


def test_custody_chain_detects_reorder_and_delete(tmp_path: Path) -> None:
    log = CustodyLog(tmp_path)
    for i in range(4):
        log.append("analysis", {"n": i})
    es = log.entries()
    assert verify_chain(es) == []
    assert verify_chain([es[0], es[2], es[3]])  # deleted entry 2
    assert verify_chain([es[1], es[0], es[2], es[3]])  # reordered


def test_vanished_original_is_reported_not_fatal(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    case, shas = case_with_items
    for p in (tmp_path / "found").iterdir():
        if p.name == "img0.jpg":
            p.unlink()
    out = tmp_path / "pack.zip"
    with CaseStore.open(case) as store:
        res = build_pack(store, shas, out, PackOptions(notifier=ME, pdf=False))
    assert len(res.unreadable) == 1 and res.items == 2
    manifest = json.loads(zipfile.ZipFile(out).read("manifest.json"))
    gone = [it for it in manifest["items"] if it["unreadable"]]
    assert len(gone) == 1 and "vanished" in gone[0]["unreadable"]
    assert verify_pack(out).ok


def test_pdf_report(case_with_items: tuple[Path, list[str]], tmp_path: Path) -> None:
    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    with CaseStore.open(case) as store:
        build_pack(store, shas[:1], out, PackOptions(notifier=ME, pdf=True, lang="en"))
    pdf = zipfile.ZipFile(out).read("report.pdf")
    assert pdf.startswith(b"%PDF") and len(pdf) > 2000
    assert verify_pack(out).ok


def test_not_a_pack(tmp_path: Path) -> None:
    from reclaim.errors import InputError

    p = tmp_path / "x.zip"
    p.write_bytes(b"nope")
    with pytest.raises(InputError):
        verify_pack(p)


def test_custody_append_reads_only_the_last_line() -> None:
    import io

    from reclaim.report.custody import _last_line

    for block in (1, 3, 7, 8192):
        assert _last_line(io.BytesIO(b""), block) is None
        assert _last_line(io.BytesIO(b"\n\n"), block) is None
        assert _last_line(io.BytesIO(b'{"seq": 1}'), block) == b'{"seq": 1}'
        log = b'{"seq": 1}\n{"seq": 22}\n{"seq": 333}\n\n'
        assert _last_line(io.BytesIO(log), block) == b'{"seq": 333}'


def test_custody_chain_stays_whole_over_many_appends(tmp_path: Path) -> None:
    log = CustodyLog(tmp_path)
    for i in range(300):
        log.append("decision", {"i": i, "note": "x" * (i % 50)})
    entries = log.entries()
    assert [e["seq"] for e in entries] == list(range(1, 301))
    assert verify_chain(entries) == []
