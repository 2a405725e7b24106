"""HMA compatibility of the platform API (issue 23), in process, on SQLite and PostgreSQL: HMA's
object shapes with reclaim's extras behind ``include_reclaim=true``, ``/status`` and the schema
where HMA has them, ``/m/compare``, ``/m/lookup?url=``, content metadata and notes with HMA's
validation, ``PUT`` of a content item (``disable_until_ts``, ``note``), ``include_signals`` and
``include_metadata``. ``tests/test_hma_peer.py`` runs Meta's own suite against a real service."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reclaim import __version__
from reclaim.platform.store import PlatformStore
from tests.test_api_platform import Env, flip, make_store, pdq_of, photo, upload

HMA_BANK = {"name": "B", "matching_enabled_ratio": 1.0}
RECLAIM = {"include_reclaim": "true"}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PlatformStore]:
    yield from make_store(request.param, tmp_path)


@pytest.fixture
def env(store: PlatformStore) -> Env:
    return Env(store, allow_url_fetch=True)


@pytest.fixture
def files(tmp_path: Path) -> Iterator[str]:
    """A local web server of ``tmp_path/www`` (the service's ``?url=`` fetches)."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "a.png").write_bytes(photo(7))
    (www / "b.png").write_bytes(photo(8))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def bank(env: Env, h: dict[str, str], name: str = "B") -> None:
    assert env.client.post("/c/banks", headers=h, json={"name": name}).status_code == 201


def test_bank_objects_are_hmas_with_reclaims_keys_on_request(env: Env) -> None:
    h, c = env.all_scopes("a"), env.client
    r = c.post("/c/banks", headers=h, json={"name": "B", "pdq_distance": 20})
    assert r.status_code == 201 and r.json() == HMA_BANK  # before: with "pdq_distance"
    assert c.get("/c/banks", headers=h).json() == [HMA_BANK]
    assert c.get("/c/bank/B", headers=h).json() == HMA_BANK
    r = c.put("/c/bank/B", headers=h, json={"enabled_ratio": 0.5, "pdq_distance": 12})
    assert r.json() == {"name": "B", "matching_enabled_ratio": 0.5}
    with_extras = {
        "name": "B",
        "matching_enabled_ratio": 0.5,
        "pdq_distance": 12,
        "pdq_flavour": "pytx",
    }
    assert c.get("/c/banks", headers=h, params=RECLAIM).json() == [with_extras]
    assert c.get("/c/bank/B", headers=h, params=RECLAIM).json() == {
        **with_extras,
        "content_count": 0,
    }
    r = c.post("/c/banks", headers=h, params=RECLAIM, json={"name": "C"})
    assert r.json() == {
        "name": "C",
        "matching_enabled_ratio": 1.0,
        "pdq_distance": 31,
        "pdq_flavour": "pytx",
    }
    r = c.put("/c/bank/C", headers=h, params=RECLAIM, json={"pdq_distance": 3})
    assert r.json()["pdq_distance"] == 3
    # the export (reclaim's, re-importable) keeps the bank's settings
    assert c.get("/c/bank/B/export", headers=h).json()["bank"] == with_extras


def test_status_live_schema_and_site_map(env: Env) -> None:
    c = env.client
    for path in ("/status", "/status/live"):
        r = c.get(path)  # no token, as HMA
        assert r.status_code == 200 and r.content == b"I-AM-ALIVE"  # before: JSON / 404
        assert r.headers["content-type"].startswith("text/plain")
        assert r.headers["X-Reclaim-Version"] == __version__
    hma = c.get("/openapi/openapi.json").json()
    own = c.get("/openapi.json").json()
    assert hma["info"]["title"] == "Open Media Match API"
    assert hma["info"]["x-implementation"] == {"name": "reclaim", "version": __version__}
    assert own["info"]["title"] == "reclaim platform service"
    assert hma["paths"] == own["paths"]
    assert "/m/compare" in hma["paths"]
    paths = c.get("/site-map").json()
    assert {"/m/compare", "/status/live", "/c/bank/{bank_name}/content/{content_id}"} <= set(paths)
    assert paths == sorted(paths)


def test_compare(env: Env) -> None:
    h, c = env.all_scopes("a"), env.client
    a = "facd8bcb2a49bcebdec1985298d5fe84bcd006c187c598c720c3c087b3fdb318"
    r = c.post("/m/compare", headers=h, json={"pdq": [a, flip(a, list(range(0, 160, 5)))]})
    assert r.status_code == 200, r.text  # before: 404
    assert r.json() == {"pdq": [False, {"distance": 32}]}
    md5 = hashlib.md5(b"x").hexdigest()
    r = c.post("/m/compare", headers=h, json={"video_md5": [md5, md5.upper()], "pdq": [a, a]})
    assert r.json() == {"video_md5": [True, {}], "pdq": [True, {"distance": 0}]}
    frames = [{"frame": i, "quality": 90, "hash": flip(a, [i]), "timestamp": i} for i in range(4)]
    r = c.post("/m/compare", headers=h, json={"vpdq": [json.dumps(frames), json.dumps(frames)]})
    assert r.json() == {
        "vpdq": [True, {"query_match_percent": 100.0, "compared_match_percent": 100.0}]
    }
    assert c.post("/m/compare", headers=h, json={}).json() == {}
    for bad in (
        ["banana"],
        {"pdq": "banana"},
        {"pdq": []},
        {"pdq": ["banana", "banana"]},
        {"pdq": [a, a, a]},
        {"pdq": [a, 5]},
        {"no_such_type": [a, a]},
    ):
        r = c.post("/m/compare", headers=h, json=bad)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["message"]
    assert c.post("/m/compare", json={"pdq": [a, a]}).status_code == 401  # a token is needed


def test_content_keeps_hmas_signal_types_unless_types_says(env: Env) -> None:
    h, c = env.all_scopes("a"), env.client
    bank(env, h)
    data = photo(9)
    r = c.post("/c/bank/B/content", headers=h, **upload(data))
    assert r.status_code == 200, r.text
    assert set(r.json()["signals"]) == {"pdq"}  # before: pdq, md5 and sha256
    md5 = hashlib.md5(data).hexdigest()
    raw = {"signal": md5, "signal_type": "md5"}
    assert c.get("/m/raw_lookup", headers=h, params=raw).json() == {"matches": []}
    r = c.post("/c/bank/B/content", headers=h, params={"types": "pdq,md5"}, **upload(data))
    assert r.json()["signals"] == {"pdq": pdq_of(data)[0], "md5": md5}
    assert c.get("/m/raw_lookup", headers=h, params=raw).json() == {"matches": [r.json()["id"]]}
    r = c.post("/c/bank/B/content", headers=h, params={"types": "vpdq"}, **upload(data))
    assert r.status_code == 400 and "vpdq" in r.json()["message"], r.text
    r = c.post("/c/bank/B/content", headers=h, params={"content_type": "text"}, **upload(data))
    assert r.status_code == 400, r.text
    # /h/hash still gives everything, or what types= names
    assert set(c.post("/h/hash", headers=h, **upload(data)).json()) == {"pdq", "md5", "sha256"}
    r = c.post("/h/hash", headers=h, params={"types": "md5"}, **upload(data))
    assert r.json() == {"md5": md5}


def test_content_metadata_and_note_as_hma(env: Env, files: str) -> None:
    h, c = env.all_scopes("a"), env.client
    bank(env, h)
    url = f"/c/bank/B/content?url={files}/a.png&content_type=photo"
    meta = {"content_id": "ext-1", "content_uri": "https://example.org/1", "json": {"k": [1]}}
    # with ?url=, the JSON body's metadata and note (before: ignored)
    r = c.post(url, headers=h, json={"metadata": meta, "note": "reported by X"})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"id", "signals"} and set(r.json()["signals"]) == {"pdq"}
    cid = r.json()["id"]
    got = c.get(f"/c/bank/B/content/{cid}", headers=h).json()
    assert got == {
        "id": cid,
        "disable_until_ts": 1,
        "original_media_uri": None,
        "bank": HMA_BANK,
        "metadata": meta,
        "note": "reported by X",
    }
    got = c.get(f"/c/bank/B/content/{cid}", headers=h, params={"include_metadata": "false"})
    assert "metadata" not in got.json() and got.json()["note"] == "reported by X"
    got = c.get(f"/c/bank/B/content/{cid}", headers=h, params={"include_signals": "true"})
    assert got.json()["signals"] == {"pdq": r.json()["signals"]["pdq"]}
    got = c.get(f"/c/bank/B/content/{cid}", headers=h, params={**RECLAIM, "include_signals": 1})
    assert got.json()["bank"]["pdq_distance"] == 31 and got.json()["created_at"] > 0
    assert set(got.json()["quality"]) == {"pdq"}
    # refused as HMA refuses them, nothing banked
    for body in (
        {"metadata": {"invalid_metadata": 5}},
        {"metadata": {"content_id": 1197433091}},
        {"metadata": {"json": "not an object"}},
        {"metadata": {"collab": {"X": "not a list"}}},
        {"metadata": [1]},
        {"note": "x" * 256},
        {"note": 5},
    ):
        r = c.post(url, headers=h, json=body)
        assert r.status_code == 400, (body, r.text)
    # a file upload takes the same as form fields (a reclaim extension of HMA's upload)
    form = {"metadata": json.dumps({"content_id": "f-2"}), "note": "by upload"}
    r = c.post("/c/bank/B/content", headers=h, data=form, **upload(photo(10)))
    got = c.get(f"/c/bank/B/content/{r.json()['id']}", headers=h).json()
    assert got["metadata"] == {"content_id": "f-2"} and got["note"] == "by upload"
    form = {"metadata": json.dumps({"other": 1})}
    r = c.post("/c/bank/B/content", headers=h, data=form, **upload(photo(10)))
    assert r.status_code == 400 and "unexpected keys: other" in r.json()["message"]
    # hashes with a note (before: 400, "note" is not a signal type); no metadata, no note keys
    r = c.post("/c/bank/B/signal", headers=h, json={"pdq": "0" * 64, "note": "campaign ABC"})
    assert r.status_code == 200, r.text
    assert r.json()["signals"] == {"pdq": "0" * 64}
    got = c.get(f"/c/bank/B/content/{r.json()['id']}", headers=h).json()
    assert got["note"] == "campaign ABC" and "metadata" not in got
    r = c.post("/c/bank/B/signal", headers=h, json={"pdq": "1" * 64})
    got = c.get(f"/c/bank/B/content/{r.json()['id']}", headers=h).json()
    assert "note" not in got and "metadata" not in got and "signals" not in got
    assert c.get("/c/bank/B", headers=h, params=RECLAIM).json()["content_count"] == 4


