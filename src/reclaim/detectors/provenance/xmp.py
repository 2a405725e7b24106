"""XMP: the IPTC digital source type and AI-system fields, the software that made or saved the
file (``xmp:CreatorTool``, ``xmpMM:History``, ``photoshop:Credit``, ``tiff:Software``) and
generation parameters in ``exif:UserComment``. Entities are never expanded."""

from __future__ import annotations

import re
from collections.abc import Iterable
from xml.etree import ElementTree as ET

from reclaim.detectors.provenance.base import Finding, bilingual, clip
from reclaim.detectors.provenance.containers import (
    itxt_text,
    jpeg_segments,
    png_chunks,
    webp_chunks,
)
from reclaim.detectors.provenance.generators import parameters_finding
from reclaim.detectors.provenance.sourcetypes import classify_dst
from reclaim.detectors.provenance.tools import match_tool, tool_finding

_XMP_TAGS = ((b"<x:xmpmeta", b"</x:xmpmeta>"), (b"<x:xapmeta", b"</x:xapmeta>"))
_MAX_XMP = 4 * 1024 * 1024
_MAX_PACKETS = 16
_PNG_XMP_KEY = b"XML:com.adobe.xmp\0"


def _format_packets(data: bytes, fmt: str) -> list[bytes]:
    """XMP packets where the format keeps them: PNG iTXt (possibly compressed), WebP ``XMP ``
    chunk, JPEG APP1."""
    if fmt == "png":
        packets = []
        for ctype, body in png_chunks(data):
            if ctype == b"iTXt" and body.startswith(_PNG_XMP_KEY):
                raw = itxt_text(body[len(_PNG_XMP_KEY) :])
                if raw is not None:
                    packets.append(raw)
        return packets
    if fmt == "webp":
        return [body for fourcc, body in webp_chunks(data) if fourcc == b"XMP "]
    if fmt == "jpeg":
        sig = b"http://ns.adobe.com/xap/1.0/\0"
        return [p[len(sig) :] for m, p in jpeg_segments(data) if m == 0xE1 and p[:29] == sig]
    return []


def _loose_packets(data: bytes, packets: list[bytes]) -> None:
    """Add the uncompressed packets found anywhere in the bytes (other formats, odd writers),
    up to 16 packets in all."""
    for start_tag, end_tag in _XMP_TAGS:
        pos = 0
        while len(packets) < _MAX_PACKETS:
            a = data.find(start_tag, pos)
            if a < 0:
                break
            e = data.find(end_tag, a, a + _MAX_XMP)
            if e < 0:
                break
            packets.append(data[a : e + len(end_tag)])
            pos = e + len(end_tag)


def xmp_packets(data: bytes, fmt: str) -> list[str]:
    """XMP packets of a file: PNG iTXt (possibly compressed), WebP ``XMP `` chunk, JPEG APP1,
    and any uncompressed packet found in the bytes (TIFF, HEIC/AVIF, GIF, MP4...); a packet
    already contained in an earlier one is left out."""
    packets = _format_packets(data, fmt)
    _loose_packets(data, packets)
    out: list[str] = []
    for p in packets:
        text = p.decode("utf-8", "replace")
        if text not in out and not any(text in o for o in out):
            out.append(text)
    return out


_NS = {
    "iptc": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "xmpMM": "http://ns.adobe.com/xap/1.0/mm/",
    "stEvt": "http://ns.adobe.com/xap/1.0/sType/ResourceEvent#",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dcterms": "http://purl.org/dc/terms/",
}
# (namespace key, property) → name used in evidence
_XMP_PROPS: dict[tuple[str, str], str] = {
    ("iptc", "DigitalSourceType"): "Iptc4xmpExt:DigitalSourceType",
    ("iptc", "AISystemUsed"): "Iptc4xmpExt:AISystemUsed",
    ("iptc", "AISystemVersionUsed"): "Iptc4xmpExt:AISystemVersionUsed",
    ("iptc", "AIPromptInformation"): "Iptc4xmpExt:AIPromptInformation",
    ("xmp", "CreatorTool"): "xmp:CreatorTool",
    ("photoshop", "Credit"): "photoshop:Credit",
    ("stEvt", "softwareAgent"): "xmpMM:History softwareAgent",
    ("tiff", "Software"): "tiff:Software",
    ("exif", "UserComment"): "exif:UserComment",
    ("dcterms", "provenance"): "dcterms:provenance",
}
_XMP_REGEX = {
    "Iptc4xmpExt:DigitalSourceType": re.compile(
        r"DigitalSourceType(?:\s*=\s*[\"']|>|[^>]*rdf:resource\s*=\s*[\"'])\s*([^\"'<]+)"
    ),
    "xmp:CreatorTool": re.compile(r"CreatorTool(?:\s*=\s*[\"']|>)\s*([^\"'<]+)"),
}


