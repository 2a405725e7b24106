"""The platform hashes uploads the way its banks were hashed (issue 23, PDQ flavours), on SQLite
and PostgreSQL.

A bank's ``pdq_flavour`` (``pytx`` by default, ``reference``; reclaim's key, behind
``include_reclaim=true``) and a row's own (``json.pdq_flavour`` of a ``reclaim protect`` CSV:
``reference``, ``pytx``, ``both``) decide how an upload is hashed to match them: every flavour
the tenant's banks use, in one call to the decoding pool, each hit kept only in its flavour.
``/h/hash`` answers pytx's PDQ, as HMA's does. The photos here are generated (no shared data):
photo-like fields of 1600x1200 px, where the two flavours differ by several bits.
"""

from __future__ import annotations

import csv
import functools
import http.server
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from reclaim.analysis import analyze_bytes
from reclaim.hashes.pdq import PDQ_MATCH_DISTANCE, PdqHash, pdq_for
from reclaim.media import MediaLimits
from reclaim.platform.matcher import Matcher
from reclaim.platform.migrations import LATEST, MIGRATIONS
from reclaim.platform.store import PlatformStore
from reclaim.platform.uploads import hash_upload_in_worker
from reclaim.protect import protect_rows, rows_to_csv
from tests.test_api_platform import Env, flip, make_store, photo, upload
from tests.test_api_store import make_store_bare

RECLAIM = {"include_reclaim": "true"}
NO_REVIEW = {"review": "false"}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PlatformStore]:
    yield from make_store(request.param, tmp_path)


