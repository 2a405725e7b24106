"""One registry of signal types is the only vocabulary (issue 19).

A toy signal type, registered here and named in no module of reclaim, is validated by the
platform, indexed and matched by its matcher, listed by ``reclaim hash --json``, shared by
``reclaim protect`` and offered by the hash API: none of those modules names a type.

Analysis normally runs in worker processes, which get the registry by importing
``reclaim.hashes``; a type registered at run time (as here) is not in workers started before,
so these tests run the analysis in this process.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

import reclaim.media.sandbox as sandbox
from reclaim.analysis import analyze_bytes
from reclaim.api import Settings, create_app
from reclaim.cli import app as cli_app
from reclaim.hashes import (
    Index,
    MD5Signal,
    PDQSignal,
    SignalValue,
    by_exchange_name,
    exchange_names,
    register,
    signal_type,
    signal_types,
    unregister,
)
from reclaim.hashes.pdq import PDQ_MAX_SIDE, pdq_from_rgb
from reclaim.media import Media, MediaKind, MediaLimits
from reclaim.platform.signals import SignalRejected, canonical
from reclaim.platform.store import SqlitePlatformStore
from reclaim.protect import protect_rows

from .conftest import jpeg_bytes, photo_like


class MirrorPDQ(PDQSignal):
    """Toy type: PDQ of the mirrored photo, banked under its own name and its own PDQ index."""

    name = "pdq_mirror"
    kinds: ClassVar[frozenset[MediaKind]] = frozenset({"photo"})
    index = Index.PDQ

    def compute(self, media: Media) -> SignalValue:
        im = media.image(max_side=PDQ_MAX_SIDE).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        h, q = pdq_from_rgb(np.asarray(im))
        return SignalValue(self.name, str(h), q)


def mirror_pdq(data: bytes) -> str:
    im = Image.open(io.BytesIO(data)).convert("RGB")
    im.thumbnail((PDQ_MAX_SIDE, PDQ_MAX_SIDE))
    return str(pdq_from_rgb(np.asarray(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))[0])


def flip_bits(hex_hash: str, bits: list[int]) -> str:
    v = int(hex_hash, 16)
    for b in bits:
        v ^= 1 << b
    return f"{v:064x}"


@pytest.fixture
def toy() -> Iterator[MirrorPDQ]:
    sig = MirrorPDQ()
    register(sig)
    try:
        yield sig
    finally:
        unregister(sig.name)


@pytest.fixture
def photo() -> bytes:
    return jpeg_bytes(photo_like(7))


class InProcessPool:
    """Stands in for the platform's decoding pool: runs the call here (see module docstring)."""

    async def run(self, fn: Any, args: tuple[Any, ...], timeout_s: float) -> Any:
        return fn(*args)

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_registry_names_each_type_once_and_md5_under_two_names() -> None:
    assert [s.name for s in signal_types()] == ["sha256", "md5", "pdq", "vpdq"]
    assert exchange_names() == ["sha256", "md5", "video_md5", "pdq", "vpdq"]
    md5 = signal_type("md5")
    assert isinstance(md5, MD5Signal)
    assert by_exchange_name("video_md5") is md5 and by_exchange_name("md5") is md5
    assert (md5.exchange_name("photo"), md5.exchange_name("video")) == ("md5", "video_md5")
    vpdq = signal_type("vpdq")
    assert vpdq.offered_for("video") and not vpdq.offered_for("photo")
    assert by_exchange_name("photodna") is None
    with pytest.raises(ValueError, match="already registered"):
        register(MD5Signal())


def test_platform_validates_a_registered_type(toy: MirrorPDQ) -> None:
    value = "AB" * 32
    assert canonical("pdq_mirror", value) == "ab" * 32
    with pytest.raises(SignalRejected, match="invalid pdq_mirror"):
        canonical("pdq_mirror", "not hex")
    with pytest.raises(SignalRejected, match="pdq_mirror"):  # offered in the reason
        canonical("photodna", "x")


def test_reclaim_hash_and_protect_list_a_registered_type(
    toy: MirrorPDQ, photo: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        sandbox, "analyze_isolated", lambda data, limits: analyze_bytes(data, limits)
    )
    f = tmp_path / "p.jpg"
    f.write_bytes(photo)
    res = CliRunner().invoke(cli_app, ["hash", str(f), "--json"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.output)
    assert rec["pdq_mirror"] == mirror_pdq(photo) != rec["pdq"]
    assert rec["pdq_mirror_quality"] == rec["pdq_quality"]

    rows = protect_rows(analyze_bytes(photo, MediaLimits()), "2026-01-01T00:00:00Z")
    assert {r["signal_type"]: r["signal"] for r in rows}["pdq_mirror"] == rec["pdq_mirror"]


def test_hash_api_offers_and_matcher_indexes_a_registered_type(
    toy: MirrorPDQ, photo: bytes, tmp_path: Path
) -> None:
    store = SqlitePlatformStore(tmp_path / "platform.db")
    store.migrate()
    try:
        app = create_app(store, Settings(start_workers=False))
        app.state.platform.decoders = InProcessPool()
        c = TestClient(app)
        tid = store.ensure_tenant("a")
        secret = store.create_token(tid, "all", ["hash", "match", "curate"])
        h = {"Authorization": f"Bearer {secret}"}

        hashed = c.post("/h/hash", headers=h, files={"photo": ("p.jpg", photo, "image/jpeg")})
        assert hashed.status_code == 200, hashed.text
        value = hashed.json()["pdq_mirror"]
        assert value == mirror_pdq(photo)

        c.post("/c/banks", headers=h, json={"name": "MIRRORED"})
        added = c.post("/c/bank/MIRRORED/signal", headers=h, json={"pdq_mirror": value.upper()})
        assert added.status_code == 200, added.text
        near = flip_bits(value, [0, 5, 9])  # 3 bits away: found through its own PDQ index
        got = c.get(
            "/m/raw_lookup",
            headers=h,
            params={"signal_type": "pdq_mirror", "signal": near, "include_distance": "true"},
        ).json()
        assert got == {"matches": [{"bank_content_id": added.json()["id"], "distance": "3"}]}
        assert c.get(
            "/m/raw_lookup", headers=h, params={"signal_type": "pdq", "signal": near}
        ).json() == {"matches": []}
        status = c.get("/m/index/status", headers=h).json()
        assert status["pdq_mirror"]["size"] == 1
        looked = c.post("/m/lookup", headers=h, files={"photo": ("p.jpg", photo, "image/jpeg")})
        assert list(looked.json()["pdq_mirror"]) == ["MIRRORED"]
    finally:
        store.close()
