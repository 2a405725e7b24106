"""The match index's snapshots (``reclaim.platform.index_snapshot``): a replica opens the newest
snapshot, maps its PDQ tables and replays the change log from its position, and then answers
every lookup exactly as a replica that read every signal from the database: additions,
removals, a deleted bank, vPDQ scoring, PDQ flavours and tenant isolation included (SQLite,
and PostgreSQL when ``RECLAIM_TEST_POSTGRES_DSN`` is set). A snapshot of another database, or a
damaged one, is set aside and the index loads from the database; the service saves one by
itself after loading and opens it at its next start (``Settings.index_snapshot_dir``, the CLI's
``--index-snapshot``)."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from reclaim.api import Settings, create_app
from reclaim.hashes.pdq import PdqHash
from reclaim.platform.matcher import Matcher
from reclaim.platform.store import PlatformStore, PostgresPlatformStore, SqlitePlatformStore

PG_DSN = os.environ.get("RECLAIM_TEST_POSTGRES_DSN")
FLAT = 64  # tables from 64 hashes on: the snapshot maps real multi-index tables


def rand_hash(rng: np.random.Generator) -> str:
    return bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex()


def flip(hex_hash: str, bits: list[int]) -> str:
    v = int(hex_hash, 16)
    for b in bits:
        v ^= 1 << b
    return f"{v:064x}"


class Db:
    def __init__(self, kind: str, tmp_path: Path, name: str = "platform.db") -> None:
        self.kind = kind
        self.path = tmp_path / name
        self.schema = f"snap_{uuid.uuid4().hex[:12]}"
        self.opened: list[PlatformStore] = []

    def store(self) -> PlatformStore:
        s: PlatformStore
        if self.kind == "sqlite":
            s = SqlitePlatformStore(self.path)
        else:
            s = PostgresPlatformStore(str(PG_DSN), schema=self.schema)
        s.migrate()
        self.opened.append(s)
        return s

    def close(self) -> None:
        for s in self.opened:
            s.close()
        if self.kind == "postgres":
            s = PostgresPlatformStore(str(PG_DSN), schema=self.schema)
            s.drop_schema()
            s.close()


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Db]:
    d = Db("sqlite", tmp_path)
    yield d
    d.close()


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "postgres" and not PG_DSN:
        pytest.skip("PostgreSQL runs need RECLAIM_TEST_POSTGRES_DSN (postgresql://u:p@host/db)")
    d = Db(request.param, tmp_path)
    yield d
    d.close()


class Service:
    """A service on the database for writes (its own matcher is not the one under test)."""

    def __init__(self, store: PlatformStore) -> None:
        self.store = store
        self.client = TestClient(create_app(store, Settings(start_workers=False)))

    def token(self, tenant: str) -> tuple[int, dict[str, str]]:
        tid = self.store.ensure_tenant(tenant)
        secret = self.store.create_token(tid, "t", ["curate", "match"])
        return tid, {"Authorization": f"Bearer {secret}"}

    def bank(self, h: dict[str, str], name: str, **extra: Any) -> None:
        r = self.client.post("/c/banks", headers=h, json={"name": name, **extra})
        assert r.status_code == 201, r.text

    def bulk(self, tid: int, bank: str, hashes: list[str]) -> list[int]:
        b = self.store.get_bank(tid, bank)
        assert b is not None
        return self.store.add_contents(tid, b, [([("pdq", x, None)], {}) for x in hashes])

    def add(self, h: dict[str, str], bank: str, **signal: str) -> int:
        r = self.client.post(f"/c/bank/{bank}/signal", headers=h, json=signal)
        assert r.status_code == 200, r.text
        return int(r.json()["id"])


def pdq_answers(m: Matcher, tid: int, queries: list[str]) -> list[list[tuple[int, str]]]:
    return [sorted((x.content_id, x.distance) for x in m.lookup(tid, "pdq", q)) for q in queries]


def fill(svc: Service, rng: np.random.Generator) -> dict[str, Any]:
    """Two tenants, a deletable bank, a reference-flavour bank, a video; hashes shared across
    tenants (the same value in both: each must only ever see its own)."""
    t1, h1 = svc.token("t1")
    t2, h2 = svc.token("t2")
    svc.bank(h1, "KEEP")
    svc.bank(h1, "DROP")
    svc.bank(h1, "REF", pdq_flavour="reference")
    svc.bank(h2, "OTHER")
    keep = [rand_hash(rng) for _ in range(400)]
    shared = keep[:20]
    ids_keep = svc.bulk(t1, "KEEP", keep)
    drop = [rand_hash(rng) for _ in range(50)]
    svc.bulk(t1, "DROP", drop)
    ref = [rand_hash(rng) for _ in range(30)]
    svc.bulk(t1, "REF", ref)
    other = shared + [rand_hash(rng) for _ in range(180)]
    svc.bulk(t2, "OTHER", other)
    frames = [
        {"frame": i, "quality": 90, "hash": str(PdqHash(bytes.fromhex(rand_hash(rng)))),
         "timestamp": float(i)}
        for i in range(10)
    ]  # fmt: skip
    video = svc.add(h1, "KEEP", vpdq=json.dumps(frames))
    return {
        "t1": t1, "t2": t2, "h1": h1, "keep": keep, "ids_keep": ids_keep, "drop": drop,
        "ref": ref, "other": other, "frames": frames, "video": video,
    }  # fmt: skip


def test_a_replica_opens_the_snapshot_and_replays_the_log(db: Db, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    svc = Service(db.store())
    f = fill(svc, rng)
    snaps = tmp_path / "snapshots"
    a = Matcher(db.store(), flat_max=FLAT, snapshot_dir=snaps)
    assert a.load_source == "database"
    folder = a.save_snapshot()
    assert (snaps / "CURRENT").read_text().strip() == folder.name

    # the log goes on after the snapshot: additions, removals, a bank deleted, a flavour change
    t1, h1 = f["t1"], f["h1"]
    added = [rand_hash(rng) for _ in range(30)]
    added_ids = svc.bulk(t1, "KEEP", added)
    removed = f["ids_keep"][100:110]
    for cid in removed:
        assert svc.client.delete(f"/c/bank/KEEP/content/{cid}", headers=h1).status_code == 200
    assert svc.client.delete("/c/bank/DROP", headers=h1).status_code == 200
    r = svc.client.put("/c/bank/REF", headers=h1, json={"pdq_flavour": "pytx"})
    assert r.status_code == 200, r.text

    b = Matcher(db.store(), flat_max=FLAT, snapshot_dir=snaps)
    assert b.load_source == "snapshot", b.snapshot_error
    assert b.indexes["pdq"].mapped_from is not None  # the tables are the snapshot's file
    assert b.seq == svc.store.last_change()
    c = Matcher(db.store(), flat_max=FLAT)  # read every signal from the database
    assert c.load_source == "database"

    everything = f["keep"] + f["drop"] + f["ref"] + f["other"] + added
    queries = everything + [flip(x, [3, 70, 140, 200, 250]) for x in everything[::7]]
    queries += [rand_hash(rng) for _ in range(50)]
    for tid in (f["t1"], f["t2"]):
        assert pdq_answers(b, tid, queries) == pdq_answers(c, tid, queries)
        for flavour in ("pytx", "reference"):
            got = [b.lookup(tid, "pdq", q, pdq_flavour=flavour) for q in queries[:500]]
            want = [c.lookup(tid, "pdq", q, pdq_flavour=flavour) for q in queries[:500]]
            assert got == want
        assert b.pdq_flavours(tid) == c.pdq_flavours(tid)

    # what the replay must have done, checked on its own
    found = dict(zip(added, pdq_answers(b, t1, added), strict=True))
    assert all(found[x] == [(cid, "0")] for x, cid in zip(added, added_ids, strict=True))
    gone = [f["keep"][i] for i in range(100, 110)]
    assert pdq_answers(b, t1, gone) == [[]] * 10
    assert pdq_answers(b, t1, f["drop"]) == [[]] * len(f["drop"])
    # tenant isolation: t2's copies of t1's hashes are t2's only, and the other way round
    t1_ids, t2_ids = set(f["ids_keep"]) | set(added_ids), set()
    for got in pdq_answers(b, f["t2"], f["other"]):
        assert len(got) == 1 and got[0][0] not in t1_ids
        t2_ids.add(got[0][0])
    assert all(x[0] not in t2_ids for got in pdq_answers(b, t1, f["keep"]) for x in got)
    # vPDQ candidates are scored with the values the snapshot kept
    q = json.dumps([dict(fr, hash=flip(fr["hash"], [7, 9])) for fr in f["frames"][:9]])
    vb, vc = b.lookup(t1, "vpdq", q), c.lookup(t1, "vpdq", q)
    assert [m.content_id for m in vb] == [f["video"]] and vb == vc
    assert b.lookup(f["t2"], "vpdq", q) == []

    # and it follows the log from there as usual
    late = rand_hash(rng)
    cid = svc.add(h1, "KEEP", pdq=late)
    b.refresh(force=True)
    assert pdq_answers(b, t1, [late]) == [[(cid, "0")]]


def test_the_service_saves_a_snapshot_and_opens_it_at_its_next_start(
    sqlite: Db, tmp_path: Path
) -> None:
    rng = np.random.default_rng(8)
    svc = Service(sqlite.store())
    f = fill(svc, rng)
    snaps = tmp_path / "snapshots"
    settings = Settings(
        start_workers=False, poll_interval_s=0.1, index_snapshot_dir=str(snaps), flat_max=FLAT
    )
    store = sqlite.store()
    with TestClient(create_app(store, settings)) as client:
        matcher = client.app.state.platform.matcher  # type: ignore[attr-defined]
        assert matcher.load_source == "database"
        deadline = time.monotonic() + 30
        while matcher.snapshot_seq is None and time.monotonic() < deadline:
            time.sleep(0.05)  # saved by the feed's thread after the load, unasked
        assert matcher.snapshot_seq == store.last_change(), matcher.snapshot_error
        ready = client.get("/health/ready").json()
        assert ready["snapshot"]["seq"] == matcher.snapshot_seq
        assert ready["index"]["source"] == "database"
    late = rand_hash(rng)
    cid = svc.add(f["h1"], "KEEP", pdq=late)
    store = sqlite.store()
    with TestClient(create_app(store, settings)) as client:
        matcher = client.app.state.platform.matcher  # type: ignore[attr-defined]
        assert matcher.load_source == "snapshot", matcher.snapshot_error
        assert client.get("/health/ready").json()["index"]["source"] == "snapshot"
        secret = store.create_token(f["t1"], "m", ["match"])
        r = client.get(
            "/m/raw_lookup",
            headers={"Authorization": f"Bearer {secret}"},
            params={"signal": late, "signal_type": "pdq"},
        )
        assert r.json() == {"matches": [cid]}  # written after the snapshot: replayed


def test_a_snapshot_of_another_database_is_set_aside(tmp_path: Path) -> None:
    snaps = tmp_path / "snapshots"
    first, second = Db("sqlite", tmp_path, "first.db"), Db("sqlite", tmp_path, "second.db")
    # the same writes in the same order: same change numbers, same signal ids
    for d in (first, second):
        fill(Service(d.store()), np.random.default_rng(9))
    Matcher(first.store(), flat_max=FLAT, snapshot_dir=snaps).save_snapshot()
    m = Matcher(second.store(), flat_max=FLAT, snapshot_dir=snaps)
    assert m.load_source == "database"
    assert m.snapshot_error is not None and "another database" in m.snapshot_error
    # a database whose log is shorter than the snapshot's position
    third = Db("sqlite", tmp_path, "third.db")
    third.store()
    m = Matcher(third.store(), flat_max=FLAT, snapshot_dir=snaps)
    assert m.load_source == "database" and "log ends at 0" in str(m.snapshot_error)
    for d in (first, second, third):
        d.close()


@pytest.mark.parametrize("damage", ["truncated index", "CURRENT elsewhere", "id map"])
def test_a_damaged_snapshot_is_set_aside(sqlite: Db, tmp_path: Path, damage: str) -> None:
    rng = np.random.default_rng(10)
    svc = Service(sqlite.store())
    f = fill(svc, rng)
    snaps = tmp_path / "snapshots"
    folder = Matcher(sqlite.store(), flat_max=FLAT, snapshot_dir=snaps).save_snapshot()
    if damage == "truncated index":
        p = folder / "pdq.pdqi"
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    elif damage == "CURRENT elsewhere":
        (snaps / "CURRENT").write_text("../../etc\n")
    else:
        np.save(folder / "ids-bank.npy", np.zeros(3, dtype=np.float32))
    m = Matcher(sqlite.store(), flat_max=FLAT, snapshot_dir=snaps)
    assert m.load_source == "database" and m.snapshot_error
    c = Matcher(sqlite.store(), flat_max=FLAT)
    queries = f["keep"][:50] + f["other"][:50]
    for tid in (f["t1"], f["t2"]):
        assert pdq_answers(m, tid, queries) == pdq_answers(c, tid, queries)


def test_old_snapshots_are_pruned(sqlite: Db, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    svc = Service(sqlite.store())
    f = fill(svc, rng)
    snaps = tmp_path / "snapshots"
    m = Matcher(sqlite.store(), flat_max=FLAT, snapshot_dir=snaps)
    made = []
    for _ in range(4):
        svc.bulk(f["t1"], "KEEP", [rand_hash(rng)])
        m.refresh(force=True)
        made.append(m.save_snapshot().name)
    assert sorted(p.name for p in snaps.glob("snap-*")) == sorted(made[-2:])
    assert (snaps / "CURRENT").read_text().strip() == made[-1]
    assert not list(snaps.glob(".tmp-*")) and not list(snaps.glob(".CURRENT-*"))


def test_a_load_from_the_database_is_streamed_into_a_snapshot(db: Db, tmp_path: Path) -> None:
    """With a snapshot folder and no snapshot in it, the load writes each index straight to its
    file (no index built in memory) and serves from the mapped file: same answers as a load in
    memory, and the next replica opens that snapshot."""
    rng = np.random.default_rng(12)
    svc = Service(db.store())
    f = fill(svc, rng)
    snaps = tmp_path / "snapshots"
    streamed = Matcher(db.store(), flat_max=FLAT, snapshot_dir=snaps)
    assert streamed.load_source == "database" and streamed.snapshot_error is None
    assert streamed.indexes["pdq"].mapped_from is not None
    assert streamed.snapshot_seq == svc.store.last_change()
    assert (snaps / "CURRENT").is_file() and not list(snaps.glob(".spool-*"))
    in_memory = Matcher(db.store(), flat_max=FLAT)
    assert in_memory.indexes["pdq"].mapped_from is None
    everything = f["keep"] + f["drop"] + f["ref"] + f["other"]
    queries = everything + [flip(x, [1, 90, 180]) for x in everything[::5]]
    for tid in (f["t1"], f["t2"]):
        assert pdq_answers(streamed, tid, queries) == pdq_answers(in_memory, tid, queries)
        assert streamed.pdq_flavours(tid) == in_memory.pdq_flavours(tid)
    q = json.dumps(f["frames"])
    assert streamed.lookup(f["t1"], "vpdq", q) == in_memory.lookup(f["t1"], "vpdq", q) != []
    assert len(streamed.indexes["vpdq"]) == len(in_memory.indexes["vpdq"]) == 10
    nxt = Matcher(db.store(), flat_max=FLAT, snapshot_dir=snaps)
    assert nxt.load_source == "snapshot"


def test_a_snapshot_folder_that_cannot_be_written_falls_back_to_memory(
    sqlite: Db, tmp_path: Path
) -> None:
    rng = np.random.default_rng(13)
    f = fill(Service(sqlite.store()), rng)
    not_a_folder = tmp_path / "snapshots"
    not_a_folder.write_text("a file where the folder should be")
    m = Matcher(sqlite.store(), flat_max=FLAT, snapshot_dir=not_a_folder)
    assert m.load_source == "database" and m.indexes["pdq"].mapped_from is None
    assert m.snapshot_error is not None
    c = Matcher(sqlite.store(), flat_max=FLAT)
    assert pdq_answers(m, f["t1"], f["keep"][:50]) == pdq_answers(c, f["t1"], f["keep"][:50])


def test_snapshots_taken_while_writes_go_on_are_consistent(sqlite: Db, tmp_path: Path) -> None:
    """The service saves snapshots every 0.2 s on its own thread while writes (additions and
    removals) keep coming; whichever snapshot is newest when it stops, a replica opened from it
    (and replaying the log since) answers exactly as a full load."""
    rng = np.random.default_rng(14)
    svc = Service(sqlite.store())
    f = fill(svc, rng)
    snaps = tmp_path / "snapshots"
    settings = Settings(
        start_workers=False,
        poll_interval_s=0.05,
        index_snapshot_dir=str(snaps),
        index_snapshot_every_s=0.2,
        flat_max=FLAT,
    )
    written: list[str] = []
    with TestClient(create_app(sqlite.store(), settings)) as client:
        matcher = client.app.state.platform.matcher  # type: ignore[attr-defined]
        t_end = time.monotonic() + 3.0
        seen = set()
        while time.monotonic() < t_end:
            batch = [rand_hash(rng) for _ in range(20)]
            ids = svc.bulk(f["t1"], "KEEP", batch)
            written += batch
            r = svc.client.delete(f"/c/bank/KEEP/content/{ids[0]}", headers=f["h1"])
            assert r.status_code == 200
            seen.add(matcher.snapshot_seq)
            time.sleep(0.02)
        assert len(seen - {None}) >= 3, seen  # several snapshots were saved meanwhile
    b = Matcher(sqlite.store(), flat_max=FLAT, snapshot_dir=snaps)
    assert b.load_source == "snapshot", b.snapshot_error
    c = Matcher(sqlite.store(), flat_max=FLAT)
    queries = written + f["keep"] + f["other"][:50]
    for tid in (f["t1"], f["t2"]):
        assert pdq_answers(b, tid, queries) == pdq_answers(c, tid, queries)
