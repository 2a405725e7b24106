"""reclaim's platform service (``reclaim serve-platform``): an HMA-compatible HTTP API.

Routes are grouped by role like Meta's Hasher-Matcher-Actioner blueprints: hashing ``/h``,
matching ``/m``, curation ``/c``, and reclaim's review queue ``/review``.
"""

from reclaim.api.app import Settings, create_app

__all__ = ["Settings", "create_app"]
