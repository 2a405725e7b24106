"""Every provenance finding that needs no pixels, in the order they are reported."""

from __future__ import annotations

from reclaim.detectors.provenance.base import Finding
from reclaim.detectors.provenance.containers import png_text
from reclaim.detectors.provenance.credentials import c2pa_findings
from reclaim.detectors.provenance.exif import exif_fields, exif_findings
from reclaim.detectors.provenance.generators import deepfacelab_findings, png_text_findings
from reclaim.detectors.provenance.xmp import xmp_findings
from reclaim.media.sniff import sniff


def metadata_findings(data: bytes, fmt: str | None = None) -> list[Finding]:
    """Every provenance finding that needs no pixels: C2PA, XMP, PNG text, EXIF, DeepFaceLab.

    Never raises for malformed files: unreadable parts are skipped (an unreadable C2PA
    manifest is itself reported).
    """
    if fmt is None:
        fmt = sniff(data[:64])[1]
    findings: list[Finding] = []
    findings += c2pa_findings(data, fmt)
    findings += xmp_findings(data, fmt)
    if fmt == "png":
        findings += png_text_findings(png_text(data))
    if fmt in ("jpeg", "png", "webp", "tiff", "heic", "avif"):
        findings += exif_findings(exif_fields(data))
    findings += deepfacelab_findings(data, fmt)
    return findings
