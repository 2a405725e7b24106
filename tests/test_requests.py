"""Removal requests with their clocks (issue 22): the destination data files, what is proposed
for each kind of place, drafting, the clock and its escalation (with an injected clock), the
custody entries, the evidence pack and the command line."""

from __future__ import annotations

import json
import shutil
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reclaim.cli import app
from reclaim.decisions import decide
from reclaim.errors import InputError
from reclaim.report.custody import CustodyLog, verify_chain
from reclaim.report.notices import Notifier
from reclaim.report.pack import PackOptions, export_case
from reclaim.report.verify import verify_pack
from reclaim.requests import (
    CatalogError,
    RequestStatus,
    check_catalog,
    current_catalog,
    draft,
    escalate,
    list_requests,
    load_catalog,
    mark,
    overview,
    propose,
    request_view,
    requested_urls,
)
from reclaim.requests.catalog import DESTINATIONS_ENV, SITE_LINK, _shipped_dir
from reclaim.scan import scan
from reclaim.sources import open_source
from reclaim.sources.base import Locator
from reclaim.store import CaseStore, SightingRecord

from .conftest import jpeg_bytes, photo_like

ME = Notifier("Léa Martin", "lea@example.org")
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
REDDIT = "https://www.reddit.com/r/leaks/comments/abc"
SITE = "https://fakes.example/p/17"
runner = CliRunner()


# -- the destination data files ---------------------------------------------------------------


def test_every_shipped_destination_is_complete() -> None:
    assert check_catalog() == []
    cat = current_catalog()
    wanted = {
        "hosting-dsa", "take-it-down-act", "telegram", "google-search", "bing", "stopncii",
        "ncmec-take-it-down", "3018", "pharos", "plainte", "point-de-contact", "arcom", "ftc",
        "cnil",
    }  # fmt: skip
    assert wanted <= set(cat.destinations)
    for d in cat.destinations.values():
        assert d.link == SITE_LINK or d.link.startswith("https://"), d.id
        for lang in ("fr", "en"):
            assert d.name[lang] and d.requires[lang] and d.law[lang] and d.clock_text[lang], d.id
        assert any(s.checked is not None and s.url.startswith("https://") for s in d.sources)
        assert d.escalation, d.id
    assert cat.get("take-it-down-act").clock_hours == 48
    assert cat.get("hosting-dsa").clock_hours is None  # the DSA sets no number of hours


def test_a_broken_destination_file_is_named(tmp_path: Path) -> None:
    d = tmp_path / "dest"
    shutil.copytree(_shipped_dir(), d)
    text = (d / "telegram.toml").read_text(encoding="utf-8")
    text = text.replace('link = "https://telegram.org/faq"', 'link = "telegram.org"')
    text = text.replace("checked = 2026-12-07", "checked = 2099-01-01")
    (d / "telegram.toml").write_text(text, encoding="utf-8")
    no_en = (d / "pharos.toml").read_text(encoding="utf-8").replace("\nen = [", "\nen_gb = [", 1)
    (d / "pharos.toml").write_text(no_en, encoding="utf-8")
    (d / "stopncii.toml").write_text(
        (d / "stopncii.toml").read_text(encoding="utf-8").split("[[sources]]")[0],
        encoding="utf-8",
    )
    problems = check_catalog(d)
    assert any("telegram.toml: link must be an https" in p for p in problems)
    assert any("telegram.toml" in p and "in the future" in p for p in problems)
    assert any("pharos.toml: requires has no en list" in p for p in problems)
    assert any("stopncii.toml: at least one source" in p for p in problems)
    with pytest.raises(CatalogError):
        load_catalog(d)


def test_a_corrected_file_replaces_the_shipped_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fix = tmp_path / "fix"
    fix.mkdir()
    text = (_shipped_dir() / "telegram.toml").read_text(encoding="utf-8")
    (fix / "telegram.toml").write_text(
        text.replace("https://telegram.org/faq", "https://telegram.org/support"), encoding="utf-8"
    )
    monkeypatch.setenv(DESTINATIONS_ENV, str(fix))
    assert current_catalog().get("telegram").link == "https://telegram.org/support"
    assert (
        current_catalog().get("reddit").link == "https://www.reddit.com/report"
    )  # the others stay


# -- a case with places of every kind -----------------------------------------------------------


