"""Face shields at the platform (issue 20): the key file, intake, revocation, the partners'
routes, the index, match-on-upload, and that nothing clear is kept (property 1). Runs on SQLite,
and on PostgreSQL when RECLAIM_TEST_POSTGRES_DSN is set.

Synthetic people: 384-value descriptors around the shipped population mean (centred length
~1.2, photos ~0.25 from their person's centre), which the shipped scheme separates like real
faces (her: ~0.8, others: ~0.3, threshold 0.5). Real faces: the last test (LFW, shared data).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import Response

from reclaim.api import shields as shield_api
from reclaim.api.hashing import Hashed
from reclaim.platform.shield_keys import ShieldKeyError, ShieldKeys, rotate
from reclaim.platform.shields import ShieldIndex, _Scheme, equal_share
from reclaim.platform.store import PlatformStore, Token
from reclaim.shield.protocol import (
    EpochSecret,
    IntakeKey,
    Made,
    ProtectedTemplate,
    make_shield,
    population,
    shield_score,
)
from reclaim.store.faces import FaceRecord
from tests.conftest import shared_data
from tests.test_api_platform import Env, make_store, photo, upload

CONSENT = "I agree that this platform looks for my face in uploads, to stop fakes of me."


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PlatformStore]:
    yield from make_store(request.param, tmp_path)


def shield_env(store: PlatformStore, tmp_path: Path, **settings: Any) -> Env:
    base: dict[str, Any] = {
        "shield_keys": str(tmp_path / "keys" / "shield-keys.json"),
        "poll_interval_s": 0.0,
        "shield_rate_per_ip": 1000,  # rate limits: their own test
    }
    return Env(store, **{**base, **settings})


@pytest.fixture
def env(store: PlatformStore, tmp_path: Path) -> Env:
    return shield_env(store, tmp_path)


# -- synthetic people and shields -------------------------------------------------------------


def person(seed: int, n: int = 3) -> tuple[np.ndarray, list[np.ndarray]]:
    """A synthetic person's centre and ``n`` photos' descriptors (float32, like real ones)."""
    rng = np.random.default_rng(seed)
    centre = population().mean + rng.normal(0, 1.2 / np.sqrt(384), 384)
    photos = [centre + rng.normal(0, 0.25 / np.sqrt(384), 384) for _ in range(n)]
    return centre.astype(np.float32), [p.astype(np.float32) for p in photos]


def near(centre: np.ndarray, seed: int) -> np.ndarray:
    """Another photo of the same person."""
    rng = np.random.default_rng(seed)
    return (centre + rng.normal(0, 0.3 / np.sqrt(384), 384)).astype(np.float32)


def intake_key(env: Env, tenant: str, epoch: int = 1) -> IntakeKey:
    r = env.client.get(f"/shield/v1/{tenant}/intake-key")
    assert r.status_code == 200, r.text
    keys = [IntakeKey.from_json(k) for k in r.json()["keys"]]
    return next(k for k in keys if k.epoch == epoch)


def make(env: Env, tenant: str, templates: list[np.ndarray], epoch: int = 1, **kw: Any) -> Made:
    return make_shield(templates, intake_key(env, tenant, epoch), CONSENT, **kw)


def post(env: Env, tenant: str, made: Made | bytes | str) -> Any:
    body = made.shield.dumps() if isinstance(made, Made) else made
    return env.client.post(
        f"/shield/v1/{tenant}/intake",
        content=body,
        headers={"Content-Type": "application/json"},
    )


def revoke(env: Env, tenant: str, shield_id: str, secret: bytes) -> Any:
    body = {"shield_id": shield_id, "secret": base64.b64encode(secret).decode()}
    return env.client.post(f"/shield/v1/{tenant}/revoke", json=body)


def token_of(env: Env, headers: dict[str, str]) -> Token:
    tok = env.store.token_for_secret(headers["Authorization"].split(" ", 1)[1])
    assert tok is not None
    return tok


def tid(env: Env, name: str) -> int:
    got = env.store.tenant_id(name)
    assert got is not None
    return got


def db_rows_bytes(store: PlatformStore) -> bytes:
    """Every value of every row of the platform's tables, as bytes (both backends)."""
    tables = [
        "tenants",
        "tokens",
        "banks",
        "contents",
        "signals",
        "changes",
        "review_items",
        "decisions",
        "audit_log",
        "webhooks",
        "deliveries",
        "shields",
        "shield_templates",
    ]
    out = bytearray()
    for t in tables:
        for row in store._all(f"SELECT * FROM {t}"):
            for v in row:
                if isinstance(v, bytes | bytearray | memoryview):
                    out += bytes(v)
                else:
                    out += str(v).encode()
    return bytes(out)


