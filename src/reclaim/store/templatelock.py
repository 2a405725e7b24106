"""Her face templates encrypted at rest under a passphrase (issue 20, property 5).

A case's templates are either all in the clear or all *locked* (one ``template_lock`` row, see
``store/schema.py``); ``reclaim lock-templates`` / ``unlock-templates`` switch between the two in
one transaction (``FaceStore.lock_templates``).

* **Key.** scrypt (``N = 2**16, r = 8, p = 1``: 64 MiB and ~0.2 s on the 2-core development
  machine; the parameters and a random 16-byte salt are stored with the lock, so a later
  reclaim can raise them) turns the passphrase (Unicode NFC, UTF-8) into a 256-bit key.
* **Templates.** Each is sealed with AES-256-GCM under that key: a fresh 96-bit random nonce
  per row, and associated data binding the enrollment id and the template's row id, so a sealed
  template copied onto another row or another enrollment does not open.
  Stored: ``MAGIC || nonce || ciphertext || tag`` in place of the clear descriptor.
* **Shields.** The JSON of each face shield she made (``store/shields.py``) is sealed the same
  way, with associated data binding its shield id: its protected templates are codes under the
  platform's *public* intake key, which a regression inverts to her face (docs/shield.md).
* **Verifier.** A fixed text sealed under the key with its own nonce tells a wrong passphrase
  (``WrongPassphrase``) before any template is touched.

Nothing else of the case is encrypted: items, faces found in the scanned material, findings,
decisions and packs work without the passphrase, and so do listing and revoking shields. Only
searching for her face (which needs her templates in the clear, in memory), enrolling (which
must seal the new templates), and making, exporting or sending a shield ask for it.
"""

from __future__ import annotations

import json
import os
import struct
import unicodedata
from base64 import b64decode, b64encode
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from reclaim.errors import InputError, StoreError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "MIN_PASSPHRASE_CHARS",
    "PASSPHRASE_ENV",
    "KdfParams",
    "Passphrase",
    "TemplateKey",
    "TemplatesLocked",
    "WrongPassphrase",
    "check_new_passphrase",
    "is_sealed",
    "locked_message",
]

#: Environment variable a command reads the passphrase from when it is set.
PASSPHRASE_ENV = "RECLAIM_TEMPLATE_PASSPHRASE"
#: Shortest passphrase accepted when locking (anyone holding the case file can try passphrases
#: offline, each try costing one scrypt): a few words are better than a short password.
MIN_PASSPHRASE_CHARS = 10

KDF_N = 2**16
KDF_R = 8
KDF_P = 1
SALT_BYTES = 16
NONCE_BYTES = 12
MAGIC = b"RCLT1"  # prefix of a sealed template (a clear one is raw float32 bytes)
_AAD_TEMPLATE = b"reclaim face template v1\x00"
_AAD_VERIFIER = b"reclaim template lock verifier v1\x00"
_AAD_SHIELD = b"reclaim face shield v1\x00"
_VERIFIER_TEXT = b"reclaim: this passphrase opens the face templates of this case"


class TemplatesLocked(InputError):
    """The case's face templates are locked and no (or a wrong) passphrase was given."""


class WrongPassphrase(TemplatesLocked):
    """The passphrase given does not open the case's face templates."""


def locked_message(action: str = "face search") -> str:
    return (
        f"the face templates of this case are locked with a passphrase: {action} needs it "
        f"(type it when asked, or use --passphrase-file or the {PASSPHRASE_ENV} environment "
        "variable)"
    )


def _normal(passphrase: str) -> bytes:
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def check_new_passphrase(passphrase: str) -> None:
    """Raise InputError when ``passphrase`` is too weak to lock templates with."""
    if len(passphrase.strip()) < MIN_PASSPHRASE_CHARS:
        raise InputError(
            f"choose a passphrase of at least {MIN_PASSPHRASE_CHARS} characters (a few words "
            "you will remember): whoever copies the case folder can try passphrases at leisure"
        )


