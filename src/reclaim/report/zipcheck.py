"""A pack's ZIP structure, read strictly: nothing that lets two ZIP readers see different content.

ZIP readers disagree in many places, and each disagreement lets a pack show one thing to the
check and another to whoever opens it:

- two members with one name: ``unzip`` extracts the first, Python's ``zipfile`` reads the last;
- names that collide on a case-insensitive or Unicode-normalising file system (``README.TXT``
  beside ``README.txt``), absolute names, ``..``, backslashes (a folder separator on Windows),
  control characters and NUL (Python cuts the name there, others do not), non-ASCII names not
  flagged as UTF-8 (each reader guesses a code page);
- bytes before the first member (streaming readers see them, directory readers skip them), bytes
  between members that no directory entry names, overlapping members, bytes after the end;
- extra fields: Info-ZIP's Unicode Path field (0x7075) makes ``unzip`` extract a member under
  another name than the one in the directory; timestamps and attributes differ by reader;
- a local header that says something else than the central directory (name, sizes, flags);
- archive and member comments (shown by some tools as if part of the evidence), symbolic links
  (``unzip`` makes a link), encryption, data descriptors, multi-disk archives.

reclaim writes none of these, so each is refused with its own one-line reason. Only the ZIP64
extension (0x0001) is accepted: Python writes it when a pack passes 4 GiB, and it changes
nothing but the width of sizes and offsets.
"""

from __future__ import annotations

import re
import struct
import unicodedata
from dataclasses import dataclass
from typing import BinaryIO

EOCD = b"PK\x05\x06"
CENTRAL = b"PK\x01\x02"
LOCAL = b"PK\x03\x04"
Z64_EOCD = b"PK\x06\x06"
Z64_LOCATOR = b"PK\x06\x07"
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # 46 bytes, as zipfile's structCentralDir
_LOCAL = struct.Struct("<4s2B4HL2L2H")  # 30 bytes, as zipfile's structFileHeader
_EOCD = struct.Struct("<4s4H2LH")  # 22 bytes
_Z64_LOCATOR = struct.Struct("<4sLQL")  # 20 bytes
_Z64_EOCD = struct.Struct("<4sQ2H2L4Q")  # 56 bytes

_UTF8_FLAG = 0x800
_ALLOWED_FLAGS = _UTF8_FLAG | 0x0006  # UTF-8 names; deflate's speed/size option bits
_METHODS = {0: "stored", 8: "deflated"}
_MAX_CENTRAL = 64 * 1024 * 1024
#: What reclaim's own member names are made of; anything else is someone else's.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*/?")


@dataclass
class Member:
    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    offset: int
    extra_ok: bool = True


def _zip64(extra: bytes, fields: list[int]) -> tuple[list[int], str | None]:
    """Resolve the 32-bit ``fields`` set to 0xFFFFFFFF from the ZIP64 extra field; the reason
    when ``extra`` holds anything else (or is malformed)."""
    out = list(fields)
    pos = 0
    while pos < len(extra):
        if pos + 4 > len(extra):
            return out, "has a malformed extra field"
        tag, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        if len(body) != size:
            return out, "has a malformed extra field"
        if tag != 0x0001:
            return out, (
                f"has extra fields (0x{tag:04x}): another reader could see a different name, "
                "time or content; a pack never has them"
            )
        k = 0
        for i, v in enumerate(out):
            if v == 0xFFFFFFFF:
                if k + 8 > len(body):
                    return out, "has a ZIP64 field too short for its sizes"
                out[i] = struct.unpack_from("<Q", body, k)[0]
                k += 8
        pos += 4 + size
    return out, None


def _name_problems(raw: bytes, flags: int) -> tuple[str, list[str]]:
    if flags & _UTF8_FLAG:
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("utf-8", "replace"), ["name is flagged UTF-8 but is not"]
    else:
        name = raw.decode("cp437")
        if any(b >= 0x80 for b in raw):
            return name, [
                "name is not flagged UTF-8: each reader decodes it with its own code page"
            ]
    if not name:
        return name, ["empty name"]
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return name, ["name holds control characters (Python stops reading it at a NUL)"]
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return name, ["absolute name: it would be extracted outside the folder"]
    if "\\" in name:
        return name, ["name holds a backslash, a folder separator on Windows"]
    if ".." in name.split("/"):
        return name, ["name climbs out of the folder (..)"]
    if not _SAFE_NAME.fullmatch(name):
        return name, ["name has characters or parts a pack's names never have"]
    return name, []