def test_update_content_disables_and_notes(env: Env) -> None:
    h, c = env.all_scopes("a"), env.client
    bank(env, h)
    data = photo(11)
    pdq = pdq_of(data)[0]
    cid = c.post("/c/bank/B/signal", headers=h, json={"pdq": pdq}).json()["id"]
    q = {"signal": pdq, "signal_type": "pdq"}
    hit = {"B": [{"bank_content_id": cid, "distance": "0"}]}
    assert c.get("/m/lookup", headers=h, params=q).json() == hit

    def put(body: Any) -> Any:
        return c.put(f"/c/bank/B/content/{cid}", headers=h, json=body)

    in_a_year = int(time.time()) + 365 * 86400
    r = put({"disable_until_ts": in_a_year})
    assert r.status_code == 200, r.text  # before: 405
    assert r.json()["disable_until_ts"] == in_a_year and r.json()["bank"] == HMA_BANK
    # /m/lookup (hash and file) leaves disabled content out, /m/raw_lookup does not (HMA)
    assert c.get("/m/lookup", headers=h, params=q).json() == {}
    file_lookup = c.post("/m/lookup", headers=h, params={"review": "false"}, **upload(data))
    assert file_lookup.json()["pdq"] == {}
    assert c.get("/m/raw_lookup", headers=h, params=q).json() == {"matches": [cid]}
    assert put({"disable_until_ts": 1}).status_code == 200
    assert c.get("/m/lookup", headers=h, params=q).json() == hit
    assert put({"disable_until_ts": "0"}).json()["disable_until_ts"] == 0  # 0: disabled
    assert c.get("/m/lookup", headers=h, params=q).json() == {}
    assert put({"disable_until_ts": int(time.time()) - 10}).status_code == 200  # in the past
    assert c.get("/m/lookup", headers=h, params=q).json() == hit
    for bad in (9_999_999_999, -1, True, "soon", 1.5):
        r = put({"disable_until_ts": bad})
        assert r.status_code == 400, (bad, r.text)
    # notes: set, change, remove ("" or null); too long is refused
    assert put({"note": "first"}).json()["note"] == "first"
    assert c.get(f"/c/bank/B/content/{cid}", headers=h).json()["note"] == "first"
    assert put({"note": "second"}).json()["note"] == "second"
    assert "note" not in put({"note": ""}).json()
    assert put({"note": "third"}).json()["note"] == "third"
    assert "note" not in put({"note": None}).json()
    assert put({"note": "y" * 256}).status_code == 400
    # another bank's item: 404, unchanged, the attempt audited
    bank(env, h, "OTHER")
    r = c.put(f"/c/bank/OTHER/content/{cid}", headers=h, json={"note": "moved?"})
    assert r.status_code == 404
    assert "note" not in c.get(f"/c/bank/B/content/{cid}", headers=h).json()
    actions = [e["action"] for e in c.get("/review/audit", headers=h).json()["entries"]]
    assert "content.update" in actions and "content.update.not_found" in actions


