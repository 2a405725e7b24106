"""The local web app without a browser: security, languages, sources, protect, export."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from reclaim.web.app import create_app
from reclaim.web.i18n import missing_translations, negotiate

from .conftest import jpeg_bytes, photo_like

LOCAL = {"host": "127.0.0.1:8765"}


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    app = create_app(tmp_path / "case", workers=0)
    return TestClient(app, base_url="http://127.0.0.1:8765")


def test_foreign_host_refused(client: TestClient) -> None:
    assert client.get("/sources").status_code == 200
    r = client.get("/sources", headers={"host": "evil.example:8765"})
    assert r.status_code == 421
    r = client.get("/sources", headers={"host": "127.0.0.1.evil.example"})
    assert r.status_code == 421
    r = client.post("/sources", data={"path": "/tmp"}, headers={"origin": "http://evil.example"})
    assert r.status_code == 403


def test_languages(client: TestClient) -> None:
    fr = client.get("/sources", headers={"accept-language": "fr-FR,fr;q=0.9"}).text
    en = client.get("/sources", headers={"accept-language": "en-GB,en;q=0.8"}).text
    assert "Chemin sur cet ordinateur" in fr and "Path on this computer" in en
    assert negotiate(None, None) == "fr"  # French by default
    assert negotiate("de-DE,en;q=0.5", None) == "en"
    client.cookies.set("lang", "en")
    assert "Path on this computer" in client.get("/sources").text


def test_every_template_string_has_a_french_translation() -> None:
    import re

    here = Path(__file__).resolve().parents[1] / "src" / "reclaim" / "web" / "templates"
    pattern = re.compile(r"""_\((?:"([^"]*)"|'([^']*)')\)""")
    ids = sorted({a or b for p in here.glob("*.j2") for a, b in pattern.findall(p.read_text())})
    # Decisions and run states are translated from their stored values.
    ids += ["confirmed", "not_me", "unsure", "done", "running", "interrupted", "failed"]
    assert len(ids) > 60 and missing_translations("fr", ids) == []


def test_bad_source_is_an_error_message_not_a_500(client: TestClient, tmp_path: Path) -> None:
    r = client.post("/sources", data={"path": str(tmp_path / "vanished")})
    assert r.status_code == 400 and "no such file" in r.text
    r = client.post("/sources", data={"path": ""})
    assert r.status_code == 400


def test_background_scan_progress_then_errors_listed(client: TestClient, tmp_path: Path) -> None:
    d = tmp_path / "export"
    d.mkdir()
    for i in range(4):
        (d / f"{i}.jpg").write_bytes(jpeg_bytes(photo_like(i)))
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 nope")
    r = client.post("/sources", data={"path": str(d)})
    assert r.status_code == 200
    deadline = time.time() + 30
    while time.time() < deadline:
        part = client.get("/jobs/current", headers={"accept-language": "en"}).text
        if "Scan finished" in part:
            break
        time.sleep(0.1)
    assert "Scan finished" in part and "5 places" in part
    page = client.get("/sources", headers={"accept-language": "en"}).text
    assert "broken.jpg" in page and "4 photos" in page


def test_protect_returns_numbers_only(client: TestClient) -> None:
    img = jpeg_bytes(photo_like(3))
    r = client.post("/protect", files=[("files", ("secret name.jpg", img, "image/jpeg"))])
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "secret" not in r.text and r.text.startswith("signal_type,signal")
    assert (
        client.post("/protect", files=[("files", ("x.jpg", b"junk", "image/jpeg"))]).status_code
        == 400
    )


