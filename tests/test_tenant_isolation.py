"""Tenant isolation, walked over every endpoint of the platform API, on SQLite and PostgreSQL.

Tenants A and B each get banks (one of them with the same name in both), content with every
kind of signal, review items with decisions, webhooks with deliveries, tokens and audit entries.
Then every route of the app is called with A's all-scope token against B's ids and bank names;
afterwards B's rows in every table, B's audit log, B's index (each of B's hashes still matches
for B and never for A) and the change log (no deletion of a B signal) must be exactly as before.

Every route of the app must have a case here: a new route without one fails the test, so a new
endpoint cannot skip the walk.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from reclaim.hashes.pdq import PdqHash
from reclaim.platform.store import SCOPES, PlatformStore
from tests.test_api_platform import Env, flip, make_store, photo, upload
from tests.test_platform_shields import make, near, person, post, revoke

#: Every table that holds tenant data (each has a tenant_id column).
TENANT_TABLES = (
    "tokens",
    "banks",
    "contents",
    "signals",
    "review_items",
    "decisions",
    "audit_log",
    "webhooks",
    "deliveries",
    "shields",
    "shield_templates",
    "exchanges",
    "exchange_credentials",
    "exchange_items",
    "content_log",
)
BIG_ID = 2**62  # in range for every backend, never allocated


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PlatformStore]:
    yield from make_store(request.param, tmp_path)


def all_scopes() -> tuple[str, ...]:
    return tuple(SCOPES)


class World:
    """Two tenants with one of everything each (built through the API, as a client would)."""

    def __init__(self, env: Env) -> None:
        self.env = env
        c = env.client
        self.a = env.token("tenant-a", *all_scopes())
        self.b = env.token("tenant-b", *all_scopes())
        self.a_id = env.store.tenant_id("tenant-a")
        self.b_id = env.store.tenant_id("tenant-b")
        assert self.a_id is not None and self.b_id is not None
        # a second B token (B's token ids: something for A to try to revoke)
        env.token("tenant-b", "match")
        for h, names in ((self.a, ("A_ONLY", "SHARED")), (self.b, ("B_ONLY", "SHARED"))):
            for n in names:
                assert c.post("/c/banks", headers=h, json={"name": n}).status_code == 201
        self.b_pdq = str(PdqHash(bytes(range(40, 72))))
        self.b_md5 = hashlib.md5(b"b's video").hexdigest()
        self.b_sha = hashlib.sha256(b"b's file").hexdigest()
        self.b_content: list[int] = []
        for bank in ("B_ONLY", "SHARED"):
            r = c.post(
                f"/c/bank/{bank}/signal",
                headers=self.b,
                json={
                    "pdq": self.b_pdq,
                    "video_md5": self.b_md5,
                    "sha256": self.b_sha,
                    "metadata": {"content_id": f"b-{bank}"},
                },
            )
            assert r.status_code == 200, r.text
            self.b_content.append(r.json()["id"])
        self.b_photo = photo(31)
        r = c.post(
            "/c/bank/SHARED/content",
            headers=self.b,
            params={"types": "pdq,md5,sha256"},  # the photo's md5 too (HMA banks pdq only)
            **upload(self.b_photo),
        )
        assert r.status_code == 200, r.text
        self.b_content.append(r.json()["id"])
        frames = [
            {"frame": i, "quality": 90, "hash": flip(self.b_pdq, [i, i + 50]), "timestamp": i}
            for i in range(6)
        ]
        r = c.post("/c/bank/B_ONLY/signal", headers=self.b, json={"vpdq": json.dumps(frames)})
        assert r.status_code == 200, r.text
        self.b_vpdq = json.dumps(frames)
        self.b_content.append(r.json()["id"])
        # B: a matched upload (review item), a flagged one, a decision, a webhook and a delivery
        self.b_hook = c.post(
            "/review/webhooks", headers=self.b, json={"url": "http://127.0.0.1:9/b"}
        ).json()["id"]
        r = c.post("/m/lookup", headers=self.b, **upload(self.b_photo))
        self.b_item = int(r.headers["X-Reclaim-Review-Item"])
        r = c.post("/review/flag", headers=self.b, **upload(photo(32)), data={"reason": "b"})
        self.b_item2 = r.json()["id"]
        r = c.post(f"/review/items/{self.b_item}/decision", headers=self.b, json={"action": "keep"})
        assert r.status_code == 200 and r.json()["webhooks"] == 1, r.text
        # A: its own content, item and webhook (so A's ids exist beside B's)
        r = c.post("/c/bank/A_ONLY/signal", headers=self.a, json={"pdq": flip(self.b_pdq, [3])})
        self.a_content = r.json()["id"]
        self.a_item = c.post("/review/flag", headers=self.a, **upload(photo(33))).json()["id"]
        self.a_hook = c.post(
            "/review/webhooks", headers=self.a, json={"url": "http://127.0.0.1:9/a"}
        ).json()["id"]
        self.b_tokens = [
            int(r[0])
            for r in env.store._all("SELECT id FROM tokens WHERE tenant_id = ?", (self.b_id,))
        ]
        # B: a face shield, taken in through B's public intake (after B's uploads above, which
        # therefore did no face work); A: one made for A, for A's partner intake
        self.b_centre, b_photos = person(41)
        self.b_shield = make(env, "tenant-b", b_photos)
        assert post(env, "tenant-b", self.b_shield).status_code == 201
        self.a_shield = make(env, "tenant-a", person(42)[1])
        # B: an exchange, fetched into its bank B_EXCHANGE, and B's credentials for NCMEC
        r = c.post("/c/exchanges", headers=self.b, json={"api": "sample", "bank": "B_EXCHANGE"})
        assert r.status_code == 201, r.text
        assert c.post("/c/exchange/B_EXCHANGE/fetch", headers=self.b).status_code == 202
        env.platform.exchange_fetcher.wait(60)
        creds = {"credential_json": {"user": "b", "password": "b-secret"}}
        assert c.post("/c/exchanges/api/ncmec", headers=self.b, json=creds).status_code == 200

    def dump(self, tenant_id: int) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of the tenant, table by table."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        for t in TENANT_TABLES:
            rows = self.env.store._all(
                f"SELECT * FROM {t} WHERE tenant_id = ? ORDER BY id", (tenant_id,)
            )
            out[t] = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]
        out["tenants"] = self.env.store._all("SELECT * FROM tenants WHERE id = ?", (tenant_id,))
        return out

    def b_signal_ids(self) -> set[int]:
        rows = self.env.store._all("SELECT id FROM signals WHERE tenant_id = ?", (self.b_id,))
        return {int(r[0]) for r in rows}

    def lookups(self, h: dict[str, str]) -> dict[str, Any]:
        """What each of B's hashes matches for the token ``h``."""
        c = self.env.client
        out: dict[str, Any] = {}
        for st, v in (
            ("pdq", self.b_pdq),
            ("video_md5", self.b_md5),
            ("sha256", self.b_sha),
            ("vpdq", self.b_vpdq),
            ("md5", hashlib.md5(self.b_photo).hexdigest()),
        ):
            r = c.get("/m/raw_lookup", headers=h, params={"signal": v, "signal_type": st})
            assert r.status_code == 200, r.text
            out[st] = sorted(r.json()["matches"])
        r = c.post("/m/lookup", headers=h, params={"review": "false"}, **upload(self.b_photo))
        out["file"] = r.json()
        return out


