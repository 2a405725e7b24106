"""Her side of face shields (reclaim.shield.case, ``reclaim shield …``): make a shield from her
enrollment for a platform, send, export, list, revoke, renew. Synthetic descriptors placed into
an enrollment through the store; the platform is a small in-process HTTP server that keeps the
endpoints' contract (intake keys per epoch, intake that verifies the shield, revocation by
secret), or an httpx.MockTransport for the answers a well-behaved platform never gives.

Properties measured here at unit level (issue 20): 2, a renewal after revocation is unlinkable
to the revoked shield (its codes agree with the old ones on about 1/16 of positions, as
unrelated codes do); 3, one person's shields for two platforms agree on about 1/16 too. And 1
on her side: the custody log and everything sent hold no clear template and no secret.
"""

from __future__ import annotations

import base64
import json
import stat
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from reclaim.cli import app
from reclaim.errors import InputError
from reclaim.faces.describe import descriptor_to_bytes
from reclaim.report.custody import CustodyLog, verify_chain
from reclaim.shield.case import (
    ConsentRequired,
    NoFreshEpoch,
    PlatformError,
    consent_text,
    create_shield,
    export_shield,
    intake_key_for,
    list_shields,
    parse_platform_url,
    revoke_shield,
    send_shield,
)
from reclaim.shield.protocol import (
    EpochSecret,
    IntakeKey,
    Shield,
    ShieldRefused,
    check_revocation,
    make_shield,
    population,
)
from reclaim.store import CaseStore

RNG = np.random.default_rng(2020)
NAME = "Léa Martin"


def person(n: int = 3, spread: float = 0.08) -> list[np.ndarray]:
    """``n`` float32 descriptors of one synthetic person near the population mean."""
    mean = population().mean
    centre = mean + RNG.normal(0, 0.06, mean.shape)
    return [
        (centre + RNG.normal(0, spread / np.sqrt(mean.size), mean.shape)).astype(np.float32)
        for _ in range(n)
    ]


# -- a platform keeping the endpoints' contract ----------------------------------------------


@dataclass
class FakePlatform:
    """``/shield/v1/{tenant}/intake-key | intake | revoke`` for a few tenants, each with its
    active epochs. Shields are verified as the real intake does (``Shield.verify``)."""

    epochs: dict[str, list[EpochSecret]]
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)  # shield_id → its record
    received: list[bytes] = field(default_factory=list)  # every request body
    url: str = ""
    _keys: dict[tuple[str, int], IntakeKey] = field(default_factory=dict)

    def key(self, tenant: str, epoch: int) -> IntakeKey:
        """One intake key object per (tenant, epoch): its projections are drawn once."""
        if (tenant, epoch) not in self._keys:
            secret = next(e for e in self.epochs[tenant] if e.epoch == epoch)
            self._keys[tenant, epoch] = secret.intake_key(tenant)
        return self._keys[tenant, epoch]

    def rotate(self, tenant: str) -> None:
        newest = max(e.epoch for e in self.epochs[tenant])
        self.epochs[tenant].append(EpochSecret.generate(newest + 1))

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        self.received.append(body)
        parts = path.split("/")
        if len(parts) != 5 or parts[1:3] != ["shield", "v1"]:
            return 404, {"detail": "not found"}
        tenant, what = urllib.parse.unquote(parts[3]), parts[4]
        if tenant not in self.epochs:
            return 404, {"detail": "no such platform"}
        if method == "GET" and what == "intake-key":
            keys = [self.key(tenant, e.epoch).as_json() for e in self.epochs[tenant]]
            return 200, {"platform": tenant, "keys": keys}
        if method == "POST" and what == "intake":
            try:
                s = Shield.loads(body)
                epochs = {e.epoch for e in self.epochs[tenant]}
                if s.receipt.epoch not in epochs:
                    return 400, {"detail": "unknown key epoch"}
                s.verify(self.key(tenant, s.receipt.epoch))
            except ShieldRefused as e:
                return 400, {"detail": str(e)}
            if s.shield_id in self.stored:
                return 409, {"detail": "this shield is already held"}
            self.stored[s.shield_id] = {
                "tenant": tenant,
                "epoch": s.receipt.epoch,
                "commitment": s.receipt.revocation_commitment,
            }
            return 201, {"shield_id": s.shield_id, "epoch": s.receipt.epoch, "status": "active"}
        if method == "POST" and what == "revoke":
            doc = json.loads(body)
            rec = self.stored.get(doc.get("shield_id", ""))
            if (
                rec is None
                or rec["tenant"] != tenant
                or not check_revocation(doc.get("secret", ""), rec["commitment"])
            ):
                return 403, {"detail": "unknown shield or wrong secret"}
            del self.stored[doc["shield_id"]]
            return 200, {"shield_id": doc["shield_id"], "status": "revoked"}
        return 405, {"detail": "method not allowed"}


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    fake = FakePlatform({"acme": [EpochSecret.generate(1), EpochSecret.generate(2)]})
    fake.epochs["bolt"] = [EpochSecret.generate(1)]

    class Handler(BaseHTTPRequestHandler):
        def _do(self, method: str) -> None:
            n = int(self.headers.get("content-length") or 0)
            status, doc = fake.answer(method, self.path, self.rfile.read(n))
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._do("GET")

        def do_POST(self) -> None:
            self._do("POST")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def tenant_url(platform: FakePlatform, tenant: str = "acme") -> str:
    return f"{platform.url}/shield/v1/{tenant}"


