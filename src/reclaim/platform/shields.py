"""Face shields at the platform (issue 20): the index uploads' faces are matched against, and
what the service holds for the shield routes (key file, index, rate limits).

Per tenant and key epoch, the index keeps the stored codes of the tenant's shields as one
``(n × 1024)`` uint8 matrix, grouped by shield. Matching an upload's faces (clear descriptors,
held in memory only for this call) takes, per epoch: the codes under the tenant's intake key for
that epoch, the platform's secret layer on them (``reclaim.shield.protocol``), the share of equal
bytes against every stored template (a numba kernel, ~0.7 ms per face for 30,000 templates),
and per shield face search's score ``(best + mean) / 2`` (``shield_score``); a face matches a
shield at ``score ≥ population().threshold``.

At rest the codes are sealed (``CodeSeal``: AES-GCM under a key derived from the epoch's secret,
bound to tenant, epoch, shield and place): the database alone holds ciphertexts, and the index
opens them when it loads a tenant.

Freshness: an intake or revocation through this process reloads that tenant at once
(``reload``); other processes' changes are seen at the next poll (``poll_interval_s``), which
compares each tenant's (highest shield row id, count) with the store's.

The projections of each (tenant, epoch) scheme are drawn once and kept in a small LRU cache
(float32, 25 MB each): drawing them costs ~0.2 s.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numba
import numpy as np

from reclaim.platform.shield_keys import ShieldKeyError, ShieldKeys
from reclaim.platform.store import PlatformStore
from reclaim.shield.protocol import EpochSecret, population, shield_score

__all__ = ["RateLimiter", "ShieldHit", "ShieldIndex", "Shields"]

log = logging.getLogger("reclaim.platform.shields")

F = TypeVar("F", bound=Callable[..., Any])
_jit = cast(Callable[[F], F], numba.njit(nogil=True, cache=True))


@_jit
def _equal_counts(stored: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(k × n) int32: for each query code row and stored code row, how many bytes are equal."""
    k, m = queries.shape
    n = stored.shape[0]
    out = np.zeros((k, n), np.int32)
    for i in range(n):
        for f in range(k):
            c = 0
            for j in range(m):
                c += stored[i, j] == queries[f, j]
            out[f, i] = c
    return out


