"""Telegram Desktop exports ("Export chat history" / "Export Telegram data", JSON format).

Two layouts are read, both from the folder holding ``result.json`` (the *export root*):

- single-chat export: ``result.json`` is one chat object (``name``, ``type``, ``id``,
  ``messages``), media in ``photos/``, ``video_files/``, ``files/`` ... next to it;
- full-account export: ``result.json`` has ``chats.list`` (and ``left_chats.list``) of chat
  objects, plus ``profile_pictures``; media paths look like ``chats/chat_001/photos/...``.

Media paths in messages are relative to the export root in both layouts.

One entry per image or video a message refers to (photos, videos, round video messages,
animations, still and video stickers, documents that are images or videos), with the chat and
message in ``Locator.meta``. Voice and audio messages and animated ``.tgs`` stickers are not
images and give no entry; ``thumbnail`` files are not items of their own, except when the file
they stand for is missing from the export, when the thumbnail is the only picture left and is
yielded (``meta["media_type"] == "thumbnail"``, ``meta["thumbnail_of"]``).

Nothing is silently lost:

- a placeholder such as ``"(File not included. Change data exporting settings to download.)"``
  gives an error entry with ``member=None`` and ``meta["missing_reason"]``;
- a path listed but absent on disk gives an error entry;
- a path that would leave the export root (``..``, absolute, a symbolic link pointing outside)
  is refused with an error entry and never opened;
- images and videos found in the export's folders that no message refers to are yielded with
  ``meta["unreferenced"] = True``;
- only regular files are opened: a listed or unlisted FIFO, socket or device (reading a FIFO
  would block the scan for ever), or a folder of the export that cannot be listed, gives an
  error entry with the reason.

``result.json`` is read whole with :mod:`json` (message dicts are trimmed to the fields used
while parsing, so memory stays near the file's size); files over ``MAX_RESULT_JSON_BYTES``
(2 GiB) are refused with a SourceError asking for a per-chat export instead.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from reclaim.errors import SourceError
from reclaim.media.sniff import sniff
from reclaim.sources.base import (
    Entry,
    Locator,
    SourceLimits,
    not_regular_reason,
    open_regular,
)

MAX_RESULT_JSON_BYTES = 2 * 1024 * 1024 * 1024
TEXT_CHARS = 200
_HEAD_BYTES = 64 * 1024

CHAT_TYPES = frozenset(
    {
        "personal_chat",
        "private_group",
        "public_channel",
        "private_channel",
        "public_supergroup",
        "private_supergroup",
        "bot_chat",
        "saved_messages",
        "replies",
        "verification_codes",
    }
)

# Media folders only Telegram Desktop names this way; detect() accepts a folder with result.json
# and one of these even when result.json's head is unclear (damaged), so open_telegram can say
# what is wrong. Generic names (photos, files) are left out: other tools write those too.
TELEGRAM_DIRS = ("round_video_messages", "video_files", "voice_messages", "profile_pictures")

_VISUAL_EXTS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jfif",
        ".jpe",
        ".png",
        ".gif",
        ".webp",
        ".bmp",
        ".tif",
        ".tiff",
        ".heic",
        ".heif",
        ".avif",
        ".mp4",
        ".m4v",
        ".mov",
        ".webm",
        ".mkv",
        ".avi",
        ".3gp",
    }
)
_VIDEO_MEDIA_TYPES = frozenset({"video_file", "animation", "video_message"})
_AUDIO_MEDIA_TYPES = frozenset({"voice_message", "audio_file"})
_TGS_MIME = "application/x-tgsticker"

_SIGNATURES = re.compile(
    r'"messages"\s*:\s*\['
    r'|"chats"\s*:\s*\{'
    r'|"left_chats"\s*:\s*\{'
    r'|"personal_information"\s*:\s*\{'
    r'|"profile_pictures"\s*:\s*\['
    r'|"about"\s*:\s*"Here is the data you requested'
    r'|"type"\s*:\s*"(?:' + "|".join(sorted(CHAT_TYPES)) + r')"'
)

# Message fields kept while parsing; everything else (text entities, reactions...) is dropped.
_KEEP = frozenset(
    {
        "id",
        "type",
        "date",
        "date_unixtime",
        "from",
        "from_id",
        "actor",
        "actor_id",
        "action",
        "author",
        "forwarded_from",
        "saved_from",
        "photo",
        "file",
        "file_name",
        "thumbnail",
        "media_type",
        "mime_type",
        "text",
    }
)

# HTML exports (or "both formats") put their page assets here; they are not content.
_HTML_ASSET_DIRS = frozenset({"css", "js", "images"})
_HTML_MARKERS = ("messages.html", "export_results.html")


# --------------------------------------------------------------------------- detection


def _result_json_of(spec: str) -> Path | None:
    p = Path(spec)
    if p.is_dir():
        rj = p / "result.json"
        return rj if rj.is_file() else None
    if p.is_file() and p.name.lower() == "result.json":
        return p
    return None


def _head_looks_telegram(path: Path) -> bool:
    try:
        f, _ = open_regular(path, follow_links=True)
        with f:
            head = f.read(_HEAD_BYTES)
    except OSError:
        return False
    return _SIGNATURES.search(head.decode("utf-8", errors="replace")) is not None


def detect(spec: str) -> bool:
    """A folder holding a Telegram ``result.json``, or the path of ``result.json`` itself.

    The folder case needs the head of ``result.json`` to look like an export, or Telegram's
    media folders next to it (so a damaged export still reaches ``open_telegram`` and fails
    with a clear SourceError instead of being scanned as a plain folder).
    """
    rj = _result_json_of(spec)
    if rj is None:
        return False
    if Path(spec).is_file():
        return True
    if _head_looks_telegram(rj):
        return True
    root = rj.parent
    if any((root / d).is_dir() for d in TELEGRAM_DIRS):
        return True
    chats = root / "chats"
    try:
        return chats.is_dir() and any(
            c.name.startswith("chat_") and c.is_dir() for c in chats.iterdir()
        )
    except OSError:
        return False


# --------------------------------------------------------------------------- parsing


def _flatten_text(text: Any) -> str:
    """Plain text from ``text``: a string or a list of strings and ``{"text": ...}`` entities."""
    if isinstance(text, str):
        return text
    if isinstance(text, list):
        parts: list[str] = []
        for part in text:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return ""


def _prune_hook(d: dict[str, Any]) -> dict[str, Any]:
    if d.get("type") in ("message", "service") and "id" in d and "date" in d:
        kept = {k: v for k, v in d.items() if k in _KEEP}
        kept["text"] = _flatten_text(d.get("text"))[:TEXT_CHARS]
        return kept
    return d


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _load_result_json(path: Path) -> dict[str, Any]:
    where = str(path)
    try:
        raw, st = open_regular(path, follow_links=True)
    except OSError as e:
        raise SourceError(f"{where}: cannot read ({e.strerror or e})") from e
    size = st.st_size
    with raw:
        if size == 0:
            raise SourceError(f"{where}: empty file; export the chat again from Telegram Desktop")
        if size > MAX_RESULT_JSON_BYTES:
            raise SourceError(
                f"{where}: {size} bytes is more than the {MAX_RESULT_JSON_BYTES} bytes reclaim "
                "reads in memory; export the large chats one by one (Export chat history) instead"
            )
        text = _read_text(raw, where)
    try:
        data = json.loads(text, object_hook=_prune_hook)
    except json.JSONDecodeError as e:
        if e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated string"):
            reason = "ends early (truncated: was the export interrupted?)"
        else:
            reason = f"is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
        raise SourceError(
            f"{where} {reason}; the export may be incomplete: export again from Telegram "
            "Desktop with format 'Machine-readable JSON'"
        ) from e
    except RecursionError as e:
        raise SourceError(f"{where}: JSON nested too deeply; not a Telegram export") from e
    if not isinstance(data, dict) or not (
        isinstance(data.get("messages"), list)
        or any(k in data for k in ("chats", "left_chats", "personal_information"))
    ):
        raise SourceError(
            f"{where}: JSON but not a Telegram Desktop export (no 'messages' or 'chats'); "
            "choose 'Machine-readable JSON' when exporting"
        )
    return data


def _read_text(raw: BinaryIO, where: str) -> str:
    try:
        with io.TextIOWrapper(raw, encoding="utf-8-sig") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise SourceError(
            f"{where}: not UTF-8 text (byte {e.start}); not a Telegram JSON export"
        ) from e
    except OSError as e:
        raise SourceError(f"{where}: cannot read ({e.strerror or e})") from e


def _chat_lists(data: dict[str, Any], where: str) -> list[tuple[Any, bool]]:
    """(chat object, left_chat) pairs in file order."""
    if isinstance(data.get("messages"), list):
        return [(data, False)]
    out: list[tuple[Any, bool]] = []
    for key, left in (("chats", False), ("left_chats", True)):
        if key not in data:
            continue
        block = data[key]
        chats = block.get("list") if isinstance(block, dict) else None
        if not isinstance(chats, list):
            raise SourceError(
                f"{where}: '{key}' has no chat list; the export is damaged, export again"
            )
        out.extend((c, left) for c in chats)
    return out


# --------------------------------------------------------------------------- paths


class _Refused(Exception):
    def __init__(self, reason: str, member: str | None = None) -> None:
        super().__init__(reason)
        self.member = member  # the clean relative path, when the refusal came after cleaning


_PLACEHOLDER_REASONS = (
    ("not included", "not_included"),
    ("exceeds maximum size", "too_large"),
    ("unavailable", "unavailable"),
)


def _placeholder_reason(value: str) -> str | None:
    """``missing_reason`` when ``value`` is Telegram's "(File ...)" placeholder, else None."""
    v = value.strip()
    if not (v.startswith("(") and v.endswith(")")):
        return None
    low = v.lower()
    for needle, reason in _PLACEHOLDER_REASONS:
        if needle in low:
            return reason
    return "other"


