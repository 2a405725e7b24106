"""Exact-identity signals: SHA-256 (evidence identity) and MD5 (what StopNCII/HMA exchange)."""

from __future__ import annotations

import hashlib
import re
from typing import ClassVar

from reclaim.hashes.base import Comparison, SignalType, SignalValue
from reclaim.media import Media, MediaKind


class _Digest(SignalType):
    algo: ClassVar[str]
    hexlen: ClassVar[int]
    kinds: ClassVar[frozenset[MediaKind]] = frozenset({"photo", "video", "other"})
    needs_pixels = False

    def compute(self, media: Media) -> SignalValue:
        return SignalValue(self.name, hashlib.new(self.algo, media.data).hexdigest())

    def compare(self, a: str, b: str) -> Comparison:
        same = self.validate(a) == self.validate(b)
        return Comparison(same, 0 if same else 1)

    @classmethod
    def validate(cls, value: str) -> str:
        v = value.strip().lower()
        if not re.fullmatch(f"[0-9a-f]{{{cls.hexlen}}}", v):
            raise ValueError(f"{cls.name} must be {cls.hexlen} hex digits, got {value[:80]!r}")
        return v


class SHA256Signal(_Digest):
    name = "sha256"
    algo = "sha256"
    hexlen = 64


class MD5Signal(_Digest):
    """MD5 of the file bytes. In ThreatExchange vocabulary it is ``md5`` for photos and
    ``video_md5`` for videos (see ``reclaim.hashes.te_signal_type``)."""

    name = "md5"
    algo = "md5"
    hexlen = 32