def expect(r: httpx.Response, *codes: int) -> None:
    assert r.status_code in codes, (r.request.method, r.request.url, r.status_code, r.text)
    assert "Traceback" not in r.text


def cases(w: World) -> dict[tuple[str, str], Callable[[], None]]:
    """One case per route: A's token aimed at B's ids and bank names."""
    c, a = w.env.client, w.a
    bid, bid2 = w.b_content[0], w.b_content[1]

    def hash_post() -> None:
        expect(c.post("/h/hash", headers=a, **upload(w.b_photo)), 200)

    def hash_get() -> None:
        expect(c.get("/h/hash", headers=a, params={"url": "http://127.0.0.1:9/x"}), 403)

    def raw_lookup() -> None:
        r = c.get("/m/raw_lookup", headers=a, params={"signal": w.b_pdq, "signal_type": "pdq"})
        expect(r, 200)
        assert not set(r.json()["matches"]) & set(w.b_content)
        r = c.get(
            "/m/raw_lookup",
            headers=a,
            params={"signal": w.b_sha, "signal_type": "sha256", "banks": "B_ONLY,SHARED"},
        )
        assert r.json() == {"matches": []}

    def lookup_get() -> None:
        r = c.get("/m/lookup", headers=a, params={"signal": w.b_md5, "signal_type": "video_md5"})
        expect(r, 200)
        assert r.json() == {}

    def lookup_post() -> None:
        r = c.post("/m/lookup", headers=a, params={"banks": "B_ONLY"}, **upload(w.b_photo))
        expect(r, 200)
        assert all(v == {} for v in r.json().values())

    def index_status() -> None:
        r = c.get("/m/index/status", headers=a)
        expect(r, 200)
        assert r.json()["pdq"]["size"] == 1  # A's one pdq hash; B's are not counted
        assert r.json()["vpdq"]["size"] == 0

    def banks_index() -> None:
        r = c.get("/c/banks", headers=a)
        assert [b["name"] for b in r.json()] == ["A_ONLY", "SHARED"]

    def bank_create() -> None:
        expect(c.post("/c/banks", headers=a, json={"name": "B_ONLY"}), 201)  # A's own B_ONLY
        expect(c.delete("/c/bank/B_ONLY", headers=a), 200)  # ... and only it

    def bank_show() -> None:
        expect(c.get("/c/bank/B_ONLY", headers=a), 404)
        r = c.get("/c/bank/SHARED", headers=a, params={"include_reclaim": "true"})
        assert r.json()["content_count"] == 0

    def bank_update() -> None:
        for body in ({"pdq_distance": 0}, {"pdq_flavour": "reference"}):
            expect(c.put("/c/bank/B_ONLY", headers=a, json=body), 404)
            expect(c.put("/c/bank/SHARED", headers=a, json=body), 200)  # A's own SHARED

    def bank_delete() -> None:
        expect(c.delete("/c/bank/B_ONLY", headers=a), 200)  # HMA: a missing bank is "Done"
        expect(c.delete("/c/bank/SHARED", headers=a), 200)  # A's own SHARED
        expect(c.post("/c/banks", headers=a, json={"name": "SHARED"}), 201)

    def add_file() -> None:
        expect(c.post("/c/bank/B_ONLY/content", headers=a, **upload(photo(34))), 404)

    def add_signal() -> None:
        expect(c.post("/c/bank/B_ONLY/signal", headers=a, json={"pdq": w.b_pdq}), 404)

    def get_content() -> None:
        for bank in ("B_ONLY", "SHARED", "A_ONLY"):
            for cid in w.b_content:
                expect(c.get(f"/c/bank/{bank}/content/{cid}", headers=a), 404)

    def update_content() -> None:
        for bank in ("B_ONLY", "SHARED", "A_ONLY"):
            for cid in w.b_content:
                for body in ({"disable_until_ts": 0}, {"note": "a's note"}):
                    r = c.put(f"/c/bank/{bank}/content/{cid}", headers=a, json=body)
                    expect(r, 404)
        r = c.put(f"/c/bank/A_ONLY/content/{w.a_content}", headers=a, json={"note": "a's own"})
        expect(r, 200)  # A's own item

    def delete_content() -> None:
        # the reported attack: A's own bank, B's content id
        for bank in ("A_ONLY", "SHARED", "B_ONLY"):
            for cid in (bid, bid2, *w.b_content):
                expect(c.delete(f"/c/bank/{bank}/content/{cid}", headers=a), 404)

    def import_() -> None:
        body = {"items": [{"signals": {"pdq": w.b_pdq}}]}
        expect(c.post("/c/bank/B_ONLY/import", headers=a, json=body), 404)

    def export() -> None:
        expect(c.get("/c/bank/B_ONLY/export", headers=a), 404)
        r = c.get("/c/bank/SHARED/export", headers=a)
        assert r.json()["items"] == []

    def flag() -> None:
        expect(c.post("/review/flag", headers=a, **upload(w.b_photo)), 201)

    def list_items() -> None:
        r = c.get("/review/items", headers=a, params={"status": "all"})
        ids = {i["id"] for i in r.json()["items"]}
        assert w.b_item not in ids and w.b_item2 not in ids

    def get_item() -> None:
        for i in (w.b_item, w.b_item2):
            expect(c.get(f"/review/items/{i}", headers=a), 404)

    def preview() -> None:
        for i in (w.b_item, w.b_item2):
            expect(c.get(f"/review/items/{i}/preview", headers=a), 404)

    def decide() -> None:
        for i in (w.b_item, w.b_item2, BIG_ID):
            r = c.post(f"/review/items/{i}/decision", headers=a, json={"action": "remove"})
            expect(r, 404)

    def audit() -> None:
        entries = c.get("/review/audit", headers=a, params={"limit": 1000}).json()["entries"]
        b_actors = {f"token:{t}:" for t in w.b_tokens}
        assert not [e for e in entries if e["actor"].startswith(tuple(b_actors))]
        assert all(e["action"] != "review.decision" for e in entries)  # only B decided

    def add_webhook() -> None:
        expect(c.post("/review/webhooks", headers=a, json={"url": "http://127.0.0.1:9/z"}), 201)

    def list_webhooks() -> None:
        ids = {h["id"] for h in c.get("/review/webhooks", headers=a).json()}
        assert w.b_hook not in ids

    def delete_webhook() -> None:
        expect(c.delete(f"/review/webhooks/{w.b_hook}", headers=a), 404)

    def deliveries() -> None:
        assert c.get("/review/deliveries", headers=a).json() == []

    def list_tokens() -> None:
        r = c.get("/tokens", headers=a)
        expect(r, 200)
        assert not {t["id"] for t in r.json()["tokens"]} & set(w.b_tokens)

    def revoke_token() -> None:
        for t in w.b_tokens:
            expect(c.delete(f"/tokens/{t}", headers=a), 404)

    def status() -> None:
        expect(c.get("/status"), 200)

    def status_live() -> None:
        expect(c.get("/status/live"), 200)

    def health_live() -> None:
        expect(c.get("/health/live"), 200)

    def health_ready() -> None:  # no token; counts over all tenants, no tenant's data
        r = c.get("/health/ready")
        expect(r, 200)
        assert "bank" not in r.text.lower() and "tenant" not in r.text.lower()

    def metrics() -> None:
        expect(c.get("/metrics"), 200)

    def hma_openapi() -> None:
        expect(c.get("/openapi/openapi.json"), 200)

    def site_map() -> None:
        expect(c.get("/site-map"), 200)

    def compare() -> None:
        # a pure function of the hashes given: reads and writes nothing of anyone's
        r = c.post("/m/compare", headers=a, json={"pdq": [w.b_pdq, flip(w.b_pdq, [1])]})
        expect(r, 200)
        assert r.json() == {"pdq": [True, {"distance": 1}]}

    def exchange_apis() -> None:
        expect(c.get("/c/exchanges/apis", headers=a), 200)

    def exchange_api_get() -> None:
        r = c.get("/c/exchanges/api/ncmec", headers=a)
        expect(r, 200)
        assert r.json()["has_set_authentification"] is False  # B's credentials are B's

    def exchange_api_set() -> None:
        body = {"credential_json": {"user": "a", "password": "a-secret"}}
        expect(c.post("/c/exchanges/api/ncmec", headers=a, json=body), 200)  # A's own
        expect(c.post("/c/exchanges/api/ncmec", headers=a, json={"credential_json": {}}), 200)

    def exchange_schema() -> None:
        expect(c.get("/c/exchanges/api/ncmec/schema", headers=a), 200)

    def exchange_create() -> None:
        body = {"api": "sample", "bank": "B_EXCHANGE"}
        expect(c.post("/c/exchanges", headers=a, json=body), 201)  # A's own, of the same name
        expect(c.delete("/c/exchange/B_EXCHANGE", headers=a), 200)  # ... and only it

    def exchange_list() -> None:
        assert c.get("/c/exchanges", headers=a).json() == []

    def exchange_show() -> None:
        expect(c.get("/c/exchange/B_EXCHANGE", headers=a), 404)

    def exchange_update() -> None:
        r = c.put("/c/exchange/B_EXCHANGE", headers=a, json={"enabled": False})
        expect(r, 404)

    def exchange_delete() -> None:
        expect(c.delete("/c/exchange/B_EXCHANGE", headers=a), 200)  # HMA: a missing one is fine

    def exchange_status() -> None:
        expect(c.get("/c/exchange/B_EXCHANGE/status", headers=a), 404)

    def exchange_fetch() -> None:
        expect(c.post("/c/exchange/B_EXCHANGE/fetch", headers=a), 404)

    def bank_feed() -> None:
        for bank in ("B_ONLY", "B_EXCHANGE"):
            expect(c.get(f"/c/bank/{bank}/feed", headers=a), 404)
        r = c.get("/c/bank/SHARED/feed", headers=a)  # A's own SHARED
        expect(r, 200)
        assert not {u["content_id"] for u in r.json()["updates"]} & set(w.b_content)

    b_sid = w.b_shield.shield.shield_id
    as_json = {**a, "Content-Type": "application/json"}

    def shield_key() -> None:
        ka = c.get("/shield/v1/tenant-a/intake-key")
        kb = c.get("/shield/v1/tenant-b/intake-key")  # public, and reads nothing of B's data
        expect(ka, 200)
        expect(kb, 200)
        assert not {k["key"] for k in ka.json()["keys"]} & {k["key"] for k in kb.json()["keys"]}

    def shield_intake() -> None:
        # B's shield at A's intake: made for tenant-b, refused
        expect(post(w.env, "tenant-a", w.b_shield), 422)

    def shield_revoke() -> None:
        # B's shield id with B's real secret at A's revocation route: not A's shield
        expect(revoke(w.env, "tenant-a", b_sid, w.b_shield.revocation_secret), 403)

    def shield_partner_intake() -> None:
        r = c.post("/shield/v1/shields", headers=as_json, content=w.b_shield.shield.dumps())
        expect(r, 422)
        r = c.post("/shield/v1/shields", headers=as_json, content=w.a_shield.shield.dumps())
        expect(r, 201)  # A's own

    def shield_list() -> None:
        r = c.get("/shield/v1/shields", headers=a)
        expect(r, 200)
        assert b_sid not in r.text

    def shield_delete() -> None:
        expect(c.delete(f"/shield/v1/shields/{b_sid}", headers=a), 404)

    return {
        ("POST", "/h/hash"): hash_post,
        ("GET", "/h/hash"): hash_get,
        ("GET", "/m/raw_lookup"): raw_lookup,
        ("GET", "/m/lookup"): lookup_get,
        ("POST", "/m/lookup"): lookup_post,
        ("GET", "/m/index/status"): index_status,
        ("POST", "/m/compare"): compare,
        ("GET", "/c/banks"): banks_index,
        ("POST", "/c/banks"): bank_create,
        ("GET", "/c/bank/{bank_name}"): bank_show,
        ("PUT", "/c/bank/{bank_name}"): bank_update,
        ("POST", "/c/bank/{bank_name}/content"): add_file,
        ("POST", "/c/bank/{bank_name}/signal"): add_signal,
        ("GET", "/c/bank/{bank_name}/content/{content_id}"): get_content,
        ("PUT", "/c/bank/{bank_name}/content/{content_id}"): update_content,
        ("DELETE", "/c/bank/{bank_name}/content/{content_id}"): delete_content,
        ("POST", "/c/bank/{bank_name}/import"): import_,
        ("GET", "/c/bank/{bank_name}/export"): export,
        ("POST", "/review/flag"): flag,
        ("GET", "/review/items"): list_items,
        ("GET", "/review/items/{item_id}"): get_item,
        ("GET", "/review/items/{item_id}/preview"): preview,
        ("POST", "/review/items/{item_id}/decision"): decide,
        ("GET", "/review/audit"): audit,
        ("POST", "/review/webhooks"): add_webhook,
        ("GET", "/review/webhooks"): list_webhooks,
        ("DELETE", "/review/webhooks/{webhook_id}"): delete_webhook,
        ("GET", "/review/deliveries"): deliveries,
        ("GET", "/tokens"): list_tokens,
        ("DELETE", "/tokens/{token_id}"): revoke_token,
        ("GET", "/status"): status,
        ("GET", "/status/live"): status_live,
        ("GET", "/health/live"): health_live,
        ("GET", "/health/ready"): health_ready,
        ("GET", "/metrics"): metrics,
        ("GET", "/openapi/openapi.json"): hma_openapi,
        ("GET", "/site-map"): site_map,
        ("GET", "/shield/v1/{tenant}/intake-key"): shield_key,
        ("POST", "/shield/v1/{tenant}/intake"): shield_intake,
        ("POST", "/shield/v1/{tenant}/revoke"): shield_revoke,
        ("POST", "/shield/v1/shields"): shield_partner_intake,
        ("GET", "/shield/v1/shields"): shield_list,
        ("DELETE", "/shield/v1/shields/{shield_id}"): shield_delete,
        ("GET", "/c/exchanges/apis"): exchange_apis,
        ("GET", "/c/exchanges/api/{api_name}"): exchange_api_get,
        ("POST", "/c/exchanges/api/{api_name}"): exchange_api_set,
        ("GET", "/c/exchanges/api/{api_name}/schema"): exchange_schema,
        ("POST", "/c/exchanges"): exchange_create,
        ("GET", "/c/exchanges"): exchange_list,
        ("GET", "/c/exchange/{exchange_name}"): exchange_show,
        ("PUT", "/c/exchange/{exchange_name}"): exchange_update,
        ("DELETE", "/c/exchange/{exchange_name}"): exchange_delete,
        ("GET", "/c/exchange/{exchange_name}/status"): exchange_status,
        ("POST", "/c/exchange/{exchange_name}/fetch"): exchange_fetch,
        ("GET", "/c/bank/{bank_name}/feed"): bank_feed,
        # last: it deletes and re-creates A's SHARED bank
        ("DELETE", "/c/bank/{bank_name}"): bank_delete,
    }


