"""Stable Diffusion's invisible watermark: the ``invisible-watermark`` dwtDct mark that the
reference scripts (``StableDiffusionV1``, ``SDV2``) and SDXL pipelines embed, decoded with numpy +
PyWavelets + OpenCV exactly as the package decodes it, then tested statistically against each
payload (the decision rule was measured by bench/provenance.py)."""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from reclaim.detectors.provenance.base import Finding, bilingual


def _bits(payload: bytes) -> np.ndarray:
    """The payload's bits, most significant first (invisible-watermark's ``bytes`` mode)."""
    return np.unpackbits(np.frombuffer(payload, dtype=np.uint8))


_SDXL_BITS = np.array(
    [int(c) for c in bin(0b101100111110110010010000011110111011000110011110)[2:]], dtype=np.uint8
)


@dataclass(frozen=True)
class WatermarkPayload:
    key: str
    label: str
    bits: np.ndarray


#: The payloads Stability's software embeds: SD 1.x scripts ("StableDiffusionV1"), SD 2.x
#: scripts ("SDV2"), SDXL / diffusers' StableDiffusionXLWatermarker (48 fixed bits).
SD_PAYLOADS: tuple[WatermarkPayload, ...] = (
    WatermarkPayload("sd-v1", "StableDiffusionV1", _bits(b"StableDiffusionV1")),
    WatermarkPayload("sd-v2", "SDV2", _bits(b"SDV2")),
    WatermarkPayload("sdxl", "SDXL (48 bits)", _SDXL_BITS),
)

#: dwtDct parameters of invisible-watermark (EmbedMaxDct defaults: scales [0, 36, 36], block 4).
WM_SCALE = 36.0
WM_BLOCK = 4
WM_MIN_PIXELS = 256 * 256  # the package refuses smaller images
WM_MAX_PIXELS = 64_000_000
#: Decision rule (measured by bench/provenance.py). Blocks whose payload bit is 1 must read 1
#: more often than blocks whose bit is 0: by at least WM_MIN_CONTRAST (fraction of blocks) and
#: by WM_Z_MIN standard errors, the error inflated by the over-dispersion of the per-bit means
#: (image structure lines up with the payload when a row of blocks is a multiple of its length;
#: without this correction real 384-px photos reach z = 6.7 on the 48-bit SDXL payload).
WM_Z_MIN = 6.0
WM_MIN_CONTRAST = 0.1

_cv_mods: dict[str, Any] = {}


def _cv() -> tuple[Any, Any]:
    """(cv2, pywt), imported on first use: a scan that never checks pays for neither."""
    if not _cv_mods:
        _cv_mods["cv2"] = importlib.import_module("cv2")
        _cv_mods["pywt"] = importlib.import_module("pywt")
    return _cv_mods["cv2"], _cv_mods["pywt"]


