"""The web app's dashboard, removal requests and watch pages (issue 22), without a browser:
from a confirmed finding to a request sent, its clock (the app's injected clock), escalation,
removal, and the watch flagging the URL back with an alert that holds no image or address."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reclaim.web.app import create_app
from reclaim.web.texts import ngettext, plural_ids

from .conftest import jpeg_bytes, photo_like

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@dataclass
class Served:
    """A local web server the test controls: path → JPEG bytes (others 404); POSTs kept."""

    routes: dict[str, bytes] = field(default_factory=dict)
    posts: list[tuple[str, bytes]] = field(default_factory=list)


def _handler(state: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = state.routes.get(self.path)
            self.send_response(200 if data is not None else 404)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            state.posts.append((self.path, self.rfile.read(n)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@dataclass
class Server:
    state: Served
    base: str


@pytest.fixture
def server() -> Iterator[Server]:
    state = Served()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield Server(state, f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
        httpd.server_close()


receiver = server


class Clock:
    """The app's clock (``app.state.now``), moved by the test."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


_URLISH = re.compile(r"https?://|www\.|127\.0\.0\.1|/[\w.-]+/|\.jpe?g|\.png", re.IGNORECASE)


def assert_clean_alert(body: bytes, case: Path) -> dict[str, Any]:
    """An alert holds counts and the case's name: no URL, path, image or hash."""
    text = body.decode("utf-8")
    assert not _URLISH.search(text), text
    assert not re.search(r"[A-Za-z0-9+/=]{40,}", text), text
    assert not re.search(r"[0-9a-f]{64}", text), text
    assert str(case) not in text and b"\xff\xd8" not in body
    parsed: dict[str, Any] = json.loads(text)
    return parsed


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
    server.state.routes["/p/a.jpg"] = photo
    url = f"{server.base}/p/a.jpg"
    urls = tmp_path / "urls.txt"
    urls.write_text(url + "\n")
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
    journey.served.routes.pop("/p/a.jpg")
    c.post("/watch/run")
    assert receiver.state.posts == []
    journey.served.routes["/p/a.jpg"] = journey.photo
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