@pytest.fixture
def case(tmp_path: Path) -> tuple[Path, str, str]:
    """A case with two items: the first seen in a folder, on Reddit, on another site and in a
    public and a private Telegram chat; the second only in the folder."""
    found = tmp_path / "found"
    found.mkdir()
    (found / "a.jpg").write_bytes(jpeg_bytes(photo_like(21)))
    (found / "b.jpg").write_bytes(jpeg_bytes(photo_like(22)))
    root = tmp_path / "case"
    with CaseStore.open(root, create=True) as store:
        scan(store, [open_source(str(found))], workers=0)
        shas = [r[0] for r in store.conn.execute("SELECT sha256 FROM items")]
        by_file = {Path(loc.path).name: sha for sha in shas for loc in store.sightings_of(sha)}
        sha_a, sha_b = by_file["a.jpg"], by_file["b.jpg"]
        tg = {"chat_id": 7, "date": "2026-11-30T21:00:00", "sender": "leakbot"}
        store.record(
            [
                (None, SightingRecord(Locator("url", REDDIT, meta={
                    "final_url": "https://i.redd.it/x1.jpg", "fetched_at": "2026-12-01T10:00:00Z",
                }), sha_a, "u1")),
                (None, SightingRecord(Locator("url", SITE, meta={
                    "fetched_at": "2026-12-01T11:00:00Z"}), sha_a, "u2")),
                (None, SightingRecord(Locator("telegram", str(tmp_path / "export"), "p/1.jpg", {
                    **tg, "chat_name": "Leaks FR", "chat_type": "public_channel", "message_id": 42,
                }), sha_a, "t1")),
                (None, SightingRecord(Locator("telegram", str(tmp_path / "export"), "p/2.jpg", {
                    **tg, "chat_name": "Class chat", "chat_type": "private_group",
                    "message_id": 9,
                }), sha_a, "t2")),
            ],
            None,
        )  # fmt: skip
    return root, sha_a, sha_b


def _ids(proposals: list) -> list[tuple[str, str | None, bool]]:  # type: ignore[type-arg]
    return [(p.destination.id, p.place.kind if p.place else None, p.recommended) for p in proposals]


def test_propose_for_web_addresses(case: tuple[Path, str, str]) -> None:
    root, a, _ = case
    with CaseStore.open(root) as store:
        found = propose(store, a)
    by = {(p.destination.id, p.place.url if p.place else None): p for p in found}
    # Reddit's own host → Reddit, and a TAKE IT DOWN Act request recommended (a US platform)
    assert by[("reddit", REDDIT)].recommended
    assert by[("take-it-down-act", REDDIT)].recommended
    # an unknown site → its host under the DSA; the US request only offered
    assert by[("hosting-dsa", SITE)].recommended
    assert not by[("take-it-down-act", SITE)].recommended
    assert ("hosting-dsa", REDDIT) not in by and ("reddit", SITE) not in by
    assert not by[("google-search", SITE)].recommended and ("bing", REDDIT) in by
    assert ("pharos", SITE) in by
    # recommended first
    flags = [p.recommended for p in found]
    assert flags == sorted(flags, reverse=True)


def test_propose_for_telegram_places(case: tuple[Path, str, str]) -> None:
    root, a, _ = case
    with CaseStore.open(root) as store:
        found = propose(store, a)
    tg = [p for p in found if p.place is not None and p.place.kind == "telegram"]
    chats = {(p.destination.id, p.place.chat) for p in tg if p.place is not None}
    assert ("telegram", "Leaks FR") in chats and ("telegram", "Class chat") in chats
    # PHAROS takes public content only: the public channel, not the private group
    assert ("pharos", "Leaks FR") in chats and ("pharos", "Class chat") not in chats
    assert all(p.recommended for p in tg if p.destination.id == "telegram")


def test_propose_for_a_folder_only_item(case: tuple[Path, str, str]) -> None:
    root, _, b = case
    with CaseStore.open(root) as store:
        adult = _ids(propose(store, b))
        minor = _ids(propose(store, b, minor=True))
        us_only = _ids(propose(store, b, regions=["US"]))
    # no platform to ask for a file she was given: hashes first, then a complaint
    assert adult == [("stopncii", None, True), ("plainte", None, False)]
    assert minor == [
        ("ncmec-take-it-down", None, True),
        ("3018", None, True),
        ("plainte", None, False),
    ]
    assert us_only == [("stopncii", None, True)]  # French destinations left out


