"""Platform replicas: several service processes on one database, each with its own match index
following the change log (docs/scale.md, "Platform replicas").

Two app instances in this process, each with its own store connections, Matcher and background
poller (their lifespans run), share one PostgreSQL schema (``RECLAIM_TEST_POSTGRES_DSN``; those
tests skip without it) or, for the same checks, one SQLite file. A write through replica A is
matchable through B within ``BOUND_S`` (measured), a deletion through A stops matching on B,
one tenant's hashes never match another's lookups on either replica, readiness answers 503
while the index loads or the feed stalls, a change-log number that commits after a later one is
still applied (PostgreSQL with two real transactions; SQLite with the numbers written out of
order), and two replicas following the same log merge their indexes at different moments.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from reclaim.api import Settings, create_app
from reclaim.platform.matcher import Matcher
from reclaim.platform.store import (
    Change,
    PlatformStore,
    PostgresPlatformStore,
    SqlitePlatformStore,
    system_wide,
)

PG_DSN = os.environ.get("RECLAIM_TEST_POSTGRES_DSN")
NO_PG = "two replicas on one PostgreSQL need RECLAIM_TEST_POSTGRES_DSN (postgresql://u:p@host/db)"
#: The stated freshness bound: a write on one replica is matchable on every other within it.
BOUND_S = 5.0
POLL_S = 1.0  # the service's default poll interval


def rand_hash(rng: np.random.Generator) -> str:
    return bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex()


def wait_for(pred: Callable[[], bool], limit: float = BOUND_S + 2.0) -> float | None:
    """Seconds until ``pred()`` held (polled every 20 ms), or None after ``limit``."""
    t0 = time.perf_counter()
    while True:
        if pred():
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > limit:
            return None
        time.sleep(0.02)


# -- two replicas on one database ---------------------------------------------------------------


class Where:
    """One database two replicas share: a SQLite file or a PostgreSQL schema."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.path = tmp_path / "platform.db"
        self.schema = f"rep_{uuid.uuid4().hex[:12]}"

    def store(self, cls: type[Any] | None = None) -> PlatformStore:
        s: PlatformStore
        if self.kind == "sqlite":
            s = (cls or SqlitePlatformStore)(self.path)
        else:
            s = (cls or PostgresPlatformStore)(str(PG_DSN), schema=self.schema)
        s.migrate()
        return s

    def drop(self) -> None:
        if self.kind == "postgres":
            s = PostgresPlatformStore(str(PG_DSN), schema=self.schema)
            s.drop_schema()
            s.close()


@pytest.fixture(params=["sqlite", "postgres"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Where]:
    if request.param == "postgres" and not PG_DSN:
        pytest.skip(NO_PG)
    w = Where(request.param, tmp_path)
    yield w
    w.drop()


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Where]:
    if not PG_DSN:
        pytest.skip(NO_PG)
    w = Where("postgres", tmp_path)
    yield w
    w.drop()


class Replica:
    """One service instance: its own store connections, Matcher and poller (lifespan on)."""

    def __init__(self, store: PlatformStore, **settings: Any) -> None:
        self.store = store
        base: dict[str, Any] = {"start_workers": False, "poll_interval_s": POLL_S}
        self.app = create_app(store, Settings(**{**base, **settings}))
        self.client = TestClient(self.app)
        self.matcher: Matcher = self.app.state.platform.matcher

    def __enter__(self) -> Replica:
        self.client.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.__exit__(*exc)
        self.store.close()

    def found(self, h: dict[str, str], pdq: str) -> set[int]:
        r = self.client.get(
            "/m/raw_lookup", headers=h, params={"signal": pdq, "signal_type": "pdq"}
        )
        assert r.status_code == 200, r.text
        return set(r.json()["matches"])


@pytest.fixture
def two(where: Where) -> Iterator[tuple[Replica, Replica]]:
    with Replica(where.store()) as a, Replica(where.store()) as b:
        yield a, b


def finds(r: Replica, h: dict[str, str], pdq: str, want: set[int]) -> Callable[[], bool]:
    """A check that ``r`` answers ``want`` for ``pdq`` (for ``wait_for``)."""
    return lambda: r.found(h, pdq) == want