def check_structure(f: BinaryIO) -> list[str]:
    """Every structural problem of the ZIP in ``f`` (empty list: a ZIP as reclaim writes it)."""
    problems: list[str] = []
    size = f.seek(0, 2)
    if size < _EOCD.size:
        return ["too short to be a ZIP"]
    # 1. The end record: last 22 bytes, no comment, nothing after it.
    start = max(0, size - _EOCD.size - 0xFFFF)
    f.seek(start)
    tail = f.read()
    i = tail.rfind(EOCD)
    if i < 0 or len(tail) - i < _EOCD.size:
        return ["the ZIP's end record is missing"]
    eocd_pos = start + i
    _, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, clen = _EOCD.unpack_from(tail, i)
    if clen:
        problems.append(
            f"the ZIP has an archive comment ({clen} bytes): some readers show it as if it were "
            "part of the evidence; a pack never has one"
        )
    after = size - (eocd_pos + _EOCD.size + clen)
    if after > 0:
        problems.append(f"{after} bytes after the end of the ZIP, which no ZIP reader shows")
    # 2. ZIP64, read as Python reads it: a locator just before the end record.
    cd_end = eocd_pos
    if eocd_pos >= _Z64_LOCATOR.size:
        f.seek(eocd_pos - _Z64_LOCATOR.size)
        loc = f.read(_Z64_LOCATOR.size)
        if loc[:4] == Z64_LOCATOR:
            _, z_disk, z_off, z_disks = _Z64_LOCATOR.unpack(loc)
            f.seek(z_off)
            rec = f.read(_Z64_EOCD.size)
            if z_disk != 0 or z_disks > 1 or len(rec) != _Z64_EOCD.size or rec[:4] != Z64_EOCD:
                return [*problems, "the ZIP64 end record is missing or spans several disks"]
            _, rsize, _, _, disk, cd_disk, n_disk, n_total, cd_size, cd_offset = _Z64_EOCD.unpack(
                rec
            )
            if (
                rsize != _Z64_EOCD.size - 12
                or z_off + _Z64_EOCD.size != eocd_pos - _Z64_LOCATOR.size
            ):
                problems.append("the ZIP64 end record is not where it belongs (data around it)")
            cd_end = z_off
    if disk or cd_disk or n_disk != n_total:
        return [*problems, "the ZIP spans several disks"]
    # Python shifts every offset by the bytes found before the directory's stated offset.
    concat = cd_end - cd_size - cd_offset
    if concat < 0:
        return [*problems, "the central directory runs past the ZIP's end record"]
    if concat > 0:
        problems.append(
            f"{concat} bytes before the first member: readers that stream the ZIP from its "
            "start see them, readers of its directory skip them"
        )
    if cd_size > _MAX_CENTRAL:
        return [*problems, "the central directory is implausibly large"]

    # 3. The central directory, entry by entry, to its exact end.
    f.seek(cd_offset + concat)
    cd = f.read(cd_size)
    members: list[Member] = []
    pos = 0
    while pos < len(cd):
        if len(cd) - pos < _CENTRAL.size or cd[pos : pos + 4] != CENTRAL:
            problems.append("the central directory is damaged")
            break
        h = _CENTRAL.unpack_from(cd, pos)
        (create_system, flags, method, crc, csize, usize) = (h[2], h[5], h[6], h[9], h[10], h[11])
        nlen, elen, comlen, disk_start, external, offset = h[12], h[13], h[14], h[15], h[17], h[18]
        raw = cd[pos + 46 : pos + 46 + nlen]
        extra = cd[pos + 46 + nlen : pos + 46 + nlen + elen]
        comment = cd[pos + 46 + nlen + elen : pos + 46 + nlen + elen + comlen]
        pos += 46 + nlen + elen + comlen
        if pos > len(cd):
            problems.append("the central directory is damaged")
            break
        name, name_issues = _name_problems(raw, flags)
        problems += [f"{name}: {p}" for p in name_issues]
        (usize, csize, offset, _), why = _zip64(extra, [usize, csize, offset, disk_start])
        if why:
            problems.append(f"{name}: {why}")
        if comment:
            problems.append(f"{name}: has a comment ({len(comment)} bytes); a pack's never do")
        if flags & 0x1:
            problems.append(f"{name}: is encrypted")
        if flags & 0x8:
            problems.append(
                f"{name}: its sizes follow its data (a data descriptor): readers differ"
            )
        if flags & ~_ALLOWED_FLAGS & ~0x9:
            problems.append(f"{name}: has flags 0x{flags:04x} a pack never uses")
        if method not in _METHODS:
            problems.append(f"{name}: compression method {method}, which a pack never uses")
        kind = (external >> 16) & 0o170000
        if create_system == 3 and kind == 0o120000:
            problems.append(f"{name}: is a symbolic link (unzip would make a link, not a file)")
        elif create_system == 3 and kind not in (0, 0o100000, 0o040000):
            problems.append(f"{name}: is not a plain file (mode {kind:o})")
        members.append(
            Member(name, raw, flags, method, crc, csize, usize, offset + concat, why is None)
        )
    if len(members) != n_total and not any("damaged" in p for p in problems):
        problems.append(
            f"the end record counts {n_total} members, the central directory {len(members)}"
        )

    # 4. Names that one system would merge.
    seen: dict[str, list[str]] = {}
    for m in members:
        seen.setdefault(unicodedata.normalize("NFC", m.name).casefold(), []).append(m.name)
    for names in seen.values():
        if len(names) < 2:
            continue
        if len(set(names)) < len(names):
            dup = next(n for n in names if names.count(n) > 1)
            problems.append(
                f"{dup}: appears twice in the ZIP; unzip extracts the first copy, "
                "Python's zipfile the last"
            )
        else:
            problems.append(
                f"{names[0]}: same name as {names[1]} on a case-insensitive or Unicode-"
                "normalising system (macOS, Windows)"
            )

    # 5. Local headers: each member where the directory says, agreeing with it, back to back.
    expected = concat
    prev = "the start of the ZIP"
    for m in sorted(members, key=lambda m: m.offset):
        f.seek(m.offset)
        head = f.read(_LOCAL.size)
        if len(head) != _LOCAL.size or head[:4] != LOCAL:
            problems.append(f"{m.name}: no member header where the directory points")
            continue
        h = _LOCAL.unpack(head)
        flags, method, crc, csize, usize, nlen, elen = h[3], h[4], h[7], h[8], h[9], h[10], h[11]
        raw = f.read(nlen)
        extra = f.read(elen)
        (usize, csize), why = _zip64(extra, [usize, csize])
        if why and m.extra_ok:  # said once, for the directory, when both have it
            problems.append(f"{m.name}: its member header {why}")
        if raw != m.raw_name:
            problems.append(
                f"{m.name}: its member header names it "
                f"{raw.decode('utf-8', 'replace')!r}: readers differ on its name"
            )
        elif (flags, method, crc, csize, usize) != (m.flags, m.method, m.crc, m.csize, m.usize):
            problems.append(
                f"{m.name}: its member header and the directory disagree on its "
                "flags, method, CRC or sizes"
            )
        if m.offset > expected:
            problems.append(
                f"{m.offset - expected} bytes between {prev} and {m.name} that no directory entry "
                "names (a hidden member?)"
            )
        elif m.offset < expected:
            problems.append(f"{m.name}: overlaps {prev}")
        expected = m.offset + _LOCAL.size + nlen + elen + m.csize
        prev = m.name
    if expected < cd_offset + concat and members:
        problems.append(
            f"{cd_offset + concat - expected} bytes between the last member and the central "
            "directory that no directory entry names (a hidden member?)"
        )
    elif expected > cd_offset + concat:
        problems.append(f"{prev}: runs into the central directory")
    return problems
