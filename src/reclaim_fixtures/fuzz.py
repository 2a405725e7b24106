"""Fuzz targets over reclaim's untrusted-input readers, and the harness that runs them.

Shared by the CI smoke test (``tests/test_fuzz_smoke.py``, a few seconds per target) and the long
runs (``bench/fuzz.py``, minutes per target). Each target feeds bytes to a public entry point the
way a scan (or ``reclaim verify-pack``) does:

- ``image`` / ``video``: ``reclaim.analysis.analyze_bytes`` (sniffing, Pillow / pillow-heif / PyAV
  decoding, PDQ and vPDQ), which records decoder failures instead of raising; a failure it
  records as "unexpected decoder error" (not a ``MediaError``) is a finding;
- ``archive``: ``ArchiveSource.entries()`` over zip / tar / tar.gz / tar.bz2 / tar.xz bytes,
  every entry's bytes read;
- ``telegram``: ``open_telegram`` + ``entries()`` with the bytes as ``result.json`` of a
  Telegram Desktop export whose media files are on disk (``reclaim_fixtures.telegram``);
- ``urllist``: ``detect`` + ``open_url_list`` (parsing only, nothing is fetched) +
  ``validate_url`` on every line;
- ``verify-pack``: ``verify_pack`` on ZIP bytes; inputs that do not start with ``PK`` are
  split on ``PACK_SEP`` into new manifest.json / custody.jsonl / SEAL.json members of a real pack
  (structure-aware: mutations reach the JSON checks instead of dying in the ZIP reader).

Seeds are small valid inputs generated here (Pillow, PyAV, zipfile/tarfile, the Telegram
fixture, a pack built by ``build_pack`` on a two-photo case); nothing is read from shared data.

A ``ReclaimError`` is the expected, clear-error path. Anything else escaping a target (IndexError,
struct.error, MemoryError, RecursionError...) is a finding, and so is a child that dies (a crash
in C code) or an input that runs longer than the hang limit (default 5 s). Each target runs in
its own child process (``python -m reclaim_fixtures.fuzz``) with an address-space limit; the parent
watches a shared status page (inputs tried, the input in progress and when it started), kills
the child on a hang, saves that input and starts a new child for the time left; the child's peak
RSS comes from ``os.wait4``. Engines: ``atheris`` (coverage-guided libFuzzer over reclaim's and
Pillow's Python code and the standard library's archive readers) when it imports, else
``mutate``, a seeded random mutation loop (bit flips, interesting integers, block insert / delete
/ duplicate, splices between seeds) that needs nothing outside the standard library.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import io
import json
import mmap
import os
import random
import re
import resource
import signal
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SRC = Path(__file__).resolve().parents[1]
PACK_SEP = b"\n\x00--8<--\x00\n"
DEFAULT_HANG_S = 5.0
DEFAULT_MEM_BYTES = 3 * 1024**3
# The libraries the atheris engine instruments for coverage (the C decoders are not).
INSTRUMENT = [
    "reclaim",
    "PIL",
    "pillow_heif",
    "zipfile",
    "tarfile",
    "gzip",
    "bz2",
    "lzma",
    "json",
    "httpx",
    "codecs",
]


class ScanRecordedError(Exception):
    """``analyze_bytes`` recorded a failure that is not a ``MediaError`` (a decoder bug, or the
    memory ceiling reached), as ``type_name`` and ``message``."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message


