"""StopNCII-style protection: the hashes of private photos and videos, never the images.

One row per signal in the ThreatExchange/HMA vocabulary (``pdq``, ``md5``/``video_md5``,
``vpdq``); no file name or path. Used by ``reclaim protect`` and the web app's Protect page.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

from reclaim import __version__
from reclaim.hashes import te_signal_type
from reclaim.store import ItemRecord

PROTECT_FIELDS = ["signal_type", "signal", "quality", "media_kind", "created_at", "tool"]


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def protect_rows(item: ItemRecord, created: str) -> list[dict[str, Any]]:
    """The rows for one analysed item: pdq, then vpdq (compact HMA form), then md5/video_md5."""
    base = {"media_kind": item.kind, "created_at": created, "tool": f"reclaim {__version__}"}
    sig = {name: (value, q) for name, value, q in item.signals}
    rows: list[dict[str, Any]] = []
    if "pdq" in sig:
        value, quality = sig["pdq"]
        rows.append({**base, "signal_type": "pdq", "signal": value, "quality": quality})
    if "vpdq" in sig:
        frames = json.loads(sig["vpdq"][0])
        compact = [f"{fr['hash']},{fr['quality']},{fr['timestamp']:.3f}" for fr in frames]
        rows.append({**base, "signal_type": "vpdq", "signal": json.dumps(compact), "quality": ""})
    rows.append(
        {**base, "signal_type": te_signal_type("md5", item.kind), "signal": item.md5, "quality": ""}
    )
    return rows


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=PROTECT_FIELDS, lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
