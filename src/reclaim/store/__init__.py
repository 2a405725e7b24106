"""Case store: everything a scan learnt, in a SQLite database inside the case directory."""

from reclaim.store.case import CaseStore, ItemRecord, SightingRecord

__all__ = ["CaseStore", "ItemRecord", "SightingRecord"]
