"""Findings: a face in a scanned item that matches an enrolled person, with a calibrated score.

Distances are Euclidean distances between face descriptors (v3: dlib's network on the whole
face, its mirror and the inner face, plus SFace; ``faces/pipeline.py``), combined over an
enrollment's templates and turned into a score by the calibration (``faces/calibration.py``,
re-exported here). ``list_findings`` is what ``reclaim findings`` and the web app show;
``for_pack`` is what an evidence pack records of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reclaim.faces.calibration import (
    CALIBRATION_FILE,
    Calibration,
    calibration,
    combine_distances,
)
from reclaim.sources.base import Locator
from reclaim.store import CaseStore

__all__ = [
    "CALIBRATION_FILE",
    "Calibration",
    "Finding",
    "calibration",
    "combine_distances",
    "for_pack",
    "list_findings",
]


@dataclass(frozen=True)
class Finding:
    """A matching face: which item, where in it, how close, how sure, for whom."""

    enrollment: str
    item_sha256: str
    box: tuple[int, int, int, int]
    distance: float
    nearest: float
    mean: float
    score: float
    faces_matched: int
    kind: str
    locator: Locator | None
    sightings: int
    found_at: str
    frame: int | None = None
    timestamp_s: float | None = None
    face_size: int | None = None
    detector: str | None = None
    check: dict[str, Any] | None = None  # the item's manipulation check: verdict, score, level

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Finding:
        b = r["box"]
        return cls(
            enrollment=r["enrollment"],
            item_sha256=r["item_sha256"],
            box=(int(b[0]), int(b[1]), int(b[2]), int(b[3])),
            distance=float(r["distance"]),
            nearest=float(r["nearest"]),
            mean=float(r["mean"]),
            score=float(r["score"]),
            faces_matched=int(r["faces_matched"]),
            kind=str(r["kind"]),
            locator=r.get("locator"),
            sightings=int(r.get("sightings") or 0),
            found_at=str(r["found_at"]),
            frame=r.get("frame"),
            timestamp_s=r.get("timestamp_s"),
            face_size=r.get("face_size"),
            detector=r.get("detector"),
            check=r.get("check"),
        )

    def as_record(self) -> dict[str, Any]:
        """One JSON object for ``reclaim findings --json``."""
        loc = self.locator
        rec: dict[str, Any] = {
            "item_sha256": self.item_sha256,
            "locator": (
                {"kind": loc.kind, "path": loc.path, "member": loc.member, "meta": loc.meta}
                if loc is not None
                else None
            ),
            "where": loc.display() if loc is not None else None,
            "sightings": self.sightings,
            "enrollment": self.enrollment,
            "score": round(self.score, 4),
            "distance": round(self.distance, 4),
            "nearest": round(self.nearest, 4),
            "mean": round(self.mean, 4),
            "box": list(self.box),
            "kind": self.kind,
            "faces_matched": self.faces_matched,
            "found_at": self.found_at,
        }
        if self.frame is not None:
            rec["frame"] = self.frame
            rec["timestamp_s"] = self.timestamp_s
        rec["check"] = self.check
        return rec


def list_findings(store: CaseStore, name: str | None = None) -> list[Finding]:
    """Findings of a case (``CaseStore``), best first, each with its item's manipulation check
    (verdict, score, level; None when the item was not checked)."""
    checks = store.checks_summary()
    return [
        Finding.from_row({**r, "check": checks.get(r["item_sha256"])}) for r in store.findings(name)
    ]


def for_pack(store: CaseStore) -> dict[str, list[dict[str, Any]]]:
    """The findings of a case by item, as an evidence pack records them: a one-line summary,
    whose face, its score, distance and box."""
    found: dict[str, list[dict[str, Any]]] = {}
    for f in store.findings():
        found.setdefault(f["item_sha256"], []).append(
            {
                "summary": f"{f['enrollment']}: score {f['score']:.2f}, "
                f"distance {f['distance']:.3f}, face box {f['box']}",
                "enrollment": f["enrollment"],
                "score": f["score"],
                "distance": f["distance"],
                "box": f["box"],
            }
        )
    return found
