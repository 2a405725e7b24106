"""The manipulation check's vocabulary, defined once: its verdicts and levels, and the verdicts'
names as people read them (CLI, web, reports).

The values are the strings stored in cases (``checks.verdict``, ``checks.level``) and written
by ``reclaim check --json``: a ``StrEnum`` compares equal to its string, so records made before
read the same.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """What the check concludes (:func:`reclaim.detectors.decide.verdict`)."""

    #: Provenance (C2PA, IPTC/XMP source type, generator metadata, watermark) says generated.
    GENERATED = "generated"
    #: Provenance says edited or assembled.
    EDITED = "edited"
    #: No decisive provenance, and the pixel detectors did not run.
    NO_PROVENANCE = "no provenance evidence"
    #: The fused pixel score reached the verdict's threshold; the deciding signal is an edit.
    LIKELY_MANIPULATED = "likely manipulated"
    #: The same, the deciding signal points to a generated image.
    LIKELY_GENERATED = "likely generated"
    #: No decisive provenance, and the fused pixel score stayed under the threshold.
    NO_EVIDENCE = "no strong evidence"
    #: No decisive provenance, and the pixel signals cannot tell: the image is too small or too
    #: compressed, or the signal that would decide disagrees with itself (issue 21).
    CANNOT_TELL = "cannot tell"


class CheckLevel(StrEnum):
    """How much of the check ``reclaim scan --check`` runs on each new item, least first."""

    #: Nothing.
    OFF = "off"
    #: Provenance from metadata (C2PA, XMP/IPTC, generator tags; ~0.2 ms an item).
    METADATA = "metadata"
    #: That, plus the pixel detectors on items where face search found a face.
    FACES = "faces"
    #: Everything ``reclaim check`` runs (own face detection, AI-image model, watermark).
    FULL = "full"


VERDICT_LABELS: dict[Verdict, dict[str, str]] = {
    Verdict.GENERATED: {"en": "GENERATED", "fr": "GÉNÉRÉE"},
    Verdict.EDITED: {"en": "EDITED", "fr": "RETOUCHÉE"},
    Verdict.NO_PROVENANCE: {
        "en": "no provenance evidence",
        "fr": "aucun élément de provenance",
    },
    Verdict.LIKELY_MANIPULATED: {"en": "LIKELY MANIPULATED", "fr": "PROBABLEMENT MANIPULÉE"},
    Verdict.LIKELY_GENERATED: {"en": "LIKELY GENERATED", "fr": "PROBABLEMENT GÉNÉRÉE"},
    Verdict.NO_EVIDENCE: {"en": "no strong evidence", "fr": "aucun indice fort"},
    Verdict.CANNOT_TELL: {"en": "cannot tell", "fr": "impossible de trancher"},
}

#: Verdicts that flag an item (shown first, highlighted).
FLAGGED = frozenset(
    {Verdict.GENERATED, Verdict.EDITED, Verdict.LIKELY_MANIPULATED, Verdict.LIKELY_GENERATED}
)


def verdict_label(verdict: str, lang: str) -> str:
    """The verdict as people read it in ``lang`` (``fr`` / ``en``); an unknown one as it is."""
    try:
        return VERDICT_LABELS[Verdict(verdict)][lang]
    except (ValueError, KeyError):
        return verdict
