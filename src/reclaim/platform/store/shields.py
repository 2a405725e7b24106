"""Face shields (issue 20): each shield's receipt and revocation commitment, and its templates as
stored codes.

A shield's codes are what the platform matches uploads against: her protected templates after
the platform's secret layer (``reclaim.shield.protocol.PlatformLayer``), m = 1,024 bytes each.
Nothing here is a clear face template, and the store never sees one. Revocation deletes the
shield and its codes (on SQLite the freed pages are overwritten and the WAL is checkpointed, so
the codes leave the files too; PostgreSQL reclaims them at its next VACUUM).

Every method is the tenant's own except ``shield_versions``, which the shield index polls to see
which tenants' shields changed in another process.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reclaim.platform.store.base import Columns, Conflict, StoreBase, system_wide


@dataclass(frozen=True)
class ShieldRow:
    """A stored shield, without its codes."""

    id: int
    shield_id: str
    epoch: int
    created_at: float
    source: str  # "intake" | "token:ID:NAME"
    receipt: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "shield_id": self.shield_id,
            "epoch": self.epoch,
            "created_at": self.created_at,
            "source": self.source,
            "receipt": self.receipt,
        }


SHIELD = Columns(ShieldRow, "id, shield_id, epoch, created_at, source, receipt", receipt=json.loads)


class ShieldStore(StoreBase):
    """The tenant's face shields and their stored codes."""

    def add_shield(
        self,
        tenant_id: int,
        *,
        shield_id: str,
        epoch: int,
        source: str,
        receipt: dict[str, Any],
        revocation_commitment: str,
        codes: Sequence[bytes],
    ) -> int:
        """Store a checked shield and its codes in one transaction; its row id. Conflict when
        the tenant already holds a shield with this id."""
        if not codes:
            raise ValueError("a shield needs at least one template")
        try:
            with self.tx() as cur:
                row = self._q(
                    cur,
                    "INSERT INTO shields (tenant_id, shield_id, epoch, created_at, source, "
                    "receipt, revocation_commitment) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        tenant_id,
                        shield_id,
                        epoch,
                        time.time(),
                        source,
                        json.dumps(receipt, sort_keys=True, ensure_ascii=False),
                        revocation_commitment,
                    ),
                ).fetchone()
                rid = int(row[0])
                for c in codes:
                    self._q(
                        cur,
                        "INSERT INTO shield_templates (shield_row, tenant_id, epoch, codes) "
                        "VALUES (?, ?, ?, ?)",
                        (rid, tenant_id, epoch, bytes(c)),
                    )
                return rid
        except Exception as e:
            if self._is_integrity_error(e):
                raise Conflict(f"shield {shield_id!r} is already held here") from e
            raise

    def list_shields(self, tenant_id: int, limit: int = 100, after_id: int = 0) -> list[ShieldRow]:
        """The tenant's shields (never their codes), oldest first, after row ``after_id``."""
        return self._records(
            SHIELD,
            f"SELECT {SHIELD.sql} FROM shields WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?",
            (tenant_id, after_id, limit),
        )

    def count_shields(self, tenant_id: int) -> int:
        row = self._one("SELECT COUNT(*) FROM shields WHERE tenant_id = ?", (tenant_id,))
        return int(row[0])

    def shield_commitment(self, tenant_id: int, shield_id: str) -> str | None:
        """The commitment to the revocation secret of the tenant's shield (None: no such
        shield here)."""
        row = self._one(
            "SELECT revocation_commitment FROM shields WHERE tenant_id = ? AND shield_id = ?",
            (tenant_id, shield_id),
        )
        return str(row[0]) if row else None

    def delete_shield(self, tenant_id: int, shield_id: str) -> bool:
        """Delete the tenant's shield and every code of it; False when it is not the tenant's
        (nothing changed)."""
        with self.tx() as cur:
            row = self._q(
                cur,
                "SELECT id FROM shields WHERE tenant_id = ? AND shield_id = ?",
                (tenant_id, shield_id),
            ).fetchone()
            if row is None:
                return False
            rid = int(row[0])
            self._q(
                cur,
                "DELETE FROM shield_templates WHERE shield_row = ? AND tenant_id = ?",
                (rid, tenant_id),
            )
            self._q(cur, "DELETE FROM shields WHERE id = ? AND tenant_id = ?", (rid, tenant_id))
        self._purge()
        return True

    def shield_codes(self, tenant_id: int) -> list[tuple[str, int, bytes]]:
        """Every code of the tenant's shields as ``(shield_id, epoch, codes)``, grouped by
        shield (the shield index's load)."""
        with self.tx(read=True) as cur:
            rows = self._q(
                cur,
                "SELECT s.shield_id, t.epoch, t.codes FROM shield_templates t "
                "JOIN shields s ON s.id = t.shield_row AND s.tenant_id = t.tenant_id "
                "WHERE t.tenant_id = ? ORDER BY t.shield_row, t.id",
                (tenant_id,),
            ).fetchall()
        return [(str(r[0]), int(r[1]), bytes(r[2])) for r in rows]

    @system_wide
    def shield_versions(self) -> dict[int, tuple[int, int]]:
        """Per tenant holding shields: (highest shield row id, number of shields). Row ids are
        never reused, so any intake raises the first and any removal without an intake lowers
        the second: the shield index reloads a tenant whose pair changed."""
        rows = self._all("SELECT tenant_id, MAX(id), COUNT(*) FROM shields GROUP BY tenant_id")
        return {int(r[0]): (int(r[1]), int(r[2])) for r in rows}