@functools.cache
def _reclaim_error_names() -> frozenset[str]:
    from reclaim.errors import ReclaimError

    names: set[str] = set()
    todo: list[type[BaseException]] = [ReclaimError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo += cls.__subclasses__()
    return frozenset(names)


def recorded_finding(error: str | None) -> ScanRecordedError | None:
    """The finding in an item's recorded error: None for a ``MediaError`` (recorded as
    "<its class name>: <message>"), else the failure as a ``ScanRecordedError``."""
    if not error:
        return None
    head, _, rest = error.partition(": ")
    if head in _reclaim_error_names():
        return None
    if head == "unexpected decoder error":
        type_name, _, message = rest.partition(": ")
        return ScanRecordedError(type_name, message)
    if error.startswith("ran out of memory"):
        return ScanRecordedError("MemoryError", error)
    return ScanRecordedError("RecordedError", error)


# --------------------------------------------------------------------------- seeds


def _pattern(size: tuple[int, int], seed: int) -> Any:
    from PIL import Image

    w, h = size
    im = Image.new("RGB", size)
    im.putdata(
        [
            ((x * 37 + seed * 11) % 256, (y * 53 + seed * 7) % 256, (x * y + seed) % 256)
            for y in range(h)
            for x in range(w)
        ]
    )
    return im


def _save(im: Any, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def image_seeds() -> list[bytes]:
    """Tiny stills and animations in every format the decoders take (best effort for HEIF/AVIF)."""
    from PIL import Image

    base = _pattern((16, 12), 1)
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [_pattern((16, 12), s) for s in range(3)]
    small = _pattern((6, 4), 9)
    seeds = [
        _save(base, "PNG"),
        _save(base.convert("RGBA"), "PNG"),
        _save(base.convert("P"), "PNG", transparency=0),
        _save(base.convert("I;16"), "PNG"),
        _save(base, "JPEG", quality=80, exif=exif.tobytes()),
        _save(base, "JPEG", quality=60, progressive=True),
        _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=[100, 600, 50]),
        _save(base, "WEBP", quality=50),
        _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=300),
        _save(frames[0], "TIFF", save_all=True, append_images=[small]),
        _save(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=200),
        _save(base, "BMP"),
        _save(_pattern((16, 16), 4), "ICO", sizes=[(16, 16)]),
    ]
    for fmt in ("HEIF", "AVIF"):
        with contextlib.suppress(Exception):
            if fmt == "HEIF":
                import pillow_heif

                pillow_heif.register_heif_opener()
            seeds.append(_save(base, fmt, quality=50))
    return seeds


def _video(fmt: str, codec: str, pix_fmt: str = "yuv420p", n: int = 6) -> bytes | None:
    import av
    import numpy as np

    try:
        buf = io.BytesIO()
        with av.open(buf, mode="w", format=fmt) as container:
            stream: Any = container.add_stream(codec, rate=2)
            stream.width, stream.height, stream.pix_fmt = 32, 32, pix_fmt
            for i in range(n):
                arr = np.zeros((32, 32, 3), dtype=np.uint8)
                arr[:, : 4 + i * 4, 1] = 200
                arr[:, :, 0] = i * 40
                for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        return buf.getvalue()
    except Exception:
        return None


def video_seeds() -> list[bytes]:
    """Three-second 32x32 clips: H.264 and MPEG-4 Part 2 in MP4, VP8 / VP9 in WebM, MJPEG in MKV."""
    plan = [
        ("mp4", "libx264", "yuv420p"),
        ("mp4", "mpeg4", "yuv420p"),
        ("webm", "libvpx", "yuv420p"),
        ("webm", "libvpx-vp9", "yuv420p"),
        ("matroska", "mjpeg", "yuvj420p"),
    ]
    return [v for fmt, codec, pix in plan if (v := _video(fmt, codec, pix)) is not None]


def _zip(members: dict[str, bytes], compression: int = 8) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        z.writestr("dir/", b"")
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as t:  # type: ignore[call-overload]
        d = tarfile.TarInfo("dir")
        d.type = tarfile.DIRTYPE
        t.addfile(d)
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 1_700_000_000
            t.addfile(ti, io.BytesIO(data))
        link = tarfile.TarInfo("link.png")
        link.type = tarfile.SYMTYPE
        link.linkname = "../outside.png"
        t.addfile(link)
    return buf.getvalue()


def archive_seeds() -> list[bytes]:
    import zipfile

    png = _save(_pattern((8, 8), 3), "PNG")
    files = {"photos/a.png": png, "notes.txt": b"hello\n" * 4}
    inner_zip = _zip({"c.png": png})
    inner_tar = _tar({"d.png": png})
    return [
        _zip({**files, "inner.zip": inner_zip}),
        _zip(files, zipfile.ZIP_STORED),
        _zip(files, zipfile.ZIP_BZIP2),
        _zip(files, zipfile.ZIP_LZMA),
        _tar({**files, "inner.tar": inner_tar}),
        _tar(files, "w:gz"),
        _tar(files, "w:bz2"),
        _tar(files, "w:xz"),
    ]