# -- drafting ---------------------------------------------------------------------------------


def test_a_request_is_drafted_only_for_a_confirmed_finding(case: tuple[Path, str, str]) -> None:
    root, a, _ = case
    with CaseStore.open(root) as store:
        with pytest.raises(InputError, match="confirmed"):
            draft(store, a, "hosting-dsa", now=T0)
        decide(store, a, "not_me")
        with pytest.raises(InputError, match="confirmed"):
            draft(store, a, "hosting-dsa", now=T0)
        decide(store, a, "confirmed")
        assert draft(store, a, "hosting-dsa", now=T0).created


def test_the_letter_holds_place_law_decision_and_hashes_never_an_image_or_a_path(
    case: tuple[Path, str, str], tmp_path: Path
) -> None:
    root, a, _ = case
    with CaseStore.open(root) as store:
        decide(store, a, "confirmed")
        first = draft(store, a, "hosting-dsa", notifier=ME, lang="fr", now=T0)
        again = draft(store, a, "hosting-dsa", notifier=ME, lang="fr", now=T0)
        pdq = store.item_signals(a)["pdq"][0]
        md5 = store.item_row(a)["md5"]  # type: ignore[index]
        plainte = draft(store, a, "plainte", notifier=ME, now=T0).view.request.letter
        tg = draft(store, a, "telegram", now=T0)
    letter = first.view.request.letter
    assert first.created and not again.created and again.view.id == first.view.id
    assert SITE in letter and "article 16" in letter and "226-8-1" in letter
    assert a in letter and md5 in letter and pdq in letter
    assert "2026-12-07" in letter and "Léa Martin <lea@example.org>" in letter
    assert first.view.place is not None and first.view.place.url == SITE
    # the place a platform can act on, never a local path; no image bytes
    for text in (letter, plainte, tg.view.request.letter):
        assert str(tmp_path) not in text and "found/a.jpg" not in text
        assert "\ufffd" not in text and "/9j/" not in text and "JFIF" not in text
    assert REDDIT in plainte and "Leaks FR" in plainte
    # Telegram: a Telegram place (not a web address), in English by default
    assert tg.view.place is not None and tg.view.place.kind == "telegram"
    assert tg.view.request.lang == "en" and "message #42" in tg.view.request.letter


def test_a_place_that_does_not_fit_is_refused(case: tuple[Path, str, str]) -> None:
    root, a, b = case
    with CaseStore.open(root) as store:
        decide(store, a, "confirmed")
        decide(store, b, "confirmed")
        with pytest.raises(InputError, match="does not fit"):
            draft(store, a, "reddit", place=SITE, now=T0)
        with pytest.raises(InputError, match="fits none"):
            draft(store, b, "hosting-dsa", now=T0)  # seen in a folder only
        with pytest.raises(CatalogError, match="unknown destination"):
            draft(store, a, "myspace", now=T0)
        d = draft(store, a, "take-it-down-act", place=REDDIT, now=T0)
    assert d.view.place is not None and d.view.place.url == REDDIT


# -- the clock --------------------------------------------------------------------------------


def test_sent_then_deadline_passes_then_reminder_then_escalation(
    case: tuple[Path, str, str],
) -> None:
    root, a, _ = case
    with CaseStore.open(root) as store:
        decide(store, a, "confirmed")
        rid = draft(store, a, "hosting-dsa", now=T0).view.id
        v = request_view(store, store.request(rid), now=T0)  # type: ignore[arg-type]
        assert v.next_step.kind == "send" and v.next_step.needs_action
        with pytest.raises(InputError, match="no escalation step is due"):
            escalate(store, rid, now=T0)
        v = mark(store, rid, "sent", now=T0)
        assert v.request.sent_at == "2026-12-07T09:00:00.000Z"
        assert v.request.deadline == "2026-12-14T09:00:00.000Z"  # reclaim's 7-day follow-up
        assert not v.request.deadline_legal and v.next_step.kind == "wait"
        assert "not a legal deadline" in v.next_step.say("en")

        def at(t: datetime) -> str:
            r = store.request(rid)
            assert r is not None
            return request_view(store, r, now=t).next_step.kind

        assert at(T0 + timedelta(days=6, hours=23)) == "wait"
        late = T0 + timedelta(days=7, minutes=1)
        ns = request_view(store, store.request(rid), now=late).next_step  # type: ignore[arg-type]
        assert (ns.kind, ns.overdue, ns.needs_action) == ("reminder", True, True)
        kinds = []
        t = late
        for _ in range(4):
            v = escalate(store, rid, now=t)
            kinds.append(store.request_events(rid)[-1].note)
            assert v.next_step.kind == "wait"
            t = datetime.fromisoformat(v.request.deadline or "") + timedelta(minutes=1)
            kinds.append(request_view(store, v.request, now=t).next_step.kind)
        assert kinds == [
            "reminder", "complaint", "complaint", "trusted_flagger", "trusted_flagger",
            "police", "police", "none",
        ]  # fmt: skip
        v = request_view(store, store.request(rid), now=t)  # type: ignore[arg-type]
        assert v.next_step.kind == "none" and "lawyer" in v.next_step.say("en")
        assert [e.event for e in v.history] == ["drafted", "status"] + ["escalated"] * 4


