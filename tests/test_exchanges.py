"""Signal exchanges (issue 23): HMA's exchange API per tenant, backed by python-threatexchange's
own clients, each fetching from a local server that answers in its API's shape (nothing reaches
the network); bank feeds; fetches in the background with progress in the status.

Runs on SQLite, and on PostgreSQL when RECLAIM_TEST_POSTGRES_DSN is set.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from reclaim.api import Settings, create_app
from reclaim.platform import store as store_mod
from reclaim.platform.store import PlatformStore, SqlitePlatformStore, base
from tests.test_api_platform import Env, flip, make_store, photo, upload

PDQ_A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
PDQ_B = "facd8bcb2a49bcebdec1985298d5fe84bcd006c187c598c720c3c087b3fdb318"
MD5_V = hashlib.md5(b"a video").hexdigest()
TE_TOKEN = "1234567890|abcdefghijklmnopqrstuvwxyz012345"


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PlatformStore]:
    yield from make_store(request.param, tmp_path)


@pytest.fixture
def env(store: PlatformStore) -> Env:
    return Env(store)


# -- helpers ----------------------------------------------------------------------------------


Handler = Callable[["Request"], tuple[int, str, bytes]]


class Request:
    def __init__(self, method: str, path: str, headers: dict[str, str]) -> None:
        parts = urllib.parse.urlsplit(path)
        self.method = method
        self.path = parts.path
        self.query = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
        self.headers = headers


class FakeAPI:
    """A local HTTP server answering like an exchange's API; records what it was asked."""

    def __init__(self, handler: Handler) -> None:
        self.requests: list[Request] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                req = Request("GET", self.path, {k.lower(): v for k, v in self.headers.items()})
                outer.requests.append(req)
                status, ctype, body = handler(req)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def json_answer(data: Any, status: int = 200) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(data).encode()


class Served:
    """The service in uvicorn on a thread (real HTTP, concurrent requests)."""

    def __init__(self, store: PlatformStore, **settings: Any) -> None:
        cfg = Settings(**{"start_workers": False, "allow_private_addresses": True, **settings})
        self.app = create_app(store, cfg)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="error")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "service did not start"
            time.sleep(0.05)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def auth(env: Env, tenant: str, *scopes: str) -> dict[str, str]:
    return env.token(tenant, *(scopes or ("curate", "fetch", "match", "review")))


def create(env: Env, h: dict[str, str], api: str, bank: str, api_json: Any = None) -> None:
    r = env.client.post(
        "/c/exchanges", headers=h, json={"api": api, "bank": bank, "api_json": api_json or {}}
    )
    assert r.status_code == 201, r.text
    assert r.json() == {"message": "Created successfully"}


def fetch(env: Env, h: dict[str, str], name: str) -> dict[str, Any]:
    """Start a fetch over the API, wait for it, return the status."""
    r = env.client.post(f"/c/exchange/{name}/fetch", headers=h)
    assert r.status_code == 202, r.text
    env.platform.exchange_fetcher.wait(60)
    status = env.client.get(f"/c/exchange/{name}/status", headers=h)
    assert status.status_code == 200
    out: dict[str, Any] = status.json()
    assert out["running_fetch_start_ts"] is None
    return out


def lookup(env: Env, h: dict[str, str], signal_type: str, value: str) -> dict[str, Any]:
    r = env.client.get("/m/lookup", headers=h, params={"signal_type": signal_type, "signal": value})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def bank_items(env: Env, h: dict[str, str], bank: str) -> dict[int, dict[str, str]]:
    r = env.client.get(f"/c/bank/{bank}/export", headers=h)
    assert r.status_code == 200, r.text
    return {i["id"]: i["signals"] for i in r.json()["items"]}


# -- HMA's API --------------------------------------------------------------------------------


