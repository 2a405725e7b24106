"""Keyed cancelable face templates (reclaim.shield.schemes) on synthetic descriptors.

Synthetic people: descriptors of 384 values in a narrow cone like real ones (a common offset
shared by everybody, a per-person centre, per-photo noise), so that centring matters as it does
on real faces. Real faces: bench/shield.py.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from reclaim.errors import ReclaimError
from reclaim.shield import (
    BioHash,
    IndexOfMax,
    Normaliser,
    ProtectedTemplate,
    Scheme,
    ShieldMismatch,
    derive_rng,
)

DIM = 384
KEY_A = b"platform A key, 32 bytes long..."
KEY_B = b"platform B key, 32 bytes long..."


def people(n: int, photos: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n·photos × DIM) descriptors and their owner ids."""
    rng = np.random.default_rng(seed)
    common = np.full(DIM, 0.05)  # everybody's descriptors share a direction (a cone)
    centres = common + rng.normal(0, 0.05, (n, DIM))
    x = np.repeat(centres, photos, axis=0) + rng.normal(0, 0.02, (n * photos, DIM))
    return x.astype(np.float32), np.repeat(np.arange(n), photos)


@pytest.fixture(scope="module")
def normaliser() -> Normaliser:
    population, _ = people(300, 1, seed=1)  # other people than the ones enrolled below
    return Normaliser.fit(population)


SCHEMES = {
    "biohash": lambda key, nz: BioHash(key, nz, bits=256),
    "iom": lambda key, nz: IndexOfMax(key, nz, m=256, q=16),
}


