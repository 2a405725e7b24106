"""What travels between her reclaim and a platform: intake keys, shields, consent receipts, and
the platform's secret layer. Both sides import this module; nothing here touches a store.

The flow (threat model: docs/shield.md):

1. The platform publishes, per tenant and key epoch, an **intake key** (:class:`IntakeKey`):
   public parameters of the protection scheme (Index-of-Max, m = 1,024, q = 16, lift 1.5 over
   the shipped population mean) and the public key of the projections. It is derived from the
   epoch's secret in the platform's key file (:class:`EpochSecret`), so one tenant's intake key
   says nothing about another's.
2. Her reclaim turns her enrollment's clear templates into protected templates under that key
   (:func:`make_shield`), never sending a clear one. The :class:`Shield` carries them, a
   pseudonymous id, and a :class:`ConsentReceipt` signed by a key made for this shield alone
   (one key per shield: a key shared by her shields would link them across platforms). The
   receipt commits to the templates (their SHA-256) and to a revocation secret that stays
   with her (its SHA-256).
3. The platform checks the shield (:meth:`Shield.verify`), then stores its templates only after
   applying its **secret layer** (:class:`PlatformLayer`: a secret permutation of the hash
   functions and a secret relabelling of each one's indices). Uploads' faces get the same two
   steps; equality counts, and so scores, are unchanged, but the database holds codes that the
   public intake key alone does not explain.
4. She revokes with her secret (:func:`check_revocation`); a renewal uses another epoch, whose
   key is unrelated, so the new shield is unlinkable to the old one.

Scores: :func:`shield_score` is face search's rule, ``(best + mean) / 2`` over the shield's
templates, on IoM similarities (share of equal indices); a face matches at
``score ≥ threshold`` (the shipped operating point, fitted by ``bench/shield.py``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from reclaim.errors import InputError
from reclaim.shield.schemes import (
    MIN_KEY_BYTES,
    IndexOfMax,
    Normaliser,
    ProtectedTemplate,
    ShieldMismatch,
    derive_rng,
)

__all__ = [
    "INTAKE_FORMAT",
    "MAX_TEMPLATES",
    "RECEIPT_FORMAT",
    "SCHEME",
    "SHIELD_FORMAT",
    "CodeSeal",
    "ConsentReceipt",
    "EpochSecret",
    "IntakeKey",
    "PlatformLayer",
    "Shield",
    "ShieldRefused",
    "check_revocation",
    "make_shield",
    "population",
    "revocation_commitment",
    "shield_score",
]

SHIELD_FORMAT = "reclaim-shield/1"
RECEIPT_FORMAT = "reclaim-consent/1"
INTAKE_FORMAT = "reclaim-shield-intake/1"
#: The shipped scheme (docs/shield.md, "Recommendation").
SCHEME: dict[str, Any] = {"name": "iom", "m": 1024, "q": 16, "lift": 1.5}
#: Templates per shield: an enrollment keeps 3; more is refused at intake.
MAX_TEMPLATES = 10
#: A receipt signed further in the future than this is refused (clock skew allowance).
MAX_CLOCK_SKEW_S = 600.0
#: A shield presented more than this long after its receipt was signed is refused.
MAX_RECEIPT_AGE_S = 30 * 86400.0
_REVOCATION_LABEL = b"reclaim shield revocation v1\x00"


class ShieldRefused(InputError):
    """A shield, intake key or revocation that is malformed, forged or not for this platform."""


# -- encodings ------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str, *, size: int | None = None, max_size: int = 1 << 16) -> bytes:
    if not isinstance(text, str) or len(text) > 4 * max_size // 3 + 4:
        raise ShieldRefused(f"{what}: expected base64 text")
    try:
        out = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise ShieldRefused(f"{what}: not valid base64") from e
    if size is not None and len(out) != size:
        raise ShieldRefused(f"{what}: expected {size} bytes, got {len(out)}")
    return out


def canonical_json(obj: Any) -> bytes:
    """The bytes a signature covers: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _field(d: Any, name: str, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(d, dict) or name not in d:
        raise ShieldRefused(f"{what}: missing '{name}'")
    v = d[name]
    if isinstance(v, bool) or not isinstance(v, kind):
        raise ShieldRefused(f"{what}: '{name}' has the wrong type")
    return v


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _parse_iso(text: str, what: str) -> float:
    try:
        tm = time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError as e:
        raise ShieldRefused(f"{what}: not a UTC time like 2026-12-07T10:00:00Z") from e
    import calendar

    return float(calendar.timegm(tm))


# -- the public population mean -------------------------------------------------------------------


@dataclass(frozen=True)
class Population:
    """The shipped normalisation (mean of faces of people who are not enrolled) and operating
    threshold: ``reclaim/models/shield_population.json`` (``training/shield_population.py``)."""

    mean: np.ndarray
    threshold: float
    digest: str  # sha256 hex of the mean's float64 bytes: both sides must use the same

    def normaliser(self) -> Normaliser:
        return Normaliser(mean=self.mean, lift=float(SCHEME["lift"]))


_POPULATION: Population | None = None


def population() -> Population:
    """The shipped population mean and threshold (loaded once)."""
    global _POPULATION
    if _POPULATION is None:
        from importlib.resources import files

        raw = json.loads(
            files("reclaim.models").joinpath("shield_population.json").read_text("utf-8")
        )
        mean = np.asarray(raw["mean"], dtype=np.float64)
        _POPULATION = Population(mean, float(raw["threshold"]), _mean_digest(mean))
    return _POPULATION


def _mean_digest(mean: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(mean, dtype="<f8").tobytes()).hexdigest()


# -- intake keys and the platform's secrets -------------------------------------------------------


@dataclass(frozen=True)
class IntakeKey:
    """What a platform publishes for one tenant and epoch: enough to make a shield for it."""

    platform: str  # the tenant's name at the service
    epoch: int
    key: bytes  # public: the projections' key
    population: str  # digest of the population mean the scheme is normalised with
    scheme: dict[str, Any] = field(default_factory=lambda: dict(SCHEME))

    @property
    def key_id(self) -> str:
        """Short public id of this key (names it in shields and receipts)."""
        return hashlib.sha256(b"reclaim intake key\x00" + self.key).hexdigest()[:32]

    @cached_property
    def iom(self) -> IndexOfMax:
        """The scheme under this key (projections drawn once: ~50 MB float64, cached)."""
        pop = population()
        if pop.digest != self.population:
            raise ShieldRefused(
                "this intake key was made for another population mean (another reclaim "
                "version): update reclaim on one side"
            )
        return IndexOfMax(
            self.key, pop.normaliser(), m=int(self.scheme["m"]), q=int(self.scheme["q"])
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "format": INTAKE_FORMAT,
            "platform": self.platform,
            "epoch": self.epoch,
            "key": _b64(self.key),
            "key_id": self.key_id,
            "population": self.population,
            "scheme": dict(self.scheme),
        }

    @classmethod
    def from_json(cls, d: Any) -> IntakeKey:
        what = "intake key"
        if _field(d, "format", str, what) != INTAKE_FORMAT:
            raise ShieldRefused(f"{what}: not a reclaim intake key ({INTAKE_FORMAT})")
        scheme = _field(d, "scheme", dict, what)
        if scheme != SCHEME:
            raise ShieldRefused(f"{what}: scheme {scheme!r} is not the one this reclaim uses")
        epoch = _field(d, "epoch", int, what)
        if not 1 <= epoch < 2**31:
            raise ShieldRefused(f"{what}: bad epoch")
        platform = _field(d, "platform", str, what)
        if not platform or len(platform) > 200:
            raise ShieldRefused(f"{what}: bad platform name")
        out = cls(
            platform=platform,
            epoch=epoch,
            key=_unb64(_field(d, "key", str, what), f"{what} key", size=32),
            population=_field(d, "population", str, what),
            scheme=dict(scheme),
        )
        if "key_id" in d and d["key_id"] != out.key_id:
            raise ShieldRefused(f"{what}: key_id does not match the key")
        return out


@dataclass(frozen=True)
class EpochSecret:
    """One key epoch's secret at the platform (32 random bytes, kept in its key file, never in
    the database). Everything per tenant is derived from it by HKDF."""

    epoch: int
    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_KEY_BYTES * 2:
            raise ValueError("an epoch secret is 32 bytes")

    @classmethod
    def generate(cls, epoch: int) -> EpochSecret:
        return cls(epoch, secrets.token_bytes(32))

    def _derive(self, label: str, tenant: str) -> bytes:
        info = f"reclaim shield {label} epoch={self.epoch} tenant=".encode() + tenant.encode()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(self.secret)

    def intake_key(self, tenant: str) -> IntakeKey:
        return IntakeKey(tenant, self.epoch, self._derive("intake", tenant), population().digest)

    def layer(self, tenant: str) -> PlatformLayer:
        return PlatformLayer(self._derive("layer", tenant))

    def code_seal(self, tenant_id: int) -> CodeSeal:
        """The key that seals the tenant's stored codes at rest (the platform's database holds
        only ciphertexts: see :class:`CodeSeal`)."""
        return CodeSeal(self._derive("storage", f"#{tenant_id}"), self.epoch, tenant_id)


class CodeSeal:
    """AES-256-GCM over each stored template's codes, bound to its tenant, epoch, shield and
    place in the shield. The secret layer alone does not protect a leaked database: an attacker
    who enrolled three shields of its own can solve it (bench/shield.py, "known pairs"), so the
    database holds only these ciphertexts; the key stays in the key file with the epoch's
    secret."""

    _LABEL = b"reclaim shield codes v1\x00"

    def __init__(self, key: bytes, epoch: int, tenant_id: int) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)
        self.epoch, self.tenant_id = epoch, tenant_id

    def _aad(self, shield_id: str, index: int) -> bytes:
        return self._LABEL + f"{self.tenant_id}|{self.epoch}|{shield_id}|{index}".encode()

    def seal(self, codes: bytes, shield_id: str, index: int) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, codes, self._aad(shield_id, index))

    def open(self, blob: bytes, shield_id: str, index: int) -> bytes | None:
        """The codes; None when the row was altered, moved, or sealed under another key."""
        from cryptography.exceptions import InvalidTag

        if len(blob) < 12 + 16:
            return None
        try:
            return self._aead.decrypt(blob[:12], blob[12:], self._aad(shield_id, index))
        except InvalidTag:
            return None


