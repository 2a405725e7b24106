"""Sources: where items come from, each a module with an opener (Pillow-plugin style).

``open_source(spec)`` asks each registered opener, in order, whether it recognises the spec;
a new built-in source is one module plus one line in ``_register_builtin``; others call
``register``.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reclaim.errors import InputError
from reclaim.sources.base import Entry, Locator, Source, SourceLimits, not_regular_reason

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
    """Add a source kind. Openers are tried in registration order, after the built-in ones."""
    _OPENERS.append(_Opener(name, detect, open))


def open_source(spec: str, limits: SourceLimits | None = None) -> Source:
    """Return the source for ``spec`` (a path or URL-list file).

    Raises InputError with a one-line reason when nothing recognises it.
    """
    limits = limits or SourceLimits()
    p = Path(spec)
    if not p.exists():
        raise InputError(f"{spec}: no such file or folder")
    _register_builtin()
    for opener in _OPENERS:
        if opener.detect(spec):
            return opener.open(spec, limits)
    try:  # a FIFO, socket or device named on the command line: say so (it is never opened)
        mode = os.stat(spec).st_mode
    except OSError:
        mode = stat.S_IFDIR
    reason = None if stat.S_ISDIR(mode) else not_regular_reason(mode)
    if reason is not None:
        raise InputError(f"{spec}: {reason}")
    raise InputError(f"{spec}: not a file, folder, archive or Telegram export")


_BUILTIN_DONE: list[bool] = []
_BUILTIN_LOCK = threading.Lock()


def _register_builtin() -> None:
    """Put the built-in sources first, once, when a source is first opened (importing them, and
    httpx with the URL list, costs ~0.1 s that commands which open no source need not pay)."""
    with _BUILTIN_LOCK:
        if _BUILTIN_DONE:
            return
        from reclaim.sources import archive, folder, telegram, urllist

        _OPENERS[:0] = [
            _Opener("telegram", telegram.detect, telegram.open_telegram),
            _Opener("urllist", urllist.detect, urllist.refuse_without_fetch),
            _Opener("archive", archive.detect, archive.open_archive),
            _Opener("folder", folder.detect, folder.open_folder),
            _Opener("file", folder.detect_file, folder.open_file),
        ]
        _BUILTIN_DONE.append(True)
