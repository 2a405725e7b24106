"""Sources: where items come from. Each source module registers itself, Pillow-plugin style.

``open_source(spec)`` asks each registered opener, in order, whether it recognises the spec;
a new source is one module plus one ``register`` call at the bottom of this file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reclaim.errors import InputError
from reclaim.sources.base import Entry, Locator, Source, SourceLimits

__all__ = ["Entry", "Locator", "Source", "SourceLimits", "open_source", "register"]


@dataclass(frozen=True)
class _Opener:
    name: str
    detect: Callable[[str], bool]
    open: Callable[[str, SourceLimits], Source]


_OPENERS: list[_Opener] = []


def register(
    name: str, detect: Callable[[str], bool], open: Callable[[str, SourceLimits], Source]
) -> None:
    """Add a source kind. Openers are tried in registration order."""
    _OPENERS.append(_Opener(name, detect, open))


def open_source(spec: str, limits: SourceLimits | None = None) -> Source:
    """Return the source for ``spec`` (a path or URL-list file).

    Raises InputError with a one-line reason when nothing recognises it.
    """
    limits = limits or SourceLimits()
    p = Path(spec)
    if not p.exists():
        raise InputError(f"{spec}: no such file or folder")
    for opener in _OPENERS:
        if opener.detect(spec):
            return opener.open(spec, limits)
    raise InputError(f"{spec}: not a file, folder, archive or Telegram export")


def _register_builtin() -> None:
    from reclaim.sources import archive, folder, telegram, urllist

    register("telegram", telegram.detect, telegram.open_telegram)
    register("urllist", urllist.detect, urllist.refuse_without_fetch)
    register("archive", archive.detect, archive.open_archive)
    register("folder", folder.detect, folder.open_folder)
    register("file", folder.detect_file, folder.open_file)


_register_builtin()
