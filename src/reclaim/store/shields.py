"""Face shields she gave platforms (issue 20): the ``shields`` table.

One row per shield: its pseudonymous id, whose enrollment it was made from, the platform (tenant
name and, when she gave one, its URL), the platform's key epoch, when it was made and revoked,
and what stays with her: the revocation secret, the shield's own signing key and the exported
shield (protected templates and consent receipt, never a clear template). What a shield means,
the custody entries and the case lock belong to ``reclaim.shield.case``; this part only writes
and reads rows, by column name, as ``ShieldRecord``.

**Sealed in a locked case** (issue 20, property 5). The shield's protected templates are IoM
codes under the platform's *public* intake key, and with that key a regression turns them back
into a descriptor that identifies her (docs/shield.md). So when the case's templates are locked
(``store/templatelock.py``), the ``shield`` column holds a *sealed envelope* instead of the
shield: JSON ``{"format": SEALED_FORMAT, "key_id", "template_count", "sealed"}``, where
``sealed`` is the shield's JSON under AES-256-GCM with the template key, bound to the shield id
(``TemplateKey.seal_shield``). ``key_id`` and ``template_count`` stay readable so that listing
and choosing a fresh key need no passphrase; the revocation secret and the signing key are not
biometric and stay as they are, so revoking needs none either. ``add_shield`` seals a new
shield of a locked case before it is written; ``seal_shields`` / ``open_shields`` are called by
``FaceStore.lock_templates`` / ``unlock_templates`` inside their own transactions.
"""

from __future__ import annotations

import json
import sqlite3
from base64 import b64decode, b64encode
from dataclasses import dataclass, field
from typing import Any

from reclaim.errors import StoreError
from reclaim.store.base import CaseBase, Columns
from reclaim.store.templatelock import (
    KdfParams,
    TemplateKey,
    TemplatesLocked,
    WrongPassphrase,
    locked_message,
)

#: ``format`` of the envelope a sealed shield is stored as.
SEALED_FORMAT = "reclaim-sealed-shield/1"


@dataclass(frozen=True)
class ShieldRecord:
    """One stored shield. The secret fields are left out of ``repr`` (and of any listing)."""

    shield_id: str
    enrollment_name: str
    platform: str
    platform_url: str | None
    epoch: int
    created_at: str
    revoked_at: str | None
    revocation_secret: bytes = field(repr=False)
    signing_key: bytes = field(repr=False)
    shield: str = field(repr=False)  # the exported shield (JSON text), or its sealed envelope

    @property
    def sealed(self) -> bool:
        """True when ``shield`` is the sealed envelope (the case's templates are locked):
        :func:`open_shield_text` with the template key gives the shield back."""
        return _sealed_envelope(self.shield) is not None

    @property
    def key_id(self) -> str:
        """The intake key it was made under (named in its consent receipt)."""
        env = _sealed_envelope(self.shield)
        if env is not None:
            return str(env.get("key_id", ""))
        return str(_receipt(self.shield).get("key_id", ""))

    @property
    def template_count(self) -> int:
        env = _sealed_envelope(self.shield)
        if env is not None:
            n = env.get("template_count")
            return n if isinstance(n, int) else 0
        try:
            templates = json.loads(self.shield).get("templates", [])
        except (ValueError, AttributeError):
            return 0
        return len(templates) if isinstance(templates, list) else 0


def _receipt(text: str) -> dict[str, Any]:
    try:
        r = json.loads(text).get("receipt", {})
    except (ValueError, AttributeError):
        return {}
    return r if isinstance(r, dict) else {}


def _sealed_envelope(text: str) -> dict[str, Any] | None:
    """The envelope of a sealed shield, or None for a shield in the clear."""
    if SEALED_FORMAT not in text[:200]:  # a clear shield never starts so; skip parsing it
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if isinstance(doc, dict) and doc.get("format") == SEALED_FORMAT:
        return doc
    return None