def routes(env: Env) -> set[tuple[str, str]]:
    """Every (method, path) the app serves: its OpenAPI paths, and its route table walked
    (newer FastAPI keeps included routers as branches; a route hidden from the schema still
    shows up there)."""
    out = set()
    for path, ops in env.app.openapi()["paths"].items():
        out |= {(m.upper(), path) for m in ops}

    def walk(items: Any) -> None:
        for r in items:
            if isinstance(r, APIRoute):
                out.update((m, r.path) for m in r.methods or ())
            elif hasattr(r, "original_router"):  # FastAPI >= 0.16x: an included router
                prefix = getattr(getattr(r, "include_context", None), "prefix", "") or ""
                out.update((m, prefix + p) for m, p in _router_routes(r.original_router))
            elif hasattr(r, "routes"):
                walk(r.routes)

    walk(env.app.routes)
    return out


def _router_routes(router: Any) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for r in router.routes:
        if isinstance(r, APIRoute):
            found.update((m, r.path) for m in r.methods or ())
        elif hasattr(r, "original_router"):
            found |= _router_routes(r.original_router)
    return found


MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def test_every_route_walked_with_a_token_against_b(store: PlatformStore, tmp_path: Path) -> None:
    env = Env(
        store,
        poll_interval_s=0.0,
        shield_keys=str(tmp_path / "shield-keys.json"),
        shield_rate_per_ip=1000,
    )
    w = World(env)
    walk = cases(w)
    have = routes(env)
    missing = sorted(have - set(walk))
    assert not missing, f"routes without an isolation case: {missing}"
    assert {k for k in have if k[0] in MUTATING} <= set(walk)

    before = w.dump(w.b_id)  # type: ignore[arg-type]
    b_sees = w.lookups(w.b)
    assert all(b_sees[k] for k in ("pdq", "video_md5", "sha256", "vpdq", "md5")), b_sees
    b_signals = w.b_signal_ids()
    a_before = w.env.store._all("SELECT COUNT(*) FROM audit_log WHERE tenant_id = ?", (w.a_id,))[0][
        0
    ]

    failed = []  # checked after B's state: the first failure shown is the one that matters
    for key in walk:
        if key in have:
            try:
                walk[key]()
            except AssertionError as e:
                failed.append(f"{key}: {e}")

    after = w.dump(w.b_id)  # type: ignore[arg-type]
    for table in before:
        assert after[table] == before[table], f"tenant B's {table} changed"
    assert w.lookups(w.b) == b_sees  # B's index state
    a_sees = w.lookups(w.a)
    for st in ("pdq", "video_md5", "sha256", "vpdq", "md5"):
        assert not set(a_sees[st]) & set(w.b_content), (st, a_sees[st])
    deleted = {int(r[0]) for r in env.store._all("SELECT signal_id FROM changes WHERE op = 'del'")}
    assert not deleted & b_signals, "a B signal was logged as deleted"
    # B's face shield still matches her for B, and never for A
    index = env.platform.shields.index
    probe = near(w.b_centre, 43)[None]
    b_sid = w.b_shield.shield.shield_id
    assert [h.shield_id for h in index.match(w.b_id, "tenant-b", probe)] == [b_sid]
    assert index.match(w.a_id, "tenant-a", probe) == []
    assert not failed, "\n".join(failed)
    # A's failed attempts on B's ids are in A's own audit log (B's is unchanged, above)
    a_audit = env.client.get("/review/audit", headers=w.a, params={"limit": 1000}).json()
    denied = [e for e in a_audit["entries"] if e["action"].endswith(".not_found")]
    assert {e["action"] for e in denied} >= {
        "content.remove.not_found",
        "content.update.not_found",
        "review.decision.not_found",
        "webhook.delete.not_found",
        "token.revoke.not_found",
        "shield.delete.not_found",
    }
    refused = {e["action"] for e in a_audit["entries"] if e["action"].endswith(".refused")}
    assert refused == {"shield.intake.refused", "shield.revoke.refused"}
    assert len(a_audit["entries"]) > a_before
    assert set(walk) <= have, f"cases for routes that are gone: {sorted(set(walk) - have)}"