def token(store: PlatformStore, tenant: str) -> dict[str, str]:
    tid = store.ensure_tenant(tenant)
    secret = store.create_token(tid, "t", ["curate", "match"])
    return {"Authorization": f"Bearer {secret}"}


def add(r: Replica, h: dict[str, str], bank: str, pdq: str) -> int:
    got = r.client.post(f"/c/bank/{bank}/signal", headers=h, json={"pdq": pdq})
    assert got.status_code == 200, got.text
    return int(got.json()["id"])


def make_bank(r: Replica, h: dict[str, str], name: str) -> None:
    got = r.client.post("/c/banks", headers=h, json={"name": name})
    assert got.status_code == 201, got.text


def test_write_on_a_is_matchable_on_b_within_the_bound(two: tuple[Replica, Replica]) -> None:
    a, b = two
    h = token(a.store, "t1")
    make_bank(a, h, "SHARED")
    rng = np.random.default_rng(1)
    waits = []
    for _ in range(6):
        pdq = rand_hash(rng)
        assert b.found(h, pdq) == set()
        cid = add(a, h, "SHARED", pdq)
        assert a.found(h, pdq) == {cid}  # read-your-writes on the replica written to
        waited = wait_for(finds(b, h, pdq, {cid}))
        assert waited is not None, f"not matchable on B after {BOUND_S + 2} s"
        waits.append(waited)
    # B's lookups never poll the log themselves while its poller runs: the poller did it, and
    # keeps B current with no request at all
    assert b.matcher.polling and b.matcher.polls >= 1
    held = len(b.matcher.indexes["pdq"])
    add(a, h, "SHARED", rand_hash(rng))
    idle = wait_for(lambda: len(b.matcher.indexes["pdq"]) == held + 1, BOUND_S)
    assert idle is not None, "B's index did not follow the log without requests"
    assert max(waits) <= BOUND_S, waits
    print(
        f"\nfreshness A -> B ({type(b.store).__name__}, poll {POLL_S} s): median "
        f"{statistics.median(waits):.2f} s, max {max(waits):.2f} s over {len(waits)} writes"
    )


def test_deletions_on_a_stop_matching_on_b(two: tuple[Replica, Replica]) -> None:
    a, b = two
    h = token(a.store, "t1")
    make_bank(a, h, "KEEP")
    make_bank(a, h, "DROP")
    rng = np.random.default_rng(2)
    kept, gone, in_dropped = rand_hash(rng), rand_hash(rng), rand_hash(rng)
    k, g, d = add(a, h, "KEEP", kept), add(a, h, "KEEP", gone), add(a, h, "DROP", in_dropped)
    for pdq, cid in ((kept, k), (gone, g), (in_dropped, d)):
        assert wait_for(finds(b, h, pdq, {cid})) is not None
    # a content item removed through A
    assert a.client.delete(f"/c/bank/KEEP/content/{g}", headers=h).status_code == 200
    assert a.found(h, gone) == set()
    waited = wait_for(lambda: b.found(h, gone) == set())
    assert waited is not None and waited <= BOUND_S, waited
    # a whole bank deleted through A
    assert a.client.delete("/c/bank/DROP", headers=h).status_code == 200
    waited = wait_for(lambda: b.found(h, in_dropped) == set())
    assert waited is not None and waited <= BOUND_S, waited
    assert b.found(h, kept) == {k}  # the rest still matches
    assert b.client.get("/m/index/status", headers=h).json()["pdq"]["size"] == 1


