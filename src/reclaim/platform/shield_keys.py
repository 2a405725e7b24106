"""The platform's face-shield key file: one secret per key epoch, never in the database.

Each epoch's 32-byte secret gives, per tenant, the public intake key her reclaim makes a shield
under and the platform's secret layer over the stored codes
(``reclaim.shield.protocol.EpochSecret``). Whoever holds this file and the database can undo the
layer, so the file lives apart from the database and its backups (``--shield-keys PATH``; in
production a secret store). Format (JSON, mode 0600)::

    {"format": "reclaim-shield-keys/1",
     "epochs": [{"epoch": 1, "secret": "<base64>", "active": true, "created_at": "…Z"}, …]}

A new file starts with epochs 1 and 2 active: a renewal after a revocation must use another
epoch than the revoked shield (the same face under the same key gives the same shield), and her
side picks one it has not used. An *active* epoch is published and takes new shields; an
inactive one (retired after a suspected key leak) takes none, but the shields already made
under it keep matching until they are revoked. ``rotate`` adds a new active epoch (and can
retire others). Other processes of the service see a rotation at their next poll (the file's
modification time).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reclaim.errors import ReclaimError
from reclaim.shield.protocol import EpochSecret

__all__ = ["KEYS_FORMAT", "KeyEpoch", "ShieldKeyError", "ShieldKeys", "rotate"]

KEYS_FORMAT = "reclaim-shield-keys/1"
#: Epochs a new key file starts with, all active.
INITIAL_EPOCHS = (1, 2)


class ShieldKeyError(ReclaimError):
    """The key file is unreadable, malformed or readable by other users."""


@dataclass(frozen=True)
class KeyEpoch:
    secret: EpochSecret
    active: bool
    created_at: str

    @property
    def epoch(self) -> int:
        return self.secret.epoch

    def as_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "secret": base64.b64encode(self.secret.secret).decode("ascii"),
            "active": self.active,
            "created_at": self.created_at,
        }


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _parse(text: str, path: Path) -> list[KeyEpoch]:
    what = f"shield key file {path}"
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ShieldKeyError(f"{what} is not JSON: {e}") from e
    if not isinstance(data, dict) or data.get("format") != KEYS_FORMAT:
        raise ShieldKeyError(f"{what} is not a reclaim shield key file ({KEYS_FORMAT})")
    raw = data.get("epochs")
    if not isinstance(raw, list) or not raw:
        raise ShieldKeyError(f"{what} lists no key epoch")
    out: list[KeyEpoch] = []
    for entry in raw:
        try:
            epoch = entry["epoch"]
            if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch < 2**31:
                raise ValueError("bad epoch number")
            secret = base64.b64decode(str(entry["secret"]), validate=True)
            active = entry.get("active", True)
            if not isinstance(active, bool):
                raise ValueError("'active' must be true or false")
            created = str(entry.get("created_at", ""))
            out.append(KeyEpoch(EpochSecret(epoch, secret), active, created))
        except (KeyError, TypeError, ValueError, binascii.Error) as err:
            raise ShieldKeyError(f"{what}: a bad epoch entry ({err})") from err
    if len({k.epoch for k in out}) != len(out):
        raise ShieldKeyError(f"{what} lists an epoch twice")
    return sorted(out, key=lambda k: k.epoch)


def _dump(epochs: list[KeyEpoch]) -> bytes:
    doc = {"format": KEYS_FORMAT, "epochs": [k.as_json() for k in epochs]}
    return (json.dumps(doc, indent=1) + "\n").encode()


def _write_new(path: Path, data: bytes) -> Path:
    """``data`` in a new file beside ``path`` (mode 0600, synced); its path."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return tmp


def _read(path: Path) -> tuple[str, float]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ShieldKeyError(f"cannot read shield key file {path}: {e}") from e
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ShieldKeyError(
            f"shield key file {path} can be read by other users (mode "
            f"{stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}"
        )
    try:
        return path.read_text("utf-8"), st.st_mtime
    except (OSError, UnicodeDecodeError) as e:
        raise ShieldKeyError(f"cannot read shield key file {path}: {e}") from e


class ShieldKeys:
    """The key file's epochs, re-read when the file changes (``reload_if_changed``)."""

    def __init__(self, path: Path, epochs: list[KeyEpoch], mtime: float = 0.0) -> None:
        self.path = path
        self._epochs = {k.epoch: k for k in epochs}
        self._mtime = mtime
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True) -> ShieldKeys:
        """Read the key file; with ``create``, make it first when it does not exist (epochs 1
        and 2, fresh secrets, mode 0600). Several processes starting at once agree on one file."""
        p = Path(path)
        try:
            text, mtime = _read(p)
        except FileNotFoundError:
            if not create:
                raise ShieldKeyError(f"shield key file {p} does not exist") from None
            epochs = [KeyEpoch(EpochSecret.generate(e), True, _now()) for e in INITIAL_EPOCHS]
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
                tmp = _write_new(p, _dump(epochs))
                try:
                    os.link(tmp, p)  # fails if another process made it meanwhile: use theirs
                except FileExistsError:
                    pass
                finally:
                    tmp.unlink()
            except OSError as e:
                raise ShieldKeyError(f"cannot create shield key file {p}: {e}") from e
            text, mtime = _read(p)
        return cls(p, _parse(text, p), mtime)

    def reload_if_changed(self) -> bool:
        """Re-read the file when its modification time changed; True when it did. A file that
        became unreadable keeps the epochs already loaded (and raises)."""
        try:
            mtime = self.path.stat().st_mtime
        except OSError as e:
            raise ShieldKeyError(f"cannot read shield key file {self.path}: {e}") from e
        if mtime == self._mtime:
            return False
        text, mtime = _read(self.path)
        epochs = _parse(text, self.path)
        with self._lock:
            self._epochs = {k.epoch: k for k in epochs}
            self._mtime = mtime
        return True

    def epochs(self) -> list[KeyEpoch]:
        return sorted(self._epochs.values(), key=lambda k: k.epoch)

    def active(self) -> list[EpochSecret]:
        """Secrets of the epochs that take new shields (published as intake keys)."""
        return [k.secret for k in self.epochs() if k.active]

    def secret(self, epoch: int, *, active_only: bool = False) -> EpochSecret | None:
        k = self._epochs.get(epoch)
        if k is None or (active_only and not k.active):
            return None
        return k.secret


def rotate(path: str | Path, retire: tuple[int, ...] = ()) -> int:
    """Add a new active epoch to the key file (created first if missing) and mark the epochs in
    ``retire`` inactive; returns the new epoch. The file is replaced atomically (mode 0600)."""
    keys = ShieldKeys.open(path)
    epochs = keys.epochs()
    unknown = sorted(set(retire) - {k.epoch for k in epochs})
    if unknown:
        raise ShieldKeyError(f"no epoch {', '.join(map(str, unknown))} in {keys.path}")
    new = max(k.epoch for k in epochs) + 1
    kept = [KeyEpoch(k.secret, k.active and k.epoch not in retire, k.created_at) for k in epochs]
    kept.append(KeyEpoch(EpochSecret.generate(new), True, _now()))
    try:
        tmp = _write_new(keys.path, _dump(kept))
        os.replace(tmp, keys.path)
    except OSError as e:
        raise ShieldKeyError(f"cannot write shield key file {keys.path}: {e}") from e
    return new
