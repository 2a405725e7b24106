"""The places a confirmed item was seen, as a removal request names them.

A place is one sighting (``Locator``). Only what a platform or an authority can act on goes into
a letter: a web address, or a Telegram chat and message as exported. A file on her computer or
inside an archive she was given names no public place, and its path (which may hold her name or
her folders) never leaves the case: letters call it "a copy in my possession".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from reclaim.sources.base import Locator
from reclaim.store import CaseStore

#: Telegram chats anyone can open: a place an authority like PHAROS can look at.
PUBLIC_CHATS = frozenset({"public_channel", "public_supergroup"})
#: Telegram's chat types (as exported) in a letter's words.
CHAT_WORDS = {
    "fr": {
        "public_channel": "canal public", "private_channel": "canal privé",
        "public_supergroup": "groupe public", "private_supergroup": "groupe privé",
        "private_group": "groupe privé", "personal_chat": "discussion privée",
        "bot_chat": "discussion avec un bot",
    },
    "en": {
        "public_channel": "public channel", "private_channel": "private channel",
        "public_supergroup": "public group", "private_supergroup": "private group",
        "private_group": "private group", "personal_chat": "private chat",
        "bot_chat": "chat with a bot",
    },
}  # fmt: skip


@dataclass(frozen=True)
class Place:
    """One place an item was seen (``number``: 1-based, in the order the case saw them)."""

    number: int
    key: str  # Locator.key: what a request stores
    kind: str  # url | telegram | file | archive
    locator: Locator
    url: str | None = None  # the address as she listed it
    final_url: str | None = None  # where it led, when a redirect took it elsewhere
    chat: str | None = None  # Telegram chat name (or id) as exported
    chat_type: str | None = None
    message_id: Any = None
    date: str | None = None  # when the message was posted / the page fetched
    sender: str | None = None  # the sender as exported

    @property
    def host(self) -> str | None:
        """The listed address's host (lower-case)."""
        if self.url is None:
            return None
        return (urlsplit(self.url).hostname or "").lower() or None

    @property
    def hosts(self) -> list[str]:
        """The hosts of the listed address and of where it led."""
        out = []
        for u in (self.url, self.final_url):
            h = (urlsplit(u).hostname or "").lower() if u else ""
            if h and h not in out:
                out.append(h)
        return out

    @property
    def site(self) -> str | None:
        """The site's address (scheme and host), where its own report form is."""
        if self.url is None:
            return None
        p = urlsplit(self.url)
        return f"{p.scheme}://{p.netloc.rpartition('@')[2]}" if p.scheme and p.netloc else None

    @property
    def public(self) -> bool:
        """Whether anyone can see it there (a web page, a public channel or group)."""
        return self.kind == "url" or (self.kind == "telegram" and self.chat_type in PUBLIC_CHATS)

    @property
    def actionable(self) -> bool:
        """Whether a platform can act on it (a web address or a Telegram message)."""
        return self.kind in ("url", "telegram")

    def text(self, lang: str = "en") -> str:
        """One line naming the place, for a letter or a list (a local path never appears)."""
        fr = lang == "fr"
        if self.kind == "url":
            if self.final_url:
                return f"{self.url} (→ {self.final_url})"
            return str(self.url)
        if self.kind == "telegram":
            parts = [f"Telegram : « {self.chat} »" if fr else f'Telegram: "{self.chat}"']
            if self.chat_type:
                lg = "fr" if fr else "en"
                parts.append(f"({CHAT_WORDS[lg].get(self.chat_type, self.chat_type)})")
            if self.message_id is not None:
                parts.append(
                    f"message n° {self.message_id}" if fr else f"message #{self.message_id}"
                )
            if self.date:
                parts.append(f"du {self.date}" if fr else f"of {self.date}")
            if self.sender:
                parts.append(f"envoyé par « {self.sender} »" if fr else f'sent by "{self.sender}"')
            return " ".join(parts)
        return "une copie en ma possession" if fr else "a copy in my possession"

    def as_record(self) -> dict[str, Any]:
        """The place as JSON (listings, the evidence pack): what a letter may show of it."""
        rec: dict[str, Any] = {"number": self.number, "kind": self.kind, "public": self.public}
        for k in ("url", "final_url", "chat", "chat_type", "message_id", "date", "sender"):
            v = getattr(self, k)
            if v is not None:
                rec[k] = v
        rec["text"] = {"fr": self.text("fr"), "en": self.text("en")}
        return rec


def place_of(loc: Locator, number: int = 0) -> Place:
    """The place a locator names."""
    m = loc.meta or {}
    if loc.kind == "url":
        final = _str(m.get("final_url"))
        return Place(
            number,
            loc.key,
            "url",
            loc,
            url=loc.path,
            final_url=None if final == loc.path else final,
            date=_str(m.get("fetched_at")),
        )
    if loc.kind == "telegram":
        chat = m.get("chat_name") or m.get("chat_id")
        return Place(
            number,
            loc.key,
            "telegram",
            loc,
            chat=None if chat is None else str(chat),
            chat_type=_str(m.get("chat_type")),
            message_id=m.get("message_id"),
            date=_str(m.get("date")),
            sender=_str(m.get("sender")),
        )
    return Place(number, loc.key, loc.kind, loc)


def _str(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


def places_of(store: CaseStore, item: str) -> list[Place]:
    """Every place ``item`` was seen, numbered from 1 in the order the case saw them."""
    return [place_of(loc, n) for n, loc in enumerate(store.sightings_of(item), 1)]
