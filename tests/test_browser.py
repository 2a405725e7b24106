"""End to end in headless Chromium: the pages a person uses, in French and English.

Screenshots of every page land in test-artifacts/screenshots/ (kept by CI as artifacts).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from reclaim.report.verify import verify_pack
from reclaim.sample import make_sample
from reclaim.web.app import create_app

from .browser import browser_page, require_chromium, running_server, shot


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_sample(tmp_path_factory.mktemp("sample"))


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_sources_progress_protect_export(lang: str, sample: list[Path], tmp_path: Path) -> None:
    require_chromium()
    app = create_app(tmp_path / "case", workers=1)
    words = {
        "fr": {
            "finished": "Analyse terminée",
            "verified": "Vérifié",
            "protect": "Seuls des nombres",
        },
        "en": {
            "finished": "Scan finished",
            "verified": "Verified",
            "protect": "Only numbers leave",
        },
    }[lang]
    with running_server(app) as base, browser_page(lang) as page:
        page.goto(f"{base}/sources")
        assert page.locator("html").get_attribute("lang") == lang
        shot(page, f"{lang}-sources-empty")
        page.fill("#path", str(sample[0]))  # the sample phone-backup folder
        page.click("button[type=submit]")
        page.wait_for_selector(f"text={words['finished']}", timeout=60_000)
        page.goto(f"{base}/sources")
        shot(page, f"{lang}-sources-scanned")
        assert "broken.jpg" in page.content(), page.inner_text("main")  # per-item errors visible
        shot(page, f"{lang}-sources-scanned")
        page.fill("#path", str(sample[0] / "does-not-exist"))
        page.click("button[type=submit]")
        assert page.locator(".problem").is_visible()
        shot(page, f"{lang}-sources-error")

        page.goto(f"{base}/protect")
        assert words["protect"] in page.content()
        shot(page, f"{lang}-protect")
        page.set_input_files("input[type=file]", str(sample[0] / "IMG_1001.jpg"))
        with page.expect_download() as dl:
            page.click("button[type=submit]")
        csv_text = Path(dl.value.path()).read_text()
        assert csv_text.startswith("signal_type,signal") and "IMG_1001" not in csv_text

        page.goto(f"{base}/export")
        shot(page, f"{lang}-export")
        page.fill("#name", "Léa Martin")
        page.fill("#email", "lea@example.org")
        page.click("button[type=submit]")
        page.wait_for_selector(f"text={words['verified']}", timeout=60_000)
        shot(page, f"{lang}-export-done")
        with page.expect_download() as dl:
            page.click("a[download]")
        pack = Path(dl.value.path())
        assert zipfile.is_zipfile(pack)
        assert verify_pack(pack).ok
