"""HMA's test fixtures and helpers (``OpenMediaMatch/tests/utils.py``), backed by a real
``reclaim serve-platform``: ``app`` is a fresh service (a new database) per test, ``client`` an
HTTP client with the service's bearer token. ``image_server``, ``create_bank``,
``add_hash_to_bank`` and ``IMAGE_URL_TO_PDQ`` are HMA's, step for step: the expected PDQ hashes
are computed by python-threatexchange's ``PdqSignal``, as in HMA."""

from __future__ import annotations

import functools
import http.server
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from threatexchange.signal_type.pdq.signal import PdqSignal

from OpenMediaMatch.harness import HarnessApp, HarnessClient, running

# Populated at session start by the image_server fixture
IMAGE_URL_TO_PDQ: dict[str, str] = {}


@pytest.fixture(scope="session", autouse=True)
def image_server() -> Iterator[str]:
    """Start a local HTTP server serving test images, avoiding external HTTP calls.

    Populates IMAGE_URL_TO_PDQ with computed PDQ hashes for each served image.
    Yields the base URL (e.g. "http://127.0.0.1:PORT")."""
    tmpdir = Path(tempfile.mkdtemp())
    try:

        def make_checkerboard(cell: int) -> Image.Image:
            img = Image.new("RGB", (128, 128))
            pixels = img.load()
            assert pixels is not None
            for x in range(128):
                for y in range(128):
                    pixels[x, y] = (255, 255, 255) if (x // cell + y // cell) % 2 else (0, 0, 0)
            return img

        # Two checkerboards with different cell sizes → different PDQ hashes
        make_checkerboard(cell=8).save(tmpdir / "image1.jpg", format="JPEG")
        make_checkerboard(cell=16).save(tmpdir / "image2.jpg", format="JPEG")

        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmpdir))
        server = http.server.HTTPServer(("127.0.0.1", 0), handler)
        port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()

        base_url = f"http://127.0.0.1:{port}"
        for filename in ("image1.jpg", "image2.jpg"):
            url = f"{base_url}/{filename}"
            IMAGE_URL_TO_PDQ[url] = PdqSignal.hash_from_file(tmpdir / filename)
        yield base_url
    finally:
        server.shutdown()
        shutil.rmtree(tmpdir)


@pytest.fixture()
def app() -> Iterator[HarnessApp]:
    with running() as a:
        yield a


@pytest.fixture()
def client(app: HarnessApp) -> HarnessClient:
    return app.test_client()


def create_bank(client: HarnessClient, bank_name: str) -> None:
    post_response = client.post(
        "/c/banks",
        json={"name": bank_name},
    )
    assert post_response.status_code == 201
    assert post_response.json == {"matching_enabled_ratio": 1.0, "name": bank_name}


def add_hash_to_bank(
    client: HarnessClient, bank_name: str, image_url: str, content_id: int = 1
) -> None:
    post_response = client.post(f"/c/bank/{bank_name}/content?url={image_url}&content_type=photo")

    assert post_response.status_code == 200
    assert post_response.json == {
        "id": content_id,
        "signals": {
            "pdq": IMAGE_URL_TO_PDQ[image_url],
        },
    }