def test_export_builds_a_verified_pack(client: TestClient, tmp_path: Path) -> None:
    d = tmp_path / "src"
    d.mkdir()
    (d / "a.jpg").write_bytes(jpeg_bytes(photo_like(5)))
    client.post("/sources", data={"path": str(d)})
    for _ in range(100):
        if "Scan finished" in client.get("/jobs/current", headers={"accept-language": "en"}).text:
            break
        time.sleep(0.1)
    form = {"name": "Léa", "email": "lea@example.org", "lang": "fr"}
    r = client.post("/export", data=form, headers={"accept-language": "en"})
    assert r.status_code == 400 and "no confirmed finding" in r.text
    from reclaim.store import CaseStore

    with CaseStore.open(client.app.state.case) as s:  # type: ignore[attr-defined]
        sha = s.conn.execute("SELECT sha256 FROM items").fetchone()[0]
    r = client.post(f"/item/{sha}/decision", data={"decision": "confirmed", "note": "moi"})
    assert r.status_code in (200, 303)
    detail = client.get(f"/item/{sha}", headers={"accept-language": "fr"}).text
    assert "c&#39;est moi" in detail or "c'est moi" in detail
    r = client.post("/export", data=form, headers={"accept-language": "en"})
    assert r.status_code == 200, r.text
    assert "Verified" in r.text
    import re

    name = re.search(r'href="/exports/([^"]+)"', r.text)
    assert name
    z = client.get(f"/exports/{name.group(1)}")
    assert z.status_code == 200 and z.content[:2] == b"PK"
    assert client.get("/exports/..%2Fcase.sqlite").status_code == 404


def test_item_page_errors_not_500(client: TestClient, tmp_path: Path) -> None:
    d = tmp_path / "src"
    d.mkdir()
    (d / "a.jpg").write_bytes(jpeg_bytes(photo_like(6)))
    client.post("/sources", data={"path": str(d)})
    for _ in range(100):
        if "Scan finished" in client.get("/jobs/current", headers={"accept-language": "en"}).text:
            break
        time.sleep(0.1)
    from reclaim.store import CaseStore

    with CaseStore.open(client.app.state.case) as s:  # type: ignore[attr-defined]
        sha = s.conn.execute("SELECT sha256 FROM items").fetchone()[0]
    assert client.get(f"/thumb/{sha}").headers["content-type"] == "image/jpeg"
    (d / "a.jpg").unlink()  # the source vanished after the scan
    r = client.get(f"/item/{sha}", headers={"accept-language": "en"})
    assert r.status_code == 200 and "can no longer be read" in r.text
    assert client.get(f"/thumb/{sha}").status_code == 404
    assert client.get("/item/" + "0" * 64).status_code == 404
    r = client.post(f"/item/{sha}/decision", data={"decision": "maybe"})
    assert r.status_code == 400


def test_serve_refuses_to_listen_beyond_loopback(tmp_path: Path) -> None:
    from reclaim.errors import InputError
    from reclaim.web.app import serve

    with pytest.raises(InputError, match=r"127\.0\.0\.1"):
        serve(tmp_path / "case", host="0.0.0.0")


def test_custody_log_records_scans(client: TestClient, tmp_path: Path) -> None:
    from reclaim.report.custody import CustodyLog, verify_chain

    d = tmp_path / "src"
    d.mkdir()
    (d / "a.jpg").write_bytes(jpeg_bytes(photo_like(9)))
    client.post("/sources", data={"path": str(d)})
    for _ in range(100):
        if "Scan finished" in client.get("/jobs/current", headers={"accept-language": "en"}).text:
            break
        time.sleep(0.1)
    entries = CustodyLog(client.app.state.case).entries()  # type: ignore[attr-defined]
    assert [e["action"] for e in entries] == ["acquisition", "analysis"]
    assert entries[0]["details"]["new_items"] == 1 and verify_chain(entries) == []


def test_protect_page_gives_the_same_rows_as_the_cli(client: TestClient, tmp_path: Path) -> None:
    """Videos included: the web page's hash file carries vPDQ and video_md5 like the CLI's."""
    import csv
    import subprocess
    import sys

    from reclaim.sample import _video

    clip = tmp_path / "clip.mp4"
    if not _video(clip):
        pytest.skip("no video encoder in this PyAV build")
    img = tmp_path / "p.jpg"
    img.write_bytes(jpeg_bytes(photo_like(12)))
    web = client.post(
        "/protect",
        files=[
            ("files", ("clip.mp4", clip.read_bytes(), "video/mp4")),
            ("files", ("p.jpg", img.read_bytes(), "image/jpeg")),
        ],
    ).text
    out = tmp_path / "cli.csv"
    subprocess.run(
        [sys.executable, "-m", "reclaim.cli", "protect", str(clip), str(img), "--out", str(out)],
        check=True,
        capture_output=True,
    )

    def rows(text: str) -> list[tuple[str, str, str, str]]:
        return [
            (r["signal_type"], r["signal"], r["quality"], r["media_kind"])
            for r in csv.DictReader(text.splitlines())
        ]

    assert rows(web) == rows(out.read_text())
    assert {r[0] for r in rows(web)} == {"vpdq", "video_md5", "pdq", "md5"}