@dataclass
class Her:
    case: Path
    templates: list[np.ndarray]


@pytest.fixture
def her(tmp_path: Path) -> Her:
    case = tmp_path / "case"
    templates = person()
    with CaseStore.open(case, create=True) as store:
        store.add_enrollment(
            NAME,
            NAME,
            "test consent",
            [(descriptor_to_bytes(t), 100, 100.0, 0.0) for t in templates],
        )
    return Her(case, templates)


def stored(case: Path, shield_id: str) -> str:
    """The shield JSON kept in the case (revoked or not)."""
    with CaseStore.open(case) as store:
        row = store.shield(shield_id)
    assert row is not None
    return row.shield


def codes(shield_text: str) -> np.ndarray:
    """(templates × m) IoM indices of a shield."""
    s = Shield.loads(shield_text)
    return np.stack([np.frombuffer(t.payload, dtype=np.uint8) for t in s.templates])


def agreement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per template, the share of positions where two shields' codes are equal."""
    return np.asarray((a == b).mean(axis=1))


def clear_traces(templates: list[np.ndarray]) -> list[bytes]:
    """Byte strings that would betray a clear template: each template's bytes, every 8-byte
    window of them (two floats), their base64, and the text of its first values."""
    out: list[bytes] = []
    for t in templates:
        raw = descriptor_to_bytes(t)
        out += [raw, base64.b64encode(raw)]
        out += [raw[i : i + 8] for i in range(0, len(raw), 8)]
        out += [repr(float(v))[:10].encode() for v in t[:8]]
    return out


def secret_traces(store: CaseStore) -> list[bytes]:
    out: list[bytes] = []
    for r in store.shields():
        for s in (r.revocation_secret, r.signing_key):
            out += [s, base64.b64encode(s), s.hex().encode()]
    return out


# -- create ----------------------------------------------------------------------------------


def test_create_stores_a_shield_that_verifies_and_logs_nothing_clear(
    her: Her, platform: FakePlatform
) -> None:
    info = create_shield(her.case, NAME, tenant_url(platform), consent=True, consent_by="lea")
    assert (info.platform, info.epoch, info.templates, info.status) == ("acme", 2, 3, "made")
    assert info.platform_url == tenant_url(platform)
    with CaseStore.open(her.case) as store:
        row = store.shield(info.shield_id)
        assert row is not None and row.enrollment_name == NAME and row.revoked_at is None
        assert len(row.revocation_secret) == 32 and len(row.signing_key) == 32
        assert store.epochs_used("acme") == {2} and store.epochs_used("bolt") == set()
        shield = Shield.loads(row.shield)
        shield.verify(platform.key("acme", 2))  # what the platform's intake checks
        with pytest.raises(ShieldRefused):
            shield.verify(platform.key("acme", 1))
        # the receipt commits to the secret kept in the case
        assert check_revocation(
            base64.b64encode(row.revocation_secret).decode(),
            shield.receipt.revocation_commitment,
        )
        assert shield.receipt.consent_text == consent_text("acme", "en")
        secrets = secret_traces(store)
    # custody: one entry with ids and counts only; no template, code or secret anywhere in it
    entries = CustodyLog(her.case).entries()
    assert [e["action"] for e in entries] == ["shield.created"]
    assert entries[0]["actor"] == "lea"
    details = entries[0]["details"]
    assert set(details) == {"shield_id", "platform", "epoch", "templates", "receipt_sha256"}
    assert (details["shield_id"], details["epoch"], details["templates"]) == (
        info.shield_id, 2, 3,
    )  # fmt: skip
    assert not verify_chain(entries)
    log = (her.case / "custody.jsonl").read_bytes()
    protected = [base64.b64encode(bytes(t)) for t in shield.templates]
    leaks = [b for b in clear_traces(her.templates) + secrets + protected if b in log]
    assert leaks == []
    assert NAME.encode() not in log and b"test consent" not in log
    # the shield itself carries no clear template either, and no name
    text = row.shield.encode()
    assert [b for b in clear_traces(her.templates) if b in text] == []
    assert NAME.encode() not in text and NAME.encode("unicode_escape") not in text
    assert [b for b in secrets if b in text] == []


def test_create_needs_consent_and_an_enrollment(her: Her, platform: FakePlatform) -> None:
    with pytest.raises(ConsentRequired, match="agreement"):
        create_shield(her.case, NAME, tenant_url(platform))
    with pytest.raises(InputError, match=r"no enrollment named 'Zoé'.*Léa Martin"):
        create_shield(her.case, "Zoé", tenant_url(platform), consent=True)
    with CaseStore.open(her.case) as store:
        assert store.shields() == []
    assert CustodyLog(her.case).entries() == []


def test_consent_texts_name_the_platform_never_her() -> None:
    en, fr = consent_text("acme", "en"), consent_text("acme", "fr")
    assert '"acme"' in en and "« acme »" in fr and en != fr
    assert "revok" in en and "révoqu" in fr
    with pytest.raises(InputError, match="en or fr"):
        consent_text("acme", "de")


