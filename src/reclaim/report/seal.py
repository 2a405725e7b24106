"""The case's signing key: every pack's seal is signed with it (Ed25519).

Hashes chained up to SEAL.json prove that nothing changed *since the seal*, but whoever rewrites
an original, the manifest, the custody log and the seal consistently passes a hash check. The
signature closes that: a rewritten seal no longer verifies with the case's key, and a forger who
re-signs it can only do so with another key, whose fingerprint differs from the one the person
gave out (``reclaim verify-pack --key FINGERPRINT``).

Where the key lives: ``CASE/keys/seal-ed25519.pem`` (PKCS#8, file mode 0600, folder 0700), its
public half beside it in ``seal-ed25519.pub.pem``, created on the first pack. It sits in the case
because it stands for the case: the case folder already holds the originals, so it must be kept
on an encrypted disk anyway, and whoever can read the case can already rewrite the evidence it
holds. The key is not encrypted by default, so that packs can be made without a prompt (also
from the local web app). Set ``RECLAIM_SEAL_PASSPHRASE`` when the key is first created to have it
encrypted (PKCS#8 with the best encryption ``cryptography`` offers); it is then needed for every
pack of that case.

Fingerprint: ``SHA256:`` and the hex SHA-256 of the raw 32-byte public key, in full (64 hex
digits): short enough to read out over the phone in groups of four, never truncated.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from reclaim.errors import InputError, StoreError

KEY_DIR = "keys"
PRIVATE_NAME = "seal-ed25519.pem"
PUBLIC_NAME = "seal-ed25519.pub.pem"
PASSPHRASE_ENV = "RECLAIM_SEAL_PASSPHRASE"
ALGORITHM = "Ed25519"

_HEX64 = re.compile(r"[0-9a-f]{64}")


def _raw(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(pub: Ed25519PublicKey) -> str:
    """``SHA256:<64 hex>`` of the raw public key."""
    return "SHA256:" + hashlib.sha256(_raw(pub)).hexdigest()


def public_key_pem(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_info(pub: Ed25519PublicKey) -> dict[str, str]:
    """What the manifest, the seal and the report show of the key."""
    return {
        "algorithm": ALGORITHM,
        "public_key": base64.b64encode(_raw(pub)).decode(),
        "fingerprint": fingerprint(pub),
    }


def public_key_from_info(info: Any) -> Ed25519PublicKey:
    """The key a seal names; ValueError with the reason when it does not name one."""
    if not isinstance(info, dict) or info.get("algorithm") != ALGORITHM:
        raise ValueError("it names no Ed25519 key")
    try:
        raw = base64.b64decode(str(info.get("public_key")), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as e:
        raise ValueError("its public key is not a valid Ed25519 key") from e


def verify_signature(pub: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        pub.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def key_path(case_root: Path) -> Path:
    return Path(case_root) / KEY_DIR / PRIVATE_NAME


def _passphrase() -> bytes | None:
    p = os.environ.get(PASSPHRASE_ENV)
    return p.encode() if p else None


def _load(path: Path) -> Ed25519PrivateKey:
    data = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=_passphrase())
    except TypeError as e:  # encrypted but no passphrase, or a passphrase for a plain key
        if _passphrase() is None:
            raise InputError(
                f"the case's signing key {path} is encrypted: set {PASSPHRASE_ENV}"
            ) from e
        raise InputError(f"{path}: {PASSPHRASE_ENV} is set but the key is not encrypted") from e
    except ValueError as e:
        if b"ENCRYPTED" in data:
            raise InputError(f"{path}: wrong {PASSPHRASE_ENV} for the case's signing key") from e
        raise StoreError(f"{path}: not a readable signing key ({e})") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise StoreError(f"{path}: not an Ed25519 key")
    return key


def load_or_create_key(case_root: Path) -> Ed25519PrivateKey:
    """The case's signing key, created (mode 0600) on first use.

    Two packs started at once create one key: the new key is written to a private temporary file
    and linked into place only if no key is there yet (``link`` never overwrites)."""
    path = key_path(case_root)
    if path.exists():
        return _load(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(path.parent, 0o700)
    key = Ed25519PrivateKey.generate()
    pw = _passphrase()
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(pw) if pw else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    tmp = path.with_name(f".{PRIVATE_NAME}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _load(path)  # another process made it first: use that one
    finally:
        tmp.unlink(missing_ok=True)
    (path.parent / PUBLIC_NAME).write_bytes(public_key_pem(key.public_key()))
    return key


def normalise_fingerprint(text: str) -> str | None:
    """``SHA256:<hex>`` from a fingerprint as a person may type it (any case, spaces or colons
    between groups, with or without the ``SHA256:`` prefix); None when it is not one."""
    t = text.strip()
    if t.lower().startswith("sha256:"):
        t = t[7:]
    t = re.sub(r"[\s:]", "", t).lower()
    return "SHA256:" + t if _HEX64.fullmatch(t) else None


def resolve_pin(spec: str) -> str:
    """The fingerprint ``verify-pack --key`` expects: given as a fingerprint, as a PEM public
    key file, as a file holding the fingerprint, or as a case folder (its own key)."""
    fp = normalise_fingerprint(spec)
    if fp:
        return fp
    p = Path(spec).expanduser()
    if p.is_dir():
        pub = p / KEY_DIR / PUBLIC_NAME
        if not pub.is_file():
            raise InputError(f"{p}: no signing key in this case (no {KEY_DIR}/{PUBLIC_NAME})")
        p = pub
    if not p.is_file():
        raise InputError(f"--key {spec!r}: neither a key fingerprint nor a readable file")
    data = p.read_bytes()
    if b"-----BEGIN PUBLIC KEY-----" in data:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as e:
            raise InputError(f"{p}: not a readable public key ({e})") from e
        if not isinstance(key, Ed25519PublicKey):
            raise InputError(f"{p}: not an Ed25519 public key")
        return fingerprint(key)
    fp = normalise_fingerprint(data.decode("utf-8", "replace"))
    if fp is None:
        raise InputError(f"{p}: holds neither a PEM public key nor a key fingerprint")
    return fp
