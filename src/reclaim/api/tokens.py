"""The tenant's own API tokens (``/tokens``): list them, revoke one.

Needs a token with the ``tokens`` scope (``reclaim platform-token NAME --scopes tokens``); no
other scope can see or revoke tokens, so a leaked ``match`` token cannot lock the tenant out.
The listing never holds a secret (or its stored hash). A revocation is written to the tenant's
audit log, and this process forgets the token at once (other processes within their token cache
TTL, 5 s by default). Another tenant's token id is "not found", and the attempt is audited in the
caller's own log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException

from reclaim.api.deps import PlatformDep, RowId, require
from reclaim.platform.store import Token

router = APIRouter(prefix="/tokens", tags=["tokens"])

TokensToken = Annotated[Token, Depends(require("tokens"))]


@router.get("")
def list_tokens(platform: PlatformDep, token: TokensToken) -> dict[str, list[dict[str, Any]]]:
    """``{"tokens": [{id, name, scopes, created_at, revoked_at}]}``, oldest first."""
    return {"tokens": platform.store.list_tokens(token.tenant_id)}


@router.delete("/{token_id}")
def revoke_token(token_id: RowId, platform: PlatformDep, token: TokensToken) -> dict[str, int]:
    """Revoke one of the tenant's tokens (at once in this process)."""
    if not platform.store.revoke_token(token.tenant_id, token_id):
        platform.audit(token, "token.revoke.not_found", f"token:{token_id}")
        raise HTTPException(404, f"token {token_id} not found (or already revoked)")
    platform.forget_token(token_id)
    platform.audit(token, "token.revoke", f"token:{token_id}")
    return {"revoked": token_id}
