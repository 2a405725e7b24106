"""Keep watch (issue 22): ``reclaim watch`` scans her registered sources again, checks the URLs
she listed or asked to have removed against a local server the test controls, flags new places
and reappeared URLs, and alerts a local receiver with counts only (no image, URL or path).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from reclaim.alerts import Alert, add_target, case_label, check_target, shown
from reclaim.decisions import decide
from reclaim.errors import InputError, StoreError
from reclaim.faces.describe import DESCRIPTOR_DIM, descriptor_to_bytes
from reclaim.media import MediaLimits
from reclaim.protect import analyze_for_protect, now_stamp, protect_rows, rows_to_csv
from reclaim.report.custody import CustodyLog, verify_chain
from reclaim.sources import SourceLimits
from reclaim.store import CaseStore, ItemRecord
from reclaim.store.case import FaceRecord
from reclaim.watch import (
    RequestedUrl,
    WatchReport,
    WatchScheduler,
    add_source,
    cron_line,
    import_protected_hashes,
    overview,
    parse_every,
    remove_source,
    systemd_units,
    watch_once,
)
from reclaim.watch.schedule import every_text

from .conftest import jpeg_bytes, photo_like, shared_data
from .served import BASE64, URLISH, Server, assert_clean_alert, receiver, server

__all__ = ["receiver", "server"]  # fixtures used by the tests below

# -- the server the test controls and the alert receiver: tests/served.py ---------------------


def photo(seed: int) -> bytes:
    return jpeg_bytes(photo_like(seed, (320, 240)), quality=88)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Book:
    """Her removal requests, through the watch's protocol (``RequestBook``)."""

    def __init__(self) -> None:
        self.requests: dict[int, RequestedUrl] = {}
        self.marked: list[int] = []

    def add(self, rid: int, url: str, item: str, status: str) -> None:
        from reclaim.store.base import now_iso

        self.requests[rid] = RequestedUrl(rid, url, item, status, now_iso())

    def set(self, rid: int, status: str) -> None:
        from reclaim.store.base import now_iso

        self.requests[rid] = replace(self.requests[rid], status=status, updated_at=now_iso())

    def requested_urls(self, store: CaseStore) -> list[RequestedUrl]:
        return list(self.requests.values())

    def mark_reappeared(
        self, store: CaseStore, request_id: int, note: str, *, now: datetime | None = None
    ) -> bool:
        if self.requests[request_id].status != "removed":
            return False
        self.set(request_id, "reappeared")
        self.marked.append(request_id)
        return True


def run(store: CaseStore, book: Book | None = None, **kw: Any) -> WatchReport:
    return watch_once(store, requests=book or Book(), workers=0, **kw)


@pytest.fixture
def case(tmp_path: Path) -> Iterator[CaseStore]:
    with CaseStore.open(tmp_path / "lea", create=True) as store:
        yield store


# -- URLs: removed, still removed, back -----------------------------------------------------


