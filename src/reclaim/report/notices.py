"""Texts that go with an evidence pack: EU DSA Article 16 notices and a French complaint summary.

Wording is careful: reclaim documents facts (what, where, when, hashes) and says what the content
*may* constitute; the person decides what to send.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Notifier:
    name: str
    email: str


def dsa_notice(url: str, item: dict[str, Any], notifier: Notifier, lang: str = "fr") -> str:
    """Article 16(2) DSA notice: (a) why illegal, (b) exact URL, (c) notifier, (d) good faith."""
    sha = item["sha256"]
    seen = item.get("first_seen_at", "")
    if lang == "fr":
        return f"""Notification au titre de l'article 16 du règlement (UE) 2022/2065 (DSA)

a) Motifs de l'illégalité
Le contenu ci-dessous est une image intime synthétique ou manipulée (« deepfake ») qui me
représente sans mon consentement. Sa diffusion peut constituer l'infraction prévue à l'article
226-8-1 du Code pénal (montage à caractère sexuel réalisé sans consentement, y compris par un
traitement algorithmique) et porte atteinte à ma vie privée et à mon droit à l'image.
Empreintes du fichier : SHA-256 {sha}, MD5 {item.get("md5", "")}, PDQ {item.get("pdq") or "-"}.
Constaté le {seen}.

b) Emplacement électronique exact
{url}

c) Auteur de la notification
{notifier.name} <{notifier.email}>

d) Déclaration
Je déclare de bonne foi que les informations et allégations contenues dans la présente
notification sont exactes et complètes.

Je vous demande de retirer ce contenu ou d'en rendre l'accès impossible sans délai, et de
m'informer de votre décision (article 16(5) DSA).
"""
    return f"""Notice under Article 16 of Regulation (EU) 2022/2065 (Digital Services Act)

(a) Why the content is illegal
The content below is a synthetic or manipulated intimate image ("deepfake") depicting me without
my consent. Its dissemination may constitute a criminal offence (in France, Article 226-8-1 of
the Penal Code) and violates my privacy and image rights.
File fingerprints: SHA-256 {sha}, MD5 {item.get("md5", "")}, PDQ {item.get("pdq") or "-"}.
Observed on {seen}.

(b) Exact electronic location
{url}

(c) Notifier
{notifier.name} <{notifier.email}>

(d) Statement
I declare in good faith that the information and allegations in this notice are accurate and
complete.

I ask you to remove or disable access to this content without undue delay and to inform me of
your decision (Article 16(5) DSA).
"""


def pharos_summary(items: list[dict[str, Any]], notifier: Notifier) -> str:
    """Résumé pour une plainte ou un signalement PHAROS (internet-signalement.gouv.fr)."""
    lines = [
        "Résumé pour plainte / signalement PHAROS (internet-signalement.gouv.fr)",
        "",
        f"Déclarante : {notifier.name} <{notifier.email}>",
        "",
        "Faits : des images intimes synthétiques ou manipulées me représentant sans mon",
        "consentement circulent en ligne. Ces faits peuvent relever des articles 226-8-1",
        "(montage à caractère sexuel, y compris généré par algorithme) et 226-2-1 du Code pénal.",
        "",
        f"Nombre d'éléments documentés : {len(items)}. Chaque fichier est joint à l'identique",
        "(dossier originals/), avec son empreinte SHA-256, les lieux où il a été vu et la date",
        "de constat ; le journal de traçabilité (custody.jsonl) est chaîné par empreintes.",
        "",
    ]
    for n, it in enumerate(items, 1):
        lines.append(f"{n}. SHA-256 {it['sha256']}")
        for loc in it.get("seen_at", []):
            lines.append(f"   vu : {loc['where']}")
        lines.append(f"   constaté le : {it.get('first_seen_at', '')}")
    lines += ["", "Vérification du dossier : reclaim verify-pack <fichier.zip>", ""]
    return "\n".join(lines)