@pytest.mark.parametrize(
    "referer",
    [
        "http://evil.example/",
        "https://evil.example/x",
        "//evil.example/x",
        "/\\evil.example/x",
        "\\\\evil.example/x",
        "/\t/evil.example/x",  # browsers drop tabs and newlines from URLs
        "https:evil.example",
        "http:evil.example",
        "javascript:alert(1)",
        "http://127.0.0.1:8765@evil.example/",
        "http://127.0.0.1:8765.evil.example/",
        "http://127.0.0.1:9999/sources",  # another port is another origin
        "https://127.0.0.1:8765/sources",  # so is another scheme
        "http://localhost:8765/sources",  # and another name
        "http://127.0.0.1:8765//evil.example/x",
        "http://127.0.0.1:8765/\\evil.example",
        "sources",
    ],
)
def test_back_redirects_stay_on_this_app(client: TestClient, referer: str) -> None:
    """/lang and /settings/reveal send the person back where she was: only to a page of this
    app, never to wherever a Referer points (open redirect)."""
    answers = (
        client.get("/lang/en", headers={"referer": referer}, follow_redirects=False),
        client.post(
            "/settings/reveal",
            data={"reveal_all": "1"},
            headers={"referer": referer},
            follow_redirects=False,
        ),
    )
    for r in answers:
        assert r.status_code == 303
        assert r.headers["location"] == "/", (referer, r.headers["location"])


def test_back_redirects_return_to_the_page(client: TestClient) -> None:
    for referer, back in (
        ("http://127.0.0.1:8765/sources?tab=runs#x", "/sources?tab=runs"),
        ("/findings", "/findings"),
        (None, "/"),
    ):
        headers = {"referer": referer} if referer else {}
        r = client.get("/lang/fr", headers=headers, follow_redirects=False)
        assert r.headers["location"] == back
        r = client.post(
            "/settings/reveal", data={"reveal_all": "0"}, headers=headers, follow_redirects=False
        )
        assert r.headers["location"] == back


def test_item_page_lists_near_duplicates_within_the_pdq_distance(
    client: TestClient, tmp_path: Path
) -> None:
    from reclaim.hashes.pdq import PDQ_MATCH_DISTANCE
    from reclaim.match.duplicates import near_duplicates
    from reclaim.store import CaseStore

    d = tmp_path / "dups"
    d.mkdir()
    im = photo_like(21)
    (d / "a.jpg").write_bytes(jpeg_bytes(im, quality=95))
    (d / "a-again.jpg").write_bytes(jpeg_bytes(im.resize((320, 240)), quality=60))
    (d / "other.jpg").write_bytes(jpeg_bytes(photo_like(22)))
    client.post("/sources", data={"path": str(d)})
    for _ in range(300):
        if "Scan finished" in client.get("/jobs/current", headers={"accept-language": "en"}).text:
            break
        time.sleep(0.1)
    with CaseStore.open(client.app.state.case) as s:  # type: ignore[attr-defined]
        shas = [r[0] for r in s.conn.execute("SELECT sha256 FROM items")]
        by_name = {Path(s.sightings_of(sha)[0].path).name: sha for sha in shas}
        near = near_duplicates(s, by_name["a.jpg"])
        assert [n["sha256"] for n in near] == [by_name["a-again.jpg"]]
        assert 0 <= near[0]["distance"] <= PDQ_MATCH_DISTANCE
        assert near[0]["where"].endswith("a-again.jpg")
        assert near_duplicates(s, by_name["a.jpg"], max_distance=-1) == []
    page = client.get(f"/item/{by_name['a.jpg']}", headers={"accept-language": "en"}).text
    assert by_name["a-again.jpg"][:12] in page and by_name["other.jpg"][:12] not in page


def test_every_page_router_is_mounted(client: TestClient) -> None:
    """Each module of web/routes/ is a page: every route of its router answers in the app (a
    router left out of create_app would make its page a 404)."""
    import importlib
    import pkgutil

    from fastapi.routing import APIRoute

    import reclaim.web.routes as pages

    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    modules = [m.name for m in pkgutil.iter_modules(pages.__path__)]
    assert len(modules) >= 7
    for name in modules:
        router = importlib.import_module(f"{pages.__name__}.{name}").router
        assert router.routes, name
        for route in router.routes:
            assert isinstance(route, APIRoute)
            for method in route.methods or set():
                assert method.lower() in paths.get(route.path, {}), (name, method, route.path)