def test_tenants_stay_apart_on_both_replicas(two: tuple[Replica, Replica]) -> None:
    a, b = two
    t1, t2 = token(a.store, "t1"), token(a.store, "t2")
    make_bank(a, t1, "BANK")
    make_bank(b, t2, "BANK")  # same name, other tenant, made through the other replica
    rng = np.random.default_rng(3)
    mine, theirs = rand_hash(rng), rand_hash(rng)
    c1 = add(a, t1, "BANK", mine)
    c2 = add(b, t2, "BANK", theirs)
    c2_same = add(a, t2, "BANK", mine)  # tenant 2 banks tenant 1's very hash too
    for r in (a, b):  # both replicas hold every row…
        assert wait_for(finds(r, t2, theirs, {c2})) is not None
        assert wait_for(finds(r, t1, mine, {c1})) is not None
        assert wait_for(finds(r, t2, mine, {c2_same})) is not None
    for r in (a, b):  # …and each tenant sees only its own
        assert r.found(t1, theirs) == set()
        assert r.found(t1, mine) == {c1}
        assert r.found(t2, mine) == {c2_same}
        for h, n in ((t1, 1), (t2, 2)):
            assert r.client.get("/m/index/status", headers=h).json()["pdq"]["size"] == n


# -- readiness and liveness -------------------------------------------------------------------


class GatedPostgres(PostgresPlatformStore):
    """A store whose initial load waits for ``gate`` (a slow load, held open by the test)."""

    gate = threading.Event()

    @system_wide
    def live_signals(self, *args: Any, **kw: Any) -> list[Change]:
        assert self.gate.wait(30), "the test never opened the gate"
        return super().live_signals(*args, **kw)


class FailingPostgres(PostgresPlatformStore):
    """A store whose change-log reads fail while ``down`` is set (the database away)."""

    down = threading.Event()

    @system_wide
    def changes_since(self, seq: int, limit: int = 100_000) -> list[Change]:
        if self.down.is_set():
            raise ConnectionError("database unreachable (test)")
        return super().changes_since(seq, limit)


def test_readiness_is_503_while_loading_then_200(pg: Where) -> None:
    seed = pg.store()
    h = token(seed, "t1")
    tid = seed.ensure_tenant("t1")
    bank = seed.create_bank(tid, "PRE")
    rng = np.random.default_rng(4)
    hashes = [rand_hash(rng) for _ in range(300)]
    ids = seed.add_contents(tid, bank, [([("pdq", x, 90)], {}) for x in hashes])
    seed.close()
    GatedPostgres.gate.clear()
    with Replica(pg.store(GatedPostgres), background_load=True) as b:
        c = b.client
        assert c.get("/health/live").status_code == 200  # alive while loading
        r = c.get("/health/ready")
        assert r.status_code == 503 and "loading" in r.json()["reason"], r.text
        assert r.json()["index"]["loaded"] is False
        assert (c.get("/status").status_code, c.get("/status").text) == (503, "INDEX-NOT-LOADED")
        assert c.get("/status/live").status_code == 200
        q = {"signal": hashes[0], "signal_type": "pdq"}
        r = c.get("/m/raw_lookup", headers=h, params=q)
        assert r.status_code == 503 and "loading" in r.json()["message"]  # not a silent miss
        assert r.headers["Retry-After"]
        GatedPostgres.gate.set()
        assert wait_for(lambda: c.get("/health/ready").status_code == 200) is not None
        ready = c.get("/health/ready").json()
        assert ready["ready"] and ready["index"]["hashes"]["pdq"] == 300
        assert ready["index"]["memory_bytes"] >= 300 * 32
        assert 0 <= ready["feed"]["lag_s"] <= BOUND_S
        assert c.get("/status").text == "I-AM-ALIVE"
        assert b.found(h, hashes[0]) == {ids[0]}
        metrics = c.get("/metrics").text
        assert "reclaim_ready 1" in metrics and 'reclaim_index_hashes{signal_type="pdq"} 300' in (
            metrics
        )


def test_readiness_is_503_when_the_feed_stalls(pg: Where) -> None:
    FailingPostgres.down.clear()
    with Replica(pg.store(FailingPostgres), poll_interval_s=0.1, ready_max_lag_s=1.0) as b:
        c = b.client
        assert wait_for(lambda: c.get("/health/ready").status_code == 200) is not None
        FailingPostgres.down.set()
        assert wait_for(lambda: c.get("/health/ready").status_code == 503) is not None
        r = c.get("/health/ready").json()
        assert "behind" in r["reason"] and "ConnectionError" in r["reason"], r
        assert c.get("/status").text == "INDEX-STALE"
        assert c.get("/health/live").status_code == 200  # never restarted for it
        FailingPostgres.down.clear()
        assert wait_for(lambda: c.get("/health/ready").status_code == 200) is not None


