"""The platform store's parts: the tenancy rule checked when a part is defined, and rows read
into records by column name."""

from __future__ import annotations

import inspect
import sqlite3
from pathlib import Path

import pytest

from reclaim.platform.store import Bank, PlatformStore, SqlitePlatformStore
from reclaim.platform.store.base import Columns, StoreBase, system_wide
from reclaim.platform.store.review import REVIEW_ITEM

#: the methods that take no tenant; a new one is a decision to review, so it is named here
SYSTEM_WIDE = {
    "create_tenant",
    "tenant_id",
    "ensure_tenant",
    "token_for_secret",
    "all_banks",
    "last_change",
    "live_signals",
    "changes_since",
    "change_seqs",  # the matcher's load: which change-log numbers exist, no rows
    "changes_at",  # the matcher asking again for skipped numbers: as changes_since
    "change_stamp",  # an index snapshot's check: one entry's (op, signal id, time), no value
    "trim_horizon",  # the highest change-log number a trim deleted, no rows
    "trim_changes",  # deletes change-log entries older than a time: numbers only, every tenant
    "due_deliveries",
    "record_attempt",
    "pending_deliveries",
    "shield_versions",  # the shield index's poll: (highest row, count) per tenant, no rows
    "enabled_exchanges",  # the periodic fetcher: (tenant id, exchange id) pairs, no data
}
PLUMBING = {"close", "tx", "migrate", "schema_version"}  # StoreBase's own: no tenant data


def test_every_public_method_takes_the_tenant_or_is_system_wide() -> None:
    public = {n for n in dir(PlatformStore) if not n.startswith("_")}
    methods = {n for n in public if inspect.isfunction(getattr(PlatformStore, n))}
    no_tenant = {
        n
        for n in methods
        if list(inspect.signature(getattr(PlatformStore, n)).parameters)[1:2] != ["tenant_id"]
    }
    assert no_tenant - PLUMBING == SYSTEM_WIDE
    assert all(getattr(PlatformStore, n).__system_wide__ for n in SYSTEM_WIDE)
    assert len(methods - no_tenant) >= 25  # the tenant's own: most of the store


def test_a_part_without_the_tenant_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match=r"Leaky\.bank_by_id must take tenant_id first"):

        class Leaky(StoreBase):
            def bank_by_id(self, bank_id: int) -> None: ...

    class Fine(StoreBase):
        def bank_by_id(self, tenant_id: int, bank_id: int) -> None: ...

        @system_wide
        def count_all(self) -> int:
            return 0

        def _helper(self, bank_id: int) -> None: ...


def test_columns_read_rows_by_name_in_any_order() -> None:
    conn = sqlite3.connect(":memory:")
    cur = conn.execute(
        "SELECT 31 AS pdq_distance, 'X' AS name, 7 AS id, 0.5 AS enabled_ratio, 2 AS tenant_id"
    )
    cols = Columns(Bank, "pdq_distance, name, id, enabled_ratio, tenant_id")
    assert cols.read(cur) == [Bank(7, 2, "X", 0.5, 31)]
    assert cols.read_one(conn.execute("SELECT 1 AS id WHERE 0")) is None
    with pytest.raises(TypeError, match="Bank has no field bank"):
        cols.read(conn.execute("SELECT 1 AS id, 'X' AS bank"))
    # casts turn stored encodings into the field's type and leave NULL alone
    cur = conn.execute(
        "SELECT 1 AS id, 2 AS tenant_id, 3.0 AS created_at, 'pending' AS status, 'r' AS reason, "
        "NULL AS sha256, NULL AS media_kind, '{\"a\": 1}' AS signals, '{}' AS matches, "
        "0 AS has_preview, NULL AS submitted_by"
    )
    item = REVIEW_ITEM.read_one(cur)
    assert item is not None
    assert (item.signals, item.matches, item.has_preview) == ({"a": 1}, {}, False)
    assert item.sha256 is None and item.submitted_by is None


def test_records_match_their_columns(tmp_path: Path) -> None:
    """Each record type round-trips through its own SELECT list on a real store."""
    store = SqlitePlatformStore(tmp_path / "p.db")
    store.migrate()
    tid = store.create_tenant("a")
    bank = store.create_bank(tid, "B", 0.25, 20)
    assert store.get_bank(tid, "B") == bank == Bank(bank.id, tid, "B", 0.25, 20)
    (cid,) = store.add_contents(tid, bank, [([("md5", "ab" * 16, None)], {"k": "v"})])
    (content,) = store.get_contents(tid, [cid])
    assert (content.bank, content.metadata, content.enabled) == ("B", {"k": "v"}, True)
    assert content.signals == [("md5", "ab" * 16, None)]
    token = store.token_for_secret(store.create_token(tid, "t", ["match", "hash"]))
    assert token is not None
    assert (token.tenant, token.name, token.scopes) == ("a", "t", frozenset({"match", "hash"}))
    hook = store.create_webhook(tid, "http://127.0.0.1:9/", "s")
    assert store.list_webhooks(tid) == [hook] and hook.active is True
    store.close()