def test_store_refuses_rows_that_cross_tenants(store: PlatformStore) -> None:
    """Defence in depth: the schema itself refuses a signal, content, decision or delivery whose
    tenant differs from its parent's (composite keys on PostgreSQL, triggers on SQLite)."""
    a, b = store.create_tenant("a"), store.create_tenant("b")
    bank_a = store.create_bank(a, "X")
    (cid,) = store.add_contents(a, bank_a, [([("md5", "ab" * 16, None)], {})])
    item = store.create_review_item(
        a,
        reason="r",
        sha256=None,
        media_kind=None,
        signals={},
        matches={},
        preview=None,
        submitted_by=None,
    )
    hook = store.create_webhook(a, "http://127.0.0.1:9/", "s")
    bad = (
        (
            "INSERT INTO contents (bank_id, tenant_id, metadata, created_at) "
            "VALUES (?, ?, '{}', 0)",
            (bank_a.id, b),
        ),
        (
            "INSERT INTO signals (content_id, bank_id, tenant_id, signal_type, value) "
            "VALUES (?, ?, ?, 'md5', 'x')",
            (cid, bank_a.id, b),
        ),
        (
            "INSERT INTO decisions (review_item_id, tenant_id, action, note, actor, created_at) "
            "VALUES (?, ?, 'keep', '', 'x', 0)",
            (item, b),
        ),
        (
            "INSERT INTO deliveries (webhook_id, tenant_id, event, payload, status, "
            "next_attempt_at, created_at) VALUES (?, ?, 'e', '{}', 'pending', 0, 0)",
            (hook.id, b),
        ),
        ("UPDATE signals SET tenant_id = ? WHERE content_id = ?", (b, cid)),
    )
    for sql, args in bad:
        with pytest.raises(Exception) as e, store.tx() as cur:
            store._q(cur, sql, args)
        assert store._is_integrity_error(e.value), (sql, e.value)
    assert store.get_contents(a, [cid])[0].signals == [("md5", "ab" * 16, None)]