def wm_block_scores(bgr: np.ndarray) -> np.ndarray:
    """Per-block bit reading of invisible-watermark's dwtDct decoder, in its block order.

    Exactly ``EmbedMaxDct.decode``: BGR → YUV (OpenCV), Haar DWT of the U channel cropped to a
    multiple of 4, 4×4 blocks of the approximation band in row-major order; each block reads 1
    when its largest-magnitude non-DC coefficient modulo 36 exceeds 18.
    """
    cv2, pywt = _cv()
    row, col = bgr.shape[:2]
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)
    ca1, _ = pywt.dwt2(yuv[: row // 4 * 4, : col // 4 * 4, 1], "haar")
    r, c = ca1.shape
    nb_r, nb_c = r // WM_BLOCK, c // WM_BLOCK
    if nb_r == 0 or nb_c == 0:
        return np.zeros(0)
    blocks = (
        ca1[: nb_r * WM_BLOCK, : nb_c * WM_BLOCK]
        .reshape(nb_r, WM_BLOCK, nb_c, WM_BLOCK)
        .transpose(0, 2, 1, 3)
        .reshape(-1, WM_BLOCK * WM_BLOCK)
    )
    pos = np.argmax(np.abs(blocks[:, 1:]), axis=1) + 1
    val = np.abs(blocks[np.arange(len(blocks)), pos])
    scores: np.ndarray = ((val % WM_SCALE) > 0.5 * WM_SCALE).astype(np.float64)
    return scores


@dataclass(frozen=True)
class WatermarkReading:
    payload: WatermarkPayload
    contrast: float  # P(read 1 | payload bit 1) - P(read 1 | payload bit 0), over blocks
    z_raw: float  # contrast in binomial standard errors
    z: float  # the same, corrected for over-dispersion of the per-bit means
    bit_errors: int  # bits read by position (mean above the average) that differ from payload
    exact: bool  # invisible-watermark's own reading (mean > 127/255) equals the payload
    blocks: int

    @property
    def detected(self) -> bool:
        return self.z >= WM_Z_MIN and self.contrast >= WM_MIN_CONTRAST

    def as_dict(self) -> dict[str, Any]:
        return {
            "payload": self.payload.label,
            "z": round(self.z, 2),
            "z_raw": round(self.z_raw, 2),
            "contrast": round(self.contrast, 3),
            "bit_errors": self.bit_errors,
            "bits": len(self.payload.bits),
            "exact": self.exact,
            "blocks": self.blocks,
            "detected": self.detected,
        }


def read_watermark(scores: np.ndarray, payload: WatermarkPayload) -> WatermarkReading:
    """Test block readings against one payload (repeated over the blocks in order).

    Under no watermark, whether a block reads 1 does not depend on the payload bit it would
    carry: the contrast is 0 up to noise. The noise is estimated twice: binomially (``z_raw``)
    and from the scatter of the per-bit means around their two group means (quasi-binomial
    dispersion ``phi``); ``z = z_raw / sqrt(max(phi, 1))``.
    """
    bits = payload.bits.astype(bool)
    n = len(bits)
    nblocks = len(scores)
    idx = np.arange(nblocks) % n
    sums = np.bincount(idx, weights=scores, minlength=n)
    counts = np.bincount(idx, minlength=n).astype(np.float64)
    means = sums / np.maximum(counts, 1)
    exact = bool(nblocks >= n and np.array_equal(means * 255 > 127, bits))
    bit_errors = int(np.count_nonzero((means > means.mean()) != bits))
    n1, n0 = float(counts[bits].sum()), float(counts[~bits].sum())
    p = float(scores.mean()) if nblocks else 0.0
    contrast = z_raw = z = 0.0
    if n1 > 0 and n0 > 0 and 0.0 < p < 1.0:
        m1, m0 = float(sums[bits].sum()) / n1, float(sums[~bits].sum()) / n0
        contrast = m1 - m0
        z_raw = contrast / math.sqrt(p * (1 - p) * (1 / n1 + 1 / n0))
        fitted = np.where(bits, m1, m0)
        phi = float(np.sum(counts * (means - fitted) ** 2) / (p * (1 - p)) / max(n - 2, 1))
        z = z_raw / math.sqrt(max(phi, 1.0))
    return WatermarkReading(payload, contrast, z_raw, z, bit_errors, exact, nblocks)


def sd_watermark(rgb: np.ndarray) -> list[WatermarkReading]:
    """Readings of every SD payload on an RGB uint8 image; [] when the image is too small."""
    h, w = rgb.shape[:2]
    if h * w < WM_MIN_PIXELS or h * w > WM_MAX_PIXELS:
        return []
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    scores = wm_block_scores(bgr)
    return [read_watermark(scores, p) for p in SD_PAYLOADS]


def watermark_findings(rgb: np.ndarray) -> list[Finding]:
    """The watermark finding of an RGB uint8 image (the best payload found), or none."""
    readings = sd_watermark(rgb)
    hits = [r for r in readings if r.detected]
    if not hits:
        return []
    best = max(hits, key=lambda r: r.z)
    n = len(best.payload.bits)
    return [
        Finding(
            "sd_watermark",
            0.97,
            "generated",
            bilingual(
                "The invisible watermark that Stable Diffusion's reference software adds to the "
                f"images it generates was found (payload “{best.payload.label}”, "
                f"{n - best.bit_errors}/{n} bits read, z = {best.z:.0f} standard errors where "
                "real photos stay below 4).",
                "Le filigrane invisible que le logiciel de référence de Stable Diffusion ajoute "
                f"aux images qu'il génère a été trouvé (message « {best.payload.label} », "
                f"{n - best.bit_errors}/{n} bits lus, z = {best.z:.0f} écarts-types alors que "
                "les vraies photos restent sous 4).",
            ),
            {"readings": [r.as_dict() for r in readings]},
        )
    ]