def urllist_seeds() -> list[bytes]:
    return [
        b"https://example.org/a.jpg\nhttp://example.com/b.png?x=1#frag\n",
        b"\xef\xbb\xbf# leaked copies\n\nhttps://example.org/1.mp4\n  https://xn--bcher-kva.example/\n",
        b"https://[2001:db8::1]:8443/p\nhttp://127.0.0.1/x\nftp://example.org/no\nnot a url\n",
        "https://b\u00fccher.example/\u00e9t\u00e9.jpg\nhttps://e.org/%zz\r\n".encode(),
        b"https://user:pass@example.org:99999/\nhttps://example.org/" + b"a" * 300 + b"\n",
    ]


def _pack(scratch: Path) -> bytes:
    """An evidence pack built by ``build_pack`` (the code behind ``reclaim pack``)."""
    from reclaim.report.notices import Notifier
    from reclaim.report.pack import PackOptions, build_pack
    from reclaim.scan import scan
    from reclaim.sources import open_source
    from reclaim.store import CaseStore

    found = scratch / "found"
    found.mkdir(parents=True, exist_ok=True)
    for i in range(2):
        (found / f"img{i}.jpg").write_bytes(_save(_pattern((24, 16), 20 + i), "JPEG"))
    case, out = scratch / "case", scratch / "seed-pack.zip"
    with CaseStore.open(case, create=True) as store:
        scan(store, [open_source(str(found))], workers=0)
        shas = [r[0] for r in store.conn.execute("SELECT sha256 FROM items ORDER BY sha256")]
        options = PackOptions(notifier=Notifier("Fuzz Seed", "fuzz@example.org"), pdf=False)
        build_pack(store, shas, out, options)
    return out.read_bytes()


def _pack_members(zip_bytes: bytes) -> dict[str, bytes]:
    import zipfile

    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as z:
        return {n: z.read(n) for n in z.namelist()}


def _split_pack_input(data: bytes, base: dict[str, bytes]) -> bytes:
    """A ZIP of ``base`` with manifest.json / custody.jsonl / SEAL.json taken from ``data``."""
    import zipfile

    parts = [*data.split(PACK_SEP, 2), b"", b""]
    members = dict(base)
    for name, part in zip(("manifest.json", "custody.jsonl", "SEAL.json"), parts, strict=False):
        members[name] = part
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in sorted(members):
            z.writestr(name, members[name])
    return buf.getvalue()


# --------------------------------------------------------------------------- targets


@dataclass
class Target:
    """One fuzz target: ``prepare(scratch)`` sets up files and returns seeds; ``run(data)``
    feeds one input (raising a ``ReclaimError`` is fine, anything else is a finding)."""

    name: str
    prepare: Callable[[Path], list[bytes]]
    make_run: Callable[[Path], Callable[[bytes], None]]
    max_len: int = 64 * 1024
    hidden: bool = False  # harness self-tests: not run unless named


def _media_run(scratch: Path) -> Callable[[bytes], None]:
    from reclaim.analysis import analyze_bytes
    from reclaim.media import MediaLimits

    limits = MediaLimits()

    def run(data: bytes) -> None:
        finding = recorded_finding(analyze_bytes(data, limits).error)
        if finding is not None:
            raise finding

    return run


def _archive_run(scratch: Path) -> Callable[[bytes], None]:
    from reclaim.sources.archive import ArchiveSource, detect
    from reclaim.sources.base import SourceLimits

    limits = SourceLimits()
    path = scratch / "input.archive"

    def run(data: bytes) -> None:
        path.write_bytes(data)
        detect(str(path))
        for entry in ArchiveSource(str(path), limits).entries():
            if entry.error is None:
                entry.read()

    return run


def _telegram_prepare(scratch: Path) -> list[bytes]:
    from reclaim_fixtures.telegram import write_telegram_export

    export = scratch / "export"
    if not (export / "result.json").exists():
        write_telegram_export(export, "account")
        write_telegram_export(scratch / "chat", "chat", chat=1)
    seeds = [(export / "result.json").read_bytes(), (scratch / "chat" / "result.json").read_bytes()]
    return seeds


