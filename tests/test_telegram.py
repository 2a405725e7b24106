"""Telegram Desktop JSON exports: both layouts, provenance, placeholders, refused paths, damage."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from reclaim.errors import InputError, SourceError
from reclaim.sources import open_source
from reclaim.sources.base import Entry, Locator, SourceLimits
from reclaim.sources.telegram import TelegramSource, detect, open_telegram
from reclaim_fixtures.telegram import (
    CHATS,
    NOT_INCLUDED,
    Expected,
    TelegramExport,
    jpeg_bytes,
    write_telegram_export,
)

LIMITS = SourceLimits()


def _match(e: Entry) -> tuple[Any, ...]:
    m = e.locator.meta
    if m.get("unreferenced"):
        return ("unreferenced", e.locator.member)
    if m.get("media_type") == "profile_picture":
        return ("profile", e.locator.member)
    return (m.get("chat_id"), m.get("message_id"), m.get("media_type"))


def _entries(spec: Path | str, limits: SourceLimits = LIMITS) -> list[Entry]:
    return list(open_telegram(str(spec), limits).entries())


def _check(exp: Expected, e: Entry, export: TelegramExport) -> None:
    root = export.root.resolve()
    loc, meta = e.locator, e.locator.meta
    where = f"{exp.status} {exp.match}"
    assert loc.kind == "telegram", where
    assert loc.path == str(root), where
    assert meta["chat_name"] == exp.chat_name, where
    assert meta["chat_type"] == exp.chat_type, where
    assert meta["chat_id"] == exp.chat_id, where
    assert bool(meta.get("left_chat")) == exp.left_chat, where
    if exp.status not in ("unreferenced", "profile"):
        assert meta["message_id"] == exp.message_id, where
        assert meta["date"] == exp.date, where
        assert meta["date_unixtime"] == exp.date_unixtime, where
        assert meta["sender"] == exp.sender, where
        assert meta["sender_id"] == exp.sender_id, where
        assert meta.get("forwarded_from") == exp.forwarded_from, where
        assert meta.get("author") == exp.author, where
        assert meta["text"] == exp.text, where
        assert meta["media_type"] == exp.media_type, where
        assert meta["mime_type"] == exp.mime_type, where
    else:
        assert "message_id" not in meta or exp.status == "profile", where

    if exp.status in ("ok", "thumbnail", "unreferenced", "profile"):
        assert e.error is None, f"{where}: {e.error}"
        assert e.data is None
        assert e.path is not None and e.path.is_relative_to(root), where
        assert exp.member is not None and loc.member == exp.member, where
        assert e.path == root / exp.member
        assert hashlib.sha256(e.read()).hexdigest() == exp.sha256, where
        st = (root / exp.member).stat()
        assert e.fingerprint == f"{st.st_size}:{st.st_mtime_ns}", where
        if exp.status == "thumbnail":
            assert meta["thumbnail_of"] == exp.thumbnail_of
        if exp.status == "unreferenced":
            assert meta["unreferenced"] is True
        return

    assert e.path is None and e.data is None, where
    assert e.error, where
    if exp.status == "missing":
        assert loc.member is None, where
        assert e.error.startswith("file not included in the export: "), where
        assert meta["missing_reason"] == exp.missing_reason, where
        assert "Change data exporting settings" in e.error
    elif exp.status == "absent":
        assert loc.member == exp.member, where
        assert "file listed in result.json but absent" in e.error, where
    elif exp.status == "refused":
        assert loc.member is None, where
        assert "refused" in e.error, where
        assert meta["listed_path"] == exp.listed_path, where
    else:  # pragma: no cover - fixture statuses are closed
        raise AssertionError(exp.status)
    assert "\n" not in e.error


def _check_all(export: TelegramExport, entries: list[Entry]) -> None:
    got: dict[tuple[Any, ...], Entry] = {}
    for e in entries:
        k = _match(e)
        assert k not in got, f"two entries for {k}"
        got[k] = e
    want = {x.match: x for x in export.expected}
    assert set(got) == set(want)
    for k, exp in want.items():
        _check(exp, got[k], export)
    # Nothing that is not an image or video became an entry; the outside file was never offered.
    members = {e.locator.member for e in entries}
    for rel in export.not_items:
        assert rel not in members, rel
    outside = export.outside.resolve()
    assert all(e.path is None or e.path.resolve() != outside for e in entries)
    # Every locator is unique and survives a JSON round trip.
    keys = [e.locator.key for e in entries]
    assert len(keys) == len(set(keys))
    for e in entries:
        back = Locator.from_json(e.locator.to_json())
        assert back == e.locator and back.meta == e.locator.meta


# --------------------------------------------------------------------------- layouts


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> TelegramExport:
    base = tmp_path_factory.mktemp("tg_account")
    return write_telegram_export(base / "Telegram Desktop" / "DataExport_2024-03-05", "account")


@pytest.mark.parametrize("index", range(len(CHATS)), ids=[c[0][1] for c in CHATS])
def test_single_chat_export(tmp_path: Path, index: int) -> None:
    export = write_telegram_export(tmp_path / "ChatExport_2024-03-05", "chat", chat=index)
    assert export.data["type"] == CHATS[index][0][1]
    entries = _entries(export.root)
    _check_all(export, entries)
    # Paths in a single-chat export are relative to its folder: no "chats/" prefix.
    assert all(not (e.locator.member or "").startswith("chats/") for e in entries)


def test_account_export(account: TelegramExport) -> None:
    entries = _entries(account.root)
    _check_all(account, entries)
    chat_types = {e.locator.meta["chat_type"] for e in entries}
    assert {"public_channel", "private_supergroup", "personal_chat", "private_group"} <= chat_types
    assert "saved_messages" in chat_types
    # Left chats are marked, saved messages keep their (absent) name as None.
    left = [e for e in entries if e.locator.meta.get("left_chat")]
    assert left and all(e.locator.meta["chat_name"] == "Old Neighbours" for e in left)


def test_account_export_from_result_json_path(account: TelegramExport) -> None:
    by_dir = [e.locator.key for e in _entries(account.root)]
    by_file = [e.locator.key for e in _entries(account.result_json)]
    assert by_dir == by_file


def test_order_is_reproducible(account: TelegramExport) -> None:
    first = [e.locator.key for e in _entries(account.root)]
    second = [e.locator.key for e in _entries(account.root)]
    assert first == second
    src = open_telegram(str(account.root), LIMITS)
    assert [e.locator.key for e in src.entries()] == [e.locator.key for e in src.entries()]


def test_video_fixture_is_real_video(account: TelegramExport) -> None:
    if not account.real_video:
        pytest.skip("PyAV could not encode MP4 here; the fixture used header-only bytes")
    import av

    path = account.root / "chats/chat_001/video_files/clip.mp4"
    with av.open(str(path)) as c:
        frames = sum(1 for _ in c.decode(video=0))
    assert frames == 20


# --------------------------------------------------------------------------- details


def test_forwarded_and_entity_text(account: TelegramExport) -> None:
    entries = {_match(e): e for e in _entries(account.root)}
    post = entries[(1001, 11, "photo")].locator.meta
    assert post["text"] == "New drop see x.org"
    assert post["author"] == "Admin Bob"
    assert post["sender"] == "Leak Channel" and post["sender_id"] == "channel1001"
    assert "forwarded_from" not in post
    fwd = entries[(1001, 13, "photo")].locator.meta
    assert fwd["forwarded_from"] == "Other Channel"
    assert len(fwd["text"]) == 200 and fwd["text"].startswith("Forwarded: lorem ipsum")
    service = entries[(1002, 2, "photo")].locator.meta
    assert service["message_type"] == "service" and service["action"] == "edit_group_photo"
    assert service["sender"] == "Carol"


def test_placeholders_recorded_as_missing(account: TelegramExport) -> None:
    entries = _entries(account.root)
    missing = [e for e in entries if e.locator.meta.get("missing_reason")]
    assert {(e.locator.meta["message_id"], e.locator.meta["missing_reason"]) for e in missing} == {
        (14, "not_included"),
        (15, "too_large"),
    }
    for e in missing:
        assert e.locator.member is None and e.path is None
        assert e.error and e.error.startswith("file not included in the export: (File")


def test_thumbnail_only_when_file_is_missing(account: TelegramExport) -> None:
    entries = _entries(account.root)
    thumbs = [e for e in entries if e.locator.meta.get("media_type") == "thumbnail"]
    assert [e.locator.member for e in thumbs] == [
        "chats/chat_001/video_files/big_video.mp4_thumb.jpg"
    ]
    assert all(not (e.locator.member or "").endswith("clip.mp4_thumb.jpg") for e in entries)


def test_refused_paths_never_leave_the_export(account: TelegramExport) -> None:
    entries = _entries(account.root)
    refused = [e for e in entries if e.error and "refused" in e.error]
    listed = {e.locator.meta["listed_path"] for e in refused}
    assert f"../{account.outside.name}" in listed
    assert str(account.outside) in listed
    if account.symlink_made:
        assert any("symbolic link points outside" in (e.error or "") for e in refused)
        # The link is reported once, as refused, not again as an unreferenced file.
        assert not any(
            e.locator.meta.get("unreferenced") and "photo_5" in (e.locator.member or "")
            for e in entries
        )
    root = account.root.resolve()
    for e in entries:
        if e.path is not None:
            assert e.path.resolve().is_relative_to(root)


@pytest.mark.parametrize(
    "bad",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "photos/../../x.jpg",
        "..\\..\\x.jpg",
        "C:\\x.jpg",
        "a\x00b",
    ],
)
def test_traversal_variants_refused(tmp_path: Path, bad: str) -> None:
    root = tmp_path / "export"
    (root / "photos").mkdir(parents=True)
    (root / "photos" / "ok.jpg").write_bytes(jpeg_bytes(1))
    chat = {
        "name": "X",
        "type": "private_group",
        "id": 5,
        "messages": [
            {
                "id": 1,
                "type": "message",
                "date": "2024-01-01T00:00:00",
                "date_unixtime": "1704067200",
                "from": "A",
                "from_id": "user1",
                "text": "",
                "photo": bad,
            },
            {
                "id": 2,
                "type": "message",
                "date": "2024-01-01T00:00:01",
                "date_unixtime": "1704067201",
                "from": "A",
                "from_id": "user1",
                "text": "",
                "photo": "photos/ok.jpg",
            },
        ],
    }
    (root / "result.json").write_text(json.dumps(chat), encoding="utf-8")
    entries = _entries(root)
    assert len(entries) == 2
    bad_e, ok_e = entries
    assert bad_e.error and "refused" in bad_e.error and bad_e.path is None
    assert bad_e.locator.member is None and bad_e.locator.meta["message_id"] == 1
    assert ok_e.error is None and ok_e.locator.member == "photos/ok.jpg"


def test_windows_separators_are_read(tmp_path: Path) -> None:
    root = tmp_path / "export"
    (root / "photos").mkdir(parents=True)
    (root / "photos" / "p.jpg").write_bytes(jpeg_bytes(3))
    chat = {
        "name": "W",
        "type": "personal_chat",
        "id": 7,
        "messages": [
            {
                "id": 1,
                "type": "message",
                "date": "2024-01-01T00:00:00",
                "date_unixtime": "1704067200",
                "from": "A",
                "from_id": "user1",
                "text": "",
                "photo": "photos\\p.jpg",
            }
        ],
    }
    (root / "result.json").write_text(json.dumps(chat), encoding="utf-8")
    [e] = _entries(root)
    assert e.error is None and e.locator.member == "photos/p.jpg"


def test_size_cap_gives_error_entries(account: TelegramExport) -> None:
    entries = _entries(account.root, SourceLimits(max_file_bytes=100))
    listed_ok = [
        x for x in account.expected if x.status in ("ok", "thumbnail", "unreferenced", "profile")
    ]
    too_large = [e for e in entries if e.error and "too large" in e.error]
    assert len(too_large) == len(listed_ok)
    assert all(e.path is None for e in entries)


def test_malformed_chat_and_message_do_not_stop_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "export"
    (root / "chats" / "chat_002" / "photos").mkdir(parents=True)
    (root / "chats" / "chat_002" / "photos" / "a.jpg").write_bytes(jpeg_bytes(4))
    good_msg = {
        "id": 3,
        "type": "message",
        "date": "2024-01-01T00:00:00",
        "date_unixtime": "1704067200",
        "from": "B",
        "from_id": "user2",
        "text": [{"type": "italic", "text": "hey"}],
        "photo": "chats/chat_002/photos/a.jpg",
    }
    data = {
        "about": "Here is the data you requested.",
        "chats": {
            "list": [
                "garbage",
                {"name": "NoMessages", "type": "private_group", "id": 1},
                {
                    "name": "Good",
                    "type": "private_group",
                    "id": 2,
                    "messages": [
                        42,
                        {
                            "id": 2,
                            "type": "message",
                            "date": "x",
                            "from": "B",
                            "from_id": "user2",
                            "text": "",
                            "photo": 12345,
                        },
                        good_msg,
                    ],
                },
            ]
        },
    }
    (root / "result.json").write_text(json.dumps(data), encoding="utf-8")
    entries = _entries(root)
    errors = [e for e in entries if e.error]
    assert len(errors) == 4  # bad chat, chat without messages, non-object message, non-path photo
    assert all("\n" not in (e.error or "") for e in errors)
    ok = [e for e in entries if e.error is None]
    assert len(ok) == 1 and ok[0].locator.member == "chats/chat_002/photos/a.jpg"
    assert ok[0].locator.meta["chat_name"] == "Good" and ok[0].locator.meta["text"] == "hey"


def test_unreferenced_file_gets_its_chat(account: TelegramExport) -> None:
    entries = _entries(account.root)
    stray = [e for e in entries if e.locator.meta.get("unreferenced")]
    assert len(stray) == 1
    assert stray[0].locator.meta["chat_name"] == "Alice"
    assert stray[0].locator.meta["chat_id"] == 1003


def test_html_assets_not_reported_as_unreferenced(tmp_path: Path) -> None:
    export = write_telegram_export(tmp_path / "ex", "chat", chat=0)
    (export.root / "images").mkdir()
    (export.root / "images" / "back.png").write_bytes(_png())
    (export.root / "messages.html").write_text("<html></html>", encoding="utf-8")
    _check_all(export, _entries(export.root))


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buf, "PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- damaged exports


def _chat_with(tmp_path: Path, text: bytes) -> Path:
    root = tmp_path / "export"
    (root / "photos").mkdir(parents=True)
    (root / "result.json").write_bytes(text)
    return root


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "empty"),
        (b"<html>not json</html>", "not valid JSON"),
        (
            b'{"name": "X", "type": "personal_chat", "id": 1, "messages": [{"id": 1, "ty',
            "truncated",
        ),
        (b"[1, 2, 3]", "not a Telegram Desktop export"),
        (b'{"foo": 1}', "not a Telegram Desktop export"),
        (b'{"chats": [1, 2]}', "no chat list"),
        (b'{"name": "\xff\xfe", "messages": []}', "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "not a Telegram"),
    ],
)
def test_damaged_result_json_raises_source_error(
    tmp_path: Path, content: bytes, needle: str
) -> None:
    root = _chat_with(tmp_path, content)
    with pytest.raises(SourceError) as info:
        open_telegram(str(root), LIMITS)
    msg = str(info.value)
    assert needle in msg
    assert "\n" not in msg and "result.json" in msg


def test_truncated_real_export_raises_through_open_source(tmp_path: Path) -> None:
    export = write_telegram_export(tmp_path / "ex", "account")
    raw = export.result_json.read_bytes()
    export.result_json.write_bytes(raw[: len(raw) // 2])
    assert detect(str(export.root))
    with pytest.raises(SourceError, match="truncated"):
        open_source(str(export.root))


def test_bom_is_accepted(tmp_path: Path) -> None:
    export = write_telegram_export(tmp_path / "ex", "chat", chat=2)
    export.result_json.write_bytes(b"\xef\xbb\xbf" + export.result_json.read_bytes())
    _check_all(export, _entries(export.root))


# --------------------------------------------------------------------------- detection


def test_detect_and_registry(tmp_path: Path, account: TelegramExport) -> None:
    assert detect(str(account.root))
    assert detect(str(account.result_json))
    src = open_source(str(account.root))
    assert isinstance(src, TelegramSource) and src.name == "telegram"
    assert "telegram export" in src.describe() and "5 chats" in src.describe()
    assert isinstance(open_source(str(account.result_json)), TelegramSource)

    single = write_telegram_export(tmp_path / "single", "chat", chat=2)
    assert isinstance(open_source(str(single.root)), TelegramSource)
    assert "1 chat)" in open_source(str(single.root)).describe()

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.jpg").write_bytes(jpeg_bytes(1))
    assert not detect(str(plain))
    assert open_source(str(plain)).name == "folder"

    other = tmp_path / "other"
    other.mkdir()
    (other / "result.json").write_text('{"score": 3}', encoding="utf-8")
    (other / "photos").mkdir()  # generic folder names do not make it a Telegram export
    assert not detect(str(other))  # some other program's result.json: a plain folder
    assert open_source(str(other)).name == "folder"
    assert not detect(str(tmp_path / "nowhere"))
    assert not detect(str(other / "result.json.bak"))
    with pytest.raises(SourceError):
        open_telegram(str(other / "result.json"), LIMITS)  # asked for explicitly: say why not


def test_open_missing_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        open_source(str(tmp_path / "nothing"))
    with pytest.raises(SourceError):
        open_telegram(str(tmp_path), LIMITS)


def test_placeholder_of_non_image_gives_no_entry(tmp_path: Path) -> None:
    root = tmp_path / "export"
    root.mkdir()
    base = {
        "type": "message",
        "date": "2024-01-01T00:00:00",
        "date_unixtime": "1704067200",
        "from": "A",
        "from_id": "user1",
        "text": "",
    }
    msgs = [
        {
            **base,
            "id": 1,
            "file": NOT_INCLUDED,
            "media_type": "voice_message",
            "mime_type": "audio/ogg",
        },
        {
            **base,
            "id": 2,
            "file": NOT_INCLUDED,
            "mime_type": "application/pdf",
            "file_name": "a.pdf",
        },
        {**base, "id": 3, "file": NOT_INCLUDED, "mime_type": "image/png", "file_name": "a.png"},
        {
            **base,
            "id": 4,
            "file": NOT_INCLUDED,
            "media_type": "sticker",
            "mime_type": "application/x-tgsticker",
        },
        # Nothing says what this document was: recorded as missing rather than dropped.
        {**base, "id": 5, "file": "(File unavailable, please try again later)"},
    ]
    chat = {"name": "P", "type": "personal_chat", "id": 9, "messages": msgs}
    (root / "result.json").write_text(json.dumps(chat), encoding="utf-8")
    entries = _entries(root)
    assert [e.locator.meta["message_id"] for e in entries] == [3, 5]
    assert [e.locator.meta["missing_reason"] for e in entries] == ["not_included", "unavailable"]


def test_symlinked_result_folder_resolves(tmp_path: Path) -> None:
    export = write_telegram_export(tmp_path / "real", "chat", chat=1)
    link = tmp_path / "link"
    try:
        os.symlink(export.root, link)
    except OSError:
        pytest.skip("symbolic links not available")
    entries = _entries(link)
    assert entries[0].locator.path == str(export.root.resolve())


def test_dotdot_inside_the_export_is_still_refused(tmp_path: Path) -> None:
    # Telegram never writes "..": even a path that would land inside the export is refused.
    root = tmp_path / "export"
    (root / "photos").mkdir(parents=True)
    (root / "photos" / "ok.jpg").write_bytes(jpeg_bytes(1))
    msg = {
        "id": 1,
        "type": "message",
        "date": "2024-01-01T00:00:00",
        "date_unixtime": "1",
        "from": "A",
        "from_id": "user1",
        "text": "",
        "photo": "photos/../photos/ok.jpg",
    }
    chat = {"name": "X", "type": "private_group", "id": 5, "messages": [msg]}
    (root / "result.json").write_text(json.dumps(chat), encoding="utf-8")
    entries = _entries(root)
    refused = [e for e in entries if e.locator.meta.get("message_id") == 1]
    assert len(refused) == 1 and refused[0].error and "'..'" in refused[0].error
    # The file itself is then reported as unreferenced, so it is still scanned.
    [stray] = [e for e in entries if e.locator.meta.get("unreferenced")]
    assert stray.locator.member == "photos/ok.jpg" and stray.path is not None


def test_unreferenced_symlink_not_followed(tmp_path: Path) -> None:
    export = write_telegram_export(tmp_path / "ex", "chat", chat=2)
    link = export.root / "photos" / "extra.jpg"
    try:
        os.symlink(export.outside, link)
    except OSError:
        pytest.skip("symbolic links not available")
    entries = _entries(export.root)
    [e] = [e for e in entries if e.locator.member == "photos/extra.jpg"]
    assert e.path is None and e.error == "symbolic link not followed"
    assert e.locator.meta["unreferenced"] is True


def test_damaged_export_detected_by_its_folders(tmp_path: Path) -> None:
    # result.json cut within its first bytes: only Telegram's folder names say what it is.
    export = write_telegram_export(tmp_path / "ex", "account")
    export.result_json.write_bytes(b'{\n "ab')
    assert detect(str(export.root))
    with pytest.raises(SourceError, match="truncated"):
        open_source(str(export.root))


# --------------------------------------------------------------------------- not regular files


def _fifo_export(tmp_path: Path) -> Path:
    """A chat whose messages list a FIFO as a document (no name, no MIME type: only its bytes
    could say what it is) and as a photo, with a third FIFO and a socket no message lists."""
    import socket

    if not hasattr(os, "mkfifo"):
        pytest.skip("FIFOs not available")
    root = tmp_path / "export"
    (root / "files").mkdir(parents=True)
    (root / "photos").mkdir()
    os.mkfifo(root / "files" / "doc")
    os.mkfifo(root / "photos" / "pipe.jpg")
    os.mkfifo(root / "photos" / "stray")
    (root / "photos" / "ok.png").write_bytes(_png())
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(root / "photos" / "sock"))
    sock.close()
    base = {"type": "message", "date": "2024-01-01T00:00:00", "date_unixtime": "1704067200"}
    base |= {"from": "A", "from_id": "user1", "text": ""}
    msgs = [
        {**base, "id": 1, "file": "files/doc"},
        {**base, "id": 2, "photo": "photos/pipe.jpg"},
        {**base, "id": 3, "photo": "photos/ok.png"},
    ]
    chat = {"name": "P", "type": "personal_chat", "id": 9, "messages": msgs}
    (root / "result.json").write_text(json.dumps(chat), encoding="utf-8")
    return root


@pytest.mark.timeout(30)
def test_fifo_in_export_is_refused_without_hanging(tmp_path: Path) -> None:
    # Issue 18, item 4: sniffing the document's first bytes opened the FIFO and waited for ever
    # for a writer (before the fix this test ran into its 30 s timeout).
    root = _fifo_export(tmp_path)
    by_member = {e.locator.member: e for e in _entries(root)}
    assert by_member["photos/ok.png"].path is not None
    for member in ("files/doc", "photos/pipe.jpg", "photos/stray"):
        e = by_member[member]
        assert e.path is None and e.error is not None and "named pipe (FIFO)" in e.error, member
    sock = by_member["photos/sock"]
    assert sock.error is not None and "socket" in sock.error
    assert by_member["photos/stray"].locator.meta["unreferenced"] is True


@pytest.mark.timeout(60)
def test_fifo_in_export_recorded_by_a_scan(tmp_path: Path) -> None:
    from reclaim.scan import scan
    from reclaim.store import CaseStore

    root = _fifo_export(tmp_path)
    with CaseStore.open(tmp_path / "case", create=True) as store:
        scan(store, [open_source(str(root))], workers=0)
        errs = store.errors()
    fifo = [where for where, why in errs if "named pipe (FIFO)" in why]
    assert len(fifo) == 3, errs
