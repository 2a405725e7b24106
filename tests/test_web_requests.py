"""The web app's dashboard, removal requests and watch pages (issue 22), without a browser:
from a confirmed finding to a request sent, its clock (the app's injected clock), escalation,
removal, and the watch flagging the URL back with an alert that holds no image or address."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from reclaim.web.app import create_app
from reclaim.web.texts import ngettext, plural_ids

from .conftest import jpeg_bytes, photo_like
from .served import Served, Server, assert_clean_alert, receiver, server

__all__ = ["T0", "Clock", "receiver", "server"]  # fixtures used here; T0, Clock by the journey

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


class Clock:
    """The app's clock (``app.state.now``), moved by the test."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


@dataclass
class Journey:
    client: TestClient
    clock: Clock
    case: Path
    sha: str
    url: str
    photo: bytes
    served: Served


@pytest.fixture
def journey(tmp_path: Path, server: Server, receiver: Server) -> Journey:
    """A case whose watched URL list names a photo on the local server; the watch (run from the
    web app) records it, and she confirms it is her through the item page's form."""
    photo = jpeg_bytes(photo_like(22, (320, 240)), quality=88)
    url, urls = server.listed("/p/a.jpg", photo, tmp_path / "urls.txt")
    app = create_app(tmp_path / "lea", workers=0)
    clock = Clock(T0)
    app.state.now = clock
    c = TestClient(app, base_url="http://127.0.0.1:8765")
    c.cookies.set("lang", "en")
    for path, data in [
        ("/watch/sources", {"path": str(urls)}),
        ("/watch/alerts", {"target": f"{receiver.base}/hook"}),
        ("/watch/run", {}),
    ]:
        r = c.post(path, data=data, follow_redirects=False)
        assert r.status_code == 303, r.text
    sha = hashlib.sha256(photo).hexdigest()
    r = c.post(f"/item/{sha}/decision", data={"decision": "confirmed"}, follow_redirects=False)
    assert r.status_code == 303
    return Journey(c, clock, tmp_path / "lea", sha, url, photo, server.state)


def _request_id(location: str) -> int:
    m = re.fullmatch(r"/requests/(\d+)", location)
    assert m, location
    return int(m.group(1))