# -- findings grouped by place, in her words (issue 22) -----------------------------------------


@dataclass
class FindingsCase:
    """A case with a Telegram chat and a folder: ``leaked`` (a face search finding the check
    calls likely generated) is in both, ``confirmed`` (confirmed by her, not checked) in the
    chat only, ``other`` (no finding, no decision) in the folder only."""

    case: Path
    leaked: str
    confirmed: str
    other: str


def findings_case(root: Path) -> FindingsCase:
    import hashlib
    import json

    import numpy as np

    from reclaim.decisions import decide
    from reclaim.detectors.record import CheckResult, PixelEvidence
    from reclaim.faces.describe import DESCRIPTOR_DIM, descriptor_to_bytes
    from reclaim.scan import scan
    from reclaim.sources import open_source
    from reclaim.store import CaseStore, ItemRecord
    from reclaim.store.case import FaceRecord
    from reclaim.verdicts import CheckLevel, Verdict

    leaked, confirmed, other = (jpeg_bytes(photo_like(s, (320, 240))) for s in (41, 42, 43))
    export = root / "ChatExport"
    (export / "photos").mkdir(parents=True)
    messages = []
    for i, data in enumerate((leaked, confirmed), start=1):
        (export / "photos" / f"p{i}.jpg").write_bytes(data)
        messages.append(
            {"id": 100 + i, "type": "message", "date": f"2026-01-01T1{i}:00:00",
             "date_unixtime": str(1767261600 + 3600 * (i - 1)), "from": "Marc D.",
             "from_id": "user9", "text": "", "photo": f"photos/p{i}.jpg"}
        )  # fmt: skip
    chat = {"name": "Leak channel", "type": "public_channel", "id": 42, "messages": messages}
    (export / "result.json").write_text(json.dumps(chat), encoding="utf-8")
    folder = root / "Téléchargements"
    folder.mkdir()
    (folder / "IMG_0007.jpg").write_bytes(leaked)
    (folder / "IMG_0008.jpg").write_bytes(other)
    sha = [hashlib.sha256(d).hexdigest() for d in (leaked, confirmed, other)]
    case = root / "lea"
    with CaseStore.open(case, create=True) as s:
        scan(s, [open_source(str(export)), open_source(str(folder))], workers=0)
        d = np.zeros(DESCRIPTOR_DIM, np.float32)
        d[0] = 1.0
        face = FaceRecord((1, 1, 60, 60), 60, "hog", 1.0, 100.0, 0.0, 1.0, descriptor_to_bytes(d))
        s.record_faces([ItemRecord(sha[0], "0" * 32, 1, "photo", "jpeg", faces=[face])])
        eid = s.add_enrollment("Lea", "Lea", "consent", [(descriptor_to_bytes(d), 60, 100.0, 0.0)])
        fid = s.item_faces(sha[0])[0]["face_id"]
        s.upsert_findings([(eid, sha[0], fid, 0.1, 0.1, 0.1, 0.93, 1)])
        signal = PixelEvidence(
            "clip_generated", 0.91, "generated",
            {"en": "The AI-image probe reads it as generated.", "fr": "La sonde la lit générée."},
            1.2, {}, True,
        )  # fmt: skip
        s.record_checks(
            [(sha[0], CheckResult(
                sha[0], "photo", "jpeg", Verdict.LIKELY_GENERATED, 0.91,
                {"en": "Likely generated.", "fr": "Probablement générée."}, (signal,),
                {"pixels": "checked"}, level=CheckLevel.FULL,
            ))]
        )  # fmt: skip
        decide(s, sha[1], "confirmed")
    return FindingsCase(case, *sha)


def _outside_details(html: str) -> str:
    """The page without its folded parts (``<details>…</details>``)."""
    return re.sub(r"<details.*?</details>", "", html, flags=re.S)