class CountingPool:
    """The platform's real decoding pool, counting the uploads hashed and their flavours."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.flavours: list[tuple[str, ...]] = []

    async def run(self, fn: Any, args: tuple[Any, ...], timeout_s: float) -> Any:
        if fn is hash_upload_in_worker:
            self.flavours.append(tuple(args[3]))
        return await self.inner.run(fn, args, timeout_s)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def env(store: PlatformStore) -> Iterator[Env]:
    e = Env(store, max_upload_bytes=8_000_000)
    e.platform.decoders = CountingPool(e.platform.decoders)
    yield e


def pool(env: Env) -> CountingPool:
    p = env.platform.decoders
    assert isinstance(p, CountingPool)
    return p


# -- photos ---------------------------------------------------------------------------------------


@functools.cache
def large_photo(seed: int, w: int = 1600, h: int = 1200) -> Image.Image:
    """A photo-like field (detail at four scales, grain): larger than 512 px, where PDQ's
    ``reference`` flavour (512 px thumbnail first) and ``pytx`` (the full image) differ."""
    rng = np.random.default_rng(seed)
    acc = np.full((h, w, 3), 128.0, np.float32)
    for cells, amp in ((6, 90), (24, 50), (96, 35), (400, 25)):
        small = rng.normal(0, 1, (max(2, cells * h // w), cells, 3))
        grid = ((small - small.min()) / np.ptp(small) * 255).astype(np.uint8)
        im = Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC)
        acc += (np.asarray(im, np.float32) - 128) * amp / 128
    acc += rng.normal(0, 6, acc.shape)
    return Image.fromarray(np.clip(acc, 0, 255).astype(np.uint8))


def jpeg(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def original(seed: int) -> bytes:
    return jpeg(large_photo(seed), 92)


def rotated(seed: int) -> bytes:
    """An edited copy: rotated 1 degree, saved again at JPEG quality 60."""
    return jpeg(large_photo(seed).rotate(1, resample=Image.Resampling.BICUBIC), 60)


def recompressed(seed: int) -> bytes:
    return jpeg(large_photo(seed), 60)


def pdq(data: bytes, flavour: str) -> str:
    return str(pdq_for(data, flavour)[0])


def dist(a: str, b: str) -> int:
    return PdqHash.from_hex(a) - PdqHash.from_hex(b)


def bank(env: Env, h: dict[str, str], name: str, **extra: Any) -> dict[str, Any]:
    r = env.client.post("/c/banks", headers=h, params=RECLAIM, json={"name": name, **extra})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def add_hash(env: Env, h: dict[str, str], bank_name: str, value: str, **meta: Any) -> int:
    body: dict[str, Any] = {"pdq": value}
    if meta:
        body["metadata"] = {"json": meta}
    r = env.client.post(f"/c/bank/{bank_name}/signal", headers=h, json=body)
    assert r.status_code == 200, r.text
    cid: int = r.json()["id"]
    return cid


def lookup(env: Env, h: dict[str, str], data: bytes) -> dict[str, Any]:
    r = env.client.post("/m/lookup", headers=h, params=NO_REVIEW, **upload(data))
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()["pdq"]
    return found


# -- matching uploads ----------------------------------------------------------------------------


SEEDS = range(6)


def test_pytx_bank_matches_edits_the_reference_flavour_misses(env: Env) -> None:
    """HMA's hashes (pytx flavour) of large photos; uploads of edited copies (rotated 1 degree,
    JPEG 60). Hashed in pytx, as the bank, each is closer than in reference, and some cross the
    31-bit threshold only in the wrong flavour. Before: every upload was hashed in reference,
    and those were missed."""
    h = env.all_scopes("a")
    made = bank(env, h, "FROM_HMA")
    assert made["pdq_flavour"] == "pytx"  # the default: hashes made by HMA/pytx
    banked = {s: pdq(original(s), "pytx") for s in SEEDS}
    ids = {s: add_hash(env, h, "FROM_HMA", banked[s]) for s in SEEDS}
    right = {s: dist(pdq(rotated(s), "pytx"), banked[s]) for s in SEEDS}
    wrong = {s: dist(pdq(rotated(s), "reference"), banked[s]) for s in SEEDS}
    assert sum(right.values()) < sum(wrong.values()), (right, wrong)
    crossing = [s for s in SEEDS if right[s] <= PDQ_MATCH_DISTANCE < wrong[s]]
    assert crossing, (right, wrong)  # the case this test is about is among its photos

    for s in SEEDS:
        found = lookup(env, h, rotated(s))
        if right[s] <= PDQ_MATCH_DISTANCE:
            assert found == {
                "FROM_HMA": [{"bank_content_id": ids[s], "distance": str(right[s])}]
            }, (s, right[s], wrong[s])
        else:
            assert found == {}, s
    # one pool call per upload, one PDQ each: the tenant's banks use one flavour
    assert pool(env).flavours == [("pytx",)] * len(SEEDS)


def test_reference_bank_keeps_matching_as_before(env: Env) -> None:
    """A bank set to reference (hashes made by reclaim scans or Meta's reference hasher): its
    uploads are hashed in reference, as every upload was before, at the same distances."""
    h = env.all_scopes("a")
    assert bank(env, h, "FROM_SCANS", pdq_flavour="reference")["pdq_flavour"] == "reference"
    seeds = (0, 1)
    ids = {s: add_hash(env, h, "FROM_SCANS", pdq(original(s), "reference")) for s in seeds}
    for s in seeds:
        want = dist(pdq(recompressed(s), "reference"), pdq(original(s), "reference"))
        other = dist(pdq(recompressed(s), "pytx"), pdq(original(s), "reference"))
        assert want < other  # so the distance says which flavour the upload was hashed in
        found = lookup(env, h, recompressed(s))
        assert found == {"FROM_SCANS": [{"bank_content_id": ids[s], "distance": str(want)}]}
    assert pool(env).flavours == [("reference",)] * len(seeds)


def test_a_tenant_with_both_flavours_hashes_each_upload_once_in_both(env: Env) -> None:
    """A pytx bank and a reference bank: one pool call computes both PDQs, and each bank is
    matched in its own flavour (the same file: 0 bits from each bank's hash). Before, the pytx
    bank's hit was ~8 bits away (the reference hash against a pytx one)."""
    h = env.all_scopes("a")
    bank(env, h, "PYTX_BANK")
    bank(env, h, "REF_BANK", pdq_flavour="reference")
    data = original(2)
    p_id = add_hash(env, h, "PYTX_BANK", pdq(data, "pytx"))
    r_id = add_hash(env, h, "REF_BANK", pdq(data, "reference"))
    assert dist(pdq(data, "pytx"), pdq(data, "reference")) > 0
    assert lookup(env, h, data) == {
        "PYTX_BANK": [{"bank_content_id": p_id, "distance": "0"}],
        "REF_BANK": [{"bank_content_id": r_id, "distance": "0"}],
    }
    assert pool(env).flavours == [("pytx", "reference")]
    # banks= narrows the flavours computed to those banks'
    r = env.client.post(
        "/m/lookup", headers=h, params={**NO_REVIEW, "banks": "REF_BANK"}, **upload(data)
    )
    assert r.json()["pdq"] == {"REF_BANK": [{"bank_content_id": r_id, "distance": "0"}]}
    assert pool(env).flavours[-1] == ("reference",)
    # changing a bank's flavour changes how uploads are hashed for it (from then on)
    r = env.client.put("/c/bank/REF_BANK", headers=h, json={"pdq_flavour": "pytx"})
    assert r.status_code == 200 and "pdq_flavour" not in r.json()  # HMA's object
    found = lookup(env, h, data)
    assert found["PYTX_BANK"] == [{"bank_content_id": p_id, "distance": "0"}]
    assert found["REF_BANK"][0]["distance"] == str(dist(pdq(data, "pytx"), pdq(data, "reference")))
    assert pool(env).flavours[-1] == ("pytx",)


def test_lookup_by_url_hashes_in_the_banks_flavour(store: PlatformStore, tmp_path: Path) -> None:
    """``GET /m/lookup?url=``: the fetched file is hashed as an upload is."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "edit.jpg").write_bytes(recompressed(4))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = Env(store, allow_url_fetch=True, max_upload_bytes=8_000_000)
        h = env.all_scopes("a")
        bank(env, h, "FROM_HMA")
        banked = pdq(original(4), "pytx")
        cid = add_hash(env, h, "FROM_HMA", banked)
        url = f"http://127.0.0.1:{server.server_address[1]}/edit.jpg"
        r = env.client.get("/m/lookup", headers=h, params={"url": url, **NO_REVIEW})
        assert r.status_code == 200, r.text
        want = dist(pdq(recompressed(4), "pytx"), banked)
        assert want < dist(pdq(recompressed(4), "reference"), banked)
        assert r.json()["pdq"] == {"FROM_HMA": [{"bank_content_id": cid, "distance": str(want)}]}
    finally:
        server.shutdown()


# -- reclaim protect's CSV ----------------------------------------------------------------------


def protect_csv(*photos: bytes) -> str:
    """The CSV ``reclaim protect`` writes for these photos (both flavours, its default)."""
    rows = []
    for data in photos:
        item = analyze_bytes(data, MediaLimits())
        by_flavour = {f: pdq_for(data, f) for f in ("reference", "pytx")}
        flavours = {f: (str(v), q) for f, (v, q) in by_flavour.items()}
        rows.extend(protect_rows(item, "2026-01-01T00:00:00Z", dict(flavours)))
    return rows_to_csv(rows)


def test_protect_csv_rows_match_in_their_own_flavour(env: Env) -> None:
    """A protect CSV in a reference bank: a large photo's two rows (reference, pytx) each match
    the original in their own flavour (0 bits; before, the pytx row was ~8 bits away); a small
    photo's single ``both`` row matches either way."""
    h = env.all_scopes("a")
    bank(env, h, "NCII", pdq_flavour="reference")
    big, small = original(5), photo(3)
    text = protect_csv(big, small)
    rows = list(csv.DictReader(io.StringIO(text)))  # every shared signal: an md5 row each too
    labels = [r["pdq_flavour"] for r in rows if r["signal_type"] == "pdq"]
    assert labels == ["reference", "pytx", "both"]
    r = env.client.post(
        "/c/bank/NCII/import", headers={**h, "Content-Type": "text/csv"}, content=text
    )
    assert r.status_code == 200, r.text
    by_row = dict(zip(range(len(rows)), r.json()["ids"], strict=True))
    ref_id, pytx_id, both_id = (
        by_row[i] for i, row in enumerate(rows) if row["signal_type"] == "pdq"
    )
    shown = env.client.get(f"/c/bank/NCII/content/{pytx_id}", headers=h, params=RECLAIM).json()
    assert shown["pdq_flavour"] == "pytx" and shown["metadata"]["json"]["pdq_flavour"] == "pytx"

    found = lookup(env, h, big)
    assert sorted((m["bank_content_id"], m["distance"]) for m in found["NCII"]) == [
        (ref_id, "0"),
        (pytx_id, "0"),
    ]
    assert pool(env).flavours[-1] == ("pytx", "reference")  # the pytx row needs pytx
    assert lookup(env, h, small) == {"NCII": [{"bank_content_id": both_id, "distance": "0"}]}

    # a bank holding only `both` rows needs no flavour of its own: one PDQ, which matches
    env2 = env.all_scopes("b")
    bank(env, env2, "ONLY_BOTH", pdq_flavour="reference")
    only = "signal_type,signal,pdq_flavour\r\npdq,{},both\r\n".format(pdq(big, "pytx"))
    r = env.client.post(
        "/c/bank/ONLY_BOTH/import", headers={**env2, "Content-Type": "text/csv"}, content=only
    )
    assert r.status_code == 200, r.text
    assert lookup(env, env2, big)["ONLY_BOTH"][0]["distance"] == "0"
    assert pool(env).flavours[-1] == ("pytx",)


def test_a_rows_flavour_decides_which_hash_may_match_it(env: Env) -> None:
    """A hit counts only in its row's flavour: a row labelled reference that holds the upload's
    pytx hash is not matched by that hash (0 bits) but by the reference one (the bits the
    flavours differ by); labelled both, any hash computed matches it."""
    h = env.all_scopes("a")
    bank(env, h, "B")
    data = original(1)
    gap = dist(pdq(data, "pytx"), pdq(data, "reference"))
    assert 0 < gap <= PDQ_MATCH_DISTANCE
    labelled_ref = add_hash(env, h, "B", pdq(data, "pytx"), pdq_flavour="reference")
    labelled_both = add_hash(env, h, "B", pdq(data, "pytx"), pdq_flavour="both")
    # rows with a flavour of their own only: reference is the one flavour needed (`both` takes
    # whichever is computed), and the `both` row meets the reference hash
    found = {m["bank_content_id"]: m["distance"] for m in lookup(env, h, data)["B"]}
    assert found == {labelled_ref: str(gap), labelled_both: str(gap)}
    assert pool(env).flavours[-1] == ("reference",)
    # a row following the bank (pytx) too: both flavours computed, each row met in its own
    add_hash(env, h, "B", pdq(original(2), "pytx"))
    found = {m["bank_content_id"]: m["distance"] for m in lookup(env, h, data)["B"]}
    assert found == {labelled_ref: str(gap), labelled_both: "0"}
    assert pool(env).flavours[-1] == ("pytx", "reference")
    # hashes looked up as such (HMA's raw_lookup / lookup?signal=): no flavour, every row
    r = env.client.get(
        "/m/raw_lookup",
        headers=h,
        params={"signal_type": "pdq", "signal": pdq(data, "pytx"), "include_distance": "true"},
    )
    assert sorted(m["bank_content_id"] for m in r.json()["matches"]) == [
        labelled_ref,
        labelled_both,
    ]


def test_unknown_row_flavours_are_refused_with_nothing_imported(env: Env) -> None:
    h = env.all_scopes("a")
    bank(env, h, "B")
    bad = "signal_type,signal,pdq_flavour\r\npdq,{},reference\r\npdq,{},sideways\r\n".format(
        "ab" * 32, "cd" * 32
    )
    r = env.client.post("/c/bank/B/import", headers={**h, "Content-Type": "text/csv"}, content=bad)
    assert r.status_code == 400 and "item 2" in r.text and "sideways" in r.text, r.text
    r = env.client.get("/c/bank/B", headers=h, params=RECLAIM)
    assert r.json()["content_count"] == 0
    r = env.client.post(
        "/c/bank/B/signal",
        headers=h,
        json={"pdq": "ab" * 32, "metadata": {"json": {"pdq_flavour": 7}}},
    )
    assert r.status_code == 400 and "pdq_flavour" in r.text


# -- hashing and banking files -------------------------------------------------------------------


def test_h_hash_answers_pytx_and_a_bank_hashes_files_in_its_flavour(env: Env) -> None:
    """``/h/hash`` gives python-threatexchange's PDQ (HMA's ``/h/hash`` does); before, the
    reference one. A file added to a bank is hashed in the bank's flavour, or in the one its
    metadata names."""
    h = env.all_scopes("a")
    data = original(3)
    ref, ptx = pdq(data, "reference"), pdq(data, "pytx")
    assert ref != ptx
    r = env.client.post("/h/hash", headers=h, **upload(data))
    assert r.status_code == 200 and r.json()["pdq"] == ptx, r.text
    try:
        from threatexchange.signal_type.pdq.signal import PdqSignal
    except ImportError:  # the exchange extra: pdq_for's pytx flavour is checked against it
        pass  # in tests/test_pdq_flavours.py
    else:
        assert PdqSignal.hash_from_bytes(data) == ptx

    bank(env, h, "PYTX_BANK")
    bank(env, h, "REF_BANK", pdq_flavour="reference")
    r = env.client.post("/c/bank/PYTX_BANK/content", headers=h, **upload(data))
    assert r.json()["signals"] == {"pdq": ptx}, r.text
    r = env.client.post("/c/bank/REF_BANK/content", headers=h, **upload(data))
    assert r.json()["signals"] == {"pdq": ref}, r.text
    ref_id = r.json()["id"]
    meta = json.dumps({"json": {"pdq_flavour": "reference"}})
    r = env.client.post(
        "/c/bank/PYTX_BANK/content", headers=h, data={"metadata": meta}, **upload(data)
    )
    assert r.json()["signals"] == {"pdq": ref}, r.text
    row_id = r.json()["id"]
    shown = env.client.get(f"/c/bank/PYTX_BANK/content/{row_id}", headers=h, params=RECLAIM)
    assert shown.json()["pdq_flavour"] == "reference"
    both = json.dumps({"json": {"pdq_flavour": "both"}})
    r = env.client.post(
        "/c/bank/PYTX_BANK/content", headers=h, data={"metadata": both}, **upload(data)
    )
    assert r.status_code == 400 and "one" in r.json()["message"], r.text
    # a row hashed from a file keeps its flavour when its bank's changes
    r = env.client.put("/c/bank/REF_BANK", headers=h, json={"pdq_flavour": "pytx"})
    assert r.status_code == 200
    shown = env.client.get(f"/c/bank/REF_BANK/content/{ref_id}", headers=h, params=RECLAIM)
    assert shown.json()["pdq_flavour"] == "reference"
    found = lookup(env, h, data)
    assert {"bank_content_id": ref_id, "distance": "0"} in found["REF_BANK"]


def test_bank_flavour_is_reclaims_setting_outside_hmas_object(env: Env) -> None:
    h = env.all_scopes("a")
    c = env.client
    r = c.post("/c/banks", headers=h, json={"name": "B", "pdq_flavour": "Reference"})
    assert r.status_code == 201 and r.json() == {"name": "B", "matching_enabled_ratio": 1.0}
    assert c.get("/c/bank/B", headers=h).json() == {"name": "B", "matching_enabled_ratio": 1.0}
    assert c.get("/c/bank/B", headers=h, params=RECLAIM).json()["pdq_flavour"] == "reference"
    for bad in ("both", "sideways", 3, None):
        r = c.post("/c/banks", headers=h, json={"name": "C", "pdq_flavour": bad})
        assert r.status_code == 400 and "pytx" in r.json()["message"], bad
        r = c.put("/c/bank/B", headers=h, json={"pdq_flavour": bad})
        assert r.status_code == 400, bad
    r = c.put("/c/bank/B", headers=h, params=RECLAIM, json={"pdq_flavour": "pytx"})
    assert r.json()["pdq_flavour"] == "pytx"
    assert c.get("/c/bank/B/export", headers=h).json()["bank"]["pdq_flavour"] == "pytx"
    # exchange banks take the default: their hashes are pytx's/HMA's, or of unknown origin
    r = c.post("/c/exchanges", headers=h, json={"api": "sample", "bank": "SAMPLE_X"})
    if r.status_code == 201:  # the exchange extra (python-threatexchange) is installed
        shown = c.get("/c/bank/SAMPLE_X", headers=h, params=RECLAIM).json()
        assert shown["pdq_flavour"] == "pytx"


# -- the matcher and the store ---------------------------------------------------------------------


def test_matcher_filters_by_flavour_and_follows_changes(store: PlatformStore) -> None:
    t = store.create_tenant("t")
    other = store.create_tenant("o")
    pb = store.create_bank(t, "P")  # pytx (the default)
    rb = store.create_bank(t, "R", pdq_flavour="reference")
    ob = store.create_bank(other, "O", pdq_flavour="reference")
    base = "5a" * 32
    rows = {
        "p_bank": (pb, {}),
        "r_bank": (rb, {}),
        "p_ref": (pb, {"json": {"pdq_flavour": "reference"}}),
        "r_both": (rb, {"json": {"pdq_flavour": "both"}}),
    }
    ids = {}
    for name, (b, meta) in rows.items():
        (ids[name],) = store.add_contents(t, b, [([("pdq", base, 90)], meta)])
    store.add_contents(other, ob, [([("pdq", base, 90)], {})])
    with pytest.raises(ValueError, match="not a PDQ flavour"):
        store.add_contents(t, pb, [([("pdq", base, 90)], {"json": {"pdq_flavour": "x"}})])
    m = Matcher(store, poll_interval=0.0)

    def found(flavour: str | None) -> set[str]:
        hits = {x.content_id for x in m.lookup(t, "pdq", base, pdq_flavour=flavour)}
        return {n for n, cid in ids.items() if cid in hits}

    assert found(None) == set(ids)
    assert found("pytx") == {"p_bank", "r_both"}
    assert found("reference") == {"r_bank", "p_ref", "r_both"}
    assert m.pdq_flavours(t) == ["pytx", "reference"]
    assert m.pdq_flavours(t, {"P"}) == ["pytx", "reference"]
    assert m.pdq_flavours(other) == ["reference"]
    # followed from the change log: removals and a bank's new flavour
    store.remove_content(t, pb, ids.pop("p_ref"))
    store.remove_content(t, rb, ids.pop("r_bank"))
    assert m.pdq_flavours(t) == ["pytx"]  # R's one row left is `both`
    updated = store.update_bank(t, pb, pdq_flavour="reference")
    assert updated is not None and updated.pdq_flavour == "reference"
    assert found("pytx") == {"r_both"}
    assert found("reference") == {"p_bank", "r_both"}
    assert m.pdq_flavours(t) == ["reference"]
    store.delete_bank(t, updated)
    store.delete_bank(t, rb)
    assert m.pdq_flavours(t) == []
    # a flavour is a PDQ signal's only: an MD5 carries none
    b2 = store.create_bank(t, "M")
    (cid,) = store.add_contents(
        t, b2, [([("md5", "ab" * 16, None)], {"json": {"pdq_flavour": "pytx"}})]
    )
    assert [x.content_id for x in m.lookup(t, "md5", "ab" * 16)] == [cid]
    assert m.pdq_flavours(t) == []
    assert store.get_contents(t, [cid])[0].pdq_flavour is None


def test_migration_7_sets_flavours_on_existing_data(tmp_path: Path) -> None:
    """A version-6 database: its banks keep reference (every upload was hashed so until now),
    except exchange banks (pytx); PDQ rows imported from protect CSVs take their row's flavour."""
    for kind in ("sqlite", "postgres"):
        gen = make_store_bare(kind, tmp_path / kind)
        if kind == "sqlite":
            (tmp_path / kind).mkdir()
        s = next(gen, None)
        if s is None:
            continue
        with s.tx() as cur:
            s._q(
                cur,
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                f"applied_at {s.dialect.float} NOT NULL)",
            )
            for v in range(1, 7):
                for stmt in s.dialect.statements(MIGRATIONS[v - 1]):
                    s._q(cur, stmt)
                s._q(cur, "INSERT INTO schema_migrations VALUES (?, ?)", (v, time.time()))
        t = s.create_tenant("t")
        rows = {
            "plain": {},
            "pytx": {"json": {"pdq_flavour": "pytx", "tool": "reclaim"}},
            "both": {"json": {"pdq_flavour": "Both"}},
            "empty": {"json": {"pdq_flavour": ""}},
            "bogus": {"json": {"pdq_flavour": "sideways"}},
            "number": {"json": {"pdq_flavour": 3}},
        }
        with s.tx() as cur:
            for name in ("OLD", "X_BANK"):
                s._q(
                    cur,
                    "INSERT INTO banks (tenant_id, name, created_at) VALUES (?, ?, 0)",
                    (t, name),
                )
            old, xb = (
                int(s._q(cur, "SELECT id FROM banks WHERE name = ?", (n,)).fetchone()[0])
                for n in ("OLD", "X_BANK")
            )
            s._q(
                cur,
                "INSERT INTO exchanges (tenant_id, name, api, config, bank_id, created_at) "
                "VALUES (?, 'X_BANK', 'sample', '{}', ?, 0)",
                (t, xb),
            )
            for name, meta in rows.items():
                s._q(
                    cur,
                    "INSERT INTO contents (bank_id, tenant_id, metadata, created_at) "
                    "VALUES (?, ?, ?, 0)",
                    (old, t, json.dumps(meta)),
                )
                cid = s._q(cur, "SELECT MAX(id) FROM contents").fetchone()[0]
                for st, value in (("pdq", flip("ab" * 32, [len(name)])), ("md5", "cd" * 16)):
                    s._q(
                        cur,
                        "INSERT INTO signals (content_id, bank_id, tenant_id, signal_type, "
                        "value) VALUES (?, ?, ?, ?, ?)",
                        (cid, old, t, st, value),
                    )
        assert s.migrate() == LATEST
        assert {b.name: b.pdq_flavour for b in s.list_banks(t)} == {
            "OLD": "reference",
            "X_BANK": "pytx",
        }
        got = s._all(
            "SELECT c.metadata, s.signal_type, s.pdq_flavour FROM signals s "
            "JOIN contents c ON c.id = s.content_id ORDER BY s.id"
        )
        flavour = {(json.loads(m).get("json", {}).get("pdq_flavour"), st): f for m, st, f in got}
        assert flavour == {
            (None, "pdq"): None,
            ("pytx", "pdq"): "pytx",
            ("Both", "pdq"): "both",
            ("", "pdq"): None,
            ("sideways", "pdq"): None,
            (3, "pdq"): None,
            **{(k, "md5"): None for k in (None, "pytx", "Both", "", "sideways", 3)},
        }
        assert s.create_bank(t, "NEW").pdq_flavour == "pytx"
        for _ in gen:
            pass