@dataclass(frozen=True)
class KdfParams:
    """scrypt parameters and salt of a case's template lock (stored as JSON)."""

    salt: bytes
    n: int = KDF_N
    r: int = KDF_R
    p: int = KDF_P

    @classmethod
    def new(cls) -> KdfParams:
        return cls(salt=os.urandom(SALT_BYTES))

    def to_json(self) -> str:
        return json.dumps(
            {"kdf": "scrypt", "n": self.n, "r": self.r, "p": self.p,
             "salt": b64encode(self.salt).decode("ascii")}
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> KdfParams:
        try:
            d = json.loads(text)
            if d.get("kdf") != "scrypt":
                raise ValueError(f"unknown key derivation {d.get('kdf')!r}")
            params = cls(salt=b64decode(d["salt"]), n=int(d["n"]), r=int(d["r"]), p=int(d["p"]))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise StoreError(f"the case's template lock record is unreadable ({e})") from e
        if params.n < 2 or params.n & (params.n - 1) or params.n > 2**22 or len(params.salt) < 8:
            raise StoreError("the case's template lock record has unusable scrypt parameters")
        return params


def is_sealed(blob: bytes) -> bool:
    return blob[: len(MAGIC)] == MAGIC


class TemplateKey:
    """The key that opens a case's locked templates, derived once from the passphrase.

    Pass it wherever a ``passphrase`` is asked for to skip a second scrypt (a scan checks the
    passphrase when it starts, then searches with the key when it ends)."""

    def __init__(self, key: bytes, params: KdfParams) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(key) != 32:
            raise ValueError("a template key is 32 bytes")
        self._aead: AESGCM = AESGCM(key)
        self.params = params

    def __repr__(self) -> str:  # never the key
        return "TemplateKey(…)"

    @classmethod
    def derive(cls, passphrase: str, params: KdfParams) -> TemplateKey:
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        kdf = Scrypt(salt=params.salt, length=32, n=params.n, r=params.r, p=params.p)
        return cls(kdf.derive(_normal(passphrase)), params)

    def _seal(self, data: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return MAGIC + nonce + self._aead.encrypt(nonce, data, aad)

    def _open(self, blob: bytes, aad: bytes) -> bytes | None:
        from cryptography.exceptions import InvalidTag

        if not is_sealed(blob) or len(blob) < len(MAGIC) + NONCE_BYTES + 16:
            return None
        nonce = blob[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, blob[len(MAGIC) + NONCE_BYTES :], aad)
        except InvalidTag:
            return None

    @staticmethod
    def _aad(enrollment_id: int, template_id: int) -> bytes:
        return _AAD_TEMPLATE + struct.pack(">qq", enrollment_id, template_id)

    def seal(self, enrollment_id: int, template_id: int, clear: bytes) -> bytes:
        """The sealed form of one template, bound to its enrollment and row."""
        return self._seal(clear, self._aad(enrollment_id, template_id))

    def open(self, enrollment_id: int, template_id: int, sealed: bytes) -> bytes:
        """The clear template; StoreError when the row was altered or moved."""
        clear = self._open(sealed, self._aad(enrollment_id, template_id))
        if clear is None:
            raise StoreError(
                f"face template {template_id} of enrollment {enrollment_id} cannot be decrypted: "
                "it was altered or copied from elsewhere; unenroll and enroll again"
            )
        return clear

    @staticmethod
    def _shield_aad(shield_id: str) -> bytes:
        return _AAD_SHIELD + shield_id.encode("utf-8")

    def seal_shield(self, shield_id: str, text: str) -> bytes:
        """The sealed form of a shield's JSON (its protected templates are IoM codes under the
        platform's public intake key, which invert to her face), bound to its shield id."""
        return self._seal(text.encode("utf-8"), self._shield_aad(shield_id))

    def open_shield(self, shield_id: str, sealed: bytes) -> str:
        """The shield's JSON; StoreError when the row was altered, copied from another shield,
        or sealed under another lock."""
        clear = self._open(sealed, self._shield_aad(shield_id))
        if clear is None:
            raise StoreError(
                f"shield {shield_id} cannot be decrypted: it was altered, copied from another "
                "shield or locked under another passphrase; revoke it and make a new one"
            )
        return clear.decode("utf-8")

    def verifier(self) -> bytes:
        return self._seal(_VERIFIER_TEXT, _AAD_VERIFIER)

    def check(self, verifier: bytes) -> None:
        """Raise WrongPassphrase unless this key made ``verifier``."""
        if self._open(verifier, _AAD_VERIFIER) != _VERIFIER_TEXT:
            raise WrongPassphrase(
                "wrong passphrase: it does not open the face templates of this case"
            )


#: What the store and search accept for a locked case: the passphrase, or the key derived
#: from it once (``FaceStore.template_key``); None when none was given.
Passphrase: TypeAlias = str | TemplateKey | None