def _xml_text(el: ET.Element) -> list[str]:
    res = el.get(f"{{{_NS['rdf']}}}resource")
    if res:
        return [res]
    if el.text and el.text.strip():
        return [el.text.strip()]
    return [li.text.strip() for li in el.iter(f"{{{_NS['rdf']}}}li") if li.text and li.text.strip()]


def xmp_properties(packet: str) -> dict[str, list[str]]:
    """The provenance-relevant properties of one XMP packet (name → values)."""
    found: dict[str, list[str]] = {}

    def add(name: str, values: Iterable[str]) -> None:
        for v in values:
            v = v.strip()
            if v and v not in found.setdefault(name, []):
                found[name].append(v)

    parsed = False
    if "<!DOCTYPE" not in packet and "<!ENTITY" not in packet:  # never expand entities
        text = re.sub(r"<\?xpacket[^>]*\?>", "", packet).strip()
        try:
            root = ET.fromstring(text)
            parsed = True
        except ET.ParseError:
            parsed = False
        if parsed:
            wanted = {f"{{{_NS[ns]}}}{prop}": label for (ns, prop), label in _XMP_PROPS.items()}
            for el in root.iter():
                for attr, val in el.attrib.items():
                    if attr in wanted:
                        add(wanted[attr], [val])
                if el.tag in wanted:
                    add(wanted[el.tag], _xml_text(el))
    if not parsed:
        for label, rx in _XMP_REGEX.items():
            add(label, rx.findall(packet))
    return {k: v for k, v in found.items() if v}


def _merged_properties(data: bytes, fmt: str) -> dict[str, list[str]]:
    """The provenance properties of all the file's XMP packets (name → distinct values)."""
    props: dict[str, list[str]] = {}
    for packet in xmp_packets(data, fmt):
        for k, vs in xmp_properties(packet).items():
            for v in vs:
                if v not in props.setdefault(k, []):
                    props[k].append(v)
    return props


def _source_type_finding(dst: str) -> Finding:
    kind, score, en_phrase, fr_phrase = classify_dst(dst)
    tail_en = " This is a claim written in the file, not proof that it is real."
    tail_fr = " C'est une déclaration inscrite dans le fichier, pas une preuve d'authenticité."
    return Finding(
        "xmp_digital_source_type",
        score,
        kind,
        bilingual(
            f"The file's XMP metadata (IPTC DigitalSourceType) declares this image as "
            f"{en_phrase}." + (tail_en if kind == "info" else ""),
            "Les métadonnées XMP du fichier (IPTC DigitalSourceType) déclarent cette "
            f"image comme {fr_phrase}." + (tail_fr if kind == "info" else ""),
        ),
        {"field": "Iptc4xmpExt:DigitalSourceType", "value": dst},
    )


def _ai_system_finding(ai_system: list[str]) -> Finding:
    v = clip(" ".join(ai_system), 80)
    return Finding(
        "xmp_ai_system",
        0.95,
        "generated",
        bilingual(
            f"The file's XMP metadata names the AI system used to make it (IPTC "
            f"AISystemUsed: “{v}”).",
            "Les métadonnées XMP du fichier nomment le système d'IA utilisé pour la "
            f"créer (IPTC AISystemUsed : « {v} »).",
        ),
        {"field": "Iptc4xmpExt:AISystemUsed", "value": v},
    )


#: XMP properties that name software (checked against the known tools).
_SOFTWARE_PROPS = (
    "xmp:CreatorTool",
    "xmpMM:History softwareAgent",
    "photoshop:Credit",
    "tiff:Software",
)


def _software_findings(props: dict[str, list[str]]) -> list[Finding]:
    out = []
    for label in _SOFTWARE_PROPS:
        for v in props.get(label, []):
            tool = match_tool(v)
            # A credit line names people and agencies: only a generator's own phrase counts.
            if tool and (label != "photoshop:Credit" or tool.kind == "generator"):
                out.append(tool_finding("XMP", label, v, tool))
    return out


def xmp_findings(data: bytes, fmt: str) -> list[Finding]:
    """Findings from XMP: IPTC digital source type and AI system, software names, generation
    parameters in ``exif:UserComment``."""
    props = _merged_properties(data, fmt)
    findings = [_source_type_finding(d) for d in props.get("Iptc4xmpExt:DigitalSourceType", [])]
    ai_system = props.get("Iptc4xmpExt:AISystemUsed", [])
    if ai_system:
        findings.append(_ai_system_finding(ai_system))
    findings += _software_findings(props)
    for v in props.get("exif:UserComment", []):
        f = parameters_finding("XMP", "exif:UserComment", v)
        if f:
            findings.append(f)
    return findings
