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


# --- What two ZIP readers could see differently (issue 18, item 6) --------------------------


def _copy_zip(src: Path, dst: Path, first: list[tuple[str, bytes]] | None = None) -> None:
    """Copy every member of ``src`` to ``dst``, after ``first`` (name, bytes) members."""
    import warnings

    with (
        zipfile.ZipFile(src) as zin,
        zipfile.ZipFile(dst, "w") as zout,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # "Duplicate name": that is the point
        for name, data in first or []:
            zout.writestr(name, data)
        for info in zin.infolist():
            zout.writestr(info, zin.read(info.filename))


def test_duplicate_member_name_is_refused(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    # unzip extracts the first of two same-named members, Python's zipfile reads the last:
    # the tampered copy first, the genuine one after, so a check that reads the last passes.
    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    _pack(case, shas, out)
    bad = tmp_path / "bad.zip"
    target = f"originals/{shas[0]}.jpg"
    _copy_zip(out, bad, first=[(target, b"tampered")])
    check = verify_pack(bad)
    assert not check.ok
    assert any(target in p and "twice" in p for p in check.problems), check.problems


def test_directory_entry_not_in_the_manifest_is_refused(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    _pack(case, shas, out)
    with zipfile.ZipFile(out, "a") as z:
        z.writestr(zipfile.ZipInfo("hidden/"), b"")
    problems = verify_pack(out).problems
    assert any(p.startswith("hidden/: ") and "not listed" in p for p in problems), problems


def test_archive_and_member_comments_are_refused(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    _pack(case, shas, out)
    commented = tmp_path / "commented.zip"
    with zipfile.ZipFile(out) as zin, zipfile.ZipFile(commented, "w") as zout:
        for info in zin.infolist():
            if info.filename == "manifest.json":
                info.comment = b"the real victim is someone else"
            zout.writestr(info, zin.read(info.filename))
        zout.comment = b"see originals elsewhere"
    problems = verify_pack(commented).problems
    assert any(p.startswith("the ZIP has an archive comment") for p in problems), problems
    assert any(p.startswith("manifest.json: has a comment") for p in problems), problems


def test_extra_field_that_renames_a_member_for_unzip_is_refused(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    # An Info-ZIP Unicode Path field (0x7075) makes unzip extract the member under another name
    # than the one Python (and the check) reads.
    import struct
    import zlib

    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    _pack(case, shas, out)
    bad = tmp_path / "bad.zip"
    name = b"pharos.txt"
    alias = b"originals/pharos.txt"
    field = struct.pack("<BI", 1, zlib.crc32(name)) + alias
    with zipfile.ZipFile(out) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            if info.filename == name.decode():
                info.extra = struct.pack("<HH", 0x7075, len(field)) + field
            zout.writestr(info, zin.read(info.filename))
    problems = verify_pack(bad).problems
    assert any(p.startswith("pharos.txt: has extra fields") for p in problems), problems


def test_bytes_before_the_first_member_are_refused(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    # A streaming reader reads local headers from the start: a tampered member prepended before
    # the archive is what it sees first, while the central directory still points at the rest.
    import io

    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    _pack(case, shas, out)
    hidden = io.BytesIO()
    with zipfile.ZipFile(hidden, "w") as z:
        z.writestr(f"originals/{shas[0]}.jpg", b"tampered")
    head = hidden.getvalue()
    head = head[: head.index(b"PK\x01\x02")]  # the local entry only, no directory
    bad = tmp_path / "bad.zip"
    bad.write_bytes(head + out.read_bytes())
    problems = verify_pack(bad).problems
    assert any("before the first member" in p for p in problems), problems


def test_names_two_systems_would_read_differently_are_refused(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    _pack(case, shas, out)
    for evil in ("../escape.txt", "/etc/x.txt", "README.TXT", "notices\\x.txt", "caf\u00e9.txt"):
        bad = tmp_path / "bad.zip"
        _copy_zip(out, bad, first=[(evil, b"x")])
        problems = verify_pack(bad).problems
        assert any(p.startswith(f"{evil}: ") and "name" in p for p in problems), (evil, problems)


def test_consistent_rewrite_is_found(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    # Whoever rewrites an original AND the manifest, the custody export entry and the seal
    # consistently passes a check that only follows hashes: the signature is what catches it.
    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    _pack(case, shas, out)
    bad = tmp_path / "bad.zip"
    consistent_rewrite(out, bad, f"originals/{shas[0]}.jpg", b"not the original")
    check = verify_pack(bad)
    assert not check.ok
    assert any("SEAL" in p and "signature" in p for p in check.problems), check.problems


def consistent_rewrite(src: Path, dst: Path, target: str, new: bytes, sign: object = None) -> None:
    """Replace ``target`` by ``new`` and recompute every hash that covers it: manifest, custody
    export entry (and its chain hash), SEAL.json. With ``sign`` (an Ed25519 private key), the
    forger also re-signs the seal with that key and puts its public half everywhere."""
    import hashlib

    from reclaim.report.custody import entry_hash

    with zipfile.ZipFile(src) as z:
        files = {i.filename: z.read(i.filename) for i in z.infolist()}
    old_sha = hashlib.sha256(files[target]).hexdigest()
    new_sha = hashlib.sha256(new).hexdigest()
    new_target = target.replace(old_sha, new_sha)
    del files[target]
    files[new_target] = new
    key_info = None
    if sign is not None:
        from reclaim.report import seal as seal_mod

        key_info = seal_mod.public_key_info(sign.public_key())  # type: ignore[attr-defined]
        files["seal-key.pem"] = seal_mod.public_key_pem(sign.public_key())  # type: ignore[attr-defined]
    manifest = json.loads(files["manifest.json"])
    for it in manifest["items"]:
        if it["sha256"] == old_sha:
            it.update(sha256=new_sha, size=len(new), file=new_target, md5="0" * 32)
    if key_info is not None:
        manifest["seal_key"] = key_info
    files["manifest.json"] = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
    entries = [json.loads(x) for x in files["custody.jsonl"].decode().splitlines() if x.strip()]
    export = entries[-1]
    details = export["details"]
    details["items"] = [new_sha if s == old_sha else s for s in details["items"]]
    if key_info is not None and "seal_key" in details:
        details["seal_key"] = key_info["fingerprint"]
    recorded = {k: v for k, v in details["files"].items() if k != target}
    recorded[new_target] = new_sha
    for name in ("manifest.json", "seal-key.pem"):
        if name in recorded:
            recorded[name] = hashlib.sha256(files[name]).hexdigest()
    details["files"] = dict(sorted(recorded.items()))
    details["manifest_sha256"] = hashlib.sha256(files["manifest.json"]).hexdigest()
    export["hash"] = entry_hash(export)
    files["custody.jsonl"] = "".join(
        json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in entries
    ).encode()
    seal = json.loads(files["SEAL.json"])
    seal["custody_head"] = export["hash"]
    if key_info is not None:
        seal["key"] = key_info
    files["SEAL.json"] = json.dumps(seal, indent=2).encode()
    if sign is not None:
        files["SEAL.sig"] = sign.sign(files["SEAL.json"])  # type: ignore[attr-defined]
    files.pop("SEAL.tsr", None)
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in sorted(files):
            z.writestr(name, files[name])


def test_the_pack_records_the_latest_decision_as_before(
    case_with_items: tuple[Path, list[str]], tmp_path: Path
) -> None:
    """``export_case`` takes the confirmed items, each with its latest decision in the
    manifest's shape (decision, note, by, at: plain JSON, as packs were written before)."""
    from reclaim.decisions import decide
    from reclaim.report.pack import export_case

    case, shas = case_with_items
    out = tmp_path / "pack.zip"
    with CaseStore.open(case) as store:
        decide(store, shas[0], "unsure", actor="lea")
        decide(store, shas[0], "confirmed", "c'est moi", actor="lea")
        decide(store, shas[1], "not_me", actor="lea")
        at = store.latest_decisions()[0].decided_at
        export_case(store, out, PackOptions(notifier=ME, pdf=False))
    with zipfile.ZipFile(out) as z:
        raw = z.read("manifest.json").decode()
        html = z.read("report.html").decode()
    items = json.loads(raw)["items"]
    assert [it["sha256"] for it in items] == [shas[0]]
    assert items[0]["decision"] == {"decision": "confirmed", "note": "c'est moi", "by": "lea",
                                    "at": at}  # fmt: skip
    assert list(items[0]["decision"]) == ["decision", "note", "by", "at"]
    assert "confirmed — c&#39;est moi" in html or "confirmed — c'est moi" in html
    assert verify_pack(out).ok
