"""reclaim's platform service (``reclaim serve-platform``): an HMA-compatible HTTP API.

Routes are grouped by role like Meta's Hasher-Matcher-Actioner blueprints: hashing ``/h``,
matching ``/m``, curation ``/c``, and reclaim's review queue ``/review``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    # Lazy: `reclaim scan` registers the serve-platform command without loading FastAPI/numba.
    if name in __all__:
        from reclaim.api import app

        return getattr(app, name)
    raise AttributeError(name)
