"""Append-only, hash-chained custody log: who did what to the evidence, and when.

Each entry is one JSON line holding the previous entry's hash; its own ``hash`` is the SHA-256 of
its canonical JSON (sorted keys, no ``hash`` field). Changing, removing or reordering any entry
breaks the chain at that entry, and ``verify_chain`` names it.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from reclaim import __version__
from reclaim.errors import StoreError
from reclaim.store.case import now_iso

LOG_NAME = "custody.jsonl"
GENESIS = "0" * 64
ACTIONS = frozenset(
    {"acquisition", "analysis", "decision", "export", "enrollment", "deletion"}
    # face shields (issue 20): reclaim.shield.case
    | {"shield.created", "shield.sent", "shield.exported", "shield.revoked"}
    # removal requests (issue 22): reclaim.requests.case
    | {"request.drafted", "request.marked", "request.escalated"}
    # keeping watch (issue 22): reclaim.watch, reclaim.alerts
    | {"watch.source", "watch.run", "watch.alert"}
)


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _last_line(f: BinaryIO, block: int = 8192) -> bytes | None:
    """The last non-blank line of an open binary file, read backwards from its end (an append
    costs the same however long the log has grown)."""
    end = f.seek(0, os.SEEK_END)
    tail = b""
    pos = end
    while pos > 0:
        step = min(block, pos)
        pos -= step
        f.seek(pos)
        tail = f.read(step) + tail
        lines = [x for x in tail.split(b"\n") if x.strip()]
        # a complete last line: a newline precedes it, or the file starts with it
        if lines and (pos == 0 or tail.rstrip().rfind(b"\n") >= 0):
            return lines[-1]
    return None


@dataclass
class ChainProblem:
    seq: int | None
    message: str


class CustodyLog:
    """The custody log of one case directory (``custody.jsonl``)."""

    def __init__(self, case_root: Path) -> None:
        self.path = Path(case_root) / LOG_NAME

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        with open(self.path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise StoreError(f"{self.path}: line {n} is not valid JSON") from e
        return out

    def append(
        self, action: str, details: dict[str, Any], actor: str | None = None
    ) -> dict[str, Any]:
        """Add one entry (locked, flushed and fsynced before returning)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown custody action {action!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                last = _last_line(f)
                try:
                    prev = json.loads(last) if last else None
                except json.JSONDecodeError as e:
                    raise StoreError(f"{self.path}: its last line is not valid JSON") from e
                entry: dict[str, Any] = {
                    "seq": (prev["seq"] + 1) if prev else 1,
                    "at": now_iso(),
                    "actor": actor or default_actor(),
                    "action": action,
                    "details": details,
                    "tool": f"reclaim {__version__}",
                    "prev": prev["hash"] if prev else GENESIS,
                }
                entry["hash"] = entry_hash(entry)
                f.seek(0, os.SEEK_END)
                f.write((json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n").encode())
                f.flush()
                os.fsync(f.fileno())
            finally:
                with contextlib.suppress(OSError):
                    fcntl.flock(f, fcntl.LOCK_UN)
        return entry


def verify_chain(entries: Iterable[dict[str, Any]]) -> list[ChainProblem]:
    """Every break in the chain, named by entry sequence number (empty list: intact)."""
    problems: list[ChainProblem] = []
    prev_hash = GENESIS
    expected_seq = 1
    for e in entries:
        seq = e.get("seq")
        if seq != expected_seq:
            problems.append(ChainProblem(seq, f"entry {seq}: expected sequence {expected_seq}"))
        if e.get("prev") != prev_hash:
            problems.append(
                ChainProblem(seq, f"entry {seq}: does not follow the entry before it (chain cut)")
            )
        if e.get("hash") != entry_hash(e):
            problems.append(ChainProblem(seq, f"entry {seq} ({e.get('action')}): content altered"))
        prev_hash = str(e.get("hash"))
        expected_seq = (seq if isinstance(seq, int) else expected_seq) + 1
    return problems
