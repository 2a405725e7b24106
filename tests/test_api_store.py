"""Platform store: migrations and the change log, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reclaim.errors import StoreError
from reclaim.platform.migrations import LATEST
from reclaim.platform.store import Conflict, PlatformStore, SqlitePlatformStore, open_store
from tests.test_api_platform import make_store


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PlatformStore]:
    yield from make_store(request.param, tmp_path)


def test_migrate_is_idempotent_and_versioned(store: PlatformStore) -> None:
    assert store.schema_version() == LATEST
    assert store.migrate() == LATEST
    assert store.schema_version() == LATEST


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    s = open_store(str(tmp_path / "p.db"))
    with s.tx() as cur:
        cur.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)")
    s.close()
    with pytest.raises(StoreError, match="newer"):
        SqlitePlatformStore(tmp_path / "p.db").migrate()


def test_change_log_follows_adds_and_removals(store: PlatformStore) -> None:
    t = store.create_tenant("t")
    with pytest.raises(Conflict):
        store.create_tenant("t")
    bank = store.create_bank(t, "B")
    with pytest.raises(Conflict):
        store.create_bank(t, "B")
    start = store.last_change()
    (c1, c2) = store.add_contents(
        bank, [([("pdq", "ab" * 32, 90)], {"k": 1}), ([("md5", "cd" * 16, None)], {})]
    )
    changes = store.changes_since(start)
    assert [(c.op, c.signal_type, c.content_id) for c in changes] == [
        ("add", "pdq", c1),
        ("add", "md5", c2),
    ]
    assert store.remove_content(bank, c1) == 1
    last = store.changes_since(changes[-1].seq)
    assert [(c.op, c.signal_type) for c in last] == [("del", None)]
    assert store.exact_lookup("md5", "cd" * 16) == [(changes[1].signal_id, c2, bank.id)]
    assert store.delete_bank(bank) == 1
    assert store.exact_lookup("md5", "cd" * 16) == []
    assert [c.op for c in store.changes_since(last[-1].seq)] == ["del", "bank"]


def test_other_tenant_cannot_touch_content(store: PlatformStore) -> None:
    a, b = store.create_tenant("a"), store.create_tenant("b")
    bank_a = store.create_bank(a, "X")
    bank_b = store.create_bank(b, "X")
    (cid,) = store.add_contents(bank_a, [([("pdq", "ab" * 32, None)], {})])
    assert store.get_contents(b, [cid]) == []
    assert store.remove_content(bank_b, cid) == 0
    assert [c.id for c in store.get_contents(a, [cid])] == [cid]


def test_platform_token_command(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from reclaim.api.cli import platform_token_cmd, serve_platform_cmd

    app = typer.Typer()
    app.command("serve-platform")(serve_platform_cmd)
    app.command("platform-token")(platform_token_cmd)
    db = str(tmp_path / "p.db")
    r = CliRunner().invoke(app, ["platform-token", "acme", "--scopes", "match,curate", "--db", db])
    assert r.exit_code == 0, r.output
    secret = r.output.strip()
    tok = SqlitePlatformStore(db).token_for_secret(secret)
    assert tok is not None and tok.tenant == "acme" and tok.scopes == {"match", "curate"}
    r = CliRunner().invoke(app, ["platform-token", "acme", "--scopes", "root", "--db", db])
    assert r.exit_code == 2 and "scopes must be" in r.output
