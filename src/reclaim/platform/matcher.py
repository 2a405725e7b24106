"""The matcher: in-memory indexes over every bank's signals, kept current from the change log.

Which signal types are indexed, and how, is each type's ``index`` (``reclaim.hashes.Index``):
a PDQ-indexed type (``pdq``) puts its hash in a ``PdqIndex`` of its own (ids are signal ids); a
frames-indexed type (``vpdq``) puts every frame hash there, and the candidates it finds are
scored with the type's ``compare`` at the bank's distance (Meta's vPDQ rule); exact types
(``md5``, ``video_md5``, ``sha256``) are looked up by key in the store within the asking
tenant's signals. Results are filtered to the asking tenant's banks, and PDQ by each bank's own
distance; the index status counts only the asking tenant's hashes.

PDQ flavours (``reclaim.hashes.pdq``): an upload is hashed in each flavour the asking tenant's
banks use (``pdq_flavours``), and a lookup for one flavour's hash (``lookup(pdq_flavour=...)``)
keeps a PDQ hit only when the signal's flavour is that one: the signal's own (``reference``,
``pytx``; ``both`` matches either), else its bank's. A hash given as such (``raw_lookup``,
``lookup`` with ``signal=``) is looked up without a flavour: every signal may match it, as
before.

Freshness: writes made through this process call ``refresh(force=True)`` and are matchable
when the request returns; other processes sharing the database pick them up from the change log
at most ``poll_interval`` seconds later (incremental: only the changed signals are applied).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from reclaim.hashes import Index, SignalType, by_exchange_name, exchange_names
from reclaim.hashes.pdq import PDQ_MATCH_DISTANCE, PDQ_MIN_QUALITY
from reclaim.match.pdq_index import PdqIndex
from reclaim.platform.store import Bank, Change, PlatformStore
from reclaim.platform.store.banks import ROW_FLAVOURS

__all__ = ["Match", "Matcher"]


@dataclass(frozen=True)
class Match:
    content_id: int
    bank_id: int
    bank: str
    distance: str


#: A PDQ signal's flavour code in ``_IdMap.flavour``: 0 not a PDQ signal (or gone), then the
#: bank's, each of ``ROW_FLAVOURS`` in turn.
NOT_PDQ, BANKS_FLAVOUR = 0, 1
_CODE: dict[str | None, int] = {None: BANKS_FLAVOUR}
_CODE.update({f: i + 2 for i, f in enumerate(ROW_FLAVOURS)})
_FLAVOUR_OF_CODE = {code: f for f, code in _CODE.items() if f is not None}
BOTH = _CODE["both"]


class _IdMap:
    """signal id → (content id, bank id, PDQ flavour code) in dense numpy arrays (ids are
    auto-increment)."""

    def __init__(self) -> None:
        self.content = np.zeros(1024, dtype=np.int64)
        self.bank = np.zeros(1024, dtype=np.int64)
        self.flavour = np.zeros(1024, dtype=np.int8)

    def set(self, sid: int, content: int, bank: int, flavour: int = NOT_PDQ) -> None:
        if sid >= len(self.content):
            size = max(sid + 1, 2 * len(self.content))
            self.content = np.resize(self.content, size)
            self.bank = np.resize(self.bank, size)
            grown = np.zeros(size, dtype=np.int8)
            grown[: len(self.flavour)] = self.flavour
            self.flavour = grown
        self.content[sid] = content
        self.bank[sid] = bank
        self.flavour[sid] = flavour


def _indexed_types() -> dict[str, SignalType]:
    """HMA name → signal type, for the types the matcher keeps in memory (not exact ones)."""
    out = {}
    for name in exchange_names():
        sig = by_exchange_name(name)
        if sig is not None and sig.index is not Index.EXACT:
            out[name] = sig
    return out


def _codes(codes: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(codes), np.uint8).reshape(-1, 32)


class Matcher:
    def __init__(
        self, store: PlatformStore, poll_interval: float = 1.0, flat_max: int | None = None
    ) -> None:
        self.store = store
        self.poll_interval = poll_interval
        kw = {} if flat_max is None else {"flat_max": flat_max}
        self.types = _indexed_types()
        #: One index per indexed signal type (HMA name).
        self.indexes = {st: PdqIndex(PDQ_MATCH_DISTANCE, **kw) for st in self.types}
        #: Frames-indexed values by signal id, for scoring the candidates the index finds.
        self.values: dict[int, str] = {}
        self.ids = _IdMap()
        self.banks: dict[int, Bank] = {}
        #: bank id → flavour code → how many of its PDQ signals carry it (``pdq_flavours``)
        self.flavour_counts: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
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
            while self.types:
                page = self.store.live_signals(list(self.types), after_id=after)
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
        for index in self.indexes.values():
            if widest > index.max_radius:
                index.set_max_radius(widest)

    def _apply_adds(self, changes: list[Change]) -> None:
        ids: dict[str, list[int]] = defaultdict(list)
        codes: dict[str, list[bytes]] = defaultdict(list)
        for c in changes:
            if c.signal_type is None or c.value is None or c.bank_id is None:
                continue  # added then deleted before we saw it
            if c.content_id is not None:
                code = NOT_PDQ
                if c.signal_type == "pdq":
                    code = _CODE.get(c.pdq_flavour, BANKS_FLAVOUR)
                    self.flavour_counts[c.bank_id][code] += 1
                self.ids.set(c.signal_id, c.content_id, c.bank_id, code)
            sig = self.types.get(c.signal_type)
            if sig is None:
                continue  # an exact type: looked up in the store
            if sig.index is Index.PDQ_FRAMES:
                self.values[c.signal_id] = c.value
            got = sig.index_codes(c.value, c.quality)  # none: too featureless to match on
            ids[c.signal_type].extend([c.signal_id] * len(got))
            codes[c.signal_type].extend(got)
        for st, these in ids.items():
            if these:
                self.indexes[st].add(np.array(these, dtype=np.int64), _codes(codes[st]))

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
                    for index in self.indexes.values():
                        index.remove(dels)
                    for sid in dels:
                        self.values.pop(sid, None)
                        self._forget_flavour(sid)
                self.seq = changes[-1].seq
                self.built_at = time.time()

    def _forget_flavour(self, sid: int) -> None:
        if sid >= len(self.ids.flavour) or self.ids.flavour[sid] == NOT_PDQ:
            return
        counts = self.flavour_counts[int(self.ids.bank[sid])]
        code = int(self.ids.flavour[sid])
        counts[code] -= 1
        if counts[code] <= 0:
            del counts[code]
        self.ids.flavour[sid] = NOT_PDQ

    # -- flavours -----------------------------------------------------------------------------

    def pdq_flavours(self, tenant_id: int, banks: set[str] | None = None) -> list[str]:
        """The PDQ flavours an upload must be hashed in to match the tenant's PDQ signals (in
        ``banks`` when given), ``pytx`` first: each bank's own for the signals that follow it,
        and the flavours signals carry (``both`` needs none of its own). Empty when no signal
        needs one (no PDQ signal, or only ``both``)."""
        self.refresh()
        need: set[str] = set()
        with self._lock:
            for bank_id, counts in self.flavour_counts.items():
                b = self._bank_ok(bank_id, tenant_id, banks)
                if b is None:
                    continue
                for code, n in counts.items():
                    if n <= 0 or code == BOTH:
                        continue
                    need.add(b.pdq_flavour if code == BANKS_FLAVOUR else _FLAVOUR_OF_CODE[code])
        return sorted(need, key=lambda f: (f != "pytx", f))

    def _flavour_ok(self, sid: int, bank: Bank, flavour: str) -> bool:
        code = int(self.ids.flavour[sid]) if sid < len(self.ids.flavour) else NOT_PDQ
        if code in (NOT_PDQ, BOTH):
            return True
        if code == BANKS_FLAVOUR:
            return bank.pdq_flavour == flavour
        return bool(_FLAVOUR_OF_CODE[code] == flavour)

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
        pdq_flavour: str | None = None,
    ) -> list[Match]:
        """Matches of one canonical signal value among the tenant's banks. ``pdq_flavour``: the
        flavour a PDQ hash was computed in (an upload's); only PDQ signals of that flavour (or
        ``both``) match it. None: any signal may (a hash given as such)."""
        self.refresh()
        sig = self.types.get(signal_type)
        if sig is not None:
            codes = sig.index_codes(value, quality)
            if not codes:
                return []  # too featureless to match on
            if sig.index is Index.PDQ:
                return self._lookup_pdq(signal_type, tenant_id, codes[0], banks, pdq_flavour)
            return self._lookup_frames(sig, signal_type, tenant_id, value, codes, banks)
        out = []
        for _sid, cid, bid in self.store.exact_lookup(tenant_id, signal_type, value):
            b = self._bank_ok(bid, tenant_id, banks)
            if b is not None:
                out.append(Match(cid, b.id, b.name, "0"))
        return out

    def _lookup_pdq(
        self,
        signal_type: str,
        tenant_id: int,
        bits: bytes,
        banks: set[str] | None,
        flavour: str | None = None,
    ) -> list[Match]:
        out = []
        seen: set[int] = set()
        for hit in self.indexes[signal_type].search_one(bits):
            bid = int(self.ids.bank[hit.id])
            b = self._bank_ok(bid, tenant_id, banks)
            if b is None or hit.distance > b.pdq_distance:
                continue
            if flavour is not None and not self._flavour_ok(hit.id, b, flavour):
                continue
            cid = int(self.ids.content[hit.id])
            if cid not in seen:
                seen.add(cid)
                out.append(Match(cid, b.id, b.name, str(hit.distance)))
        return out

    def _lookup_frames(
        self,
        sig: SignalType,
        signal_type: str,
        tenant_id: int,
        value: str,
        codes: list[bytes],
        banks: set[str] | None,
    ) -> list[Match]:
        found = self.indexes[signal_type].search(_codes(codes))
        candidates = {h.id for hits in found for h in hits}
        out = []
        for sid in sorted(candidates):
            b = self._bank_ok(int(self.ids.bank[sid]), tenant_id, banks)
            target = self.values.get(sid)
            if b is None or target is None:
                continue
            cmp = sig.at_distance(b.pdq_distance).compare(value, target)
            if cmp.match:
                out.append(Match(int(self.ids.content[sid]), b.id, b.name, cmp.hma_distance()))
        return out

    def status(self, tenant_id: int) -> dict[str, dict[str, object]]:
        """HMA's index status for one tenant: ``size`` counts that tenant's hashes only (PDQ:
        those the index matches on, quality >= 50 or unknown); ``built_to`` is when this
        process last applied a change."""
        built = int(self.built_at)
        counts = self.store.signal_counts(tenant_id, PDQ_MIN_QUALITY)
        return {
            st: {"present": True, "built_to": built, "size": counts.get(st, 0)}
            for st in exchange_names()
        }
