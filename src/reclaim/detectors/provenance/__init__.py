"""Provenance signals: what a file says about where it came from (no training, offline).

Four kinds of evidence, each near-certain when present and silent when absent, one module each:

- ``credentials``: **C2PA Content Credentials** (``c2pa-python``): validation state, actions,
  IPTC ``digitalSourceType``, claim generator, signature issuer. Read strictly offline.
- ``xmp``: IPTC ``Iptc4xmpExt:DigitalSourceType`` (and the IPTC AI-system fields),
  ``xmp:CreatorTool``, ``photoshop:Credit``, the ``xmpMM:History`` software agents.
- ``generators`` and ``exif``: PNG text chunks written by Automatic1111/Forge
  (``parameters``), ComfyUI (``prompt``/``workflow``), NovelAI, InvokeAI, Midjourney; EXIF
  Software / ImageDescription / UserComment of known generators and editors (``tools``);
  DeepFaceLab face-set data.
- ``watermark``: **Stable Diffusion's invisible watermark** (the ``invisible-watermark`` dwtDct
  mark of the reference scripts and SDXL pipelines), decoded as the package decodes it, then
  tested statistically.

Below them: ``base`` (:class:`Finding`), ``containers`` (JPEG segments, PNG and WebP chunks),
``sourcetypes`` (the IPTC vocabulary C2PA and XMP share); above them ``metadata`` gathers every
finding that needs no pixels. Each piece of evidence is a :class:`Finding` with a score in
[0, 1] (higher = more likely generated or manipulated), a kind (``generated`` / ``edited`` /
``info``) and a sentence in French and English. Absence of provenance proves nothing: most apps
and platforms strip it.
"""

from __future__ import annotations

from reclaim.detectors.provenance.base import DECISIVE, Finding, Kind
from reclaim.detectors.provenance.containers import (
    jpeg_segments,
    png_chunks,
    png_text,
    webp_chunks,
)
from reclaim.detectors.provenance.credentials import (
    C2PA_OFFLINE_SETTINGS,
    c2pa_findings,
    read_c2pa,
)
from reclaim.detectors.provenance.exif import exif_fields, exif_findings
from reclaim.detectors.provenance.generators import deepfacelab_findings, png_text_findings
from reclaim.detectors.provenance.metadata import metadata_findings
from reclaim.detectors.provenance.sourcetypes import classify_dst, dst_code
from reclaim.detectors.provenance.tools import TOOLS, Tool, ToolKind, match_tool
from reclaim.detectors.provenance.watermark import (
    SD_PAYLOADS,
    WM_BLOCK,
    WM_MAX_PIXELS,
    WM_MIN_CONTRAST,
    WM_MIN_PIXELS,
    WM_SCALE,
    WM_Z_MIN,
    WatermarkPayload,
    WatermarkReading,
    read_watermark,
    sd_watermark,
    watermark_findings,
    wm_block_scores,
)
from reclaim.detectors.provenance.xmp import xmp_findings, xmp_packets, xmp_properties

__all__ = [
    "C2PA_OFFLINE_SETTINGS",
    "DECISIVE",
    "SD_PAYLOADS",
    "TOOLS",
    "WM_BLOCK",
    "WM_MAX_PIXELS",
    "WM_MIN_CONTRAST",
    "WM_MIN_PIXELS",
    "WM_SCALE",
    "WM_Z_MIN",
    "Finding",
    "Kind",
    "Tool",
    "ToolKind",
    "WatermarkPayload",
    "WatermarkReading",
    "c2pa_findings",
    "classify_dst",
    "deepfacelab_findings",
    "dst_code",
    "exif_fields",
    "exif_findings",
    "jpeg_segments",
    "match_tool",
    "metadata_findings",
    "png_chunks",
    "png_text",
    "png_text_findings",
    "read_c2pa",
    "read_watermark",
    "sd_watermark",
    "watermark_findings",
    "webp_chunks",
    "wm_block_scores",
    "xmp_findings",
    "xmp_packets",
    "xmp_properties",
]
