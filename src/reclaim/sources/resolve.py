"""Read an item's bytes back from where it was seen (for evidence packs and previews)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from reclaim.errors import SourceError
from reclaim.sources.base import Locator, NotRegularFile, SourceLimits, read_regular


def read_at(loc: Locator, case_root: Path | None = None, blob: str | None = None) -> bytes:
    """The bytes at ``loc``. Raises SourceError with a one-line reason when they are gone.

    Archive members are found again by walking the archive with the same guards as a scan.
    """
    if loc.kind == "url":
        if case_root is None or blob is None:
            raise SourceError(f"{loc.path}: no kept copy of this download")
        return _read_file(case_root / blob)
    if loc.kind == "file":
        return _read_file(Path(loc.path))
    if loc.kind == "telegram":
        if loc.member is None:
            raise SourceError(f"{loc.display()}: the file is not in the export")
        root = Path(loc.path)
        # a link inside the export is read where it points, as the scan did, never outside
        real = (root / loc.member).resolve()
        if not real.is_relative_to(root):
            raise SourceError(f"{loc.display()}: now points outside the export; not read")
        return _read_file(real)
    if loc.kind == "archive":
        from reclaim.sources.archive import ArchiveSource

        if not Path(loc.path).is_file():
            raise SourceError(f"{loc.path}: archive no longer exists")
        for e in ArchiveSource(loc.path, SourceLimits()).entries():
            if e.locator.member == loc.member:
                if e.data is None:
                    raise SourceError(f"{loc.display()}: {e.error or 'unreadable'}")
                return e.data
        raise SourceError(f"{loc.display()}: member no longer in the archive")
    raise SourceError(f"unknown locator kind {loc.kind!r}")


def read_verified(
    sha256: str, places: list[Locator], case_root: Path, blob: str | None = None
) -> tuple[bytes, Locator]:
    """The first place that still holds exactly these bytes (SHA-256 checked).

    Raises SourceError naming every place tried when none does.
    """
    tried: list[str] = []
    for loc in places:
        try:
            data = read_at(loc, case_root, blob)
        except (SourceError, OSError) as e:
            tried.append(str(e))
            continue
        if hashlib.sha256(data).hexdigest() == sha256:
            return data, loc
        tried.append(f"{loc.display()}: bytes changed since the scan")
    raise SourceError(f"item {sha256[:12]}… can no longer be read: " + "; ".join(tried))


def _read_file(p: Path) -> bytes:
    """The bytes of the regular file ``p`` (a FIFO, device or link put there since the scan is
    refused, never opened: see ``base.open_regular``)."""
    try:
        return read_regular(p)
    except NotRegularFile as e:
        raise SourceError(f"{p}: {e}") from e
    except FileNotFoundError as e:
        raise SourceError(f"{p}: file vanished since the scan") from e
    except PermissionError as e:
        raise SourceError(f"{p}: permission denied") from e
    except OSError as e:
        raise SourceError(f"{p}: {e.strerror or e}") from e