def _present(path: Path, *, file: bool = False) -> bool:
    """Whether ``path`` exists (and is a regular file when ``file``); False for any OSError.

    pathlib's ``exists``/``is_file`` raise on errors other than "no such file": a name over 255
    bytes listed in result.json (ENAMETOOLONG, found by fuzzing), a folder without search
    permission (EACCES).
    """
    try:
        return path.is_file() if file else path.exists()
    except OSError:
        return False


def _normalise(raw: str) -> str:
    """The listed path as a clean relative POSIX path, or _Refused when it cannot be one."""
    if "\x00" in raw:
        raise _Refused("path contains a NUL byte")
    rel = raw.replace("\\", "/")
    if rel.startswith("/") or re.match(r"^[A-Za-z]:", rel):
        raise _Refused("absolute path")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _Refused("path leaves the export folder ('..')")
    if not parts:
        raise _Refused("empty path")
    return "/".join(parts)


def _stat_fingerprint(st: os.stat_result) -> str:
    return f"{st.st_size}:{st.st_mtime_ns}"


def _is_visual_name(name: str | None) -> bool:
    return name is not None and PurePosixPath(name.lower()).suffix in _VISUAL_EXTS


def _is_visual_mime(mime: Any) -> bool:
    return isinstance(mime, str) and mime.lower().startswith(("image/", "video/"))


