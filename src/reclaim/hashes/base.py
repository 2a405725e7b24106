"""One interface for every hash reclaim computes (in the spirit of ThreatExchange's SignalType).

A signal type declares everything the rest of reclaim needs to know about it, so that scan,
``reclaim hash``, ``reclaim protect``, the hash API and the platform's validation and matcher
iterate the registry (``reclaim.hashes``) instead of naming types:

- ``name``: reclaim's own name (what a case stores), and ``kinds``: the media it is computed on;
- ``exchange_names`` / ``content_types``: the HMA/ThreatExchange name a value is banked under
  for each media kind (one MD5 digest is ``md5`` for a photo, ``video_md5`` for a video), and
  the media HMA's hasher offers it for;
- ``validate``: a value's canonical text (what the platform stores and looks up);
- ``compare``: two values → match + distance; ``index``: how the platform's matcher finds a
  banked value again (``Index``) and ``index_codes``: what it puts in that index.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from reclaim.media import Media, MediaKind


class Index(StrEnum):
    """How the platform's matcher finds a banked value again."""

    #: Equal canonical text: a key lookup in the store (digests).
    EXACT = "exact"
    #: One 256-bit PDQ code per value, in a ``PdqIndex``; a bank's own distance applies.
    PDQ = "pdq"
    #: A bag of PDQ codes per value (vPDQ frames) in a ``PdqIndex``; candidates are then scored
    #: with the type's ``compare`` at the bank's distance.
    PDQ_FRAMES = "pdq_frames"


@dataclass(frozen=True)
class SignalValue:
    """A computed signal: ``value`` is its canonical text form (hex, JSON...)."""

    signal: str
    value: str
    quality: int | None = None


@dataclass(frozen=True)
class Comparison:
    """Whether two values match, their distance, and the distance as HMA reports a match
    (``reported``; empty: the distance itself, e.g. ``"4"`` bits)."""

    match: bool
    distance: float
    reported: str = ""

    def hma_distance(self) -> str:
        return self.reported or f"{self.distance:g}"


class SignalType(ABC):
    name: ClassVar[str]
    #: Media kinds reclaim computes this signal on.
    kinds: ClassVar[frozenset[MediaKind]]
    #: HMA/ThreatExchange name of a value computed on a media kind, where it is not ``name``.
    exchange_names: ClassVar[Mapping[str, str]] = {}
    #: Media kinds HMA's hasher gives this signal for (``/h/hash``); None: ``kinds``.
    content_types: ClassVar[frozenset[MediaKind] | None] = None
    #: Whether ``reclaim protect`` shares it (what a StopNCII-style hash file carries).
    shared: ClassVar[bool] = True
    index: ClassVar[Index] = Index.EXACT

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

    def exchange_name(self, kind: str) -> str:
        """The HMA/ThreatExchange signal type a value computed on media of ``kind`` is banked as."""
        return self.exchange_names.get(kind, self.name)

    def all_exchange_names(self) -> list[str]:
        """Every HMA name this signal is banked under (``name`` first unless no kind uses it)."""
        names = [self.exchange_name(k) for k in sorted(self.kinds)]
        return sorted(set(names), key=lambda n: (n != self.name, n))

    def offered_for(self, kind: str) -> bool:
        """Whether HMA's hasher gives this signal for media of ``kind``."""
        return kind in (self.kinds if self.content_types is None else self.content_types)

    def at_distance(self, distance: int) -> SignalType:
        """This type comparing at a bank's own match distance (PDQ bits); others: itself."""
        return self

    def index_codes(self, value: str, quality: int | None) -> list[bytes]:
        """The 32-byte PDQ codes the matcher indexes for a canonical value (only those good
        enough to match on: none for a featureless hash). For ``Index.PDQ``/``PDQ_FRAMES``."""
        raise NotImplementedError(f"{self.name} is not PDQ-indexed")

    def shared_form(self, value: SignalValue) -> tuple[str, int | None]:
        """The text and quality ``reclaim protect`` writes (default: as computed)."""
        return value.value, value.quality

    def as_json(self, value: str) -> Any:
        """The value in ``reclaim hash --json`` (default: its text)."""
        return value

    def summary(self, value: str) -> str:
        """The value in ``reclaim hash``'s table (default: its text)."""
        return value


class BytesSignalType(SignalType):
    """A signal of the file bytes alone (digests): computed before, and even without, decoding."""

    @abstractmethod
    def of_bytes(self, data: bytes) -> SignalValue:
        """The signal of ``data``."""

    def compute(self, media: Media) -> SignalValue:
        return self.of_bytes(media.data)
