"""Keyed cancelable face templates: the schemes a face shield can be made with.

A face shield lets a platform recognise an enrolled person's face in uploads without holding her
face template. Each scheme here turns a clear descriptor (``reclaim.faces``, v3: 384 values,
compared by Euclidean distance) into a *protected template* under a secret key, and compares two
protected templates made under the same key. Different keys give unrelated templates of the same
face (a new key renews a revoked shield; each platform gets its own). The choice between them,
the threat model and the measured numbers: docs/shield.md (``bench/shield.py``).

- :class:`BioHash` — random projection onto orthonormalised Gaussian directions, one bit per
  direction (the sign); compared by Hamming distance, which estimates the angle between the two
  normalised descriptors (SimHash).
- :class:`IndexOfMax` — Index-of-Max hashing, Gaussian random projection variant (Jin et al.,
  2018): for each of ``m`` hash functions, the index of the largest of ``q`` random
  projections; compared by the share of equal indices. Rank-based: the values of the
  projections are dropped, only which one was largest is kept.

Both first *normalise* a descriptor (:class:`Normaliser`): subtract a public population mean
(descriptors of many people's faces all lie in a narrow cone; centred, their directions spread
over the sphere and random hyperplanes split them evenly), optionally append a constant (the
"lift", which brings back part of the Euclidean geometry face search is calibrated on), then
scale to unit length; both schemes then measure angles. The mean and lift are public
parameters (fitted on faces of people who are not enrolled), not part of the key.

The key (bytes, ≥ 16) is stretched with HKDF-SHA256 (info names the scheme and its parameters,
so one key gives independent parameters to each scheme) into a seed for numpy's ``Generator``.
numpy does not promise the same random stream forever, so a protected template carries a
fingerprint of the parameters it was made with (not of the person): templates made with other
parameters — another key, another scheme, or another numpy drawing other numbers from the same
key — are refused by :meth:`compare` (:class:`ShieldMismatch`) instead of silently failing to
match.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from reclaim.errors import ReclaimError
from reclaim.faces.describe import DESCRIPTOR_DIM

__all__ = [
    "MIN_KEY_BYTES",
    "BioHash",
    "IndexOfMax",
    "Normaliser",
    "ProtectedTemplate",
    "Scheme",
    "ShieldMismatch",
    "derive_rng",
]

#: Shortest secret key accepted (128 bits).
MIN_KEY_BYTES = 16
_MAGIC = b"RSH1"
_FINGERPRINT_BYTES = 8
_SCHEME_IDS = {"biohash": 1, "iom": 2}
_SCHEME_NAMES = {v: k for k, v in _SCHEME_IDS.items()}
_HEADER = struct.Struct(">4sB8sI")  # magic, scheme id, parameter fingerprint, payload length


class ShieldMismatch(ReclaimError):
    """Two protected templates that cannot be compared (other scheme, key or parameters)."""


def derive_rng(key: bytes, label: str) -> np.random.Generator:
    """numpy Generator seeded from ``key`` by HKDF-SHA256 with ``label`` as info: the same key
    and label always give the same stream (for one numpy version), other labels unrelated ones.

    Raises ValueError for a key shorter than :data:`MIN_KEY_BYTES`."""
    if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
        raise ValueError(f"a shield key is at least {MIN_KEY_BYTES} bytes")
    okm = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"reclaim shield " + label.encode()
    ).derive(key)
    return np.random.default_rng(np.random.SeedSequence(int.from_bytes(okm, "big")))


@dataclass(frozen=True)
class Normaliser:
    """Centre a descriptor on a public population mean, append the constant ``lift``, scale the
    result to unit length.

    Both schemes measure angles; face search measures Euclidean distances, and the length of a
    centred descriptor carries part of what they tell (a blurred or occluded face lies nearer
    the mean). Appending a constant before normalising makes the angle between two lifted
    vectors grow with their Euclidean distance, not only with their directions' (lift 0: pure
    direction; large lift: Euclidean, in ever smaller angles). bench/shield.py chose it."""

    mean: np.ndarray
    lift: float = 0.0

    @classmethod
    def fit(cls, descriptors: np.ndarray, *, lift: float = 0.0) -> Normaliser:
        """The mean of many people's descriptors (never an enrolled person's)."""
        x = np.asarray(descriptors, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError("fit the normaliser on an (n × dim) array, n ≥ 2")
        return cls(mean=x.mean(axis=0), lift=lift)

    @classmethod
    def uncentred(cls, dim: int = DESCRIPTOR_DIM) -> Normaliser:
        """Unit length only (no population mean known)."""
        return cls(mean=np.zeros(dim))

    @property
    def dim(self) -> int:
        """Values of a descriptor going in."""
        return int(self.mean.shape[0])

    @property
    def out_dim(self) -> int:
        """Values of a normalised vector (one more with a lift)."""
        return self.dim + (1 if self.lift else 0)

    def params(self) -> np.ndarray:
        """Everything the output depends on (for a scheme's fingerprint)."""
        return np.append(self.mean, self.lift)

    def __call__(self, descriptors: np.ndarray) -> np.ndarray:
        """(n × out_dim) unit vectors, float64."""
        x = np.asarray(descriptors, dtype=np.float64).reshape(-1, self.dim) - self.mean
        if self.lift:
            x = np.concatenate([x, np.full((x.shape[0], 1), self.lift)], axis=1)
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return np.asarray(x / np.maximum(n, 1e-12))


@dataclass(frozen=True)
class ProtectedTemplate:
    """One protected face template: the scheme, the fingerprint of the parameters it was made
    with, and its payload (packed bits or indices). ``bytes(t)`` / :meth:`from_bytes` round-trip;
    nothing else is stored, in particular no value of the clear descriptor."""

    scheme: str
    fingerprint: bytes
    payload: bytes

    def __bytes__(self) -> bytes:
        head = _HEADER.pack(_MAGIC, _SCHEME_IDS[self.scheme], self.fingerprint, len(self.payload))
        return head + self.payload

    @classmethod
    def from_bytes(cls, data: bytes) -> ProtectedTemplate:
        """Parse ``bytes(t)``; raises ShieldMismatch for anything else."""
        if len(data) < _HEADER.size:
            raise ShieldMismatch("not a protected face template (too short)")
        magic, sid, fp, n = _HEADER.unpack_from(data)
        if magic != _MAGIC or sid not in _SCHEME_NAMES or len(data) != _HEADER.size + n:
            raise ShieldMismatch("not a protected face template")
        return cls(scheme=_SCHEME_NAMES[sid], fingerprint=fp, payload=bytes(data[_HEADER.size :]))


class Scheme(Protocol):
    """What every protection scheme offers: one template at a time (``enroll``, ``compare``)
    and whole arrays for matching and benches (``codes``, ``similarity``)."""

    name: ClassVar[str]
    fingerprint: bytes

    def codes(self, descriptors: np.ndarray) -> np.ndarray: ...

    def similarity(self, codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray: ...

    def enroll(self, template: np.ndarray) -> ProtectedTemplate: ...

    def compare(self, a: ProtectedTemplate, b: ProtectedTemplate) -> float: ...


class _KeyedScheme:
    """Shared parts: fingerprint, enroll/compare around ``codes``/``similarity``."""

    name: ClassVar[str]
    fingerprint: bytes
    normaliser: Normaliser

    def _fingerprint(self, *params: np.ndarray) -> bytes:
        h = hashlib.sha256(self.name.encode())
        for p in params:
            h.update(np.ascontiguousarray(p, dtype=np.float64).tobytes())
        return h.digest()[:_FINGERPRINT_BYTES]

    def codes(self, descriptors: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def similarity(self, codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _payload_codes(self, payload: bytes) -> np.ndarray:
        raise NotImplementedError

    def enroll(self, template: np.ndarray) -> ProtectedTemplate:
        """The protected form of one clear descriptor."""
        code = self.codes(np.asarray(template).reshape(1, -1))[0]
        return ProtectedTemplate(self.name, self.fingerprint, code.tobytes())

    def compare(self, a: ProtectedTemplate, b: ProtectedTemplate) -> float:
        """Similarity in [0, 1] (higher: more alike) of two templates made by this scheme and
        key; raises ShieldMismatch for a template made otherwise."""
        for t in (a, b):
            if t.scheme != self.name or t.fingerprint != self.fingerprint:
                raise ShieldMismatch(
                    "this protected template was made with another scheme or key; "
                    "it cannot be compared here"
                )
        ca, cb = self._payload_codes(a.payload), self._payload_codes(b.payload)
        return float(self.similarity(ca[None], cb[None])[0, 0])


class BioHash(_KeyedScheme):
    """BioHashing: ``bits`` signs of projections of the normalised descriptor onto random
    orthonormal directions (blocks of at most ``dim`` Gaussian columns orthonormalised by QR).
    Codes: packed bits, ``bits / 8`` bytes. Similarity: 1 − Hamming distance / bits."""

    name: ClassVar[str] = "biohash"

    def __init__(self, key: bytes, normaliser: Normaliser, *, bits: int = 256) -> None:
        if bits <= 0 or bits % 8:
            raise ValueError("bits must be a positive multiple of 8")
        self.normaliser = normaliser
        self.bits = bits
        dim = normaliser.out_dim
        rng = derive_rng(key, f"biohash dim={dim} bits={bits}")
        blocks, left = [], bits
        while left:
            k = min(left, dim)
            q, _ = np.linalg.qr(rng.standard_normal((dim, k)))
            blocks.append(q.T)
            left -= k
        self._proj = np.concatenate(blocks, axis=0)  # (bits × dim), rows orthonormal per block
        self.fingerprint = self._fingerprint(self._proj, normaliser.params())

    def codes(self, descriptors: np.ndarray) -> np.ndarray:
        """(n × bits/8) uint8: packed signs of the projections."""
        y = self.normaliser(descriptors) @ self._proj.T
        return np.packbits(y > 0, axis=1)

    def signs(self, codes: np.ndarray) -> np.ndarray:
        """Packed codes as ±1 (n × bits) float32."""
        b = np.unpackbits(np.asarray(codes, dtype=np.uint8).reshape(-1, self.bits // 8), axis=1)
        return np.asarray(b, dtype=np.float32) * 2 - 1

    def similarity(self, codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
        """(na × nb) share of equal bits."""
        dot = self.signs(codes_a) @ self.signs(codes_b).T  # bits − 2·Hamming
        return np.asarray((dot.astype(np.float64) + self.bits) / (2 * self.bits))

    def _payload_codes(self, payload: bytes) -> np.ndarray:
        if len(payload) != self.bits // 8:
            raise ShieldMismatch("protected template of another length")
        return np.frombuffer(payload, dtype=np.uint8)


class IndexOfMax(_KeyedScheme):
    """Index-of-Max hashing (Gaussian random projection): for each of ``m`` hash functions,
    which of its ``q`` Gaussian projections of the normalised descriptor is largest. Codes:
    ``m`` indices (uint8, q ≤ 256). Similarity: share of hash functions with the same index
    (two unrelated faces agree on about 1/q of them)."""

    name: ClassVar[str] = "iom"

    def __init__(self, key: bytes, normaliser: Normaliser, *, m: int = 512, q: int = 16) -> None:
        if not 2 <= q <= 256 or m <= 0:
            raise ValueError("IoM needs m ≥ 1 hash functions of 2 ≤ q ≤ 256 projections")
        self.normaliser = normaliser
        self.m, self.q = m, q
        dim = normaliser.out_dim
        rng = derive_rng(key, f"iom dim={dim} m={m} q={q}")
        self._proj = rng.standard_normal((m * q, dim))  # hash function j: rows j·q … j·q + q − 1
        self.fingerprint = self._fingerprint(self._proj, normaliser.params())

    def codes(self, descriptors: np.ndarray) -> np.ndarray:
        """(n × m) uint8: the index of the largest projection of each hash function."""
        y = (self.normaliser(descriptors) @ self._proj.T).reshape(-1, self.m, self.q)
        return np.asarray(y.argmax(axis=2), dtype=np.uint8)

    def one_hot(self, codes: np.ndarray) -> np.ndarray:
        """(n × m·q) float32 indicator of each hash function's index."""
        c = np.asarray(codes, dtype=np.int64).reshape(-1, self.m)
        out = np.zeros((c.shape[0], self.m * self.q), dtype=np.float32)
        cols = c + np.arange(self.m) * self.q
        np.put_along_axis(out, cols, 1.0, axis=1)
        return out

    def similarity(self, codes_a: np.ndarray, codes_b: np.ndarray) -> np.ndarray:
        """(na × nb) share of hash functions with equal indices."""
        equal = self.one_hot(codes_a) @ self.one_hot(codes_b).T
        return np.asarray(equal.astype(np.float64) / self.m)

    def _payload_codes(self, payload: bytes) -> np.ndarray:
        if len(payload) != self.m:
            raise ShieldMismatch("protected template of another length")
        return np.frombuffer(payload, dtype=np.uint8)
