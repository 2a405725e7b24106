"""Findings: a face in a scanned item that matches an enrolled person, with a calibrated score.

Distances are Euclidean distances between face descriptors (v3: dlib's network on the whole
face, its mirror and the inner face, plus SFace; ``faces/pipeline.py``), combined over an
enrollment's templates and turned into a score by the calibration (``faces/calibration.py``,
re-exported here). A finding (``Finding``, re-exported from the case store, which reads its row
by column name) is a face's closest match per enrollment and item; ``list_findings`` is what
``reclaim findings`` and the web app show, ``for_pack`` what an evidence pack records of them.
"""

from __future__ import annotations

from typing import Any

from reclaim.faces.calibration import (
    CALIBRATION_FILE,
    Calibration,
    calibration,
    combine_distances,
)
from reclaim.store import CaseStore, Finding

__all__ = [
    "CALIBRATION_FILE",
    "Calibration",
    "Finding",
    "calibration",
    "combine_distances",
    "for_pack",
    "list_findings",
]


def list_findings(store: CaseStore, name: str | None = None) -> list[Finding]:
    """Findings of a case (``CaseStore``), best first, each with its item's manipulation check
    (verdict, score, level; None when the item was not checked)."""
    return store.findings(name)


def for_pack(store: CaseStore) -> dict[str, list[dict[str, Any]]]:
    """The findings of a case by item, as an evidence pack records them: a one-line summary,
    whose face, its score, distance and box."""
    found: dict[str, list[dict[str, Any]]] = {}
    for f in store.findings():
        box = list(f.box)  # packs record it as a list: [left, top, right, bottom]
        found.setdefault(f.item_sha256, []).append(
            {
                "summary": f"{f.enrollment}: score {f.score:.2f}, "
                f"distance {f.distance:.3f}, face box {box}",
                "enrollment": f.enrollment,
                "score": f.score,
                "distance": f.distance,
                "box": box,
            }
        )
    return found
