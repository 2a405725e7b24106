"""Nothing blocks the platform service's event loop: every call into the store (SQLite or
PostgreSQL I/O, and the matcher's refresh that reads the change log) made while serving the
curation API runs in a worker thread, never on the loop's own thread."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reclaim.api import Settings, create_app
from reclaim.platform.store import PlatformStore, SqlitePlatformStore


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[TestClient, PlatformStore, list[str]]]:
    store = SqlitePlatformStore(tmp_path / "platform.sqlite")
    store.migrate()
    app = create_app(store, Settings(start_workers=False))
    on_loop: list[str] = []

    def guard(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def call(*a: Any, **kw: Any) -> Any:
            if _on_loop():
                on_loop.append(name)
            return fn(*a, **kw)

        return call

    for name in dir(store):
        fn = getattr(store, name)
        if not name.startswith("_") and callable(fn):
            setattr(store, name, guard(name, fn))
    with TestClient(app) as client:
        yield client, store, on_loop


def test_curation_never_touches_the_store_on_the_event_loop(
    watched: tuple[TestClient, PlatformStore, list[str]],
) -> None:
    client, store, on_loop = watched
    tid = store.ensure_tenant("a")
    secret = store.create_token(tid, "a-all", ("hash", "match", "curate"))
    h = {"Authorization": f"Bearer {secret}"}
    on_loop.clear()
    pdq = "f" * 16 + "0" * 48
    steps = [
        client.post("/c/banks", headers=h, json={"name": "BANK_A"}),
        client.put("/c/bank/BANK_A", headers=h, json={"enabled_ratio": 1.0}),
        client.get("/c/bank/BANK_A", headers=h),
        client.post("/c/bank/BANK_A/signal", headers=h, json={"pdq": pdq}),
        client.post(
            "/c/bank/BANK_A/import",
            headers={**h, "content-type": "application/json"},
            json={"items": [{"signals": {"pdq": "0" * 16 + "f" * 48}}]},
        ),
        client.get("/c/bank/BANK_A/export", headers=h),
    ]
    assert all(r.status_code < 300 for r in steps), [(r.status_code, r.text) for r in steps]
    content_id = steps[3].json()["id"]
    more = [
        client.put(f"/c/bank/BANK_A/content/{content_id}", headers=h, json={"note": "n"}),
        client.get(f"/c/bank/BANK_A/content/{content_id}", headers=h),
        client.get("/m/raw_lookup", headers=h, params={"signal_type": "pdq", "signal": pdq}),
        client.delete(f"/c/bank/BANK_A/content/{content_id}", headers=h),
        client.delete("/c/bank/BANK_A", headers=h),
    ]
    assert all(r.status_code < 300 for r in more), [(r.status_code, r.text) for r in more]
    assert on_loop == [], f"store called on the event loop by: {sorted(set(on_loop))}"
