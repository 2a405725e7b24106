"""What a stored face descriptor is: the weight of its SFace part and the name calibration
files and bench caches give it.

Its own module, below ``pipeline`` (which computes descriptors) and ``calibration`` (which
refuses a calibration measured on other descriptors), so neither imports the other for it.
"""

from __future__ import annotations

__all__ = ["DESCRIPTOR_KIND", "SFACE_WEIGHT"]

#: Weight of SFace's unit-length descriptor beside dlib's part (distances add in squares:
#: d² = d_dlib² + SFACE_WEIGHT² · d_sface²). Chosen on the calibration half only, where the
#: search works: manipulated variants of its photos (``bench/face_search.py`` prints the table),
#: the weight with the most same-person variants found at the operating point, 0.1 % false
#: positives (0.8: 0.973; 0.7: 0.972; 0.5: 0.971). On its plain photos every weight ≥ 0.5 reaches
#: the same rate (99.7 %), too few misses left to choose with.
SFACE_WEIGHT = 0.8
#: What a stored descriptor is (calibration files and bench caches name it).
DESCRIPTOR_KIND = (
    f"v3: dlib ResNet on the chip, its mirror and its inner face (256) + {SFACE_WEIGHT} x SFace "
    "on the inner face (128), 384 values"
)
