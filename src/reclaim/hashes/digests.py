"""Exact-identity signals: SHA-256 (evidence identity) and MD5 (what StopNCII/HMA exchange)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import ClassVar

from reclaim.hashes.base import BytesSignalType, Comparison, Index, SignalValue
from reclaim.media import MediaKind


class _Digest(BytesSignalType):
    algo: ClassVar[str]
    hexlen: ClassVar[int]
    kinds: ClassVar[frozenset[MediaKind]] = frozenset({"photo", "video", "other"})
    index = Index.EXACT

    def of_bytes(self, data: bytes) -> SignalValue:
        return SignalValue(self.name, hashlib.new(self.algo, data).hexdigest())

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
    """SHA-256 of the file bytes: the evidence identity of an item. Not in a protect file (MD5
    is the exact digest StopNCII-style sharing uses)."""

    name = "sha256"
    algo = "sha256"
    hexlen = 64
    shared = False


class MD5Signal(_Digest):
    """MD5 of the file bytes. ThreatExchange/HMA bank it as ``md5`` for photos and as
    ``video_md5`` for videos: one digest, two names by media kind."""

    name = "md5"
    algo = "md5"
    hexlen = 32
    exchange_names: ClassVar[Mapping[str, str]] = {"video": "video_md5"}