def _telegram_run(scratch: Path) -> Callable[[bytes], None]:
    from reclaim.sources.base import SourceLimits
    from reclaim.sources.telegram import detect, open_telegram

    limits = SourceLimits()
    root = scratch / "export"
    rj = root / "result.json"

    def run(data: bytes) -> None:
        rj.write_bytes(data)
        detect(str(root))
        for _ in open_telegram(str(root), limits).entries():
            pass

    return run


def _urllist_run(scratch: Path) -> Callable[[bytes], None]:
    from reclaim.sources.base import SourceLimits
    from reclaim.sources.urllist import detect, open_url_list, parse_url_list, validate_url

    limits = SourceLimits()
    path = scratch / "urls.txt"

    def run(data: bytes) -> None:
        path.write_bytes(data)
        parse_url_list(path)
        if detect(str(path)):
            for url in open_url_list(str(path), limits).urls:  # never iterated: no fetch
                validate_url(url)

    return run


def _pack_prepare(scratch: Path) -> list[bytes]:
    seed = scratch / "seed-pack.zip"
    pack = seed.read_bytes() if seed.exists() else _pack(scratch)
    members = _pack_members(pack)
    split = PACK_SEP.join(members[n] for n in ("manifest.json", "custody.jsonl", "SEAL.json"))
    return [pack, split]


def _pack_run(scratch: Path) -> Callable[[bytes], None]:
    from reclaim.report.verify import verify_pack

    base = _pack_members((scratch / "seed-pack.zip").read_bytes())
    path = scratch / "input-pack.zip"

    def run(data: bytes) -> None:
        path.write_bytes(data if data.startswith(b"PK") else _split_pack_input(data, base))
        verify_pack(path)

    return run


# Harness self-tests (hidden): a bug, a hang and a memory hog, so the smoke test can show that
# the harness counts each of them.
def _selftest_prepare(scratch: Path) -> list[bytes]:
    return [b"seed"]


def _selftest_crash(scratch: Path) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        _ = [0][len(data) + 1]

    return run


def _selftest_hang(scratch: Path) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        time.sleep(3600)

    return run


def _selftest_memory(scratch: Path) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        _ = bytearray(2 * 1024**3)  # cheap without a limit (untouched pages), refused under one

    return run


TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target("image", lambda s: image_seeds(), _media_run, 32 * 1024),
        Target("video", lambda s: video_seeds(), _media_run, 64 * 1024),
        Target("archive", lambda s: archive_seeds(), _archive_run, 32 * 1024),
        Target("telegram", _telegram_prepare, _telegram_run, 128 * 1024),
        Target("urllist", lambda s: urllist_seeds(), _urllist_run, 4 * 1024),
        Target("verify-pack", _pack_prepare, _pack_run, 64 * 1024),
        Target("selftest-crash", _selftest_prepare, _selftest_crash, 64, hidden=True),
        Target("selftest-hang", _selftest_prepare, _selftest_hang, 64, hidden=True),
        Target("selftest-memory", _selftest_prepare, _selftest_memory, 64, hidden=True),
    ]
}
DEFAULT_TARGETS = [n for n, t in TARGETS.items() if not t.hidden]


# --------------------------------------------------------------------------- classification


def is_expected(e: BaseException) -> bool:
    from reclaim.errors import ReclaimError

    return isinstance(e, ReclaimError)


def _frame_name(filename: str) -> str:
    if filename.startswith(str(ROOT) + "/tests/"):
        return filename[len(str(ROOT)) + 1 :]
    return re.sub(r"^.*/(site-packages|src|lib/python3\.\d+)/", "", filename)


def where_of(e: BaseException) -> tuple[str, str]:
    """(innermost frame, innermost frame in reclaim) of an exception, as ``file:line``."""
    frames = traceback.extract_tb(e.__traceback__)
    if not frames:
        return "?", "?"
    inner = f"{_frame_name(frames[-1].filename)}:{frames[-1].lineno}"
    ours = [f for f in frames if "/reclaim/" in f.filename and "/tests/" not in f.filename]
    via = f"{_frame_name(ours[-1].filename)}:{ours[-1].lineno}" if ours else "-"
    return inner, via