class PlatformLayer:
    """The platform's secret layer over IoM codes: hash function ``j`` moves to position
    ``perm[j]`` and its index ``v`` becomes ``relabel[j, v]``. Equal indices stay equal and
    unequal ones unequal, so similarities are unchanged."""

    def __init__(self, key: bytes, m: int = int(SCHEME["m"]), q: int = int(SCHEME["q"])) -> None:
        rng = derive_rng(key, f"platform layer m={m} q={q}")
        self.m, self.q = m, q
        self.perm = rng.permutation(m)
        self.relabel = np.stack([rng.permutation(q) for _ in range(m)]).astype(np.uint8)
        self.tag = hashlib.sha256(
            b"layer" + self.perm.astype("<i8").tobytes() + self.relabel.tobytes()
        ).digest()[:8]

    def apply(self, codes: np.ndarray) -> np.ndarray:
        """(n × m) uint8 codes under the intake key → the platform's stored form."""
        c = np.asarray(codes, dtype=np.int64).reshape(-1, self.m)
        out = np.empty_like(c, dtype=np.uint8)
        out[:, self.perm] = self.relabel[np.arange(self.m), c]
        return out

    def protect(self, t: ProtectedTemplate, intake: IntakeKey) -> bytes:
        """One intake template (checked against ``intake``) in stored form: m bytes."""
        scheme = intake.iom
        if t.scheme != scheme.name or t.fingerprint != scheme.fingerprint:
            raise ShieldRefused("a template of this shield was made under another intake key")
        if len(t.payload) != self.m:
            raise ShieldRefused("a template of this shield has the wrong length")
        codes = np.frombuffer(t.payload, dtype=np.uint8)
        if int(codes.max(initial=0)) >= self.q:
            raise ShieldRefused("a template of this shield holds an index out of range")
        return bytes(self.apply(codes[None])[0].tobytes())