# -- change-log numbers that commit out of order ------------------------------------------------


def _insert_signal(cur: Any, tid: int, bank_id: int, pdq: str, ph: str) -> int:
    cur.execute(
        "INSERT INTO contents (bank_id, tenant_id, metadata, created_at) "
        f"VALUES ({ph}, {ph}, '{{}}', 0) RETURNING id",
        (bank_id, tid),
    )
    cid = int(cur.fetchone()[0])
    cur.execute(
        "INSERT INTO signals (content_id, bank_id, tenant_id, signal_type, value, quality) "
        f"VALUES ({ph}, {ph}, {ph}, 'pdq', {ph}, 90) RETURNING id",
        (cid, bank_id, tid, pdq),
    )
    return int(cur.fetchone()[0])


def lookup_ids(m: Matcher, tid: int, pdq: str) -> set[int]:
    return {x.content_id for x in m.lookup(tid, "pdq", pdq)}


def test_a_change_committed_after_a_later_one_is_applied_postgres(pg: Where) -> None:
    """Two writers without the store's log lock: the first takes seq n, the second n+1 and
    commits first. A poll between the commits sees n+1 only; a follower that took the highest
    number seen as its position would never read n. Here it is asked for again and applied
    (and a matcher that loads between the two commits watches n too)."""
    import psycopg

    store = pg.store()
    tid = store.ensure_tenant("t1")
    bank = store.create_bank(tid, "B")
    m = Matcher(store, poll_interval=0.0)
    rng = np.random.default_rng(5)
    early, late = rand_hash(rng), rand_hash(rng)
    with (
        psycopg.connect(str(PG_DSN)) as c1,
        psycopg.connect(str(PG_DSN)) as c2,
    ):
        for c in (c1, c2):
            c.execute(f'SET search_path TO "{pg.schema}"')
            c.commit()
        cur1, cur2 = c1.cursor(), c2.cursor()
        s1 = _insert_signal(cur1, tid, bank.id, early, "%s")
        cur1.execute(
            "INSERT INTO changes (signal_id, op, at) VALUES (%s, 'add', 0) RETURNING seq", (s1,)
        )
        n = int(cur1.fetchone()[0])  # type: ignore[index]
        s2 = _insert_signal(cur2, tid, bank.id, late, "%s")
        cur2.execute(
            "INSERT INTO changes (signal_id, op, at) VALUES (%s, 'add', 0) RETURNING seq", (s2,)
        )
        assert int(cur2.fetchone()[0]) == n + 1  # type: ignore[index]
        c2.commit()  # n+1 is visible, n is not yet
        m.refresh(force=True)
        assert lookup_ids(m, tid, late) and not lookup_ids(m, tid, early)
        fresh = Matcher(store, poll_interval=0.0)  # loads now: n is below its position
        assert not lookup_ids(fresh, tid, early)
        c1.commit()
    for follower in (m, fresh):
        follower.refresh(force=True)
        assert lookup_ids(follower, tid, early), "the change committed late was skipped"
        assert not follower.gaps and follower.gaps_filled == 1
    store.close()


