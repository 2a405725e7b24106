"""Léa's journey after the scan, in headless Chromium, in French and English (issue 22):
dashboard → confirmed finding → request drafted (clicks counted) → marked sent → the deadline
passes (the app's clock, injected) → reminder and escalation shown → marked removed → the URL
comes back on a local server the test controls → the watch flags it "reappeared" and an alert
reaches a test receiver, without image or URL. Keyboard and labels checked on the new pages.

Screenshots land in test-artifacts/screenshots/ ({lang}-journey-*.png).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reclaim.alerts import add_target
from reclaim.decisions import decide
from reclaim.store import CaseStore
from reclaim.watch import add_source
from reclaim.web.app import create_app

from .browser import browser_page, require_chromium, running_server, shot
from .conftest import jpeg_bytes, photo_like
from .served import Server, assert_clean_alert, receiver, server
from .test_web_requests import T0, Clock

__all__ = ["receiver", "server"]  # fixtures used by the tests below

WORDS = {
    "fr": {
        "case": "Votre dossier",
        "ask": "Demander le retrait",
        "sent": "Je l'ai envoyée",
        "deadline": "8 juin 2026, 09:00 UTC",
        "passed": "L'échéance est passée sans réponse.",
        "reminder": "Relancez la plateforme",
        "complaint": "Rédiger l'étape suivante",
        "back": "1 image retirée est de nouveau en ligne",
        "places": "1 endroit vous montre",
    },
    "en": {
        "case": "Your case",
        "ask": "Ask for removal",
        "sent": "I sent it",
        "deadline": "8 June 2026, 09:00 UTC",
        "passed": "The deadline has passed without an answer.",
        "reminder": "Send the platform a reminder",
        "complaint": "Draft the next step",
        "back": "1 removed picture is back online",
        "places": "1 place shows you",
    },
}

#: Form controls without a label (a <label for>, a wrapping <label>, or aria-label).
UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), textarea, select')]
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
  .map(e => e.outerHTML)"""


#: Headings out of order: not exactly one h1 first, or a level that skips one (h2 → h4).
HEADINGS_OUT_OF_ORDER = """() => {
  const hs = [...document.querySelectorAll('main h1, main h2, main h3, main h4, main h5, main h6')]
    .map(h => Number(h.tagName[1]));
  const bad = [];
  if (hs[0] !== 1 || hs.filter(l => l === 1).length !== 1) bad.push('h1: ' + hs.join(','));
  for (let i = 1; i < hs.length; i++)
    if (hs[i] > hs[i - 1] + 1) bad.push(hs.slice(0, i + 1).join(','));
  return bad;
}"""


def tab_reaches(page: Any, selector: str, presses: int = 80) -> bool:
    """Whether pressing Tab from the top of the page focuses ``selector``."""
    target = page.locator(selector)
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    for _ in range(presses):
        page.keyboard.press("Tab")
        if target.evaluate("e => e === document.activeElement"):
            return True
    return False


