"""Check an evidence pack: every hash recomputed, the custody chain walked, every change named."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reclaim.errors import InputError
from reclaim.report.custody import verify_chain

_MAX_MEMBER = 2 * 1024 * 1024 * 1024


@dataclass
class PackCheck:
    path: Path
    items: int = 0
    files_checked: int = 0
    custody_entries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_pack(path: Path) -> PackCheck:
    """Verify ``path``. Raises InputError when it is not a readable reclaim pack at all."""
    check = PackCheck(path)
    try:
        z = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise InputError(f"{path}: not a readable ZIP file ({e})") from e
    with z:
        names = {i.filename: i for i in z.infolist() if not i.is_dir()}
        for required in ("manifest.json", "custody.jsonl", "SEAL.json"):
            if required not in names:
                raise InputError(f"{path}: not a reclaim evidence pack (no {required})")

        def read(name: str) -> bytes:
            if names[name].file_size > _MAX_MEMBER:
                raise InputError(f"{path}: member {name} is implausibly large")
            try:
                return z.read(name)
            except (zipfile.BadZipFile, OSError) as e:
                # A CRC error means the stored bytes changed: report it, do not stop.
                check.problems.append(f"{name}: damaged inside the ZIP ({e})")
                return b""

        # 1. The custody chain.
        entries: list[dict[str, Any]] = []
        for n, line in enumerate(read("custody.jsonl").decode("utf-8", "replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                check.problems.append(f"custody.jsonl line {n}: not valid JSON (altered)")
        check.custody_entries = len(entries)
        check.problems += [p.message for p in verify_chain(entries)]
        try:
            seal = json.loads(read("SEAL.json"))
        except json.JSONDecodeError:
            seal = {}
            check.problems.append("SEAL.json: not valid JSON (altered)")
        if not entries or entries[-1].get("hash") != seal.get("custody_head"):
            check.problems.append(
                "custody.jsonl: its last entry is not the sealed one (log truncated or altered)"
            )
        export = entries[-1] if entries else {}
        if export.get("action") != "export":
            check.problems.append("custody.jsonl: does not end with this export")
        recorded: dict[str, str] = export.get("details", {}).get("files", {})

        # 2. Every file the export entry recorded, byte for byte.
        raw_manifest = read("manifest.json")
        manifest_sha = hashlib.sha256(raw_manifest).hexdigest()
        if manifest_sha != export.get("details", {}).get("manifest_sha256"):
            check.problems.append("manifest.json: altered since export (hash differs)")
        try:
            manifest = json.loads(raw_manifest)
        except json.JSONDecodeError:
            manifest = {"items": []}
            check.problems.append("manifest.json: not valid JSON (altered)")
        by_file = {it.get("file"): it for it in manifest.get("items", []) if it.get("file")}
        check.items = len(manifest.get("items", []))
        for name, sha in recorded.items():
            if name == "manifest.json":
                continue
            if name not in names:
                check.problems.append(f"{name}: missing from the pack")
                continue
            data = read(name)
            check.files_checked += 1
            actual = hashlib.sha256(data).hexdigest()
            if actual != sha:
                check.problems.append(f"{name}: altered since export{_which(by_file.get(name))}")
            it = by_file.get(name)
            if it is not None and actual != it.get("sha256"):
                check.problems.append(
                    f"{name}: bytes do not match item {str(it.get('sha256'))[:16]}… of the manifest"
                )
        for name in names:
            if name not in recorded and name not in ("custody.jsonl", "SEAL.json"):
                check.problems.append(f"{name}: added after export (not in the custody record)")
        for fname, it in by_file.items():
            if fname not in recorded:
                check.problems.append(
                    f"{fname}: listed in the manifest but not in the custody record{_which(it)}"
                )
    return check


def _which(item: dict[str, Any] | None) -> str:
    if not item:
        return ""
    where = ", ".join(s.get("where", "?") for s in item.get("seen_at", [])[:2])
    return f" — item {str(item.get('sha256'))[:16]}… seen at {where}"
