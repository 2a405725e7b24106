"""The match index on disk: a replica opens the newest snapshot and replays the change log from
its position instead of reading every signal from the database (docs/scale.md, "100M hashes").

A snapshot folder (``DIR/snap-<seq>-<token>/``) holds one ``PdqIndex`` file per indexed signal
type (memory-mapped when opened: the tables stay in the page cache, shared by every replica on
the machine), the signal id map as ``.npy`` arrays (mapped copy-on-write), the vPDQ values kept
for scoring, and ``state.json``: format version, the change-log number it reflects, the entry
at that number (so that a snapshot is never opened against another database), the numbers
still missing below it, and the types it holds. ``DIR/CURRENT`` names the newest; it is
replaced atomically after the folder is complete, so a reader sees a whole snapshot or the one
before. Older folders are removed (a replica that has their files mapped keeps them until it
closes them: unlinked files stay readable).

The folder is the operator's (like the database): whoever can write it can change what the
service matches, so it belongs on the replicas' own disk with the database's permissions.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reclaim.match.pdq_index import PdqIndex

__all__ = [
    "SNAPSHOT_VERSION",
    "SnapshotMismatch",
    "SnapshotState",
    "current_snapshot",
    "open_indexes",
    "read_ids",
    "read_state",
    "read_values",
    "write_snapshot",
]

SNAPSHOT_VERSION = 1
#: The id map's arrays (``_IdMap`` attributes, each in ``ids-<name>.npy``) and their types.
ID_ARRAYS = {"content": "<i8", "bank": "<i8", "flavour": "|i1", "live": "|i1"}
#: Snapshot folders kept (the newest ones; older are removed after a new one is published).
KEEP = 2


class SnapshotMismatch(ValueError):
    """The snapshot cannot be used here (another database, format, or set of types)."""


@dataclass(frozen=True)
class SnapshotState:
    seq: int
    #: The change-log entry at ``seq``: (op, signal id, time written); None when ``seq`` is 0.
    anchor: tuple[str, int, float] | None
    gaps: list[int]
    types: list[str]
    signals: int
    created_at: float
    replica: str

    def as_json(self) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "seq": self.seq,
            "anchor": None if self.anchor is None else list(self.anchor),
            "gaps": self.gaps,
            "types": self.types,
            "signals": self.signals,
            "created_at": self.created_at,
            "replica": self.replica,
        }


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def write_snapshot(
    root: Path,
    state: SnapshotState,
    write_indexes: Callable[[Path], None],
    ids: dict[str, np.ndarray],
    values: dict[int, str],
) -> Path:
    """Write a complete snapshot folder under ``root``: ``write_indexes(folder)`` writes each
    type's ``<type>.pdqi`` in it (``PdqIndexSnapshot.save``, or ``PdqIndex.build_file`` for a
    load streamed from the database); then the id map, values and state. Publish it in
    ``CURRENT`` and remove older folders beyond the newest ``KEEP``. Returns the folder."""
    root.mkdir(parents=True, exist_ok=True)
    name = f"snap-{state.seq:012d}-{secrets.token_hex(4)}"
    tmp = root / f".tmp-{name}"
    tmp.mkdir()
    try:
        write_indexes(tmp)
        missing = [st for st in state.types if not (tmp / f"{st}.pdqi").is_file()]
        if missing:
            raise RuntimeError(f"index files not written: {', '.join(missing)}")
        for key in ID_ARRAYS:
            np.save(tmp / f"ids-{key}.npy", ids[key])
            _fsync_file(tmp / f"ids-{key}.npy")
        (tmp / "values.json").write_text(json.dumps(sorted(values.items())))
        _fsync_file(tmp / "values.json")
        (tmp / "state.json").write_text(json.dumps(state.as_json()))
        _fsync_file(tmp / "state.json")
        _fsync_dir(tmp)
        final = root / name
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pointer = root / f".CURRENT-{secrets.token_hex(4)}"
    pointer.write_text(name + "\n")
    _fsync_file(pointer)
    os.replace(pointer, root / "CURRENT")
    _fsync_dir(root)
    _prune(root, final)
    return final


def _prune(root: Path, newest: Path) -> None:
    folders = sorted(
        (p for p in root.glob("snap-*") if p.is_dir()), key=lambda p: p.name, reverse=True
    )
    keep = {newest.name, *(p.name for p in folders[:KEEP])}
    for p in folders:
        if p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)
    old = time.time() - 3600  # temporary folders of a writer that died
    for p in root.glob(".tmp-snap-*"):
        with contextlib.suppress(OSError):
            if p.stat().st_mtime < old:
                shutil.rmtree(p, ignore_errors=True)


def current_snapshot(root: Path) -> Path | None:
    """The folder ``CURRENT`` names, or None when there is none yet."""
    try:
        name = (root / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return None
    if not name.startswith("snap-") or "/" in name or name != Path(name).name:
        raise SnapshotMismatch(f"CURRENT names {name[:80]!r}, not a snapshot folder")
    folder = root / name
    if not folder.is_dir():
        raise SnapshotMismatch(f"CURRENT names {name}, which is missing")
    return folder


def read_state(folder: Path) -> SnapshotState:
    try:
        raw = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError) as e:
        raise SnapshotMismatch(f"state.json unreadable: {e}") from e
    if not isinstance(raw, dict) or raw.get("version") != SNAPSHOT_VERSION:
        raise SnapshotMismatch(
            f"format version {raw.get('version') if isinstance(raw, dict) else '?'}, "
            f"this reclaim reads {SNAPSHOT_VERSION}"
        )
    try:
        anchor = raw["anchor"]
        return SnapshotState(
            seq=int(raw["seq"]),
            anchor=None if anchor is None else (str(anchor[0]), int(anchor[1]), float(anchor[2])),
            gaps=[int(s) for s in raw["gaps"]],
            types=[str(t) for t in raw["types"]],
            signals=int(raw["signals"]),
            created_at=float(raw["created_at"]),
            replica=str(raw["replica"]),
        )
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise SnapshotMismatch(f"state.json malformed: {e}") from e


def open_indexes(folder: Path, types: list[str], merge_dir: Path) -> dict[str, PdqIndex]:
    """Each type's index, mapped from the folder (merges write their files in ``merge_dir``)."""
    return {st: PdqIndex.open(folder / f"{st}.pdqi", merge_dir=merge_dir) for st in types}


def read_ids(folder: Path) -> dict[str, np.ndarray]:
    """The id map's arrays, mapped copy-on-write (changes stay in this process)."""
    out: dict[str, np.ndarray] = {}
    for key in ID_ARRAYS:
        arr = np.load(folder / f"ids-{key}.npy", mmap_mode="c", allow_pickle=False)
        if arr.ndim != 1 or arr.dtype != np.dtype(ID_ARRAYS[key]):
            raise SnapshotMismatch(f"ids-{key}.npy: {arr.dtype} {arr.shape}, not as written")
        out[key] = arr.view(np.ndarray)  # np.memmap's own indexing is ~10x slower
    if len({len(a) for a in out.values()}) != 1:
        raise SnapshotMismatch("the id map's arrays differ in length")
    return out


def read_values(folder: Path) -> dict[int, str]:
    try:
        pairs = json.loads((folder / "values.json").read_text())
        return {int(sid): str(v) for sid, v in pairs}
    except (OSError, ValueError, TypeError) as e:
        raise SnapshotMismatch(f"values.json unreadable: {e}") from e
