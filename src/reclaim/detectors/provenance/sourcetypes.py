"""IPTC digital source types: what a C2PA action or an XMP field declares an image to be.

The same vocabulary (``http://cv.iptc.org/newscodes/digitalsourcetype/``) is read from C2PA
manifests (``credentials``) and from XMP (``xmp``); this table gives each code a kind and a score.
"""

from __future__ import annotations

from reclaim.detectors.provenance.base import Kind

# code → (kind, score, English phrase, French phrase)
_DST: dict[str, tuple[Kind, float, str, str]] = {
    "trainedAlgorithmicMedia": (
        "generated",
        0.99,
        "created by a trained AI model (generative AI)",
        "créée par un modèle d'IA entraîné (IA générative)",
    ),
    "compositeWithTrainedAlgorithmicMedia": (
        "edited",
        0.97,
        "a composite that includes elements made by generative AI (e.g. generative fill or a "
        "replaced face)",
        "un montage qui contient des éléments produits par IA générative (par ex. remplissage "
        "génératif ou visage remplacé)",
    ),
    "algorithmicMedia": (
        "generated",
        0.9,
        "created purely by an algorithm, without a camera",
        "créée entièrement par un algorithme, sans appareil photo",
    ),
    "compositeSynthetic": (
        "edited",
        0.9,
        "a composite that includes synthetic elements",
        "un montage qui contient des éléments de synthèse",
    ),
    "digitalArt": (
        "generated",
        0.8,
        "digital art made with software, not a camera photograph",
        "une création numérique faite avec un logiciel, pas une photographie",
    ),
    "digitalCreation": (
        "generated",
        0.8,
        "digital art made with software, not a camera photograph",
        "une création numérique faite avec un logiciel, pas une photographie",
    ),
    "composite": (
        "edited",
        0.6,
        "a composite of several images",
        "un montage de plusieurs images",
    ),
    "compositeCapture": (
        "edited",
        0.3,
        "a combination of several camera captures (e.g. HDR or panorama)",
        "une combinaison de plusieurs prises de vue (par ex. HDR ou panorama)",
    ),
    "humanEdits": (
        "edited",
        0.3,
        "edited by a person with non-generative tools",
        "retouchée par une personne avec des outils non génératifs",
    ),
    "algorithmicallyEnhanced": (
        "edited",
        0.25,
        "enhanced by an algorithm",
        "améliorée par un algorithme",
    ),
    "minorHumanEdits": (
        "edited",
        0.15,
        "slightly edited by a person",
        "légèrement retouchée par une personne",
    ),
}
_CAPTURE_DST = {
    "digitalCapture": ("a digital camera capture", "une prise de vue numérique"),
    "negativeFilm": ("a scan of a film negative", "un scan de négatif"),
    "positiveFilm": ("a scan of a film positive", "un scan de diapositive"),
    "print": ("a scan of a print", "un scan de tirage"),
    "screenCapture": ("a screen capture", "une capture d'écran"),
    "virtualRecording": (
        "a recording of a virtual scene",
        "l'enregistrement d'une scène virtuelle",
    ),
    "dataDrivenMedia": ("produced from sensor data", "produite à partir de données de capteurs"),
}


def dst_code(value: str) -> str:
    """The IPTC code of a digitalSourceType URI (``…/digitalsourcetype/X`` → ``X``)."""
    return value.strip().rstrip("/").rsplit("/", 1)[-1]


def classify_dst(value: str) -> tuple[Kind, float, str, str]:
    """(kind, score, English phrase, French phrase) of an IPTC digital source type."""
    code = dst_code(value)
    if code in _DST:
        return _DST[code]
    if code in _CAPTURE_DST:
        en, fr = _CAPTURE_DST[code]
        return "info", 0.0, en, fr
    return "info", 0.0, f"of declared source type “{code}”", f"de type de source déclaré « {code} »"