def test_findings_grouped_by_place_in_her_words(tmp_path: Path) -> None:
    fc = findings_case(tmp_path)
    c = TestClient(create_app(fc.case, workers=0), base_url="http://127.0.0.1:8765")
    c.cookies.set("lang", "en")
    page = c.get("/findings").text
    groups = re.findall(r'<section class="place-group place-(\w+)".*?</section>', page, re.S)
    assert groups == ["telegram", "folder"]
    chat, folder = re.findall(r'<section class="place-group.*?</section>', page, re.S)
    assert "Telegram — « Leak channel » <small>(public channel)</small>" in chat
    assert "Folder « Téléchargements »" in folder
    # the chat holds both pictures, the folder the leaked one (its other picture is not hers)
    assert chat.count('class="finding"') == 2 and folder.count('class="finding"') == 1
    assert fc.other not in page
    assert "Message of 1 January 2026, 10:00 UTC, sent by « Marc D. »" in chat
    assert "Message of 1 January 2026, 11:00 UTC" in chat and "File « IMG_0007.jpg »" in folder
    assert "also seen in 1 other place" in chat
    assert "2 pictures found · in 2 places" in page
    shown = _outside_details(page)
    assert "This picture seems to show you and was probably generated by an AI tool." in shown
    assert (
        "This picture shows you; it carries no sign of how it was made, and its pixels have "
        "not been checked."
        in shown
        and "You confirmed it is you" in shown
    )
    # no raw path, score or detector outside "Technical details"
    assert str(tmp_path) not in shown and "Score" not in shown and "0.93" not in shown
    assert "0.93" in page and str(tmp_path) in page and "Technical details" in page
    assert 'href="/learn"' in shown

    c.cookies.set("lang", "fr")
    page = c.get("/findings").text
    shown = _outside_details(page)
    assert "Cette image semble vous montrer et a probablement été générée par une IA." in shown
    assert "Message du 1 janvier 2026, 10:00 UTC, envoyé par « Marc D. »" in shown
    assert "Dossier « Téléchargements »" in shown and "(canal public)" in shown
    assert "2 images trouvées · dans 2 lieux" in shown and "vue aussi à 1 autre endroit" in shown
    assert "<summary>Détails techniques</summary>" in page


def test_item_page_opens_with_what_she_can_act_on(tmp_path: Path) -> None:
    fc = findings_case(tmp_path)
    c = TestClient(create_app(fc.case, workers=0), base_url="http://127.0.0.1:8765")
    c.cookies.set("lang", "fr")
    page = c.get(f"/item/{fc.leaked}").text
    sentence = page.index("Cette image semble vous montrer et a probablement été générée")
    where = page.index("Telegram — « Leak channel »")
    technical = page.index("<details")
    assert sentence < where < page.index('id="decide"') < technical
    assert page.index("clip_generated") > technical  # detectors folded below
    assert page.index('value="confirmed"') < technical  # her decision before the details
    assert 'href="/learn"' in _outside_details(page)
    assert "Dossier « Téléchargements »</strong> — <span" in page  # both places, her words
    page = c.get(f"/item/{fc.confirmed}").text
    ask = page.index('id="ask-removal"')
    assert page.index("Cette image vous montre ; elle ne porte aucune indication") < ask
    assert ask < page.index("Où elle a été vue") < page.index("<details")
    page = c.get(f"/item/{fc.other}").text  # no face search match, no decision
    assert "La recherche de visage n&#39;a pas trouvé votre visage dans cette image" in page
    assert "vous montre" not in page
    c.post(f"/item/{fc.confirmed}/decision", data={"decision": "not_me"})
    page = c.get(f"/item/{fc.confirmed}").text
    assert "Vous avez indiqué que cette image ne vous montre pas." in page


def test_every_verdict_has_a_sentence_in_both_languages() -> None:
    from reclaim.verdicts import Verdict
    from reclaim.web.i18n import translator
    from reclaim.web.where import VERDICT_GROUPS, sentence_msgids, verdict_sentence

    assert {v.value for v in Verdict} <= set(VERDICT_GROUPS)
    assert missing_translations("fr", sentence_msgids()) == []
    fr, en = translator("fr"), translator("en")
    seen = set()
    for v in Verdict:
        for decision in (None, "confirmed", "unsure"):
            s_fr, s_en = verdict_sentence(fr, v, decision), verdict_sentence(en, v, decision)
            assert "%(" not in s_fr + s_en and s_fr != s_en
            seen.add(s_en)
    assert len(seen) == 2 * len(set(VERDICT_GROUPS.values()))
    assert verdict_sentence(fr, "likely manipulated", "confirmed", "video") == (
        "Cette vidéo vous montre et a probablement été modifiée ou assemblée à partir d'autres "
        "images."
    )
    assert verdict_sentence(en, "a verdict of tomorrow", None).endswith(
        "not been checked for generation or editing."
    )


