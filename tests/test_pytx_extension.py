"""reclaim's python-threatexchange extension (issue 23): its manifest, its signal types against
reclaim's own, its exchange against a served reclaim, and the round trip a partner makes with
pytx's own CLI: a bank in reclaim → ``threatexchange fetch`` → ``threatexchange match``.

pytx's CLI runs in this process (its ``inner_main``, the entry point its own tests use) with its
state directory in tmp_path; the token is in ``RECLAIM_API_TOKEN`` as a user would give it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from PIL import Image, ImageEnhance
from threatexchange.cli.main import inner_main
from threatexchange.exchanges.auth import SignalExchangeAPIInvalidAuthException
from threatexchange.extensions.manifest import ThreatExchangeExtensionManifest
from threatexchange.signal_type.pdq.signal import PdqSignal

from reclaim.hashes import PdqHash
from reclaim.hashes.vpdq import VPDQSignal as ReclaimVPDQ
from reclaim.hashes.vpdq import frames_to_json, parse_vpdq, vpdq_frames
from reclaim.platform.store import PlatformStore
from reclaim.pytx import (
    FileMD5Signal,
    FileSHA256Signal,
    ReclaimCollabConfig,
    ReclaimSignalExchangeAPI,
    ReclaimVPDQSignal,
)
from tests.conftest import jpeg_bytes, photo_like
from tests.test_api_platform import make_store
from tests.test_exchanges import Served


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PlatformStore]:
    yield from make_store(request.param, tmp_path)


def video(path: Path, seed: int, seconds: int = 4, quality_shift: int = 0) -> Path:
    """A textured 128x128 video (its frames have PDQ quality well above 50)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(16, 16, 3)).astype(np.float32)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 128
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 400_000 - quality_shift
        for i in range(seconds * 10):
            arr = np.kron(np.roll(base, i // 10, axis=1), np.ones((8, 8, 1), dtype=np.float32))
            frame = av.VideoFrame.from_ndarray(np.clip(arr, 0, 255).astype(np.uint8), "rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def tx(state: Path, *args: str) -> str:
    """Run pytx's CLI (``threatexchange ARGS``) with its state in ``state``; its stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        inner_main(list(args), state_dir=state)
    return out.getvalue()


# -- the extension on its own --------------------------------------------------------------------


def test_manifest_loads_and_adds_what_pytx_lacks() -> None:
    manifest = ThreatExchangeExtensionManifest.load_from_module_name("reclaim.pytx")
    assert [s.get_name() for s in manifest.signal_types] == ["md5", "sha256", "vpdq"]
    assert [a.get_name() for a in manifest.apis] == ["reclaim"]
    from threatexchange.cli.main import _DEFAULT_SIGNAL_TYPES

    pytx_names = {s.get_name() for s in _DEFAULT_SIGNAL_TYPES}
    assert not pytx_names & {s.get_name() for s in manifest.signal_types}


def test_signal_types_agree_with_reclaim(tmp_path: Path) -> None:
    data = jpeg_bytes(photo_like(3))
    f = tmp_path / "p.jpg"
    f.write_bytes(data)
    assert FileMD5Signal.hash_from_file(f) == hashlib.md5(data).hexdigest()
    assert FileSHA256Signal.hash_from_file(f) == hashlib.sha256(data).hexdigest()
    assert FileMD5Signal.validate_signal_str(" AB" * 1 + "c" * 30) == "ab" + "c" * 30
    with pytest.raises(ValueError):
        FileSHA256Signal.validate_signal_str("xyz")
    # vPDQ: the extension's text is pytx's compact form of reclaim's frames, both ways
    clip = video(tmp_path / "a.mp4", 1)
    compact = ReclaimVPDQSignal.hash_from_file(clip)
    frames = vpdq_frames(clip)
    assert len(json.loads(compact)) == len(frames) >= 3
    # reclaim reads it as its own (the compact form numbers frames by position, no more)
    read = parse_vpdq(ReclaimVPDQ.validate(compact))
    assert [(f.hash, f.quality, f.timestamp) for f in read] == [
        (f.hash, f.quality, f.timestamp) for f in frames
    ]
    assert ReclaimVPDQSignal.validate_signal_str(frames_to_json(frames)) == compact
    same = ReclaimVPDQSignal.hash_from_file(video(tmp_path / "b.mp4", 1, quality_shift=250_000))
    other = ReclaimVPDQSignal.hash_from_file(video(tmp_path / "c.mp4", 2))
    assert ReclaimVPDQSignal.compare_hash(compact, same).match
    assert not ReclaimVPDQSignal.compare_hash(compact, other).match
    with pytest.raises(ValueError):
        ReclaimVPDQSignal.validate_signal_str('["nope"]')


def test_exchange_pages_resumes_and_reports_a_bad_token() -> None:
    feed = [
        {"seq": 3, "content_id": 1, "op": "add", "signals": {"pdq": "ab" * 32, "url": "x"}},
        {"seq": 4, "content_id": 2, "op": "add", "signals": {"md5": "cd" * 16}},
        {"seq": 7, "content_id": 1, "op": "del"},
    ]

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] != "Bearer good":
            return httpx.Response(401, json={"message": "invalid or revoked API token"})
        after = int(request.url.params["after"])
        assert request.url.path == "/c/bank/NCII/feed"
        rest = [e for e in feed if e["seq"] > after][:2]
        nxt = rest[-1]["seq"] if rest else after
        return httpx.Response(
            200, json={"updates": rest, "next": nxt, "at": 100 + nxt, "has_more": len(rest) == 2}
        )

    client = httpx.Client(transport=httpx.MockTransport(answer))
    collab = ReclaimCollabConfig(name="P", url="https://reclaim.example.org/", bank="NCII")
    api = ReclaimSignalExchangeAPI(collab, "good", client=client)
    deltas = list(api.fetch_iter([], None))
    assert [d.checkpoint.seq for d in deltas] == [4, 7]
    assert [d.checkpoint.get_progress_timestamp() for d in deltas] == [104, 107]
    assert deltas[0].updates[1].signals == {"pdq": "ab" * 32, "url": "x"}  # type: ignore[union-attr]
    assert deltas[1].updates == {1: None}
    merged: dict[int, object] = {}
    for d in deltas:
        ReclaimSignalExchangeAPI.naive_fetch_merge(merged, d.updates)  # type: ignore[arg-type]
    by_type = ReclaimSignalExchangeAPI.naive_convert_to_signal_type(
        [PdqSignal, FileMD5Signal],
        collab,
        merged,  # type: ignore[arg-type]
    )
    assert by_type == {FileMD5Signal: {"cd" * 16: by_type[FileMD5Signal]["cd" * 16]}}
    assert str(by_type[FileMD5Signal]["cd" * 16]) == "POSITIVE_CLASS NCII"
    # resumed from a checkpoint: asks only after it
    resumed = list(api.fetch_iter([], deltas[-1].checkpoint))
    assert len(resumed) == 1 and resumed[0].updates == {} and resumed[0].checkpoint.seq == 7
    bad = ReclaimSignalExchangeAPI(collab, "stolen", client=client)
    with pytest.raises(SignalExchangeAPIInvalidAuthException) as e:
        list(bad.fetch_iter([], None))
    assert "invalid or revoked" in e.value.message


# -- the round trip -----------------------------------------------------------------------------


def near_duplicate(im: Image.Image) -> bytes:
    """As a photo gets re-shared: resized to 90%, 8% brighter, recompressed at quality 70."""
    w, h = im.size
    small = im.resize((w * 9 // 10, h * 9 // 10), Image.Resampling.LANCZOS)
    return jpeg_bytes(ImageEnhance.Brightness(small).enhance(1.08), 70)


def test_round_trip_reclaim_bank_to_threatexchange_fetch_and_match(
    store: PlatformStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three photos banked (pytx 1.2.17's PDQ index, faiss's IndexBinaryMultiHash, finds nothing
    once saved to disk when it holds a single hash: a bank of one photo would hide the round
    trip, so the bank keeps two or more PDQ hashes throughout)."""
    originals = [photo_like(seed, (800, 600)) for seed in (11, 13, 17)]
    banked = [jpeg_bytes(im, 92) for im in originals]
    files = tmp_path / "files"
    files.mkdir()
    for i, (im, data) in enumerate(zip(originals, banked, strict=True)):
        (files / f"banked{i}.jpg").write_bytes(data)
        (files / f"near{i}.jpg").write_bytes(near_duplicate(im))
    (files / "other.jpg").write_bytes(jpeg_bytes(photo_like(12, (800, 600)), 92))
    clip = video(tmp_path / "clip.mp4", 5)

    served = Served(store)
    try:
        tid = store.ensure_tenant("victim-support")
        curate = {"Authorization": "Bearer " + store.create_token(tid, "c", ["curate"])}
        fetch_token = store.create_token(tid, "partner", ["fetch"])
        items, banked_pdq = [], []
        with httpx.Client(base_url=served.url, headers=curate, timeout=60) as c:
            assert c.post("/c/banks", json={"name": "NCII"}).status_code == 201
            for i, data in enumerate(banked):
                r = c.post(
                    "/c/bank/NCII/content", files={"photo": (f"b{i}.jpg", data, "image/jpeg")}
                )
                assert r.status_code == 200, r.text
                items.append(r.json()["id"])
                banked_pdq.append(r.json()["signals"]["pdq"])
            r = c.post(
                "/c/bank/NCII/signal",
                json={
                    "md5": hashlib.md5(banked[0]).hexdigest(),
                    "sha256": hashlib.sha256(banked[0]).hexdigest(),
                    "vpdq": frames_to_json(vpdq_frames(clip)),
                },
            )
            assert r.status_code == 200, r.text

        state = tmp_path / "tx-state"
        monkeypatch.setenv("RECLAIM_API_TOKEN", fetch_token)
        tx(state, "config", "extensions", "add", "reclaim.pytx")
        tx(
            state,
            "config", "collab", "edit", "reclaim", "PARTNER", "--create",
            "--url", served.url, "--bank", "NCII",
        )  # fmt: skip
        assert "reclaim PARTNER" in tx(state, "config", "collab", "list")
        tx(state, "fetch")

        def pdq_match(name: str) -> int | None:
            """The PDQ distance pytx's matcher reports for a file, or None (no match)."""
            lines = tx(state, "match", "photo", str(files / name)).splitlines()
            found = [ln for ln in lines if ln.startswith("pdq ")]
            assert len(found) <= 1, lines
            if not found:
                return None
            assert found[0].endswith("(PARTNER) POSITIVE_CLASS NCII"), found
            return int(found[0].split()[1])

        # each near-duplicate: found on PDQ, at the distance between pytx's hash of it and
        # reclaim's of the banked photo, within Meta's 31 bits
        for i in range(3):
            query = PdqHash.from_hex(PdqSignal.hash_from_file(files / f"near{i}.jpg"))
            expected = query - PdqHash.from_hex(banked_pdq[i])
            assert expected <= 31 and pdq_match(f"near{i}.jpg") == expected, i
        assert pdq_match("other.jpg") is None
        # the banked file itself: also on reclaim's md5 and sha256 (the extension's types)
        got = tx(state, "match", "photo", str(files / "banked0.jpg"))
        assert sorted(ln.split()[0] for ln in got.splitlines()) == ["md5", "pdq", "sha256"], got
        # the video: on vPDQ, with reclaim's hasher and Meta's rule, in pytx's matcher
        got = tx(state, "match", "video", str(clip))
        assert got.startswith("vpdq 100%,100% (PARTNER) POSITIVE_CLASS NCII"), got

        # the bank's owner removes one photo: the next fetch removes it on the partner's side
        with httpx.Client(base_url=served.url, headers=curate, timeout=60) as c:
            assert c.delete(f"/c/bank/NCII/content/{items[0]}").status_code == 200
        tx(state, "fetch")
        assert pdq_match("near0.jpg") is None
        assert pdq_match("near1.jpg") is not None and pdq_match("near2.jpg") is not None
    finally:
        served.close()