def test_the_take_it_down_clock_is_48_legal_hours(case: tuple[Path, str, str]) -> None:
    root, a, _ = case
    with CaseStore.open(root) as store:
        decide(store, a, "confirmed")
        rid = draft(store, a, "take-it-down-act", place=REDDIT, now=T0).view.id
        v = mark(store, rid, "sent", now=T0)
        assert v.request.deadline == "2026-12-09T09:00:00.000Z" and v.request.deadline_legal
        assert "legal deadline" in v.next_step.say("en")
        after = request_view(store, v.request, now=T0 + timedelta(hours=48, seconds=1))
        assert after.next_step.kind == "reminder" and after.next_step.overdue
        v = escalate(store, rid, now=T0 + timedelta(hours=49))
        nxt = request_view(store, v.request, now=T0 + timedelta(days=4)).next_step
        assert (nxt.kind, nxt.to) == ("regulator", "ftc")


def test_a_refusal_goes_straight_to_the_complaint(case: tuple[Path, str, str]) -> None:
    root, a, _ = case
    with CaseStore.open(root) as store:
        decide(store, a, "confirmed")
        rid = draft(store, a, "reddit", now=T0).view.id
        mark(store, rid, "sent", now=T0)
        v = mark(store, rid, "refused", note="not against our rules", now=T0 + timedelta(days=1))
        assert v.next_step.to is not None
        # the step's destination is one click away: its letter names the refused request
        complaint = draft(store, a, v.next_step.to, notifier=ME, lang="en", now=T0).view
    assert complaint.destination.id == "arcom" and complaint.place is None
    assert "Reddit" in complaint.request.letter and ": refused, sent on 2026-12-07" in (
        complaint.request.letter
    )
    assert "Article 53" in complaint.request.letter or "Art. 53" in complaint.request.letter
    assert v.request.deadline is None
    assert (v.next_step.kind, v.next_step.to, v.next_step.needs_action) == (
        "complaint",
        "arcom",
        True,
    )
    assert "Art. 20" in v.next_step.say("en")


def test_statuses_move_forward_only_and_reappearing_restarts_the_clock(
    case: tuple[Path, str, str],
) -> None:
    root, a, _ = case
    with CaseStore.open(root) as store:
        decide(store, a, "confirmed")
        rid = draft(store, a, "hosting-dsa", now=T0).view.id
        with pytest.raises(InputError, match="can be marked"):
            mark(store, rid, "acknowledged", now=T0)
        with pytest.raises(InputError, match="status must be one of"):
            mark(store, rid, "done", now=T0)
        mark(store, rid, "sent", now=T0)
        with pytest.raises(InputError, match="already sent"):
            mark(store, rid, "sent", now=T0)
        mark(store, rid, "acknowledged", now=T0 + timedelta(hours=2))
        v = mark(store, rid, "removed", now=T0 + timedelta(days=2))
        assert v.next_step.kind == "none" and v.request.deadline is None
        # reclaim watch finds it back
        v = mark(store, rid, "reappeared", actor="reclaim watch", now=T0 + timedelta(days=30))
        assert v.next_step.kind == "resend" and v.history[-1].actor == "reclaim watch"
        v = mark(store, rid, "sent", now=T0 + timedelta(days=31))
        assert v.request.deadline == "2027-01-14T09:00:00.000Z"
        assert v.request.escalation == 0
        assert [e.status.value for e in v.history] == [
            "draft", "sent", "acknowledged", "removed", "reappeared", "sent",
        ]  # fmt: skip