def test_receipts_are_pseudonymous_and_signed_by_a_key_per_shield(
    her: Her, platform: FakePlatform
) -> None:
    a = create_shield(her.case, NAME, tenant_url(platform, "acme"), consent=True, lang="fr")
    b = create_shield(her.case, NAME, tenant_url(platform, "bolt"), consent=True)
    with CaseStore.open(her.case) as store:
        sa, sb = (Shield.loads(export_shield(store, x.shield_id)) for x in (a, b))
        keys = {r.signing_key for r in store.shields()}
    assert sa.receipt.lang == "fr" and sa.receipt.consent_text == consent_text("acme", "fr")
    assert sb.receipt.consent_text == consent_text("bolt", "en")
    for s in (sa, sb):
        receipt = json.dumps(s.receipt.as_json(), ensure_ascii=False)
        assert NAME not in receipt and "Léa" not in receipt and "Martin" not in receipt
    assert sa.receipt.signer != sb.receipt.signer and len(keys) == 2
    assert sa.shield_id != sb.shield_id


# -- properties 2 and 3: unlinkable renewal, unlinkable platforms ----------------------------


def test_renewal_after_revoke_uses_another_epoch_and_is_unlinkable(
    her: Her, platform: FakePlatform
) -> None:
    url = tenant_url(platform)
    old = create_shield(her.case, NAME, url, consent=True)
    with pytest.raises(InputError, match="already has an active shield"):
        create_shield(her.case, NAME, url, consent=True)
    revoke_shield(her.case, old.shield_id, send=False)
    new = create_shield(her.case, NAME, url, consent=True)
    assert (old.epoch, new.epoch) == (2, 1)
    a, b = (codes(stored(her.case, s.shield_id)) for s in (old, new))
    agree = agreement(a, b)
    # unrelated IoM codes (q = 16) agree on 1/16 of positions; the same key would give 1.0
    assert agree.max() < 0.15, agree
    assert abs(agree.mean() - 1 / 16) < 0.03, agree
    # the measure can tell: her templates again under the old epoch's key agree fully
    again = make_shield(her.templates, platform.key("acme", 2), "x").shield
    assert (
        agreement(a, np.stack([np.frombuffer(t.payload, np.uint8) for t in again.templates])).min()
        == 1.0
    )


def test_two_platforms_shields_of_one_person_are_unlinkable(
    her: Her, platform: FakePlatform
) -> None:
    # the same epoch number and the same platform secret: only the tenant differs
    platform.epochs["bolt"] = [platform.epochs["acme"][1]]
    a = create_shield(her.case, NAME, tenant_url(platform, "acme"), consent=True)
    b = create_shield(her.case, NAME, tenant_url(platform, "bolt"), consent=True)
    assert a.epoch == b.epoch == 2 and a.key_id != b.key_id
    with CaseStore.open(her.case) as store:
        ca, cb = (codes(export_shield(store, s.shield_id)) for s in (a, b))
    agree = agreement(ca, cb)
    assert agree.max() < 0.15, agree
    assert abs(agree.mean() - 1 / 16) < 0.03, agree
    # and no cross pairing of templates links them better
    cross = [(ca[i] == cb[j]).mean() for i in range(3) for j in range(3)]
    assert max(cross) < 0.15


def test_no_fresh_epoch_is_a_clear_error_until_the_platform_rotates(
    her: Her, platform: FakePlatform
) -> None:
    url = tenant_url(platform, "bolt")  # one epoch only
    first = create_shield(her.case, NAME, url, consent=True)
    revoke_shield(her.case, first.shield_id, send=False)
    with pytest.raises(NoFreshEpoch, match=r"no fresh key epoch.*rotate its shield keys"):
        create_shield(her.case, NAME, url, consent=True)
    with CaseStore.open(her.case) as store:
        assert len(store.shields()) == 1
    platform.rotate("bolt")
    renewed = create_shield(her.case, NAME, url, consent=True)
    assert renewed.epoch == 2


def test_a_used_key_is_refused_even_under_another_epoch_number(her: Her) -> None:
    """A platform that republishes a used key as a 'new' epoch gets no shield under it."""
    key = EpochSecret.generate(1).intake_key("acme")
    relabelled = IntakeKey(key.platform, 7, key.key, key.population)
    keys = intake_key_for_doc(her.case.parent, {"platform": "acme", "keys": [key.as_json()]})
    first = create_shield(her.case, NAME, keys, consent=True)
    revoke_shield(her.case, first.shield_id, send=False)
    again = intake_key_for_doc(
        her.case.parent, {"platform": "acme", "keys": [relabelled.as_json()]}
    )
    with pytest.raises(NoFreshEpoch):
        create_shield(her.case, NAME, again, consent=True)


def intake_key_for_doc(folder: Path, doc: dict[str, Any]) -> Any:
    p = folder / "intake.json"
    p.write_text(json.dumps(doc))
    return intake_key_for(p)


# -- send, export, revoke --------------------------------------------------------------------


def test_send_and_revoke_through_the_platform(her: Her, platform: FakePlatform) -> None:
    info = create_shield(her.case, NAME, tenant_url(platform), consent=True)
    sent = send_shield(her.case, info.shield_id[:8])
    assert sent.status == "active" and sent.shield.status == "sent"
    assert platform.stored[info.shield_id]["epoch"] == 2
    [listed] = list_shields(her.case)
    assert listed.status == "sent" and listed.sent_at
    with pytest.raises(PlatformError, match="already holds"):
        send_shield(her.case, info.shield_id)
    with CaseStore.open(her.case) as store:
        secret = store.shield(info.shield_id).revocation_secret  # type: ignore[union-attr]
    res = revoke_shield(her.case, info.shield_id)
    assert res.sent and res.request is None and res.shield.status == "revoked"
    assert info.shield_id not in platform.stored  # the platform opened the commitment
    assert json.loads(platform.received[-1]) == {
        "shield_id": info.shield_id,
        "secret": base64.b64encode(secret).decode(),
    }
    with CaseStore.open(her.case) as store:
        assert store.shield(info.shield_id).revoked_at  # type: ignore[union-attr]
    with pytest.raises(InputError, match="already revoked"):
        revoke_shield(her.case, info.shield_id)
    with pytest.raises(InputError, match="revoked"):
        send_shield(her.case, info.shield_id)
    actions = [e["action"] for e in CustodyLog(her.case).entries()]
    assert actions == ["shield.created", "shield.sent", "shield.revoked"]
    revoked = CustodyLog(her.case).entries()[-1]["details"]
    assert revoked == {"shield_id": info.shield_id, "platform": "acme", "epoch": 2, "sent": True}
    # nothing clear went to the platform, and the secret only in the revocation
    bodies = b"".join(platform.received[:-1])
    assert [b for b in clear_traces(her.templates) if b in bodies] == []
    assert base64.b64encode(secret) not in bodies