def seal_shield_text(key: TemplateKey, shield_id: str, text: str) -> str:
    """The sealed envelope of a shield's JSON ``text`` (see the module docstring)."""
    try:
        doc = json.loads(text)
        templates = doc.get("templates", [])
        key_id = doc.get("receipt", {}).get("key_id", "")
    except (ValueError, AttributeError) as e:
        raise StoreError(f"shield {shield_id} is unreadable; it cannot be sealed ({e})") from e
    return json.dumps(
        {
            "format": SEALED_FORMAT,
            "key_id": str(key_id),
            "template_count": len(templates) if isinstance(templates, list) else 0,
            "sealed": b64encode(key.seal_shield(shield_id, text)).decode("ascii"),
        }
    )


def open_shield_text(key: TemplateKey, shield_id: str, text: str) -> str:
    """The shield's JSON from its sealed envelope (``text`` in the clear is returned as is).
    StoreError when it does not open under ``key``."""
    env = _sealed_envelope(text)
    if env is None:
        return text
    try:
        blob = b64decode(str(env.get("sealed", "")).encode("ascii"), validate=True)
    except ValueError:
        blob = b""
    return key.open_shield(shield_id, blob)


def seal_shields(c: sqlite3.Connection, key: TemplateKey) -> int:
    """Seal, inside the caller's transaction, every shield of the case still in the clear
    (``FaceStore.lock_templates``). Returns how many were sealed. Wiping the clear copies from
    the files (secure_delete, VACUUM, WAL) is the caller's."""
    n = 0
    for rid, shield_id, text in c.execute("SELECT id, shield_id, shield FROM shields").fetchall():
        if _sealed_envelope(str(text)) is not None:
            continue  # sealed already (a shield made in the locked case)
        c.execute(
            "UPDATE shields SET shield = ? WHERE id = ?",
            (seal_shield_text(key, str(shield_id), str(text)), rid),
        )
        n += 1
    return n


def open_shields(c: sqlite3.Connection, key: TemplateKey) -> int:
    """Put, inside the caller's transaction, every sealed shield back in the clear
    (``FaceStore.unlock_templates``). Returns how many were opened. A revoked shield that does
    not open (sealed under an earlier lock that was dropped without its passphrase) is left as
    it is: nothing can use it any more. StoreError for an active one."""
    n = 0
    rows = c.execute("SELECT id, shield_id, shield, revoked_at FROM shields").fetchall()
    for rid, shield_id, text, revoked_at in rows:
        if _sealed_envelope(str(text)) is None:
            continue
        try:
            clear = open_shield_text(key, str(shield_id), str(text))
        except StoreError:
            if revoked_at is not None:
                continue
            raise
        c.execute("UPDATE shields SET shield = ? WHERE id = ?", (clear, rid))
        n += 1
    return n


def count_sealed(c: sqlite3.Connection, *, active_only: bool = False) -> int:
    """How many shields are sealed (of those not revoked, with ``active_only``)."""
    sql = "SELECT shield FROM shields" + (" WHERE revoked_at IS NULL" if active_only else "")
    return sum(_sealed_envelope(str(r[0])) is not None for r in c.execute(sql).fetchall())


SHIELD = Columns(
    ShieldRecord,
    "shield_id, enrollment_name, platform, platform_url, epoch, created_at, revoked_at, "
    "revocation_secret, signing_key, shield",
    epoch=int,
    revocation_secret=bytes,
    signing_key=bytes,
)