def sqlite_files(store: PlatformStore) -> bytes:
    path = getattr(store, "path", None)
    if path is None:
        return b""
    out = b""
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{path}{suffix}")
        if p.exists():
            out += p.read_bytes()
    return out


def clear_forms(d: np.ndarray) -> list[bytes]:
    """The bytes a clear descriptor would leave: float32 and float64, whole and a fragment."""
    f32 = np.asarray(d, dtype="<f4").tobytes()
    f64 = np.asarray(d, dtype="<f8").tobytes()
    return [f32, f32[:64], f32[-64:], f64, f64[:64], f64[-64:]]


def text_forms(d: np.ndarray) -> list[str]:
    """How a descriptor's values would read in a log line or JSON."""
    v = [float(x) for x in np.asarray(d, dtype=np.float64)[:4]]
    f32 = [float(np.float32(x)) for x in v]
    return [repr(v[0]), repr(f32[0]), f"{v[0]:.6f}", f"{v[1]:.6f}", json.dumps(f32[:2])[1:-1]]


# -- the key file -----------------------------------------------------------------------------


def test_key_file_made_0600_with_two_active_epochs_and_rotated(tmp_path: Path) -> None:
    path = tmp_path / "k" / "shield-keys.json"
    keys = ShieldKeys.open(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [k.epoch for k in keys.epochs()] == [1, 2] and len(keys.active()) == 2
    doc = json.loads(path.read_text())
    assert doc["format"] == "reclaim-shield-keys/1"
    assert {e["epoch"] for e in doc["epochs"]} == {1, 2}
    again = ShieldKeys.open(path)  # a second process: the same secrets, no new file
    assert [s.secret for s in again.active()] == [s.secret for s in keys.active()]
    assert keys.secret(1) != keys.secret(2)

    assert rotate(path, retire=(1,)) == 3
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys.reload_if_changed()
    assert [s.epoch for s in keys.active()] == [2, 3]
    assert keys.secret(1) is not None and keys.secret(1, active_only=True) is None
    assert not keys.reload_if_changed()
    with pytest.raises(ShieldKeyError, match="no epoch 9"):
        rotate(path, retire=(9,))

    path.chmod(0o644)
    with pytest.raises(ShieldKeyError, match="chmod 600"):
        ShieldKeys.open(path)
    path.chmod(0o600)
    path.write_text('{"format": "other"}')
    with pytest.raises(ShieldKeyError, match="not a reclaim shield key file"):
        ShieldKeys.open(path)
    with pytest.raises(ShieldKeyError, match="does not exist"):
        ShieldKeys.open(tmp_path / "none.json", create=False)


def test_shields_off_without_a_key_file(store: PlatformStore) -> None:
    env = Env(store)  # no shield_keys
    env.store.ensure_tenant("a")
    r = env.client.get("/shield/v1/a/intake-key")
    assert r.status_code == 404 and "not enabled" in r.json()["message"]
    assert post(env, "a", b"{}").status_code == 404
    h = env.all_scopes("a")
    assert env.client.get("/shield/v1/shields", headers=h).status_code == 404
    r = env.client.post("/h/hash", headers=h, **upload(photo(1)))
    assert r.status_code == 200 and "X-Reclaim-Review-Item" not in r.headers


def test_serve_platform_key_file_defaults() -> None:
    from reclaim.api.cli import shield_keys_path

    assert shield_keys_path("/srv/x/platform.db", None) == "/srv/x/shield-keys.json"
    assert shield_keys_path("postgresql://u@h/db", None) is None
    assert shield_keys_path("postgresql://u@h/db", "/run/keys.json") == "/run/keys.json"
    assert shield_keys_path("/srv/x/platform.db", "off") is None


# -- intake -----------------------------------------------------------------------------------


def test_intake_key_per_tenant_and_epoch(env: Env, tmp_path: Path) -> None:
    env.store.ensure_tenant("a")
    env.store.ensure_tenant("b")
    r = env.client.get("/shield/v1/a/intake-key")
    assert r.status_code == 200
    body = r.json()
    assert body["platform"] == "a" and [k["epoch"] for k in body["keys"]] == [1, 2]
    a1, b1 = intake_key(env, "a"), intake_key(env, "b")
    assert a1.key != b1.key and a1.key != intake_key(env, "a", 2).key
    assert env.client.get("/shield/v1/nobody/intake-key").status_code == 404
    # a rotated key file is published without a restart
    rotate(tmp_path / "keys" / "shield-keys.json")
    assert [k["epoch"] for k in env.client.get("/shield/v1/a/intake-key").json()["keys"]] == [
        1,
        2,
        3,
    ]


def test_intake_stores_layered_codes_and_audits_without_the_address(env: Env) -> None:
    env.store.ensure_tenant("a")
    _, photos = person(1)
    made = make(env, "a", photos)
    r = post(env, "a", made)
    assert r.status_code == 201, r.text
    assert r.json() == {"shield_id": made.shield.shield_id, "epoch": 1, "status": "active"}
    a = tid(env, "a")
    (row,) = env.store.list_shields(a)
    assert row.shield_id == made.shield.shield_id and row.source == "intake"
    assert row.receipt == made.shield.receipt.as_json()
    stored = env.store.shield_codes(a)
    assert len(stored) == 3 and all(len(c) == 12 + 1024 + 16 for _, _, c in stored)
    keys = ShieldKeys.open(env.platform.settings.shield_keys)
    secret = keys.secret(1)
    assert secret is not None
    layer, intake, seal = secret.layer("a"), secret.intake_key("a"), secret.code_seal(a)
    for place, ((sid, epoch, blob), t) in enumerate(
        zip(stored, made.shield.templates, strict=True)
    ):
        assert (sid, epoch) == (made.shield.shield_id, 1)
        layered = layer.protect(t, intake)
        # at rest only a ciphertext: neither the intake codes nor the layered ones (the layer
        # alone falls to an attacker holding 3 shields of its own: bench/shield.py)
        assert t.payload not in blob and layered not in blob
        assert seal.open(blob, sid, place) == layered  # the secret layer, sealed, nothing else
        assert seal.open(blob, sid, (place + 1) % 3) is None  # bound to its place ...
        assert secret.code_seal(a + 1).open(blob, sid, place) is None  # ... and tenant
    audit = env.store.list_audit(a)
    (entry,) = [e for e in audit if e["action"] == "shield.intake"]
    assert entry["actor"].startswith("intake:") and len(entry["actor"]) == len("intake:") + 16
    assert "testclient" not in json.dumps(audit)  # the client's address is not kept
    # the same shield again: 409
    r = post(env, "a", made)
    assert r.status_code == 409 and "already held" in r.json()["message"]


def test_intake_refusals_say_why_and_store_nothing(env: Env) -> None:
    env.store.ensure_tenant("a")
    env.store.ensure_tenant("b")
    _, photos = person(2)
    good = make(env, "a", photos)
    s = good.shield
    forged = dataclasses.replace(s, signature=bytes(64))
    t0 = s.templates[0]
    flipped = bytes([(t0.payload[0] + 1) % 16]) + t0.payload[1:]
    tampered = dataclasses.replace(
        s, templates=(ProtectedTemplate(t0.scheme, t0.fingerprint, flipped), *s.templates[1:])
    )
    other_tenant = make(env, "b", photos)
    unknown_epoch = make_shield(photos, EpochSecret.generate(7).intake_key("a"), CONSENT)
    wrong_key = make_shield(photos, EpochSecret.generate(1).intake_key("a"), CONSENT)
    old = make(env, "a", photos, now=time.time() - 31 * 86400)
    cases: list[tuple[Any, int, str]] = [
        (forged.dumps(), 422, "signature does not verify"),
        (tampered.dumps(), 422, "templates are not the ones the receipt names"),
        (other_tenant, 422, "made for 'b', not for 'a'"),
        (unknown_epoch, 422, "key epoch 7"),
        (wrong_key, 422, "another intake key"),
        (old, 422, "older than 30 days"),
        (b"not json", 400, "not JSON"),
        (json.dumps({"format": "x"}), 400, "not a reclaim face shield"),
        (b"{" + b" " * (1 << 20) + b"}", 413, "at most"),
    ]
    for body, status, why in cases:
        r = post(env, "a", body)
        assert r.status_code == status, (why, r.status_code, r.text)
        assert why in r.json()["message"], (why, r.text)
    assert env.store.count_shields(tid(env, "a")) == 0
    assert env.store.shield_codes(tid(env, "a")) == []
    refused = [e for e in env.store.list_audit(tid(env, "a")) if e["action"].endswith("refused")]
    assert len(refused) == len(cases) - 1  # all but the one refused before reading it
    assert post(env, "nobody", good).status_code == 404
    assert post(env, "a", good).status_code == 201  # the untouched shield is fine


def test_intake_and_revocation_are_rate_limited(store: PlatformStore, tmp_path: Path) -> None:
    env = shield_env(store, tmp_path, shield_rate_per_ip=2, shield_rate_per_tenant=100)
    env.store.ensure_tenant("a")
    for _ in range(2):
        assert post(env, "a", b"x").status_code == 400
    r = post(env, "a", b"x")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert "retry in" in r.json()["message"]
    for _ in range(2):
        assert revoke(env, "a", "0" * 32, b"\0" * 32).status_code == 403
    assert revoke(env, "a", "0" * 32, b"\0" * 32).status_code == 429

    env2 = shield_env(store, tmp_path, shield_rate_per_ip=100, shield_rate_per_tenant=2)
    for _ in range(2):
        assert post(env2, "a", b"x").status_code == 400
    assert post(env2, "a", b"x").status_code == 429
    env2.store.ensure_tenant("b")
    assert post(env2, "b", b"x").status_code == 400  # another tenant's own budget


# -- revocation and the partners' routes ---------------------------------------------------------


def test_revocation_by_her_secret_removes_shield_codes_and_index(env: Env) -> None:
    env.store.ensure_tenant("a")
    centre, photos = person(3)
    made = make(env, "a", photos)
    assert post(env, "a", made).status_code == 201
    a = tid(env, "a")
    codes = [c for _, _, c in env.store.shield_codes(a)]
    index = env.platform.shields.index
    assert index.match(a, "a", near(centre, 1)[None])
    sid = made.shield.shield_id

    wrong = revoke(env, "a", sid, b"\1" * 32)
    unknown = revoke(env, "a", "f" * 32, made.revocation_secret)
    assert wrong.status_code == unknown.status_code == 403
    assert wrong.json() == unknown.json()  # one answer: nothing tells which was wrong
    bad = env.client.post("/shield/v1/a/revoke", json={"shield_id": sid, "secret": "%%%"})
    assert bad.status_code == 403
    assert env.store.count_shields(a) == 1

    r = revoke(env, "a", sid, made.revocation_secret)
    assert r.status_code == 200 and r.json() == {"shield_id": sid, "status": "revoked"}
    assert env.store.count_shields(a) == 0 and env.store.shield_codes(a) == []
    assert env.store._all("SELECT COUNT(*) FROM shield_templates")[0][0] == 0
    assert index.match(a, "a", near(centre, 1)[None]) == [] and index.count(a) == 0
    files = sqlite_files(env.store)
    for c in codes:  # SQLite: not left in free pages or the WAL either
        assert c not in files
    assert revoke(env, "a", sid, made.revocation_secret).status_code == 403
    actions = [e["action"] for e in env.store.list_audit(a)]
    assert actions.count("shield.revoke.refused") == 4 and "shield.revoke" in actions
    # renewal under the other epoch: accepted, and its codes share nothing with the old ones
    renewed = make(env, "a", photos, epoch=2)
    assert post(env, "a", renewed).status_code == 201
    new = opened(env, a, env.store.shield_codes(a))
    old = opened(env, a, [(sid, 1, c) for c in codes])
    assert len(new) == len(old) == 3
    same = equal_share(codes_matrix(new), codes_matrix(old))
    assert same.max() < 0.2  # unrelated codes agree on ~1/16 of places
    assert index.match(a, "a", near(centre, 1)[None])


def opened(env: Env, tenant_id: int, rows: list[tuple[str, int, bytes]]) -> list[bytes]:
    """Stored (sealed) codes opened with the key file's epoch secrets."""
    keys = ShieldKeys.open(env.platform.settings.shield_keys)
    out = []
    for place, (sid, epoch, blob) in enumerate(rows):
        secret = keys.secret(epoch)
        assert secret is not None
        codes = secret.code_seal(tenant_id).open(blob, sid, place % 3)
        assert codes is not None
        out.append(codes)
    return out


def codes_matrix(codes: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(codes), np.uint8).reshape(len(codes), -1)


def test_partner_intake_list_and_delete(env: Env) -> None:
    h = env.token("a", "curate")
    _, photos = person(4)
    made = make(env, "a", photos)
    body = made.shield.dumps()
    hdr = {**h, "Content-Type": "application/json"}
    r = env.client.post("/shield/v1/shields", headers=hdr, content=body)
    assert r.status_code == 201, r.text
    tok = token_of(env, h)
    a = tid(env, "a")
    assert env.store.list_shields(a)[0].source == f"token:{tok.id}:{tok.name}"
    weak = {**env.token("a", "hash", "match"), "Content-Type": "application/json"}
    assert env.client.post("/shield/v1/shields", headers=weak, content=body).status_code == 403
    assert env.client.get("/shield/v1/shields").status_code == 401

    listed = env.client.get("/shield/v1/shields", headers=h).json()["shields"]
    assert [s["shield_id"] for s in listed] == [made.shield.shield_id]
    assert set(listed[0]) == {"id", "shield_id", "epoch", "created_at", "source", "receipt"}
    text = json.dumps(listed)
    for t in made.shield.templates:
        assert base64.b64encode(t.payload[:48]).decode() not in text

    sid = made.shield.shield_id
    assert env.client.delete(f"/shield/v1/shields/{sid}", headers=h).json() == {"deleted": 1}
    assert env.client.delete(f"/shield/v1/shields/{sid}", headers=h).status_code == 404
    assert env.store.count_shields(a) == 0
    actions = [e["action"] for e in env.store.list_audit(a)]
    assert {"shield.intake", "shield.delete", "shield.delete.not_found"} <= set(actions)


def test_store_scopes_shields_by_tenant(store: PlatformStore) -> None:
    a, b = store.create_tenant("a"), store.create_tenant("b")
    rid = store.add_shield(
        a,
        shield_id="ab" * 16,
        epoch=1,
        source="intake",
        receipt={},
        revocation_commitment="c" * 64,
        codes=[bytes(1024)],
    )
    assert store.count_shields(b) == 0 and store.list_shields(b) == []
    assert store.shield_commitment(b, "ab" * 16) is None
    assert store.shield_codes(b) == []
    assert store.delete_shield(b, "ab" * 16) is False
    assert store.count_shields(a) == 1
    # the schema refuses a template whose tenant or epoch is not its shield's
    for tenant, epoch in ((b, 1), (a, 2)):
        with pytest.raises(Exception) as e, store.tx() as cur:
            store._q(
                cur,
                "INSERT INTO shield_templates (shield_row, tenant_id, epoch, codes) "
                "VALUES (?, ?, ?, ?)",
                (rid, tenant, epoch, bytes(1024)),
            )
        assert store._is_integrity_error(e.value)
    assert store.delete_shield(a, "ab" * 16) is True
    assert store._all("SELECT COUNT(*) FROM shield_templates")[0][0] == 0


# -- the index --------------------------------------------------------------------------------


def test_index_matches_her_for_her_platform_only(env: Env) -> None:
    for t in ("a", "b"):
        env.store.ensure_tenant(t)
    centre, photos = person(5)
    made_a = make(env, "a", photos)
    assert post(env, "a", made_a).status_code == 201
    other_centre, other_photos = person(6)
    assert post(env, "b", make(env, "b", other_photos)).status_code == 201
    index = env.platform.shields.index
    a, b = tid(env, "a"), tid(env, "b")
    probe = near(centre, 7)
    unrelated = np.stack([person(100 + i)[0] for i in range(20)])

    hits = index.match(a, "a", np.stack([unrelated[0], probe]))
    assert [h.shield_id for h in hits] == [made_a.shield.shield_id]
    assert hits[0].face == 1 and hits[0].score >= population().threshold
    # the score is the protocol's: (best + mean) / 2 over her templates, under A's key
    iom = intake_key(env, "a").iom
    ref = shield_score(iom.similarity(iom.codes(probe[None]), iom.codes(np.stack(photos))))[0]
    assert abs(hits[0].score - ref) <= 2 / 1024
    assert index.match(b, "b", probe[None]) == []  # B holds no shield of her
    assert index.match(a, "a", unrelated) == []
    assert index.match(b, "b", near(other_centre, 8)[None])
    assert index.count(a) == 1 and index.templates(a) == 3


def test_sealed_rows_moved_or_altered_do_not_match(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """Stored codes are sealed to their tenant, shield and place: rows swapped between two
    shields (or altered) in the database no longer open, so they cannot match, and the index
    says so once instead of failing uploads."""
    env.store.ensure_tenant("a")
    c1, p1 = person(21)
    c2, p2 = person(22)
    m1, m2 = make(env, "a", p1), make(env, "a", p2)
    assert post(env, "a", m1).status_code == 201 and post(env, "a", m2).status_code == 201
    a = tid(env, "a")
    index = env.platform.shields.index
    assert index.match(a, "a", near(c1, 1)[None]) and index.match(a, "a", near(c2, 1)[None])
    rows = env.store._all(
        "SELECT t.id, t.codes FROM shield_templates t JOIN shields s ON s.id = t.shield_row "
        "WHERE t.tenant_id = ? ORDER BY t.id",
        (a,),
    )
    first, second = rows[:3], rows[3:]
    with env.store.tx() as cur:  # swap the two shields' codes, row for row
        for (i1, b1), (i2, b2) in zip(first, second, strict=True):
            env.store._q(cur, "UPDATE shield_templates SET codes = ? WHERE id = ?", (b2, i1))
            env.store._q(cur, "UPDATE shield_templates SET codes = ? WHERE id = ?", (b1, i2))
    with caplog.at_level(logging.WARNING, logger="reclaim.platform.shields"):
        index.reload(a)
    assert "6 stored template(s)" in caplog.text
    assert index.match(a, "a", near(c1, 1)[None]) == []
    assert index.match(a, "a", near(c2, 1)[None]) == []


def test_float32_scheme_gives_the_protocol_codes() -> None:
    secret = EpochSecret.generate(1)
    scheme = _Scheme(secret, "a")
    x = np.stack([person(i)[1][0] for i in range(40)])
    ref = secret.layer("a").apply(secret.intake_key("a").iom.codes(x))
    assert (scheme.codes(x) == ref).mean() >= 0.999


def test_other_processes_see_intake_and_revocation(store: PlatformStore, tmp_path: Path) -> None:
    one = shield_env(store, tmp_path)
    two = shield_env(store, tmp_path, poll_interval_s=0.05)  # another replica, same key file
    one.store.ensure_tenant("a")
    a = tid(one, "a")
    centre, photos = person(9)
    made = make(one, "a", photos)
    other = two.platform.shields.index
    assert other.match(a, "a", near(centre, 1)[None]) == []
    assert post(one, "a", made).status_code == 201
    time.sleep(0.06)
    assert other.match(a, "a", near(centre, 1)[None])
    assert revoke(one, "a", made.shield.shield_id, made.revocation_secret).status_code == 200
    time.sleep(0.06)
    assert other.match(a, "a", near(centre, 1)[None]) == []
    # the poll compares (highest row, count): a revocation and an intake between two polls
    renewed = make(one, "a", person(10)[1], epoch=2)
    assert post(one, "a", renewed).status_code == 201
    slow = ShieldIndex(store, two.platform.shields.keys, poll_interval_s=3600)
    assert slow.count(a) == 1 and slow.match(a, "a", near(centre, 1)[None]) == []
    third = make(one, "a", photos, epoch=2)
    assert revoke(one, "a", renewed.shield.shield_id, renewed.revocation_secret).status_code == 200
    assert post(one, "a", third).status_code == 201
    slow.refresh(force=True)
    assert slow.match(a, "a", near(centre, 1)[None])[0].shield_id == third.shield.shield_id


# -- uploads ----------------------------------------------------------------------------------


def test_uploads_do_face_work_only_for_tenants_with_shields(env: Env) -> None:
    calls: list[tuple[Any, ...]] = []
    run = env.platform.decoders.run

    async def spy(fn: Any, args: tuple[Any, ...], timeout_s: float) -> Any:
        calls.append(args)
        return await run(fn, args, timeout_s)

    env.platform.decoders.run = spy  # type: ignore[method-assign]
    ha, hb = env.all_scopes("a"), env.all_scopes("b")
    assert post(env, "a", make(env, "a", person(11)[1])).status_code == 201
    data = photo(5)
    for h in (hb, ha):
        for route in ("/h/hash", "/m/lookup"):
            r = env.client.post(route, headers=h, **upload(data))
            assert r.status_code == 200, r.text
            assert "X-Reclaim-Review-Item" not in r.headers  # no face, no match
    analyses = [a for a in calls if len(a) >= 2 and a[0] == data]
    # (data, limits, face options, PDQ flavours): B: hashes only; A: with FaceOptions
    assert [a[2] is None for a in analyses] == [True, True, False, False]
    opts = analyses[-1][2]
    assert opts.max_faces == 3 and opts.max_video_frames == 16
    # the response bodies are the HMA ones, whoever holds shields
    assert set(env.client.post("/h/hash", headers=ha, **upload(data)).json()) == {
        "pdq",
        "md5",
        "sha256",
    }
    r = env.client.post("/m/lookup", headers=ha, params={"review": "false"}, **upload(data))
    assert calls[-1][2] is None  # review=false: no face work


def _queue_match(env: Env, headers: dict[str, str], descriptor: np.ndarray) -> Response:
    """What an upload whose worker found ``descriptor`` goes through after hashing (the
    worker itself is exercised by the real-faces test)."""
    data = photo(6)
    hashed = Hashed({"sha256": "ab" * 32}, {}, "photo", "ab" * 32, data)
    hashed.faces = [
        FaceRecord((10, 20, 110, 120), 100, "hog", 1.0, 100.0, 0.0, 1.0, descriptor.tobytes())
    ]
    response = Response()
    asyncio.run(shield_api.review_hits(env.platform, token_of(env, headers), response, hashed))
    assert hashed.faces == []  # dropped once matched
    return response


def test_a_platform_can_raise_the_operating_point(store: PlatformStore, tmp_path: Path) -> None:
    """``shield_threshold`` (serve-platform --shield-threshold): the same upload that matches
    at the shipped operating point is not queued when the platform asks for a higher score."""
    centre, photos = person(31)
    probe = near(centre, 2).astype(np.float32)
    outcomes = []
    for n, thr in enumerate((None, 0.99)):
        env = shield_env(store, tmp_path / str(n), shield_threshold=thr)
        h = env.all_scopes(f"t{n}")
        assert post(env, f"t{n}", make(env, f"t{n}", photos)).status_code == 201
        outcomes.append("X-Reclaim-Review-Item" in _queue_match(env, h, probe).headers)
    assert outcomes == [True, False]


def test_property_1_nothing_clear_at_rest_or_in_logs(
    env: Env, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After intake and a matching upload, no clear template (hers or the upload's face) is in
    the database, the key file, the logs, the audit log, the review item or the webhook."""
    caplog.set_level(logging.DEBUG)
    h = env.all_scopes("a")
    env.client.post("/review/webhooks", headers=h, json={"url": "http://127.0.0.1:9/hook"})
    centre, photos = person(12)
    made = make(env, "a", photos)
    assert post(env, "a", made).status_code == 201
    probe = near(centre, 13)
    response = _queue_match(env, h, probe)
    item_id = int(response.headers["X-Reclaim-Review-Item"])
    item = env.client.get(f"/review/items/{item_id}", headers=h).json()
    assert item["reason"] == "shield"
    (hit,) = item["matches"]["face_shield"]
    assert hit["shield_id"] == made.shield.shield_id and hit["face_box"] == [10, 20, 110, 120]
    assert hit["score"] >= population().threshold
    a = tid(env, "a")
    actions = [e["action"] for e in env.store.list_audit(a)]
    assert "shield.match" in actions and "review.queued" in actions
    deliveries = env.client.get("/review/deliveries", headers=h).json()
    assert [d["event"] for d in deliveries] == ["shield.match"]
    assert env.store.get_review_item(a, item_id) is not None

    if hasattr(env.store, "path"):
        env.store._conn().execute("PRAGMA wal_checkpoint(PASSIVE)")
    keys_file = Path(env.platform.settings.shield_keys).read_bytes()
    api_text = json.dumps(
        [item, env.client.get("/review/audit", headers=h).json(), deliveries]
    ).encode()
    haystacks = {
        "database rows": db_rows_bytes(env.store),
        "database files": sqlite_files(env.store),
        "key file": keys_file,
        "logs": caplog.text.encode(),
        "review, audit and webhook JSON": api_text,
    }
    clear = [*photos, probe]
    # the search finds these bytes where they are (the check can fail) ...
    assert all(f in b"x" + f + b"y" for d in clear for f in clear_forms(d))
    # ... and they are nowhere the platform keeps anything
    for where, data in haystacks.items():
        for d in clear:
            for f in clear_forms(d):
                assert f not in data, f"a clear template in the {where}"
        text = data.decode("utf-8", "replace")
        for d in clear:
            for t in text_forms(d):
                assert t not in text, f"a clear template's value {t} in the {where}"


# -- real faces, end to end -------------------------------------------------------------------


def test_end_to_end_real_faces_queued_for_her_platform_only(
    store: PlatformStore, tmp_path: Path
) -> None:
    """Her 3 LFW photos → a shield for tenant A → a face swap of another photo of hers
    uploaded with A's token is queued for review (reason "shield"); with B's token it is not;
    after she revokes, the same upload is no longer queued."""
    from PIL import Image

    from reclaim.analysis import analyze_bytes
    from reclaim.faces.pipeline import find_faces
    from reclaim.media import MediaLimits
    from reclaim_fixtures.faces import load_rgb, make_variant, scene_canvas, telegram_bytes

    lfw = shared_data("faces", "lfw-gray")
    deepface = shared_data("faces", "deepface-pairs")
    her = sorted((lfw / "Colin_Powell").iterdir())
    templates = [find_faces(np.asarray(load_rgb(p)))[0].descriptor for p in her[:3]]
    probe_im = load_rgb(her[4])
    box = find_faces(np.asarray(probe_im))[0].box
    scene = scene_canvas(load_rgb(deepface / "img20.jpg"))
    scene_face = find_faces(np.asarray(scene))[0].box
    # her face swapped into another photo: a new image, no hash of it exists anywhere
    variant: Image.Image = make_variant(
        "swap", probe_im, box, np.random.default_rng(3), lambda: (scene, scene_face)
    )
    data = telegram_bytes(variant)
    stranger = telegram_bytes(load_rgb(sorted((lfw / "Hans_Blix").iterdir())[0]))

    env = shield_env(store, tmp_path)
    ha, hb = env.all_scopes("a"), env.all_scopes("b")
    made = make_shield(templates, intake_key(env, "a"), CONSENT)
    assert post(env, "a", made).status_code == 201
    # B holds a shield too (someone else's), so B's uploads go through face matching as well
    someone = sorted((lfw / "Ari_Fleischer").iterdir())[:3]
    theirs = [find_faces(np.asarray(load_rgb(p)))[0].descriptor for p in someone]
    assert post(env, "b", make_shield(theirs, intake_key(env, "b"), CONSENT)).status_code == 201

    def queued(h: dict[str, str], body: bytes) -> dict[str, Any] | None:
        r = env.client.post("/m/lookup", headers=h, **upload(body, "photo"))
        assert r.status_code == 200, r.text
        assert r.json() == {"pdq": {}, "md5": {}, "sha256": {}}  # HMA body: no shield, no score
        item = r.headers.get("X-Reclaim-Review-Item")
        if item is None:
            return None
        got: dict[str, Any] = env.client.get(f"/review/items/{item}", headers=h).json()
        return got

    item = queued(ha, data)
    assert item is not None and item["reason"] == "shield", item
    hits = item["matches"]["face_shield"]
    assert [x["shield_id"] for x in hits] == [made.shield.shield_id]
    assert item["has_preview"]
    assert queued(ha, stranger) is None
    assert queued(hb, data) is None  # her shield is A's: B's upload of her is not queued

    # nothing clear kept: her templates and the upload's face (as the worker computes it)
    opts = shield_api.face_options(env.platform)
    upload_faces = analyze_bytes(data, MediaLimits(), faces=opts).faces or []
    assert upload_faces
    clear = [*templates, *(np.frombuffer(f.descriptor, "<f4") for f in upload_faces)]
    haystack = db_rows_bytes(env.store) + sqlite_files(env.store)
    haystack += Path(env.platform.settings.shield_keys).read_bytes()
    for d in clear:
        for f in clear_forms(d):
            assert f not in haystack

    r = revoke(env, "a", made.shield.shield_id, made.revocation_secret)
    assert r.status_code == 200
    assert queued(ha, data) is None
