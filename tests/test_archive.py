"""Archive source: zip/tar read in place, nested archives, and the guards against hostile archives.

Every fixture is built here with zipfile/tarfile; hostile variants are made by patching headers.
"""

from __future__ import annotations

import bz2
import io
import os
import stat
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Literal

import pytest
from PIL import Image

from reclaim.sources import open_source
from reclaim.sources.archive import ArchiveSource, detect, open_archive
from reclaim.sources.base import Entry, SourceLimits
from reclaim.sources.folder import FolderSource

MB = 1024 * 1024
TarMode = Literal["w", "w:gz", "w:bz2", "w:xz"]


# --- fixture helpers ----------------------------------------------------------------------------


def image_bytes(fmt: str, colour: tuple[int, int, int], size: tuple[int, int] = (16, 12)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


JPEG_A = image_bytes("JPEG", (200, 10, 10))
PNG_B = image_bytes("PNG", (10, 200, 10))
JPEG_C = image_bytes("JPEG", (10, 10, 200), (20, 20))

# Member name -> bytes, in the order they are written (directories end with "/").
TREE: list[tuple[str, bytes | None]] = [
    ("photos/", None),
    ("photos/a.jpg", JPEG_A),
    ("photos/sub/", None),
    ("photos/sub/b.png", PNG_B),
    ("c.jpg", JPEG_C),
]
FILES = [(n, d) for n, d in TREE if d is not None]


def make_zip(path: Path, members: list[tuple[str, bytes | None]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            if data is None:
                zf.writestr(name, b"")  # name ends with "/": a directory entry
            else:
                zf.writestr(name, data)
    return path


def zip_bytes(members: list[tuple[str, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, b"" if data is None else data)
    return buf.getvalue()


def tar_add(tf: tarfile.TarFile, name: str, data: bytes | None, mtime: int = 1_700_000_000) -> None:
    ti = tarfile.TarInfo(name)
    ti.mtime = mtime
    if data is None:
        ti.type = tarfile.DIRTYPE
        tf.addfile(ti)
    else:
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))


def make_tar(path: Path, members: list[tuple[str, bytes | None]], mode: TarMode = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members:
            tar_add(tf, name.rstrip("/") if data is None else name, data)
    return path


def tar_bytes(members: list[tuple[str, bytes | None]], mode: TarMode = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members:
            tar_add(tf, name, data)
    return buf.getvalue()


def collect(path: Path, limits: SourceLimits | None = None) -> list[Entry]:
    return list(ArchiveSource(str(path), limits or SourceLimits()).entries())


def by_member(entries: list[Entry]) -> dict[str | None, Entry]:
    return {e.locator.member: e for e in entries}


def good(entries: list[Entry]) -> list[tuple[str | None, bytes | None]]:
    return [(e.locator.member, e.data) for e in entries if e.error is None]


def errors(entries: list[Entry]) -> dict[str | None, str]:
    return {e.locator.member: e.error for e in entries if e.error is not None}


def patch_zip_headers(
    raw: bytes,
    name: bytes,
    *,
    file_size: int | None = None,
    flag_or: int = 0,
) -> bytes:
    """Rewrite the local and central headers of member ``name`` (sizes and flag bits)."""
    out = bytearray(raw)
    # Local file header: sig, ver, flags@6, method, time, date, crc@14, csize@18, usize@22,
    # name_len@26, extra_len@28, name@30.
    # Central directory header: sig, made_by, ver, flags@8, method, time, date, crc@16,
    # csize@20, usize@24, name_len@28, extra_len@30, comment_len@32, ..., name@46.
    for sig, flag_at, usize_at, nlen_at, name_at in (
        (b"PK\x03\x04", 6, 22, 26, 30),
        (b"PK\x01\x02", 8, 24, 28, 46),
    ):
        hits = 0
        pos = out.find(sig)
        while pos != -1:
            (nlen,) = struct.unpack_from("<H", out, pos + nlen_at)
            if bytes(out[pos + name_at : pos + name_at + nlen]) == name:
                if file_size is not None:
                    struct.pack_into("<I", out, pos + usize_at, file_size)
                (flags,) = struct.unpack_from("<H", out, pos + flag_at)
                struct.pack_into("<H", out, pos + flag_at, flags | flag_or)
                hits += 1
            pos = out.find(sig, pos + 4)
        assert hits == 1, f"expected exactly one {sig!r} header for {name!r}, found {hits}"
    return bytes(out)


# --- reading normal archives --------------------------------------------------------------------


def test_zip_members_paths_bytes_and_order(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "set.zip", TREE)
    entries = collect(z)
    assert good(entries) == FILES  # directories skipped silently, archive order kept
    assert not errors(entries)
    for e in entries:
        assert e.locator.kind == "archive"
        assert e.locator.path == str(z.resolve())
        assert Path(e.locator.path).is_absolute()


def test_zip_fingerprint_is_outer_size_mtime_member_size_crc(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "set.zip", TREE)
    st = z.stat()
    e = by_member(collect(z))["photos/a.jpg"]
    crc = zlib.crc32(JPEG_A)
    assert e.fingerprint == f"{st.st_size}:{st.st_mtime_ns}:photos/a.jpg:{len(JPEG_A)}:{crc:08x}"


def test_fingerprint_changes_when_outer_archive_changes(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "set.zip", TREE)
    before = by_member(collect(z))["c.jpg"].fingerprint
    make_zip(z, [*TREE, ("extra.jpg", JPEG_A)])
    os.utime(z, ns=(1_000_000_000, 1_000_000_000))
    after = by_member(collect(z))["c.jpg"].fingerprint
    assert before != after
    assert after is not None and after.startswith(f"{z.stat().st_size}:1000000000:c.jpg:")


@pytest.mark.parametrize(
    ("suffix", "mode"),
    [
        (".tar", "w"),
        (".tar.gz", "w:gz"),
        (".tgz", "w:gz"),
        (".tar.bz2", "w:bz2"),
        (".tar.xz", "w:xz"),
    ],
)
def test_tar_variants(tmp_path: Path, suffix: str, mode: TarMode) -> None:
    t = make_tar(tmp_path / f"set{suffix}", TREE, mode)
    assert detect(str(t))
    entries = collect(t)
    assert good(entries) == FILES
    assert not errors(entries)
    st = t.stat()
    e = by_member(entries)["photos/sub/b.png"]
    assert (
        e.fingerprint == f"{st.st_size}:{st.st_mtime_ns}:photos/sub/b.png:{len(PNG_B)}:1700000000"
    )


def test_tar_detected_by_content_whatever_the_name(tmp_path: Path) -> None:
    t = make_tar(tmp_path / "holiday.dat", TREE, "w:gz")
    assert detect(str(t))
    assert good(collect(t)) == FILES


def test_order_is_deterministic(tmp_path: Path) -> None:
    t = make_tar(tmp_path / "set.tar.gz", TREE)
    first = [(e.locator.key, e.data, e.error) for e in collect(t)]
    second = [(e.locator.key, e.data, e.error) for e in collect(t)]
    assert first == second


def test_nested_zip_inside_tar_gz(tmp_path: Path) -> None:
    inner = zip_bytes([("photos/a.jpg", JPEG_A), ("b.png", PNG_B)])
    t = make_tar(tmp_path / "outer.tar.gz", [("x/pack.zip", inner), ("c.jpg", JPEG_C)])
    entries = collect(t)
    assert good(entries) == [
        ("x/pack.zip!photos/a.jpg", JPEG_A),
        ("x/pack.zip!b.png", PNG_B),
        ("c.jpg", JPEG_C),
    ]
    e = by_member(entries)["x/pack.zip!b.png"]
    assert e.locator.path == str(t.resolve())
    st = t.stat()
    assert e.fingerprint == (
        f"{st.st_size}:{st.st_mtime_ns}:x/pack.zip!b.png:{len(PNG_B)}:{zlib.crc32(PNG_B):08x}"
    )
    assert e.locator.display() == f"{t.resolve()}!x/pack.zip!b.png"


def test_nested_tar_bz2_inside_zip(tmp_path: Path) -> None:
    inner = tar_bytes([("deep/a.jpg", JPEG_A)], "w:bz2")
    z = make_zip(tmp_path / "outer.zip", [("in.tbz2", inner)])
    assert good(collect(z)) == [("in.tbz2!deep/a.jpg", JPEG_A)]


def _nest(levels: int) -> bytes:
    """A zip holding a zip ... ``levels`` archives deep in all, the innermost holding a.jpg."""
    data = zip_bytes([("a.jpg", JPEG_A)])
    for i in range(levels - 1):
        data = zip_bytes([(f"l{levels - 1 - i}.zip", data)])
    return data


def test_nesting_within_depth_is_read(tmp_path: Path) -> None:
    z = tmp_path / "n.zip"
    z.write_bytes(_nest(3))  # outer + 2 nested
    entries = collect(z, SourceLimits(max_archive_depth=2))
    assert good(entries) == [("l1.zip!l2.zip!a.jpg", JPEG_A)]


def test_nesting_too_deep_refused(tmp_path: Path) -> None:
    z = tmp_path / "n.zip"
    z.write_bytes(_nest(4))  # outer + 3 nested
    entries = collect(z, SourceLimits(max_archive_depth=2))
    assert good(entries) == []
    errs = errors(entries)
    assert list(errs) == ["l1.zip!l2.zip!l3.zip"]
    assert "nested" in errs["l1.zip!l2.zip!l3.zip"]
    assert "max_archive_depth" in errs["l1.zip!l2.zip!l3.zip"]


def test_depth_zero_refuses_any_nested_archive(tmp_path: Path) -> None:
    z = make_zip(
        tmp_path / "o.zip", [("in.zip", zip_bytes([("a.jpg", JPEG_A)])), ("c.jpg", JPEG_C)]
    )
    entries = collect(z, SourceLimits(max_archive_depth=0))
    assert good(entries) == [("c.jpg", JPEG_C)]
    assert "nested" in errors(entries)["in.zip"]


def test_empty_zip(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "empty.zip", [])
    assert z.read_bytes()[:4] == b"PK\x05\x06"
    assert detect(str(z))
    assert collect(z) == []


# --- hostile names and member types -------------------------------------------------------------


def test_zip_traversal_names_refused_others_kept(tmp_path: Path) -> None:
    z = make_zip(
        tmp_path / "evil.zip",
        [
            ("ok1.jpg", JPEG_A),
            ("../evil.jpg", b"x"),
            ("/etc/x", b"x"),
            ("C:/windows/x.jpg", b"x"),
            ("photos\\..\\..\\evil2.jpg", b"x"),
            ("ok2.png", PNG_B),
        ],
    )
    entries = collect(z)
    assert good(entries) == [("ok1.jpg", JPEG_A), ("ok2.png", PNG_B)]
    errs = errors(entries)
    assert set(errs) == {"../evil.jpg", "/etc/x", "C:/windows/x.jpg", "photos\\..\\..\\evil2.jpg"}
    assert "`..`" in errs["../evil.jpg"]
    assert "absolute" in errs["/etc/x"]
    assert "drive letter" in errs["C:/windows/x.jpg"]
    assert "`..`" in errs["photos\\..\\..\\evil2.jpg"]
    assert all(m.startswith("refused:") and "\n" not in m for m in errs.values())


def test_tar_traversal_names_refused_others_kept(tmp_path: Path) -> None:
    t = make_tar(
        tmp_path / "evil.tar.gz",
        [("ok.jpg", JPEG_A), ("../evil.jpg", b"x"), ("/etc/x", b"x"), ("a/../../b.jpg", b"x")],
    )
    entries = collect(t)
    assert good(entries) == [("ok.jpg", JPEG_A)]
    errs = errors(entries)
    assert set(errs) == {"../evil.jpg", "/etc/x", "a/../../b.jpg"}
    assert "absolute" in errs["/etc/x"]


def test_tar_links_and_devices_refused(tmp_path: Path) -> None:
    t = tmp_path / "links.tar"
    with tarfile.open(t, "w") as tf:
        tar_add(tf, "a.jpg", JPEG_A)
        sym = tarfile.TarInfo("sym.jpg")
        sym.type, sym.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(sym)
        hard = tarfile.TarInfo("hard.jpg")
        hard.type, hard.linkname = tarfile.LNKTYPE, "a.jpg"
        tf.addfile(hard)
        fifo = tarfile.TarInfo("pipe")
        fifo.type = tarfile.FIFOTYPE
        tf.addfile(fifo)
        dev = tarfile.TarInfo("disk")
        dev.type = tarfile.BLKTYPE
        tf.addfile(dev)
        tar_add(tf, "b.png", PNG_B)
    entries = collect(t)
    assert good(entries) == [("a.jpg", JPEG_A), ("b.png", PNG_B)]
    errs = errors(entries)
    assert set(errs) == {"sym.jpg", "hard.jpg", "pipe", "disk"}
    assert "symbolic link" in errs["sym.jpg"] and "/etc/passwd" in errs["sym.jpg"]
    assert "hard link" in errs["hard.jpg"]
    assert "fifo" in errs["pipe"] and "device" in errs["disk"]


def test_zip_symlink_member_refused(tmp_path: Path) -> None:
    z = tmp_path / "link.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.jpg", JPEG_A)
        info = zipfile.ZipInfo("link.jpg")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
        zf.writestr("b.png", PNG_B)
    entries = collect(z)
    assert good(entries) == [("a.jpg", JPEG_A), ("b.png", PNG_B)]
    assert "symbolic link" in errors(entries)["link.jpg"]


def test_zip_encrypted_member(tmp_path: Path) -> None:
    raw = zip_bytes([("a.jpg", JPEG_A), ("secret.jpg", JPEG_C), ("b.png", PNG_B)])
    z = tmp_path / "enc.zip"
    z.write_bytes(patch_zip_headers(raw, b"secret.jpg", flag_or=0x1))
    entries = collect(z)
    assert good(entries) == [("a.jpg", JPEG_A), ("b.png", PNG_B)]
    assert errors(entries)["secret.jpg"].startswith("encrypted member")


# --- bombs and caps -----------------------------------------------------------------------------


def test_real_zip_bomb_refused_by_declared_size(tmp_path: Path) -> None:
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.jpg", JPEG_A)
        with zf.open("zeros.bin", "w") as w:
            chunk = bytes(MB)
            for _ in range(200):
                w.write(chunk)
        zf.writestr("b.png", PNG_B)
    assert z.stat().st_size < 2 * MB  # 200 MB of zeros deflates ~1000:1
    entries = collect(z, SourceLimits(max_file_bytes=10 * MB))
    assert good(entries) == [("a.jpg", JPEG_A), ("b.png", PNG_B)]
    msg = errors(entries)["zeros.bin"]
    assert "declared size 209715200" in msg and "max_file_bytes" in msg


def test_compression_ratio_refused_from_declared_sizes(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "ratio.zip", [("zeros.bin", bytes(5 * MB)), ("a.jpg", JPEG_A)])
    entries = collect(z, SourceLimits(max_file_bytes=10 * MB, max_archive_ratio=100))
    assert good(entries) == [("a.jpg", JPEG_A)]
    assert "compression ratio" in errors(entries)["zeros.bin"]


def test_small_compressible_member_not_taken_for_a_bomb(tmp_path: Path) -> None:
    flat = image_bytes("BMP", (255, 255, 255), (200, 200))  # ~120 KB, compresses > 100:1
    z = make_zip(tmp_path / "flat.zip", [("flat.bmp", flat)])
    info = zipfile.ZipFile(z).getinfo("flat.bmp")
    assert info.file_size / info.compress_size > 10
    assert good(collect(z, SourceLimits(max_archive_ratio=10))) == [("flat.bmp", flat)]


def test_lying_header_stopped_by_streamed_size_cap(tmp_path: Path) -> None:
    raw = zip_bytes([("a.jpg", JPEG_A), ("liar.bin", bytes(20 * MB)), ("b.png", PNG_B)])
    z = tmp_path / "liar.zip"
    z.write_bytes(patch_zip_headers(raw, b"liar.bin", file_size=1000))
    assert zipfile.ZipFile(z).getinfo("liar.bin").file_size == 1000  # the header now lies
    limits = SourceLimits(max_file_bytes=10 * MB, max_archive_ratio=100_000)
    entries = collect(z, limits)
    assert good(entries) == [("a.jpg", JPEG_A), ("b.png", PNG_B)]
    msg = errors(entries)["liar.bin"]
    assert "while being read" in msg and "per-item cap" in msg and "declared 1000" in msg


def test_lying_header_stopped_by_streamed_ratio_cap(tmp_path: Path) -> None:
    raw = zip_bytes([("liar.bin", bytes(20 * MB)), ("a.jpg", JPEG_A)])
    z = tmp_path / "liar.zip"
    z.write_bytes(patch_zip_headers(raw, b"liar.bin", file_size=1000))
    entries = collect(z, SourceLimits(max_file_bytes=100 * MB, max_archive_ratio=50))
    assert good(entries) == [("a.jpg", JPEG_A)]
    msg = errors(entries)["liar.bin"]
    assert "while being read" in msg and "compression ratio" in msg


def test_header_size_mismatch_is_an_error(tmp_path: Path) -> None:
    noise = os.urandom(3000)
    raw = zip_bytes([("a.bin", noise), ("b.png", PNG_B)])
    z = tmp_path / "mismatch.zip"
    z.write_bytes(patch_zip_headers(raw, b"a.bin", file_size=1000))
    entries = collect(z)
    assert good(entries) == [("b.png", PNG_B)]
    assert "declares 1000" in errors(entries)["a.bin"]


def test_bad_crc_member_is_an_error_others_kept(tmp_path: Path) -> None:
    z = tmp_path / "crc.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.jpg", JPEG_A)
        zf.writestr("b.png", PNG_B)
    raw = bytearray(z.read_bytes())
    at = raw.find(PNG_B)
    raw[at + 20] ^= 0xFF  # flip a byte of b.png's stored data
    z.write_bytes(bytes(raw))
    entries = collect(z)
    assert good(entries) == [("a.jpg", JPEG_A)]
    assert "corrupt member" in errors(entries)["b.png"]


def test_total_uncompressed_cap_stops_archive(tmp_path: Path) -> None:
    parts = [(f"p{i}.bin", os.urandom(MB)) for i in range(4)]
    z = make_zip(tmp_path / "total.zip", list(parts))
    entries = collect(z, SourceLimits(max_archive_total_bytes=int(2.5 * MB)))
    assert good(entries) == parts[:2]
    errs = errors(entries)
    assert list(errs) == ["p2.bin"]  # p3 is never reached
    assert "max_archive_total_bytes" in errs["p2.bin"]


def test_total_cap_counts_tar_members_skipped_for_size(tmp_path: Path) -> None:
    parts = [(f"p{i}.bin", os.urandom(MB)) for i in range(3)]
    t = make_tar(tmp_path / "total.tar.gz", list(parts))
    entries = collect(
        t, SourceLimits(max_file_bytes=MB // 2, max_archive_total_bytes=int(2.5 * MB))
    )
    errs = errors(entries)
    assert "max_file_bytes" in errs["p0.bin"] and "max_file_bytes" in errs["p1.bin"]
    assert "max_archive_total_bytes" in errs["p2.bin"]


def test_members_cap(tmp_path: Path) -> None:
    members: list[tuple[str, bytes | None]] = [(f"{i:02d}.jpg", JPEG_A) for i in range(10)]
    for maker in (make_zip, make_tar):
        a = maker(tmp_path / f"many{maker.__name__}", members)
        entries = collect(a, SourceLimits(max_archive_members=5))
        assert [m for m, _ in good(entries)] == [f"{i:02d}.jpg" for i in range(5)]
        errs = errors(entries)
        assert list(errs) == ["05.jpg"]
        assert "max_archive_members" in errs["05.jpg"]


def test_members_cap_counts_nested_members(tmp_path: Path) -> None:
    inner = zip_bytes([(f"{i}.jpg", JPEG_A) for i in range(4)])
    z = make_zip(tmp_path / "o.zip", [("in.zip", inner), ("last.jpg", JPEG_C)])
    entries = collect(z, SourceLimits(max_archive_members=4))
    # in.zip counts as one member, then its first three members fill the cap.
    assert [m for m, _ in good(entries)] == ["in.zip!0.jpg", "in.zip!1.jpg", "in.zip!2.jpg"]
    assert list(errors(entries)) == ["in.zip!3.jpg"]


def test_tar_gz_stream_ratio_guard(tmp_path: Path) -> None:
    t = make_tar(tmp_path / "zeros.tar.gz", [("a.jpg", JPEG_A), ("zeros.bin", bytes(20 * MB))])
    assert t.stat().st_size < MB
    entries = collect(t, SourceLimits(max_file_bytes=100 * MB, max_archive_ratio=50))
    assert good(entries) == [("a.jpg", JPEG_A)]
    assert "max_archive_ratio" in errors(entries)["zeros.bin"]


# --- broken archives ----------------------------------------------------------------------------


def test_truncated_zip_one_error_entry(tmp_path: Path) -> None:
    raw = make_zip(tmp_path / "full.zip", TREE).read_bytes()
    z = tmp_path / "cut.zip"
    z.write_bytes(raw[: len(raw) // 2])
    assert detect(str(z))  # still starts like a zip
    entries = collect(z)
    assert len(entries) == 1
    assert entries[0].locator.kind == "archive" and entries[0].locator.member is None
    assert entries[0].error is not None and "corrupt" in entries[0].error


def test_truncated_tar_gz_error_entry(tmp_path: Path) -> None:
    big = os.urandom(200_000)
    raw = make_tar(tmp_path / "full.tar.gz", [("a.jpg", JPEG_A), ("big.bin", big)]).read_bytes()
    t = tmp_path / "cut.tar.gz"
    t.write_bytes(raw[: len(raw) // 2])
    entries = collect(t)
    assert good(entries) == [("a.jpg", JPEG_A)]
    errs = errors(entries)
    assert list(errs) == [None]
    assert errs[None] is not None and "truncated" in errs[None]


def test_tar_cut_at_a_header_boundary_is_reported(tmp_path: Path) -> None:
    raw = tar_bytes([("a.jpg", JPEG_A), ("b.png", PNG_B)])
    end_of_a = 512 + ((len(JPEG_A) + 511) // 512) * 512
    t = tmp_path / "cut.tar"
    t.write_bytes(raw[: end_of_a + 100])  # half of b.png's header
    entries = collect(t)
    assert good(entries) == [("a.jpg", JPEG_A)]
    assert "truncated" in errors(entries)[None]


def test_tar_with_garbage_header_is_reported(tmp_path: Path) -> None:
    raw = bytearray(tar_bytes([("a.jpg", JPEG_A), ("b.png", PNG_B)]))
    end_of_a = 512 + ((len(JPEG_A) + 511) // 512) * 512
    raw[end_of_a : end_of_a + 512] = os.urandom(512)
    t = tmp_path / "bad.tar"
    t.write_bytes(bytes(raw))
    entries = collect(t)
    assert good(entries) == [("a.jpg", JPEG_A)]
    assert "corrupt" in errors(entries)[None]


def test_garbage_given_as_archive_is_an_error_entry(tmp_path: Path) -> None:
    g = tmp_path / "noise.zip"
    g.write_bytes(os.urandom(4096))
    assert not detect(str(g))
    entries = collect(g)
    assert len(entries) == 1 and entries[0].locator.member is None
    assert entries[0].error is not None and "not a zip or tar" in entries[0].error

    pk = tmp_path / "pk.zip"
    pk.write_bytes(b"PK\x03\x04" + os.urandom(4096))
    entries = collect(pk)
    assert len(entries) == 1 and entries[0].locator.member is None
    assert entries[0].error is not None and "corrupt or unreadable zip" in entries[0].error


def test_missing_archive_is_an_error_entry(tmp_path: Path) -> None:
    entries = collect(tmp_path / "gone.zip")
    assert len(entries) == 1 and entries[0].error is not None
    assert "cannot read" in entries[0].error


def test_corrupt_nested_archive_error_names_the_member(tmp_path: Path) -> None:
    bad_inner = b"PK\x03\x04" + bytes(range(256)) * 4
    z = make_zip(tmp_path / "o.zip", [("a.jpg", JPEG_A), ("in.zip", bad_inner), ("b.png", PNG_B)])
    entries = collect(z)
    assert good(entries) == [("a.jpg", JPEG_A), ("b.png", PNG_B)]
    assert "corrupt" in errors(entries)["in.zip"]


# --- detection and integration ------------------------------------------------------------------


def test_detect(tmp_path: Path) -> None:
    assert detect(str(make_zip(tmp_path / "a.zip", TREE)))
    assert detect(str(make_tar(tmp_path / "a.tar", TREE, "w")))
    assert detect(str(make_tar(tmp_path / "a.tar.xz", TREE, "w:xz")))
    fake = tmp_path / "photo.zip"
    fake.write_bytes(JPEG_A)
    assert not detect(str(fake))
    gz_not_tar = tmp_path / "photo.tar.gz"
    import gzip

    gz_not_tar.write_bytes(gzip.compress(JPEG_A))
    assert not detect(str(gz_not_tar))
    bz_not_tar = tmp_path / "photo.tar.bz2"
    bz_not_tar.write_bytes(bz2.compress(PNG_B))
    assert not detect(str(bz_not_tar))
    assert not detect(str(tmp_path))
    assert not detect(str(tmp_path / "missing.zip"))


def test_open_source_returns_archive_source(tmp_path: Path) -> None:
    z = make_zip(tmp_path / "a.zip", TREE)
    src = open_source(str(z))
    assert isinstance(src, ArchiveSource)
    assert src.name == "archive"
    assert str(z.resolve()) in src.describe()
    assert good(list(src.entries())) == FILES
    assert isinstance(open_archive(str(z), SourceLimits()), ArchiveSource)


def test_folder_source_opens_archives_inside(tmp_path: Path) -> None:
    root = tmp_path / "case"
    (root / "sub").mkdir(parents=True)
    (root / "loose.jpg").write_bytes(JPEG_C)
    z = make_zip(root / "sub" / "pack.zip", [("in/a.jpg", JPEG_A), ("b.png", PNG_B)])
    entries = list(FolderSource(str(root), SourceLimits()).entries())
    files = [e for e in entries if e.locator.kind == "file"]
    members = [e for e in entries if e.locator.kind == "archive"]
    assert [e.path for e in files] == [(root / "loose.jpg").resolve()]
    assert [(e.locator.path, e.locator.member, e.data) for e in members] == [
        (str(z.resolve()), "in/a.jpg", JPEG_A),
        (str(z.resolve()), "b.png", PNG_B),
    ]
