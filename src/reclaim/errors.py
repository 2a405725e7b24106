"""Named errors. Every error a user can meet is a ReclaimError with a one-line message."""

from __future__ import annotations


class ReclaimError(Exception):
    """Base of every error reclaim reports to a person (one line, no traceback)."""


class InputError(ReclaimError):
    """The user asked for something that cannot be done (missing path, wrong kind of file)."""


class MediaError(ReclaimError):
    """An item could not be decoded; the scan records it and goes on."""


class UnsupportedMedia(MediaError):
    """Bytes that are not an image or video format reclaim reads."""


class MediaTooLarge(MediaError):
    """Refused by a safety cap (pixels, bytes, frames, duration): decompression bombs land here."""


class DecodeError(MediaError):
    """A corrupt or truncated file."""


class ItemTimeout(MediaError):
    """Decoding or hashing took longer than the per-item limit."""


class SourceError(ReclaimError):
    """A source (folder, archive, export, URL list) cannot be read at all."""


class ArchiveRefused(SourceError):
    """An archive or one of its members was refused by a guard (traversal, bomb, symlink, depth)."""


class FetchError(SourceError):
    """A URL could not be fetched within the limits (status, size, type, time, redirects)."""


class StoreError(ReclaimError):
    """The case directory cannot be used (not a case, locked, newer schema)."""


class CaseBusy(StoreError):
    """Another writer holds the case for a while (a scan running); the write can be retried."""