def test_requested_url_still_removed_then_reappeared_alerts_counts_only(
    case: CaseStore, server: Server, receiver: Server, tmp_path: Path
) -> None:
    a, b = photo(1), photo(2)
    server.state.serve("/media/a.jpg", a)
    server.state.serve("/media/b.jpg", b)
    url_a, url_b = f"{server.base}/media/a.jpg", f"{server.base}/media/b.jpg"
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{url_a}\n{url_b}\n")
    add_source(case, urls)
    add_target(case, f"{receiver.base}/hook", "en")
    add_target(case, f"file:{tmp_path / 'alerts.jsonl'}", "fr")
    book = Book()

    first = run(case, book)
    assert {u.url: u.outcome for u in first.urls} == {url_a: "online", url_b: "online"}
    assert first.attention == 0 and first.alerts == [] and receiver.state.posts == []

    # she sends the request; the host removes it and she marks it removed
    book.add(7, url_a, sha(a), "sent")
    book.set(7, "removed")
    server.state.stop("/media/a.jpg")
    second = run(case, book)
    assert {u.url: u.outcome for u in second.urls} == {url_a: "still_removed", url_b: "online"}
    assert second.summary()["still_removed"] == 1
    assert second.attention == 0 and receiver.state.posts == [] and book.marked == []
    assert case.url_states()[url_a].state == "gone"

    # the same picture comes back at the same URL
    server.state.serve("/media/a.jpg", a)
    third = run(case, book)
    assert [u.outcome for u in third.urls if u.url == url_a] == ["reappeared"]
    assert [e.url for e in third.reappeared] == [url_a] and third.reappeared[0].request_id == 7
    assert book.marked == [7] and book.requests[7].status == "reappeared"
    assert [d.delivered for d in third.alerts] == [True, True]
    assert len(receiver.state.posts) == 1
    path, body = receiver.state.posts[0]
    assert path == "/hook"
    alert = assert_clean_alert(body, case.root)
    assert alert["attention"] == 1 and alert["reappeared"] == 1 and alert["case"] == "lea"
    assert alert["message"].startswith("1 new place needs your attention in case lea.")
    lines = (tmp_path / "alerts.jsonl").read_bytes().splitlines()
    assert len(lines) == 1
    assert assert_clean_alert(lines[0], case.root)["message"].startswith(
        "1 nouvel endroit demande votre attention dans le dossier lea."
    )

    # still online next time: reported once, not at every run
    fourth = run(case, book)
    assert fourth.attention == 0 and len(receiver.state.posts) == 1
    assert [u.outcome for u in fourth.urls if u.url == url_a] == ["online"]

    # only the URLs she listed were fetched, nothing else
    assert set(server.state.hits) == {"/media/a.jpg", "/media/b.jpg"}
    log = CustodyLog(case.root).entries()
    assert not verify_chain(log)
    runs = [e for e in log if e["action"] == "watch.run"]
    assert len(runs) == 4
    assert runs[2]["details"]["events"] == [
        {"kind": "reappeared", "url": url_a, "item": sha(a), "request": 7}
    ]
    alerts = [e for e in log if e["action"] == "watch.alert"]
    assert len(alerts) == 1 and receiver.base not in json.dumps(alerts)
    assert [r["status"] for r in case.runs()] == ["done"] * 4
    assert all(r["command"] == "watch" for r in case.runs())
    seen = overview(case)  # what a web page shows
    assert [u.state for u in seen.urls] == ["online", "online"]
    assert [t[1] for t in seen.alert_targets] == [
        f"{receiver.base}/…",
        f"file:{tmp_path}/alerts.jsonl",
    ]
    assert seen.last_run is not None and seen.last_run["stats"]["watch"]["urls_online"] == 2
    assert [e.kind for e in seen.recent] == ["reappeared"]


def test_the_case_requests_are_checked_and_marked_reappeared(
    case: CaseStore, server: Server, receiver: Server, tmp_path: Path
) -> None:
    """The same journey through the requests of the case (``reclaim.requests``): the request
    drafted, sent and marked removed; the watch marks it "reappeared" in its history."""
    from reclaim.requests.case import draft, mark

    a = photo(12)
    url, lst = server.listed("/u/a.jpg", a, tmp_path / "l.txt")
    add_source(case, lst)
    add_target(case, f"{receiver.base}/hook", "en")
    assert watch_once(case, workers=0).count("online") == 1
    decide(case, sha(a), "confirmed")
    rid = draft(case, sha(a), "hosting-dsa", place=url).view.id
    mark(case, rid, "sent")
    mark(case, rid, "removed")
    server.state.stop("/u/a.jpg")
    still = watch_once(case, workers=0)
    assert [(u.outcome, u.requests) for u in still.urls] == [("still_removed", (rid,))]
    server.state.serve("/u/a.jpg", a)
    back = watch_once(case, workers=0)
    assert [u.outcome for u in back.urls] == ["reappeared"] and back.requests_marked == [rid]
    req = case.request(rid)
    assert req is not None and req.status.value == "reappeared"
    last = case.request_events(rid)[-1]
    assert (last.status.value, last.actor) == ("reappeared", "reclaim watch")
    assert_clean_alert(receiver.state.posts[-1][1], case.root)
    marked = [e for e in CustodyLog(case.root).entries() if e["action"] == "request.marked"]
    assert marked[-1]["details"]["to"] == "reappeared"
    assert watch_once(case, workers=0).attention == 0  # once


