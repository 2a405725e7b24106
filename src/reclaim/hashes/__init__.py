"""Signals: every hash (and later detector) reclaim computes, one plugin each.

``default_signals()`` is the set a scan computes; ``analyze`` runs them on one item.
"""

from __future__ import annotations

from reclaim.hashes.base import Comparison, SignalType, SignalValue
from reclaim.hashes.digests import MD5Signal, SHA256Signal
from reclaim.hashes.pdq import PdqHash, PDQSignal
from reclaim.hashes.vpdq import VPDQSignal

__all__ = [
    "Comparison",
    "MD5Signal",
    "PDQSignal",
    "PdqHash",
    "SHA256Signal",
    "SignalType",
    "SignalValue",
    "VPDQSignal",
    "default_signals",
    "signal_by_name",
    "te_signal_type",
]


def default_signals() -> list[SignalType]:
    return [SHA256Signal(), MD5Signal(), PDQSignal(), VPDQSignal()]


def signal_by_name(name: str) -> SignalType:
    for s in default_signals():
        if s.name == name:
            return s
    raise KeyError(name)


def te_signal_type(signal: str, kind: str) -> str:
    """ThreatExchange/HMA signal type name for one of our signals on a media kind."""
    if signal == "md5":
        return "video_md5" if kind == "video" else "md5"
    return signal