def shield_score(similarities: np.ndarray) -> np.ndarray:
    """Per face, ``(best + mean) / 2`` over a shield's templates: ``similarities`` is
    (faces × templates); returns (faces,)."""
    s = np.asarray(similarities, dtype=np.float64)
    return np.asarray((s.max(axis=-1) + s.mean(axis=-1)) / 2)


# -- revocation -----------------------------------------------------------------------------------


def revocation_commitment(secret: bytes) -> str:
    """What the receipt (and the platform) keeps of her revocation secret: a SHA-256."""
    return hashlib.sha256(_REVOCATION_LABEL + secret).hexdigest()


def check_revocation(secret_b64: str, commitment: str) -> bool:
    """Does the presented secret (base64) open ``commitment``? Constant-time compare."""
    try:
        secret = _unb64(secret_b64, "revocation secret", size=32)
    except ShieldRefused:
        return False
    return hmac.compare_digest(revocation_commitment(secret), commitment)


# -- consent receipt and shield -------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentReceipt:
    """What she agreed to, when, for which platform and which templates; signed by the shield's
    own key. Carries no template and no name: a pseudonymous shield id only."""

    shield_id: str
    platform: str
    epoch: int
    key_id: str
    created_at: str  # UTC, ISO 8601 (seconds)
    lang: str
    consent_text: str
    templates_sha256: str
    revocation_commitment: str
    signer: str  # base64 raw Ed25519 public key of this shield

    def as_json(self) -> dict[str, Any]:
        return {"format": RECEIPT_FORMAT, **self.__dict__}

    @classmethod
    def from_json(cls, d: Any) -> ConsentReceipt:
        what = "consent receipt"
        if _field(d, "format", str, what) != RECEIPT_FORMAT:
            raise ShieldRefused(f"{what}: not a reclaim consent receipt ({RECEIPT_FORMAT})")
        kw: dict[str, Any] = {}
        for name, kind in cls.__annotations__.items():
            kw[name] = _field(d, name, int if kind == "int" else str, what)
        extra = set(d) - set(kw) - {"format"}
        if extra:
            raise ShieldRefused(f"{what}: unknown fields {sorted(extra)}")
        if not kw["consent_text"].strip() or len(kw["consent_text"]) > 10_000:
            raise ShieldRefused(f"{what}: the consent text is empty or too long")
        return cls(**kw)