# --------------------------------------------------------------------------- the source


@dataclass
class _Chat:
    name: Any
    type: Any
    id: Any
    left: bool
    index: int
    dirs: set[str] = field(default_factory=set)

    def meta(self) -> dict[str, Any]:
        m: dict[str, Any] = {"chat_name": self.name, "chat_type": self.type, "chat_id": self.id}
        if self.left:
            m["left_chat"] = True
        return m


@dataclass
class _Resolved:
    member: str
    real: Path


class TelegramSource:
    """A Telegram Desktop JSON export; ``result.json`` is parsed when the source is opened."""

    name = "telegram"

    def __init__(self, spec: str, limits: SourceLimits) -> None:
        p = Path(spec)
        rj = _result_json_of(spec)
        if rj is None:
            raise SourceError(f"{spec}: no result.json here; not a Telegram JSON export")
        self.result_json = rj.resolve()
        self.root = self.result_json.parent
        self.limits = limits
        self.spec = str(p)
        self._data = _load_result_json(self.result_json)
        self._chats = _chat_lists(self._data, str(self.result_json))
        self.layout = "chat" if isinstance(self._data.get("messages"), list) else "account"

    def describe(self) -> str:
        n = len(self._chats)
        return f"telegram export {self.root} ({self.layout} export, {n} chat{'s' * (n != 1)})"

    # -- helpers ---------------------------------------------------------------------------

    def _locator(self, member: str | None, meta: dict[str, Any]) -> Locator:
        return Locator("telegram", str(self.root), member, meta)

    def _resolve(self, raw: str) -> _Resolved:
        member = _normalise(raw)
        full = self.root.joinpath(*member.split("/"))
        try:
            real = full.resolve()
        except (OSError, RuntimeError) as e:
            raise _Refused(f"path cannot be resolved ({e})", member) from e
        if not real.is_relative_to(self.root):
            raise _Refused("symbolic link points outside the export folder", member)
        return _Resolved(member, real)

    def _file_entry(self, res: _Resolved, meta: dict[str, Any]) -> Entry:
        loc = self._locator(res.member, meta)
        try:
            st = res.real.lstat()  # resolved already: a link left here was swapped in since
        except FileNotFoundError:
            return Entry(loc, error="file listed in result.json but absent from the export")
        except OSError as e:
            return Entry(loc, error=f"cannot read: {e.strerror or e}")
        reason = not_regular_reason(st.st_mode)
        if reason is not None:
            return Entry(loc, error=f"listed media: {reason}")
        if st.st_size > self.limits.max_file_bytes:
            return Entry(
                loc,
                error=f"file too large ({st.st_size} bytes > cap {self.limits.max_file_bytes})",
            )
        return Entry(loc, path=res.real, fingerprint=_stat_fingerprint(st))

    def _head_is_visual(self, res: _Resolved) -> bool:
        try:  # never a FIFO (the open would wait for a writer for ever) nor a device
            f, _ = open_regular(res.real)
            with f:
                head = f.read(64)
        except OSError:
            return True  # let the entry itself report the problem
        return sniff(head)[0] in ("photo", "video")

    # -- entries ---------------------------------------------------------------------------

    def entries(self) -> Iterator[Entry]:
        referenced: set[str] = {"result.json"}
        chats: list[_Chat] = []
        for index, (obj, left) in enumerate(self._chats):
            if not isinstance(obj, dict):
                yield Entry(
                    self._locator(None, {"chat_index": index, "chat_id": f"#{index}"}),
                    error=f"chat #{index} in result.json is not an object; skipped",
                )
                continue
            chat = _Chat(obj.get("name"), obj.get("type"), obj.get("id"), left, index)
            chats.append(chat)
            messages = obj.get("messages")
            if not isinstance(messages, list):
                meta = chat.meta()
                if chat.id is None:
                    meta["chat_id"] = f"#{index}"
                yield Entry(
                    self._locator(None, meta),
                    error=f"chat #{index} in result.json has no message list; skipped",
                )
                continue
            for msg in messages:
                yield from self._message_entries(chat, msg, referenced)
        yield from self._profile_picture_entries(referenced)
        yield from self._unreferenced_entries(chats, referenced)

    def _message_entries(self, chat: _Chat, msg: Any, referenced: set[str]) -> Iterator[Entry]:
        if not isinstance(msg, dict):
            yield Entry(
                self._locator(None, {**chat.meta(), "message_id": None}),
                error="message in result.json is not an object; skipped",
            )
            return
        meta = chat.meta()
        service = msg.get("type") == "service"
        date_unix = msg.get("date_unixtime")
        if isinstance(date_unix, str) and date_unix.isdigit():
            date_unix = int(date_unix)
        meta.update(
            message_id=msg.get("id"),
            message_type=msg.get("type"),
            date=msg.get("date"),
            date_unixtime=date_unix,
            sender=msg.get("actor" if service and "from" not in msg else "from"),
            sender_id=msg.get("actor_id" if service and "from_id" not in msg else "from_id"),
        )
        for key in ("forwarded_from", "saved_from", "author", "action"):
            if msg.get(key) is not None:
                meta[key] = msg[key]
        meta["text"] = _flatten_text(msg.get("text"))[:TEXT_CHARS]

        mime = msg.get("mime_type")
        refs: list[tuple[str, Any, str, Any]] = []  # (field, raw path, media_type, mime)
        if "photo" in msg:
            refs.append(("photo", msg["photo"], "photo", None))
        if "file" in msg:
            mt = msg.get("media_type")
            refs.append(("file", msg["file"], mt if isinstance(mt, str) else "document", mime))

        primary_missing: str | None = None
        for field_name, raw, media_type, ref_mime in refs:
            m = {**meta, "media_type": media_type, "mime_type": ref_mime}
            if field_name == "file" and isinstance(msg.get("file_name"), str):
                m["file_name"] = msg["file_name"]
            if not isinstance(raw, str):
                yield Entry(
                    self._locator(None, {**m, "listed_path": repr(raw)[:200]}),
                    error=f"'{field_name}' in result.json is not a path; skipped",
                )
                continue
            reason = _placeholder_reason(raw)
            if reason is not None:
                listed_name = msg.get("file_name") if field_name == "file" else None
                if not isinstance(listed_name, str):
                    listed_name = None
                if not self._wanted(field_name, media_type, ref_mime, listed_name, None):
                    continue
                primary_missing = media_type
                m.update(missing_reason=reason, placeholder=raw)
                yield Entry(
                    self._locator(None, m),
                    error=f"file not included in the export: {_one_line(raw)}",
                )
                continue
            try:
                res = self._resolve(raw)
            except _Refused as e:
                if e.member is not None:
                    referenced.add(e.member)
                yield Entry(
                    self._locator(None, {**m, "listed_path": raw}),
                    error=f"refused media path {raw!r}: {e}",
                )
                continue
            referenced.add(res.member)
            self._note_chat_dir(chat, res.member)
            referenced.add(res.real.relative_to(self.root).as_posix())
            if not self._wanted(field_name, media_type, ref_mime, res.member, res):
                continue
            entry = self._file_entry(res, m)
            if entry.error is not None and not _present(res.real):
                primary_missing = media_type
            yield entry

        yield from self._thumbnail_entries(chat, msg, meta, primary_missing, referenced)

    def _wanted(
        self,
        field_name: str,
        media_type: str,
        mime: Any,
        name: str | None,
        res: _Resolved | None,
    ) -> bool:
        """Whether a reference is an image or video (the only things reclaim scans)."""
        if field_name == "photo":
            return True
        if media_type in _AUDIO_MEDIA_TYPES:
            return False
        if media_type == "sticker":
            tgs = (isinstance(mime, str) and mime.lower() == _TGS_MIME) or (
                name is not None and name.lower().endswith(".tgs")
            )
            return not tgs
        if media_type in _VIDEO_MEDIA_TYPES:
            return True
        # Documents (and media types this reader does not know): by MIME type or name, else by
        # the file's own first bytes when it is on disk.
        if _is_visual_mime(mime) or _is_visual_name(name):
            return True
        if res is not None:
            return self._head_is_visual(res)
        # A missing document: record it only when nothing says what it was.
        return mime is None and name is None

    def _thumbnail_entries(
        self,
        chat: _Chat,
        msg: dict[str, Any],
        meta: dict[str, Any],
        primary_missing: str | None,
        referenced: set[str],
    ) -> Iterator[Entry]:
        raw = msg.get("thumbnail")
        if not isinstance(raw, str) or _placeholder_reason(raw) is not None:
            return
        m = {**meta, "media_type": "thumbnail", "mime_type": None}
        try:
            res = self._resolve(raw)
        except _Refused as e:
            if e.member is not None:
                referenced.add(e.member)
            yield Entry(
                self._locator(None, {**m, "listed_path": raw}),
                error=f"refused thumbnail path {raw!r}: {e}",
            )
            return
        referenced.add(res.member)
        self._note_chat_dir(chat, res.member)
        referenced.add(res.real.relative_to(self.root).as_posix())
        if primary_missing is None:
            return
        if _present(res.real, file=True):  # an absent thumbnail adds nothing to the missing entry
            m["thumbnail_of"] = primary_missing
            yield self._file_entry(res, m)

    def _note_chat_dir(self, chat: _Chat, member: str) -> None:
        parts = member.split("/")
        if self.layout == "account" and len(parts) > 2 and parts[0] == "chats":
            chat.dirs.add(f"{parts[0]}/{parts[1]}")

    def _profile_picture_entries(self, referenced: set[str]) -> Iterator[Entry]:
        pics = self._data.get("profile_pictures")
        if self.layout != "account" or not isinstance(pics, list):
            return
        for i, pic in enumerate(pics):
            if not isinstance(pic, dict) or not isinstance(pic.get("photo"), str):
                continue
            raw = pic["photo"]
            meta: dict[str, Any] = {
                "chat_name": None,
                "chat_type": None,
                "chat_id": None,
                "message_id": f"profile_picture#{i}",
                "date": pic.get("date"),
                "media_type": "profile_picture",
                "mime_type": None,
            }
            reason = _placeholder_reason(raw)
            if reason is not None:
                meta.update(missing_reason=reason, placeholder=raw)
                yield Entry(
                    self._locator(None, meta),
                    error=f"file not included in the export: {_one_line(raw)}",
                )
                continue
            try:
                res = self._resolve(raw)
            except _Refused as e:
                if e.member is not None:
                    referenced.add(e.member)
                yield Entry(
                    self._locator(None, {**meta, "listed_path": raw}),
                    error=f"refused media path {raw!r}: {e}",
                )
                continue
            referenced.add(res.member)
            referenced.add(res.real.relative_to(self.root).as_posix())
            yield self._file_entry(res, meta)

    def _unreferenced_entries(self, chats: list[_Chat], referenced: set[str]) -> Iterator[Entry]:
        skip_top: frozenset[str] = frozenset()
        if any((self.root / marker).is_file() for marker in _HTML_MARKERS):
            skip_top = _HTML_ASSET_DIRS
        by_dir = {d: c for c in chats for d in c.dirs}
        only_chat = chats[0] if self.layout == "chat" and chats else None
        unreadable: list[OSError] = []
        for dirpath, dirnames, filenames in os.walk(
            self.root, onerror=unreadable.append, followlinks=False
        ):
            yield from self._unreadable_dirs(unreadable)
            here = Path(dirpath)
            if here == self.root:
                dirnames[:] = [d for d in dirnames if d not in skip_top]
            dirnames.sort()
            for fn in sorted(filenames):
                p = here / fn
                rel = p.relative_to(self.root).as_posix()
                if rel in referenced:
                    continue
                parts = rel.split("/")
                chat = only_chat
                if chat is None and len(parts) > 2:
                    chat = by_dir.get(f"{parts[0]}/{parts[1]}")
                meta: dict[str, Any] = (
                    chat.meta()
                    if chat is not None
                    else {"chat_name": None, "chat_type": None, "chat_id": None}
                )
                meta["unreferenced"] = True
                entry = self._unreferenced_entry(p, rel, meta)
                if entry is not None:
                    yield entry
        yield from self._unreadable_dirs(unreadable)

    def _unreadable_dirs(self, errors: list[OSError]) -> Iterator[Entry]:
        """An error entry for each folder of the export that could not be listed."""
        for e in errors:
            where = Path(str(e.filename)) if e.filename is not None else self.root
            rel = where.relative_to(self.root).as_posix() if where != self.root else "."
            meta: dict[str, Any] = {"chat_name": None, "chat_type": None, "chat_id": None}
            meta["unreferenced"] = True
            yield Entry(
                self._locator(rel, meta),
                error=f"folder cannot be read ({e.strerror or e}); its files were not scanned",
            )
        errors.clear()

    def _unreferenced_entry(self, p: Path, rel: str, meta: dict[str, Any]) -> Entry | None:
        loc = self._locator(rel, meta)
        try:
            st = p.lstat()
        except OSError as e:
            return Entry(loc, error=f"cannot read: {e.strerror or e}")
        reason = not_regular_reason(st.st_mode)
        if reason is not None:  # links, FIFOs, sockets, devices: recorded, never opened
            return Entry(loc, error=reason)
        try:
            f, st = open_regular(p)
            with f:
                head = f.read(64)
        except OSError as e:
            return Entry(loc, error=f"cannot read: {e.strerror or e}")
        if sniff(head)[0] not in ("photo", "video"):
            return None
        if st.st_size > self.limits.max_file_bytes:
            return Entry(
                loc,
                error=f"file too large ({st.st_size} bytes > cap {self.limits.max_file_bytes})",
            )
        return Entry(loc, path=p, fingerprint=_stat_fingerprint(st))


def open_telegram(spec: str, limits: SourceLimits) -> TelegramSource:
    """Open a Telegram Desktop JSON export; raises SourceError when result.json is unusable."""
    return TelegramSource(spec, limits)