def test_revoke_refused_by_the_platform_leaves_the_shield_active(
    her: Her, platform: FakePlatform
) -> None:
    info = create_shield(her.case, NAME, tenant_url(platform), consent=True)  # never sent
    with pytest.raises(PlatformError, match=r"403.*--no-send"):
        revoke_shield(her.case, info.shield_id)
    [listed] = list_shields(her.case)
    assert listed.revoked_at is None
    assert [e["action"] for e in CustodyLog(her.case).entries()] == ["shield.created"]


def test_revoke_without_sending_writes_a_private_request(
    her: Her, platform: FakePlatform, tmp_path: Path
) -> None:
    info = create_shield(her.case, NAME, tenant_url(platform), consent=True)
    send_shield(her.case, info.shield_id)
    out = tmp_path / "revoke.json"
    res = revoke_shield(her.case, info.shield_id, send=False, out=out)
    assert not res.sent and res.path == out and res.shield.revoked_at
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    doc = json.loads(out.read_text())
    assert doc["shield_id"] == info.shield_id and doc["platform_url"] == tenant_url(platform)
    assert doc["revoke_url"] == tenant_url(platform) + "/revoke"
    commitment = platform.stored[info.shield_id]["commitment"]
    assert check_revocation(doc["secret"], commitment)
    # she sends it herself: the platform takes it
    httpx.post(doc["revoke_url"], json={"shield_id": doc["shield_id"], "secret": doc["secret"]})
    assert info.shield_id not in platform.stored
    entry = CustodyLog(her.case).entries()[-1]
    assert entry["action"] == "shield.revoked" and entry["details"]["sent"] is False
    assert doc["secret"] not in json.dumps(CustodyLog(her.case).entries())


def test_a_platform_given_as_a_saved_key_file_is_never_contacted(her: Her, tmp_path: Path) -> None:
    epoch = EpochSecret.generate(3)
    saved = tmp_path / "acme-key.json"
    saved.write_text(json.dumps(epoch.intake_key("acme").as_json()))
    info = create_shield(her.case, NAME, str(saved), consent=True)
    assert info.platform_url is None and info.epoch == 3
    Shield.loads(export_shield(her.case, info.shield_id)).verify(epoch.intake_key("acme"))
    with pytest.raises(InputError, match=r"saved intake-key file.*export"):
        send_shield(her.case, info.shield_id)
    with pytest.raises(InputError, match="--no-send --out FILE"):
        revoke_shield(her.case, info.shield_id)
    res = revoke_shield(her.case, info.shield_id, send=False)
    assert res.request is not None and json.loads(res.request)["revoke_url"] is None


def test_the_platform_refusing_a_shield_says_why(her: Her, platform: FakePlatform) -> None:
    info = create_shield(her.case, NAME, tenant_url(platform), consent=True)
    platform.epochs["acme"] = [e for e in platform.epochs["acme"] if e.epoch != 2]  # retired
    with pytest.raises(PlatformError, match=r"refused the shield \(HTTP 400\) \(unknown key epoch"):
        send_shield(her.case, info.shield_id)
    assert [e["action"] for e in CustodyLog(her.case).entries()] == ["shield.created"]


def test_a_shield_older_than_platforms_accept_is_not_sent(her: Her, platform: FakePlatform) -> None:
    info = create_shield(her.case, NAME, tenant_url(platform), consent=True, now=1.8e9)
    with pytest.raises(InputError, match="more than 30 days ago"):
        send_shield(her.case, info.shield_id, now=1.8e9 + 31 * 86400)
    assert not platform.stored


# -- the platform's address and answers ------------------------------------------------------


def test_platform_addresses() -> None:
    a = parse_platform_url("https://Platform.example/shield/v1/acme%20inc/")
    assert a.url == "https://platform.example/shield/v1/acme%20inc" and a.tenant == "acme inc"
    assert a.origin == ("https", "platform.example", 443)
    b = parse_platform_url("http://127.0.0.1:8080/base/shield/v1/acme/intake-key")
    assert b.url == "http://127.0.0.1:8080/base/shield/v1/acme" and b.endpoint("intake") == (
        "http://127.0.0.1:8080/base/shield/v1/acme/intake"
    )
    assert parse_platform_url("http://[::1]:9/shield/v1/x").url == "http://[::1]:9/shield/v1/x"
    for bad, why in [
        ("http://platform.example/shield/v1/acme", "https"),
        ("ftp://platform.example/shield/v1/acme", "http"),
        ("https://u:p@platform.example/shield/v1/acme", "user name"),
        ("https://platform.example/shield/v1/acme?x=1", "'\\?'"),
        ("https://platform.example/hma/v1/acme", "not a platform's shield address"),
        ("https://platform.example/shield/v1/%00", "invalid"),
    ]:
        with pytest.raises(InputError, match=why):
            parse_platform_url(bad)


