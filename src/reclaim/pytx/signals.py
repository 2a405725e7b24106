"""The signal types reclaim banks and python-threatexchange lacks, as pytx ``SignalType``\\ s.

pytx (1.2) has ``pdq``, ``video_md5`` and ``video_sha256``; reclaim also banks, under its HMA
names (``reclaim.hashes``):

- ``md5``: the MD5 of a photo's file bytes (what StopNCII-style hash lists carry for photos);
- ``sha256``: the SHA-256 of any file's bytes (reclaim's evidence identity);
- ``vpdq``: Meta's video PDQ, without the native ``vpdq`` package that pytx's own vPDQ extension
  needs: hashed with reclaim's decoder (PyAV) and matched with Meta's rule (``reclaim.hashes.
  vpdq``). Its text is pytx's compact form (``["hash,quality,timestamp", …]``), which reclaim
  reads and pytx's vPDQ extension writes. Do not add both extensions: the two share the name.

Each validates with reclaim's own rules, so a value is in the same canonical form on both sides.
"""

from __future__ import annotations

import hashlib
import pathlib
import typing as t
from dataclasses import dataclass

from threatexchange.content_type.content_base import ContentType
from threatexchange.content_type.photo import PhotoContent
from threatexchange.content_type.video import VideoContent
from threatexchange.signal_type import signal_base
from threatexchange.signal_type.index import SignalSimilarityInfo

from reclaim.hashes.digests import MD5Signal, SHA256Signal
from reclaim.hashes.vpdq import (
    VPDQ_MATCH_PERCENT,
    match_videos,
    parse_vpdq,
    to_compact,
    vpdq_frames,
)

__all__ = ["FileMD5Signal", "FileSHA256Signal", "ReclaimVPDQSignal", "VPDQMatchInfo"]


class _Digest(signal_base.SimpleSignalType, signal_base.BytesHasher):
    _RECLAIM: t.ClassVar[type[MD5Signal] | type[SHA256Signal]]

    @classmethod
    def get_name(cls) -> str:
        return cls._RECLAIM.name

    @classmethod
    def get_index_cls(cls) -> type[signal_base.TrivialSignalTypeIndex[t.Any]]:
        return signal_base.TrivialSignalTypeIndex

    @classmethod
    def validate_signal_str(cls, signal_str: str) -> str:
        return cls._RECLAIM.validate(signal_str)

    @classmethod
    def hash_from_bytes(cls, bytes_: bytes) -> str:
        return hashlib.new(cls._RECLAIM.algo, bytes_).hexdigest()


class FileMD5Signal(_Digest):
    """MD5 of a photo's bytes (reclaim and HMA: ``md5``; a video's is pytx's ``video_md5``)."""

    _RECLAIM = MD5Signal

    @classmethod
    def get_content_types(cls) -> list[type[ContentType]]:
        return [PhotoContent]

    @staticmethod
    def get_examples() -> list[str]:
        return ["9e107d9d372bb6826bd81d3542a419d6"]


class FileSHA256Signal(_Digest):
    """SHA-256 of a file's bytes, photo or video (reclaim: ``sha256``)."""

    _RECLAIM = SHA256Signal

    @classmethod
    def get_content_types(cls) -> list[type[ContentType]]:
        return [PhotoContent, VideoContent]

    @staticmethod
    def get_examples() -> list[str]:
        return ["d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"]


@dataclass
class VPDQMatchInfo(SignalSimilarityInfo):
    """How much of each video matched the other (percent of unique good-quality frames)."""

    query_match_percent: float
    compared_match_percent: float

    def pretty_str(self) -> str:
        return f"{self.query_match_percent:.0f}%,{self.compared_match_percent:.0f}%"


class ReclaimVPDQSignal(signal_base.SimpleSignalType, signal_base.FileHasher):
    """vPDQ (``vpdq``), hashed and matched by reclaim: both videos must have at least 80% of
    their unique good frames within 31 bits of a frame of the other (Meta's rule)."""

    @classmethod
    def get_name(cls) -> str:
        return "vpdq"

    @classmethod
    def get_content_types(cls) -> list[type[ContentType]]:
        return [VideoContent]

    @classmethod
    def get_index_cls(cls) -> type[ReclaimVPDQIndex]:
        return ReclaimVPDQIndex

    @classmethod
    def validate_signal_str(cls, signal_str: str) -> str:
        return to_compact(parse_vpdq(signal_str))

    @classmethod
    def hash_from_file(cls, file: pathlib.Path) -> str:
        return to_compact(vpdq_frames(pathlib.Path(file)))

    @classmethod
    def compare_hash(cls, hash1: str, hash2: str) -> signal_base.SignalComparisonResult:
        m = match_videos(parse_vpdq(hash2), parse_vpdq(hash1))
        return signal_base.SignalComparisonResult(
            m.is_match(VPDQ_MATCH_PERCENT),
            VPDQMatchInfo(m.query_match_percent, m.compared_match_percent),
        )

    @staticmethod
    def get_examples() -> list[str]:
        frames = (
            "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22,100,0.000",
            "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22,100,1.000",
        )
        return ['["' + '", "'.join(frames) + '"]']


class ReclaimVPDQIndex(signal_base.TrivialLinearSearchHashIndex[t.Any]):
    """A linear scan with Meta's comparison (fine for the CLI's local banks)."""

    _SIGNAL_TYPE = ReclaimVPDQSignal
