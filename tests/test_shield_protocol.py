"""The face shield protocol (reclaim.shield.protocol): intake keys, shields and their consent
receipts, the platform's secret layer, revocation. Synthetic descriptors only."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest

from reclaim.shield.protocol import (
    MAX_RECEIPT_AGE_S,
    SCHEME,
    EpochSecret,
    IntakeKey,
    PlatformLayer,
    Shield,
    ShieldRefused,
    canonical_json,
    check_revocation,
    make_shield,
    population,
    shield_score,
)

RNG = np.random.default_rng(20)


def person(n: int = 3, spread: float = 0.08) -> list[np.ndarray]:
    """``n`` descriptors of one synthetic person: near a random point a typical face distance
    from the population mean."""
    mean = population().mean
    centre = mean + RNG.normal(0, 0.06, mean.shape)
    return [centre + RNG.normal(0, spread / np.sqrt(mean.size), mean.shape) for _ in range(n)]


@pytest.fixture(scope="module")
def epoch() -> EpochSecret:
    return EpochSecret.generate(1)


@pytest.fixture(scope="module")
def intake(epoch: EpochSecret) -> IntakeKey:
    return epoch.intake_key("acme")


def test_population_is_shipped_and_sane() -> None:
    pop = population()
    assert pop.mean.shape == (384,)
    assert np.isfinite(pop.mean).all() and np.linalg.norm(pop.mean) > 0.5
    assert 0.2 < pop.threshold < 0.9
    assert len(pop.digest) == 64


def test_intake_key_round_trip_and_refusals(epoch: EpochSecret, intake: IntakeKey) -> None:
    assert IntakeKey.from_json(json.loads(json.dumps(intake.as_json()))) == intake
    # derived per tenant and per epoch: unrelated keys
    assert epoch.intake_key("other").key != intake.key
    assert EpochSecret.generate(1).intake_key("acme").key != intake.key
    assert EpochSecret(1, epoch.secret).intake_key("acme") == intake  # deterministic
    bad = intake.as_json() | {"scheme": dict(SCHEME, m=512)}
    with pytest.raises(ShieldRefused, match="scheme"):
        IntakeKey.from_json(bad)
    with pytest.raises(ShieldRefused, match="key_id"):
        IntakeKey.from_json(intake.as_json() | {"key_id": "0" * 32})
    with pytest.raises(ShieldRefused, match="not a reclaim intake key"):
        IntakeKey.from_json({"format": "x"})
    moved = IntakeKey.from_json(intake.as_json() | {"population": "f" * 64})
    with pytest.raises(ShieldRefused, match="population"):
        _ = moved.iom


def test_shield_verifies_and_carries_no_clear_template(intake: IntakeKey) -> None:
    templates = person()
    made = make_shield(templates, intake, "I agree.", lang="en")
    text = made.shield.dumps()
    back = Shield.loads(text)
    back.verify(intake)
    assert back == made.shield
    raw = text.encode()
    for t in templates:
        for dtype in ("<f4", "<f8"):
            assert np.asarray(t, dtype=dtype).tobytes()[:16] not in raw
            assert base64.b64encode(np.asarray(t, dtype=dtype).tobytes()[:12]) not in raw
    receipt = back.receipt.as_json()
    assert "name" not in json.dumps(receipt).lower().replace("signer", "")
    assert made.revocation_secret not in raw and made.signing_key not in raw


def _resigned(shield: Shield, signing_key: bytes, **changes: object) -> Shield:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from reclaim.shield.protocol import ConsentReceipt

    d = shield.receipt.as_json() | changes
    d.pop("format")
    receipt = ConsentReceipt(**d)  # type: ignore[arg-type]
    key = Ed25519PrivateKey.from_private_bytes(signing_key)
    return Shield(
        shield.shield_id, shield.templates, receipt, key.sign(canonical_json(receipt.as_json()))
    )


def test_verify_refuses_forgeries(epoch: EpochSecret, intake: IntakeKey) -> None:
    made = make_shield(person(), intake, "I agree.")
    s = made.shield
    # a tampered receipt no longer verifies
    d = s.as_json()
    d["receipt"]["consent_text"] = "something else"
    with pytest.raises(ShieldRefused, match="signature"):
        Shield.from_json(d).verify(intake)
    # a swapped template: the receipt names other templates
    other = make_shield(person(), intake, "I agree.").shield
    swapped = Shield(s.shield_id, other.templates, s.receipt, s.signature)
    with pytest.raises(ShieldRefused, match="templates"):
        swapped.verify(intake)
    # made for another tenant or epoch of the same platform
    with pytest.raises(ShieldRefused, match="not for"):
        s.verify(epoch.intake_key("globex"))
    with pytest.raises(ShieldRefused, match="another intake key"):
        s.verify(EpochSecret.generate(2).intake_key("acme"))
    # too old, or from the future
    with pytest.raises(ShieldRefused, match="older than"):
        s.verify(intake, now=time.time() + MAX_RECEIPT_AGE_S + 10)
    with pytest.raises(ShieldRefused, match="future"):
        s.verify(intake, now=time.time() - 3600)
    # re-signed by her own key but pointing at another shield id
    moved = _resigned(s, made.signing_key, shield_id="0" * 32)
    with pytest.raises(ShieldRefused, match="another shield"):
        moved.verify(intake)


def test_loads_refuses_garbage() -> None:
    for bad in (b"", b"[]", b"{", b'{"format": "reclaim-shield/1"}', b"x" * (2 << 20)):
        with pytest.raises(ShieldRefused):
            Shield.loads(bad)
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(ShieldRefused):
        Shield.loads(deep)


def test_layer_keeps_scores_and_hides_codes(epoch: EpochSecret, intake: IntakeKey) -> None:
    layer = epoch.layer("acme")
    her = person(4)
    codes = intake.iom.codes(np.array(her))
    stored = layer.apply(codes)
    # scores are unchanged by the layer (equal stays equal, unequal stays unequal)
    clear_sim = (codes[:, None, :] == codes[None]).mean(-1)
    layered_sim = (stored[:, None, :] == stored[None]).mean(-1)
    assert np.array_equal(clear_sim, layered_sim)
    # but stored codes do not equal the intake codes position by position (≈ 1/q agree)
    assert (stored == codes).mean() < 0.15
    # another tenant's layer is unrelated
    assert (epoch.layer("globex").apply(codes) == stored).mean() < 0.15
    made = make_shield(her[:3], intake, "ok")
    assert layer.protect(made.shield.templates[0], intake) == stored[0].tobytes()
    with pytest.raises(ShieldRefused):
        layer.protect(made.shield.templates[0], epoch.intake_key("globex"))


def test_her_other_photos_score_above_threshold_strangers_below(intake: IntakeKey) -> None:
    her = person(6)
    codes = intake.iom.codes(np.array(her))
    enrolled, probes = codes[:3], codes[3:]
    strangers = intake.iom.codes(np.array([t for _ in range(20) for t in person(1)]))
    thr = population().threshold
    mine = shield_score((probes[:, None, :] == enrolled[None]).mean(-1))
    theirs = shield_score((strangers[:, None, :] == enrolled[None]).mean(-1))
    assert (mine >= thr).all(), mine
    assert (theirs < thr).all(), theirs


def test_revocation_commitment(intake: IntakeKey) -> None:
    made = make_shield(person(), intake, "ok")
    c = made.shield.receipt.revocation_commitment
    assert check_revocation(base64.b64encode(made.revocation_secret).decode(), c)
    assert not check_revocation(base64.b64encode(bytes(32)).decode(), c)
    assert not check_revocation("not base64!", c)
    assert not check_revocation(base64.b64encode(made.revocation_secret[:16]).decode(), c)


def test_layer_is_a_bijection_per_hash_function() -> None:
    layer = PlatformLayer(bytes(range(32)))
    assert sorted(layer.perm.tolist()) == list(range(layer.m))
    assert all(sorted(row.tolist()) == list(range(layer.q)) for row in layer.relabel)
