"""Zip and tar archives read in place, never extracted to disk.

Every member becomes an :class:`Entry` whose locator is ``Locator("archive", path=<outer archive>,
member=<member path>)``; archives inside archives are opened from their bytes, their member paths
joined with ``!`` (``inner.zip!photos/a.jpg``), up to ``SourceLimits.max_archive_depth`` levels.

Untrusted archives are treated as hostile. Each guard turns the offending member into an
``Entry(error=...)`` with a one-line reason and the scan goes on:

- names that would escape an extraction folder (absolute, ``..``, drive letters, backslashes);
- symbolic and hard links, devices, fifos (members; the archive file itself is opened only
  when it is a regular file, see ``base.open_regular``);
- zip bombs: declared size over ``max_file_bytes``, declared compression ratio over
  ``max_archive_ratio``, and the same caps enforced again while the bytes are read in chunks
  (headers can lie), a running total over ``max_archive_total_bytes`` and more than
  ``max_archive_members`` members (these two stop the rest of the archive);
- archives nested deeper than ``max_archive_depth``; encrypted zip members.

An archive that cannot be read at all (corrupt, truncated, not an archive) yields one error entry
for the archive itself (member ``None`` for the outermost one, the nested archive's member path
otherwise). ``entries()`` never raises for bad data.
"""

from __future__ import annotations

import bz2
import copy
import gzip
import io
import lzma
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from reclaim.errors import ArchiveRefused
from reclaim.sources.base import Entry, Locator, SourceLimits, open_regular

ArchiveKind = Literal["zip", "tar"]

_CHUNK = 64 * 1024
# The ratio guard only applies once a member (or a compressed tar stream) has expanded past this
# many bytes: small, very compressible files (a flat-colour BMP) are not bombs.
_RATIO_FLOOR = 1024 * 1024
# Slack above our cap in the size zipfile is told to expect (zipfile reads ahead a few KiB).
_PROBE_MARGIN = 1024 * 1024
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_GZIP_MAGIC = b"\x1f\x8b"
_BZ2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_DRIVE = re.compile(r"^[A-Za-z]:")

# What the standard library's zip/tar/zlib/bz2/lzma readers raise on bad bytes.
_BAD_DATA: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    tarfile.TarError,
    OSError,
    EOFError,
    ValueError,
    struct.error,
    zlib.error,
    lzma.LZMAError,
    NotImplementedError,
    RuntimeError,
    LookupError,
    ArithmeticError,
)
#: The tar stream's reader also meets MemoryError: an xz or LZMA stream's declared dictionary.
_BAD_DATA_OR_MEMORY: tuple[type[Exception], ...] = (*_BAD_DATA, MemoryError)


# --- detection --------------------------------------------------------------------------------


def _tar_header_ok(block: bytes) -> bool:
    """True when ``block`` is a valid (non-empty) tar header: 512 bytes with a good checksum."""
    if len(block) != tarfile.BLOCKSIZE or block.count(0) == tarfile.BLOCKSIZE:
        return False
    try:
        tarfile.TarInfo.frombuf(block, tarfile.ENCODING, "surrogateescape")
    except (tarfile.TarError, ValueError):
        return False
    return True


def _decompressed_head(f: IO[bytes], magic: bytes) -> bytes:
    """The first tar block inside a gzip/bzip2/xz stream, or b"" when it cannot be read."""
    try:
        if magic.startswith(_GZIP_MAGIC):
            with gzip.GzipFile(fileobj=f, mode="rb") as gz:
                return gz.read(tarfile.BLOCKSIZE)
        if magic.startswith(_BZ2_MAGIC):
            with bz2.BZ2File(f, mode="rb") as bz:
                return bz.read(tarfile.BLOCKSIZE)
        with lzma.LZMAFile(f, mode="rb") as xz:
            return xz.read(tarfile.BLOCKSIZE)
    except _BAD_DATA:
        return b""


def _kind_of(f: IO[bytes]) -> ArchiveKind | None:
    """What archive a seekable binary file holds, from its first bytes; position is restored."""
    start = f.tell()
    try:
        head = f.read(tarfile.BLOCKSIZE)
        if head[:4] in _ZIP_MAGIC:
            return "zip"
        if _tar_header_ok(head):
            return "tar"
        if not head.startswith((_GZIP_MAGIC, _BZ2_MAGIC, _XZ_MAGIC)):
            return None
        f.seek(start)
        return "tar" if _tar_header_ok(_decompressed_head(f, head)) else None
    finally:
        f.seek(start)