def mock(handler: Any) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


def keys_answer(tenant: str = "acme", epochs: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    return {
        "platform": tenant,
        "keys": [EpochSecret.generate(e).intake_key(tenant).as_json() for e in epochs],
    }


def test_intake_keys_newest_first_and_same_origin_redirects_only() -> None:
    base = "https://p.example/shield/v1/acme"
    seen: list[str] = []

    def ok(req: httpx.Request) -> httpx.Response:
        seen.append(str(req.url))
        if req.url.path == "/shield/v1/acme/intake-key":
            return httpx.Response(302, headers={"location": "/v2/shield/v1/acme/intake-key"})
        return httpx.Response(200, json=keys_answer(epochs=(1, 3, 2)))

    pk = intake_key_for(base, transport=mock(ok))
    assert pk.platform == "acme" and pk.url == base and pk.epochs == [3, 2, 1]
    assert seen == [base + "/intake-key", "https://p.example/v2/shield/v1/acme/intake-key"]

    def elsewhere(req: httpx.Request) -> httpx.Response:
        assert req.url.host == "p.example", "followed a redirect to another site"
        return httpx.Response(307, headers={"location": "https://evil.example/k"})

    with pytest.raises(PlatformError, match="redirects to another site"):
        intake_key_for(base, transport=mock(elsewhere))

    def downgrade(req: httpx.Request) -> httpx.Response:
        assert req.url.scheme == "https"
        return httpx.Response(301, headers={"location": "http://p.example/shield/v1/acme/k"})

    with pytest.raises(PlatformError, match="another site"):
        intake_key_for(base, transport=mock(downgrade))


def test_intake_key_answers_that_are_refused() -> None:
    base = "https://p.example/shield/v1/acme"

    def answering(**kw: Any) -> httpx.MockTransport:
        return mock(lambda req: httpx.Response(**kw))

    with pytest.raises(PlatformError, match="those of 'other'"):
        intake_key_for(base, transport=answering(status_code=200, json=keys_answer("other")))
    with pytest.raises(PlatformError, match="more than 256 KiB"):
        intake_key_for(base, transport=answering(status_code=200, content=b" " * 300_000))
    with pytest.raises(PlatformError, match="HTTP 404"):
        intake_key_for(base, transport=answering(status_code=404, json={"detail": "nope"}))
    with pytest.raises(PlatformError, match="not a JSON"):
        intake_key_for(base, transport=answering(status_code=200, content=b"<html>"))
    moved = keys_answer()
    for k in moved["keys"]:
        k["population"] = "f" * 64
    with pytest.raises(PlatformError, match="another reclaim version"):
        intake_key_for(base, transport=answering(status_code=200, json=moved))

    def down(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=req)

    with pytest.raises(PlatformError, match="could not reach the platform"):
        intake_key_for(base, transport=mock(down))
    with pytest.raises(InputError, match="no such file"):
        intake_key_for("platform.example/shield/v1/acme")


def test_a_streamed_answer_is_cut_at_the_cap() -> None:
    def endless(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter([b"x" * 65536] * 100))  # no content-length

    with pytest.raises(PlatformError, match="more than 256 KiB"):
        intake_key_for("https://p.example/shield/v1/acme", transport=mock(endless))


# -- templates locked under a passphrase -----------------------------------------------------


PASS = "correct horse battery staple"
WRONG = "correct horse battery stapler"


def case_bytes(case: Path) -> bytes:
    """``case.sqlite`` and its write-ahead log, as anyone copying the case folder gets them."""
    out = b""
    for suffix in ("", "-wal"):
        p = case / f"case.sqlite{suffix}"
        if p.exists():
            out += p.read_bytes()
    return out


def code_traces(shield_text: str, *, raw: bool = True) -> list[bytes]:
    """Every 32-byte window of each protected template: of its base64 string as the shield's
    JSON holds it and (``raw``) of its raw bytes, the IoM codes, which invert to her face with
    the platform's public intake key."""
    out: list[bytes] = []
    for t in json.loads(shield_text)["templates"]:
        b64 = t.encode("ascii")
        out += [b64[i : i + 32] for i in range(len(b64) - 31)]
        if raw:
            codes = base64.b64decode(t)
            out += [codes[i : i + 32] for i in range(len(codes) - 31)]
    return out


def found(traces: list[bytes], data: bytes) -> int:
    return sum(t in data for t in traces)


def test_locked_templates_need_the_passphrase(her: Her, platform: FakePlatform) -> None:
    from reclaim.store.templatelock import TemplatesLocked

    with CaseStore.open(her.case) as store:
        store.lock_templates(PASS)
    with pytest.raises(TemplatesLocked, match="making a shield needs it"):
        create_shield(her.case, NAME, tenant_url(platform), consent=True)
    info = create_shield(her.case, NAME, tenant_url(platform), consent=True, passphrase=PASS)
    with CaseStore.open(her.case) as store:
        text = export_shield(store, info.shield_id, passphrase=PASS)
    Shield.loads(text).verify(platform.key("acme", 2))


def test_locking_a_case_seals_its_shields_and_wipes_their_clear_copies(
    her: Her, platform: FakePlatform
) -> None:
    from reclaim.store.templatelock import TemplatesLocked, WrongPassphrase

    info = create_shield(her.case, NAME, tenant_url(platform), consent=True)
    other = create_shield(her.case, NAME, tenant_url(platform, "bolt"), consent=True)
    clear = stored(her.case, info.shield_id)
    texts = [clear, stored(her.case, other.shield_id)]
    traces = [t for text in texts for t in code_traces(text)]
    with CaseStore.open(her.case) as store:
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        # the check below sees the codes while they are in the clear (as base64 in the JSON;
        # only windows across the 4-byte header of an overflow page are split)
        in_json = [t for text in texts for t in code_traces(text, raw=False)]
        assert found(in_json, case_bytes(her.case)) > 0.95 * len(in_json)
        assert store.lock_templates(PASS) == 3
        rows = store.shields()
        assert [r.sealed for r in rows] == [True, True]
        db = case_bytes(her.case)
        assert found(traces, db) == 0  # not one 32-byte run of a code or of its base64
        wal = her.case / "case.sqlite-wal"
        assert not wal.exists() or wal.stat().st_size == 0
        assert store.shield(info.shield_id).shield != clear  # type: ignore[union-attr]
    # closed and opened again: still nothing clear
    with CaseStore.open(her.case):
        pass
    assert found(traces, case_bytes(her.case)) == 0

    # listing needs no passphrase, and shows what it showed before
    listed = {s.shield_id: s for s in list_shields(her.case)}
    assert (listed[info.shield_id].templates, listed[info.shield_id].key_id) == (
        3, platform.key("acme", 2).key_id,
    )  # fmt: skip
    # export and send need it, and nothing leaves before it is given
    with pytest.raises(TemplatesLocked, match="exporting a shield needs it"):
        export_shield(her.case, info.shield_id)
    with pytest.raises(WrongPassphrase):
        export_shield(her.case, info.shield_id, passphrase=WRONG)
    with pytest.raises(TemplatesLocked, match="sending a shield needs it"):
        send_shield(her.case, info.shield_id)
    assert info.shield_id not in platform.stored
    sent_before = len(platform.received)
    with pytest.raises(WrongPassphrase):
        send_shield(her.case, info.shield_id, passphrase=WRONG)
    assert len(platform.received) == sent_before  # nothing was sent
    text = export_shield(her.case, info.shield_id, passphrase=PASS)
    assert text == clear
    Shield.loads(text).verify(platform.key("acme", 2))
    assert send_shield(her.case, info.shield_id, passphrase=PASS).status == "active"
    assert platform.stored[info.shield_id]["epoch"] == 2
    # revoking needs no passphrase
    assert revoke_shield(her.case, info.shield_id).shield.status == "revoked"
    assert info.shield_id not in platform.stored
    actions = [e["action"] for e in CustodyLog(her.case).entries()]
    assert actions[-3:] == ["shield.exported", "shield.sent", "shield.revoked"]
    assert actions.count("shield.exported") == 1  # refused exports wrote nothing


def test_a_sealed_shield_is_bound_to_its_id(her: Her, platform: FakePlatform) -> None:
    from reclaim.errors import StoreError

    a = create_shield(her.case, NAME, tenant_url(platform), consent=True)
    b = create_shield(her.case, NAME, tenant_url(platform, "bolt"), consent=True)
    with CaseStore.open(her.case) as store:
        store.lock_templates(PASS)
        sealed_b = store.shield(b.shield_id).shield  # type: ignore[union-attr]
        store.conn.execute("UPDATE shields SET shield=? WHERE shield_id=?", (sealed_b, a.shield_id))
        store.conn.commit()
    with pytest.raises(StoreError, match=f"shield {a.shield_id} cannot be decrypted"):
        export_shield(her.case, a.shield_id, passphrase=PASS)
    Shield.loads(export_shield(her.case, b.shield_id, passphrase=PASS)).verify(
        platform.key("bolt", 1)
    )


def test_a_shield_made_in_a_locked_case_is_sealed_from_the_start(
    her: Her, platform: FakePlatform
) -> None:
    with CaseStore.open(her.case) as store:
        store.lock_templates(PASS)
    info = create_shield(her.case, NAME, tenant_url(platform), consent=True, passphrase=PASS)
    # Not checkpointed, not vacuumed: every page ever written is still in the files.
    db = case_bytes(her.case)
    with CaseStore.open(her.case) as store:
        row = store.shield(info.shield_id)
        assert row is not None and row.sealed
        text = export_shield(store, info.shield_id, passphrase=PASS)
        key = store.template_key(PASS)
    traces = code_traces(text)
    assert len(traces) > 4000 and found(traces, db) == 0
    Shield.loads(text).verify(platform.key("acme", 2))
    # the key derived once works wherever the passphrase does
    assert export_shield(her.case, info.shield_id, passphrase=key) == text
    assert list_shields(her.case)[0].templates == 3


def test_unlock_opens_the_shields_again(her: Her, platform: FakePlatform) -> None:
    from reclaim.enroll import unenroll, unlock_templates
    from reclaim.store.templatelock import TemplatesLocked

    info = create_shield(her.case, NAME, tenant_url(platform), consent=True)
    clear = stored(her.case, info.shield_id)
    with CaseStore.open(her.case) as store:
        store.lock_templates(PASS)
        assert store.shield(info.shield_id).sealed  # type: ignore[union-attr]
        assert unlock_templates(store, PASS) == 3
        row = store.shield(info.shield_id)
        assert row is not None and not row.sealed and row.shield == clear
        assert export_shield(store, info.shield_id) == clear  # no passphrase any more
        # locked again, then everyone unenrolled: an active sealed shield still needs the
        # passphrase (a forgotten one: revoke it first, which needs none)
        store.lock_templates(PASS)
        unenroll(store, NAME)
        with pytest.raises(TemplatesLocked, match=r"1 shield\(s\).*revoke them first"):
            unlock_templates(store, None)
        assert store.templates_locked()
        assert unlock_templates(store, PASS) == 0
        assert not store.templates_locked()
        assert store.shield(info.shield_id).shield == clear  # type: ignore[union-attr]


def test_unlock_without_templates_after_revoking_the_sealed_shields(
    her: Her, platform: FakePlatform
) -> None:
    from reclaim.enroll import unenroll, unlock_templates

    info = create_shield(her.case, NAME, tenant_url(platform), consent=True)
    with CaseStore.open(her.case) as store:
        store.lock_templates(PASS)
        unenroll(store, NAME)
    revoke_shield(her.case, info.shield_id, send=False)  # no passphrase needed
    with CaseStore.open(her.case) as store:
        assert unlock_templates(store, None) == 0 and not store.templates_locked()
        # it stays sealed (nothing can open it now), and listed
        assert store.shield(info.shield_id).sealed  # type: ignore[union-attr]
        # a new lock leaves it as it is; unlocking skips it
        store.add_enrollment(
            NAME, NAME, "again", [(descriptor_to_bytes(t), 100, 100.0, 0.0) for t in her.templates]
        )
        store.lock_templates("another long passphrase")
        assert unlock_templates(store, "another long passphrase") == 3
    [s] = list_shields(her.case)
    assert s.status == "revoked" and s.templates == 3
    with pytest.raises(InputError, match="revoked"):
        export_shield(her.case, info.shield_id)


def test_cli_export_and_send_of_a_sealed_shield_ask_for_the_passphrase(
    her: Her, platform: FakePlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reclaim.store.templatelock import PASSPHRASE_ENV

    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    runner = CliRunner()
    case = str(her.case)
    url = tenant_url(platform)
    with CaseStore.open(her.case) as store:
        store.lock_templates(PASS)
    pfile = tmp_path / "pass.txt"
    pfile.write_text(PASS + "\n")
    out = tmp_path / "shield.json"
    r = runner.invoke(
        app,
        ["shield", "create", "--case", case, "-n", NAME, "--for", url, "--yes",
         "--passphrase-file", str(pfile), "--out", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    [s] = list_shields(her.case)
    Shield.loads(out.read_text()).verify(platform.key("acme", 2))
    r = runner.invoke(app, ["shield", "export", "--case", case, s.shield_id[:8]])
    assert r.exit_code == 2 and "exporting a shield needs it" in r.output, r.output
    assert "Traceback" not in r.output
    r = runner.invoke(
        app, ["shield", "export", "--case", case, s.shield_id[:8]], env={PASSPHRASE_ENV: WRONG}
    )
    assert r.exit_code == 2 and "wrong passphrase" in r.output
    r = runner.invoke(
        app, ["shield", "export", "--case", case, s.shield_id[:8]], env={PASSPHRASE_ENV: PASS}
    )
    assert r.exit_code == 0 and r.stdout.strip() == out.read_text().strip()
    r = runner.invoke(app, ["shield", "send", "--case", case, s.shield_id[:8]])
    assert r.exit_code == 2 and "sending a shield needs it" in r.output
    assert s.shield_id not in platform.stored
    r = runner.invoke(
        app, ["shield", "send", "--case", case, s.shield_id[:8], "--passphrase-file", str(pfile)]
    )
    assert r.exit_code == 0 and "sent to 'acme'" in r.output, r.output
    assert s.shield_id in platform.stored
    assert PASS not in r.output
    # everyone unenrolled, the shield still sealed: unlock-templates asks for the passphrase
    runner.invoke(app, ["unenroll", "--case", case, "--name", NAME])
    r = runner.invoke(app, ["unlock-templates", "--case", case])
    assert r.exit_code == 2 and "revoke them first" in r.output, r.output
    r = runner.invoke(app, ["unlock-templates", "--case", case, "--passphrase-file", str(pfile)])
    assert r.exit_code == 0, r.output
    assert stored(her.case, s.shield_id) == out.read_text()


def test_web_download_and_send_in_a_locked_case_need_the_passphrase(
    her: Her, platform: FakePlatform
) -> None:
    from fastapi.testclient import TestClient

    from reclaim.web.app import create_app

    info = create_shield(her.case, NAME, tenant_url(platform), consent=True)
    sid = info.shield_id
    clear = stored(her.case, sid)
    client = TestClient(create_app(her.case, workers=0), base_url="http://127.0.0.1:8765")
    en = {"accept-language": "en"}
    # unlocked: the plain download link, as before
    page = client.get("/shield", headers=en).text
    assert f'<a href="/shield/{sid}/download" download>' in page and "shields-locked" not in page
    r = client.get(f"/shield/{sid}/download", headers=en)
    assert r.status_code == 200 and r.text == clear

    with CaseStore.open(her.case) as store:
        store.lock_templates(PASS)
    page = client.get("/shield", headers=en).text
    assert f'href="/shield/{sid}/download"' not in page
    assert f'<form method="post" action="/shield/{sid}/download">' in page
    assert f'id="download-passphrase-{sid}" name="passphrase" type="password"' in page
    assert f'id="send-passphrase-{sid}" name="passphrase" type="password"' in page
    assert "stored encrypted under the same passphrase" in page
    fr = client.get("/shield", headers={"accept-language": "fr"}).text
    assert "enregistrés chiffrés sous la même phrase secrète" in fr
    # the old link, or the form without the passphrase: refused with the reason
    r = client.get(f"/shield/{sid}/download", headers=en)
    assert r.status_code == 400 and "exporting a shield needs it" in r.text
    r = client.post(f"/shield/{sid}/download", headers=en)
    assert r.status_code == 400 and "exporting a shield needs it" in r.text
    r = client.post(f"/shield/{sid}/download", data={"passphrase": WRONG}, headers=en)
    assert r.status_code == 400 and "wrong passphrase" in r.text and WRONG not in r.text
    r = client.post(f"/shield/{sid}/download", data={"passphrase": PASS}, headers=en)
    assert r.status_code == 200 and r.text == clear and PASS not in r.text
    assert r.headers["content-disposition"].startswith("attachment;")
    Shield.loads(r.text).verify(platform.key("acme", 2))
    # send: refused without it (nothing sent), sent with it
    received = len(platform.received)
    r = client.post(f"/shield/{sid}/send", headers=en, follow_redirects=False)
    assert r.status_code == 400 and "sending a shield needs it" in r.text
    assert len(platform.received) == received
    r = client.post(
        f"/shield/{sid}/send", data={"passphrase": PASS}, headers=en, follow_redirects=False
    )
    assert r.status_code == 303 and sid in platform.stored
    # revoke: no passphrase
    r = client.post(f"/shield/{sid}/revoke", headers=en, follow_redirects=False)
    assert r.status_code == 303 and sid not in platform.stored


# -- the command line ------------------------------------------------------------------------


def test_cli_round_trip(her: Her, platform: FakePlatform, tmp_path: Path) -> None:
    runner = CliRunner()
    case = str(her.case)
    url = tenant_url(platform)

    # nobody enrolled under that name: refused before the platform is contacted
    r = runner.invoke(app, ["shield", "create", "--case", case, "-n", "Zoé", "--for", url])
    assert r.exit_code == 2 and "no enrollment named 'Zoé'" in r.output, r.output
    assert platform.received == []

    # no agreement: nothing made
    r = runner.invoke(app, ["shield", "create", "--case", case, "--name", NAME, "--for", url],
                      input="n\n")  # fmt: skip
    assert r.exit_code == 2 and "needs your agreement" in r.output, r.output
    assert consent_text("acme", "en") in r.output
    assert list_shields(her.case) == []

    # agreed interactively, in French, sent
    shield_file = tmp_path / "shield.json"
    r = runner.invoke(
        app,
        ["shield", "create", "--case", case, "--name", NAME, "--for", url, "--lang", "fr",
         "--send", "--out", str(shield_file)],
        input="y\n",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "Acceptez-vous" in r.output and "sent to 'acme': active" in r.output
    [s] = list_shields(her.case)
    assert s.status == "sent" and s.epoch == 2 and s.shield_id in platform.stored
    assert Shield.loads(shield_file.read_text()).shield_id == s.shield_id
    assert stat.S_IMODE(shield_file.stat().st_mode) == 0o600

    r = runner.invoke(app, ["shield", "list", "--case", case, "--json"])
    assert r.exit_code == 0
    [rec] = [json.loads(line) for line in r.stdout.splitlines()]
    assert rec["shield_id"] == s.shield_id and rec["status"] == "sent"
    assert rec["templates"] == 3 and "secret" not in r.stdout
    r = runner.invoke(app, ["shield", "list", "--case", case])
    assert r.exit_code == 0 and s.shield_id[:12] in r.output and "sent 20" in r.output

    r = runner.invoke(app, ["shield", "export", "--case", case, s.shield_id[:8]])
    assert r.exit_code == 0 and Shield.loads(r.stdout).shield_id == s.shield_id

    r = runner.invoke(app, ["shield", "revoke", "--case", case, s.shield_id[:10]])
    assert r.exit_code == 0 and "revoked" in r.output, r.output
    assert s.shield_id not in platform.stored
    r = runner.invoke(app, ["shield", "revoke", "--case", case, s.shield_id])
    assert r.exit_code == 2 and "already revoked" in r.output

    # renewal with --yes: the other epoch; revoked without sending, request to a file
    r = runner.invoke(app, ["shield", "create", "--case", case, "-n", NAME, "--for", url, "--yes"])
    assert r.exit_code == 0 and "key epoch 1" in r.output and "not sent" in r.output, r.output
    new = list_shields(her.case)[-1]
    req = tmp_path / "revoke.json"
    r = runner.invoke(app, ["shield", "revoke", "--case", case, new.shield_id, "--out", str(req)])
    assert r.exit_code == 2 and "--out goes with --no-send" in r.output
    r = runner.invoke(
        app, ["shield", "revoke", "--case", case, new.shield_id, "--no-send", "--out", str(req)]
    )
    assert r.exit_code == 0 and json.loads(req.read_text())["shield_id"] == new.shield_id
    assert [x.status for x in list_shields(her.case)] == ["revoked", "revoked"]

    # no fresh epoch left: a clear one-line error
    r = runner.invoke(app, ["shield", "create", "--case", case, "-n", NAME, "--for", url, "--yes"])
    assert r.exit_code == 2 and "rotate its shield keys" in r.output
    assert "Traceback" not in r.output
    r = runner.invoke(app, ["shield", "export", "--case", case, "abc"])
    assert r.exit_code == 2 and "at least its first 8" in r.output