def test_overview_for_the_dashboard(case: tuple[Path, str, str]) -> None:
    root, a, _ = case
    with CaseStore.open(root) as store:
        decide(store, a, "confirmed")
        r1 = draft(store, a, "take-it-down-act", place=REDDIT, now=T0).view.id
        r2 = draft(store, a, "hosting-dsa", now=T0).view.id
        r3 = draft(store, a, "stopncii", now=T0).view.id
        mark(store, r1, "sent", now=T0)
        mark(store, r2, "sent", now=T0)
        o = overview(store, now=T0 + timedelta(hours=1))
        assert (o.total, o.by_status["sent"], o.by_status["draft"]) == (3, 2, 1)
        assert o.next_deadline is not None and o.next_deadline.id == r1  # 48 h before 7 days
        assert [v.id for v in o.needs_action] == [r3] and o.overdue == 0
        later = overview(store, now=T0 + timedelta(days=3))
        assert later.needs_action[0].id == r1 and later.overdue == 1


# -- custody, pack ------------------------------------------------------------------------------


def test_every_change_writes_a_custody_entry(case: tuple[Path, str, str], tmp_path: Path) -> None:
    root, a, b = case
    with CaseStore.open(root) as store:
        decide(store, a, "confirmed")
        decide(store, b, "confirmed")
        rid = draft(store, a, "hosting-dsa", now=T0).view.id
        mark(store, rid, "sent", now=T0)
        escalate(store, rid, now=T0 + timedelta(days=8))
        draft(store, b, "plainte", now=T0)  # about a file of hers: no path in the log
    entries = CustodyLog(root).entries()
    mine = [e for e in entries if e["action"].startswith("request.")]
    assert [e["action"] for e in mine] == [
        "request.drafted", "request.marked", "request.escalated", "request.drafted",
    ]  # fmt: skip
    assert (
        mine[0]["details"]["place"] == SITE and mine[0]["details"]["destination"] == "hosting-dsa"
    )
    assert (mine[1]["details"]["from"], mine[1]["details"]["to"]) == ("draft", "sent")
    assert mine[2]["details"]["kind"] == "reminder"
    assert mine[3]["details"]["place"] is None
    assert str(tmp_path) not in json.dumps(mine)
    assert verify_chain(entries) == []


def test_the_pack_carries_the_requests_and_verifies(
    case: tuple[Path, str, str], tmp_path: Path
) -> None:
    root, a, _ = case
    out = tmp_path / "pack.zip"
    with CaseStore.open(root) as store:
        decide(store, a, "confirmed")
        rid = draft(store, a, "hosting-dsa", notifier=ME, now=T0).view.id
        mark(store, rid, "sent", now=T0)
        mark(store, rid, "refused", note="kept online", now=T0 + timedelta(days=2))
        export_case(store, out, PackOptions(notifier=ME, pdf=False))
    with zipfile.ZipFile(out) as z:
        doc = json.loads(z.read("requests.json"))
        (req,) = doc["requests"]
        letter = z.read(req["letter_file"]).decode()
    assert doc["format"] == "reclaim-requests/1"
    assert (req["id"], req["destination"], req["status"]) == (rid, "hosting-dsa", "refused")
    assert [h["status"] for h in req["history"]] == ["draft", "sent", "refused"]
    assert req["history"][-1]["note"] == "kept online" and req["next_step"]["kind"] == "complaint"
    assert SITE in letter and "Léa Martin" in letter
    check = verify_pack(out)
    assert check.ok, check.problems
    # a changed request is named
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(out) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "requests.json":
                data = data.replace(b'"refused"', b'"removed"', 1)
            zout.writestr(info, data)
    problems = verify_pack(bad).problems
    assert any(p.startswith("requests.json: altered") for p in problems), problems


def test_a_pack_without_requests_has_no_request_files(
    case: tuple[Path, str, str], tmp_path: Path
) -> None:
    root, a, _ = case
    out = tmp_path / "pack.zip"
    with CaseStore.open(root) as store:
        decide(store, a, "confirmed")
        export_case(store, out, PackOptions(notifier=ME, pdf=False))
    with zipfile.ZipFile(out) as z:
        assert not [n for n in z.namelist() if n.startswith("requests")]
    assert verify_pack(out).ok