# -- Learn pages (issue 22) ---------------------------------------------------------------------


def test_learn_pages_in_both_languages_sourced_and_dated(client: TestClient) -> None:
    from html import unescape

    from reclaim.requests.catalog import current_catalog
    from reclaim.web.routes.learn import learn_pages, page_sources

    pages = learn_pages()
    assert {p.id for p in pages} >= {"fakes", "rights", "evidence", "help", "signals"}
    index = client.get("/learn", headers={"accept-language": "en"}).text
    for p in pages:
        assert f'href="/learn/{p.id}"' in index
        sources = page_sources(p)
        # each read on a date, or an official text cited by reference (with a note saying so)
        assert sources and all(s.checked is not None or s.note for s in sources)
        for lang, updated in (
            ("fr", "Mis à jour le 7 décembre 2026"),
            ("en", "Updated on 7 December 2026"),
        ):
            r = client.get(f"/learn/{p.id}", headers={"accept-language": lang})
            text = unescape(r.text)
            assert r.status_code == 200 and f'<html lang="{lang}">' in r.text
            assert p.title[lang] in text and updated in text
            sources_part = text[text.index('id="sources"') :]
            assert sources_part.count("<li>") == len(sources)
            assert all(s.title in sources_part for s in sources)
    # the destinations' laws, deadlines and sources come from their data files, not restated
    cat = current_catalog()
    rights = unescape(client.get("/learn/rights", headers={"accept-language": "fr"}).text)
    for dest in ("take-it-down-act", "hosting-dsa", "arcom", "pharos", "plainte"):
        d = cat.get(dest)
        assert d.text(d.clock_text, "fr") in rights and d.text(d.law, "fr") in rights
        assert all(s.url in rights for s in d.sources)
    helpline = unescape(client.get("/learn/help", headers={"accept-language": "en"}).text)
    assert "3018" in helpline and "116 006" in helpline and "https://stopncii.org" in helpline
    assert client.get("/learn/nope").status_code == 404
    assert client.get("/learn/..%2Fbase").status_code == 404


