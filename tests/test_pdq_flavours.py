"""PDQ flavours: ``reference`` (Meta's reference hasher, what scans store) and ``pytx``
(python-threatexchange's PdqSignal, what HMA computes), bit for bit; ``reclaim hash`` /
``reclaim protect --pdq-flavour``; a bank of one flavour matching a query of the other."""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from reclaim.cli import app
from reclaim.hashes import PdqHash, PDQSignal, signal_type
from reclaim.hashes.pdq import (
    PDQ_MATCH_DISTANCE,
    PdqFlavour,
    pdq_flavour,
    pdq_flavours_in_worker,
    pdq_for,
)
from reclaim.match.pdq_index import PdqIndex, hashes_from_hex
from reclaim.media import Media, MediaLimits
from reclaim.protect import pdq_flavours, protect_rows
from reclaim.store import ItemRecord

from .conftest import jpeg_bytes, photo_like, shared_data

runner = CliRunner()


def _encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def _tagged(im: Image.Image, orientation: int = 6) -> bytes:
    """A phone-style JPEG: pixels stored turned, EXIF orientation tag to show them upright."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(im.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=90, exif=exif.tobytes())


@functools.cache
def _synthesized() -> dict[str, bytes]:
    """Images in the shapes pytx meets: sizes around and far above 512 px, JPEG/PNG/WebP,
    Pillow modes pytx treats its own way (L, LA, P, RGBA, CMYK), an EXIF-tagged phone photo."""
    big = photo_like(5, (1600, 1000))
    return {
        "small rgb jpeg": jpeg_bytes(photo_like(1, (400, 300))),
        "rgb jpeg 1600": jpeg_bytes(big),
        "rgb png 1200": _encode(photo_like(2, (1200, 900)), "PNG"),
        "webp 3000": _encode(photo_like(3, (3000, 2000)), "WEBP", quality=80),
        "L png": _encode(big.convert("L"), "PNG"),
        "LA png": _encode(big.convert("LA"), "PNG"),
        "P png": _encode(big.convert("P"), "PNG"),
        "RGBA png": _encode(photo_like(4, (900, 700)).convert("RGBA"), "PNG"),
        "CMYK jpeg": _encode(big.convert("CMYK"), "JPEG", quality=90),
        "EXIF-tagged jpeg": _tagged(big),
    }


# -- reference: still Meta's conformance hashes ----------------------------------------------


def _meta_pairs() -> list[tuple[str, str]]:
    base = shared_data("threatexchange", "pdq")
    text = (base / "pdq_test_expected.py.txt").read_text()
    pairs = re.findall(r'SAMPLE_MEDIA \+ "([^"]+)",\s*"([0-9a-f]{64})"', text)
    return [
        (p.replace("misc-images/b.jpg", "reg-test-input/dih/bridge-1-original.jpg"), h)
        for p, h in pairs
    ]


def test_reference_flavour_is_the_registry_default_and_meets_meta_vectors() -> None:
    """The registry's PDQ is the reference flavour; it and ``pdq_for(..., "reference")`` are
    bit-exact with Meta's expected hashes (quality >= 80); the pytx flavour is not (it hashes
    the full-size image), which is why scans keep the reference flavour."""
    registered = signal_type("pdq")
    assert isinstance(registered, PDQSignal) and registered.flavour is PdqFlavour.REFERENCE
    data_dir = shared_data("threatexchange", "pdq", "data")
    pytx_worst = 0
    for rel, expected in _meta_pairs():
        data = (data_dir / rel).read_bytes()
        ref, q = pdq_for(data, "reference")
        via_signal = PDQSignal(flavour="reference").compute(Media(data))
        assert via_signal.value == str(ref)
        if q >= 80:
            assert ref - PdqHash.from_hex(expected) == 0, rel
            pytx_worst = max(pytx_worst, pdq_for(data, "pytx")[0] - PdqHash.from_hex(expected))
    assert pytx_worst > 10


# -- pytx: bit for bit with python-threatexchange ---------------------------------------------


@pytest.mark.parametrize("name", sorted(_synthesized()))
def test_pytx_flavour_equals_pdqsignal_bit_for_bit(name: str) -> None:
    pdq_signal = pytest.importorskip("threatexchange.signal_type.pdq.signal").PdqSignal
    from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_bytes

    data = _synthesized()[name]
    theirs, their_q = pdq_from_bytes(data)
    mine, q = pdq_for(data, "pytx")
    assert str(mine) == theirs and q == their_q
    assert PDQSignal(flavour="pytx").compute(Media(data)).value == theirs
    # What HMA banks: PdqSignal's own entry point (empty under quality 50).
    assert pdq_signal.hash_from_bytes(data) == (theirs if q >= 50 else "")


def test_flavours_differ_where_the_bench_says() -> None:
    """Up to 512 px the two flavours are the same hash; above, the thumbnail moves a few bits;
    an EXIF-tagged photo is upright for reference and as stored for pytx (~128 bits)."""
    s = _synthesized()
    small = [pdq_for(s["small rgb jpeg"], f)[0] for f in ("reference", "pytx")]
    assert small[0] - small[1] == 0
    big = [pdq_for(s["rgb jpeg 1600"], f)[0] for f in ("reference", "pytx")]
    assert 0 < big[0] - big[1] <= PDQ_MATCH_DISTANCE
    upright = jpeg_bytes(photo_like(5, (1600, 1000)))
    tagged = s["EXIF-tagged jpeg"]
    assert pdq_for(tagged, "reference")[0] - pdq_for(upright, "reference")[0] <= 8
    assert pdq_for(tagged, "pytx")[0] - pdq_for(upright, "pytx")[0] > 64


def test_pytx_flavour_hashes_what_pytx_cannot() -> None:
    """32-bit integer and float images make pdqhash (and so pytx) raise; the pytx flavour
    hashes the full-size image as RGB instead of failing."""
    hasher = pytest.importorskip("threatexchange.signal_type.pdq.pdq_hasher")

    im = photo_like(6, (800, 600)).convert("L")
    for mode in ("I", "F"):
        data = _encode(im.convert(mode), "TIFF")
        with pytest.raises(ValueError):
            hasher.pdq_from_bytes(data)
        h, q = pdq_for(data, "pytx")
        assert q >= 50
        assert h - pdq_for(_encode(im, "PNG"), "pytx")[0] <= 4


def test_unknown_flavour_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="reference, pytx"):
        pdq_flavour("meta")
    with pytest.raises(ValueError, match="both, reference, pytx"):
        pdq_flavours("all")
    assert pdq_flavours("both") == (PdqFlavour.REFERENCE, PdqFlavour.PYTX)


def test_worker_entry_point_gives_each_flavour() -> None:
    data = jpeg_bytes(photo_like(7, (1400, 900)))
    got = pdq_flavours_in_worker(data, MediaLimits(), ("pytx", "reference"))
    assert list(got) == ["pytx", "reference"]
    for f, (h, q) in got.items():
        assert (h, q) == (str(pdq_for(data, f)[0]), pdq_for(data, f)[1])


# -- the command line ---------------------------------------------------------------------------


def _hash_json(path: Path, *opts: str) -> dict[str, object]:
    res = runner.invoke(app, ["hash", str(path), "--json", *opts])
    assert res.exit_code == 0, res.output
    rec: dict[str, object] = json.loads(res.output)
    return rec


def test_hash_cli_pdq_flavour(tmp_path: Path) -> None:
    photo = tmp_path / "p.jpg"
    data = jpeg_bytes(photo_like(8, (1500, 1100)))
    photo.write_bytes(data)
    default = _hash_json(photo)
    pytx = _hash_json(photo, "--pdq-flavour", "pytx")
    ref = _hash_json(photo, "--pdq-flavour", "reference")
    assert default == pytx  # the default is python-threatexchange's flavour
    assert pytx["pdq"] == str(pdq_for(data, "pytx")[0]) and pytx["pdq_flavour"] == "pytx"
    assert ref["pdq"] == str(pdq_for(data, "reference")[0]) and ref["pdq_flavour"] == "reference"
    assert ref["pdq"] != pytx["pdq"]
    bad = runner.invoke(app, ["hash", str(photo), "--pdq-flavour", "meta"])
    assert bad.exit_code != 0 and "pytx" in bad.output


def _protect(tmp_path: Path, files: list[Path], *opts: str) -> list[dict[str, str]]:
    out = tmp_path / "hashes.csv"
    res = runner.invoke(app, ["protect", *map(str, files), "--out", str(out), *opts])
    assert res.exit_code == 0, res.output
    return list(csv.DictReader(io.StringIO(out.read_text())))


def test_protect_cli_writes_both_flavours_by_default(tmp_path: Path) -> None:
    big, small = tmp_path / "big.jpg", tmp_path / "small.jpg"
    big_data = jpeg_bytes(photo_like(9, (1600, 1200)))
    big.write_bytes(big_data)
    small.write_bytes(jpeg_bytes(photo_like(10, (480, 360))))
    rows = [r for r in _protect(tmp_path, [big, small]) if r["signal_type"] == "pdq"]
    assert [r["pdq_flavour"] for r in rows] == ["reference", "pytx", "both"]
    assert rows[0]["signal"] == str(pdq_for(big_data, "reference")[0])
    assert rows[1]["signal"] == str(pdq_for(big_data, "pytx")[0])
    only = _protect(tmp_path, [big], "--pdq-flavour", "pytx")
    pdq_rows = [r for r in only if r["signal_type"] == "pdq"]
    assert [(r["signal"], r["pdq_flavour"]) for r in pdq_rows] == [(rows[1]["signal"], "pytx")]
    md5 = [r for r in only if r["signal_type"] == "md5"]
    assert len(md5) == 1 and md5[0]["pdq_flavour"] == ""


def test_protect_rows_without_flavours_keep_the_registrys_hash() -> None:
    """The web page and older callers that pass no flavours get the registry's (reference)
    PDQ, labelled so."""
    item = ItemRecord("s" * 64, "m" * 32, 10, "photo", "jpeg")
    item.signals = [("md5", "m" * 32, None), ("pdq", "ab" * 32, 90)]
    rows = protect_rows(item, "2026-01-01T00:00:00Z")
    assert [(r["signal_type"], r["pdq_flavour"]) for r in rows] == [
        ("md5", ""),
        ("pdq", "reference"),
    ]


# -- a bank of one flavour, a query of the other ----------------------------------------------


def _near_duplicates(im: Image.Image) -> dict[str, bytes]:
    w, h = im.size
    return {
        "jpeg q75": jpeg_bytes(im, 75),
        "resize 0.5x": jpeg_bytes(im.resize((w // 2, h // 2), Image.Resampling.LANCZOS)),
        "fit 1080": jpeg_bytes(im.resize((1080, round(1080 * h / w)), Image.Resampling.LANCZOS)),
    }


def _cross_flavour_distances(original: bytes, upright: Image.Image) -> list[int]:
    """Bank the original in each flavour (a PdqIndex, as the platform's matcher does), look up
    each near-duplicate in the other flavour: the distances found (a miss fails)."""
    found = []
    for bank_f, query_f in (("reference", "pytx"), ("pytx", "reference")):
        bank = PdqIndex(PDQ_MATCH_DISTANCE)
        bank.add(np.array([1]), hashes_from_hex([str(pdq_for(original, bank_f)[0])]))
        for name, variant in _near_duplicates(upright).items():
            q = hashes_from_hex([str(pdq_for(variant, query_f)[0])])[0]
            hits = bank.search_one(q)
            assert [h.id for h in hits] == [1], (bank_f, query_f, name)
            found.append(hits[0].distance)
    return found


def test_bank_of_one_flavour_matches_query_of_the_other_synthetic() -> None:
    im = photo_like(11, (2000, 1500))
    found = _cross_flavour_distances(jpeg_bytes(im, 92), im)
    # bench/pdq_flavours.py: on such edits of photos > 512 px, ~8 bits across flavours.
    assert max(found) <= 20, found


def test_bank_of_one_flavour_matches_query_of_the_other_real_photo() -> None:
    path = shared_data("threatexchange", "pdq", "data", "bridge-mods", "aaa-orig.jpg")
    original = path.read_bytes()
    with Image.open(path) as im:
        upright = ImageOps.exif_transpose(im).convert("RGB")
    found = _cross_flavour_distances(original, upright)
    assert max(found) <= 20, found
    # Meta's own edits of the bridge (blur, contrast, shrink...), banked one way, queried the
    # other: all within the threshold (the bench: 9–9.5 bits on average).
    mods = path.parent
    bank = {f: pdq_for(original, f)[0] for f in ("reference", "pytx")}
    for p in sorted(mods.glob("*.jpg")):
        v = p.read_bytes()
        assert bank["reference"] - pdq_for(v, "pytx")[0] <= PDQ_MATCH_DISTANCE, p.name
        assert bank["pytx"] - pdq_for(v, "reference")[0] <= PDQ_MATCH_DISTANCE, p.name


def test_pytx_flavour_past_the_memory_ceiling_says_what_to_do() -> None:
    """The pytx flavour hashes the full-size image (~26 bytes a pixel): a 30 MP photo passes a
    500 MB worker ceiling where the reference flavour (a 512 px thumbnail) does not. The file
    is refused with the reason and what to do instead; the reference flavour still hashes it."""
    from reclaim.protect import analyze_for_protect

    rng = np.random.default_rng(12)
    small = Image.fromarray(rng.integers(0, 256, (60, 50, 3), dtype=np.uint8))
    data = jpeg_bytes(small.resize((6000, 5000), Image.Resampling.BILINEAR), 80)
    limits = MediaLimits(max_memory_bytes=500 << 20)
    item, pdq = analyze_for_protect(data, limits, "pytx")
    assert item.error is not None and item.error.startswith("MediaTooLarge"), item.error
    assert "--pdq-flavour reference" in item.error and pdq == {}
    item, pdq = analyze_for_protect(data, limits, "reference")
    assert item.error is None and list(pdq) == ["reference"]
