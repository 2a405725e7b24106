"""A local cache of what loading the face models costs to work out again, kept on this computer.

Loading the face models took ~2 s per process, most of it spent re-deriving the same things:
dlib's HOG face detector is rebuilt from its text form (~0.6 s; a binary copy loads in ~2 ms),
and each faster path (dlib's networks run by onnxruntime, SFace's float32 graph) is checked
against the reference implementation on every load (~0.3–0.8 s each). ``reclaim enroll`` pays
that per call and every scan worker per process.

What is kept here, under ``cache_dir()``:

* ``entry(name, key)`` files: a binary copy of the HOG detector as dlib saved it;
* ``verdict(name, key)``: that one faster path was checked equal to its reference on this machine.

Every key holds what the cached thing depends on: the model file's SHA-256 (and the derived
graph's), the versions of dlib and onnxruntime, and this CPU's instruction-set flags (integer and
float kernels differ between CPUs). Each file is stored beside its SHA-256 and read back only
when they match; a damaged or missing entry is rebuilt. Nothing here is fetched from anywhere,
and no image or face is ever written to it. Caching is best effort: a read-only or missing home
folder only means the work is done again. ``RECLAIM_CACHE_DIR`` chooses the folder; ``off``
turns the cache off.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

__all__ = ["cache_dir", "check_key", "cpu_signature", "discard", "entry", "key_of", "verdict"]

ENV = "RECLAIM_CACHE_DIR"


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


def check_key(*parts: str | bytes, code: tuple[str, ...] = ()) -> str:
    """The key of a faster path's check: what it was built from (``parts``), the source of the
    modules that build and run it (``code``: file paths), the versions of the libraries that
    compute it, and this CPU."""
    from importlib import metadata

    versions = []
    for dist in ("dlib-bin", "dlib", "onnxruntime", "numpy"):
        try:
            versions.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    sources = [Path(f).read_bytes() for f in code]
    return key_of(*parts, *versions, cpu_signature(), *sources)


def _paths(name: str, key: str) -> tuple[Path, Path] | None:
    d = cache_dir()
    if d is None:
        return None
    stem = f"{name}-{key[:32]}"
    return d / f"{stem}.bin", d / f"{stem}.sha256"


def _read(data_path: Path, sum_path: Path) -> bytes | None:
    try:
        data = data_path.read_bytes()
        want = sum_path.read_text().strip()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == want else None


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _store(data_path: Path, sum_path: Path, data: bytes) -> bool:
    try:
        data_path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(data_path, data)
        _write_atomic(sum_path, hashlib.sha256(data).hexdigest().encode())
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
    """Remove an entry (intact on disk but unusable): the next ``entry`` call builds it again."""
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