def test_a_run_stores_the_instant_it_is_given(
    case: CaseStore, server: Server, receiver: Server, tmp_path: Path
) -> None:
    """``now=`` (a front end's clock, as for the requests): when the run finished, each URL's
    answer, each event, when the alert counted it and what it says, the request marked
    "reappeared" and the custody entry's details are at that instant, not the computer's (years
    ahead of it here). Requests marked on the same clock are judged on it: removed again, the
    picture still online is back once, then not again."""
    from reclaim.requests.case import draft, mark

    t0 = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)

    def at(days: int) -> str:
        return (t0 + timedelta(days=days)).isoformat(timespec="milliseconds")[:-6] + "Z"

    a = photo(14)
    url, lst = server.listed("/t/a.jpg", a, tmp_path / "l.txt")
    add_source(case, lst)
    add_target(case, f"{receiver.base}/hook", "en")
    first = watch_once(case, workers=0, now=t0)
    assert first.count("online") == 1
    assert case.runs()[-1]["finished_at"] == at(0)
    state = case.url_states()[url]
    assert (state.checked_at, state.changed_at) == (at(0), at(0))
    decide(case, sha(a), "confirmed")
    rid = draft(case, sha(a), "hosting-dsa", place=url, now=t0).view.id
    mark(case, rid, "sent", now=t0 + timedelta(hours=1))
    mark(case, rid, "removed", now=t0 + timedelta(days=1))
    server.state.stop("/t/a.jpg")
    watch_once(case, workers=0, now=t0 + timedelta(days=2))
    state = case.url_states()[url]
    assert (state.state, state.checked_at, state.changed_at) == ("gone", at(2), at(2))
    server.state.serve("/t/a.jpg", a)
    back = watch_once(case, workers=0, now=t0 + timedelta(days=3))
    assert [u.outcome for u in back.urls] == ["reappeared"] and back.requests_marked == [rid]
    (event,) = case.watch_events(url=url)
    assert (event.kind, event.at, event.alerted_at) == ("reappeared", at(3), at(3))
    last = case.request_events(rid)[-1]
    assert (last.status.value, last.at) == ("reappeared", at(3))
    assert json.loads(receiver.state.posts[-1][1])["sent_at"] == at(3)
    runs = [e for e in CustodyLog(case.root).entries() if e["action"] == "watch.run"]
    assert runs[-1]["details"]["at"] == at(3)
    assert case.runs()[-1]["finished_at"] == at(3)
    mark(case, rid, "removed", now=t0 + timedelta(days=4))  # taken down again
    assert watch_once(case, workers=0, now=t0 + timedelta(days=5)).attention == 1
    assert watch_once(case, workers=0, now=t0 + timedelta(days=6)).attention == 0  # once


def test_reported_back_once_even_when_marking_the_request_did_not_happen(
    case: CaseStore, server: Server
) -> None:
    """As if the run were killed between writing its events and marking the request: the next
    run marks it, and neither reports the place nor alerts again."""

    class Flaky(Book):
        fail = True

        def mark_reappeared(
            self, store: CaseStore, request_id: int, note: str, *, now: datetime | None = None
        ) -> bool:
            if self.fail:
                self.fail = False
                return False
            return super().mark_reappeared(store, request_id, note, now=now)

    a = photo(13)
    url = f"{server.base}/a.jpg"
    server.state.serve("/a.jpg", a)
    book = Flaky()
    book.add(3, url, sha(a), "removed")
    first = run(case, book)
    assert first.attention == 1 and first.requests_marked == [] and book.marked == []
    second = run(case, book)
    assert second.attention == 0 and second.requests_marked == [3] and book.marked == [3]
    assert [e.kind for e in case.watch_events()] == ["reappeared"]


def test_requested_url_not_listed_is_checked_too(
    case: CaseStore, server: Server, tmp_path: Path
) -> None:
    a = photo(3)
    url = f"{server.base}/x/a.jpg"
    book = Book()
    book.add(1, url, sha(a), "removed")
    server.state.serve("/x/a.jpg", a)
    r = run(case, book)  # no source registered: her request's URL alone
    assert [(u.url, u.outcome) for u in r.urls] == [(url, "reappeared")]
    assert book.marked == [1] and server.state.hits == ["/x/a.jpg"]


def test_listed_url_offline_then_back_and_replaced_picture(
    case: CaseStore, server: Server, tmp_path: Path
) -> None:
    a, other = photo(4), photo(40)
    server.state.serve("/a.jpg", a)
    server.state.serve("/b.jpg", a)
    lst = tmp_path / "l.txt"
    lst.write_text(f"{server.base}/a.jpg\n{server.base}/b.jpg\n")
    add_source(case, lst)
    run(case)
    server.state.stop("/a.jpg")
    server.state.stop("/b.jpg")
    gone = run(case)
    assert sorted(e.url or "" for e in gone.removed) == [
        f"{server.base}/a.jpg",
        f"{server.base}/b.jpg",
    ]
    assert {u.outcome for u in gone.urls} == {"removed"}
    again = run(case)
    assert {u.outcome for u in again.urls} == {"still_removed"} and not again.removed
    server.state.serve("/a.jpg", a)  # the same picture back
    server.state.serve("/b.jpg", other)  # a different picture at that address
    back = run(case)
    outcomes = {u.url: u.outcome for u in back.urls}
    assert outcomes == {f"{server.base}/a.jpg": "reappeared", f"{server.base}/b.jpg": "replaced"}
    assert [e.item_sha256 for e in back.replaced] == [sha(other)]
    assert back.attention == 1


