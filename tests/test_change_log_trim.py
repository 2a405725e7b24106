"""The change log's retention (``Settings.change_log_keep_s``, ``serve-platform
--change-log-days``): entries older than the retention are deleted, the newest always kept; a
replica that was cut off past what is kept says it is not ready instead of silently missing
changes, a snapshot older than what is kept is set aside (the index loads from the signals), and
replicas that kept up are not affected (SQLite, and PostgreSQL when
``RECLAIM_TEST_POSTGRES_DSN`` is set)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from reclaim.api import Settings, create_app
from reclaim.platform.matcher import Matcher

from .test_index_snapshot import FLAT, Db, Service, db, fill, pdq_answers, rand_hash, sqlite

__all__ = ["db", "sqlite"]  # the fixtures, imported for the tests below


def test_trim_deletes_old_entries_keeps_the_newest_and_marks_the_horizon(db: Db) -> None:
    svc = Service(db.store())
    fill(svc, np.random.default_rng(20))
    store = svc.store
    last = store.last_change()
    assert last > 100 and store.trim_horizon() == 0
    assert store.trim_changes(time.time() - 3600) == 0  # nothing that old: no entry either
    assert store.last_change() == last
    assert store.trim_changes(time.time() + 1) == last - 1  # all but the newest
    left = store.changes_since(0)
    assert [(c.seq, c.op) for c in left] == [(last, left[0].op), (last + 1, "trim")]
    assert left[1].signal_id == store.trim_horizon() == last - 1
    assert store.trim_changes(time.time() + 1) == 1  # the old newest goes, the horizon moves
    assert store.trim_horizon() == last
    assert [c.op for c in store.changes_since(0)] == ["trim", "trim"]  # the newest is kept


def test_a_snapshot_older_than_the_kept_log_is_set_aside(db: Db, tmp_path: Path) -> None:
    rng = np.random.default_rng(21)
    svc = Service(db.store())
    f = fill(svc, rng)
    snaps = tmp_path / "snapshots"
    Matcher(db.store(), flat_max=FLAT, snapshot_dir=snaps).save_snapshot()
    added = [rand_hash(rng) for _ in range(5)]
    svc.bulk(f["t1"], "KEEP", added)
    svc.bulk(f["t1"], "KEEP", [rand_hash(rng)])
    svc.store.trim_changes(time.time() + 1)  # the changes since the snapshot are gone
    m = Matcher(db.store(), flat_max=FLAT, snapshot_dir=snaps)
    assert m.load_source == "database"
    assert m.snapshot_error is not None and "trimmed past it" in m.snapshot_error
    c = Matcher(db.store(), flat_max=FLAT)
    queries = added + f["keep"][:50]
    assert pdq_answers(m, f["t1"], queries) == pdq_answers(c, f["t1"], queries)
    assert all(pdq_answers(m, f["t1"], added))  # read from the signals, not the log


def test_a_replica_cut_off_past_the_kept_log_is_not_ready(db: Db) -> None:
    rng = np.random.default_rng(22)
    svc = Service(db.store())
    f = fill(svc, rng)
    behind = Matcher(db.store(), flat_max=FLAT)  # then cut off: reads nothing more
    one_short = Matcher(db.store(), flat_max=FLAT)
    svc.bulk(f["t1"], "KEEP", [rand_hash(rng) for _ in range(3)])
    one_short.refresh(force=True)  # reads these 3, not the 2 below
    svc.bulk(f["t1"], "KEEP", [rand_hash(rng) for _ in range(2)])
    svc.store.trim_changes(time.time() + 1)  # keeps only the second of the 2
    late = rand_hash(rng)
    (cid,) = svc.bulk(f["t1"], "KEEP", [late])
    behind.refresh(force=True)
    health = behind.health(5.0)
    assert not health["ready"] and "trimmed past this replica" in health["reason"]
    assert health["feed"]["behind_trim"]
    assert pdq_answers(behind, f["t1"], [late]) == [[(cid, "0")]]  # what is left, it applies
    # one entry it had not read was deleted: that is enough to say so
    one_short.refresh(force=True)
    assert not one_short.health(5.0)["ready"]
    # one that read up to the newest entry before the trim is unaffected
    fresh = Matcher(db.store(), flat_max=FLAT)
    svc.store.trim_changes(time.time() + 1)
    svc.bulk(f["t1"], "KEEP", [rand_hash(rng)])
    fresh.refresh(force=True)
    assert fresh.health(5.0)["ready"] and fresh.behind_trim is None
    assert pdq_answers(fresh, f["t1"], [late]) == [[(cid, "0")]]


def test_the_service_trims_its_log_and_stays_current(sqlite: Db, tmp_path: Path) -> None:
    rng = np.random.default_rng(23)
    svc = Service(sqlite.store())
    f = fill(svc, rng)
    settings = Settings(
        start_workers=False, poll_interval_s=0.05, change_log_keep_s=1.0, flat_max=FLAT
    )
    store = sqlite.store()
    with TestClient(create_app(store, settings)) as client:
        matcher = client.app.state.platform.matcher  # type: ignore[attr-defined]
        deadline = time.monotonic() + 20
        while store.trim_horizon() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.trim_horizon() > 0  # trimmed by the feed's thread
        assert matcher.trimmed > 0
        late = rand_hash(rng)
        (cid,) = svc.bulk(f["t1"], "KEEP", [late])
        deadline = time.monotonic() + 10
        while not pdq_answers(matcher, f["t1"], [late])[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pdq_answers(matcher, f["t1"], [late]) == [[(cid, "0")]]
        assert client.get("/health/ready").status_code == 200