def test_learn_signals_quote_the_measured_numbers(client: TestClient) -> None:
    """The numbers on the page are those of the benchmarks' results files: face search
    (``face_search.json``) and "generated or edited?" (``detect.json``: diffusion-dev re-encoded
    as Telegram does, each family left out of training; the Yonsei splices; the real photos of
    every test set), in both languages; "a low score never means real" comes first."""
    import json
    from html import unescape

    results = Path(__file__).resolve().parents[1] / "bench" / "results"
    got = json.loads((results / "face_search.json").read_text())["reclaim"]
    recall, swap = got["recall"], got["recall_by_variant"]["swap"]
    fp, pairs = got["false_positives"], got["negative_pairs"]
    page = client.get("/learn/signals", headers={"accept-language": "en"}).text
    assert f"found {recall * 100:.1f} %" in page and f"{swap * 100:.0f} % of face swaps" in page
    assert f"{fp} times in {pairs:,} pairs" in page

    detect = json.loads((results / "detect.json").read_text())
    assert detect["run_at"].startswith("2026-12")  # "measured in December 2026"
    telegram = {family: r["fused"] for family, r in detect["diffusion"]["telegram"].items()}
    inpaint = telegram.pop("GLIDE-inpaint")
    del telegram["overall"]
    assert sorted(telegram) == ["Disco", "GLID-3", "LDM", "SD"]
    auc = sorted(f["auc"] for f in telegram.values())
    tpr = sorted(f["tpr_at_threshold"] for f in telegram.values())
    reals: dict[str, tuple[int, list[float]]] = {}  # real set → (photos, FPR per family left out)
    for f in [*telegram.values(), inpaint]:
        for name, r in f["fpr_at_threshold_per_real_set"].items():
            reals.setdefault(name, (r["n"], []))[1].append(r["fpr"])
    (single,) = [fprs for n, fprs in reals.values() if n == 1]
    sets = [fprs for n, fprs in reals.values() if n > 1]
    rates = [x for fprs in sets for x in fprs]  # real photos flagged, every test set
    rates += [r["fused"]["fpr_at_threshold"] for r in detect["test"].values()]
    most = max(rates)
    splices = detect["test"]["yonsei-splice"]["fused"]
    rule = detect["fusion"]["info"]["max_false_positive_rate_per_real_set"]
    total = sum(n for n, _ in reals.values())
    never = sum(n for n, fprs in reals.values() if max(fprs) == 0)

    def pct(x: float) -> str:
        return f"{x * 100:.0f}"

    def fr(text: str) -> str:
        return re.sub(r"(\d)\.(\d)", r"\1,\2", text)

    expected = {
        "en": [
            f"{pct(auc[0])} to {pct(auc[-1])} times in 100 (AUC {auc[0]:.3f} to {auc[-1]:.3f}",
            f"it flags {pct(tpr[0])} to {pct(tpr[-1])} %",
            f"AUC {inpaint['auc']:.3f}, but only {pct(inpaint['tpr_at_threshold'])} % of them",
            f"of the {total} in this test, {never} were never flagged",
            f"flagged in {sum(x > 0 for x in single)} of the {len(single)} measurements",
            f"flagged {pct(splices['tpr_at_threshold'])} % of the splices, and "
            f"{splices['fpr_at_threshold'] * 100:.1f} % of the same set's real photos",
            f"at most {pct(rule)} % of the real photos of each test set; measured, it flagged at "
            f"most {most * 100:.1f} % of them",
            "Today's generators (SDXL, FLUX, Midjourney, DALL-E and others) were not measured",
            "the content alone",
            'give "cannot tell"',
        ],
        "fr": [
            fr(f"{pct(auc[0])} à {pct(auc[-1])} fois sur 100 (AUC de {auc[0]:.3f} à {auc[-1]:.3f}"),
            f"il en signale {pct(tpr[0])} à {pct(tpr[-1])} %",
            fr(f"AUC de {inpaint['auc']:.3f}, mais seulement {pct(inpaint['tpr_at_threshold'])} %"),
            f"sur les {total} de ce test, {never} n'ont jamais été signalées",
            f"l'a été dans {sum(x > 0 for x in single)} des {len(single)} mesures",
            fr(
                f"a signalé {pct(splices['tpr_at_threshold'])} % des montages, pour "
                f"{splices['fpr_at_threshold'] * 100:.1f} % des vraies photos du même jeu"
            ),
            fr(
                f"au plus {pct(rule)} % des vraies photos de chaque jeu de test ; mesuré, il en a "
                f"signalé au plus {most * 100:.1f} %"
            ),
            "Les générateurs d'aujourd'hui (SDXL, FLUX, Midjourney, DALL-E et d'autres) n'ont "
            "pas été mesurés",
            "le contenu seul",
            "donnent « impossible de trancher »",
        ],
    }
    first = {
        "en": "A low score never means a picture is real.",
        "fr": "Un score bas ne veut jamais dire qu'une image est vraie.",
    }
    for lang, wanted in expected.items():
        text = unescape(client.get("/learn/signals", headers={"accept-language": lang}).text)
        missing = [w for w in wanted if w not in text]
        assert not missing, (lang, missing)
        section = text[text.index("<h2>", text.index("</h1>") + 1) :]  # face search
        section = section[section.index("<h2>", 4) :]  # "generated or edited?"
        lead = section[section.index("<p") : section.index("</p>")]
        assert 'class="reassure"' in lead and first[lang] in lead, (lang, lead)


def test_dashboard_names_confirmed_places_in_her_language(tmp_path: Path) -> None:
    fc = findings_case(tmp_path)
    c = TestClient(create_app(fc.case, workers=0), base_url="http://127.0.0.1:8765")
    c.cookies.set("lang", "fr")
    confirmed = c.get("/").text.split('class="confirmed"')[1]
    assert "Telegram : « Leak channel » (canal public) message n° 102" in confirmed
    c.cookies.set("lang", "en")
    confirmed = c.get("/").text.split('class="confirmed"')[1]
    assert "Telegram: &#34;Leak channel&#34; (public channel) message #102" in confirmed
