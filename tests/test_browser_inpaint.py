"""End to end in headless Chromium (issue 21): the inpainting map in the item page, fr and en.

A GLIDE-inpainted COCO photo of the dev set is scanned into a case; its page shows a blurred
preview and no explanation image until the person asks for them; then the region map is there
with its caption. Screenshots: test-artifacts/screenshots/{fr,en}-item-inpaint-map.png.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .browser import browser_page, require_chromium, running_server, shot
from .conftest import shared_data

#: The dev example whose region bench/inpaint.py finds strongest.
EXAMPLE = "mapo80_TruFor_CocoGlide__glide_inpainting_val2017_125952_up.png"

TEXT = {
    "fr": {
        "finished": "Analyse terminée",
        "show": "Afficher les images d'explication",
        "caption": "Zone régénérée ? Là où le grain fin diffère",
    },
    "en": {
        "finished": "Scan finished",
        "show": "Show explanation images",
        "caption": "Regenerated area? Where the fine grain differs",
    },
}


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_item_page_shows_the_inpainting_map_after_she_asks(lang: str, tmp_path: Path) -> None:
    require_chromium()
    src = shared_data("detect", "diffusion-dev", "fake") / EXAMPLE
    if not src.exists():
        pytest.skip(f"{EXAMPLE} not in the shared dev set")
    from reclaim.store import CaseStore
    from reclaim.web.app import create_app

    found = tmp_path / "found"
    found.mkdir()
    shutil.copy(src, found / "post.png")
    t = TEXT[lang]
    app = create_app(tmp_path / "case", workers=1)
    with running_server(app) as base, browser_page(lang) as page:
        page.goto(f"{base}/sources")
        page.fill("#path", str(found))
        page.click("button[type=submit]")
        page.wait_for_selector(f"text={t['finished']}", timeout=120_000)
        with CaseStore.open(tmp_path / "case") as s:
            (sha,) = [r[0] for r in s.conn.execute("SELECT sha256 FROM items")]

        page.goto(f"{base}/item/{sha}")
        # before she asks: a blurred preview, no explanation image
        assert "reveal=0" in (page.locator("#detail-thumb img").get_attribute("src") or "")
        assert page.locator("figure.map").count() == 0
        assert t["caption"] not in page.content()
        button = page.locator("#maps button")
        assert button.inner_text().strip() == t["show"]
        button.click()
        fig = page.locator("figure.map", has_text=t["caption"])
        fig.wait_for(timeout=120_000)
        img = fig.locator("img")
        assert (img.get_attribute("src") or "").startswith("data:image/png;base64,")
        assert page.evaluate("(el) => el.naturalWidth", img.element_handle()) == 256
        fig.scroll_into_view_if_needed()
        shot(page, f"{lang}-item-inpaint-map")
