"""What every provenance reader returns: a :class:`Finding` (score, kind, bilingual sentence)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["generated", "edited", "info"]

#: A finding at or above this score decides the verdict of its kind.
DECISIVE = 0.5


@dataclass(frozen=True)
class Finding:
    """One piece of provenance evidence."""

    name: str
    score: float
    kind: Kind
    evidence: dict[str, str]
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "score": round(float(self.score), 4),
            "kind": self.kind,
            "evidence": dict(self.evidence),
            "details": self.details,
        }


def bilingual(en: str, fr: str) -> dict[str, str]:
    """A finding's sentence in both languages."""
    return {"fr": fr, "en": en}


def clip(s: str, n: int = 120) -> str:
    """``s`` on one line, cut to ``n`` characters."""
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 1] + "…"
