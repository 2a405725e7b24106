"""The face shield journey in headless Chromium, in French and in English (issue 20).

She makes a shield on the page "Protéger mon visage sur les plateformes" of her local web app
for tenant A of a platform service started by the test; she downloads the shield file (export)
and the platform takes it in through its intake endpoint. A face swap of another photo of hers,
uploaded to A, is queued for review (and not when uploaded to tenant B). She revokes the shield
on the page: the platform deletes it, and the same upload is no longer queued.

Real faces: ../shared/data/faces (LFW); skips with the reason when absent, or without Chromium.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from .browser import browser_page, require_chromium, running_server, shot
from .conftest import shared_data

HER = "Colin_Powell"
#: A typical stranger: 1.30 from her references in the clear, the median of 12 LFW strangers
#: drawn at random (1.15-1.41), over the threshold under 0 of 150 random platform keys. It was
#: Hans_Blix, the closest to her of those 13 (1.08): over the threshold under 3.3 % of keys, so
#: this test failed about one run in 15 (the platform's keys are drawn anew each run). Such
#: pairs are what the scheme's measured false-match rate averages over (docs/shield.md).
STRANGER = "Dean_Barkley"

TEXT = {
    "fr": {
        "title": "Protéger mon visage sur les plateformes",
        "make": "Créer le bouclier",
        "made": "Bouclier créé.",
        "download": "Télécharger le fichier du bouclier",
        "revoke": "Révoquer",
        "revoked": "révoqué",
        "not_sent": "pas encore envoyé",
    },
    "en": {
        "title": "Protect my face on platforms",
        "make": "Make the shield",
        "made": "Shield made.",
        "download": "Download the shield file",
        "revoke": "Revoke",
        "revoked": "revoked",
        "not_sent": "not sent yet",
    },
}


def _photos() -> tuple[list[Path], bytes, bytes]:
    """Her 3 reference photos; a face swap of a 5th photo of hers into another scene, re-encoded
    as Telegram does (a new image: no hash of it exists anywhere); a stranger's photo."""
    from PIL import Image

    from reclaim.faces.pipeline import find_faces
    from reclaim_fixtures.faces import load_rgb, make_variant, scene_canvas, telegram_bytes

    lfw = shared_data("faces", "lfw-gray")
    deepface = shared_data("faces", "deepface-pairs")
    her = sorted((lfw / HER).iterdir())
    probe = load_rgb(her[4])
    box = find_faces(np.asarray(probe))[0].box
    scene = scene_canvas(load_rgb(deepface / "img20.jpg"))
    scene_face = find_faces(np.asarray(scene))[0].box
    swap: Image.Image = make_variant(
        "swap", probe, box, np.random.default_rng(3), lambda: (scene, scene_face)
    )
    stranger = telegram_bytes(load_rgb(sorted((lfw / STRANGER).iterdir())[0]))
    return her[:3], telegram_bytes(swap), stranger


def _platform(tmp_path: Path) -> tuple[Any, dict[str, str], dict[str, str]]:
    from reclaim.api.app import create_app
    from reclaim.api.deps import Settings
    from reclaim.platform.store import SqlitePlatformStore

    store = SqlitePlatformStore(tmp_path / "platform.db")
    store.migrate()
    headers = {}
    for tenant in ("a", "b"):
        tid = store.ensure_tenant(tenant)
        secret = store.create_token(tid, f"{tenant}-moderation", ("hash", "match", "review"))
        headers[tenant] = {"Authorization": f"Bearer {secret}"}
    settings = Settings(
        shield_keys=str(tmp_path / "shield-keys.json"),
        poll_interval_s=0.0,
        hash_workers=1,
        max_upload_bytes=4_000_000,
    )
    return create_app(store, settings), headers["a"], headers["b"]


def _queued(base: str, headers: dict[str, str], data: bytes) -> dict[str, Any] | None:
    """Upload ``data`` to the platform's match-on-upload; the review item it queued, if any."""
    r = httpx.post(
        f"{base}/m/lookup",
        headers=headers,
        files={"photo": ("upload.jpg", data, "image/jpeg")},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    item = r.headers.get("X-Reclaim-Review-Item")
    if item is None:
        return None
    got = httpx.get(f"{base}/review/items/{item}", headers=headers, timeout=30)
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_shield_make_export_intake_match_revoke(lang: str, tmp_path: Path) -> None:
    require_chromium()
    refs, swap, stranger = _photos()
    t = TEXT[lang]

    from reclaim.enroll import enroll
    from reclaim.store import CaseStore
    from reclaim.web.app import create_app as web_app

    case = tmp_path / "case"
    with CaseStore.open(case, create=True) as s:
        enroll(s, "Camille", refs, consent=True, consented_by="Camille", lang=lang)
    platform_app, ha, hb = _platform(tmp_path)

    with (
        running_server(platform_app) as platform,
        running_server(web_app(case)) as web,
        browser_page(lang) as page,
    ):
        page.goto(f"{web}/shield")
        assert page.locator("h1").inner_text() == t["title"]
        page.select_option("#name", "Camille")
        page.fill("#platform", f"{platform}/shield/v1/a")
        # the consent text names the platform being typed (htmx), as it will be signed
        page.wait_for_function(
            "document.querySelector('#consent-text').textContent.includes('\"a\"') || "
            "document.querySelector('#consent-text').textContent.includes('« a »')"
        )
        page.check("#consent")
        page.get_by_role("button", name=t["make"]).click()
        page.wait_for_selector(".done")
        assert page.locator(".done").inner_text() == t["made"]
        row = page.locator("tr[data-shield]")
        assert row.count() == 1 and t["not_sent"] in row.inner_text()
        shield_id = row.get_attribute("data-shield") or ""
        assert re.fullmatch(r"[0-9a-f]{32}", shield_id)

        # export: the file she gives the platform (protected templates + signed receipt)
        with page.expect_download() as dl:
            page.get_by_role("link", name=t["download"]).click()
        shield_file = Path(dl.value.path()).read_text(encoding="utf-8")
        assert shield_id in shield_file and "Camille" not in shield_file

        # intake at the platform: no tenant token, the consent receipt checked
        r = httpx.post(
            f"{platform}/shield/v1/a/intake",
            content=shield_file.encode(),
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        assert r.status_code == 201, r.text
        assert r.json()["shield_id"] == shield_id

        # a face swap of her, never seen before: queued for A's review, not for B's
        item = _queued(platform, ha, swap)
        assert item is not None and item["reason"] == "shield", item
        assert [h["shield_id"] for h in item["matches"]["face_shield"]] == [shield_id]
        assert item["has_preview"]
        assert _queued(platform, hb, swap) is None
        assert _queued(platform, ha, stranger) is None

        # she revokes on the page: the platform deletes the shield
        page.once("dialog", lambda d: d.accept())
        row.get_by_role("button", name=t["revoke"], exact=True).click()
        page.wait_for_selector(".done")
        assert t["revoked"] in page.locator("tr[data-shield]").inner_text()
        shot(page, f"shield-{lang}")

        listed = httpx.get(f"{platform}/shield/v1/a/intake-key", timeout=30)
        assert listed.status_code == 200
        assert _queued(platform, ha, swap) is None