# -- the command line -------------------------------------------------------------------------


def test_cli_round_trip(case: tuple[Path, str, str]) -> None:
    root, a, _ = case
    c = str(root)

    def cli(*args: str) -> str:
        res = runner.invoke(app, list(args))
        assert res.exit_code == 0, res.output
        return res.output

    res = runner.invoke(app, ["request", "draft", "--case", c, a[:12], "--to", "hosting-dsa"])
    assert res.exit_code == 2 and "confirmed" in res.output
    cli("decide", a[:12], "confirmed", "--case", c)
    proposed = cli("request", "propose", "--case", c, a[:12], "--json").splitlines()
    dests = {json.loads(x)["destination"] for x in proposed}
    assert {"reddit", "hosting-dsa", "telegram", "stopncii"} <= dests
    text = cli(
        "request", "draft", "--case", c, a[:12], "--to", "hosting-dsa",
        "--name", "Léa Martin", "--email", "lea@example.org", "--now", T0.isoformat(),
    )  # fmt: skip
    assert SITE in text and "Léa Martin <lea@example.org>" in text and "mark --case" in text
    (listed,) = [json.loads(x) for x in cli("requests", "--case", c, "--json").splitlines()]
    rid = str(listed["id"])
    assert listed["status"] == "draft" and listed["next_step"]["kind"] == "send"
    cli("request", "mark", "--case", c, rid, "sent", "--now", T0.isoformat())
    later = (T0 + timedelta(days=8)).isoformat()
    (listed,) = [
        json.loads(x) for x in cli("requests", "--case", c, "--json", "--now", later).splitlines()
    ]
    assert listed["deadline"] == "2026-12-14T09:00:00.000Z"
    assert listed["next_step"]["kind"] == "reminder" and listed["next_step"]["overdue"]
    assert "reminder" in cli("requests", "--case", c, "--now", later)
    cli("request", "escalate", "--case", c, rid, "--now", later)
    shown = json.loads(cli("request", "show", "--case", c, rid, "--json", "--now", later))
    assert [h["event"] for h in shown["history"]] == ["drafted", "status", "escalated"]
    assert shown["letter"].startswith("Objet") or shown["letter"].startswith("Subject")
    res = runner.invoke(app, ["request", "mark", "--case", c, rid, "gone"])
    assert res.exit_code == 2 and "status must be one of" in res.output
    res = runner.invoke(app, ["request", "mark", "--case", c, "99", "sent"])
    assert res.exit_code == 2 and "no request #99" in res.output
    assert "take-it-down-act" in cli("request", "destinations")


def test_list_requests_reads_back_what_was_stored(case: tuple[Path, str, str]) -> None:
    root, a, _ = case
    with CaseStore.open(root) as store:
        decide(store, a, "confirmed")
        draft(store, a, "telegram", now=T0)
        draft(store, a, "stopncii", now=T0)
        views = list_requests(store, now=T0)
    assert [(v.destination.id, v.request.status) for v in views] == [
        ("telegram", RequestStatus.DRAFT),
        ("stopncii", RequestStatus.DRAFT),
    ]
    assert views[1].place is None and views[1].link == "https://stopncii.org"


def test_requested_urls_for_the_watch(case: tuple[Path, str, str]) -> None:
    root, a, _ = case
    with CaseStore.open(root) as store:
        decide(store, a, "confirmed")
        r1 = draft(store, a, "reddit", now=T0).view.id
        r2 = draft(store, a, "hosting-dsa", now=T0).view.id
        draft(store, a, "telegram", now=T0)  # not a web address
        draft(store, a, "stopncii", now=T0)  # about no place
        assert requested_urls(store) == []  # drafts are not watched by default
        mark(store, r1, "sent", now=T0)
        mark(store, r2, "sent", now=T0)
        mark(store, r2, "removed", now=T0 + timedelta(days=1))
        urls = requested_urls(store)
        assert [(u.request_id, u.url, u.status) for u in urls] == [
            (r1, REDDIT, RequestStatus.SENT),
            (r2, SITE, RequestStatus.REMOVED),
        ]
        assert urls[0].final_url == "https://i.redd.it/x1.jpg" and urls[1].final_url is None
        assert len(requested_urls(store, include_drafts=True)) == 2
