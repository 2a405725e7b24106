"""PDQ (Meta's perceptual photo hash) in two flavours: how the photo is prepared before hashing.

Both flavours run the same PDQ code (``pdqhash``, Meta's C++ through its Python binding); they
differ only in the pixels they hand it:

- ``reference`` (Meta's reference hasher): EXIF orientation applied, converted to RGB
  (transparency over white), then shrunk with ``Image.thumbnail((512, 512))``. Bit-exact on
  Meta's conformance images; what ``reclaim scan`` stores.
- ``pytx`` (python-threatexchange's ``PdqSignal``, what HMA computes): the full-size image as
  Pillow decodes it, no EXIF orientation, pytx's own mode handling (``LA``/``I;16`` → RGB, a
  one-band image repeated on three channels, the first three bands of anything else as R, G, B).
  Bit-for-bit what pytx gives on every image it can hash; where pytx cannot (bands it rejects:
  ``I``, ``F``, ``PA``...), reclaim hashes the full-size image converted to RGB instead.

The two differ on photos larger than 512 px (measured: docs/pdq-and-vpdq.md, "PDQ flavours"):
a hash banked by one side and looked up by the other should be computed in the bank's flavour.
``pdq_for`` computes either; ``PDQSignal(flavour=...)`` is the signal type in one of them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import numpy as np
import pdqhash
from PIL import Image

from reclaim.errors import DecodeError, MediaTooLarge
from reclaim.hashes.base import Comparison, Index, SignalType, SignalValue
from reclaim.media import Media, MediaKind, MediaLimits
from reclaim.media.image import DECODER_ERRORS, open_checked

PDQ_MAX_SIDE = 512
#: Meta's recommended match threshold (Hamming distance out of 256).
PDQ_MATCH_DISTANCE = 31
#: Below this quality a hash is too featureless to match on (Meta's guidance).
PDQ_MIN_QUALITY = 50


class PdqFlavour(StrEnum):
    """How a photo is prepared before PDQ (see the module docstring)."""

    REFERENCE = "reference"
    PYTX = "pytx"


#: The flavour ``reclaim scan`` stores and the registry's ``PDQSignal`` computes.
DEFAULT_FLAVOUR = PdqFlavour.REFERENCE


def pdq_flavour(name: str) -> PdqFlavour:
    """The flavour named ``name``; ValueError with the choices otherwise."""
    try:
        return PdqFlavour(name.strip().lower())
    except ValueError:
        choices = ", ".join(f.value for f in PdqFlavour)
        raise ValueError(f"unknown PDQ flavour {name!r}: use one of {choices}") from None


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


def _pytx_pixels(media: Media) -> np.ndarray:
    """The array python-threatexchange hands ``pdqhash.compute`` for these bytes
    (``pdq_hasher._convert_image_to_correct_array_dimension``), decoded within ``media.limits``."""
    im: Image.Image = open_checked(media.data, media.limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.load()
            w, h = im.size
            media.info.update(width=w, height=h)
            if im.mode in ("LA", "I;16"):
                im = im.convert("RGB")
            arr = np.asarray(im)
    except MemoryError as e:
        raise MediaTooLarge("image too large to decode in memory") from e
    except DECODER_ERRORS as e:
        raise DecodeError(f"corrupt or truncated image: {e}") from e
    if arr.ndim == 2:
        arr = np.concatenate([arr[..., np.newaxis]] * 3, axis=2)
    return arr


def _pdq_pytx(media: Media) -> tuple[PdqHash, int]:
    arr = _pytx_pixels(media)
    try:
        # Exactly pytx's call: its array as is (pdqhash takes the first three bands).
        vec, quality = pdqhash.compute(arr)
    except (ValueError, IndexError):
        # pytx raises here (bands that are not 8-bit, fewer than three bands): no pytx hash to
        # agree with, so the full-size image as RGB, the way the reference flavour sees colours.
        return pdq_from_rgb(np.asarray(media.image()))
    return PdqHash.from_bit_vector(vec), int(quality)


def pdq_for(
    media: Media | bytes, flavour: str = DEFAULT_FLAVOUR, limits: MediaLimits | None = None
) -> tuple[PdqHash, int]:
    """PDQ hash and quality of a photo (``Media`` or its bytes, decoded within ``limits``) in
    ``flavour`` (``reference`` or ``pytx``). Decodes: call it in a worker (the scan's pool,
    ``reclaim.media.sandbox``), never on an event loop. Raises MediaError subclasses when the
    bytes cannot be decoded, ValueError for an unknown flavour."""
    f = pdq_flavour(flavour)
    m = media if isinstance(media, Media) else Media(media, limits or MediaLimits())
    if f is PdqFlavour.PYTX:
        return _pdq_pytx(m)
    return pdq_from_rgb(np.asarray(m.image(max_side=PDQ_MAX_SIDE)))


def pdq_flavours_in_worker(
    data: bytes, limits: MediaLimits, flavours: tuple[str, ...] = tuple(PdqFlavour)
) -> dict[str, tuple[str, int]]:
    """Worker side for a service (``DecodePool.run``): ``{flavour: (hex, quality)}`` of one
    photo's bytes in each of ``flavours``. Raises MediaError subclasses on undecodable bytes."""
    media = Media(data, limits)
    out: dict[str, tuple[str, int]] = {}
    for f in flavours:
        h, q = pdq_for(media, f)
        out[pdq_flavour(f).value] = (str(h), q)
    return out


def pdq_isolated(
    data: bytes, limits: MediaLimits, flavours: tuple[str, ...]
) -> dict[str, tuple[str, int]]:
    """``pdq_flavours_in_worker`` in the process's sandboxed worker (``reclaim.media.sandbox``:
    memory ceiling, time limit), for command-line front ends. Raises MediaError subclasses
    (MediaTooLarge also when the full-size ``pytx`` flavour passes the memory ceiling)."""
    from reclaim.media.sandbox import shared_sandbox, time_limit

    box = shared_sandbox(limits.max_memory_bytes)
    return box.call(pdq_flavours_in_worker, (data, limits, flavours), time_limit(data, limits))


class PDQSignal(SignalType):
    """PDQ of a photo in one flavour (``reference`` by default, see the module docstring).
    Flavours compare and validate alike; only ``compute`` differs."""

    name = "pdq"
    kinds: ClassVar[frozenset[MediaKind]] = frozenset({"photo"})
    index = Index.PDQ

    def __init__(self, threshold: int = PDQ_MATCH_DISTANCE, flavour: str = DEFAULT_FLAVOUR) -> None:
        self.threshold = threshold
        self.flavour = pdq_flavour(flavour)

    def compute(self, media: Media) -> SignalValue:
        h, q = pdq_for(media, self.flavour)
        return SignalValue(self.name, str(h), q)

    def compare(self, a: str, b: str) -> Comparison:
        d = PdqHash.from_hex(a) - PdqHash.from_hex(b)
        return Comparison(d <= self.threshold, d)

    @classmethod
    def validate(cls, value: str) -> str:
        return str(PdqHash.from_hex(value))

    def at_distance(self, distance: int) -> PDQSignal:
        return PDQSignal(distance, self.flavour)

    def index_codes(self, value: str, quality: int | None) -> list[bytes]:
        """The hash, unless its quality is known and under ``PDQ_MIN_QUALITY``."""
        if quality is not None and quality < PDQ_MIN_QUALITY:
            return []
        return [bytes.fromhex(value)]
