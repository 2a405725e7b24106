"""PDQ (Meta's perceptual photo hash), computed exactly as Meta's reference hasher does.

``max_side=512``: Meta's reference Python hasher shrinks every image with
``Image.thumbnail((512, 512))`` before PDQ's Jarosz filters, and ``pdqhash`` hashes whatever it is
given; after the same thumbnail reclaim is bit-exact on Meta's reference images (numbers:
docs/pdq-and-vpdq.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pdqhash

from reclaim.hashes.base import Comparison, Index, SignalType, SignalValue
from reclaim.media import Media, MediaKind

PDQ_MAX_SIDE = 512
#: Meta's recommended match threshold (Hamming distance out of 256).
PDQ_MATCH_DISTANCE = 31
#: Below this quality a hash is too featureless to match on (Meta's guidance).
PDQ_MIN_QUALITY = 50


@dataclass(frozen=True)
class PdqHash:
    """A 256-bit PDQ hash. ``a - b`` is the Hamming distance; ``str()`` is 64 hex digits."""

    bits: bytes  # 32 bytes, big-endian as in Meta's hex form

    def __post_init__(self) -> None:
        if len(self.bits) != 32:
            raise ValueError("PDQ hash must be 32 bytes")

    @classmethod
    def from_hex(cls, text: str) -> PdqHash:
        t = text.strip().lower()
        if len(t) != 64:
            raise ValueError(f"PDQ hash must be 64 hex digits, got {len(t)} characters")
        try:
            return cls(bytes.fromhex(t))
        except ValueError as e:
            raise ValueError(f"PDQ hash is not hexadecimal: {text[:80]!r}") from e

    @classmethod
    def from_bit_vector(cls, vec: np.ndarray) -> PdqHash:
        return cls(np.packbits(vec.astype(np.uint8)).tobytes())

    def __str__(self) -> str:
        return self.bits.hex()

    def __sub__(self, other: PdqHash) -> int:
        return (int.from_bytes(self.bits, "big") ^ int.from_bytes(other.bits, "big")).bit_count()


def pdq_from_rgb(rgb: np.ndarray) -> tuple[PdqHash, int]:
    """PDQ hash and quality (0–100) of an RGB uint8 array, as given (no resizing)."""
    vec, quality = pdqhash.compute(np.ascontiguousarray(rgb, dtype=np.uint8))
    return PdqHash.from_bit_vector(vec), int(quality)


class PDQSignal(SignalType):
    """PDQ of a photo, as Meta's reference hasher computes it (see the module docstring)."""

    name = "pdq"
    kinds: ClassVar[frozenset[MediaKind]] = frozenset({"photo"})
    index = Index.PDQ

    def __init__(self, threshold: int = PDQ_MATCH_DISTANCE) -> None:
        self.threshold = threshold

    def compute(self, media: Media) -> SignalValue:
        im = media.image(max_side=PDQ_MAX_SIDE)
        h, q = pdq_from_rgb(np.asarray(im))
        return SignalValue(self.name, str(h), q)

    def compare(self, a: str, b: str) -> Comparison:
        d = PdqHash.from_hex(a) - PdqHash.from_hex(b)
        return Comparison(d <= self.threshold, d)

    @classmethod
    def validate(cls, value: str) -> str:
        return str(PdqHash.from_hex(value))

    def at_distance(self, distance: int) -> PDQSignal:
        return PDQSignal(distance)

    def index_codes(self, value: str, quality: int | None) -> list[bytes]:
        """The hash, unless its quality is known and under ``PDQ_MIN_QUALITY``."""
        if quality is not None and quality < PDQ_MIN_QUALITY:
            return []
        return [bytes.fromhex(value)]