def test_confirmed_finding_to_sent_request_in_three_clicks(journey: Journey) -> None:
    c, sha = journey.client, journey.sha
    item = c.get(f"/item/{sha}").text
    # click 1: "Ask for removal" on the confirmed finding
    assert f'href="/item/{sha}/requests"' in item and "Ask for removal" in item
    proposals = c.get(f"/item/{sha}/requests").text
    assert 'data-destination="hosting-dsa"' in proposals and "recommended" in proposals
    key = re.search(
        r'name="destination" value="hosting-dsa">\s*<input type="hidden" name="place" '
        r'value="([^"]*)"',
        proposals,
    )
    assert key is not None
    # click 2: "Draft the request": the letter, the link and what it requires
    r = c.post(
        f"/item/{sha}/requests",
        data={"destination": "hosting-dsa", "place": key.group(1)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    rid = _request_id(r.headers["location"])
    page = c.get(r.headers["location"]).text
    assert journey.url in page  # the letter names the address
    assert "What it requires" in page and "Your name and e-mail address" in page
    assert 'class="dest-link"' in page and "I sent it" in page
    # a double click drafts nothing twice
    again = c.post(
        f"/item/{sha}/requests",
        data={"destination": "hosting-dsa", "place": key.group(1)},
        follow_redirects=False,
    )
    assert _request_id(again.headers["location"]) == rid
    # click 3: "I sent it"
    r = c.post(f"/requests/{rid}/mark", data={"status": "sent"}, follow_redirects=False)
    assert r.status_code == 303
    page = c.get(f"/requests/{rid}").text
    assert "1 June 2026, 09:00 UTC" in page  # sent at the app's clock
    assert "8 June 2026, 09:00 UTC" in page  # reclaim's 7-day follow-up
    assert "not a legal deadline" in page


def test_deadline_passes_reminder_escalation_removed_then_back(
    journey: Journey, receiver: Server
) -> None:
    c, sha, clock = journey.client, journey.sha, journey.clock
    r = c.post(f"/item/{sha}/requests", data={"destination": "hosting-dsa"})
    rid = _request_id(str(r.url.path))
    c.post(f"/requests/{rid}/mark", data={"status": "sent"})
    dash = c.get("/").text
    assert "Next deadline:" in dash and "8 June 2026, 09:00 UTC" in dash

    clock.t = T0 + timedelta(days=8)  # the deadline passes
    page = c.get(f"/requests/{rid}").text
    assert "The deadline has passed without an answer." in page
    assert "Send the platform a reminder" in page
    dash = c.get("/").text
    assert "1 request needs you now" in dash and "Send the platform a reminder" in dash
    c.post(f"/requests/{rid}/escalate", data={"note": "reminder sent by e-mail"})
    clock.t = T0 + timedelta(days=12)  # the reminder's 3 days pass: the complaint (to Arcom)
    page = c.get(f"/requests/{rid}").text
    assert "Draft the next step" in page and "DSA Art. 20" in page
    r = c.post(f"/requests/{rid}/escalate", data={})
    nxt = _request_id(str(r.url.path))
    assert nxt != rid and "Arcom" in r.text

    c.post(f"/requests/{rid}/mark", data={"status": "removed"})
    page = c.get(f"/requests/{rid}").text
    assert 'class="status status-removed"' in page
    hist = page[page.index('class="history"') :]
    assert hist.count("<li>") == 5  # drafted, sent, reminder, complaint, removed

    # the URL goes away, then comes back: the watch flags it and alerts, counts only
    journey.served.stop("/p/a.jpg")
    c.post("/watch/run")
    assert receiver.state.posts == []
    journey.served.serve("/p/a.jpg", journey.photo)
    watch = c.post("/watch/run").text
    assert "1 removed picture is back online" in watch
    page = c.get(f"/requests/{rid}").text
    assert 'class="status status-reappeared"' in page and "reclaim watch" in page
    assert len(receiver.state.posts) == 1
    alert = assert_clean_alert(receiver.state.posts[0][1], journey.case)
    assert alert["reappeared"] == 1
    assert "1 removed picture is back online" in c.get("/").text


def test_dashboard_in_french_with_plurals_and_dates(journey: Journey) -> None:
    c = journey.client
    c.cookies.set("lang", "fr")
    dash = c.get("/").text
    assert "Votre dossier" in dash
    assert "1 endroit vous montre" in dash and "1 site" in dash
    assert "Vous avez confirmé 1 image comme étant vous." in dash
    assert "0 demande" in dash and "éléments" not in dash
    r = c.post(f"/item/{journey.sha}/requests", data={"destination": "hosting-dsa"})
    page = r.text
    assert "Demande de retrait" in page and "1 juin 2026, 09:00 UTC" in page
    assert "Je l&#39;ai envoyée" in page


def test_unconfirmed_item_gets_no_request_and_errors_are_pages(
    tmp_path: Path, journey: Journey
) -> None:
    c = journey.client
    c.post(f"/item/{journey.sha}/decision", data={"decision": "unsure"})
    page = c.get(f"/item/{journey.sha}").text
    assert 'id="ask-removal"' not in page
    assert "only for a picture you confirmed" in c.get(f"/item/{journey.sha}/requests").text
    r = c.post(f"/item/{journey.sha}/requests", data={"destination": "hosting-dsa"})
    assert r.status_code == 400 and "confirmed as you" in r.text
    assert c.get("/requests/999").status_code == 404
    assert c.get("/item/nothex/requests").status_code == 404
    r = c.post("/watch/sources", data={"path": str(tmp_path / "nowhere")})
    assert r.status_code == 400 and 'role="alert"' in r.text
    r = c.post("/watch/schedule", data={"every": "soon"})
    assert r.status_code == 400


def test_mark_refuses_a_move_the_request_cannot_make(journey: Journey) -> None:
    c = journey.client
    r = c.post(f"/item/{journey.sha}/requests", data={"destination": "hosting-dsa"})
    rid = _request_id(str(r.url.path))
    r = c.post(f"/requests/{rid}/mark", data={"status": "acknowledged"})
    assert r.status_code == 400 and "it can be marked" in r.text
    r = c.post(f"/requests/{rid}/escalate", data={})
    assert r.status_code == 400 and "no escalation step is due" in r.text


def test_watch_schedule_switches_on_and_off(journey: Journey) -> None:
    c = journey.client
    assert c.post("/watch/schedule", data={"every": "6h"}).status_code == 200
    sched = c.app.state.watch_scheduler  # type: ignore[attr-defined]
    assert sched is not None and sched.running
    assert "Runs on a schedule while this app is open." in c.get("/watch").text
    c.post("/watch/schedule", data={"every": "off"})
    assert c.app.state.watch_scheduler is None and not sched.running  # type: ignore[attr-defined]


def test_every_plural_in_the_templates_has_french_forms() -> None:
    here = Path(__file__).resolve().parents[1] / "src" / "reclaim" / "web" / "templates"
    pattern = re.compile(r'''n\("([^"]*)", "([^"]*)"''')
    ids = {a for p in here.glob("*.j2") for a, _b in pattern.findall(p.read_text())}
    assert len(ids) >= 10 and ids <= plural_ids("fr"), ids - plural_ids("fr")
    fr, en = ngettext("fr"), ngettext("en")
    assert fr("%(n)s request", "%(n)s requests", 1) == "1 demande"
    assert fr("%(n)s request", "%(n)s requests", 0) == "0 demande"  # French: 0 is singular
    assert fr("%(n)s request", "%(n)s requests", 2) == "2 demandes"
    assert en("%(n)s request", "%(n)s requests", 0) == "0 requests"


def test_watch_page_times_are_on_the_apps_clock(journey: Journey) -> None:
    """The times the watch page computes (the run made from it, the next scheduled run) are
    on the app's clock, like the requests' dates."""
    c = journey.client
    c.post("/watch/run")
    page = c.get("/watch").text
    assert "Run from this page on 1 June 2026, 09:00 UTC" in page
    c.post("/watch/schedule", data={"every": "6h"})
    try:
        sched = c.app.state.watch_scheduler  # type: ignore[attr-defined]
        deadline = time.time() + 30
        while sched.next_run_at is None and time.time() < deadline:  # its first run, at once
            time.sleep(0.05)
        page = c.get("/watch").text
        assert re.search(r'class="next-run">Next run: 1 June 2026, 1[45]:\d\d UTC', page), page
        journey.clock.t = T0 + timedelta(days=3)
        assert "4 June 2026, 1" in c.get("/watch").text
    finally:
        c.post("/watch/schedule", data={"every": "off"})


def test_watch_runs_from_the_web_app_store_the_apps_clock(journey: Journey) -> None:
    """What a watch run started from the web app stores (when it finished, the URL's answer,
    its events), "run now" or the built-in schedule, is on the app's clock, like the
    requests' dates: the page's "last run" is the app's time, not the computer's."""
    from reclaim.store import CaseStore

    c, clock = journey.client, journey.clock

    def stored() -> tuple[str, str, list[tuple[str, str]]]:
        with CaseStore.open(journey.case) as s:
            runs = [r for r in s.runs() if r["command"] == "watch"]
            state = s.url_states()[journey.url]
            return (
                runs[-1]["finished_at"],
                state.checked_at,
                [(e.kind, e.at) for e in s.watch_events()],
            )

    assert stored()[:2] == ("2026-06-01T09:00:00.000Z", "2026-06-01T09:00:00.000Z")
    assert "last run: 1 June 2026, 09:00 UTC" in c.get("/watch").text
    clock.t = T0 + timedelta(days=2, hours=3)
    journey.served.stop("/p/a.jpg")
    c.post("/watch/run")
    finished, checked, events = stored()
    assert finished == checked == "2026-06-03T12:00:00.000Z"
    assert events == [("removed", "2026-06-03T12:00:00.000Z")]
    assert "last run: 3 June 2026, 12:00 UTC" in c.get("/").text
    clock.t = T0 + timedelta(days=5)
    journey.served.serve("/p/a.jpg", journey.photo)
    c.post("/watch/schedule", data={"every": "6h"})  # runs at once, then every 6 hours
    try:
        deadline = time.time() + 30
        while stored()[0] != "2026-06-06T09:00:00.000Z" and time.time() < deadline:
            time.sleep(0.05)
        assert stored()[:2] == ("2026-06-06T09:00:00.000Z", "2026-06-06T09:00:00.000Z")
    finally:
        c.post("/watch/schedule", data={"every": "off"})


def test_watch_run_asks_for_the_passphrase_of_locked_templates(tmp_path: Path) -> None:
    import numpy as np

    from reclaim.enroll import lock_templates
    from reclaim.faces.describe import DESCRIPTOR_DIM, descriptor_to_bytes
    from reclaim.store import CaseStore
    from reclaim.watch import add_source

    case = tmp_path / "lea"
    app = create_app(case, workers=0)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "x.jpg").write_bytes(jpeg_bytes(photo_like(5, (320, 240))))
    with CaseStore.open(case) as s:
        d = np.zeros(DESCRIPTOR_DIM, np.float32)
        d[1] = 1.0
        s.add_enrollment("lea", "lea", "consent", [(descriptor_to_bytes(d), 60, 100.0, 0.0)])
        lock_templates(s, "correct horse battery staple")
        add_source(s, drop)
    c = TestClient(app, base_url="http://127.0.0.1:8765")
    c.cookies.set("lang", "en")
    page = c.get("/watch").text
    form = page[page.index('action="/watch/run"') : page.index('id="watch-run"')]
    assert 'type="password"' in form and '<label for="watch-passphrase">' in form
    dash = c.get("/").text  # the dashboard's "run now" asks for it too
    form = dash[dash.index('action="/watch/run"') :]
    assert 'type="password"' in form[: form.index("</form>")]

    def runs() -> int:
        with CaseStore.open(case) as s:
            return len(s.runs())

    r = c.post("/watch/run", data={"passphrase": "wrong"}, follow_redirects=False)
    assert r.status_code == 400 and 'role="alert"' in r.text and 'aria-invalid="true"' in r.text
    assert runs() == 0  # refused before anything ran
    r = c.post("/watch/run", data={}, follow_redirects=True)
    assert r.status_code == 200 and "Face search waited" in r.text and runs() == 1
    r = c.post("/watch/run", data={"passphrase": "correct horse battery staple"})
    assert "Face search ran on the new pictures." in r.text and runs() == 2
    assert "correct horse" not in r.text
    c.cookies.set("lang", "fr")
    assert "Phrase secrète de vos modèles de visage" in c.get("/watch").text