def check_keyboard(page: Any, *selectors: str) -> None:
    """Every form control has a label, headings are in order, and Tab reaches ``selectors``."""
    assert page.evaluate(UNLABELLED) == [], page.url
    assert page.evaluate(HEADINGS_OUT_OF_ORDER) == [], page.url
    for sel in selectors:
        assert tab_reaches(page, sel), (page.url, sel)


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_journey_request_deadline_escalation_removed_reappeared(
    lang: str, tmp_path: Path, server: Server, receiver: Server
) -> None:
    require_chromium()
    w = WORDS[lang]
    photo = jpeg_bytes(photo_like(31, (320, 240)), quality=88)
    sha = hashlib.sha256(photo).hexdigest()
    _url, urls = server.listed("/p/a.jpg", photo, tmp_path / "urls.txt")
    case = tmp_path / "lea"
    app = create_app(case, workers=0)
    clock = Clock(T0)
    app.state.now = clock  # the app's clock: only tests set it
    with CaseStore.open(case) as s:
        add_source(s, urls)
        add_target(s, f"{receiver.base}/hook", lang)

    with running_server(app) as base, browser_page(lang) as page:
        page.goto(f"{base}/")
        assert page.locator("h1").inner_text() == w["case"]
        check_keyboard(page, "form[action='/watch/run'] button")
        page.click("form[action='/watch/run'] button")  # the watch records the picture
        page.wait_for_url(f"{base}/watch")
        shot(page, f"{lang}-journey-watch-first")
        with CaseStore.open(case) as s:  # she confirmed it is her (decisions API)
            decide(s, sha, "confirmed")

        page.goto(f"{base}/")
        assert w["places"] in page.inner_text("main")
        shot(page, f"{lang}-journey-dashboard")
        page.click(f"ul.confirmed a[href='/item/{sha}']")
        # the preview stays blurred until she chooses to look
        assert page.locator("#detail-thumb img").get_attribute("src").endswith("reveal=0")
        shot(page, f"{lang}-journey-finding")

        clicks = 0
        page.click("#ask-removal")
        clicks += 1
        shot(page, f"{lang}-journey-proposals")
        check_keyboard(page, "li[data-destination='hosting-dsa'] button")
        page.click("li[data-destination='hosting-dsa'] button")
        clicks += 1
        page.wait_for_url(f"{base}/requests/*")
        letter = page.input_value("#letter")
        assert f"{server.base}/p/a.jpg" in letter  # ready: the letter names the address
        assert (
            page.locator("a.dest-link").count() == 1 and page.locator("ul.requires li").count() >= 3
        )
        shot(page, f"{lang}-journey-request-drafted")
        assert page.inner_text("#mark-sent") == w["sent"]
        check_keyboard(page, "#mark-sent", "#letter")
        with page.expect_navigation():  # a form post: wait for its page
            page.click("#mark-sent")
        clicks += 1
        assert clicks <= 3  # from the confirmed finding to a request sent
        assert w["deadline"] in page.inner_text(".deadline")
        shot(page, f"{lang}-journey-request-sent")
        request_url = page.url

        clock.t = T0 + timedelta(days=8)  # the deadline passes
        page.reload()
        assert w["passed"] in page.inner_text("main") and w["reminder"] in page.inner_text(
            ".next-text"
        )
        shot(page, f"{lang}-journey-reminder")
        page.goto(f"{base}/")
        assert page.locator("ul.needs li.overdue").count() == 1
        shot(page, f"{lang}-journey-dashboard-overdue")
        page.goto(request_url)
        with page.expect_navigation():  # a form post: wait for its page
            page.click("#escalate")  # she sent the reminder
        clock.t = T0 + timedelta(days=12)  # the reminder got no answer either: escalation
        page.reload()
        assert page.inner_text("#escalate") == w["complaint"]
        shot(page, f"{lang}-journey-escalation")
        with page.expect_navigation():  # a form post: wait for its page
            page.click("#escalate")
        assert page.url != request_url and "Arcom" in page.inner_text("h1")
        shot(page, f"{lang}-journey-escalation-drafted")

        page.goto(request_url)
        with page.expect_navigation():  # a form post: wait for its page
            page.click("#mark-removed")
        assert page.locator(".status-removed").count() == 1
        shot(page, f"{lang}-journey-removed")

        server.state.stop("/p/a.jpg")  # gone: the watch sees it removed
        page.goto(f"{base}/watch")
        check_keyboard(page, "#watch-run", "#watch-path", "#alert-target")
        page.click("#watch-run")
        page.wait_for_url(f"{base}/watch")
        assert receiver.state.posts == []
        server.state.serve("/p/a.jpg", photo)  # the URL comes back
        page.click("#watch-run")
        page.wait_for_url(f"{base}/watch")
        assert w["back"] in page.inner_text(".watch-report")
        shot(page, f"{lang}-journey-reappeared")
        page.goto(request_url)
        assert page.locator(".status-reappeared").count() == 1
        page.goto(f"{base}/")
        assert w["back"] in page.inner_text("main")
        shot(page, f"{lang}-journey-dashboard-reappeared")

    assert len(receiver.state.posts) == 1
    alert = assert_clean_alert(receiver.state.posts[0][1], case)
    assert alert["reappeared"] == 1 and alert["attention"] == 1
