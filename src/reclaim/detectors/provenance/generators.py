"""Generator signatures: the generation parameters and tool-specific text that AI image
generators write into their files (PNG text chunks of Automatic1111/Forge, Fooocus, ComfyUI,
NovelAI, InvokeAI, Midjourney; the same parameters in EXIF and XMP comments), and DeepFaceLab's
face-set data."""

from __future__ import annotations

import json
import re
from typing import Any

from reclaim.detectors.provenance.base import Finding, bilingual, clip
from reclaim.detectors.provenance.containers import jpeg_segments, png_chunks
from reclaim.detectors.provenance.tools import software_field_findings

_A1111 = re.compile(r"\bSteps: \d+, Sampler: |\bSteps: \d+,.*\bCFG scale: ", re.S)
_NEG_PROMPT = re.compile(r"^Negative prompt: ", re.M)


def parse_json(text: str) -> Any:
    """The JSON value of ``text``; None when it is not JSON."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def is_comfy_prompt(obj: Any) -> bool:
    """A ComfyUI prompt: node id → {class_type, inputs}."""
    return isinstance(obj, dict) and any(
        isinstance(v, dict) and "class_type" in v for v in obj.values()
    )


def is_comfy_workflow(obj: Any) -> bool:
    """A ComfyUI workflow: nodes and links of its editor."""
    return isinstance(obj, dict) and isinstance(obj.get("nodes"), list) and "links" in obj


def parameters_finding(source: str, field_name: str, text: str) -> Finding | None:
    """A1111-style generation parameters ("Steps: 20, Sampler: …") in any text field."""
    if not (_A1111.search(text) or (_NEG_PROMPT.search(text) and "Seed: " in text)):
        return None
    tool = "Stable Diffusion (Automatic1111 / Forge / SD.Next)"
    m = re.search(r"\bModel: ([^,\n]+)", text)
    model = f", model “{clip(m.group(1), 60)}”" if m else ""
    modele = f", modèle « {clip(m.group(1), 60)} »" if m else ""
    return Finding(
        "generator_metadata",
        0.98,
        "generated",
        bilingual(
            f"The {source} field “{field_name}” holds the generation parameters (prompt, steps, "
            f"sampler, seed) that {tool} writes into every image it generates{model}.",
            f"Le champ {source} « {field_name} » contient les paramètres de génération (prompt, "
            f"étapes, échantillonneur, graine) que {tool} inscrit dans chaque image qu'il "
            f"génère{modele}.",
        ),
        {"source": source, "field": field_name, "tool": tool, "excerpt": clip(text, 300)},
    )


def generator_finding(
    source: str, field_name: str, tool: str, what_en: str, what_fr: str, text: str
) -> Finding:
    """The finding of a generator's own signature (``what``) in the ``source`` field."""
    return Finding(
        "generator_metadata",
        0.98,
        "generated",
        bilingual(
            f"The {source} field “{field_name}” holds {what_en}, written by the AI image "
            f"generator {tool}.",
            f"Le champ {source} « {field_name} » contient {what_fr}, écrit par le générateur "
            f"d'images par IA {tool}.",
        ),
        {"source": source, "field": field_name, "tool": tool, "excerpt": clip(text, 300)},
    )


_PNG = "PNG text"
#: What a ComfyUI graph is, in words (PNG text chunks, and EXIF of its animated savers).
COMFY_PROMPT = ("a node graph of a generation", "le graphe de nœuds d'une génération")
COMFY_WORKFLOW = ("a generation workflow", "un workflow de génération")


def _png_parameters(text: dict[str, str]) -> list[Finding]:
    """Automatic1111/Forge parameters, or Fooocus' JSON settings, in the ``parameters`` chunk."""
    if "parameters" not in text:
        return []
    v = text["parameters"]
    f = parameters_finding(_PNG, "parameters", v)
    if f:
        return [f]
    obj = parse_json(v)
    if isinstance(obj, dict) and (
        "fooocus" in v.lower() or {"prompt", "negative_prompt", "steps"} <= set(obj)
    ):
        what = ("generation settings (JSON)", "des réglages de génération (JSON)")
        return [generator_finding(_PNG, "parameters", "Fooocus", *what, v)]
    return []


def _png_comfyui(text: dict[str, str]) -> list[Finding]:
    """ComfyUI's node graph (``prompt``) and workflow (``workflow``)."""
    out = []
    if "prompt" in text and is_comfy_prompt(parse_json(text["prompt"])):
        out.append(generator_finding(_PNG, "prompt", "ComfyUI", *COMFY_PROMPT, text["prompt"]))
    if "workflow" in text and is_comfy_workflow(parse_json(text["workflow"])):
        out.append(
            generator_finding(_PNG, "workflow", "ComfyUI", *COMFY_WORKFLOW, text["workflow"])
        )
    return out


