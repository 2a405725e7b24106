"""Platform service API: HMA shapes, tenant isolation, scopes, bad input, import/export,
review queue, signed webhooks with retries. Runs on SQLite, and on PostgreSQL when
RECLAIM_TEST_POSTGRES_DSN is set."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from reclaim.api import Settings, create_app
from reclaim.hashes.pdq import PdqHash, pdq_from_rgb
from reclaim.platform.store import PlatformStore, PostgresPlatformStore, SqlitePlatformStore
from reclaim.platform.webhooks import verify

PG_DSN = os.environ.get("RECLAIM_TEST_POSTGRES_DSN")


def make_store(kind: str, tmp_path: Path) -> Iterator[PlatformStore]:
    if kind == "sqlite":
        store: PlatformStore = SqlitePlatformStore(tmp_path / "platform.db")
        store.migrate()
        yield store
        store.close()
        return
    if not PG_DSN:
        pytest.skip(
            "PostgreSQL tests need RECLAIM_TEST_POSTGRES_DSN (e.g. postgresql://u:p@127.0.0.1/db)"
        )
    pg = PostgresPlatformStore(PG_DSN, schema=f"t_{uuid.uuid4().hex[:12]}")
    pg.migrate()
    try:
        yield pg
    finally:
        pg.drop_schema()
        pg.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PlatformStore]:
    yield from make_store(request.param, tmp_path)


class Env:
    def __init__(self, store: PlatformStore, **settings: Any) -> None:
        self.store = store
        base = {
            "start_workers": False,
            "max_upload_bytes": 2_000_000,
            "webhook_backoff_s": 0.01,
            "allow_private_addresses": True,  # the test receivers listen on 127.0.0.1
        }
        self.app = create_app(store, Settings(**{**base, **settings}))
        self.client = TestClient(self.app)
        self.platform = self.app.state.platform
        self.tenants: dict[str, int] = {}

    def token(self, tenant: str, *scopes: str) -> dict[str, str]:
        tid = self.store.ensure_tenant(tenant)
        secret = self.store.create_token(tid, f"{tenant}-{'-'.join(scopes)}", scopes or ("hash",))
        return {"Authorization": f"Bearer {secret}"}

    def all_scopes(self, tenant: str) -> dict[str, str]:
        return self.token(tenant, "hash", "match", "curate", "review")


@pytest.fixture
def env(store: PlatformStore) -> Env:
    return Env(store)


def photo(seed: int, size: int = 256) -> bytes:
    """A photo-like PNG (smooth random field): PDQ quality well above 50."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(8, 8, 3)).astype(np.float32)
    big = np.kron(small, np.ones((size // 8, size // 8, 1), dtype=np.float32))
    big += rng.normal(0, 10, size=big.shape)
    im = Image.fromarray(np.clip(big, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def pdq_of(data: bytes) -> tuple[str, int]:
    im = Image.open(io.BytesIO(data)).convert("RGB")
    im.thumbnail((512, 512))
    h, q = pdq_from_rgb(np.asarray(im))
    return str(h), q


def flip(hex_hash: str, bits: list[int]) -> str:
    v = int(hex_hash, 16)
    for b in bits:
        v ^= 1 << b
    return f"{v:064x}"


def upload(data: bytes, field: str = "photo") -> dict[str, Any]:
    return {"files": {field: ("x.png", data, "image/png")}}


# -- hashing ------------------------------------------------------------------------------------


def test_hash_upload_returns_hma_signal_map(env: Env) -> None:
    data = photo(1)
    r = env.client.post("/h/hash", headers=env.token("a", "hash"), **upload(data))
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"pdq", "md5", "sha256"}
    assert body["md5"] == hashlib.md5(data).hexdigest()
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["pdq"] == pdq_of(data)[0]


def test_bad_uploads_are_4xx_with_reason(env: Env) -> None:
    h = env.token("a", "hash", "match")
    r = env.client.post("/h/hash", headers=h, **upload(b"not an image at all" * 10))
    assert r.status_code == 400 and "cannot hash" in r.json()["message"]
    r = env.client.post("/h/hash", headers=h)
    assert r.status_code == 400 and "multipart" in r.json()["message"]
    big = b"\x89PNG" + b"\0" * 2_100_000
    r = env.client.post("/h/hash", headers=h, **upload(big))
    assert r.status_code == 413 and "upload limit" in r.json()["message"]
    r = env.client.post("/m/lookup", headers=h, **upload(big))
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        for _ in range(40):
            yield b"\0" * 100_000

    r = env.client.post(
        "/h/hash",
        headers={**h, "Content-Type": "multipart/form-data; boundary=x"},
        content=chunks(),
    )
    assert r.status_code == 413 and "upload limit" in r.json()["message"]
    r = env.client.get("/h/hash", headers=h, params={"url": "http://127.0.0.1/x.png"})
    assert r.status_code == 403 and "fetch" in r.json()["message"]
    assert "Traceback" not in r.text


# -- curation + matching shapes --------------------------------------------------------------


def test_bank_crud_and_hma_shapes(env: Env) -> None:
    h = env.all_scopes("a")
    c = env.client
    r = c.post("/c/banks", headers=h, json={"name": "NCII_VICTIM_1"})
    assert r.status_code == 201
    # HMA's bank object, exactly; reclaim's per-bank distance with include_reclaim=true
    assert r.json() == {"name": "NCII_VICTIM_1", "matching_enabled_ratio": 1.0}
    assert c.post("/c/banks", headers=h, json={"name": "NCII_VICTIM_1"}).status_code == 403
    assert c.post("/c/banks", headers=h, json={"name": "lower case"}).status_code == 400
    assert c.get("/c/banks", headers=h).json() == [
        {"name": "NCII_VICTIM_1", "matching_enabled_ratio": 1.0}
    ]
    assert c.get("/c/banks", headers=h, params={"include_reclaim": "true"}).json() == [
        {
            "name": "NCII_VICTIM_1",
            "matching_enabled_ratio": 1.0,
            "pdq_distance": 31,
            "pdq_flavour": "pytx",
        }
    ]

    data = photo(2)
    r = c.post(
        "/c/bank/NCII_VICTIM_1/content",
        headers=h,
        params={"types": "pdq,md5,sha256"},  # reclaim's byte digests too (HMA: pdq only)
        files={"photo": ("x.png", data, "image/png")},
        data={"metadata": json.dumps({"content_id": "case-17"})},
    )
    assert r.status_code == 200, r.text
    added = r.json()
    assert set(added) == {"id", "signals"} and set(added["signals"]) == {"pdq", "md5", "sha256"}
    cid = added["id"]

    pdq = added["signals"]["pdq"]
    near = flip(pdq, list(range(0, 200, 10))[:20])  # distance 20
    q = {"signal": near, "signal_type": "pdq"}
    r = c.get("/m/raw_lookup", headers=h, params=q)
    assert r.json() == {"matches": [cid]}
    r = c.get("/m/raw_lookup", headers=h, params={**q, "include_distance": "true"})
    assert r.json() == {"matches": [{"bank_content_id": cid, "distance": "20"}]}
    r = c.get("/m/lookup", headers=h, params=q)
    assert r.json() == {"NCII_VICTIM_1": [{"bank_content_id": cid, "distance": "20"}]}
    far = flip(pdq, list(range(0, 256, 8)))  # distance 32: no match at the default 31
    assert c.get(
        "/m/raw_lookup", headers=h, params={"signal": far, "signal_type": "pdq"}
    ).json() == {"matches": []}

    # file lookup: keyed by signal type, then bank
    r = c.post("/m/lookup", headers=h, **upload(data))
    body = r.json()
    assert body["pdq"] == {"NCII_VICTIM_1": [{"bank_content_id": cid, "distance": "0"}]}
    assert body["md5"] == {"NCII_VICTIM_1": [{"bank_content_id": cid, "distance": "0"}]}
    assert "X-Reclaim-Review-Item" in r.headers
    r = c.post("/m/lookup", headers=h, **upload(photo(3)))
    assert r.json() == {"pdq": {}, "md5": {}, "sha256": {}}
    assert "X-Reclaim-Review-Item" not in r.headers

    # per-bank distance: 20 bits away stops matching at pdq_distance 10
    r = c.put("/c/bank/NCII_VICTIM_1", headers=h, json={"pdq_distance": 10})
    assert r.json() == {"name": "NCII_VICTIM_1", "matching_enabled_ratio": 1.0}
    r = c.get("/c/bank/NCII_VICTIM_1", headers=h, params={"include_reclaim": "true"})
    assert r.json()["pdq_distance"] == 10 and r.json()["content_count"] == 1
    assert c.get("/m/raw_lookup", headers=h, params=q).json() == {"matches": []}
    c.put("/c/bank/NCII_VICTIM_1", headers=h, json={"pdq_distance": 40})
    assert c.get(
        "/m/raw_lookup", headers=h, params={"signal": far, "signal_type": "pdq"}
    ).json() == {"matches": [cid]}
    # disabled bank: raw_lookup still sees it (as HMA), lookup does not
    c.put("/c/bank/NCII_VICTIM_1", headers=h, json={"enabled": False})
    assert c.get("/m/lookup", headers=h, params=q | {"signal": pdq}).json() == {}
    assert c.get("/m/raw_lookup", headers=h, params=q | {"signal": pdq}).json() == {
        "matches": [cid]
    }
    c.put("/c/bank/NCII_VICTIM_1", headers=h, json={"enabled": True})

    got = c.get(f"/c/bank/NCII_VICTIM_1/content/{cid}", headers=h).json()
    assert got == {
        "id": cid,
        "disable_until_ts": 1,
        "original_media_uri": None,
        "bank": {"name": "NCII_VICTIM_1", "matching_enabled_ratio": 1.0},
        "metadata": {"content_id": "case-17"},
    }
    got = c.get(
        f"/c/bank/NCII_VICTIM_1/content/{cid}", headers=h, params={"include_signals": "true"}
    ).json()
    assert got["signals"] == added["signals"] and got["signals"]["pdq"] == pdq
    assert c.delete(f"/c/bank/NCII_VICTIM_1/content/{cid}", headers=h).json() == {"deleted": 1}
    assert c.get("/m/raw_lookup", headers=h, params=q | {"signal": pdq}).json() == {"matches": []}
    assert c.delete("/c/bank/NCII_VICTIM_1", headers=h).json() == {"message": "Done"}
    assert c.get("/c/banks", headers=h).json() == []
    status = c.get("/m/index/status", headers=h).json()
    assert set(status["pdq"]) >= {"present", "built_to", "size"}


def test_signal_add_low_quality_and_banks_filter(env: Env) -> None:
    h = env.all_scopes("a")
    c = env.client
    for name in ("BANK_A", "BANK_B"):
        c.post("/c/banks", headers=h, json={"name": name})
    base = PdqHash(bytes(range(32))).__str__()
    a = c.post("/c/bank/BANK_A/signal", headers=h, json={"pdq": base}).json()["id"]
    b = c.post("/c/bank/BANK_B/signal", headers=h, json={"pdq": flip(base, [1, 2])}).json()["id"]
    low = c.post(
        "/c/bank/BANK_B/signal", headers=h, json={"pdq": flip(base, [3]), "quality": {"pdq": 20}}
    ).json()["id"]
    q = {"signal": base, "signal_type": "pdq", "include_distance": "true"}
    got = c.get("/m/raw_lookup", headers=h, params=q).json()["matches"]
    assert {m["bank_content_id"] for m in got} == {a, b}  # quality-20 hash is not matched
    assert low not in {m["bank_content_id"] for m in got}
    got = c.get("/m/raw_lookup", headers=h, params={**q, "banks": "BANK_B"}).json()["matches"]
    assert [m["bank_content_id"] for m in got] == [b]
    assert c.get("/m/lookup", headers=h, params={"signal": base, "signal_type": "pdq"}).json() == {
        "BANK_A": [{"bank_content_id": a, "distance": "0"}],
        "BANK_B": [{"bank_content_id": b, "distance": "2"}],
    }
    md5 = hashlib.md5(b"video bytes").hexdigest()
    v = c.post("/c/bank/BANK_A/signal", headers=h, json={"video_md5": md5.upper()}).json()
    assert v["signals"] == {"video_md5": md5}
    assert c.get(
        "/m/raw_lookup", headers=h, params={"signal": md5, "signal_type": "video_md5"}
    ).json() == {"matches": [v["id"]]}


def test_vpdq_matching_uses_metas_rule(env: Env) -> None:
    h = env.all_scopes("a")
    c = env.client
    c.post("/c/banks", headers=h, json={"name": "VIDEOS"})
    rng = np.random.default_rng(5)
    hashes = [PdqHash(bytes(rng.integers(0, 256, 32, dtype=np.uint8))) for _ in range(10)]
    frames = [
        {"frame": i, "quality": 90, "hash": str(x), "timestamp": float(i)}
        for i, x in enumerate(hashes)
    ]
    vid = c.post("/c/bank/VIDEOS/signal", headers=h, json={"vpdq": json.dumps(frames)}).json()["id"]
    # 9 of 10 frames slightly changed: ≥80% both ways → match
    q = [dict(f, hash=flip(f["hash"], [7, 9])) for f in frames[:9]]
    r = c.get("/m/raw_lookup", headers=h, params={"signal": json.dumps(q), "signal_type": "vpdq"})
    assert r.json() == {"matches": [vid]}
    # 5 of 10 frames: query side 100% but bank side 50% → no match
    r = c.get(
        "/m/raw_lookup", headers=h, params={"signal": json.dumps(frames[:5]), "signal_type": "vpdq"}
    )
    assert r.json() == {"matches": []}


def test_malformed_hashes_and_unknown_types_rejected(env: Env) -> None:
    h = env.all_scopes("a")
    c = env.client
    c.post("/c/banks", headers=h, json={"name": "B"})
    for params in (
        {"signal": "zz" * 32, "signal_type": "pdq"},
        {"signal": "ab" * 31, "signal_type": "pdq"},
        {"signal": "abc", "signal_type": "md5"},
        {"signal": "[{]", "signal_type": "vpdq"},
        {"signal": "ab" * 32, "signal_type": "tmk"},
    ):
        r = c.get("/m/raw_lookup", headers=h, params=params)
        assert r.status_code == 400, params
        assert r.json()["message"] and "Traceback" not in r.text
    r = c.get("/m/raw_lookup", headers=h, params={"signal_type": "pdq"})
    assert r.status_code == 422 and "signal" in r.json()["message"]
    r = c.post("/c/bank/B/signal", headers=h, json={"pdq": "nothex"})
    assert r.status_code == 400 and "invalid pdq" in r.json()["message"]
    r = c.post("/c/bank/B/signal", headers=h, json={"photodna": "x"})
    assert r.status_code == 400 and "unknown signal type" in r.json()["message"]
    r = c.post("/c/bank/B/signal", headers=h, content=b"{not json")
    assert r.status_code == 400
    r = c.post("/c/bank/B/signal", headers=h, json={"pdq": "ab" * 32, "metadata": [1]})
    assert r.status_code == 400 and "metadata" in r.json()["message"]
    r = c.post("/c/bank/B/import", headers=h, content=b"signal_type,signal\npdq,xyz\n")
    assert r.status_code == 400 and "row 2" in r.json()["message"]
    assert (
        c.get("/c/bank/B", headers=h, params={"include_reclaim": "true"}).json()["content_count"]
        == 0
    )  # all or nothing


# -- tenant isolation and scopes ---------------------------------------------------------------


def test_tenant_isolation(env: Env) -> None:
    a, b = env.all_scopes("platform-a"), env.all_scopes("platform-b")
    c = env.client
    c.post("/c/banks", headers=a, json={"name": "SHARED_NAME"})
    c.post("/c/banks", headers=b, json={"name": "SHARED_NAME"})  # same name, other tenant: ok
    c.post("/c/banks", headers=a, json={"name": "A_ONLY"})
    base = PdqHash(bytes(range(1, 33))).__str__()
    ca = c.post("/c/bank/A_ONLY/signal", headers=a, json={"pdq": base}).json()["id"]
    data = photo(9)
    c.post("/c/bank/SHARED_NAME/content", headers=a, **upload(data))

    assert [x["name"] for x in c.get("/c/banks", headers=b).json()] == ["SHARED_NAME"]
    assert c.get("/c/bank/A_ONLY", headers=b).status_code == 404
    assert c.get(f"/c/bank/A_ONLY/content/{ca}", headers=b).status_code == 404
    assert c.get(f"/c/bank/SHARED_NAME/content/{ca}", headers=b).status_code == 404
    assert c.delete(f"/c/bank/SHARED_NAME/content/{ca}", headers=b).status_code == 404
    assert c.get("/c/bank/SHARED_NAME/export", headers=b).json()["items"] == []
    q = {"signal": base, "signal_type": "pdq"}
    assert c.get("/m/raw_lookup", headers=b, params=q).json() == {"matches": []}
    assert c.get("/m/raw_lookup", headers=b, params={**q, "banks": "A_ONLY"}).json() == {
        "matches": []
    }
    assert c.get("/m/raw_lookup", headers=a, params=q).json() == {"matches": [ca]}
    r = c.post("/m/lookup", headers=b, **upload(data))
    assert r.json() == {"pdq": {}, "md5": {}, "sha256": {}}
    # a's upload matched: review item, decision and audit stay a's
    r = c.post("/m/lookup", headers=a, **upload(data))
    item = int(r.headers["X-Reclaim-Review-Item"])
    assert c.get("/review/items", headers=b).json() == {"items": []}
    assert c.get(f"/review/items/{item}", headers=b).status_code == 404
    assert c.get(f"/review/items/{item}/preview", headers=b).status_code == 404
    r = c.post(f"/review/items/{item}/decision", headers=b, json={"action": "keep"})
    assert r.status_code == 404
    assert c.get(f"/review/items/{item}", headers=a).json()["status"] == "pending"
    c.post(f"/review/items/{item}/decision", headers=a, json={"action": "remove"})
    assert all(  # b's log holds only b's own (refused) attempt on a's item
        "review_item" not in e["target"] or e["action"] == "review.decision.not_found"
        for e in c.get("/review/audit", headers=b).json()["entries"]
    )
    assert any(
        e["action"] == "review.decision"
        for e in c.get("/review/audit", headers=a).json()["entries"]
    )
    # b deleting its SHARED_NAME leaves a's bank alone
    c.delete("/c/bank/SHARED_NAME", headers=b)
    assert [x["name"] for x in c.get("/c/banks", headers=a).json()] == ["A_ONLY", "SHARED_NAME"]


def test_token_scopes_and_auth(env: Env) -> None:
    c = env.client
    hash_only = env.token("t", "hash")
    match_only = env.token("t", "match")
    q = {"signal": "ab" * 32, "signal_type": "pdq"}
    assert c.get("/m/raw_lookup", params=q).status_code == 401
    assert (
        c.get("/m/raw_lookup", params=q, headers={"Authorization": "Bearer rcl_nope"}).status_code
        == 401
    )
    assert c.get("/m/raw_lookup", params=q, headers={"Authorization": "Basic x"}).status_code == 401
    r = c.get("/m/raw_lookup", params=q, headers=hash_only)
    assert r.status_code == 403 and "'match' scope" in r.json()["message"]
    assert c.get("/m/raw_lookup", params=q, headers=match_only).status_code == 200
    assert c.get("/c/banks", headers=match_only).status_code == 403
    assert c.post("/h/hash", headers=match_only, **upload(photo(1))).status_code == 403
    assert c.get("/review/items", headers=match_only).status_code == 403
    assert c.get("/review/items", headers=env.token("t", "review")).status_code == 200
    # tokens are stored hashed, never in clear
    secret = hash_only["Authorization"].split()[1]
    rows = env.store._all("SELECT token_hash FROM tokens")
    assert all(secret not in str(r[0]) for r in rows)
    assert hashlib.sha256(secret.encode()).hexdigest() in {r[0] for r in rows}
    with pytest.raises(ValueError):
        env.store.create_token(1, "x", ["admin"])


# -- bulk import/export ---------------------------------------------------------------------------


def test_import_protect_csv_and_roundtrip_export(env: Env, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from reclaim.cli import app as cli_app

    h = env.all_scopes("a")
    c = env.client
    c.post("/c/banks", headers=h, json={"name": "PERSON_1"})
    (tmp_path / "p.png").write_bytes(photo(11))
    out = tmp_path / "hashes.csv"
    res = CliRunner().invoke(cli_app, ["protect", str(tmp_path / "p.png"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    csv_headers = {**h, "Content-Type": "text/csv"}
    r = c.post("/c/bank/PERSON_1/import", headers=csv_headers, content=out.read_bytes())
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 2  # pdq row and md5 row
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    pdq_row = next(x for x in rows if x["signal_type"] == "pdq")
    got = c.get(
        "/m/raw_lookup", headers=h, params={"signal": pdq_row["signal"], "signal_type": "pdq"}
    )
    assert len(got.json()["matches"]) == 1
    # the person's photo, uploaded elsewhere, now matches
    lookup = c.post("/m/lookup", headers=h, **upload(photo(11))).json()
    assert list(lookup["pdq"]) == ["PERSON_1"] and list(lookup["md5"]) == ["PERSON_1"]

    exported = c.get("/c/bank/PERSON_1/export", headers=h).json()
    assert len(exported["items"]) == 2
    assert exported["items"][0]["metadata"]["json"]["tool"].startswith("reclaim")
    csv_text = c.get("/c/bank/PERSON_1/export", headers=h, params={"format": "csv"}).text
    c.post("/c/banks", headers=h, json={"name": "COPY_JSON"})
    c.post("/c/banks", headers=h, json={"name": "COPY_CSV"})
    assert (
        c.post("/c/bank/COPY_JSON/import", headers=h, json={"items": exported["items"]}).json()[
            "imported"
        ]
        == 2
    )
    assert (
        c.post(
            "/c/bank/COPY_CSV/import",
            headers={**h, "Content-Type": "text/csv"},
            content=csv_text.encode(),
        ).json()["imported"]
        == 2
    )

    def norm(bank: str) -> list[tuple[Any, ...]]:
        items = c.get(f"/c/bank/{bank}/export", headers=h).json()["items"]
        return sorted(
            (
                json.dumps(i["signals"]),
                json.dumps(i["quality"]),
                json.dumps(i["metadata"], sort_keys=True),
            )
            for i in items
        )

    assert norm("COPY_JSON") == norm("PERSON_1") == norm("COPY_CSV")


def test_protect_vpdq_compact_form_is_accepted() -> None:
    from reclaim.platform.signals import canonical

    hx = "ab" * 32
    compact = json.dumps([f"{hx},90,0.000", f"{hx},80,1.000"])
    val = json.loads(canonical("vpdq", compact))
    assert [f["quality"] for f in val] == [90, 80] and val[1]["hash"] == hx
    lines = f"0,90,{hx},0.000\n1,80,{hx},1.000\n"
    assert json.loads(canonical("vpdq", lines)) == val


# -- review queue and webhooks ------------------------------------------------------------


class Receiver:
    """A local webhook receiver that fails the first ``fail`` requests with 500."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.got: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.got.append((dict(self.headers), body))
                code = 500 if len(outer.got) <= outer.fail else 204
                self.send_response(code)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_review_decision_fires_signed_webhook_with_retries(env: Env) -> None:
    h = env.all_scopes("a")
    c = env.client
    rx = Receiver(fail=2)
    try:
        hook = c.post("/review/webhooks", headers=h, json={"url": rx.url}).json()
        assert hook["secret"].startswith("whsec_")
        data = photo(21)
        r = c.post(
            "/review/flag",
            headers=h,
            files={"photo": ("x.png", data, "image/png")},
            data={"reason": "user report"},
        )
        assert r.status_code == 201
        item = r.json()["id"]
        listed = c.get("/review/items", headers=h).json()["items"]
        assert [i["id"] for i in listed] == [item] and listed[0]["reason"] == "flag: user report"
        prev = c.get(f"/review/items/{item}/preview", headers=h)
        assert prev.headers["content-type"] == "image/jpeg"
        thumb = Image.open(io.BytesIO(prev.content))
        assert max(thumb.size) <= 256  # small, blurred: not the original
        orig = np.asarray(Image.open(io.BytesIO(data)).convert("L").resize(thumb.size), dtype=float)
        blur = np.asarray(thumb.convert("L"), dtype=float)
        assert np.abs(np.diff(blur, axis=1)).mean() < 0.5 * np.abs(np.diff(orig, axis=1)).mean()

        r = c.post(
            f"/review/items/{item}/decision", headers=h, json={"action": "remove", "note": "ncii"}
        )
        assert r.json()["status"] == "removed" and r.json()["webhooks"] == 1
        assert (
            c.post(f"/review/items/{item}/decision", headers=h, json={"action": "nuke"}).status_code
            == 400
        )
        env.platform.webhooks.run_until_idle(10)
        assert len(rx.got) == 3  # two 500s, then delivered
        for headers, body in rx.got:
            assert verify(hook["secret"], headers["X-Reclaim-Signature"], body)
            assert not verify("whsec_wrong", headers["X-Reclaim-Signature"], body)
            assert not verify(hook["secret"], headers["X-Reclaim-Signature"], body + b" ")
        payload = json.loads(rx.got[-1][1])
        assert payload["event"] == "review.decision"
        assert payload["data"]["review_item_id"] == item and payload["data"]["action"] == "remove"
        d = c.get("/review/deliveries", headers=h).json()
        assert d[0]["status"] == "delivered" and d[0]["attempts"] == 3
        got = c.get(f"/review/items/{item}", headers=h).json()
        assert got["status"] == "removed" and got["decisions"][0]["note"] == "ncii"
        actions = [e["action"] for e in c.get("/review/audit", headers=h).json()["entries"]]
        assert actions == ["webhook.create", "review.queued", "review.decision"]
    finally:
        rx.close()


def test_webhook_gives_up_after_max_attempts(store: PlatformStore) -> None:
    env = Env(store, webhook_max_attempts=3)
    h = env.all_scopes("a")
    rx = Receiver(fail=100)
    try:
        env.client.post("/review/webhooks", headers=h, json={"url": rx.url})
        item = env.client.post("/review/flag", headers=h, **upload(photo(4))).json()["id"]
        env.client.post(f"/review/items/{item}/decision", headers=h, json={"action": "escalate"})
        env.platform.webhooks.run_until_idle(10)
        assert len(rx.got) == 3
        d = env.client.get("/review/deliveries", headers=h).json()[0]
        assert d["status"] == "failed" and d["last_error"] == "HTTP 500"
    finally:
        rx.close()


def test_webhooks_and_url_fetches_reach_only_public_addresses(store: PlatformStore) -> None:
    """SSRF guard: by default a tenant cannot make the server post to, or fetch from, loopback,
    private or link-local addresses (a cloud metadata endpoint), at registration or later."""
    env = Env(store, allow_private_addresses=False, allow_url_fetch=True)
    h = env.all_scopes("a")
    rx = Receiver(fail=0)
    try:
        for url in (
            rx.url,
            "http://localhost:9/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.1.2.3/hook",
            "http://[::1]:8080/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "ftp://example.org/hook",
        ):
            r = env.client.post("/review/webhooks", headers=h, json={"url": url})
            assert r.status_code == 400, (url, r.text)
            assert "webhook url refused" in r.json()["message"], r.text
        refused = env.client.post("/review/webhooks", headers=h, json={"url": rx.url})
        assert "loopback" in refused.json()["message"]
        assert env.client.get("/review/webhooks", headers=h).json() == []
        # a receiver registered while allowed, then refused at delivery: nothing is sent
        tid = env.store.ensure_tenant("a")
        env.store.create_webhook(tid, rx.url, "whsec_x")
        item = env.client.post("/review/flag", headers=h, **upload(photo(5))).json()["id"]
        env.client.post(f"/review/items/{item}/decision", headers=h, json={"action": "keep"})
        env.platform.webhooks.run_once()
        assert rx.got == []
        d = env.client.get("/review/deliveries", headers=h).json()[0]
        assert d["last_error"].startswith("refused: 127.0.0.1 is a loopback address")
        # the server's ?url= fetch refuses the same hosts
        r = env.client.get("/h/hash", headers=h, params={"url": rx.url})
        assert r.status_code == 400 and "refused" in r.json()["message"], r.text
    finally:
        rx.close()


def test_address_checks() -> None:
    from reclaim.netguard import address_problem, host_problem

    assert address_problem("93.184.216.34") is None  # public
    assert address_problem("2606:2800:220:1:248:1893:25c8:1946") is None
    for a, what in (
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", ""),
    ):
        problem = address_problem(a)
        assert problem is not None and what in problem, (a, problem)
    assert "cannot resolve" in (host_problem("no-such-host.invalid") or "")
    assert host_problem("localhost") in (
        "localhost resolves to 127.0.0.1, a loopback address; only public addresses are allowed",
        "localhost resolves to ::1, a loopback address; only public addresses are allowed",
    )


def test_other_process_changes_are_picked_up(store: PlatformStore) -> None:
    """Two apps on one database: a hash added through one matches in the other after a poll."""
    one = Env(store, poll_interval_s=0.0)
    two = Env(store, poll_interval_s=0.0)
    h = one.all_scopes("a")
    one.client.post("/c/banks", headers=h, json={"name": "B"})
    base = PdqHash(bytes(range(5, 37))).__str__()
    cid = one.client.post("/c/bank/B/signal", headers=h, json={"pdq": base}).json()["id"]
    q = {"signal": base, "signal_type": "pdq"}
    assert two.client.get("/m/raw_lookup", headers=h, params=q).json() == {"matches": [cid]}
    one.client.delete(f"/c/bank/B/content/{cid}", headers=h)
    assert two.client.get("/m/raw_lookup", headers=h, params=q).json() == {"matches": []}
    assert one.client.get("/openapi.json").json()["paths"]["/m/raw_lookup"]


# -- hostile input: 4xx with a reason, never 500 -------------------------------------------------


def test_out_of_range_integers_are_4xx(env: Env) -> None:
    h = env.all_scopes("a")
    c = env.client
    c.post("/c/banks", headers=h, json={"name": "B"})
    for v in (str(2**63), str(10**30), "1e30", str(-(2**63) - 1)):
        for method, url, kw in (
            ("GET", f"/c/bank/B/content/{v}", {}),
            ("DELETE", f"/c/bank/B/content/{v}", {}),
            ("GET", f"/review/items/{v}", {}),
            ("GET", f"/review/items/{v}/preview", {}),
            ("POST", f"/review/items/{v}/decision", {"json": {"action": "keep"}}),
            ("DELETE", f"/review/webhooks/{v}", {}),
            ("DELETE", f"/tokens/{v}", {}),
            ("GET", "/review/items", {"params": {"after_id": v}}),
            ("GET", "/review/audit", {"params": {"after_id": v}}),
            ("GET", "/review/items", {"params": {"limit": v}}),
            ("GET", "/review/audit", {"params": {"limit": v}}),
        ):
            r = c.request(method, url, headers=h, **kw)
            assert 400 <= r.status_code < 500, (method, url, kw, r.status_code, r.text)
            assert r.json()["message"] and "Traceback" not in r.text
    r = c.post("/c/bank/B/signal", headers=h, json={"pdq": "ab" * 32, "quality": {"pdq": 2**70}})
    assert r.status_code == 400
    for body in ({"enabled_ratio": 10**400}, {"pdq_distance": 2**70}):
        r = c.put("/c/bank/B", headers=h, json=body)
        assert r.status_code == 400, r.text
    r = c.post(
        "/c/bank/B/import",
        headers=h,
        json={"items": [{"signals": {"pdq": "ab" * 32}, "quality": {"pdq": 10**30}}]},
    )
    assert r.status_code == 400
    # the store refuses them too (another caller than the API)
    from reclaim.errors import ReclaimError

    tid = env.store.tenant_id("a")
    assert tid is not None
    with pytest.raises(ReclaimError, match="out of range"):
        env.store.get_review_item(tid, 2**63)


def test_deeply_nested_json_is_4xx(env: Env) -> None:
    h = env.all_scopes("a")
    c = env.client
    c.post("/c/banks", headers=h, json={"name": "B"})
    deep_list = ("[" * 100_000 + "]" * 100_000).encode()
    deep_obj = ('{"a":' * 50_000 + "1" + "}" * 50_000).encode()
    nested = json.loads('{"a":' * 100 + "1" + "}" * 100)  # under Python's limit, over ours
    js = {**h, "Content-Type": "application/json"}
    for url in ("/c/banks", "/c/bank/B/signal", "/c/bank/B/import", "/review/webhooks"):
        for body in (deep_list, deep_obj):
            r = c.post(url, headers=js, content=body)
            assert 400 <= r.status_code < 500, (url, r.status_code, r.text)
            assert r.json()["message"]
    r = c.put("/c/bank/B", headers=js, content=deep_obj)
    assert 400 <= r.status_code < 500
    r = c.post("/c/bank/B/signal", headers=h, json={"pdq": "ab" * 32, "metadata": nested})
    assert r.status_code == 400 and "nested" in r.json()["message"]
    r = c.post(
        "/c/bank/B/import",
        headers=h,
        json={"items": [{"signals": {"pdq": "ab" * 32}, "metadata": nested}]},
    )
    assert r.status_code == 400 and "nested" in r.json()["message"]
    r = c.post(
        "/c/bank/B/content",
        headers=h,
        files={"photo": ("x.png", photo(6), "image/png")},
        data={"metadata": deep_obj.decode()},
    )
    assert r.status_code == 400, r.text
    for signal in (deep_list.decode()[:20_000] + "]" * 0, "[" * 5000 + "]" * 5000):
        r = c.get("/m/raw_lookup", headers=h, params={"signal": signal, "signal_type": "vpdq"})
        assert r.status_code == 400, r.text
    assert (
        c.get("/c/bank/B", headers=h, params={"include_reclaim": "true"}).json()["content_count"]
        == 0
    )


def _csv_import_refused(env: Env, bodies: tuple[str, ...]) -> None:
    h = {**env.all_scopes("a"), "Content-Type": "text/csv"}
    c = env.client
    c.post("/c/banks", headers=h, json={"name": "B"})
    for body in bodies:
        r = c.post("/c/bank/B/import", headers=h, content=body.encode())
        assert r.status_code == 400, (body[:80], r.status_code, r.text)
        assert "row 2" in r.json()["message"], r.text
    assert (
        c.get("/c/bank/B", headers=h, params={"include_reclaim": "true"}).json()["content_count"]
        == 0
    )
    r = c.post(
        "/c/bank/B/import",
        headers=h,
        content=f"signal_type,signal,tool\npdq,{'ab' * 32},x\n".encode(),
    )
    assert r.status_code == 200 and r.json()["imported"] == 1


def test_csv_import_oversized_fields_are_4xx(env: Env) -> None:
    pdq = "ab" * 32
    _csv_import_refused(
        env,
        (
            f"signal_type,signal\npdq,{'x' * 200_000}\n",  # over the csv module's field limit
            f"signal_type,signal,note\npdq,{pdq},{'x' * 200_000}\n",
        ),
    )


def test_csv_extra_columns_count_toward_the_metadata_cap(env: Env) -> None:
    pdq = "ab" * 32
    cols = ",".join(f"c{i}" for i in range(40))
    _csv_import_refused(
        env,
        (
            # 40 columns of 1000 characters, each under the field limit: 40 KB over the 16 KB cap
            f"signal_type,signal,{cols}\npdq,{pdq}," + ",".join("y" * 1000 for _ in range(40)),
            # 10 KB in the metadata column plus 10 KB of extra columns
            f"signal_type,signal,metadata,{cols}\npdq,{pdq},"
            + '"{""k"": ""'
            + "z" * 10_000
            + '""}",'
            + ",".join("y" * 250 for _ in range(40)),
            # a metadata 'json' that is not an object, with extra columns to merge into it
            "signal_type,signal,metadata,tool\npdq," + pdq + ',"{""json"": ""x""}",reclaim\n',
            "signal_type,signal,metadata\npdq," + pdq + ',"[1]"\n',
        ),
    )


def test_index_status_counts_only_the_tenants_hashes(env: Env) -> None:
    a, b = env.all_scopes("a"), env.all_scopes("b")
    c = env.client
    for h in (a, b):
        c.post("/c/banks", headers=h, json={"name": "X"})
    for i in range(3):
        c.post("/c/bank/X/signal", headers=a, json={"pdq": PdqHash(bytes([i] * 32)).__str__()})
    c.post("/c/bank/X/signal", headers=a, json={"md5": "ab" * 16})
    c.post("/c/bank/X/signal", headers=b, json={"pdq": PdqHash(bytes([9] * 32)).__str__()})
    frames = [{"frame": 0, "quality": 90, "hash": "cd" * 32, "timestamp": 0.0}]
    c.post("/c/bank/X/signal", headers=b, json={"vpdq": json.dumps(frames)})
    sa = c.get("/m/index/status", headers=a).json()
    sb = c.get("/m/index/status", headers=b).json()
    assert (sa["pdq"]["size"], sa["vpdq"]["size"], sa["md5"]["size"]) == (3, 0, 1)
    assert (sb["pdq"]["size"], sb["vpdq"]["size"], sb["md5"]["size"]) == (1, 1, 0)
    assert set(sa["pdq"]) >= {"present", "built_to", "size"}


def test_tokens_are_listed_and_revoked_at_once(env: Env) -> None:
    c = env.client
    admin = env.token("a", "tokens", "review")
    m = env.token("a", "match")
    other = env.token("b", "tokens")
    q = {"signal": "ab" * 32, "signal_type": "pdq"}
    assert c.get("/m/raw_lookup", headers=m, params=q).status_code == 200  # now cached
    r = c.get("/tokens", headers=admin)
    assert r.status_code == 200, r.text
    listed = r.json()["tokens"]
    for secret in (admin, m):  # no secret and no stored hash in the listing
        s = secret["Authorization"].split()[1]
        assert s not in r.text and hashlib.sha256(s.encode()).hexdigest() not in r.text
    by_name = {t["name"]: t for t in listed}
    assert set(by_name) == {"a-tokens-review", "a-match"}
    mid = by_name["a-match"]["id"]
    assert by_name["a-match"]["scopes"] == ["match"] and by_name["a-match"]["revoked_at"] is None
    assert c.get("/tokens", headers=m).status_code == 403  # needs the tokens scope
    assert c.delete(f"/tokens/{mid}", headers=other).status_code == 404  # not b's
    assert c.get("/m/raw_lookup", headers=m, params=q).status_code == 200
    r = c.delete(f"/tokens/{mid}", headers=admin)
    assert r.status_code == 200 and r.json() == {"revoked": mid}
    r = c.get("/m/raw_lookup", headers=m, params=q)  # at once, not after the cache TTL
    assert r.status_code == 401 and "revoked" in r.json()["message"]
    assert c.delete(f"/tokens/{mid}", headers=admin).status_code == 404
    got = {t["id"]: t for t in c.get("/tokens", headers=admin).json()["tokens"]}
    assert got[mid]["revoked_at"] is not None
    actions = [
        (e["action"], e["target"]) for e in c.get("/review/audit", headers=admin).json()["entries"]
    ]
    assert ("token.revoke", f"token:{mid}") in actions