def detect(spec: str) -> bool:
    """True when ``spec`` is a regular file holding a zip or tar (.tar/.tgz/.tbz2/.txz) archive.

    Decided from the bytes (magic numbers, a valid tar header inside the compressed stream),
    never from the file name. An empty tar (only end-of-archive blocks) is not detected.
    """
    try:
        f, _ = open_regular(spec, follow_links=True)
    except OSError:  # missing, unreadable, or not a regular file (never opened: FIFO, device)
        return False
    try:
        with f:
            return _kind_of(f) is not None
    except OSError:
        return False


# --- guards -----------------------------------------------------------------------------------


def _name_problem(name: str) -> str | None:
    """Why a member name is unsafe (it would escape an extraction folder), or None."""
    if not name:
        return "member has an empty name"
    if "\x00" in name:
        return "member name contains a NUL byte"
    norm = name.replace("\\", "/")
    if norm.startswith("/"):
        return "absolute member path"
    if _DRIVE.match(norm):
        return "member path starts with a drive letter"
    if ".." in norm.split("/"):
        return "member path climbs out of the archive (`..`)"
    return None


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


@dataclass
class _Budget:
    """Counters shared by an outer archive and everything nested inside it."""

    members: int = 0
    total: int = 0
    stopped: bool = False


class _CountingReader(io.RawIOBase):
    """Counts bytes read from a compressed stream, for the whole-stream ratio guard."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.count += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _HeaderLog:
    """Remembers how the last tar header block looked, to tell a clean end from a truncation."""

    last: Literal["member", "end", "short", "invalid"] = "member"


def _logging_tarinfo(log: _HeaderLog) -> type[tarfile.TarInfo]:
    class _LoggingTarInfo(tarfile.TarInfo):
        @classmethod
        def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> _LoggingTarInfo:
            if len(buf) != tarfile.BLOCKSIZE:
                log.last = "short"
            elif buf.count(0) == tarfile.BLOCKSIZE:
                log.last = "end"
            else:
                log.last = "invalid"
            info = super().frombuf(buf, encoding, errors)
            log.last = "member"
            return info

    return _LoggingTarInfo


class _OverCap(Exception):
    """A member's bytes passed one of the caps while being read (``index`` says which)."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"refused: member expands past {reason} while being read")
        self.index = index


