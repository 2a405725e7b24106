"""Tenants and their API tokens.

Tokens are stored as SHA-256 of the secret (they are 256-bit random, so a fast hash suffices)
and compared in constant time; a token's secret is shown once, at creation. Creating and naming
tenants is administration (the CLI), and authentication finds a token by its secret alone: those
methods are system-wide.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reclaim.platform.store.base import Columns, Conflict, StoreBase, named, system_wide

SCOPES = ("hash", "match", "curate", "review", "tokens", "fetch")
TOKEN_PREFIX = "rcl_"


@dataclass(frozen=True)
class Token:
    id: int
    tenant_id: int
    tenant: str
    name: str
    scopes: frozenset[str]


TOKEN = Columns(
    Token,
    "t.id, t.tenant_id, n.name AS tenant, t.name, t.scopes",
    scopes=lambda s: frozenset(s.split(",")),
)


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class TenantStore(StoreBase):
    """Tenants (system-wide) and each tenant's tokens."""

    @system_wide
    def create_tenant(self, name: str) -> int:
        try:
            with self.tx() as cur:
                row = self._q(
                    cur,
                    "INSERT INTO tenants (name, created_at) VALUES (?, ?) RETURNING id",
                    (name, time.time()),
                ).fetchone()
                return int(row[0])
        except Exception as e:
            if self._is_integrity_error(e):
                raise Conflict(f"tenant {name!r} already exists") from e
            raise

    @system_wide
    def tenant_id(self, name: str) -> int | None:
        row = self._one("SELECT id FROM tenants WHERE name = ?", (name,))
        return int(row[0]) if row else None

    @system_wide
    def ensure_tenant(self, name: str) -> int:
        tid = self.tenant_id(name)
        return tid if tid is not None else self.create_tenant(name)

    def create_token(self, tenant_id: int, name: str, scopes: Sequence[str]) -> str:
        """A new API token for the tenant; returns the secret (shown once, stored hashed)."""
        bad = sorted(set(scopes) - set(SCOPES))
        if bad or not scopes:
            raise ValueError(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(bad)}")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.tx() as cur:
            self._q(
                cur,
                "INSERT INTO tokens (tenant_id, name, token_hash, scopes, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (tenant_id, name, hash_token(secret), ",".join(sorted(set(scopes))), time.time()),
            )
        return secret

    @system_wide
    def token_for_secret(self, secret: str) -> Token | None:
        """Authentication: the live token whose secret this is."""
        digest = hash_token(secret)
        with self.tx(read=True) as cur:
            rows = named(
                self._q(
                    cur,
                    f"SELECT {TOKEN.sql}, t.token_hash FROM tokens t "
                    "JOIN tenants n ON n.id = t.tenant_id "
                    "WHERE t.token_hash = ? AND t.revoked_at IS NULL",
                    (digest,),
                )
            )
        if not rows:
            return None
        stored = str(rows[0].pop("token_hash"))
        if not hmac.compare_digest(stored, digest):
            return None
        return TOKEN.record(rows[0])

    def list_tokens(self, tenant_id: int) -> list[dict[str, Any]]:
        """The tenant's tokens: id, name, scopes, created_at, revoked_at (never the secret or
        its hash)."""
        rows = self._dicts(
            "SELECT id, name, scopes, created_at, revoked_at FROM tokens WHERE tenant_id = ? "
            "ORDER BY id",
            (tenant_id,),
        )
        return [{**r, "scopes": sorted(str(r["scopes"]).split(","))} for r in rows]

    def revoke_token(self, tenant_id: int, token_id: int) -> bool:
        """Revoke one of the tenant's tokens; False when it is not the tenant's or was revoked."""
        with self.tx() as cur:
            cur = self._q(
                cur,
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND tenant_id = ? "
                "AND revoked_at IS NULL",
                (time.time(), token_id, tenant_id),
            )
            return bool(cur.rowcount)
