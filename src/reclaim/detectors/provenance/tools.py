"""Known generators and editors, as they name themselves in Software / CreatorTool /
softwareAgent fields (EXIF, XMP, PNG text), and the finding that naming one gives."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from reclaim.detectors.provenance.base import Finding, Kind, bilingual, clip

ToolKind = Literal["generator", "ai_editor", "editor"]


@dataclass(frozen=True)
class Tool:
    name: str
    kind: ToolKind
    pattern: re.Pattern[str]


def _t(name: str, kind: ToolKind, pattern: str) -> Tool:
    return Tool(name, kind, re.compile(pattern, re.IGNORECASE))


#: Curated: names as they appear in Software / CreatorTool / softwareAgent fields.
#: ``generator``: makes whole images; ``ai_editor``: swaps, regenerates or fills in faces or
#: parts of images with AI;
#: ``editor``: general editing software (saving through it says nothing about the content).
TOOLS: tuple[Tool, ...] = (
    _t("Midjourney", "generator", r"\bmidjourney\b"),
    _t("DALL·E (OpenAI)", "generator", r"\bdall[·\-\s]?e\b"),
    _t("OpenAI image generation", "generator", r"\bopenai\b|\bchatgpt\b|\bgpt-image|\bsora\b"),
    _t(
        "Stable Diffusion",
        "generator",
        r"stable[\s_-]?diffusion|\bsdxl\b|automatic1111|\bsd\.next\b|\bdreamstudio\b",
    ),
    _t("ComfyUI", "generator", r"\bcomfyui\b"),
    _t("NovelAI", "generator", r"\bnovelai\b"),
    _t("InvokeAI", "generator", r"\binvokeai\b"),
    _t("Fooocus", "generator", r"\bfooocus\b"),
    _t("Draw Things", "generator", r"\bdraw things\b"),
    _t("DiffusionBee", "generator", r"\bdiffusionbee\b"),
    _t("Adobe Firefly", "generator", r"\bfirefly\b"),
    _t("Google AI (Imagen/Gemini)", "generator", r"made with google ai|\bimagen\b|\bgemini\b"),
    _t(
        "Microsoft Designer / Bing Image Creator",
        "generator",
        r"bing image creator|microsoft designer",
    ),
    _t("Meta AI", "generator", r"\bmeta ai\b|imagined with ai"),
    _t("Leonardo.Ai", "generator", r"\bleonardo\.?ai\b"),
    _t("NightCafe", "generator", r"\bnightcafe\b"),
    _t("Ideogram", "generator", r"\bideogram\b"),
    _t("FLUX (Black Forest Labs)", "generator", r"\bflux\.1\b|black forest labs"),
    _t("Playground AI", "generator", r"\bplayground ?ai\b"),
    _t("Civitai", "generator", r"\bcivitai\b"),
    _t("Tensor.Art", "generator", r"\btensor\.art\b"),
    _t("SeaArt", "generator", r"\bseaart\b"),
    _t("Artbreeder", "generator", r"\bartbreeder\b"),
    _t("StyleGAN", "generator", r"\bstylegan"),
    _t("Grok (xAI)", "generator", r"\bgrok\b|\bxai\b"),
    _t("FaceApp", "ai_editor", r"\bfaceapp\b"),
    _t("Reface", "ai_editor", r"\breface\b"),
    _t("DeepFaceLab", "ai_editor", r"\bdeepfacelab\b|\bdfl(jpg|png)\b"),
    _t("DeepFaceLive", "ai_editor", r"\bdeepfacelive\b"),
    _t("faceswap", "ai_editor", r"\bface ?swap\b"),
    _t("FaceFusion", "ai_editor", r"\bfacefusion\b"),
    _t("roop", "ai_editor", r"\broop\b"),
    _t("Remini", "ai_editor", r"\bremini\b"),
    _t("Lensa", "ai_editor", r"\blensa\b"),
    _t("Facetune", "ai_editor", r"\bfacetune\b"),
    _t("Photoshop generative fill", "ai_editor", r"generative (fill|expand)"),
    _t("Adobe Photoshop", "editor", r"\bphotoshop\b"),
    _t("Adobe Lightroom", "editor", r"\blightroom\b"),
    _t("GIMP", "editor", r"\bgimp\b"),
    _t("Snapseed", "editor", r"\bsnapseed\b"),
    _t("Picsart", "editor", r"\bpicsart\b"),
    _t("Pixelmator", "editor", r"\bpixelmator\b"),
    _t("Affinity Photo", "editor", r"\baffinity photo\b"),
    _t("Paint.NET", "editor", r"\bpaint\.net\b"),
    _t("Krita", "editor", r"\bkrita\b"),
    _t("Meitu", "editor", r"\bmeitu\b"),
    _t("PhotoDirector", "editor", r"\bphotodirector\b"),
    _t("Canva", "editor", r"\bcanva\b"),
    _t("Photopea", "editor", r"\bphotopea\b"),
    _t("Fotor", "editor", r"\bfotor\b"),
)

# score and kind of a tool found in a software field
_TOOL_WEIGHT: dict[ToolKind, tuple[Kind, float]] = {
    "generator": ("generated", 0.95),
    "ai_editor": ("edited", 0.8),
    "editor": ("edited", 0.3),
}


def match_tool(text: str) -> Tool | None:
    """The first known tool whose name appears in ``text`` (generators before editors)."""
    for tool in TOOLS:
        if tool.pattern.search(text):
            return tool
    return None


def tool_finding(source: str, field_name: str, value: str, tool: Tool) -> Finding:
    """The finding of a known tool named in the ``source`` field ``field_name``."""
    kind, score = _TOOL_WEIGHT[tool.kind]
    v = clip(value, 80)
    if tool.kind == "generator":
        en = f"The {source} field “{field_name}” names the AI image generator {tool.name} (“{v}”)."
        fr = (
            f"Le champ {source} « {field_name} » nomme le générateur d'images par IA "
            f"{tool.name} (« {v} »)."
        )
    elif tool.kind == "ai_editor":
        en = (
            f"The {source} field “{field_name}” names {tool.name}, software that uses AI to "
            f"swap, regenerate or fill in faces or parts of images (“{v}”)."
        )
        fr = (
            f"Le champ {source} « {field_name} » nomme {tool.name}, un logiciel qui utilise "
            f"l'IA pour remplacer, régénérer ou compléter des visages ou des parties d'images "
            f"(« {v} »)."
        )
    else:
        en = (
            f"The {source} field “{field_name}” says the file was saved by the editor "
            f"{tool.name} (“{v}”); this alone says nothing about what was changed."
        )
        fr = (
            f"Le champ {source} « {field_name} » indique que le fichier a été enregistré par "
            f"le logiciel de retouche {tool.name} (« {v} ») ; cela seul ne dit rien de ce qui "
            "a été modifié."
        )
    return Finding(
        f"{source.lower().replace(' ', '_')}_software",
        score,
        kind,
        bilingual(en, fr),
        {
            "field": field_name,
            "value": clip(value, 300),
            "tool": tool.name,
            "tool_kind": tool.kind,
        },
    )


def software_field_findings(
    source: str,
    fields: Mapping[str, str],
    keys: Iterable[str],
    seen: Iterable[str],
    *,
    ignore_prefix: str | None = None,
) -> list[Finding]:
    """Known tools named in the fields ``keys`` (those meant for software and device names:
    captions may mention anything), each tool once and none already in ``seen``; values
    starting with ``ignore_prefix`` are skipped."""
    out: list[Finding] = []
    seen_tools = set(seen)
    for key in keys:
        v = fields.get(key, "")
        if not v or (ignore_prefix is not None and v.startswith(ignore_prefix)):
            continue
        tool = match_tool(v)
        if tool and tool.name not in seen_tools:
            out.append(tool_finding(source, key, v, tool))
            seen_tools.add(tool.name)
    return out