def test_unreachable_and_capped_answers_keep_the_last_state(
    case: CaseStore, server: Server, tmp_path: Path
) -> None:
    a = photo(5)
    for p in ("/a.jpg", "/big.jpg", "/page"):
        server.state.serve(p, a)
    lst = tmp_path / "l.txt"
    lst.write_text("\n".join(f"{server.base}{p}" for p in ("/a.jpg", "/big.jpg", "/page")))
    add_source(case, lst)
    assert {u.outcome for u in run(case).urls} == {"online"}
    server.state.serve("/a.jpg", b"busy", "text/plain", 503)  # a server error tells nothing
    server.state.serve("/big.jpg", a + b"\0" * 200_000)  # over the cap given
    server.state.serve("/page", b"<html>removed</html>", "text/html")  # no image any more
    r = run(case, source_limits=SourceLimits(url_max_bytes=100_000))
    by = {u.url.rsplit("/", 1)[1]: u for u in r.urls}
    assert by["a.jpg"].outcome == "unreachable" and "503" in by["a.jpg"].detail
    assert by["big.jpg"].outcome == "unreachable" and "too large" in by["big.jpg"].detail
    assert by["page"].outcome == "removed" and "not an image" in by["page"].detail
    states = case.url_states()
    assert states[f"{server.base}/a.jpg"].state == "online"  # unchanged
    assert states[f"{server.base}/big.jpg"].state == "online"
    assert states[f"{server.base}/page"].state == "gone"


def test_failed_alert_is_sent_with_the_next_run(
    case: CaseStore, server: Server, receiver: Server, tmp_path: Path
) -> None:
    a = photo(6)
    server.state.serve("/a.jpg", a)
    lst = tmp_path / "l.txt"
    lst.write_text(f"{server.base}/a.jpg\n")
    add_source(case, lst)
    add_target(case, f"{receiver.base}/hook", "en")
    run(case)
    server.state.stop("/a.jpg")
    run(case)
    server.state.serve("/a.jpg", a)
    receiver.state.answer = 500
    r = run(case)
    assert r.attention == 1 and [d.delivered for d in r.alerts] == [False]
    assert "HTTP 500" in r.alerts[0].detail
    receiver.state.answer = 200
    later = run(case)  # nothing new, but the alert that did not go out goes now
    assert later.attention == 0 and [d.delivered for d in later.alerts] == [True]
    body = assert_clean_alert(receiver.state.posts[-1][1], case.root)
    assert body["reappeared"] == 1
    assert run(case).alerts == []  # and only once


# -- folders: new material dropped in -------------------------------------------------------


def _telegram_export(root: Path, photos: list[bytes]) -> None:
    (root / "photos").mkdir(parents=True)
    messages = []
    for i, data in enumerate(photos, start=1):
        (root / "photos" / f"p{i}.jpg").write_bytes(data)
        messages.append(
            {
                "id": i,
                "type": "message",
                "date": f"2026-01-0{i}T10:00:00",
                "date_unixtime": str(1767261600 + i),
                "from": "bot",
                "from_id": "user9",
                "text": "",
                "photo": f"photos/p{i}.jpg",
            }
        )
    chat = {"name": "Leak channel", "type": "public_channel", "id": 42, "messages": messages}
    (root / "result.json").write_text(json.dumps(chat), encoding="utf-8")