def templates_digest(templates: Sequence[ProtectedTemplate]) -> str:
    h = hashlib.sha256(b"reclaim shield templates v1\x00")
    for t in templates:
        b = bytes(t)
        h.update(len(b).to_bytes(4, "big") + b)
    return h.hexdigest()


@dataclass(frozen=True)
class Shield:
    """A face shield as exported by her reclaim and sent to a platform's intake."""

    shield_id: str
    templates: tuple[ProtectedTemplate, ...]
    receipt: ConsentReceipt
    signature: bytes

    def as_json(self) -> dict[str, Any]:
        return {
            "format": SHIELD_FORMAT,
            "shield_id": self.shield_id,
            "templates": [_b64(bytes(t)) for t in self.templates],
            "receipt": self.receipt.as_json(),
            "signature": _b64(self.signature),
        }

    def dumps(self) -> str:
        return json.dumps(self.as_json(), indent=1, ensure_ascii=False)

    @classmethod
    def from_json(cls, d: Any) -> Shield:
        what = "shield"
        if _field(d, "format", str, what) != SHIELD_FORMAT:
            raise ShieldRefused(f"{what}: not a reclaim face shield ({SHIELD_FORMAT})")
        raw = _field(d, "templates", list, what)
        if not 1 <= len(raw) <= MAX_TEMPLATES:
            raise ShieldRefused(f"{what}: 1 to {MAX_TEMPLATES} templates expected")
        try:
            templates = tuple(
                ProtectedTemplate.from_bytes(_unb64(t, f"{what} template", max_size=4096))
                for t in raw
            )
        except ShieldMismatch as e:
            raise ShieldRefused(f"{what}: {e}") from e
        shield_id = _field(d, "shield_id", str, what)
        return cls(
            shield_id=shield_id,
            templates=templates,
            receipt=ConsentReceipt.from_json(_field(d, "receipt", dict, what)),
            signature=_unb64(_field(d, "signature", str, what), f"{what} signature", size=64),
        )

    @classmethod
    def loads(cls, text: str | bytes) -> Shield:
        if len(text) > 1 << 20:
            raise ShieldRefused("shield: larger than 1 MiB")
        try:
            return cls.from_json(json.loads(text))
        except (ValueError, RecursionError) as e:
            if isinstance(e, ShieldRefused):
                raise
            raise ShieldRefused(f"shield: not JSON ({e})") from e

    def verify(self, intake: IntakeKey, now: float | None = None) -> None:
        """Everything a platform checks before storing a shield; raises ShieldRefused with the
        reason: the receipt's signature, that it names this shield, platform, epoch and key and
        commits to these templates, its time, and that every template was made under
        ``intake``."""
        r = self.receipt
        if r.shield_id != self.shield_id or not _is_shield_id(self.shield_id):
            raise ShieldRefused("shield: its receipt names another shield, or a bad shield id")
        try:
            pub = Ed25519PublicKey.from_public_bytes(_unb64(r.signer, "signer", size=32))
            pub.verify(self.signature, canonical_json(r.as_json()))
        except (InvalidSignature, ValueError) as e:
            raise ShieldRefused("shield: the consent receipt's signature does not verify") from e
        if r.platform != intake.platform:
            raise ShieldRefused(f"shield: made for {r.platform!r}, not for {intake.platform!r}")
        if r.epoch != intake.epoch or r.key_id != intake.key_id:
            raise ShieldRefused("shield: made under another intake key of this platform")
        if r.templates_sha256 != templates_digest(self.templates):
            raise ShieldRefused("shield: its templates are not the ones the receipt names")
        if len(r.revocation_commitment) != 64:
            raise ShieldRefused("shield: the receipt lacks a revocation commitment")
        t = _parse_iso(r.created_at, "receipt time")
        now = time.time() if now is None else now
        if t > now + MAX_CLOCK_SKEW_S:
            raise ShieldRefused("shield: its receipt is dated in the future")
        if now - t > MAX_RECEIPT_AGE_S:
            raise ShieldRefused("shield: its receipt is older than 30 days; make a new shield")
        scheme = intake.iom
        for tpl in self.templates:
            if tpl.scheme != scheme.name or tpl.fingerprint != scheme.fingerprint:
                raise ShieldRefused("shield: a template was made under another intake key")


