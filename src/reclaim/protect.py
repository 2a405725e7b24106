"""StopNCII-style protection: the hashes of private photos and videos, never the images.

One row per shared signal of the registry (``reclaim.hashes``: ``SignalType.shared``), under its
ThreatExchange/HMA name (``md5``/``video_md5``, ``pdq``, ``vpdq``); no file name or path. Used by
``reclaim protect`` and the web app's Protect page.

A photo's PDQ is written in the flavours asked for (``reclaim.hashes.pdq``: ``reference``,
``pytx``), one row per distinct hash, each naming its flavour in ``pdq_flavour``. The default,
``both``, gives the most matches when the platform hashes with python-threatexchange (HMA) or
with Meta's reference hasher (numbers: docs/pdq-and-vpdq.md, "PDQ flavours").
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from reclaim import __version__
from reclaim.hashes import PDQSignal, SignalValue, signal_type
from reclaim.hashes.pdq import PdqFlavour, pdq_flavour, pdq_isolated
from reclaim.media import MediaLimits
from reclaim.store import ItemRecord

PROTECT_FIELDS = [
    "signal_type",
    "signal",
    "quality",
    "media_kind",
    "created_at",
    "tool",
    "pdq_flavour",
]

#: ``--pdq-flavour`` of ``reclaim protect``: one flavour, or ``both`` (a row for each).
PROTECT_PDQ_CHOICES = ("both", *(f.value for f in PdqFlavour))
#: ``reclaim protect`` (and the Protect page): both flavours. In bench/pdq_flavours.py the union
#: matches at least as often as either flavour alone in every case measured, and is the only
#: choice that matches both a phone photo's re-encoded upright copies (``reference`` only)
#: and the phone file itself hashed by HMA (``pytx`` only).
DEFAULT_PROTECT_PDQ = "both"
#: ``reclaim hash``: python-threatexchange's flavour, bit-exact with what HMA computes.
DEFAULT_HASH_PDQ = PdqFlavour.PYTX.value


def pdq_flavours(choice: str) -> tuple[PdqFlavour, ...]:
    """The flavours of a ``--pdq-flavour`` choice (``both``: reference first, then pytx).
    ValueError with the choices for an unknown one."""
    if choice.strip().lower() == "both":
        return (PdqFlavour.REFERENCE, PdqFlavour.PYTX)
    try:
        return (pdq_flavour(choice),)
    except ValueError:
        raise ValueError(
            f"unknown PDQ flavour {choice!r}: use one of {', '.join(PROTECT_PDQ_CHOICES)}"
        ) from None


def item_pdq(
    item: ItemRecord, data: bytes, limits: MediaLimits, flavours: tuple[PdqFlavour, ...]
) -> dict[str, tuple[str, int | None]]:
    """An analysed photo's PDQ in each of ``flavours`` (in that order): the one the registry
    computed (``reference``) from the item, the others computed again from ``data`` in a
    sandboxed worker. Empty when the item has no PDQ (a video, an error). Raises MediaError
    subclasses (e.g. MediaTooLarge: ``pytx`` hashes the full-size image)."""
    stored = next(((v, q) for n, v, q in item.signals if n == PDQSignal.name), None)
    if stored is None:
        return {}
    have = signal_type(PDQSignal.name)
    mine = have.flavour if isinstance(have, PDQSignal) else PdqFlavour.REFERENCE
    others = tuple(f.value for f in flavours if f is not mine)
    computed: dict[str, tuple[str, int | None]] = {}
    if others:
        computed.update(pdq_isolated(data, limits, others))
    computed[mine.value] = stored
    return {f.value: computed[f.value] for f in flavours}


def analyze_for_protect(
    data: bytes, limits: MediaLimits, choice: str = DEFAULT_PROTECT_PDQ
) -> tuple[ItemRecord, dict[str, tuple[str, int | None]]]:
    """One file's analysis (in the sandboxed worker) and its PDQ in the flavours of ``choice``.
    Never raises for bad media: the item's ``error`` says what went wrong (with a hint when
    only the full-size ``pytx`` flavour failed)."""
    from reclaim.errors import MediaError, MediaTooLarge
    from reclaim.media import sandbox

    item = sandbox.analyze_isolated(data, limits)
    if item.error:
        return item, {}
    try:
        return item, item_pdq(item, data, limits, pdq_flavours(choice))
    except MediaError as e:
        hint = ""
        if isinstance(e, MediaTooLarge):
            hint = (
                " (the pytx flavour hashes the full-size image; --pdq-flavour reference does not)"
            )
        item.error = f"{type(e).__name__}: {e}{hint}"
        return item, {}


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def protect_rows(
    item: ItemRecord, created: str, pdq: dict[str, tuple[str, int | None]] | None = None
) -> list[dict[str, Any]]:
    """The rows for one analysed item: each shared signal it has, in the registry's order, in
    the form its type shares (vPDQ: the compact HMA list). ``pdq`` (``item_pdq``): the photo's
    PDQ by flavour, a row for each distinct hash in that order (default: the registry's own),
    its ``pdq_flavour`` naming the flavour that gave it (``both`` where the two agree)."""
    base = {"media_kind": item.kind, "created_at": created, "tool": f"reclaim {__version__}"}
    rows: list[dict[str, Any]] = []
    for name, value, quality in item.signals:
        sig = signal_type(name)
        if not sig.shared:
            continue
        st = sig.exchange_name(item.kind)
        if name == PDQSignal.name and isinstance(sig, PDQSignal):  # not a type built on it
            by_hash: dict[str, list[str]] = {}  # the flavours agree on photos up to 512 px
            for flavour, (h, _) in (pdq or {sig.flavour.value: (value, quality)}).items():
                by_hash.setdefault(h, []).append(flavour)
            quality_of = dict((pdq or {}).values()) or {value: quality}
            for h, flavours in by_hash.items():
                q = quality_of[h]
                row = {"signal_type": st, "signal": h, "quality": "" if q is None else q}
                label = flavours[0] if len(flavours) == 1 else "both"
                rows.append({**base, **row, "pdq_flavour": label})
            continue
        text, q = sig.shared_form(SignalValue(name, value, quality))
        row = {"signal_type": st, "signal": text, "quality": "" if q is None else q}
        rows.append({**base, **row, "pdq_flavour": ""})
    return rows


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=PROTECT_FIELDS, lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
