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
def test_sources_progress_protect(lang: str, sample: list[Path], tmp_path: Path) -> None:
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


def _face_photos() -> Path:
    from .conftest import shared_data

    return shared_data("faces", "deepface-pairs")


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_journey_enroll_scan_reveal_confirm_export(lang: str, tmp_path: Path) -> None:
    """Léa's journey: enroll with consent → add a source → progress → blurred finding →
    reveal → confirm → export → the pack verifies."""
    require_chromium()
    faces = _face_photos()  # img1, img2, img4, img5 show one person; img20, img22 others
    found = tmp_path / "channel-export"
    found.mkdir()
    from PIL import Image, ImageOps

    (found / "post_1.jpg").write_bytes((faces / "img4.jpg").read_bytes())
    with Image.open(faces / "img5.jpg") as im:
        ImageOps.mirror(im.convert("RGB")).save(found / "post_2_mirrored.jpg", quality=80)
    for other in ("img20.jpg", "img22.jpg"):
        (found / f"other_{other}").write_bytes((faces / other).read_bytes())
    w = {
        "fr": {
            "finished": "Analyse terminée",
            "enrolled": "Enregistrée",
            "verified": "Vérifié",
            "me": "C'est moi",
        },
        "en": {
            "finished": "Scan finished",
            "enrolled": "Enrolled",
            "verified": "Verified",
            "me": "It is me",
        },
    }[lang]
    app = create_app(tmp_path / "case", workers=1)
    with running_server(app) as base, browser_page(lang) as page:
        page.goto(f"{base}/enroll")
        shot(page, f"{lang}-enroll")
        page.fill("#name", "Lea")
        page.set_input_files("#photos", [str(faces / "img1.jpg"), str(faces / "img2.jpg")])
        page.click("button[type=submit]")  # no consent ticked: refused, and says why
        assert page.locator(".problem").is_visible()
        shot(page, f"{lang}-enroll-refused")
        page.fill("#name", "Lea")
        page.set_input_files("#photos", [str(faces / "img1.jpg"), str(faces / "img2.jpg")])
        page.check("#consent")
        page.click("form[action='/enroll'] button[type=submit]")
        page.wait_for_selector(f"text={w['enrolled']}", timeout=120_000)
        shot(page, f"{lang}-enrolled")

        page.goto(f"{base}/sources")
        page.fill("#path", str(found))
        page.click("button[type=submit]")
        assert page.locator("#job").is_visible()
        shot(page, f"{lang}-sources-progress")
        page.wait_for_selector(f"text={w['finished']}", timeout=180_000)

        page.goto(f"{base}/findings")
        items = page.locator("li.finding")
        assert items.count() >= 2
        shas = [items.nth(i).get_attribute("data-sha") for i in range(items.count())]
        first = items.nth(0)
        assert "reveal=0" in (first.locator("img").get_attribute("src") or "")  # blurred
        shot(page, f"{lang}-findings-blurred")
        first.locator("button.show").click()
        page.wait_for_selector("img.revealed")
        assert "reveal=1" in (page.locator("img.revealed").first.get_attribute("src") or "")
        shot(page, f"{lang}-findings-revealed")

        page.goto(f"{base}/item/{shas[0]}")
        shot(page, f"{lang}-finding-detail")
        page.check("input[value=confirmed]")
        page.fill("#note", "Mon visage sur un autre corps")
        page.click("form[action$='/decision'] button[type=submit]")
        page.wait_for_selector(".decision")
        shot(page, f"{lang}-finding-confirmed")

        page.goto(f"{base}/protect")
        shot(page, f"{lang}-protect")
        page.goto(f"{base}/export")
        shot(page, f"{lang}-export")
        page.fill("#name", "Léa Martin")
        page.fill("#email", "lea@example.org")
        page.click("button[type=submit]")
        page.wait_for_selector(f"text={w['verified']}", timeout=120_000)
        shot(page, f"{lang}-export-done")
        with page.expect_download() as dl:
            page.click("a[download]")
        pack = Path(dl.value.path())
        check = verify_pack(pack)
        assert check.ok, check.problems
        with zipfile.ZipFile(pack) as z:
            assert f"originals/{shas[0]}.jpg" in z.namelist()