def _png_novelai(text: dict[str, str]) -> list[Finding]:
    """NovelAI's name in ``Software`` / ``Source``, else its settings in ``Comment``."""
    software, source = text.get("Software", ""), text.get("Source", "")
    if "novelai" in software.lower() or "novelai" in source.lower():
        key = "Software" if "novelai" in software.lower() else "Source"
        what = ("the generator's name", "le nom du générateur")
        return [generator_finding(_PNG, key, "NovelAI", *what, software or source)]
    obj = parse_json(text["Comment"]) if "Comment" in text else None
    if isinstance(obj, dict) and {"steps", "sampler", "seed"} <= set(obj):
        what = (
            "generation settings (steps, sampler, seed, negative prompt)",
            "des réglages de génération (étapes, échantillonneur, graine, prompt négatif)",
        )
        return [generator_finding(_PNG, "Comment", "NovelAI", *what, text["Comment"])]
    return []


_INVOKEAI_KEYS = ("invokeai_metadata", "invokeai_graph", "sd-metadata", "Dream")


def _png_invokeai(text: dict[str, str]) -> list[Finding]:
    """InvokeAI's metadata (JSON), or its older ``Dream`` command line; the first key found."""
    for key in _INVOKEAI_KEYS:
        if key not in text:
            continue
        v = text[key]
        if key == "Dream":
            ok = re.search(r"\s-[sS]\s?\d+", v) is not None
        else:
            ok = isinstance(parse_json(v), dict)
        if ok:
            what = ("generation metadata", "des métadonnées de génération")
            return [generator_finding(_PNG, key, "InvokeAI", *what, v)]
    return []


def _png_midjourney(text: dict[str, str]) -> list[Finding]:
    """Midjourney's prompt and job ID in ``Description``."""
    desc = text.get("Description", "")
    if "Job ID:" in desc and re.search(r"Job ID: [0-9a-f-]{16,}", desc):
        what = ("a prompt and Midjourney job ID", "un prompt et l'identifiant de tâche Midjourney")
        return [generator_finding(_PNG, "Description", "Midjourney", *what, desc)]
    return []


def _parameters_in_any_chunk(text: dict[str, str]) -> list[Finding]:
    """A1111-style parameters under another keyword (some forks, re-savers): the first."""
    for key, v in text.items():
        f = parameters_finding(_PNG, key, v)
        if f:
            return [f]
    return []


#: Each generator's own signature in PNG text chunks, in the order findings are listed.
_PNG_SIGNATURES = (_png_parameters, _png_comfyui, _png_novelai, _png_invokeai, _png_midjourney)


def png_text_findings(text: dict[str, str]) -> list[Finding]:
    """Generator signatures in PNG text chunks, then the known tools named in ``Software`` or
    ``Source`` (captions may mention anything) that no signature already named."""
    out = [f for signature in _PNG_SIGNATURES for f in signature(text)]
    if not out:
        out = _parameters_in_any_chunk(text)
    seen = {str(f.details.get("tool")) for f in out}
    return out + software_field_findings(_PNG, text, ("Software", "Source"), seen)


def deepfacelab_findings(data: bytes, fmt: str) -> list[Finding]:
    """DeepFaceLab's face-set data: a pickled dict in JPEG APP15 (DFLJPG) or PNG ``fcWp``."""
    hit = ""
    if fmt == "jpeg":
        for marker, payload in jpeg_segments(data):
            if (
                marker == 0xEF
                and payload[:1] == b"\x80"
                and (b"landmarks" in payload or b"face_type" in payload)
            ):
                hit = "JPEG APP15"
                break
    elif fmt == "png":
        for ctype, payload in png_chunks(data):
            if ctype == b"fcWp" and (b"landmarks" in payload or b"face_type" in payload):
                hit = "PNG fcWp"
                break
    if not hit:
        return []
    return [
        Finding(
            "generator_metadata",
            0.85,
            "edited",
            bilingual(
                f"The file carries DeepFaceLab face-set data ({hit}: face landmarks, face "
                "type): it is a face extracted to train or run a face swap.",
                f"Le fichier contient des données de jeu de visages DeepFaceLab ({hit} : "
                "points du visage, type de visage) : c'est un visage extrait pour entraîner ou "
                "réaliser un échange de visage.",
            ),
            {"source": hit, "tool": "DeepFaceLab"},
        )
    ]
