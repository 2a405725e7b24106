"""The local web app without a browser: security, languages, sources, protect, export."""

from __future__ import annotations

import time
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
            for method in route.methods:
                assert method.lower() in paths.get(route.path, {}), (name, method, route.path)