def test_a_change_numbered_below_one_already_read_is_applied_sqlite(tmp_path: Path) -> None:
    """The same on SQLite (whose writers cannot interleave): the log's numbers are written out
    of order by hand, n+1 before n."""
    path = tmp_path / "p.db"
    store = SqlitePlatformStore(path)
    store.migrate()
    tid = store.ensure_tenant("t1")
    bank = store.create_bank(tid, "B")
    m = Matcher(store, poll_interval=0.0)
    n = store.last_change() + 1
    rng = np.random.default_rng(6)
    early, late = rand_hash(rng), rand_hash(rng)
    con = sqlite3.connect(path, isolation_level=None)
    for pdq, seq in ((late, n + 1), (early, n)):
        cur = con.cursor()
        con.execute("BEGIN IMMEDIATE")
        sid = _insert_signal(cur, tid, bank.id, pdq, "?")
        con.execute(
            "INSERT INTO changes (seq, signal_id, op, at) VALUES (?, ?, 'add', 0)", (seq, sid)
        )
        con.execute("COMMIT")
        m.refresh(force=True)
        if pdq == late:
            assert lookup_ids(m, tid, late) and not lookup_ids(m, tid, early)
    assert lookup_ids(m, tid, early), "the change numbered below one already read was skipped"
    assert not m.gaps and m.gaps_filled == 1
    # a number that never appears (a rolled-back transaction's) is given up after the timeout
    con.execute("INSERT INTO changes (seq, signal_id, op, at) VALUES (?, 0, 'bank', 0)", (n + 3,))
    m.gap_timeout_s = 0.0
    m.refresh(force=True)
    assert n + 2 in m.gaps
    time.sleep(0.01)
    m.refresh(force=True)
    assert not m.gaps and m.gaps_expired == 1
    con.close()
    store.close()


# -- merges staggered across replicas -----------------------------------------------------------


def _merge_batches(path: Path, jitter: float) -> list[list[int]]:
    """Two matchers following one log, 256 adds per poll: the polls after which each merged its
    index's delta into new tables."""
    store = SqlitePlatformStore(path)
    store.migrate()
    tid = store.ensure_tenant("t")
    bank = store.create_bank(tid, "B")
    ms = [Matcher(store, 0.0, flat_max=64, merge_jitter=jitter, seed=s) for s in (11, 12)]
    rng = np.random.default_rng(7)
    out: list[list[int]] = [[], []]
    for batch in range(1, 49):
        codes = rng.integers(0, 256, (256, 32), dtype=np.uint8)
        store.add_contents(tid, bank, [([("pdq", c.tobytes().hex(), 90)], {}) for c in codes])
        for m, got in zip(ms, out, strict=True):
            before = m.merges["pdq"]
            m.refresh(force=True)
            if m.merges["pdq"] > before:
                got.append(batch)
    store.close()
    return out


def test_replicas_merge_their_indexes_at_different_moments(tmp_path: Path) -> None:
    # no jitter (what every replica did before): both merge on the same poll, every time
    same = _merge_batches(tmp_path / "same.db", jitter=0.0)
    assert same[0] == same[1] and len(same[0]) >= 3, same
    one, two = _merge_batches(tmp_path / "jitter.db", jitter=0.4)
    assert len(one) >= 3 and len(two) >= 3, (one, two)
    assert one[1:] != two[1:], (one, two)  # after the first build, on different polls
    assert len(set(one[1:]) & set(two[1:])) < len(one[1:]), (one, two)


def test_the_load_pages_past_ranges_of_removed_signals(tmp_path: Path) -> None:
    """The load reads signals by ranges of ids: a range whose signals were all removed does not
    end it early, and every live signal is read once, in order."""
    store = SqlitePlatformStore(tmp_path / "p.db")
    store.migrate()
    tid = store.ensure_tenant("t")
    bank = store.create_bank(tid, "B")
    rng = np.random.default_rng(8)
    hashes = [rand_hash(rng) for _ in range(30)]
    cids = store.add_contents(
        tid, bank, [([("pdq", x, 90), ("md5", "ab" * 16, None)], {}) for x in hashes]
    )
    for cid in cids[4:20]:  # signal ids 9..40: several whole windows of 5 ids
        store.remove_content(tid, bank, cid)
    after, seen = 0, []
    while page := store.live_signals(["pdq"], after_id=after, limit=5):
        seen += [c.signal_id for c in page]
        after = page[-1].signal_id
    want = [c.signal_id for c in store.live_signals(["pdq"], limit=1000)]
    assert seen == want and len(want) == 14 and want == sorted(want)
    m = Matcher(store, 0.0)
    kept = [x for i, x in enumerate(hashes) if not 4 <= i < 20]
    assert all(lookup_ids(m, tid, x) for x in kept)
    assert not any(lookup_ids(m, tid, x) for x in hashes[4:20])
    store.close()
