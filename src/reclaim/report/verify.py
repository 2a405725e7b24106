"""Check an evidence pack: its ZIP structure read strictly, every hash recomputed, the custody
chain walked, the seal's signature and time-stamp checked offline, every change named.

What a pack may hold is exactly what its custody export entry lists (manifest.json and every
other file, by SHA-256), plus custody.jsonl, SEAL.json, SEAL.sig and SEAL.tsr, which that entry
cannot list because they are written after it. Anything else, a directory entry included, is
refused, as is anything two ZIP readers could read differently (``reclaim.report.zipcheck``).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from reclaim.errors import InputError
from reclaim.report.custody import verify_chain
from reclaim.report.seal import (
    fingerprint,
    normalise_fingerprint,
    public_key_from_info,
    public_key_pem,
    verify_signature,
)
from reclaim.report.timestamp import TimestampError, TimestampInfo, verify_response
from reclaim.report.zipcheck import check_structure

_MAX_MEMBER = 2 * 1024 * 1024 * 1024
SEAL_FILES = ("custody.jsonl", "SEAL.json", "SEAL.sig", "SEAL.tsr")


@dataclass
class PackCheck:
    path: Path
    items: int = 0
    files_checked: int = 0
    custody_entries: int = 0
    problems: list[str] = field(default_factory=list)
    signer: str | None = None  # fingerprint of the key whose signature verified
    key_pinned: bool = False  # ... and it is the one the reader expected (--key)
    timestamp: TimestampInfo | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


class _DuplicateKey(ValueError):
    pass


def _strict_json(data: bytes) -> Any:
    """JSON where a key given twice is an error: readers keep different copies (Python the last,
    others the first), so the manifest or the seal would say two things."""

    def pairs(kv: list[tuple[str, Any]]) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for k, v in kv:
            if k in d:
                raise _DuplicateKey(f"key {k!r} given twice")
            d[k] = v
        return d

    return json.loads(data, object_pairs_hook=pairs)


def verify_pack(
    path: Path, expected_key: str | None = None, tsa_certs: list[x509.Certificate] | None = None
) -> PackCheck:
    """Verify ``path``. ``expected_key``: the signer's fingerprint the reader was given (see
    ``reclaim.report.seal.resolve_pin``); ``tsa_certs``: the time-stamping authority to trust.

    Raises InputError when it is not a readable reclaim pack at all."""
    check = PackCheck(path)
    if expected_key is not None:
        pin = normalise_fingerprint(expected_key)
        if pin is None:
            raise InputError(f"{expected_key!r} is not a key fingerprint (SHA256:<64 hex>)")
        expected_key = pin
    try:
        z = zipfile.ZipFile(path)
    except Exception as e:
        # zipfile meets hostile bytes with BadZipFile, but also NotImplementedError ("zip file
        # version"), IndexError or struct.error from its extra-field parser: all mean the same.
        raise InputError(f"{path}: not a readable ZIP file ({type(e).__name__}: {e})") from e
    with z, open(path, "rb") as raw:
        check.problems += check_structure(raw)
        infos = z.infolist()
        names = {i.filename: i for i in infos if not i.filename.endswith("/")}
        for required in ("manifest.json", "custody.jsonl", "SEAL.json"):
            if required not in names:
                raise InputError(f"{path}: not a reclaim evidence pack (no {required})")

        def read(name: str) -> bytes:
            if names[name].file_size > _MAX_MEMBER:
                raise InputError(f"{path}: member {name} is implausibly large")
            try:
                return z.read(names[name])
            except (
                zipfile.BadZipFile,
                OSError,
                EOFError,
                zlib.error,
                NotImplementedError,  # a compression method zipfile lacks
                RuntimeError,  # encrypted
                ValueError,
                IndexError,
            ) as e:
                # A CRC error means the stored bytes changed: report it, do not stop.
                check.problems.append(f"{name}: damaged inside the ZIP ({e})")
                return b""

        def parse(name: str, data: bytes) -> Any:
            try:
                return _strict_json(data)
            except _DuplicateKey as e:
                check.problems.append(f"{name}: {e} (readers would differ on its value)")
            except (json.JSONDecodeError, UnicodeDecodeError):
                check.problems.append(f"{name}: not valid JSON (altered)")
            return None

        # 1. The custody chain, each line exactly as reclaim writes it.
        entries: list[dict[str, Any]] = []
        for n, line in enumerate(read("custody.jsonl").decode("utf-8", "replace").splitlines(), 1):
            if not line.strip():
                continue
            entry = parse(f"custody.jsonl line {n}", line.encode())
            if not isinstance(entry, dict):
                continue
            if json.dumps(entry, ensure_ascii=False, sort_keys=True) != line:
                check.problems.append(
                    f"custody.jsonl line {n}: not in the form reclaim writes (reformatted)"
                )
            entries.append(entry)
        check.custody_entries = len(entries)
        check.problems += [p.message for p in verify_chain(entries)]
        raw_seal = read("SEAL.json")
        seal = parse("SEAL.json", raw_seal)
        if not isinstance(seal, dict):
            seal = {}
        if not entries or entries[-1].get("hash") != seal.get("custody_head"):
            check.problems.append(
                "custody.jsonl: its last entry is not the sealed one (log truncated or altered)"
            )
        export = entries[-1] if entries else {}
        ends_with_export = export.get("action") == "export"
        if not ends_with_export:
            check.problems.append("custody.jsonl: does not end with this export")
        details = export.get("details")
        if not isinstance(details, dict):
            details = {}
        recorded = details.get("files")
        if not isinstance(recorded, dict):
            recorded = {}

        # 2. The seal's signature, and the key the reader expected.
        _check_signature(check, raw_seal, seal, names, read, expected_key)

        # 3. Every file the export entry recorded, byte for byte.
        raw_manifest = read("manifest.json")
        manifest_sha = hashlib.sha256(raw_manifest).hexdigest()
        if manifest_sha != details.get("manifest_sha256"):
            check.problems.append("manifest.json: altered since export (hash differs)")
        manifest = parse("manifest.json", raw_manifest)
        if not isinstance(manifest, dict):
            manifest = {"items": []}
        listed_items = manifest.get("items")
        if not isinstance(listed_items, list):
            listed_items = []
        items = [it for it in listed_items if isinstance(it, dict)]
        by_file = {it["file"]: it for it in items if isinstance(it.get("file"), str)}
        check.items = len(items)
        for name, sha in recorded.items():
            if name == "manifest.json":
                continue
            if name not in names:
                check.problems.append(f"{name}: missing from the pack")
                continue
            data = read(name)
            check.files_checked += 1
            actual = hashlib.sha256(data).hexdigest()
            if not isinstance(sha, str) or actual != sha:
                check.problems.append(f"{name}: altered since export{_which(by_file.get(name))}")
            it = by_file.get(name)
            if it is not None and actual != it.get("sha256"):
                check.problems.append(
                    f"{name}: bytes do not match item {str(it.get('sha256'))[:16]}… of the manifest"
                )
        listed = set(recorded) | set(SEAL_FILES)
        for name in dict.fromkeys(i.filename for i in infos):
            if ends_with_export and name not in listed:
                check.problems.append(
                    f"{name}: added after export (not listed in the manifest or the custody record)"
                )
        for fname, it in by_file.items():
            if ends_with_export and fname not in recorded:
                check.problems.append(
                    f"{fname}: listed in the manifest but not in the custody record{_which(it)}"
                )
        if check.signer and ends_with_export:
            fp = check.signer
            named = manifest.get("seal_key")
            if not isinstance(named, dict) or named.get("fingerprint") != fp:
                check.problems.append("manifest.json: names another signing key than the seal")
            if details.get("seal_key") != fp:
                check.problems.append("custody.jsonl: the export names another signing key")

        # 4. The time-stamp, offline.
        if "SEAL.tsr" in names:
            try:
                check.timestamp = verify_response(read("SEAL.tsr"), raw_seal, tsa_certs)
            except TimestampError as e:
                check.problems.append(f"SEAL.tsr: {e}")
        elif seal.get("timestamp_authority"):
            check.problems.append(
                f"SEAL.tsr: missing, though the seal says {seal['timestamp_authority']} "
                "time-stamped it (removed)"
            )
        elif tsa_certs:
            check.problems.append("SEAL.tsr: missing, though a time-stamping authority was given")
    return check


def _check_signature(
    check: PackCheck,
    raw_seal: bytes,
    seal: dict[str, Any],
    names: dict[str, zipfile.ZipInfo],
    read: Any,
    expected_key: str | None,
) -> None:
    if "key" not in seal or "SEAL.sig" not in names:
        check.problems.append(
            "SEAL.sig: the seal is not signed, so a pack rewritten consistently could not be "
            "told apart (made by a reclaim older than signed packs, or signature removed)"
        )
        return
    try:
        pub = public_key_from_info(seal["key"])
    except ValueError as e:
        check.problems.append(f"SEAL.json: {e}")
        return
    fp = fingerprint(pub)
    if not verify_signature(pub, read("SEAL.sig"), raw_seal):
        check.problems.append(
            f"SEAL.sig: the signature does not verify with the key the seal names ({fp}): "
            "the seal was altered after signing"
        )
        return
    check.signer = fp
    if "seal-key.pem" in names and read("seal-key.pem") != public_key_pem(pub):
        check.problems.append("seal-key.pem: not the key that signed the seal")
    if expected_key is not None:
        if fp == expected_key:
            check.key_pinned = True
        else:
            check.problems.append(
                f"SEAL.sig: signed by a different key: {fp}, expected {expected_key} "
                "(the pack was re-signed by someone else)"
            )


def _which(item: dict[str, Any] | None) -> str:
    if not item:
        return ""
    seen = item.get("seen_at")
    if not isinstance(seen, list):
        seen = []
    where = ", ".join(str(s.get("where", "?")) for s in seen[:2] if isinstance(s, dict))
    return f" — item {str(item.get('sha256'))[:16]}… seen at {where}"
