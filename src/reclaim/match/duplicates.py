"""Near-duplicates inside a case: the items whose PDQ is within Meta's match distance of an
item's (a recompression, a resize, a small crop of the same picture), for the item page."""

from __future__ import annotations

from typing import Any

from reclaim.hashes.pdq import PDQ_MATCH_DISTANCE, PDQ_MIN_QUALITY, PdqHash
from reclaim.store import CaseStore

__all__ = ["near_duplicates"]


def near_duplicates(
    store: CaseStore, sha: str, max_distance: int = PDQ_MATCH_DISTANCE
) -> list[dict[str, Any]]:
    """Other items of the case whose PDQ is within ``max_distance`` bits of this one's, nearest
    first: sha256, distance and where the item was first seen. Hashes of a quality below
    ``PDQ_MIN_QUALITY`` (featureless pictures) are not matched on; an item without a PDQ
    (a video, an undecodable file) has none."""
    mine = store.item_signals(sha).get("pdq")
    if mine is None:
        return []
    me = PdqHash.from_hex(mine[0])
    out = []
    for row in store.pdq_signals(exclude=sha):
        quality = row["quality"]
        if quality is not None and quality < PDQ_MIN_QUALITY:
            continue
        d = me - PdqHash.from_hex(row["value"])
        if d <= max_distance:
            places = store.sightings_of(row["item_sha256"])
            out.append(
                {
                    "sha256": row["item_sha256"],
                    "distance": d,
                    "where": places[0].display() if places else "",
                }
            )
    return sorted(out, key=lambda r: r["distance"])
