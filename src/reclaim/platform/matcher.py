"""The matcher: in-memory indexes over every bank's signals, kept current from the change log.

PDQ hashes go into one ``PdqIndex`` (FAISS; ids are signal ids), vPDQ frame hashes into another
(candidates are then scored with Meta's vPDQ rule), MD5/SHA-256 are looked up by key in the
store within the asking tenant's signals. Results are filtered to the asking tenant's banks, and
PDQ by each bank's own distance; the index status counts only the asking tenant's hashes.

Freshness: writes made through this process call ``refresh(force=True)`` and are matchable
when the request returns; other processes sharing the database pick them up from the change log
at most ``poll_interval`` seconds later (incremental: only the changed signals are applied).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from reclaim.hashes.pdq import PDQ_MATCH_DISTANCE, PDQ_MIN_QUALITY, PdqHash
from reclaim.hashes.vpdq import VpdqFrame, frames_from_json, match_videos
from reclaim.match.pdq_index import PdqIndex, hashes_from_hex
from reclaim.platform.store import Bank, Change, PlatformStore

__all__ = ["Match", "Matcher"]

INDEXED = ("pdq", "vpdq")
EXACT = ("md5", "video_md5", "sha256")


@dataclass(frozen=True)
class Match:
    content_id: int
    bank_id: int
    bank: str
    distance: str


class _IdMap:
    """signal id → (content id, bank id) in dense numpy arrays (ids are auto-increment)."""

    def __init__(self) -> None:
        self.content = np.zeros(1024, dtype=np.int64)
        self.bank = np.zeros(1024, dtype=np.int64)

    def set(self, sid: int, content: int, bank: int) -> None:
        if sid >= len(self.content):
            size = max(sid + 1, 2 * len(self.content))
            self.content = np.resize(self.content, size)
            self.bank = np.resize(self.bank, size)
        self.content[sid] = content
        self.bank[sid] = bank


class Matcher:
    def __init__(
        self, store: PlatformStore, poll_interval: float = 1.0, flat_max: int | None = None
    ) -> None:
        self.store = store
        self.poll_interval = poll_interval
        kw = {} if flat_max is None else {"flat_max": flat_max}
        self.pdq = PdqIndex(PDQ_MATCH_DISTANCE, **kw)
        self.vpdq_index = PdqIndex(PDQ_MATCH_DISTANCE, **kw)
        self.vpdq_frames: dict[int, list[VpdqFrame]] = {}
        self.ids = _IdMap()
        self.banks: dict[int, Bank] = {}
        self.seq = 0
        self.loaded_to = 0  # signals with id <= this were bulk-loaded
        self.built_at = 0.0
        self._last_poll = 0.0
        self._lock = threading.Lock()
        self.load()

    # -- loading and following changes ------------------------------------------------------

    def load(self) -> None:
        with self._lock:
            self.seq = self.store.last_change()
            self._reload_banks()
            after = 0
            while True:
                page = self.store.live_signals(INDEXED, after_id=after)
                if not page:
                    break
                self._apply_adds(page)
                after = page[-1].signal_id
            self.loaded_to = after
            self.built_at = time.time()
            self._last_poll = time.monotonic()

    def _reload_banks(self) -> None:
        self.banks = {b.id: b for b in self.store.all_banks()}
        widest = max([PDQ_MATCH_DISTANCE, *(b.pdq_distance for b in self.banks.values())])
        if widest > self.pdq.max_radius:
            self.pdq.set_max_radius(widest)
            self.vpdq_index.set_max_radius(widest)

    def _apply_adds(self, changes: list[Change]) -> None:
        pdq_ids: list[int] = []
        pdq_hex: list[str] = []
        for c in changes:
            if c.signal_type is None or c.value is None or c.bank_id is None:
                continue  # added then deleted before we saw it
            if c.content_id is not None:
                self.ids.set(c.signal_id, c.content_id, c.bank_id)
            if c.signal_type == "pdq":
                if c.quality is not None and c.quality < PDQ_MIN_QUALITY:
                    continue  # too featureless to match on
                pdq_ids.append(c.signal_id)
                pdq_hex.append(c.value)
            elif c.signal_type == "vpdq":
                frames = frames_from_json(c.value)
                good = [f for f in frames if f.quality >= PDQ_MIN_QUALITY]
                self.vpdq_frames[c.signal_id] = frames
                if good:
                    codes = np.frombuffer(b"".join(f.hash.bits for f in good), np.uint8)
                    self.vpdq_index.add(
                        np.full(len(good), c.signal_id, dtype=np.int64), codes.reshape(-1, 32)
                    )
        if pdq_ids:
            self.pdq.add(np.array(pdq_ids, dtype=np.int64), hashes_from_hex(pdq_hex))

    def refresh(self, force: bool = False) -> None:
        """Apply changes logged since the last poll (at most every ``poll_interval`` s)."""
        if not force and time.monotonic() - self._last_poll < self.poll_interval:
            return
        with self._lock:
            self._last_poll = time.monotonic()
            while True:
                changes = self.store.changes_since(self.seq)
                if not changes:
                    return
                adds = [c for c in changes if c.op == "add" and c.signal_id > self.loaded_to]
                dels = [c.signal_id for c in changes if c.op == "del"]
                unknown = any(c.bank_id is not None and c.bank_id not in self.banks for c in adds)
                if unknown or any(c.op == "bank" for c in changes):
                    self._reload_banks()
                self._apply_adds(adds)
                if dels:
                    self.pdq.remove(dels)
                    self.vpdq_index.remove(dels)
                    for sid in dels:
                        self.vpdq_frames.pop(sid, None)
                self.seq = changes[-1].seq
                self.built_at = time.time()

    # -- lookups ------------------------------------------------------------------------------

    def _bank_ok(self, bank_id: int, tenant_id: int, banks: set[str] | None) -> Bank | None:
        b = self.banks.get(bank_id)
        if b is None or b.tenant_id != tenant_id:
            return None
        if banks is not None and b.name not in banks:
            return None
        return b

    def lookup(
        self,
        tenant_id: int,
        signal_type: str,
        value: str,
        banks: set[str] | None = None,
        quality: int | None = None,
    ) -> list[Match]:
        """Matches of one canonical signal value among the tenant's banks."""
        self.refresh()
        if signal_type == "pdq":
            if quality is not None and quality < PDQ_MIN_QUALITY:
                return []
            return self._lookup_pdq(tenant_id, PdqHash.from_hex(value).bits, banks)
        if signal_type == "vpdq":
            return self._lookup_vpdq(tenant_id, frames_from_json(value), banks)
        out = []
        for _sid, cid, bid in self.store.exact_lookup(tenant_id, signal_type, value):
            b = self._bank_ok(bid, tenant_id, banks)
            if b is not None:
                out.append(Match(cid, b.id, b.name, "0"))
        return out

    def _lookup_pdq(self, tenant_id: int, bits: bytes, banks: set[str] | None) -> list[Match]:
        out = []
        seen: set[int] = set()
        for hit in self.pdq.search_one(bits):
            bid = int(self.ids.bank[hit.id])
            b = self._bank_ok(bid, tenant_id, banks)
            if b is None or hit.distance > b.pdq_distance:
                continue
            cid = int(self.ids.content[hit.id])
            if cid not in seen:
                seen.add(cid)
                out.append(Match(cid, b.id, b.name, str(hit.distance)))
        return out

    def _lookup_vpdq(
        self, tenant_id: int, frames: list[VpdqFrame], banks: set[str] | None
    ) -> list[Match]:
        good = [f for f in frames if f.quality >= PDQ_MIN_QUALITY]
        if not good:
            return []
        q = np.frombuffer(b"".join(f.hash.bits for f in good), np.uint8).reshape(-1, 32)
        candidates = {h.id for hits in self.vpdq_index.search(q) for h in hits}
        out = []
        for sid in sorted(candidates):
            b = self._bank_ok(int(self.ids.bank[sid]), tenant_id, banks)
            target = self.vpdq_frames.get(sid)
            if b is None or target is None:
                continue
            m = match_videos(frames, target, distance=b.pdq_distance)
            if m.is_match():
                out.append(
                    Match(
                        int(self.ids.content[sid]),
                        b.id,
                        b.name,
                        f"{m.query_match_percent:.1f},{m.compared_match_percent:.1f}",
                    )
                )
        return out

    def status(self, tenant_id: int) -> dict[str, dict[str, object]]:
        """HMA's index status for one tenant: ``size`` counts that tenant's hashes only (PDQ:
        those the index matches on, quality >= 50 or unknown); ``built_to`` is when this
        process last applied a change."""
        built = int(self.built_at)
        counts = self.store.signal_counts(tenant_id, PDQ_MIN_QUALITY)
        return {
            st: {"present": True, "built_to": built, "size": counts.get(st, 0)}
            for st in ("pdq", "vpdq", "md5", "video_md5", "sha256")
        }
