"""A local cache of what loading the face models costs to work out again, kept on this computer.

Loading the face models re-derives the same things in every process (dlib's HOG detector from
its text form, the onnxruntime graphs from the model files, the check of each faster path against
its reference); ``reclaim enroll`` pays that per call and every scan worker per process. Kept
under ``cache_dir()``:

* ``entry(name, key)`` files: a binary copy of the HOG detector as dlib saved it;
* ``blob(name, key)``: the derived onnxruntime graphs; one that onnxruntime refuses is derived
  again (``loaded_blob``), one of another key is deleted when unused for ``STALE_DAYS``;
* ``verdict(name, key)``: that one faster path was checked equal to its reference on this machine.

Every key holds what the cached thing depends on (model file SHA-256, the source of the modules
that derive and run it, library versions, this CPU's instruction-set flags); each file is read
back only when its stored SHA-256 matches, else rebuilt. Nothing is fetched, no image or face is
written. Best effort: an unwritable folder only means the work is done again.
``RECLAIM_CACHE_DIR`` chooses the folder; ``off`` turns the cache off. Timings: docs/faces.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import tempfile
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

__all__ = [
    "blob",
    "cache_dir",
    "check_key",
    "cpu_signature",
    "discard",
    "entry",
    "key_of",
    "loaded_blob",
    "verdict",
]

ENV = "RECLAIM_CACHE_DIR"
T = TypeVar("T")


def cache_dir() -> Path | None:
    """Where cached entries live, or None when caching is off."""
    env = os.environ.get(ENV)
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reclaim" / "models"


@lru_cache(maxsize=1)
def cpu_signature() -> str:
    """This CPU's architecture and instruction-set flags (Linux: /proc/cpuinfo)."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith(("flags", "Features")):
                flags = " ".join(sorted(line.split(":", 1)[1].split()))
                break
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()} {flags}"


def key_of(*parts: str | bytes) -> str:
    """A cache key (hex) of the parts, in order."""
    h = hashlib.sha256()
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


@lru_cache(maxsize=1)
def _versions() -> tuple[str, ...]:
    from importlib import metadata

    versions = []
    for dist in ("dlib-bin", "dlib", "onnxruntime", "onnx", "numpy"):
        try:
            versions.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return tuple(versions)


def check_key(*parts: str | bytes, code: tuple[str, ...] = ()) -> str:
    """The key of a faster path's check or of a derived file: what it was built from
    (``parts``), the source of the modules that build and run it (``code``: file paths), the
    versions of the libraries that compute it, and this CPU."""
    sources = [Path(f).read_bytes() for f in code]
    return key_of(*parts, *_versions(), cpu_signature(), *sources)


def _paths(name: str, key: str) -> tuple[Path, Path] | None:
    d = cache_dir()
    if d is None:
        return None
    stem = f"{name}-{key[:32]}"
    return d / f"{stem}.bin", d / f"{stem}.sha256"


def _read(data_path: Path, sum_path: Path) -> bytes | None:
    got = _read_summed(data_path, sum_path)
    return None if got is None else got[0]


def _read_summed(data_path: Path, sum_path: Path) -> tuple[bytes, bytes] | None:
    """(data, SHA-256) of an entry whose data matches its stored SHA-256, else None."""
    try:
        data = data_path.read_bytes()
        want = sum_path.read_text().strip()
    except OSError:
        return None
    digest = hashlib.sha256(data).digest()
    return (data, digest) if digest.hex() == want else None


def blob(name: str, key: str, build: Callable[[], bytes]) -> tuple[bytes, bytes]:
    """(bytes, their SHA-256) kept under (name, key): read back when intact, else ``build()``
    (and kept when the cache is on and writable; otherwise built again on every call)."""
    paths = _paths(name, key)
    if paths is not None:
        got = _read_summed(*paths)
        if got is not None:
            with contextlib.suppress(OSError):
                os.utime(paths[0])  # in use: not pruned
            return got
    data = build()
    digest = hashlib.sha256(data).digest()
    if paths is not None and _store(*paths, data, digest):
        _prune(name, paths[0])
    return data, digest


def loaded_blob(
    name: str,
    key: str,
    build: Callable[[], bytes],
    load: Callable[[bytes, bytes], T],
    errors: tuple[type[Exception], ...],
) -> T:
    """``load(bytes, sha256)`` of ``blob(name, key, build)``. A kept blob that is intact on disk
    but cannot be loaded (``errors``) is discarded and built again once; an error then is the
    caller's, as without a cache."""
    try:
        return load(*blob(name, key, build))
    except errors:
        discard(name, key)
    return load(*blob(name, key, build))


#: Blobs of another key (older code or library versions) unused for this long are deleted when
#: a new one of the same name is kept: each is tens of MB.
STALE_DAYS = 14


def _prune(name: str, keep: Path) -> None:
    cutoff = time.time() - STALE_DAYS * 86400
    for p in keep.parent.glob(f"{name}-*.bin"):
        if p == keep or p.name[len(name) + 1 :].count("-"):
            continue  # this entry, or one of another name that starts with this one
        with contextlib.suppress(OSError):
            if p.stat().st_mtime < cutoff:
                p.with_suffix(".sha256").unlink(missing_ok=True)
                p.unlink()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _store(data_path: Path, sum_path: Path, data: bytes, digest: bytes | None = None) -> bool:
    """Write ``data`` and its SHA-256 (``digest`` when the caller has it) atomically; False when
    the folder cannot be written."""
    try:
        data_path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(data_path, data)
        _write_atomic(sum_path, (digest or hashlib.sha256(data).digest()).hex().encode())
    except OSError:
        return False
    return True


def entry(name: str, key: str, build: Callable[[Path], None]) -> Path | None:
    """The path of a cached file, made by ``build(path)`` when missing or damaged; None when
    caching is off or the folder cannot be written (the caller then builds it its own way)."""
    paths = _paths(name, key)
    if paths is None:
        return None
    data_path, sum_path = paths
    if _read(data_path, sum_path) is not None:
        return data_path
    try:
        data_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=data_path.parent, prefix=f".{data_path.name}.")
        os.close(fd)
        try:
            build(Path(tmp))
            data = Path(tmp).read_bytes()
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError:
        return None
    return data_path if _store(data_path, sum_path, data) else None


def discard(name: str, key: str) -> None:
    """Remove an entry or blob (intact on disk but unusable): the next ``entry`` or ``blob``
    call builds it again."""
    paths = _paths(name, key)
    for p in paths or ():
        with contextlib.suppress(OSError):
            p.unlink(missing_ok=True)


def verdict(name: str, key: str, check: Callable[[], str | None]) -> str | None:
    """None when a faster path was checked equal to its reference on this machine (now, or
    before under the same key); else why not. Only passes are kept: a failed check runs again
    on the next load."""
    paths = _paths(name, key)
    if paths is not None and _read(*paths) == b"equal":
        return None
    why = check()
    if why is None and paths is not None:
        _store(*paths, b"equal")
    return why