def equal_share(stored: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(k × n) float64 IoM similarities: the share of equal codes."""
    s = np.ascontiguousarray(stored, dtype=np.uint8)
    q = np.ascontiguousarray(queries, dtype=np.uint8)
    if s.shape[0] == 0 or q.shape[0] == 0:
        return np.zeros((q.shape[0], s.shape[0]))
    counts: np.ndarray = _equal_counts(s, q)
    return np.asarray(counts / q.shape[1], dtype=np.float64)


@dataclass(frozen=True)
class ShieldHit:
    """One shield matched by an upload: its best face (index into the faces matched) and
    score."""

    shield_id: str
    score: float
    face: int


class _Scheme:
    """The matcher's side of one tenant's epoch: the intake key's projections (as float32),
    normaliser and the platform's layer. Codes of an upload's faces, in stored form."""

    def __init__(self, secret: EpochSecret, tenant: str) -> None:
        iom = secret.intake_key(tenant).iom
        self.m, self.q = iom.m, iom.q
        self.normaliser = iom.normaliser
        # float32: half the memory and bandwidth of the float64 projections (an upload's
        # codes are computed per face, ~1 ms); an index flips only where two projections
        # are equal to 1e-7, which no face is near. test_platform_shields checks the agreement.
        self.proj = np.ascontiguousarray(iom._proj, dtype=np.float32)
        self.layer = secret.layer(tenant)

    def codes(self, descriptors: np.ndarray) -> np.ndarray:
        x = self.normaliser(descriptors).astype(np.float32)
        with one_blas_thread():
            y = (x @ self.proj.T).reshape(-1, self.m, self.q)
        return self.layer.apply(y.argmax(axis=2))


_BLAS: Any = None


def one_blas_thread() -> Any:
    """A context in which numpy's BLAS uses one thread. The service's parallelism is its
    decoding workers and concurrent requests; a multi-threaded BLAS spinning beside them made
    one upload's match 22–39 ms instead of 3–12 ms on a busy 2-core machine (10,000 shields)."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class _EpochCodes:
    epoch: int
    codes: np.ndarray  # (n × m) uint8, grouped by shield
    starts: np.ndarray  # first row of each shield
    shield_ids: tuple[str, ...]

    def rows(self, s: int) -> slice:
        end = int(self.starts[s + 1]) if s + 1 < len(self.starts) else self.codes.shape[0]
        return slice(int(self.starts[s]), end)


@dataclass(frozen=True)
class _TenantShields:
    version: tuple[int, int]
    epochs: tuple[_EpochCodes, ...]

    @property
    def count(self) -> int:
        return self.version[1]


def _group(version: tuple[int, int], rows: list[tuple[str, int, bytes]]) -> _TenantShields:
    by_epoch: dict[int, list[tuple[str, bytes]]] = {}
    for sid, epoch, codes in rows:
        by_epoch.setdefault(epoch, []).append((sid, codes))
    out = []
    for epoch, items in sorted(by_epoch.items()):
        ids: list[str] = []
        starts: list[int] = []
        for n, (sid, _) in enumerate(items):
            if not ids or ids[-1] != sid:  # rows come grouped by shield
                ids.append(sid)
                starts.append(n)
        m = len(items[0][1])
        matrix = np.frombuffer(b"".join(c for _, c in items), dtype=np.uint8).reshape(-1, m)
        out.append(_EpochCodes(epoch, matrix, np.asarray(starts, dtype=np.int64), tuple(ids)))
    return _TenantShields(version, tuple(out))


class ShieldIndex:
    """Every tenant's shields in memory, matched against an upload's faces. Thread-safe: a
    match reads one tenant's immutable snapshot; loads are serialised."""

    def __init__(
        self,
        store: PlatformStore,
        keys: ShieldKeys,
        poll_interval_s: float = 1.0,
        scheme_cache: int = 8,
    ) -> None:
        self.store = store
        self.keys = keys
        self.poll_interval_s = poll_interval_s
        self.scheme_cache = max(1, scheme_cache)
        self._tenants: dict[int, _TenantShields] = {}
        self._schemes: OrderedDict[tuple[str, int, bytes], _Scheme] = OrderedDict()
        self._schemes_lock = threading.Lock()
        self._lock = threading.Lock()
        self._last_poll = 0.0
        self._missing_epochs: set[int] = set()
        self.refresh(force=True)

    # -- loading ------------------------------------------------------------------------------

    def refresh(self, force: bool = False) -> None:
        """Reload the tenants whose shields changed (at most every ``poll_interval_s``)."""
        if not force and time.monotonic() - self._last_poll < self.poll_interval_s:
            return
        with self._lock:
            if not force and time.monotonic() - self._last_poll < self.poll_interval_s:
                return
            self._last_poll = time.monotonic()
            try:
                if self.keys.reload_if_changed():
                    self._missing_epochs.clear()
            except ShieldKeyError as e:
                log.warning("face shields: keeping the keys already loaded: %s", e)
            versions = self.store.shield_versions()  # before the codes: see reload
            for tid in set(self._tenants) - set(versions):
                del self._tenants[tid]
            for tid, version in versions.items():
                have = self._tenants.get(tid)
                if have is None or have.version != version:
                    self._tenants[tid] = _group(version, self._opened(tid))

    def reload(self, tenant_id: int) -> None:
        """Reload one tenant now (after an intake or revocation through this process). Its
        version is read before its codes: a change in between only causes another reload."""
        with self._lock:
            version = self.store.shield_versions().get(tenant_id)
            if version is None:
                self._tenants.pop(tenant_id, None)
            else:
                self._tenants[tenant_id] = _group(version, self._opened(tenant_id))

    def _opened(self, tenant_id: int) -> list[tuple[str, int, bytes]]:
        """The tenant's stored codes, opened (``CodeSeal``). A row that does not open (altered,
        moved, or its epoch's secret missing from the key file) is left out, and said once."""
        out: list[tuple[str, int, bytes]] = []
        seals: dict[int, Any] = {}
        last, place, bad = "", 0, 0
        for sid, epoch, blob in self.store.shield_codes(tenant_id):
            place = place + 1 if sid == last else 0
            last = sid
            secret = self.keys.secret(epoch)
            if secret is None:
                bad += 1
                continue
            if epoch not in seals:
                seals[epoch] = secret.code_seal(tenant_id)
            codes = seals[epoch].open(blob, sid, place)
            if codes is None:
                bad += 1
                continue
            out.append((sid, epoch, codes))
        if bad:
            log.warning(
                "face shields: %d stored template(s) of tenant %d do not open with the key file "
                "%s (altered rows, or an epoch missing from the file); they cannot match",
                bad,
                tenant_id,
                self.keys.path,
            )
        return out

    def count(self, tenant_id: int) -> int:
        """The tenant's shields (0: an upload needs no face work)."""
        self.refresh()
        t = self._tenants.get(tenant_id)
        return t.count if t else 0

    def templates(self, tenant_id: int) -> int:
        """Stored codes of the tenant held in memory (status, tests)."""
        t = self._tenants.get(tenant_id)
        return sum(e.codes.shape[0] for e in t.epochs) if t else 0

    # -- matching -----------------------------------------------------------------------------

    def _scheme(self, tenant: str, secret: EpochSecret) -> _Scheme:
        key = (tenant, secret.epoch, hashlib.sha256(secret.secret).digest())
        with self._schemes_lock:
            got = self._schemes.get(key)
            if got is not None:
                self._schemes.move_to_end(key)
                return got
        made = _Scheme(secret, tenant)  # ~0.2 s, outside the lock
        with self._schemes_lock:
            self._schemes[key] = made
            while len(self._schemes) > self.scheme_cache:
                self._schemes.popitem(last=False)
        return made

    def match(
        self, tenant_id: int, tenant: str, descriptors: np.ndarray, threshold: float | None = None
    ) -> list[ShieldHit]:
        """Shields of the tenant matched by any of the faces (``descriptors``: k × 384 clear
        descriptors, used here and dropped), best score first; one hit per shield, with the
        face that scored best."""
        self.refresh()
        t = self._tenants.get(tenant_id)
        x = np.asarray(descriptors, dtype=np.float64)
        if t is None or x.size == 0:
            return []
        x = x.reshape(x.shape[0], -1)
        thr = population().threshold if threshold is None else threshold
        best: dict[str, ShieldHit] = {}
        for ec in t.epochs:
            secret = self.keys.secret(ec.epoch)
            if secret is None:
                if ec.epoch not in self._missing_epochs:
                    self._missing_epochs.add(ec.epoch)
                    log.warning(
                        "face shields: epoch %d is not in the key file %s; shields made under "
                        "it cannot match",
                        ec.epoch,
                        self.keys.path,
                    )
                continue
            sims = equal_share(ec.codes, self._scheme(tenant, secret).codes(x))
            # (best + mean) / 2 ≥ thr needs best ≥ thr: only those shields are scored in full.
            top = np.maximum.reduceat(sims, ec.starts, axis=1)
            for s in np.nonzero((top >= thr).any(axis=0))[0]:
                scores = shield_score(sims[:, ec.rows(int(s))])
                f = int(np.argmax(scores))
                score = float(scores[f])
                sid = ec.shield_ids[int(s)]
                if score >= thr and (sid not in best or best[sid].score < score):
                    best[sid] = ShieldHit(sid, score, f)
        return sorted(best.values(), key=lambda h: -h.score)


class RateLimiter:
    """At most ``limit`` events per key in each window of ``window_s`` seconds (fixed windows,
    in this process's memory: each replica counts its own)."""

    def __init__(self, limit: int, window_s: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._seen: dict[Any, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def hit(self, key: Any, now: float | None = None) -> float | None:
        """Count one event; None when allowed, else the seconds until the key may retry."""
        t = time.monotonic() if now is None else now
        with self._lock:
            start, n = self._seen.get(key, (t, 0))
            if t - start >= self.window_s:
                start, n = t, 0
            if n >= self.limit:
                return max(1.0, start + self.window_s - t)
            if key not in self._seen and len(self._seen) >= self.max_keys:
                live = {k: v for k, v in self._seen.items() if t - v[0] < self.window_s}
                if len(live) >= self.max_keys:  # all live: the oldest tenth of windows go
                    keep = sorted(live.items(), key=lambda kv: kv[1][0])[self.max_keys // 10 :]
                    live = dict(keep)
                self._seen = live
            self._seen[key] = (start, n + 1)
            return None


class Shields:
    """What the service holds for face shields: the key file, the index, the rate limits of
    the routes meant for the people the shields protect."""

    def __init__(
        self,
        store: PlatformStore,
        keys_path: str | Path,
        *,
        poll_interval_s: float = 1.0,
        scheme_cache: int = 8,
        rate_per_ip: int = 10,
        rate_per_tenant: int = 100,
        rate_window_s: float = 3600.0,
    ) -> None:
        self.keys = ShieldKeys.open(keys_path)
        self.index = ShieldIndex(store, self.keys, poll_interval_s, scheme_cache)
        self.per_ip = RateLimiter(rate_per_ip, rate_window_s)
        self.per_tenant = RateLimiter(rate_per_tenant, rate_window_s)
        first = self.keys.epochs()[0].secret.secret
        self._tag_key = hashlib.sha256(b"reclaim shield client tag\x00" + first).digest()

    def client_tag(self, address: str) -> str:
        """A stable pseudonym of a client address for the audit log (keyed: an address cannot
        be recovered by trying all of them without the key file)."""
        return hmac.new(self._tag_key, address.encode(), hashlib.sha256).hexdigest()[:16]

    def limited(self, route: str, address: str, tenant_id: int | None) -> float | None:
        """Count one request of ``route`` from ``address`` for the tenant; None when allowed,
        else the seconds to wait (per address first, then per tenant)."""
        wait = self.per_ip.hit((route, address))
        if wait is None and tenant_id is not None:
            wait = self.per_tenant.hit((route, tenant_id))
        return wait


def faces_matrix(descriptors: Sequence[bytes]) -> np.ndarray:
    """(k × 384) float32 descriptors from their bytes (384 little-endian float32 each)."""
    if not descriptors:
        return np.zeros((0, 384), dtype=np.float32)
    return np.frombuffer(b"".join(descriptors), dtype="<f4").reshape(len(descriptors), -1)
