"""StopNCII-style protection: the hashes of private photos and videos, never the images.

One row per shared signal of the registry (``reclaim.hashes``: ``SignalType.shared``), under its
ThreatExchange/HMA name (``md5``/``video_md5``, ``pdq``, ``vpdq``); no file name or path. Used by
``reclaim protect`` and the web app's Protect page.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from reclaim import __version__
from reclaim.hashes import SignalValue, signal_type
from reclaim.store import ItemRecord

PROTECT_FIELDS = ["signal_type", "signal", "quality", "media_kind", "created_at", "tool"]


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def protect_rows(item: ItemRecord, created: str) -> list[dict[str, Any]]:
    """The rows for one analysed item: each shared signal it has, in the registry's order, in
    the form its type shares (vPDQ: the compact HMA list)."""
    base = {"media_kind": item.kind, "created_at": created, "tool": f"reclaim {__version__}"}
    rows: list[dict[str, Any]] = []
    for name, value, quality in item.signals:
        sig = signal_type(name)
        if not sig.shared:
            continue
        text, q = sig.shared_form(SignalValue(name, value, quality))
        st = sig.exchange_name(item.kind)
        rows.append({**base, "signal_type": st, "signal": text, "quality": "" if q is None else q})
    return rows


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=PROTECT_FIELDS, lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