def _is_shield_id(s: str) -> bool:
    return len(s) == 32 and all(c in "0123456789abcdef" for c in s)


@dataclass(frozen=True)
class Made:
    """A new shield and what stays with her: the revocation secret and the shield's signing
    key (raw 32 bytes)."""

    shield: Shield
    revocation_secret: bytes
    signing_key: bytes


def make_shield(
    templates: Sequence[np.ndarray],
    intake: IntakeKey,
    consent_text: str,
    *,
    lang: str = "en",
    now: float | None = None,
) -> Made:
    """Her side: protect ``templates`` (clear descriptors) under ``intake``, sign a consent
    receipt with a new per-shield key, draw a revocation secret."""
    if not templates:
        raise InputError("a shield needs at least one template")
    if len(templates) > MAX_TEMPLATES:
        raise InputError(f"a shield holds at most {MAX_TEMPLATES} templates")
    scheme = intake.iom
    protected = tuple(scheme.enroll(np.asarray(t, dtype=np.float64)) for t in templates)
    shield_id = secrets.token_hex(16)
    secret = secrets.token_bytes(32)
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ts = time.time() if now is None else now
    receipt = ConsentReceipt(
        shield_id=shield_id,
        platform=intake.platform,
        epoch=intake.epoch,
        key_id=intake.key_id,
        created_at=_iso(math.floor(ts)),
        lang=lang,
        consent_text=consent_text,
        templates_sha256=templates_digest(protected),
        revocation_commitment=revocation_commitment(secret),
        signer=_b64(pub),
    )
    signature = key.sign(canonical_json(receipt.as_json()))
    raw_key = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return Made(Shield(shield_id, protected, receipt, signature), secret, raw_key)