def signature(kind: str, type_name: str, message: str, where: str, via: str) -> str:
    """What makes two findings the same bug: kind, exception type and the reclaim frame it
    escaped from (else the frame that raised it, else the message's shape)."""
    if via not in ("-", "?"):
        return f"{kind}|{type_name}|{via}"
    if where not in ("-", "?"):
        return f"{kind}|{type_name}|{where}"
    shape = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", message)
    shape = re.sub(r"0x[0-9a-fA-F]+|\d+(\.\d+)?(e-?\d+)?", "N", shape)[:80]
    return f"{kind}|{type_name}|{shape}"


# --------------------------------------------------------------------------- shared status page

_HDR = struct.Struct("<QQQdI")  # tried, unexpected, slow, started (monotonic, 0 idle), length


class Status:
    """A small file mapped by parent and child: counters plus the input in progress."""

    def __init__(self, path: Path, max_len: int) -> None:
        size = _HDR.size + max_len
        if not path.exists() or path.stat().st_size != size:
            path.write_bytes(b"\0" * size)
        self._f = open(path, "r+b")  # noqa: SIM115 - closed in close()
        self.mm = mmap.mmap(self._f.fileno(), size)
        self.max_len = max_len

    def read(self) -> tuple[int, int, int, float, bytes]:
        tried, unexpected, slow, started, n = _HDR.unpack_from(self.mm, 0)
        return tried, unexpected, slow, started, bytes(self.mm[_HDR.size : _HDR.size + n])

    def begin(self, data: bytes) -> None:
        data = data[: self.max_len]
        self.mm[_HDR.size : _HDR.size + len(data)] = data
        tried, unexpected, slow, _, _ = _HDR.unpack_from(self.mm, 0)
        _HDR.pack_into(self.mm, 0, tried, unexpected, slow, time.monotonic(), len(data))

    def end(self, unexpected: bool, slow: bool) -> None:
        tried, n_unexp, n_slow, _, n = _HDR.unpack_from(self.mm, 0)
        _HDR.pack_into(self.mm, 0, tried + 1, n_unexp + unexpected, n_slow + slow, 0.0, n)

    def close(self) -> None:
        self.mm.close()
        self._f.close()


# --------------------------------------------------------------------------- the child


@dataclass
class _Child:
    target: Target
    run: Callable[[bytes], None]
    status: Status
    findings: Path
    log: Path
    hang_s: float
    seen: dict[str, int] = field(default_factory=dict)
    places: dict[str, tuple[str, str]] = field(default_factory=dict)

    def save(self, kind: str, data: bytes) -> Path:
        self.findings.mkdir(parents=True, exist_ok=True)
        path = self.findings / f"{kind}-{hashlib.sha256(data).hexdigest()[:16]}.bin"
        path.write_bytes(data)
        return path

    def record(
        self, kind: str, type_name: str, message: str, where: str, via: str, data: bytes
    ) -> None:
        sig = signature(kind, type_name, message, where, via)
        self.seen[sig] = self.seen.get(sig, 0) + 1
        if self.seen[sig] > 3:  # counted in the status page; three saved inputs are enough
            return
        rec = {
            "kind": kind,
            "type": type_name,
            "message": message[:300],
            "where": where,
            "via": via,
            "signature": sig,
            "file": str(self.save(kind, data)),
        }
        with self.log.open("a") as f:
            f.write(json.dumps(rec) + "\n")

    def place_of_recorded(self, type_name: str, message: str, data: bytes) -> tuple[str, str]:
        """(where, via) of a failure ``analyze_bytes`` recorded without its traceback: the same
        decode redone unguarded, once per kind of message."""
        key = signature("exception", type_name, message, "?", "?")
        if key not in self.places:
            e = unguarded_media_error(data)
            self.places[key] = where_of(e) if e is not None else ("?", "?")
        return self.places[key]

    def one(self, data: bytes) -> None:
        self.status.begin(data)
        started = time.monotonic()
        unexpected = False
        try:
            self.run(data)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:
            if not is_expected(e):
                unexpected = True
                if isinstance(e, ScanRecordedError):
                    type_name, msg = e.type_name, " ".join(e.message.split())
                    where, via = self.place_of_recorded(type_name, msg, data)
                else:
                    type_name, msg = type(e).__name__, " ".join(str(e).split())
                    where, via = where_of(e)
                self.record("exception", type_name, msg, where, via, data)
        took = time.monotonic() - started
        slow = took > self.hang_s
        if slow:
            self.record("hang", "Hang", f"{took:.1f} s for one input", "-", "-", data)
        self.status.end(unexpected, slow)


