"""The manipulation check's result as typed records, from :func:`reclaim.detectors.check.
check_media` to its readers (``reclaim check``, the scan and the case store, the web pages, the
evidence pack).

:meth:`CheckResult.to_json` is the one place the result becomes JSON and
:meth:`CheckResult.from_json` the one place it is read back: ``reclaim check --json`` prints it
and cases store it (``checks.record``), with the keys, key order and values written since the
check first went into cases (issue 6), so a case made before reads and rewrites the same bytes.
Scores are kept as they are output: rounded to 4 decimals (``raw``: 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reclaim.verdicts import FLAGGED, CheckLevel, Verdict

if TYPE_CHECKING:
    from reclaim.detectors.base import ForensicSignal
    from reclaim.detectors.provenance import Finding

__all__ = ["CheckResult", "Evidence", "PixelEvidence", "ProvenanceEvidence", "evidence_from_json"]


@dataclass(frozen=True)
class ProvenanceEvidence:
    """One piece of provenance evidence (metadata, C2PA, watermark): near-certain when strong."""

    name: str  # e.g. "c2pa", "iptc_digital_source_type", "exif_software", "sd_watermark"
    score: float
    kind: str  # "generated" | "edited" | "info"
    evidence: dict[str, str]  # {"en": ..., "fr": ...}
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, f: Finding) -> ProvenanceEvidence:
        return cls(f.name, round(float(f.score), 4), f.kind, dict(f.evidence), f.details)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "score": self.score,
            "kind": self.kind,
            "evidence": dict(self.evidence),
            "details": self.details,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ProvenanceEvidence:
        return cls(d["name"], d["score"], d["kind"], d["evidence"], d.get("details", {}))


@dataclass(frozen=True)
class PixelEvidence:
    """One pixel signal (:class:`~reclaim.detectors.base.ForensicSignal` without its maps), and
    whether the fused verdict reads it."""

    name: str  # e.g. "face_consistency", "face_blend", "synthetic_image", "clip_generated"
    score: float  # calibrated, [0, 1]
    kind: str  # "generated" | "edited"
    evidence: dict[str, str]  # {"en": ..., "fr": ...}
    raw: float = 0.0  # the detector's own output
    details: dict[str, Any] = field(default_factory=dict)
    #: Read by the fused verdict (the fit keeps only the signals that help on calib; the others
    #: are shown as evidence but move nothing). None: not said (checks stored before 84ab1d0).
    in_verdict: bool | None = None

    @classmethod
    def of(cls, s: ForensicSignal, in_verdict: bool) -> PixelEvidence:
        return cls(
            s.name,
            round(float(s.score), 4),
            s.kind,
            dict(s.evidence),
            round(float(s.raw), 5),
            s.details,
            in_verdict,
        )

    def to_json(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "score": self.score,
            "kind": self.kind,
            "evidence": dict(self.evidence),
            "raw": self.raw,
            "details": self.details,
        }
        if self.in_verdict is not None:
            out["in_verdict"] = self.in_verdict
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PixelEvidence:
        return cls(
            d["name"],
            d["score"],
            d["kind"],
            d["evidence"],
            d["raw"],
            d.get("details", {}),
            d.get("in_verdict"),
        )


Evidence = ProvenanceEvidence | PixelEvidence


def evidence_from_json(d: dict[str, Any]) -> Evidence:
    """A signal read back: pixel signals are the ones with a ``raw`` output."""
    return PixelEvidence.from_json(d) if "raw" in d else ProvenanceEvidence.from_json(d)


@dataclass(frozen=True)
class CheckResult:
    """Is this item generated or manipulated, and why (:mod:`reclaim.detectors.check`)."""

    sha256: str
    kind: str  # "photo" | "video"
    format: str
    verdict: Verdict
    score: float  # the verdict's score, rounded to 4 decimals
    summary: dict[str, str]  # the verdict in one or two sentences, {"en": ..., "fr": ...}
    signals: tuple[Evidence, ...]  # provenance and pixel evidence, strongest first
    checks: dict[str, str]  # what ran, per step: "checked" or "not checked: why"
    #: NudeNet triage, not part of the score (``reclaim.detectors.nudity``: ``as_dict`` for a
    #: photo, ``combine`` for a video); None when not run.
    nudity: dict[str, Any] | None = None
    maps: tuple[str, ...] = ()  # explanation images written (``reclaim check --maps``)
    error: str | None = None  # what could not be checked (the rest was)
    level: CheckLevel | None = None  # set by the scan: how much of the check ran
    path: str | None = None  # set by ``check_file``: the file checked

    @property
    def flagged(self) -> bool:
        """The verdict flags the item (shown first, highlighted)."""
        return self.verdict in FLAGGED

    def to_json(self) -> dict[str, Any]:
        """The record as ``reclaim check --json`` prints it and cases store it."""
        out: dict[str, Any] = {} if self.path is None else {"path": self.path}
        out.update(
            {
                "sha256": self.sha256,
                "kind": self.kind,
                "format": self.format,
                "verdict": self.verdict.value,
                "score": self.score,
                "summary": self.summary,
                "signals": [s.to_json() for s in self.signals],
                "checks": self.checks,
                "nudity": self.nudity,
            }
        )
        if self.maps:
            out["maps"] = list(self.maps)
        if self.error is not None:
            out["error"] = self.error
        if self.level is not None:
            out["level"] = self.level.value
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CheckResult:
        """Read a record written by :meth:`to_json` (or by any version since issue 6)."""
        level = d.get("level")
        return cls(
            sha256=d["sha256"],
            kind=d["kind"],
            format=d["format"],
            verdict=Verdict(d["verdict"]),
            score=d["score"],
            summary=d["summary"],
            signals=tuple(evidence_from_json(s) for s in d["signals"]),
            checks=d["checks"],
            nudity=d.get("nudity"),
            maps=tuple(d.get("maps", ())),
            error=d.get("error"),
            level=None if level is None else CheckLevel(level),
            path=d.get("path"),
        )