class ShieldStore(CaseBase):
    """Face shields: made, listed, revoked."""

    def add_shield(self, r: ShieldRecord, key: TemplateKey | None = None) -> None:
        """Store a new shield (committed before returning); ``r.shield`` is its clear JSON.
        When the case's templates are locked it is sealed under ``key`` (the template key)
        before it is written, so its clear form never reaches the database. Raises
        TemplatesLocked when they are locked and no key is given, WrongPassphrase when the lock
        is not ``key``'s, StoreError when its id is taken (ids are 128 random bits: only a
        replayed insert meets this)."""
        with self.transaction() as c:
            lock = c.execute("SELECT kdf FROM template_lock").fetchone()
            if lock is None:
                key = None  # not locked: kept in the clear, as the templates are
            elif key is None:
                raise TemplatesLocked(locked_message("making a shield"))
            elif KdfParams.from_json(str(lock[0])).salt != key.params.salt:
                raise WrongPassphrase("the case's template lock changed meanwhile; try again")
            if c.execute("SELECT 1 FROM shields WHERE shield_id=?", (r.shield_id,)).fetchone():
                raise StoreError(f"shield {r.shield_id} is already in this case")
            text = r.shield if key is None else seal_shield_text(key, r.shield_id, r.shield)
            c.execute(
                "INSERT INTO shields(shield_id, enrollment_name, platform, platform_url, epoch, "
                "created_at, revoked_at, revocation_secret, signing_key, shield) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    r.shield_id, r.enrollment_name, r.platform, r.platform_url, r.epoch,
                    r.created_at, r.revoked_at, r.revocation_secret, r.signing_key, text,
                ),
            )  # fmt: skip

    def shields(
        self, *, platform: str | None = None, enrollment: str | None = None
    ) -> list[ShieldRecord]:
        """Every shield (of ``platform``, of ``enrollment``), oldest first."""
        where: list[str] = []
        args: list[Any] = []
        if platform is not None:
            where.append("platform = ?")
            args.append(platform)
        if enrollment is not None:
            where.append("enrollment_name = ?")
            args.append(enrollment)
        return self._records(
            SHIELD,
            f"SELECT {SHIELD.sql} FROM shields "
            + (f"WHERE {' AND '.join(where)} " if where else "")
            + "ORDER BY id",
            tuple(args),
        )

    def shield(self, shield_id: str) -> ShieldRecord | None:
        """The shield with this exact id, or None."""
        rows = self._records(
            SHIELD, f"SELECT {SHIELD.sql} FROM shields WHERE shield_id = ?", (shield_id,)
        )
        return rows[0] if rows else None

    def shield_ids_with_prefix(self, prefix: str) -> list[str]:
        """Ids of shields starting with ``prefix`` (at most 2: enough to tell one from many)."""
        esc = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self.conn.execute(
            "SELECT shield_id FROM shields WHERE shield_id LIKE ? ESCAPE '\\' ORDER BY id LIMIT 2",
            (esc + "%",),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def sealed_shield_count(self, *, active_only: bool = False) -> int:
        """How many of this case's shields are sealed (not revoked ones only, with
        ``active_only``): unlocking a case without templates still needs the passphrase for
        them."""
        return count_sealed(self.conn, active_only=active_only)

    def mark_revoked(self, shield_id: str, at: str) -> bool:
        """Record the revocation of a shield not yet revoked. False when there is no such
        shield or it was already revoked (the first revocation's time is kept)."""
        with self.transaction() as c:
            cur = c.execute(
                "UPDATE shields SET revoked_at = ? WHERE shield_id = ? AND revoked_at IS NULL",
                (at, shield_id),
            )
        return cur.rowcount == 1

    def epochs_used(self, platform: str) -> set[int]:
        """The key epochs of ``platform`` that any shield of this case was made under, revoked
        or not: a renewal must use another (the same key would make the same codes)."""
        rows = self.conn.execute(
            "SELECT DISTINCT epoch FROM shields WHERE platform = ?", (platform,)
        ).fetchall()
        return {int(r[0]) for r in rows}

    def key_ids_used(self) -> set[str]:
        """The intake keys (``key_id``) any shield of this case was made under, whatever the
        platform's name or epoch number: a key is never used twice."""
        return {r.key_id for r in self.shields() if r.key_id}
