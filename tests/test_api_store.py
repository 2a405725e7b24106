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
        t, bank, [([("pdq", "ab" * 32, 90)], {"k": 1}), ([("md5", "cd" * 16, None)], {})]
    )
    changes = store.changes_since(start)
    assert [(c.op, c.signal_type, c.content_id) for c in changes] == [
        ("add", "pdq", c1),
        ("add", "md5", c2),
    ]
    assert store.remove_content(t, bank, c1) == 1
    last = store.changes_since(changes[-1].seq)
    assert [(c.op, c.signal_type) for c in last] == [("del", None)]
    assert store.exact_lookup(t, "md5", "cd" * 16) == [(changes[1].signal_id, c2, bank.id)]
    assert store.delete_bank(t, bank) == 1
    assert store.exact_lookup(t, "md5", "cd" * 16) == []
    assert [c.op for c in store.changes_since(last[-1].seq)] == ["del", "bank"]


def test_other_tenant_cannot_touch_content(store: PlatformStore) -> None:
    a, b = store.create_tenant("a"), store.create_tenant("b")
    bank_a = store.create_bank(a, "X")
    bank_b = store.create_bank(b, "X")
    (cid,) = store.add_contents(a, bank_a, [([("pdq", "ab" * 32, None)], {})])
    assert store.get_contents(b, [cid]) == []
    assert store.remove_content(b, bank_b, cid) == 0
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


def test_platform_token_command_lists_and_revokes(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from reclaim.api.cli import platform_token_cmd, serve_platform_cmd

    app = typer.Typer()
    app.command("serve-platform")(serve_platform_cmd)
    app.command("platform-token")(platform_token_cmd)
    db = str(tmp_path / "p.db")
    run = CliRunner().invoke
    first = run(app, ["platform-token", "acme", "--name", "one", "--db", db]).output.strip()
    second = run(app, ["platform-token", "acme", "--name", "two", "--db", db]).output.strip()
    run(app, ["platform-token", "other", "--name", "theirs", "--db", db])
    store = SqlitePlatformStore(db)
    tok = store.token_for_secret(second)
    assert tok is not None
    r = run(app, ["platform-token", "acme", "--list", "--db", db])
    assert r.exit_code == 0, r.output
    assert "one" in r.output and "two" in r.output and "theirs" not in r.output
    assert first not in r.output and second not in r.output
    theirs = store.token_for_secret(
        run(app, ["platform-token", "other", "--name", "t2", "--db", db]).output.strip()
    )
    assert theirs is not None
    r = run(app, ["platform-token", "acme", "--revoke", str(theirs.id), "--db", db])
    assert r.exit_code == 2 and "not found" in r.output  # another tenant's token
    r = run(app, ["platform-token", "acme", "--revoke", str(tok.id), "--db", db])
    assert r.exit_code == 0, r.output
    assert store.token_for_secret(second) is None and store.token_for_secret(first) is not None
    assert "revoked" in run(app, ["platform-token", "acme", "--list", "--db", db]).output
    audit = store.list_audit(tok.tenant_id)
    assert [(e["actor"], e["action"], e["target"]) for e in audit][-1] == (
        "cli",
        "token.revoke",
        f"token:{tok.id}",
    )
    r = run(app, ["platform-token", "acme", "--revoke", str(tok.id), "--db", db])
    assert r.exit_code == 2 and "not found" in r.output


def test_upgrade_from_version_2_keeps_data_and_adds_the_scope_checks(tmp_path: Path) -> None:
    """A database made before migration 3, with data, upgrades in place on both backends."""
    import time

    from reclaim.platform.migrations import MIGRATIONS

    for kind in ("sqlite", "postgres"):
        gen = make_store_bare(kind, tmp_path)
        s = next(gen, None)
        if s is None:
            continue
        with s.tx() as cur:
            s._q(
                cur,
                f"CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                f"applied_at {s.dialect.float} NOT NULL)",
            )
            for v in (1, 2):
                for stmt in s.dialect.statements(MIGRATIONS[v - 1]):
                    s._q(cur, stmt)
                s._q(cur, "INSERT INTO schema_migrations VALUES (?, ?)", (v, time.time()))
        t = s.create_tenant("t")
        with s.tx() as cur:  # version-2 shaped rows, written as version 2 wrote them
            s._q(cur, "INSERT INTO banks (tenant_id, name, created_at) VALUES (?, 'B', 0)", (t,))
            bank_id = s._q(cur, "SELECT MAX(id) FROM banks").fetchone()[0]
            s._q(
                cur,
                "INSERT INTO contents (bank_id, tenant_id, metadata, created_at) "
                "VALUES (?, ?, '{}', 0)",
                (bank_id, t),
            )
            cid = s._q(cur, "SELECT MAX(id) FROM contents").fetchone()[0]
            s._q(
                cur,
                "INSERT INTO signals (content_id, bank_id, tenant_id, signal_type, value) "
                "VALUES (?, ?, ?, 'md5', ?)",
                (cid, bank_id, t, "ab" * 16),
            )
        assert s.migrate() == LATEST
        assert [x[1] for x in s.exact_lookup(t, "md5", "ab" * 16)] == [cid]
        other = s.create_tenant("o")
        with pytest.raises(Exception) as e, s.tx() as cur:
            s._q(
                cur,
                "INSERT INTO signals (content_id, bank_id, tenant_id, signal_type, value) "
                "VALUES (?, ?, ?, 'md5', 'x')",
                (cid, bank_id, other),
            )
        assert s._is_integrity_error(e.value)
        for _ in gen:
            pass


def make_store_bare(kind: str, tmp_path: Path) -> Iterator[PlatformStore]:
    """An empty store (no migrations applied), or nothing when PostgreSQL is not configured."""
    import uuid

    from reclaim.platform.store import PostgresPlatformStore
    from tests.test_api_platform import PG_DSN

    if kind == "sqlite":
        s: PlatformStore = SqlitePlatformStore(tmp_path / "v2.db")
        yield s
        s.close()
        return
    if not PG_DSN:
        return
    pg = PostgresPlatformStore(PG_DSN, schema=f"t_{uuid.uuid4().hex[:12]}")
    try:
        yield pg
    finally:
        pg.drop_schema()
        pg.close()