def _mutate(rng: random.Random, data: bytes, pool: list[bytes], max_len: int) -> bytes:
    """A few stacked byte-level mutations (the ``mutate`` engine)."""
    b = bytearray(data)
    interesting = [0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 0x10000, 65535 * 8]
    for _ in range(rng.choice((1, 1, 2, 3, 4, 8))):
        op = rng.randrange(8)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(pos, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[min(pos, len(b) - 1)] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif op == 2:
            v = rng.choice(interesting)
            fmt = rng.choice(("<H", ">H", "<I", ">I"))
            raw = struct.pack(fmt, v & (0xFFFF if "H" in fmt else 0xFFFFFFFF))
            b[pos : pos + len(raw)] = raw
        elif op == 3:
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
        elif op == 4 and b:
            del b[pos : pos + rng.randrange(1, 64)]
        elif op == 5 and b:
            start = rng.randrange(len(b))
            chunk = b[start : start + rng.randrange(1, 128)]
            b[pos:pos] = chunk * rng.randrange(1, 4)
        elif op == 6:
            other = rng.choice(pool)
            start = rng.randrange(len(other) + 1)
            b[pos : pos + rng.randrange(64)] = other[start : start + rng.randrange(1, 256)]
        elif op == 7:
            del b[pos:]
    return bytes(b[:max_len])


def _run_mutate(child: _Child, seeds: list[bytes], seconds: float, seed: int) -> None:
    rng = random.Random(seed)
    pool = list(seeds)
    for s in seeds:
        child.one(s)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        child.one(_mutate(rng, rng.choice(pool), pool, child.target.max_len))


def _run_atheris(
    child: _Child, seeds: list[bytes], seconds: float, seed: int, corpus: Path
) -> None:
    atheris: Any = importlib.import_module("atheris")
    corpus.mkdir(parents=True, exist_ok=True)
    child.findings.mkdir(parents=True, exist_ok=True)
    for s in seeds:
        (corpus / f"seed-{hashlib.sha256(s).hexdigest()[:16]}").write_bytes(s)
    argv = [
        sys.argv[0],
        f"-max_total_time={max(1, int(seconds))}",
        f"-max_len={child.target.max_len}",
        f"-seed={seed}",
        "-timeout=3600",  # hangs are the parent's to judge (it saves the input and restarts)
        "-rss_limit_mb=0",  # memory is bounded by RLIMIT_AS and measured by the parent
        "-print_final_stats=1",
        f"-artifact_prefix={child.findings}/libfuzzer-",
        str(corpus),
    ]
    atheris.Setup(argv, child.one)
    atheris.Fuzz()


def child_main(argv: list[str]) -> int:
    """``python -m reclaim_fixtures.fuzz TARGET ENGINE SECONDS WORKDIR FINDINGS HANG_S MEM
    SEED``."""
    parent = os.getppid()
    name, engine, seconds, workdir, findings, hang_s, mem, seed = argv
    target = TARGETS[name]
    work = Path(workdir)
    scratch = work / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    if engine == "atheris":
        atheris: Any = importlib.import_module("atheris")
        with atheris.instrument_imports(include=INSTRUMENT):
            _import_everything()
    else:
        _import_everything()
    # After the instrumented imports (importing reclaim.media first would leave it
    # uninstrumented); exits if the parent died meanwhile.
    from reclaim.media.sandbox import die_with_parent

    die_with_parent(parent)
    seeds = [s[: target.max_len] for s in target.prepare(scratch)]
    run = target.make_run(scratch)
    if int(mem) > 0:
        resource.setrlimit(resource.RLIMIT_AS, (int(mem), int(mem)))
    status = Status(work / "status.bin", target.max_len)
    child = _Child(target, run, status, Path(findings), work / "findings.jsonl", float(hang_s))
    if engine == "atheris":
        _run_atheris(child, seeds, float(seconds), int(seed), work / "corpus")
    else:
        _run_mutate(child, seeds, float(seconds), int(seed))
    return 0


def _import_everything() -> None:
    """Every module a target calls into, imported once (under instrumentation for atheris)."""
    import bz2  # noqa: F401
    import gzip  # noqa: F401
    import lzma  # noqa: F401
    import tarfile  # noqa: F401
    import zipfile  # noqa: F401

    import PIL.Image

    import reclaim.media
    import reclaim.report.pack
    import reclaim.report.verify
    import reclaim.scan
    import reclaim.sources.archive
    import reclaim.sources.telegram
    import reclaim.sources.urllist  # noqa: F401

    PIL.Image.init()  # loads every format plugin now, so they are instrumented too


# --------------------------------------------------------------------------- the parent


@dataclass
class Finding:
    kind: str  # exception / hang / crash
    type: str
    message: str
    where: str
    via: str
    signature: str
    file: str
    count: int = 1


@dataclass
class TargetResult:
    target: str
    engine: str
    seconds: float
    tried: int = 0
    unexpected: int = 0  # inputs that raised something other than a ReclaimError
    hangs: int = 0  # inputs over the hang limit (killed, or finished late)
    crashes: int = 0  # the child died (signal, abort in C code, nonzero exit)
    restarts: int = 0
    peak_rss_mb: float = 0.0
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.unexpected == 0 and self.hangs == 0 and self.crashes == 0

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "findings"}
        d["findings"] = [f.__dict__ for f in self.findings]
        return d


