"""``CaseStore``: one case directory, the store's parts composed (see ``reclaim.store``).

Everything that was importable from here before the store was split by concern still is.
"""

from __future__ import annotations

from reclaim.store.base import CaseBase, Columns, Group, now_iso
from reclaim.store.checks import CheckStore
from reclaim.store.decisions import DecisionStore
from reclaim.store.faces import FaceRecord, FaceStore, Finding
from reclaim.store.items import ItemRecord, ItemStore, SightingRecord
from reclaim.store.requests import RequestStore
from reclaim.store.schema import DB_NAME, SCHEMA_VERSION
from reclaim.store.shields import ShieldRecord, ShieldStore
from reclaim.store.watch import WatchStore

__all__ = [
    "DB_NAME",
    "SCHEMA_VERSION",
    "CaseBase",
    "CaseStore",
    "Columns",
    "FaceRecord",
    "Finding",
    "Group",
    "ItemRecord",
    "ShieldRecord",
    "SightingRecord",
    "now_iso",
]


class CaseStore(
    ItemStore, FaceStore, CheckStore, DecisionStore, ShieldStore, RequestStore, WatchStore
):
    """A case directory. Open with ``CaseStore.open(dir, create=True)``; close when done."""
