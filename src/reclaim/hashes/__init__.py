"""Hash signals: the one registry of the signal types reclaim computes, banks and matches.

Every front end and the platform iterate this registry instead of naming types: a scan stores
what ``signal_types()`` computes, ``reclaim hash`` and ``reclaim protect`` print and share it, the
hash API offers it under its HMA/ThreatExchange names, and the platform validates
(``by_exchange_name(...).validate``) and indexes (``SignalType.index``) by it. A new hash type
is one module with a ``SignalType`` and one line in ``_REGISTRY`` (or a ``register`` call in a
module every process imports: analysis runs in worker processes).
"""

from __future__ import annotations

from reclaim.hashes.base import (
    BytesSignalType,
    Comparison,
    Index,
    SignalType,
    SignalValue,
)
from reclaim.hashes.digests import MD5Signal, SHA256Signal
from reclaim.hashes.pdq import PdqHash, PDQSignal
from reclaim.hashes.vpdq import VPDQSignal

__all__ = [
    "BytesSignalType",
    "Comparison",
    "Index",
    "MD5Signal",
    "PDQSignal",
    "PdqHash",
    "SHA256Signal",
    "SignalType",
    "SignalValue",
    "VPDQSignal",
    "by_exchange_name",
    "exchange_names",
    "register",
    "signal_type",
    "signal_types",
    "unregister",
]

#: In the order a scan computes and stores them: the byte digests first (they need no decoding).
_REGISTRY: list[SignalType] = [SHA256Signal(), MD5Signal(), PDQSignal(), VPDQSignal()]


def signal_types() -> list[SignalType]:
    """Every registered signal type, in computing order."""
    return list(_REGISTRY)


def signal_type(name: str) -> SignalType:
    """The type of reclaim's signal ``name`` (as a case stores it). Raises KeyError."""
    for s in _REGISTRY:
        if s.name == name:
            return s
    raise KeyError(name)


def exchange_names() -> list[str]:
    """Every HMA/ThreatExchange signal type name the registry banks under, in registry order
    (``md5`` and ``video_md5`` both come from the MD5 signal)."""
    return [n for s in _REGISTRY for n in s.all_exchange_names()]


def by_exchange_name(name: str) -> SignalType | None:
    """The signal type banked under the HMA name ``name`` (``video_md5`` → MD5), or None."""
    for s in _REGISTRY:
        if name in s.all_exchange_names():
            return s
    return None


def register(signal: SignalType) -> None:
    """Add a signal type (computed after those registered before). Raises ValueError when its
    name or one of its HMA names is taken. Runs in this process only: call it at import of a
    module that analysis workers import too."""
    taken = {s.name for s in _REGISTRY} | set(exchange_names())
    clash = ({signal.name} | set(signal.all_exchange_names())) & taken
    if clash:
        raise ValueError(f"signal type name already registered: {', '.join(sorted(clash))}")
    _REGISTRY.append(signal)


def unregister(name: str) -> None:
    """Remove the signal type named ``name`` (plugins' tests). Raises KeyError."""
    _REGISTRY.remove(signal_type(name))