def test_hma_exchange_api_shapes(env: Env) -> None:
    c, h = env.client, auth(env, "t")
    apis = c.get("/c/exchanges/apis", headers=h).json()
    assert set(apis) == {"sample", "fb_threatexchange", "ncmec", "stop_ncii", "reclaim"}
    # HMA's test_exchange_api_set_auth, step by step
    no_auth = {"supports_authentification": False, "has_set_authentification": False}
    assert c.get("/c/exchanges/api/sample", headers=h).json() == no_auth
    unset = {"supports_authentification": True, "has_set_authentification": False}
    is_set = {"supports_authentification": True, "has_set_authentification": True}
    assert c.get("/c/exchanges/api/fb_threatexchange", headers=h).json() == unset
    creds = {"credential_json": {"api_token": "12345789|000000000000"}}
    r = c.post("/c/exchanges/api/fb_threatexchange", headers=h, json=creds)
    assert r.status_code == 200 and r.json() == is_set
    assert c.get("/c/exchanges/api/fb_threatexchange", headers=h).json() == is_set
    r = c.post("/c/exchanges/api/fb_threatexchange", headers=h, json={"credential_json": {}})
    assert r.json() == unset
    assert c.get("/c/exchanges/api/nope", headers=h).status_code == 400
    # HMA's test_exchange_api_schema
    s = c.get("/c/exchanges/api/sample/schema", headers=h).json()
    assert s["config_schema"] == {"fields": []} and s["credentials_schema"] is None
    s = c.get("/c/exchanges/api/fb_threatexchange/schema", headers=h).json()
    fields = {f["name"]: f for f in s["config_schema"]["fields"]}
    assert fields["privacy_group"]["type"] == "number" and fields["privacy_group"]["required"]
    cred_fields = {f["name"]: f for f in s["credentials_schema"]["fields"]}
    assert cred_fields["api_token"]["type"] == "string"
    s = c.get("/c/exchanges/api/ncmec/schema", headers=h).json()
    env_field = {f["name"]: f for f in s["config_schema"]["fields"]}["environment"]
    assert (
        env_field["type"] == "enum"
        and "https://report.cybertip.org/hashsharing" in env_field["choices"]
    )
    # StopNCII's base_url_override is the operator's, not in the tenant's schema
    s = c.get("/c/exchanges/api/stop_ncii/schema", headers=h).json()
    assert {f["name"] for f in s["credentials_schema"]["fields"]} == {
        "fetch_function_key",
        "subscription_key",
    }
    # HMA's test_exchange_delete and test_exchange_get_fetch_status
    assert c.delete("/c/exchange/TEST_EXCHANGE", headers=h).status_code == 200
    assert c.get("/c/exchange/NONEXISTENT_EXCHANGE/status", headers=h).status_code == 404
    create(env, h, "sample", "BAR_EXCHANGE")
    status = c.get("/c/exchange/BAR_EXCHANGE/status", headers=h).json()
    assert {
        "checkpoint_ts",
        "running_fetch_start_ts",
        "last_fetch_complete_ts",
        "last_fetch_succeeded",
        "up_to_date",
        "fetched_items",
    } <= set(status)
    assert status["fetched_items"] == 0 and status["last_fetch_succeeded"] is None
    assert c.get("/c/exchanges", headers=h).json() == ["BAR_EXCHANGE"]
    shown = c.get("/c/exchange/BAR_EXCHANGE", headers=h).json()
    assert shown == {"name": "BAR_EXCHANGE", "api": "sample", "enabled": True}
    # its bank, named like it
    assert [b["name"] for b in c.get("/c/banks", headers=h).json()] == ["BAR_EXCHANGE"]
    r = c.put("/c/exchange/BAR_EXCHANGE", headers=h, json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert c.post("/c/exchange/BAR_EXCHANGE/fetch", headers=h).status_code == 409
    r = c.delete("/c/exchange/BAR_EXCHANGE", headers=h)
    assert r.status_code == 200 and r.json()["message"] == "Exchange deleted"
    assert c.get("/c/exchanges", headers=h).json() == []
    assert c.get("/c/banks", headers=h).json() == []


def test_bad_exchange_requests_are_4xx_with_reason(env: Env) -> None:
    c, h = env.client, auth(env, "t")
    assert c.post("/c/banks", headers=h, json={"name": "TAKEN"}).status_code == 201
    cases: list[tuple[Any, int, str]] = [
        ({"api": "sample", "bank": "lower"}, 400, "bank"),
        ({"api": "sample", "bank": "X", "api_json": []}, 400, "api_json"),
        ({"bank": "X"}, 400, "api"),
        ({"api": "nope", "bank": "X"}, 400, "No such exchange type"),
        ({"api": "local_file", "bank": "X", "api_json": {"filename": "a"}}, 400, "local_file"),
        ({"api": "fb_threatexchange", "bank": "X", "api_json": {}}, 400, "privacy_group"),
        ({"api": "ncmec", "bank": "X", "api_json": {"environment": "Mars"}}, 400, "Mars"),
        (
            {"api": "reclaim", "bank": "X", "api_json": {"url": "file:///etc", "bank": "B"}},
            400,
            "url",
        ),
        ({"api": "sample", "bank": "TAKEN"}, 403, "already exists"),
    ]
    for body, code, words in cases:
        r = c.post("/c/exchanges", headers=h, json=body)
        assert r.status_code == code, (body, r.text)
        assert words in r.json()["message"], (body, r.text)
    assert c.post("/c/exchanges", headers=h, content=b"[1,").status_code == 400
    r = c.post("/c/exchanges/api/ncmec", headers=h, json={"credential_json": {"user": "u"}})
    assert r.status_code == 400 and "password" in r.json()["message"]
    r = c.post("/c/exchanges/api/sample", headers=h, json={"credential_json": {"a": "b"}})
    assert r.status_code == 400 and "no credentials" in r.json()["message"]
    r = c.post("/c/exchanges/api/ncmec", headers=h, json={"credential_json": "user:pass"})
    assert r.status_code == 400
    # scopes: exchanges are curation; the feed is its own scope
    m = env.token("t", "match")
    assert c.get("/c/exchanges", headers=m).status_code == 403
    assert c.get("/c/exchanges").status_code == 401
    assert c.get("/c/bank/TAKEN/feed", headers=env.token("t", "curate")).status_code == 403


def test_credentials_are_stored_and_never_echoed(env: Env) -> None:
    c, h = env.client, auth(env, "t")
    secret = "s3cret-pass-XYZ-9"
    creds = {"credential_json": {"user": "me", "password": secret}}
    r = c.post("/c/exchanges/api/ncmec", headers=h, json=creds)
    assert r.status_code == 200 and secret not in r.text
    tid = env.store.tenant_id("t")
    assert tid is not None
    assert env.store.get_exchange_credentials(tid, "ncmec") == {"user": "me", "password": secret}
    # a tenant cannot point an exchange API elsewhere
    r = c.post(
        "/c/exchanges/api/stop_ncii",
        headers=h,
        json={
            "credential_json": {
                "fetch_function_key": "f",
                "subscription_key": "s",
                "base_url_override": "http://169.254.169.254",
            }
        },
    )
    assert r.status_code == 400 and "base_url_override" in r.json()["message"]
    create(env, h, "ncmec", "NC", {"environment": "https://report.cybertip.org/hashsharing"})
    seen = [
        c.get(p, headers=h).text
        for p in (
            "/c/exchanges/apis",
            "/c/exchanges/api/ncmec",
            "/c/exchanges/api/ncmec/schema",
            "/c/exchanges",
            "/c/exchange/NC",
            "/c/exchange/NC/status",
            "/review/audit",
        )
    ]
    assert all(secret not in text for text in seen)
    audit = c.get("/review/audit", headers=h).json()["entries"]
    assert {"exchange.credentials.set", "exchange.create"} <= {e["action"] for e in audit}


# -- fetching into the bank -------------------------------------------------------------------


def test_sample_exchange_fetches_into_its_bank(env: Env) -> None:
    from threatexchange.signal_type.pdq.signal import PdqSignal

    c, h = env.client, auth(env, "t")
    other = auth(env, "other")
    create(env, h, "sample", "SAMPLE")
    status = fetch(env, h, "SAMPLE")
    assert status["last_fetch_succeeded"] is True and status["up_to_date"] is True
    items = bank_items(env, h, "SAMPLE")
    assert status["fetched_items"] == len(items) > 10
    pdqs = {s["pdq"] for s in items.values() if "pdq" in s}
    assert pdqs == set(PdqSignal.get_examples())
    # reclaim's own types come from reclaim.pytx's examples (vpdq, md5, sha256)
    assert {t for s in items.values() for t in s} >= {"pdq", "video_md5", "sha256", "vpdq"}
    example = PdqSignal.get_examples()[0]
    assert "SAMPLE" in lookup(env, h, "pdq", example)
    assert "SAMPLE" in lookup(env, h, "pdq", flip(example, [1, 2, 3]))
    assert lookup(env, other, "pdq", example) == {}
    # fetched again: the same records, nothing replaced
    status = fetch(env, h, "SAMPLE")
    assert bank_items(env, h, "SAMPLE") == items and status["fetched_items"] == len(items)
    # another tenant sees nothing of it
    assert c.get("/c/exchange/SAMPLE", headers=other).status_code == 404
    assert c.post("/c/exchange/SAMPLE/fetch", headers=other).status_code == 404
    assert c.get("/c/exchanges", headers=other).json() == []


def test_local_file_exchange_reads_only_the_tenants_folder(
    store: PlatformStore, tmp_path: Path
) -> None:
    files = tmp_path / "exchange-files"
    (files / "tenant-a").mkdir(parents=True)
    (files / "tenant-b").mkdir()
    hashes = files / "tenant-a" / "hashes.txt"
    hashes.write_text(f"pdq {PDQ_A}\nvideo_md5 {MD5_V}\nurl https://example.org/x\n")
    (files / "tenant-b" / "theirs.txt").write_text(f"pdq {PDQ_B}\n")
    (tmp_path / "outside.txt").write_text(f"pdq {PDQ_B}\n")
    env = Env(store, exchange_files_dir=str(files))
    c, a, b = env.client, auth(env, "tenant-a"), auth(env, "tenant-b")
    assert "local_file" in c.get("/c/exchanges/apis", headers=a).json()
    for filename in (
        "../tenant-b/theirs.txt",
        str(files / "tenant-b" / "theirs.txt"),
        str(tmp_path / "outside.txt"),
        "/etc/passwd",
        "missing.txt",
    ):
        r = c.post(
            "/c/exchanges",
            headers=a,
            json={"api": "local_file", "bank": "LIST", "api_json": {"filename": filename}},
        )
        assert r.status_code == 400, (filename, r.text)
    create(env, a, "local_file", "LIST", {"filename": "hashes.txt"})
    # B cannot reach A's file either, by name or by path
    for filename in ("../tenant-a/hashes.txt", str(hashes)):
        r = c.post(
            "/c/exchanges",
            headers=b,
            json={"api": "local_file", "bank": "X", "api_json": {"filename": filename}},
        )
        assert r.status_code == 400
    status = fetch(env, a, "LIST")
    assert status["last_fetch_succeeded"] is True, status
    items = bank_items(env, a, "LIST")
    assert sorted(items.values(), key=str) == sorted(
        [{"pdq": PDQ_A}, {"video_md5": MD5_V}], key=str
    )  # the URL line: a type reclaim does not bank
    pdq_item = next(i for i, s in items.items() if "pdq" in s)
    # the file changes: one line gone, one new; the unchanged one keeps its item
    hashes.write_text(f"pdq {PDQ_A}\npdq {PDQ_B}\n")
    status = fetch(env, a, "LIST")
    after = bank_items(env, a, "LIST")
    assert sorted(after.values(), key=str) == sorted([{"pdq": PDQ_A}, {"pdq": PDQ_B}], key=str)
    assert after[pdq_item] == {"pdq": PDQ_A}
    assert lookup(env, a, "video_md5", MD5_V) == {}
    assert "LIST" in lookup(env, a, "pdq", PDQ_B)
    # the file is removed afterwards: the fetch fails with the reason, the bank stays as it was
    hashes.unlink()
    status = fetch(env, a, "LIST")
    assert status["last_fetch_succeeded"] is False and "no such file" in status["last_fetch_error"]
    assert bank_items(env, a, "LIST") == after


def graph_api(token: str, deleted_after: int = 0) -> Handler:
    """Meta's Graph API /threat_updates: two pages on a first fetch; a deletion after."""

    def update(uid: int, indicator: str, kind: str, t: int, delete: bool = False) -> Any:
        return {
            "id": str(uid),
            "indicator": indicator,
            "type": kind,
            "last_updated": t,
            "should_delete": delete,
            "descriptors": {
                "data": [
                    {
                        "id": str(uid + 100),
                        "owner": {"id": "555"},
                        "status": "MALICIOUS",
                        "tags": ["ncii"],
                        "reactions": [],
                    }
                ]
            },
        }

    def handler(req: Request) -> tuple[int, str, bytes]:
        if req.query.get("access_token") != token:
            return json_answer({"error": {"message": "Invalid OAuth access token"}}, 400)
        if req.path != "/42/threat_updates/" and req.path != "/page2":
            return json_answer({"error": {"message": "unknown path"}}, 404)
        since = int(req.query.get("start_time") or 0)
        if since >= 1700000100:  # nothing new
            return json_answer({"data": []})
        if since > 0:
            return json_answer({"data": [update(1, PDQ_A, "HASH_PDQ", 1700000100, True)]})
        if req.path == "/page2":
            return json_answer({"data": [update(2, MD5_V, "HASH_VIDEO_MD5", 1700000050)]})
        nxt = f"http://{req.headers['host']}/page2?access_token={token}"
        page = {"data": [update(1, PDQ_A, "HASH_PDQ", 1700000000)], "paging": {"next": nxt}}
        return json_answer(page)

    return handler


def test_threatexchange_against_a_local_graph_api(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = FakeAPI(graph_api(TE_TOKEN))
    # pytx would read the server's own token from here: a tenant never gets to use it
    monkeypatch.setenv("TX_ACCESS_TOKEN", TE_TOKEN)
    try:
        env.platform.settings.exchange_endpoints["fb_threatexchange"] = api.url
        c, h = env.client, auth(env, "t")
        create(env, h, "fb_threatexchange", "TE", {"privacy_group": 42})
        status = fetch(env, h, "TE")  # no credentials yet
        assert status["last_fetch_succeeded"] is False
        assert "no credentials" in status["last_fetch_error"] and api.requests == []
        wrong = "9876543210|zyxwvutsrqponmlkjihgfedcba"
        c.post(
            "/c/exchanges/api/fb_threatexchange",
            headers=h,
            json={"credential_json": {"api_token": wrong}},
        )
        status = fetch(env, h, "TE")
        assert status["last_fetch_succeeded"] is False and "HTTP 400" in status["last_fetch_error"]
        assert wrong not in status["last_fetch_error"] and "zyxw" not in json.dumps(status)
        c.post(
            "/c/exchanges/api/fb_threatexchange",
            headers=h,
            json={"credential_json": {"api_token": TE_TOKEN}},
        )
        status = fetch(env, h, "TE")
        assert status["last_fetch_succeeded"] is True and status["fetched_items"] == 2
        assert status["checkpoint_ts"] == 1700000050
        assert sorted(bank_items(env, h, "TE").values(), key=str) == sorted(
            [{"pdq": PDQ_A}, {"video_md5": MD5_V}], key=str
        )
        first = api.requests[-2]
        assert first.path == "/42/threat_updates/" and "start_time" not in first.query
        # incremental: resumes from the checkpoint and applies the deletion
        status = fetch(env, h, "TE")
        assert api.requests[-1].query["start_time"] == "1700000050"
        assert list(bank_items(env, h, "TE").values()) == [{"video_md5": MD5_V}]
        assert status["fetched_items"] == 1 and lookup(env, h, "pdq", PDQ_A) == {}
        # nothing new since: an empty page, up to date (pytx 1.2.17 alone fails on it)
        status = fetch(env, h, "TE")
        assert api.requests[-1].query["start_time"] == "1700000100"
        assert status["last_fetch_succeeded"] is True and status["up_to_date"] is True, status
    finally:
        api.close()


def ncmec_api(user: str, password: str) -> Handler:
    """NCMEC's hash sharing API (XML): an image and a video; later, the image deleted."""
    want = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    ns = 'xmlns="https://hashsharing.ncmec.org/hashsharing/v2"'

    def handler(req: Request) -> tuple[int, str, bytes]:
        if req.headers.get("authorization") != want:
            return 401, "text/plain", b"unauthorized"
        if req.path != "/v2/entries":
            return 404, "text/plain", b"no"
        first = int(req.query["from"][:4]) < 2000  # from 0 (in the local time zone)
        if first:
            body = (
                f'<queryResult {ns}><images count="1" maxTimestamp="2024-01-01T00:00:00Z">'
                '<image><id>img1</id><member id="7">ESP</member>'
                f"<classification>A1</classification><fingerprints><pdq>{PDQ_A}</pdq>"
                f"<md5>{MD5_V}</md5></fingerprints></image></images>"
                '<videos count="1" maxTimestamp="2024-01-01T00:00:00Z">'
                '<video><id>vid1</id><member id="7">ESP</member>'
                f"<fingerprints><md5>{MD5_V}</md5></fingerprints></video></videos>"
                "</queryResult>"
            )
        else:
            body = (
                f'<queryResult {ns}><images count="1" maxTimestamp="2024-02-01T00:00:00Z">'
                '<deletedImage><id>img1</id><member id="7">ESP</member></deletedImage>'
                "</images></queryResult>"
            )
        return 200, "application/xml", body.encode()

    return handler


def test_ncmec_against_a_local_hash_api(env: Env) -> None:
    password = "n-pass-4431"
    api = FakeAPI(ncmec_api("esp", password))
    try:
        env.platform.settings.exchange_endpoints["ncmec"] = api.url
        c, h = env.client, auth(env, "t")
        create(env, h, "ncmec", "NCMEC", {"environment": "https://report.cybertip.org/hashsharing"})
        c.post(
            "/c/exchanges/api/ncmec",
            headers=h,
            json={"credential_json": {"user": "esp", "password": "bad"}},
        )
        status = fetch(env, h, "NCMEC")
        assert status["last_fetch_succeeded"] is False and "HTTP 401" in status["last_fetch_error"]
        c.post(
            "/c/exchanges/api/ncmec",
            headers=h,
            json={"credential_json": {"user": "esp", "password": password}},
        )
        status = fetch(env, h, "NCMEC")
        assert status["last_fetch_succeeded"] is True, status
        # the image's PDQ (NCMEC image MD5s are not mapped by pytx) and the video's MD5
        assert sorted(bank_items(env, h, "NCMEC").values(), key=str) == sorted(
            [{"pdq": PDQ_A}, {"video_md5": MD5_V}], key=str
        )
        time.sleep(1.1)  # NCMEC's checkpoint is in whole seconds, up to now - 5 s
        status = fetch(env, h, "NCMEC")
        assert int(api.requests[-1].query["from"][:4]) > 2000
        assert list(bank_items(env, h, "NCMEC").values()) == [{"video_md5": MD5_V}]
        assert lookup(env, h, "pdq", PDQ_A) == {}
    finally:
        api.close()


def stopncii_api(delay_s: float = 0.0) -> Handler:
    """StopNCII.org's FetchHashes (JSON): two pages; a later fetch gets one more record."""

    def record(value: str, kind: str, t: int) -> dict[str, Any]:
        return {
            "lastModtimestamp": t,
            "signalType": kind,
            "hashValue": value,
            "hashStatus": "Active",
            "caseNumbers": {"c1": "Active"},
            "CSPFeedbacks": [{"feedbackValue": "Blocked", "tags": ["x"], "source": "csp"}],
        }

    def handler(req: Request) -> tuple[int, str, bytes]:
        if req.headers.get("x-functions-key") != "fetch-key":
            return json_answer({"message": "bad key"}, 401)
        if req.headers.get("ocp-apim-subscription-key") != "sub-key":
            return json_answer({"message": "bad subscription"}, 401)
        start = int(req.query["startTimestamp"])
        if start >= 2000:  # a new case; and the first one withdrawn by the person
            withdrawn = {**record(PDQ_A, "ImagePDQ", 2060), "hashStatus": "Withdrawn"}
            return json_answer(
                {
                    "count": 2,
                    "nextPageToken": None,
                    "nextSetTimestamp": 2100,
                    "hasMoreRecords": False,
                    "hashRecords": [record(PDQ_B, "ImagePDQ", 2050), withdrawn],
                }
            )
        if req.query.get("nextPageToken") == "p2":
            time.sleep(delay_s)
            return json_answer(
                {
                    "count": 1,
                    "nextPageToken": None,
                    "nextSetTimestamp": 2000,
                    "hasMoreRecords": False,
                    "hashRecords": [record(MD5_V, "VideoMD5", 1900)],
                }
            )
        return json_answer(
            {
                "count": 2,
                "nextPageToken": "p2",
                "nextSetTimestamp": 1500,
                "hasMoreRecords": True,
                "hashRecords": [record(PDQ_A, "ImagePDQ", 1000), record("x", "Text", 1000)],
            }
        )

    return handler


def test_stopncii_against_a_local_api(env: Env) -> None:
    api = FakeAPI(stopncii_api())
    try:
        env.platform.settings.exchange_endpoints["stop_ncii"] = api.url
        c, h = env.client, auth(env, "t")
        create(env, h, "stop_ncii", "STOPNCII")
        creds = {"fetch_function_key": "fetch-key", "subscription_key": "sub-key"}
        c.post("/c/exchanges/api/stop_ncii", headers=h, json={"credential_json": creds})
        status = fetch(env, h, "STOPNCII")
        assert status["last_fetch_succeeded"] is True and status["checkpoint_ts"] == 2000
        assert sorted(bank_items(env, h, "STOPNCII").values(), key=str) == sorted(
            [{"pdq": PDQ_A}, {"video_md5": MD5_V}], key=str
        )  # the Text record: not a type reclaim banks
        assert all(r.path == "/FetchHashes" for r in api.requests)
        status = fetch(env, h, "STOPNCII")
        assert api.requests[-1].query["startTimestamp"] == "2000"
        assert "STOPNCII" in lookup(env, h, "pdq", PDQ_B)
        # the withdrawn case left the bank (pytx 1.2.17 alone keeps it)
        assert lookup(env, h, "pdq", PDQ_A) == {} and status["fetched_items"] == 2
    finally:
        api.close()


def test_fetch_runs_in_the_background_with_progress(store: PlatformStore) -> None:
    """A slow exchange: the status answers at once while the fetch runs, and shows the first
    page stored before the second arrives."""
    api = FakeAPI(stopncii_api(delay_s=2.0))
    served = Served(store, exchange_endpoints={"stop_ncii": api.url})
    try:
        import httpx

        tid = store.ensure_tenant("t")
        h = {"Authorization": "Bearer " + store.create_token(tid, "x", ["curate"])}
        with httpx.Client(base_url=served.url, headers=h, timeout=30) as c:
            c.post("/c/exchanges", json={"api": "stop_ncii", "bank": "SLOW"})
            c.post(
                "/c/exchanges/api/stop_ncii",
                json={
                    "credential_json": {
                        "fetch_function_key": "fetch-key",
                        "subscription_key": "sub-key",
                    }
                },
            )
            t0 = time.monotonic()
            assert c.post("/c/exchange/SLOW/fetch").status_code == 202
            assert c.post("/c/exchange/SLOW/fetch").status_code == 409  # one at a time
            seen: list[dict[str, Any]] = []
            while time.monotonic() - t0 < 20:
                q0 = time.monotonic()
                status = c.get("/c/exchange/SLOW/status").json()
                assert time.monotonic() - q0 < 1.0
                seen.append(status)
                if status["running_fetch_start_ts"] is None:
                    break
                time.sleep(0.1)
            running = [s for s in seen if s["running_fetch_start_ts"] is not None]
            assert running and any(s["fetched_items"] == 1 for s in running), seen
            assert seen[-1]["fetched_items"] == 2 and seen[-1]["last_fetch_succeeded"] is True
    finally:
        served.close()
        api.close()


def test_periodic_fetch(store: PlatformStore) -> None:
    from fastapi.testclient import TestClient

    app = create_app(
        store,
        Settings(start_workers=True, hash_workers=1, exchange_fetch_interval_s=0.2),
    )
    tid = store.ensure_tenant("t")
    h = {"Authorization": "Bearer " + store.create_token(tid, "x", ["curate"])}
    with TestClient(app) as c:
        assert (
            c.post("/c/exchanges", headers=h, json={"api": "sample", "bank": "S"}).status_code
            == 201
        )
        deadline = time.monotonic() + 20
        while c.get("/c/exchange/S/status", headers=h).json()["last_fetch_succeeded"] is not True:
            assert time.monotonic() < deadline, "the periodic fetch did not run"
            time.sleep(0.1)
    assert app.state.platform.exchange_fetcher._stop.is_set()  # stopped with the service


# -- the reclaim exchange type and bank feeds -------------------------------------------------


def test_bank_feed_pages_removals_and_hides_metadata(env: Env) -> None:
    c, h = env.client, auth(env, "t")
    assert c.post("/c/banks", headers=h, json={"name": "NCII"}).status_code == 201
    ids = []
    for i in range(5):
        r = c.post(
            "/c/bank/NCII/signal",
            headers=h,
            json={"pdq": flip(PDQ_A, [i]), "metadata": {"content_uri": f"https://x/secret-{i}"}},
        )
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    page = c.get("/c/bank/NCII/feed", headers=h, params={"limit": 2}).json()
    assert [u["content_id"] for u in page["updates"]] == ids[:2] and page["has_more"]
    got = list(page["updates"])
    while page["has_more"]:
        page = c.get(
            "/c/bank/NCII/feed", headers=h, params={"after": page["next"], "limit": 2}
        ).json()
        got += page["updates"]
    assert [u["content_id"] for u in got] == ids
    assert all(
        u["op"] == "add" and u["signals"] == {"pdq": flip(PDQ_A, [n])} for n, u in enumerate(got)
    )
    assert "secret" not in json.dumps(got)
    mark = page["next"]
    assert c.get("/c/bank/NCII/feed", headers=h, params={"after": mark}).json()["updates"] == []
    # removed, and disabled (HMA's disable_until_ts = 0): both given as removals, once each
    assert c.delete(f"/c/bank/NCII/content/{ids[0]}", headers=h).status_code == 200
    r = c.put(f"/c/bank/NCII/content/{ids[1]}", headers=h, json={"disable_until_ts": 0})
    assert r.status_code == 200, r.text
    later = c.get("/c/bank/NCII/feed", headers=h, params={"after": mark}).json()
    assert [(u["content_id"], u["op"]) for u in later["updates"]] == [
        (ids[0], "del"),
        (ids[1], "del"),
    ]
    # another tenant's bank of the same name is not this one
    other = auth(env, "other")
    assert c.get("/c/bank/NCII/feed", headers=other).status_code == 404
    c.post("/c/banks", headers=other, json={"name": "NCII"})
    assert c.get("/c/bank/NCII/feed", headers=other).json()["updates"] == []


def test_deleting_the_bank_deletes_its_exchange(env: Env) -> None:
    c, h = env.client, auth(env, "t")
    create(env, h, "sample", "S")
    fetch(env, h, "S")
    assert c.delete("/c/bank/S", headers=h).status_code == 200
    assert c.get("/c/exchanges", headers=h).json() == []
    assert c.get("/c/exchange/S", headers=h).status_code == 404
    tid = env.store.tenant_id("t")
    assert (
        env.store._all("SELECT COUNT(*) FROM exchange_items WHERE tenant_id = ?", (tid,))[0][0] == 0
    )
    # and keeping the bank when deleting the exchange
    create(env, h, "sample", "K")
    fetch(env, h, "K")
    n = len(bank_items(env, h, "K"))
    assert c.delete("/c/exchange/K", headers=h, params={"delete_bank": "false"}).status_code == 200
    assert c.get("/c/exchanges", headers=h).json() == [] and len(bank_items(env, h, "K")) == n


def test_reclaim_exchange_pulls_another_reclaim_service(store: PlatformStore) -> None:
    served = Served(store)
    try:
        import httpx

        # the partner's bank, on the served service
        pid = store.ensure_tenant("partner")
        ph = {"Authorization": "Bearer " + store.create_token(pid, "p", ["curate"])}
        fetch_token = store.create_token(pid, "for-platform-b", ["fetch"])
        frames = [
            {"frame": i, "quality": 90, "hash": flip(PDQ_A, [i, i + 40]), "timestamp": i}
            for i in range(4)
        ]
        with httpx.Client(base_url=served.url, headers=ph, timeout=30) as pc:
            pc.post("/c/banks", json={"name": "SHARED_NCII"})
            ids = [
                pc.post("/c/bank/SHARED_NCII/signal", json=sig).json()["id"]
                for sig in (
                    {"pdq": PDQ_A, "md5": hashlib.md5(b"p").hexdigest()},
                    {"vpdq": json.dumps(frames)},
                    {"video_md5": MD5_V, "sha256": hashlib.sha256(b"v").hexdigest()},
                )
            ]
        # platform B pulls it through the served service (loopback allowed there)
        bid = store.ensure_tenant("platform-b")
        bh = {"Authorization": "Bearer " + store.create_token(bid, "b", ["curate", "match"])}
        with httpx.Client(base_url=served.url, headers=bh, timeout=30) as bc:
            r = bc.post(
                "/c/exchanges",
                json={
                    "api": "reclaim",
                    "bank": "FROM_PARTNER",
                    "api_json": {"url": served.url, "bank": "SHARED_NCII"},
                },
            )
            assert r.status_code == 201, r.text
            bc.post(
                "/c/exchanges/api/reclaim", json={"credential_json": {"api_token": fetch_token}}
            )

            def pull() -> dict[str, Any]:
                assert bc.post("/c/exchange/FROM_PARTNER/fetch").status_code == 202
                served.app.state.platform.exchange_fetcher.wait(60)
                out: dict[str, Any] = bc.get("/c/exchange/FROM_PARTNER/status").json()
                return out

            status = pull()
            assert status["last_fetch_succeeded"] is True and status["fetched_items"] == 3, status
            items = bc.get("/c/bank/FROM_PARTNER/export").json()["items"]
            assert {st for i in items for st in i["signals"]} == {
                "pdq",
                "md5",
                "vpdq",
                "video_md5",
                "sha256",
            }
            r = bc.get("/m/lookup", params={"signal_type": "pdq", "signal": flip(PDQ_A, [9])})
            assert "FROM_PARTNER" in r.json()
            # the partner removes an item: the next pull removes it too
            with httpx.Client(base_url=served.url, headers=ph) as pc:
                assert pc.delete(f"/c/bank/SHARED_NCII/content/{ids[0]}").status_code == 200
            status = pull()
            assert status["fetched_items"] == 2
            r = bc.get("/m/lookup", params={"signal_type": "pdq", "signal": PDQ_A})
            assert r.json() == {}
            # a token without the fetch scope: refused, and said so
            bc.post("/c/exchanges/api/reclaim", json={"credential_json": {"api_token": "rcl_nope"}})
            status = pull()
            assert (
                status["last_fetch_succeeded"] is False and "refused" in status["last_fetch_error"]
            )
    finally:
        served.close()
    # a service that may reach only public addresses does not fetch from loopback
    env = Env(store, allow_private_addresses=False)
    h = auth(env, "platform-c")
    create(env, h, "reclaim", "LOOP", {"url": "http://127.0.0.1:9", "bank": "X"})
    env.client.post(
        "/c/exchanges/api/reclaim", headers=h, json={"credential_json": {"api_token": "t"}}
    )
    status = fetch(env, h, "LOOP")
    assert status["last_fetch_succeeded"] is False and "loopback" in status["last_fetch_error"], (
        status
    )


# -- the store ----------------------------------------------------------------------------------


def test_fetch_claims_are_exclusive_until_stale(store: PlatformStore) -> None:
    a = store.create_tenant("a")
    ex = store.create_exchange(a, "X", "sample", {"name": "X", "api": "sample", "enabled": True})
    assert store.claim_exchange_fetch(a, ex.id, 3600)
    assert not store.claim_exchange_fetch(a, ex.id, 3600)  # another process, same exchange
    assert store.claim_exchange_fetch(a, ex.id, -1)  # a claim older than that: taken over
    b = store.create_tenant("b")
    assert not store.claim_exchange_fetch(b, ex.id, -1)  # not b's
    with pytest.raises(store_mod.Conflict):
        store.create_exchange(a, "X", "sample", {})


def test_migration_logs_content_banked_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Content banked before migration 6 is in the feed (logged as added by the migration)."""
    db = tmp_path / "old.db"
    monkeypatch.setattr(base, "LATEST", 5)
    old = SqlitePlatformStore(db)
    assert old.migrate() == 5
    t = old.create_tenant("t")
    ids = []
    with old.tx() as cur:  # written as version 5 wrote them (later versions add columns)
        old._q(cur, "INSERT INTO banks (tenant_id, name, created_at) VALUES (?, 'OLD', 0)", (t,))
        bank_id = old._q(cur, "SELECT MAX(id) FROM banks").fetchone()[0]
        for value in (PDQ_A, PDQ_B):
            old._q(
                cur,
                "INSERT INTO contents (bank_id, tenant_id, metadata, created_at) "
                "VALUES (?, ?, '{}', 0)",
                (bank_id, t),
            )
            ids.append(old._q(cur, "SELECT MAX(id) FROM contents").fetchone()[0])
            old._q(
                cur,
                "INSERT INTO signals (content_id, bank_id, tenant_id, signal_type, value) "
                "VALUES (?, ?, ?, 'pdq', ?)",
                (ids[-1], bank_id, t, value),
            )
    old.close()
    monkeypatch.undo()
    new = SqlitePlatformStore(db)
    new.migrate()
    bank = new.get_bank(t, "OLD")
    assert bank is not None
    assert [e.content_id for e in new.bank_feed(t, bank.id, 0, 10)] == ids
    (added,) = new.add_contents(t, bank, [([("pdq", flip(PDQ_A, [5]), None)], {})])
    assert [(e.content_id, e.op) for e in new.bank_feed(t, bank.id, 2, 10)] == [(added, "add")]
    new.close()


def test_upload_then_feed_keeps_reclaim_hashes(env: Env) -> None:
    """A photo banked by upload comes out of the feed with the hashes reclaim computed."""
    c, h = env.client, auth(env, "t")
    c.post("/c/banks", headers=h, json={"name": "UP"})
    data = photo(5)
    r = c.post("/c/bank/UP/content", headers=h, **upload(data))
    assert r.status_code == 200, r.text
    feed = c.get("/c/bank/UP/feed", headers=h).json()["updates"]
    assert feed[0]["signals"]["pdq"] == r.json()["signals"]["pdq"]
