"""An upload's hashes as the platform's decoding pool computes them: the item's analysis, with
its PDQ in the flavours the service needs (``reclaim.hashes.pdq``), in one worker call.

The first flavour is the analysis's own PDQ (``analyze_in_worker(pdq_flavour=...)``): an upload
hashed in one flavour costs one PDQ, whichever it is. Each further flavour is computed in the
same call (``pdq_flavours_in_worker``). Runs in a worker (``DecodePool.run``), never on an event
loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reclaim.hashes.pdq import PDQSignal, pdq_flavour, pdq_flavours_in_worker
from reclaim.media import MediaLimits
from reclaim.media.sandbox import analyze_in_worker

if TYPE_CHECKING:
    from reclaim.faces.detect import FaceOptions
    from reclaim.store.case import ItemRecord

__all__ = ["hash_upload_in_worker"]


def hash_upload_in_worker(
    data: bytes,
    limits: MediaLimits,
    faces: FaceOptions | None,
    flavours: tuple[str, ...],
) -> tuple[ItemRecord, dict[str, tuple[str, int | None]]]:
    """The item (``analyze_in_worker``: its ``pdq`` in ``flavours[0]``) and a photo's PDQ by
    flavour, ``{flavour: (hex, quality)}`` in the order of ``flavours`` (empty for anything but
    a photo that was read, or when ``flavours`` is empty: then the item's PDQ is the registry's).
    Raises MediaError subclasses when a further flavour cannot be computed (MediaTooLarge: the
    full-size ``pytx`` flavour passed the memory ceiling); ValueError for an unknown flavour."""
    names = tuple(pdq_flavour(f).value for f in flavours)
    item = analyze_in_worker(data, limits, faces, names[0] if names else None)
    if item.error or not names:
        return item, {}
    own = next(((v, q) for n, v, q in item.signals if n == PDQSignal.name), None)
    if own is None:  # not a photo
        return item, {}
    out: dict[str, tuple[str, int | None]] = {names[0]: own}
    rest = tuple(f for f in dict.fromkeys(names[1:]) if f != names[0])
    if rest:
        out.update(pdq_flavours_in_worker(data, limits, rest))
    return item, out
