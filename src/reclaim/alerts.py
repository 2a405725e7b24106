"""Alerts from ``reclaim watch``: counts and the case's name, sent where she chose, nowhere else.

An alert never carries an image, a face, a URL or a path, only how many places need her
attention and which case: "2 new places need your attention in case lea." Whoever reads her
phone's lock screen or her mail provider learns no more than that. The places themselves are
in the case, on her computer (``reclaim watch list``, the web app).

None by default. A case's targets (``reclaim watch alert-add``):

- ``file:/absolute/path.jsonl``: one JSON line appended per alert (needs nothing);
- ``https://…`` (or ``http://…``): a webhook, sent the same JSON object by POST (needs nothing;
  no proxy from the environment, no redirect followed);
- any other ``scheme://…``: an Apprise URL (e-mail ``mailtos://``, Signal ``signal://``, Matrix
  ``matrix://``, ntfy ``ntfy://``, Telegram ``tgram://``, ``json://``…), with the optional extra
  ``pip install 'reclaim[alerts]'``.

A target may hold credentials (a bot token, a mail password): it is kept in the case and never
written to the custody log, a report or an error line; ``shown`` gives a form without them.
"""

from __future__ import annotations

import json
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from reclaim import __version__
from reclaim.errors import InputError
from reclaim.store import CaseStore
from reclaim.store.base import now_iso
from reclaim.store.watch import AlertTargetRecord

__all__ = [
    "LANGS",
    "Alert",
    "Delivery",
    "add_target",
    "case_label",
    "check_target",
    "deliver",
    "send_alert",
    "shown",
    "target_kind",
]

LANGS = ("fr", "en")
WEBHOOK_TIMEOUT_S = 10.0
_MAX_LABEL = 60


def target_kind(target: str) -> str:
    """``file``, ``webhook`` or ``apprise``."""
    if target.startswith("file:"):
        return "file"
    scheme = target.split("://", 1)[0].lower() if "://" in target else ""
    return "webhook" if scheme in ("http", "https") else "apprise"


def check_target(target: str) -> str:
    """The target as it will be stored, checked. InputError saying what to write instead."""
    target = target.strip()
    kind = target_kind(target)
    if kind == "file":
        p = Path(target[len("file:") :])
        if not p.is_absolute():
            raise InputError(
                f"write the alert file as an absolute path: file:{Path.cwd() / p}"
                if str(p)
                else "give the alert file's path: file:/absolute/path/alerts.jsonl"
            )
        if not p.parent.is_dir():
            raise InputError(f"the folder {p.parent} does not exist; create it first")
        return f"file:{p}"
    if "://" not in target:
        raise InputError(
            "an alert target is file:/path/alerts.jsonl, an https:// webhook, or an Apprise URL "
            "such as mailtos://user:password@example.org"
        )
    if kind == "webhook":
        from reclaim.sources.urllist import validate_url

        problem = validate_url(target)
        if problem is not None:
            raise InputError(f"the webhook address is not usable: {problem}")
        return target
    apprise = _apprise()
    if not apprise.Apprise().add(target):
        raise InputError(
            f"Apprise does not understand this {target.split('://', 1)[0]}:// address; see "
            "https://github.com/caronc/apprise/wiki for the form each service takes"
        )
    return target


def _apprise() -> Any:
    try:
        import apprise
    except ImportError:
        raise InputError(
            "alerts by e-mail, Signal, Matrix and the like need Apprise: "
            "pip install 'reclaim[alerts]' (or use an https:// webhook or a file: target)"
        ) from None
    return apprise


def shown(target: str) -> str:
    """The target without what may be secret: the file's name, or a URL's scheme and host
    (with its port), never its credentials, path or query."""
    kind = target_kind(target)
    if kind == "file":
        return target
    parts = urlsplit(target)
    host = parts.netloc.rpartition("@")[2]  # never the user name and password before "@"
    return f"{parts.scheme}://{host}/…" if host else f"{parts.scheme}://…"


def add_target(store: CaseStore, target: str, lang: str = "fr") -> AlertTargetRecord:
    """Check ``target`` and keep it in the case. InputError for a bad target or language,
    StoreError when alerts go there already."""
    if lang not in LANGS:
        raise InputError(f"the alert language is one of {', '.join(LANGS)}")
    checked = check_target(target)
    with store.writing(wait_s=5.0):
        return store.add_alert_target(checked, lang)


def case_label(root: Path) -> str:
    """The case's name as an alert gives it: its folder's name, letters, digits, spaces,
    ``-``, ``_`` and ``.`` only (never a path or an address), at most 60 characters."""
    name = unicodedata.normalize("NFC", root.resolve().name)
    kept = "".join(c if c.isalnum() or c in " -_." else " " for c in name)
    kept = " ".join(kept.replace("..", " ").split())[:_MAX_LABEL].strip(" .")
    return kept or "reclaim"