@pytest.fixture(params=sorted(SCHEMES))
def make(request: pytest.FixtureRequest, normaliser: Normaliser):  # type: ignore[no-untyped-def]
    return lambda key: SCHEMES[request.param](key, normaliser)


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties count half."""
    gt = (pos[:, None] > neg[None, :]).mean()
    eq = (pos[:, None] == neg[None, :]).mean()
    return float(gt + eq / 2)


def test_same_key_gives_the_same_protected_template(make) -> None:  # type: ignore[no-untyped-def]
    x, _ = people(3, 1, seed=2)
    a, b = make(KEY_A), make(KEY_A)
    assert bytes(a.enroll(x[0])) == bytes(b.enroll(x[0]))
    assert a.compare(a.enroll(x[0]), b.enroll(x[0])) == 1.0
    assert bytes(a.enroll(x[0])) != bytes(a.enroll(x[1]))


def test_another_key_gives_unlinkable_templates(make) -> None:  # type: ignore[no-untyped-def]
    """One person's templates under two keys are no more alike than two people's."""
    x, _ = people(200, 1, seed=3)
    a, b = make(KEY_A), make(KEY_B)
    ca, cb = a.codes(x), b.codes(x)
    # Cross-key similarity is computed by either scheme object: the codes have the same form.
    s = a.similarity(ca, cb)
    same = np.diag(s)  # the same descriptor under key A and key B
    other = s[~np.eye(len(x), dtype=bool)]  # different people under key A and key B
    assert auc(same, other) < 0.6
    assert abs(same.mean() - other.mean()) < 0.02
    # ... while under one key the same descriptors are identical and others are not.
    assert np.all(np.diag(a.similarity(ca, ca)) == 1.0)
    assert a.similarity(ca, ca)[~np.eye(len(x), dtype=bool)].max() < 0.9


def test_genuine_pairs_are_closer_than_impostors(make) -> None:  # type: ignore[no-untyped-def]
    x, owner = people(40, 4, seed=4)
    s = make(KEY_A)
    sim = s.similarity(s.codes(x), s.codes(x))
    same = owner[:, None] == owner[None, :]
    off_diag = ~np.eye(len(x), dtype=bool)
    genuine, impostor = sim[same & off_diag], sim[~same]
    assert genuine.min() > impostor.max()
    assert auc(genuine, impostor) == 1.0


def test_without_centring_the_cone_costs_accuracy() -> None:
    """Why the normaliser subtracts a population mean: uncentred, every hyperplane through the
    origin misses the cone and most bits agree for everybody."""
    x, owner = people(40, 4, seed=5)
    pop, _ = people(300, 1, seed=6)
    centred = BioHash(KEY_A, Normaliser.fit(pop), bits=256)
    raw = BioHash(KEY_A, Normaliser.uncentred(DIM), bits=256)
    same = owner[:, None] == owner[None, :]
    gaps = []
    for s in (centred, raw):
        sim = s.similarity(s.codes(x), s.codes(x))
        gaps.append(sim[same].mean() - sim[~same].mean())
    assert gaps[0] > gaps[1] + 0.1


def test_protected_bytes_hold_no_float_of_the_clear_template(  # type: ignore[no-untyped-def]
    make, normaliser: Normaliser
) -> None:
    x, _ = people(5, 1, seed=7)
    s = make(KEY_A)
    for v in x:
        blob = bytes(s.enroll(v))
        values = [*v.astype(np.float32), *normaliser(v)[0]]
        for f in values:
            assert struct.pack("<f", f) not in blob and struct.pack(">f", f) not in blob
            assert struct.pack("<d", f) not in blob and struct.pack(">d", f) not in blob
        # The search itself can fail: the clear floats are found in a blob that holds them.
        leaky = blob + v.astype(np.float32).tobytes()
        assert struct.pack("<f", v[0]) in leaky


def test_round_trip_and_refusals(make) -> None:  # type: ignore[no-untyped-def]
    x, _ = people(2, 1, seed=8)
    a, b = make(KEY_A), make(KEY_B)
    t = a.enroll(x[0])
    back = ProtectedTemplate.from_bytes(bytes(t))
    assert back == t
    assert a.compare(back, a.enroll(x[0])) == 1.0
    with pytest.raises(ShieldMismatch):
        a.compare(t, b.enroll(x[0]))  # made under another key
    with pytest.raises(ShieldMismatch):
        ProtectedTemplate.from_bytes(bytes(t)[:-1])
    with pytest.raises(ShieldMismatch):
        ProtectedTemplate.from_bytes(b"RSH0" + bytes(t)[4:])
    assert issubclass(ShieldMismatch, ReclaimError)


def test_schemes_refuse_each_others_templates(normaliser: Normaliser) -> None:
    x, _ = people(1, 1, seed=9)
    bio = BioHash(KEY_A, normaliser, bits=256)
    iom = IndexOfMax(KEY_A, normaliser, m=32, q=16)
    with pytest.raises(ShieldMismatch):
        bio.compare(iom.enroll(x[0]), bio.enroll(x[0]))
    with pytest.raises(ShieldMismatch):
        iom.compare(iom.enroll(x[0]), bio.enroll(x[0]))


def test_key_derivation() -> None:
    a1 = derive_rng(KEY_A, "x").standard_normal(4)
    assert np.array_equal(a1, derive_rng(KEY_A, "x").standard_normal(4))
    assert not np.array_equal(a1, derive_rng(KEY_A, "y").standard_normal(4))  # other label
    assert not np.array_equal(a1, derive_rng(KEY_B, "x").standard_normal(4))  # other key
    with pytest.raises(ValueError, match="16 bytes"):
        derive_rng(b"short", "x")


def test_schemes_satisfy_the_protocol(normaliser: Normaliser) -> None:
    schemes: list[Scheme] = [BioHash(KEY_A, normaliser), IndexOfMax(KEY_A, normaliser, m=8)]
    assert [s.name for s in schemes] == ["biohash", "iom"]
    x, _ = people(3, 1, seed=10)
    for s in schemes:
        sim = s.similarity(s.codes(x), s.codes(x))
        assert sim.shape == (3, 3) and np.allclose(np.diag(sim), 1.0)
        assert abs(s.compare(s.enroll(x[0]), s.enroll(x[1])) - sim[0, 1]) < 1e-12


def test_lift_keeps_part_of_the_euclidean_geometry() -> None:
    """Two descriptors in the same direction from the mean but at other distances: the same
    point without a lift, apart with one; and templates made with another lift are refused."""
    mean = np.zeros(DIM)
    x = np.zeros((2, DIM))
    x[0, 0], x[1, 0] = 0.5, 1.5
    plain, lifted = Normaliser(mean), Normaliser(mean, lift=1.0)
    assert plain.out_dim == DIM and lifted.out_dim == DIM + 1
    assert np.allclose(plain(x)[0], plain(x)[1])
    assert float(lifted(x)[0] @ lifted(x)[1]) < 0.9
    assert np.allclose(np.linalg.norm(lifted(x), axis=1), 1.0)
    a, b = IndexOfMax(KEY_A, plain, m=16), IndexOfMax(KEY_A, lifted, m=16)
    with pytest.raises(ShieldMismatch):
        b.compare(a.enroll(x[0]), b.enroll(x[0]))
