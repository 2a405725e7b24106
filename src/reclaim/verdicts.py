"""Names of the manipulation-check verdicts as people read them (CLI, web, reports)."""

from __future__ import annotations

VERDICT_LABELS: dict[str, dict[str, str]] = {
    "generated": {"en": "GENERATED", "fr": "GÉNÉRÉE"},
    "edited": {"en": "EDITED", "fr": "RETOUCHÉE"},
    "no provenance evidence": {
        "en": "no provenance evidence",
        "fr": "aucun élément de provenance",
    },
    "likely manipulated": {"en": "LIKELY MANIPULATED", "fr": "PROBABLEMENT MANIPULÉE"},
    "likely generated": {"en": "LIKELY GENERATED", "fr": "PROBABLEMENT GÉNÉRÉE"},
    "no strong evidence": {"en": "no strong evidence", "fr": "aucun indice fort"},
}

#: Verdicts that flag an item (shown first, highlighted).
FLAGGED = frozenset({"generated", "edited", "likely manipulated", "likely generated"})


def verdict_label(verdict: str, lang: str) -> str:
    return VERDICT_LABELS.get(verdict, {}).get(lang, verdict)