def test_lookup_by_url(env: Env, files: str) -> None:
    h, c = env.all_scopes("a"), env.client
    bank(env, h)
    cid = c.post(f"/c/bank/B/content?url={files}/a.png", headers=h).json()["id"]
    r = c.get("/m/lookup", headers=h, params={"url": f"{files}/a.png"})
    assert r.status_code == 200, r.text  # before: 422 (signal and signal_type required)
    body = r.json()
    assert body["pdq"] == {"B": [{"bank_content_id": cid, "distance": "0"}]}
    assert set(body) == {"pdq", "md5", "sha256"}
    assert "X-Reclaim-Review-Item" in r.headers  # a match is queued for review, as a file is
    r = c.get(
        "/m/lookup",
        headers=h,
        params={"url": f"{files}/a.png", "signal_type": "pdq", "review": "false"},
    )
    assert r.json() == {"B": [{"bank_content_id": cid, "distance": "0"}]}
    assert "X-Reclaim-Review-Item" not in r.headers
    r = c.get("/m/lookup", headers=h, params={"url": f"{files}/b.png", "types": "pdq"})
    assert r.json() == {"pdq": {}}
    r = c.get("/m/lookup", headers=h)
    assert r.status_code == 400 and "url" in r.json()["message"]
    # a server that does not fetch URLs says so
    no_fetch = Env(env.store)
    h2 = no_fetch.all_scopes("b")
    r = no_fetch.client.get("/m/lookup", headers=h2, params={"url": f"{files}/a.png"})
    assert r.status_code == 403, r.text


def test_index_status_for_one_signal_type(env: Env) -> None:
    h, c = env.all_scopes("a"), env.client
    bank(env, h)
    c.post("/c/bank/B/signal", headers=h, json={"pdq": "ab" * 32})
    r = c.get("/m/index/status", headers=h, params={"signal_type": "pdq"})
    assert set(r.json()) == {"pdq"} and r.json()["pdq"]["size"] == 1
    r = c.get("/m/index/status", headers=h, params={"signal_type": "nope"})
    assert r.status_code == 400