@dataclass(frozen=True)
class Alert:
    """What an alert says: how many places need her attention (new places where she is seen,
    and places she had removed that are back online), in which case."""

    case: str
    new_places: int
    reappeared: int = 0
    test: bool = False

    @property
    def attention(self) -> int:
        return self.new_places + self.reappeared

    def title(self, lang: str) -> str:
        return f"reclaim — {'dossier' if lang == 'fr' else 'case'} {self.case}"

    def message(self, lang: str) -> str:
        """The sentence she reads (French or English)."""
        n, back, case = self.attention, self.reappeared, self.case
        if lang == "fr":
            if self.test:
                return f"Test de reclaim : les alertes du dossier {case} fonctionnent."
            text = (
                f"{n} nouvel endroit demande votre attention dans le dossier {case}."
                if n <= 1
                else f"{n} nouveaux endroits demandent votre attention dans le dossier {case}."
            )
            if back:
                text += (
                    " Dont 1 endroit que vous aviez fait retirer, de nouveau en ligne."
                    if back == 1
                    else f" Dont {back} endroits que vous aviez fait retirer, de nouveau en ligne."
                )
            return text + " Ouvrez reclaim pour les voir."
        if self.test:
            return f"Test from reclaim: alerts for case {case} work."
        text = (
            f"{n} new place needs your attention in case {case}."
            if n == 1
            else f"{n} new places need your attention in case {case}."
        )
        if back:
            text += (
                " 1 of them is a place you had removed, back online."
                if back == 1
                else f" {back} of them are places you had removed, back online."
            )
        return text + " Open reclaim to see them."

    def payload(self, lang: str, at: str) -> dict[str, Any]:
        """The JSON a webhook or an alert file gets: counts, the case's name, the sentence."""
        return {
            "case": self.case,
            "new_places": self.new_places,
            "reappeared": self.reappeared,
            "attention": self.attention,
            "test": self.test,
            "title": self.title(lang),
            "message": self.message(lang),
            "lang": lang,
            "sent_at": at,
        }


@dataclass(frozen=True)
class Delivery:
    """How sending to one target went. ``detail`` never holds the target itself."""

    target_id: int
    kind: str
    delivered: bool
    detail: str = ""


def deliver(alert: Alert, target: AlertTargetRecord, *, at: str | None = None) -> Delivery:
    """Send ``alert`` to one target. Never raises for a failed delivery: says why instead."""
    kind = target_kind(target.target)
    lang = target.lang if target.lang in LANGS else "fr"
    body = alert.payload(lang, at or now_iso())
    try:
        if kind == "file":
            _append_line(Path(target.target[len("file:") :]), body)
        elif kind == "webhook":
            _post(target.target, body)
        else:
            _apprise_notify(target.target, alert.title(lang), alert.message(lang))
    except _Undelivered as e:
        return Delivery(target.id, kind, False, str(e))
    except InputError as e:
        return Delivery(target.id, kind, False, str(e))
    return Delivery(target.id, kind, True)


class _Undelivered(Exception):
    """One line saying why a target did not get the alert (without the target)."""


def _append_line(path: Path, body: dict[str, Any]) -> None:
    line = (json.dumps(body, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise _Undelivered(f"the alert file cannot be written: {e.strerror or e}") from e


def _post(url: str, body: dict[str, Any]) -> None:
    headers = {"User-Agent": f"reclaim/{__version__}", "Content-Type": "application/json"}
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    try:
        with httpx.Client(
            trust_env=False, follow_redirects=False, timeout=WEBHOOK_TIMEOUT_S
        ) as client:
            response = client.post(url, content=data, headers=headers)
    except httpx.TimeoutException as e:
        raise _Undelivered(f"the webhook did not answer within {WEBHOOK_TIMEOUT_S:g} s") from e
    except httpx.HTTPError as e:
        raise _Undelivered(f"the webhook cannot be reached ({type(e).__name__})") from e
    if not 200 <= response.status_code < 300:
        raise _Undelivered(f"the webhook answered HTTP {response.status_code}")


def _apprise_notify(url: str, title: str, message: str) -> None:
    apprise = _apprise()
    a = apprise.Apprise()
    if not a.add(url):
        raise _Undelivered("Apprise no longer understands this target; add it again")
    if not a.notify(title=title, body=message, body_format=apprise.NotifyFormat.TEXT):
        raise _Undelivered("Apprise could not deliver the alert (see its message above)")


def send_alert(store: CaseStore, alert: Alert, *, at: str | None = None) -> list[Delivery]:
    """Send ``alert`` to every target of the case and write one custody entry saying which
    got it (kinds and ids only). Nothing is sent, and nothing written, without a target.
    ``at``: the time it says it was sent (ISO 8601 UTC; default now)."""
    from reclaim.report.custody import CustodyLog

    targets = store.alert_targets()
    if not targets:
        return []
    at = at or now_iso()
    done = [deliver(alert, t, at=at) for t in targets]
    CustodyLog(store.root).append(
        "watch.alert",
        {
            "new_places": alert.new_places,
            "reappeared": alert.reappeared,
            "test": alert.test,
            "targets": [
                {"id": d.target_id, "kind": d.kind, "delivered": d.delivered} for d in done
            ],
        },
    )
    return done