def test_new_files_and_exports_dropped_in_a_watched_folder_are_found_next_run(
    case: CaseStore, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    (drop / "sub").mkdir(parents=True)
    for i in range(3):
        (drop / f"{i}.jpg").write_bytes(photo(100 + i))
    add_source(case, drop)
    first = run(case)
    assert first.scan is not None and first.scan.new_items == 3
    (drop / "sub" / "new.jpg").write_bytes(photo(110))
    _telegram_export(drop / "ChatExport_2026-01-05", [photo(111), photo(112)])
    second = run(case)
    assert second.scan is not None
    assert second.scan.new_items == 3 and second.scan.skipped == 3
    kinds = {
        json.loads(r[0])["kind"]
        for r in case.conn.execute(
            "SELECT locator FROM sightings WHERE run_id = ?", (second.run_id,)
        )
    }
    assert kinds == {"file", "telegram"}
    chats = {
        json.loads(r[0])["meta"].get("chat_name")
        for r in case.conn.execute(
            "SELECT locator FROM sightings WHERE run_id = ?", (second.run_id,)
        )
    }
    assert "Leak channel" in chats
    third = run(case)
    assert third.scan is not None and third.scan.new_items == 0 and third.scan.analysed == 0


def test_sources_are_registered_listed_and_removed(case: CaseStore, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    lst = tmp_path / "urls.txt"
    lst.write_text("https://example.org/a.jpg\n")
    assert add_source(case, drop).kind == "folder"
    assert add_source(case, lst).kind == "urllist"
    with pytest.raises(StoreError, match="watched already"):
        add_source(case, drop)
    with pytest.raises(InputError, match="no such file"):
        add_source(case, tmp_path / "nope")
    with pytest.raises(InputError, match="holds the case folder"):
        add_source(case, tmp_path)  # the case is inside it: the watch would scan itself
    assert [s.kind for s in case.watch_sources()] == ["folder", "urllist"]
    remove_source(case, drop)
    assert [s.spec for s in case.watch_sources()] == [str(lst)]
    with pytest.raises(InputError, match="not watched"):
        remove_source(case, drop)
    gone = [e["details"] for e in CustodyLog(case.root).entries() if e["action"] == "watch.source"]
    assert gone[-1] == {"removed": str(drop)}


def test_unplugged_source_is_reported_and_the_rest_watched(case: CaseStore, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (b / "1.jpg").write_bytes(photo(7))
    add_source(case, a)
    add_source(case, b)
    a.rmdir()
    r = run(case)
    assert len(r.source_problems) == 1 and "no longer there" in r.source_problems[0]
    assert r.scan is not None and r.scan.new_items == 1


# -- new places: protected hashes, confirmed items, faces found -----------------------------


def _protect_csv(data: bytes) -> str:
    item, pdq = analyze_for_protect(data, MediaLimits())
    return rows_to_csv(protect_rows(item, now_stamp(), pdq))


def test_protected_and_confirmed_pictures_are_new_places_once(
    case: CaseStore, tmp_path: Path, receiver: Server
) -> None:
    private, mine, other = photo(200), photo(201), photo(202)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "mine.jpg").write_bytes(mine)
    (drop / "other.jpg").write_bytes(other)
    add_source(case, drop)
    add_target(case, f"{receiver.base}/hook", "fr")
    rows = _protect_csv(private)
    assert import_protected_hashes(case, rows) == (2, 0)  # md5, PDQ (both flavours agree)
    assert import_protected_hashes(case, rows) == (0, 2)
    assert run(case).attention == 0  # nothing of hers yet
    decide(case, sha(mine), "confirmed")
    decide(case, sha(other), "not_me")
    (drop / "later").mkdir()
    (drop / "later" / "copy-of-mine.jpg").write_bytes(mine)  # same bytes, new place
    (drop / "later" / "copy-of-other.jpg").write_bytes(other)  # she said not her
    (drop / "later" / "leak.jpg").write_bytes(private)  # her private photo, exact
    recompressed = jpeg_bytes(photo_like(200, (320, 240)), quality=60)
    (drop / "later" / "leak2.jpg").write_bytes(recompressed)  # and a re-encoded copy (PDQ)
    mine_again = jpeg_bytes(photo_like(201, (320, 240)), quality=55)
    (drop / "later" / "mine-recompressed.jpg").write_bytes(mine_again)  # near copy of hers
    r = run(case)
    reasons = {
        Path(case.sighting_locator(e.sighting_id or 0).path).name: e.reason  # type: ignore[union-attr]
        for e in r.new_places
    }
    assert reasons == {
        "copy-of-mine.jpg": "confirmed",
        "leak.jpg": "protected",
        "leak2.jpg": "protected",
        "mine-recompressed.jpg": "similar",
    }
    alert = assert_clean_alert(receiver.state.posts[-1][1], case.root)
    assert alert["new_places"] == 4 and alert["message"].startswith(
        "4 nouveaux endroits demandent votre attention dans le dossier lea."
    )
    assert run(case).attention == 0 and len(receiver.state.posts) == 1  # never twice
    # hashes given later are compared with every place seen since the watch began
    (tmp_path / "p.jpg").write_bytes(other)
    assert import_protected_hashes(case, _protect_csv(other))[0] >= 1
    assert run(case).new_places == []  # "other" is not her: her decision stands


def test_a_face_found_after_the_scan_is_a_new_place_at_the_next_run(
    case: CaseStore, tmp_path: Path
) -> None:
    """Face search that waited (locked templates) or came later (``reclaim faces``): the next
    watch reports the place where her face was found."""
    drop = tmp_path / "drop"
    drop.mkdir()
    data = photo(300)
    (drop / "x.jpg").write_bytes(data)
    add_source(case, drop)
    run(case)
    d = np.zeros(DESCRIPTOR_DIM, np.float32)
    d[0] = 1.0
    face = FaceRecord((1, 1, 60, 60), 60, "hog", 1.0, 100.0, 0.0, 1.0, descriptor_to_bytes(d))
    item = ItemRecord(sha(data), "0" * 32, len(data), "photo", "jpeg", faces=[face], face_frames=1)
    case.record_faces([item])
    eid = case.add_enrollment("lea", "lea", "consent", [(descriptor_to_bytes(d), 60, 100.0, 0.0)])
    fid = case.item_faces(sha(data))[0]["face_id"]
    case.upsert_findings([(eid, sha(data), fid, 0.1, 0.1, 0.1, 0.99, 1)])
    r = run(case)
    assert [(e.reason, e.item_sha256) for e in r.new_places] == [("face", sha(data))]
    assert r.face_search == "on"


def test_locked_templates_defer_face_search_and_say_so(case: CaseStore, tmp_path: Path) -> None:
    from reclaim.enroll import lock_templates

    d = np.zeros(DESCRIPTOR_DIM, np.float32)
    d[1] = 1.0
    case.add_enrollment("lea", "lea", "consent", [(descriptor_to_bytes(d), 60, 100.0, 0.0)])
    lock_templates(case, "correct horse battery staple")
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "x.jpg").write_bytes(photo(301))
    add_source(case, drop)
    r = run(case)
    assert r.face_search == "deferred"
    key = case.template_key("correct horse battery staple")
    assert run(case, passphrase=key).face_search == "on"


# -- alerts -----------------------------------------------------------------------------------


def test_alert_sentences_and_payload_hold_counts_only() -> None:
    one = Alert("lea", 1)
    assert (
        one.message("en")
        == "1 new place needs your attention in case lea. Open reclaim to see them."
    )
    assert one.message("fr").startswith("1 nouvel endroit demande votre attention")
    two = Alert("lea", 1, reappeared=1)
    assert two.message("en").startswith("2 new places need your attention in case lea. 1 of them")
    assert "Dont 1 endroit que vous aviez fait retirer" in two.message("fr")
    three = Alert("lea", 0, reappeared=3)
    assert "3 of them are places you had removed" in three.message("en")
    payload = json.dumps(two.payload("en", "2026-01-01T00:00:00Z"))
    assert not URLISH.search(payload) and not BASE64.search(payload)


def test_case_label_is_never_a_path_or_an_address(tmp_path: Path) -> None:
    assert case_label(tmp_path / "Léa 2026") == "Léa 2026"
    weird = tmp_path / "https:__evil.example..com"
    assert "://" not in case_label(weird) and ".." not in case_label(weird)
    assert case_label(tmp_path / "...") == "reclaim"


def test_targets_are_checked_and_never_shown_with_secrets(tmp_path: Path) -> None:
    assert check_target(f"file:{tmp_path}/a.jsonl") == f"file:{tmp_path}/a.jsonl"
    with pytest.raises(InputError, match="absolute path"):
        check_target("file:alerts.jsonl")
    with pytest.raises(InputError, match="does not exist"):
        check_target(f"file:{tmp_path}/nope/a.jsonl")
    with pytest.raises(InputError, match="an alert target is"):
        check_target("lea@example.org")
    with pytest.raises(InputError, match="webhook address"):
        check_target("https://exa mple.org/hook")
    assert shown("https://user:secret@hooks.example.org/T0KEN?k=v") == "https://hooks.example.org/…"
    assert "secret" not in shown("mailtos://lea:secret@example.org")
    pytest.importorskip("apprise")
    assert check_target("json://localhost:9/x") == "json://localhost:9/x"
    with pytest.raises(InputError, match="Apprise does not understand"):
        check_target("nosuchservice://x")


def test_no_alert_without_a_target(case: CaseStore, server: Server, tmp_path: Path) -> None:
    a = photo(8)
    server.state.serve("/a.jpg", a)
    book = Book()
    book.add(1, f"{server.base}/a.jpg", sha(a), "removed")
    r = run(case, book)
    assert r.attention == 1 and r.alert is None and r.alerts == []
    assert not [e for e in CustodyLog(case.root).entries() if e["action"] == "watch.alert"]
    assert case.watch_events(unalerted=True) == []  # told in the case; no flood later


def test_apprise_target_gets_counts_only(case: CaseStore, server: Server, receiver: Server) -> None:
    pytest.importorskip("apprise")
    a = photo(9)
    server.state.serve("/a.jpg", a)
    book = Book()
    book.add(1, f"{server.base}/a.jpg", sha(a), "removed")
    add_target(case, receiver.base.replace("http://", "json://") + "/apprise", "en")
    r = run(case, book)
    assert [d.delivered for d in r.alerts] == [True], r.alerts
    path, body = receiver.state.posts[0]
    assert path == "/apprise"
    got = json.loads(body)
    assert "1 new place needs your attention in case lea" in got["message"]
    for text in (got["message"], got["title"]):
        assert not URLISH.search(text) and not BASE64.search(text)
    assert not got.get("attachments")


# -- crash: kill -9 in the middle of a watch run -----------------------------------------------


@pytest.mark.timeout(300)
def test_kill_9_during_a_watch_run_resumes_without_duplicates(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    n = 160
    protected = []
    for i in range(n):
        data = jpeg_bytes(photo_like(1000 + i, (480, 360)), quality=85)
        (drop / f"{i:04d}.jpg").write_bytes(data)
        if i % 40 == 5:
            protected.append(data)
    casedir = tmp_path / "case"
    with CaseStore.open(casedir, create=True) as store:
        add_source(store, drop)
        for data in protected:  # md5 rows only: exact copies
            rows = [r for r in _protect_csv(data).splitlines() if ",md5," in f",{r}"]
            import_protected_hashes(store, "signal_type,signal,quality\n" + "\n".join(rows))
    cmd = [
        sys.executable,
        "-m",
        "reclaim.cli",
        "watch",
        "--case",
        str(casedir),
        "--once",
        "-j",
        "2",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    killed_at = -1
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
            try:
                with sqlite3.connect(casedir / "case.sqlite", timeout=0.1) as c:
                    seen = c.execute("SELECT COUNT(*) FROM sightings").fetchone()[0]
            except sqlite3.OperationalError:
                continue
            if seen >= 40:
                killed_at = seen
                os.killpg(proc.pid, signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert 40 <= killed_at < n, f"the run was not caught mid-way ({killed_at} places)"
    with CaseStore.open(casedir) as store:
        assert store.watch_events() == []  # killed before it judged anything
        assert [r["status"] for r in store.runs()] == ["interrupted"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "4 new places need your attention" in done.stdout
    with CaseStore.open(casedir) as store:
        c = store.conn
        assert c.execute("SELECT COUNT(*) FROM items").fetchone()[0] == n
        assert c.execute("SELECT COUNT(*) FROM sightings").fetchone()[0] == n
        assert c.execute("SELECT COUNT(DISTINCT locator_key) FROM sightings").fetchone()[0] == n
        events = store.watch_events()
        assert sorted(e.item_sha256 or "" for e in events) == sorted(sha(p) for p in protected)
        assert {e.reason for e in events} == {"protected"}
        assert [r["status"] for r in store.runs()] == ["interrupted", "done"]
        first = store.runs()[1]["stats"]
        assert first["skipped"] == killed_at and first["new_items"] == n - killed_at
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0 and "nothing new needs your attention" in again.stdout


# -- schedule -----------------------------------------------------------------------------------


def test_intervals() -> None:
    assert parse_every("6h") == 21600 and parse_every("30m") == 1800 and parse_every("1d") == 86400
    assert every_text(21600) == "6h" and every_text(90) == "90s"
    for bad in ("6", "h", "0h", "-1h", "6 hours", "1.5h"):
        with pytest.raises(InputError, match="not an interval"):
            parse_every(bad)


def test_scheduler_runs_every_interval_survives_a_failure_and_stops() -> None:
    from reclaim.errors import CaseBusy

    calls: list[float] = []

    def one() -> WatchReport:
        calls.append(time.monotonic())
        if len(calls) == 2:
            raise CaseBusy("a scan is running in this case")
        return WatchReport(len(calls), "lea")

    seen: list[str | None] = []
    sched = WatchScheduler(one, 0.2, on_run=lambda r: seen.append(r.failure))
    assert sched.run_forever(max_runs=3) == 3
    assert seen == [None, "a scan is running in this case", None]
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert all(g >= 0.19 for g in gaps), gaps
    background = WatchScheduler(one, 3600)
    background.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    background.stop(timeout=5)
    assert not background.running and time.monotonic() - t0 < 2  # the hour's wait ends at once
    assert background.runs == 1 and background.last is not None


def test_print_cron_and_systemd(tmp_path: Path) -> None:
    from reclaim.cli import app

    casedir = tmp_path / "my case"
    CaseStore.open(casedir, create=True).close()
    runner = CliRunner()
    res = runner.invoke(app, ["watch", "--case", str(casedir), "--print-cron"])
    assert res.exit_code == 0, res.output
    line = res.output.strip().splitlines()[-1]
    assert line.startswith("0 */6 * * * ")
    assert f"watch --case '{casedir}' --once >> '{casedir}/watch.log' 2>&1" in line
    assert line.split()[5].endswith(("reclaim", "python", "python3")) or "python" in line
    res = runner.invoke(app, ["watch", "--case", str(casedir), "--print-cron", "--every", "15m"])
    assert res.output.strip().splitlines()[-1].startswith("*/15 * * * * ")
    res = runner.invoke(app, ["watch", "--case", str(casedir), "--print-cron", "--every", "7h"])
    assert res.exit_code == 2 and "cron cannot run every 7h evenly" in res.output
    res = runner.invoke(app, ["watch", "--case", str(casedir), "--print-systemd", "--every", "1d"])
    assert res.exit_code == 0, res.output
    assert "OnUnitActiveSec=1d" in res.output and "Type=oneshot" in res.output
    assert f'--case "{casedir}" --once' in res.output
    assert "reclaim-watch-my-case.timer" in res.output
    assert cron_line(casedir, 3600).splitlines()[-1].startswith("0 * * * * ")
    assert "ExecStart=" in systemd_units(casedir, 1800)


def test_cli_add_list_hashes_and_once(tmp_path: Path, server: Server) -> None:
    from reclaim.cli import app

    casedir = tmp_path / "case"
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.jpg").write_bytes(photo(400))
    runner = CliRunner()
    res = runner.invoke(app, ["watch", "--case", str(casedir), "--once"])
    assert res.exit_code == 2 and "not a reclaim case" in res.output
    res = runner.invoke(app, ["watch", "add", str(drop), "--case", str(casedir)])
    assert res.exit_code == 0 and "watching" in res.output, res.output
    csv_file = tmp_path / "protect.csv"
    csv_file.write_text(_protect_csv(photo(400)))
    res = runner.invoke(app, ["watch", "hashes", str(csv_file), "--case", str(casedir)])
    assert res.exit_code == 0 and "2 new hashes" in res.output, res.output
    res = runner.invoke(
        app, ["watch", "alert-add", f"file:{tmp_path / 'alerts.jsonl'}", "--case", str(casedir)]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["watch", "alert-add", "nope", "--case", str(casedir)])
    assert res.exit_code == 2 and "an alert target is" in res.output
    res = runner.invoke(app, ["watch", "--case", str(casedir), "--once", "-j", "0"])
    assert res.exit_code == 0, res.output
    assert "1 new place needs your attention" in res.output
    assert "one of your protected photos" in res.output and str(drop / "a.jpg") in res.output
    assert "(file): sent" in res.output
    res = runner.invoke(app, ["watch", "list", "--case", str(casedir), "--json"])
    listed = json.loads(res.output)
    assert [s["kind"] for s in listed["sources"]] == ["folder"]
    assert listed["protected_hashes"] == 2 and len(listed["alert_targets"]) == 1
    res = runner.invoke(app, ["watch", "alert-test", "--case", str(casedir)])
    assert res.exit_code == 0 and "sent" in res.output
    lines = (tmp_path / "alerts.jsonl").read_bytes().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["test"] is True


# -- real faces (shared data) ----------------------------------------------------------------


def test_watch_finds_her_face_in_a_new_export(tmp_path: Path) -> None:
    pairs = shared_data("faces", "deepface-pairs")
    from reclaim.enroll import enroll

    casedir = tmp_path / "case"
    drop = tmp_path / "drop"
    drop.mkdir()
    with CaseStore.open(casedir, create=True) as store:
        enroll(store, "lea", [pairs / "img1.jpg"], consent=True)
        add_source(store, drop)
        assert run(store).attention == 0
        _telegram_export(drop / "ChatExport", [(pairs / "img2.jpg").read_bytes(), photo(9)])
        r = run(store)
        assert r.face_search == "on"
        assert [e.reason for e in r.new_places] == ["face"]
        loc = store.sighting_locator(r.new_places[0].sighting_id or 0)
        assert loc is not None and loc.kind == "telegram" and loc.member == "photos/p1.jpg"
