"""Face shields: keyed, cancelable protected face templates a platform can match uploads
against without holding the enrolled person's face template (issue 20). ``schemes`` holds the
protection schemes compared in ``bench/shield.py``; ``protocol`` what travels between her
reclaim and a platform (intake keys, shields, consent receipts, the platform's secret layer).
The choice and threat model: docs/shield.md.
"""

from __future__ import annotations

from reclaim.shield.schemes import (
    MIN_KEY_BYTES,
    BioHash,
    IndexOfMax,
    Normaliser,
    ProtectedTemplate,
    Scheme,
    ShieldMismatch,
    derive_rng,
)

__all__ = [
    "MIN_KEY_BYTES",
    "BioHash",
    "IndexOfMax",
    "Normaliser",
    "ProtectedTemplate",
    "Scheme",
    "ShieldMismatch",
    "derive_rng",
]
