"""One interface for every signal reclaim computes (in the spirit of ThreatExchange's SignalType).

A signal has a name (the HMA/ThreatExchange vocabulary where one exists), the media kinds it
applies to, ``compute`` (media → value), and ``compare`` (two values → match + distance).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from reclaim.media import Media, MediaKind


@dataclass(frozen=True)
class SignalValue:
    """A computed signal: ``value`` is its canonical text form (hex, JSON...)."""

    signal: str
    value: str
    quality: int | None = None


@dataclass(frozen=True)
class Comparison:
    match: bool
    distance: float


class SignalType(ABC):
    name: ClassVar[str]
    kinds: ClassVar[frozenset[MediaKind]]
    #: True when computing needs decoded pixels (false for byte digests).
    needs_pixels: ClassVar[bool] = True

    @abstractmethod
    def compute(self, media: Media) -> SignalValue | None:
        """The signal for ``media``, or None when it does not apply.

        Raises MediaError subclasses when the media cannot be decoded.
        """

    @abstractmethod
    def compare(self, a: str, b: str) -> Comparison:
        """Compare two values of this signal (text forms). Raises ValueError on malformed input."""

    @classmethod
    def validate(cls, value: str) -> str:
        """Return the canonical form of ``value``; raise ValueError with a reason if malformed."""
        return value