def default_engine() -> str:
    return "atheris" if importlib.util.find_spec("atheris") else "mutate"


def _save_input(findings: Path, kind: str, data: bytes) -> str:
    findings.mkdir(parents=True, exist_ok=True)
    path = findings / f"{kind}-{hashlib.sha256(data).hexdigest()[:16]}.bin"
    path.write_bytes(data)
    return str(path)


def run_target(
    name: str,
    seconds: float,
    workdir: Path,
    findings: Path,
    *,
    engine: str | None = None,
    hang_s: float = DEFAULT_HANG_S,
    mem_bytes: int = DEFAULT_MEM_BYTES,
    seed: int = 1,
) -> TargetResult:
    """Fuzz ``name`` for ``seconds`` in child processes; restart after a hang or a crash."""
    engine = engine or default_engine()
    target = TARGETS[name]
    work = workdir / name
    work.mkdir(parents=True, exist_ok=True)
    log = work / "findings.jsonl"
    log.unlink(missing_ok=True)
    (work / "status.bin").unlink(missing_ok=True)
    status = Status(work / "status.bin", target.max_len)
    res = TargetResult(name, engine, seconds)
    extra: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    first = True
    try:
        while first or time.monotonic() < deadline - 1:
            left = max(1.0, deadline - time.monotonic())
            args = [name, engine, f"{left:.1f}", str(work), str(findings), str(hang_s)]
            args += [str(mem_bytes), str(seed + res.restarts)]
            with (work / "child.log").open("ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "reclaim_fixtures.fuzz", *args],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            first = False
            outcome, peak_mb = _watch(proc, status, hang_s, deadline + 120)
            res.peak_rss_mb = max(res.peak_rss_mb, peak_mb)
            _, _, _, started, data = status.read()
            if outcome == "hang":
                res.hangs += 1
                extra.append(_parent_finding("hang", f"killed after {hang_s:g} s", findings, data))
            elif outcome != "ok" and not started:  # died between inputs, or before the first
                res.crashes += 1
                log_tail = (work / "child.log").read_text(errors="replace").splitlines()[-3:]
                extra.append(_parent_finding("crash", f"{outcome}: {log_tail}", None, b""))
                break
            elif outcome != "ok":
                res.crashes += 1
                extra.append(_parent_finding("crash", outcome, findings, data))
            else:
                break
            n_tried, n_unexpected, n_slow = _HDR.unpack_from(status.mm, 0)[:3]
            _HDR.pack_into(status.mm, 0, n_tried + 1, n_unexpected, n_slow, 0.0, 0)  # counted
            res.restarts += 1
        res.tried, res.unexpected, slow, _, _ = status.read()[:5]
        res.hangs += slow
    finally:
        status.close()
    res.findings = _collect(log, extra)
    return res


def _parent_finding(kind: str, message: str, findings: Path | None, data: bytes) -> dict[str, Any]:
    type_name = "Hang" if kind == "hang" else "Crash"
    return {
        "kind": kind,
        "type": type_name,
        "message": message,
        "where": "-",
        "via": "-",
        "signature": signature(kind, type_name, message, "-", "-"),
        "file": _save_input(findings, kind, data) if findings else "-",
    }


def _hwm_mb(pid: int) -> float:
    """The peak resident memory of process ``pid`` since its exec (VmHWM), in MB; 0 if gone.

    Not ``ru_maxrss``: Linux carries it over exec from the forking parent, so a child of pytest
    would report pytest's own peak."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def _watch(
    proc: subprocess.Popen[bytes], status: Status, hang_s: float, hard_deadline: float
) -> tuple[str, float]:
    """Wait for the child; kill it when one input runs past ``hang_s``. Returns (outcome, peak
    RSS in MB sampled every 50 ms) with outcome "ok", "hang", or how the child died."""
    outcome = ""
    peak = 0.0
    while True:
        peak = max(peak, _hwm_mb(proc.pid))
        pid, code, _ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = code
            break
        started = status.read()[3]
        now = time.monotonic()
        if (started and now - started > hang_s) or now > hard_deadline:
            outcome = "hang"
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            _, code, _ru = os.wait4(proc.pid, 0)
            proc.returncode = code
            break
        time.sleep(0.05)
    if outcome:
        return outcome, peak
    if os.WIFSIGNALED(code):
        return f"killed by signal {signal.Signals(os.WTERMSIG(code)).name}", peak
    rc = os.WEXITSTATUS(code)
    return ("ok" if rc == 0 else f"child exited with status {rc}"), peak


def _collect(log: Path, extra: list[dict[str, Any]]) -> list[Finding]:
    recs = list(extra)
    if log.exists():
        recs += [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    out: dict[str, Finding] = {}
    for i, r in enumerate(recs):
        if r["kind"] != "exception":  # every hang and crash is listed with its own input
            r["signature"] += f"|{i}"
        if r["signature"] in out:
            out[r["signature"]].count += 1
        else:
            out[r["signature"]] = Finding(**r)
    return list(out.values())


def replay(name: str, data: bytes, scratch: Path) -> str:
    """Run one saved input in this process; the traceback for a finding, "" when none."""
    target = TARGETS[name]
    target.prepare(scratch)
    run = target.make_run(scratch)
    try:
        run(data)
    except BaseException as e:
        if is_expected(e):
            return ""
        text = "".join(traceback.format_exception(e))
        if isinstance(e, ScanRecordedError):
            inner = unguarded_media_error(data)
            text += "\nthe same decode through Media's views, unguarded:\n"
            text += "".join(traceback.format_exception(inner)) if inner else "(not reproduced)\n"
        return text
    return ""


def unguarded_media_error(data: bytes) -> BaseException | None:
    """The exception behind a decoder failure ``analyze_bytes`` recorded without a traceback:
    the same decoding through ``Media``'s views, nothing caught but ``ReclaimError``."""
    from reclaim.media import Media

    try:
        media = Media(data)
        if media.kind == "video":
            media.video_info()
        else:
            media.image(max_side=512)
            media.image()
        for _ in media.frames():
            pass
    except BaseException as e:
        return None if is_expected(e) else e
    return None


def iter_results_table(results: list[TargetResult]) -> Iterator[str]:
    head = ("target", "engine", "seconds", "inputs", "unexpected", "hangs", "crashes", "peak RSS")
    rows = [
        (
            r.target,
            r.engine,
            f"{r.seconds:.0f}",
            str(r.tried),
            f"{r.unexpected} ({sum(f.kind == 'exception' for f in r.findings)} distinct)",
            str(r.hangs),
            str(r.crashes),
            f"{r.peak_rss_mb:.0f} MB",
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    yield "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
    for row in rows:
        yield "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