def test_store_methods_scope_by_tenant(store: PlatformStore) -> None:
    """The store's own methods, called with the wrong tenant, change and return nothing."""
    a, b = store.create_tenant("a"), store.create_tenant("b")
    bank_a, bank_b = store.create_bank(a, "X"), store.create_bank(b, "X")
    (ca,) = store.add_contents(a, bank_a, [([("md5", "ab" * 16, None)], {})])
    (cb,) = store.add_contents(b, bank_b, [([("md5", "ab" * 16, None)], {})])
    # B's bank object handed to a call for tenant A: nothing happens
    with pytest.raises(Exception, match="not found"):
        store.add_contents(a, bank_b, [([("md5", "cd" * 16, None)], {})])
    assert store.remove_content(a, bank_a, cb) == 0
    assert store.remove_content(a, bank_b, cb) == 0
    assert store.update_bank(a, bank_b, pdq_distance=3) is None
    assert store.update_bank(a, bank_b, pdq_flavour="reference") is None
    assert store.delete_bank(a, bank_b) is None
    assert store.count_contents(a, bank_b) == 0
    assert store.list_contents(a, bank_b) == []
    assert [x[1] for x in store.exact_lookup(a, "md5", "ab" * 16)] == [ca]
    assert [x[1] for x in store.exact_lookup(b, "md5", "ab" * 16)] == [cb]
    assert store.get_contents(b, [cb])[0].signals == [("md5", "ab" * 16, None)]
    assert store.count_contents(b, bank_b) == 1
    assert store.get_bank(b, "X") == bank_b