def _read_capped(
    fobj: IO[bytes], caps: list[tuple[int, str]], check: Callable[[int], None] | None = None
) -> bytes:
    """Read ``fobj`` in chunks, never more than one byte past the smallest cap.

    ``caps`` is a list of (bytes, reason); passing the smallest raises _OverCap. ``check`` is
    called with the running size after each chunk and may raise to stop the read.
    """
    cap = min(c for c, _ in caps)
    chunks: list[bytes] = []
    got = 0
    while True:
        chunk = fobj.read(min(_CHUNK, cap + 1 - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
        if got > cap:
            index = next(i for i, (c, _) in enumerate(caps) if c == cap)
            raise _OverCap(index, caps[index][1])
        if check is not None:
            check(got)
    return b"".join(chunks)


# --- the source -------------------------------------------------------------------------------


class ArchiveSource:
    """Members of one zip or tar archive (and of the archives inside it), in archive order."""

    name = "archive"

    def __init__(self, spec: str, limits: SourceLimits) -> None:
        self.spec = spec
        self.path = str(Path(spec).resolve())
        self.limits = limits
        self._outer_stamp = ""

    def describe(self) -> str:
        return f"archive {self.path}"

    def entries(self) -> Iterator[Entry]:
        try:
            f, st = open_regular(self.path)
        except OSError as e:
            yield self._error(None, f"cannot read archive: {e.strerror or _one_line(e)}")
            return
        try:
            try:
                kind = _kind_of(f)
            except OSError as e:
                yield self._error(None, f"cannot read archive: {e.strerror or _one_line(e)}")
                return
            if kind is None:
                yield self._error(
                    None, "not a zip or tar archive (unrecognised first bytes); nothing read"
                )
                return
            self._outer_stamp = f"{st.st_size}:{st.st_mtime_ns}"
            yield from self._archive(f, kind, None, 0, _Budget())
        finally:
            f.close()

    # -- helpers --

    def _loc(self, member: str | None) -> Locator:
        return Locator("archive", self.path, member)

    def _error(self, member: str | None, reason: str) -> Entry:
        return Entry(self._loc(member), error=reason)

    @staticmethod
    def _join(container: str | None, name: str) -> str:
        return f"{container}!{name}" if container else name

    def _archive(
        self, f: IO[bytes], kind: ArchiveKind, container: str | None, depth: int, budget: _Budget
    ) -> Iterator[Entry]:
        if kind == "zip":
            yield from self._zip(f, container, depth, budget)
        else:
            yield from self._tar(f, container, depth, budget)

    def _count_member(self, member: str, budget: _Budget) -> Entry | None:
        """Count one member; past the cap, return the error entry and stop the archive."""
        budget.members += 1
        if budget.members > self.limits.max_archive_members:
            budget.stopped = True
            return self._error(
                member,
                f"refused: more than {self.limits.max_archive_members} members "
                "(max_archive_members); rest of the archive not read",
            )
        return None

    def _over_total(self, member: str, budget: _Budget) -> Entry:
        budget.stopped = True
        return self._error(
            member,
            f"refused: archive expands past {self.limits.max_archive_total_bytes} bytes in all "
            "(max_archive_total_bytes); rest of the archive not read",
        )

    def _payload(
        self, member: str, data: bytes, stamp: str, depth: int, budget: _Budget
    ) -> Iterator[Entry]:
        """The entry for a member's bytes, or the members of the archive those bytes hold."""
        inner = io.BytesIO(data)
        kind = _kind_of(inner)
        if kind is None:
            fp = f"{self._outer_stamp}:{member}:{len(data)}:{stamp}"
            yield Entry(self._loc(member), data=data, fingerprint=fp)
            return
        if depth >= self.limits.max_archive_depth:
            yield self._error(
                member,
                f"refused: archive nested more than {self.limits.max_archive_depth} levels deep "
                "(max_archive_depth); its members were not read",
            )
            return
        yield from self._archive(inner, kind, member, depth + 1, budget)

    # -- zip --

    def _zip(
        self, f: IO[bytes], container: str | None, depth: int, budget: _Budget
    ) -> Iterator[Entry]:
        try:
            zf = zipfile.ZipFile(f)
        except _BAD_DATA as e:
            yield self._error(container, f"corrupt or unreadable zip archive ({_one_line(e)})")
            return
        with zf:
            for info in zf.infolist():
                yield from self._zip_member(zf, info, container, depth, budget)
                if budget.stopped:
                    return

    def _zip_member(
        self,
        zf: zipfile.ZipFile,
        info: zipfile.ZipInfo,
        container: str | None,
        depth: int,
        budget: _Budget,
    ) -> Iterator[Entry]:
        lim = self.limits
        member = self._join(container, info.filename)
        over = self._count_member(member, budget)
        if over is not None:
            yield over
            return
        problem = _name_problem(info.orig_filename)
        if problem is not None:
            yield self._error(member, f"refused: {problem}; hostile archive, member not read")
            return
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            yield self._error(member, "refused: symbolic link in archive, not followed")
            return
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            yield self._error(member, "refused: device, fifo or socket in archive")
            return
        if info.is_dir() or stat.S_ISDIR(mode):
            return
        if info.flag_bits & 0x1:
            yield self._error(
                member, "encrypted member: cannot be scanned without its password; not read"
            )
            return
        declared = info.file_size
        if declared > lim.max_file_bytes:
            yield self._error(
                member,
                f"refused: declared size {declared} bytes over the per-item cap "
                f"{lim.max_file_bytes} (max_file_bytes); possible zip bomb",
            )
            return
        ratio = declared / max(1, info.compress_size)
        if declared > _RATIO_FLOOR and ratio > lim.max_archive_ratio:
            yield self._error(
                member,
                f"refused: compression ratio {ratio:.0f}:1 over the cap "
                f"{lim.max_archive_ratio:g}:1 (max_archive_ratio); possible zip bomb",
            )
            return
        remaining = lim.max_archive_total_bytes - budget.total
        if declared > remaining:
            yield self._over_total(member, budget)
            return
        caps = [
            (lim.max_file_bytes, f"the per-item cap {lim.max_file_bytes} bytes (max_file_bytes)"),
            (
                max(_RATIO_FLOOR, int(info.compress_size * lim.max_archive_ratio)),
                f"the compression ratio cap {lim.max_archive_ratio:g}:1 (max_archive_ratio)",
            ),
            (remaining, f"the archive total cap {lim.max_archive_total_bytes} bytes"),
        ]
        # zipfile stops reading at the declared size (and then fails the CRC check); read with a
        # copy that declares more than we will ever accept, so that a header understating the
        # size is stopped by our own cap while reading, not trusted.
        probe = copy.copy(info)
        probe.file_size = min(c for c, _ in caps) + _PROBE_MARGIN
        try:
            with zf.open(probe) as fobj:
                data = _read_capped(fobj, caps)
        except _OverCap as e:
            if e.index == 2:
                yield self._over_total(member, budget)
                return
            yield self._error(member, f"{e} (header declared {declared} bytes); possible zip bomb")
            return
        except _BAD_DATA as e:
            yield self._error(member, f"corrupt member, not read ({_one_line(e)})")
            return
        except MemoryError:
            # An LZMA member may declare a dictionary of up to 4 GiB: the decompressor asks for
            # it before reading a byte (found by fuzzing under a memory ceiling).
            yield self._error(member, "refused: its decompressor needs more memory than allowed")
            return
        budget.total += len(data)
        if len(data) != declared:
            yield self._error(
                member,
                f"corrupt member: holds {len(data)} bytes but its header declares {declared}; "
                "archive damaged or crafted",
            )
            return
        yield from self._payload(member, data, f"{info.CRC:08x}", depth, budget)

    # -- tar --

    def _tar(
        self, f: IO[bytes], container: str | None, depth: int, budget: _Budget
    ) -> Iterator[Entry]:
        raw = _CountingReader(f)
        log = _HeaderLog()
        try:
            tf = tarfile.open(  # noqa: SIM115 - closed by the with block below
                fileobj=raw, mode="r|*", tarinfo=_logging_tarinfo(log)
            )
        except _BAD_DATA as e:
            yield self._error(container, f"corrupt or unreadable tar archive ({_one_line(e)})")
            return
        current: str | None = None
        with tf:
            try:
                for ti in tf:
                    current = ti.name
                    yield from self._tar_member(tf, ti, raw, container, depth, budget)
                    if budget.stopped:
                        return
            except _BAD_DATA_OR_MEMORY as e:
                where = f" at member {current!r}" if current is not None else ""
                why = (
                    "its decompressor needs more memory than allowed"
                    if isinstance(e, MemoryError)
                    else _one_line(e)
                )
                yield self._error(
                    container,
                    f"corrupt or truncated tar archive{where} ({why}); "
                    "rest of the archive not read",
                )
                return
        if log.last == "short":
            yield self._error(
                container, "truncated tar archive: it ends without an end-of-archive marker"
            )
        elif log.last == "invalid":
            yield self._error(
                container, "corrupt tar archive: a damaged header; rest of the archive not read"
            )

    def _stream_ratio_ok(self, raw: _CountingReader, position: int) -> bool:
        return position <= _RATIO_FLOOR or position <= raw.count * self.limits.max_archive_ratio

    def _tar_member(
        self,
        tf: tarfile.TarFile,
        ti: tarfile.TarInfo,
        raw: _CountingReader,
        container: str | None,
        depth: int,
        budget: _Budget,
    ) -> Iterator[Entry]:
        lim = self.limits
        member = self._join(container, ti.name)
        over = self._count_member(member, budget)
        if over is not None:
            yield over
            return
        ratio_msg = (
            f"refused: compressed stream expands more than {lim.max_archive_ratio:g}:1 "
            "(max_archive_ratio); rest of the archive not read"
        )
        if not self._stream_ratio_ok(raw, ti.offset_data):
            budget.stopped = True
            yield self._error(member, ratio_msg)
            return
        problem = _name_problem(ti.name)
        if problem is not None:
            yield self._error(member, f"refused: {problem}; hostile archive, member not read")
            return
        if ti.issym():
            yield self._error(
                member, f"refused: symbolic link (-> {ti.linkname!r}) in archive, not followed"
            )
            return
        if ti.islnk():
            yield self._error(
                member, f"refused: hard link (-> {ti.linkname!r}) in archive, not followed"
            )
            return
        if ti.isdir():
            return
        if ti.ischr() or ti.isblk() or ti.isfifo():
            yield self._error(member, "refused: device or fifo in archive")
            return
        if not ti.isreg():
            yield self._error(member, f"refused: unsupported tar member type {ti.type!r}")
            return
        # The stream has to pass through every member's bytes, read or skipped: count them all.
        if ti.size > lim.max_archive_total_bytes - budget.total:
            yield self._over_total(member, budget)
            return
        budget.total += ti.size
        if ti.size > lim.max_file_bytes:
            yield self._error(
                member,
                f"refused: size {ti.size} bytes over the per-item cap {lim.max_file_bytes} "
                "(max_file_bytes)",
            )
            return

        def check(got: int) -> None:
            if not self._stream_ratio_ok(raw, ti.offset_data + got):
                raise ArchiveRefused(ratio_msg)

        fobj = tf.extractfile(ti)
        if fobj is None:  # pragma: no cover - isreg() members always have a file object
            yield self._error(member, "member has no data")
            return
        try:
            data = _read_capped(
                fobj,
                [(lim.max_file_bytes, f"the per-item cap {lim.max_file_bytes} bytes")],
                check,
            )
        except _OverCap as e:  # pragma: no cover - tar members never exceed their checked size
            yield self._error(member, str(e))
            return
        except ArchiveRefused as e:
            budget.stopped = True
            yield self._error(member, str(e))
            return
        yield from self._payload(member, data, str(int(ti.mtime)), depth, budget)


def open_archive(spec: str, limits: SourceLimits) -> ArchiveSource:
    return ArchiveSource(spec, limits)
