"""``check_file`` and the ``reclaim check`` command: verdict, score, signals, nudity, errors."""

from __future__ import annotations

import io
import json
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from reclaim.check_cli import check_cmd
from reclaim.detectors.check import (
    VERDICT_EDITED,
    VERDICT_GENERATED,
    VERDICT_NONE,
)
from reclaim.detectors.check import check_bytes as _check_bytes
from reclaim.detectors.check import check_file as _check_file
from reclaim.errors import DecodeError, InputError, UnsupportedMedia

from .conftest import jpeg_bytes, photo_like
from .test_provenance import (
    created,
    exif_jpeg,
    make_chain,
    manifest,
    png_bytes,
    sd_watermarked,
    sign,
    signed_generated_jpeg,
)


def check_file(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """``check_file``'s record as JSON (what ``reclaim check --json`` prints): these tests pin
    that shape."""
    return _check_file(*args, **kwargs).to_json()


def check_bytes(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """``check_bytes``'s record as JSON, as above."""
    return _check_bytes(*args, **kwargs).to_json()


KEYS = {"path", "verdict", "score", "signals", "summary", "nudity", "checks", "sha256"}


@pytest.fixture(scope="module")
def chain() -> tuple[bytes, bytes]:
    return make_chain()


def write(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


def test_generated_by_c2pa(tmp_path: Path, chain: Any) -> None:
    rec = check_file(write(tmp_path / "g.jpg", signed_generated_jpeg(chain)))
    assert set(rec) >= KEYS
    assert rec["verdict"] == VERDICT_GENERATED and rec["score"] >= 0.95
    s = rec["signals"][0]
    assert s["name"] == "c2pa" and s["score"] == rec["score"]
    assert set(s["evidence"]) == {"fr", "en"}
    assert "IA" in rec["summary"]["fr"] and "AI" in rec["summary"]["en"]
    assert json.loads(json.dumps(rec)) == rec  # plain JSON


def test_edited_by_face_app(tmp_path: Path) -> None:
    rec = check_file(write(tmp_path / "e.jpg", exif_jpeg({0x0131: "FaceApp"})))
    assert rec["verdict"] == VERDICT_EDITED and 0.5 <= rec["score"] < 0.95


def test_no_metadata_is_no_evidence_never_real(tmp_path: Path) -> None:
    rec = check_file(write(tmp_path / "p.jpg", jpeg_bytes(photo_like(1))))
    assert rec["verdict"] == VERDICT_NONE and rec["score"] == 0.0 and rec["signals"] == []
    assert "proves nothing" in rec["summary"]["en"]
    assert "ne prouve rien" in rec["summary"]["fr"]
    assert "not mean the image is real" in rec["summary"]["en"]
    assert rec["checks"]["watermark"] == "checked"


def test_editor_alone_is_a_weak_hint(tmp_path: Path) -> None:
    rec = check_file(write(tmp_path / "ps.jpg", exif_jpeg({0x0131: "Adobe Photoshop 25.0"})))
    assert rec["verdict"] == VERDICT_NONE and 0 < rec["score"] < 0.5
    assert "weak hints" in rec["summary"]["en"]


def test_camera_capture_claim_is_not_a_verdict_of_real(tmp_path: Path, chain: Any) -> None:
    data = sign(jpeg_bytes(photo_like(2)), "image/jpeg", manifest(created("digitalCapture")), chain)
    rec = check_file(write(tmp_path / "c.jpg", data))
    assert rec["verdict"] == VERDICT_NONE and rec["score"] == 0.0
    assert len(rec["signals"]) == 1 and rec["signals"][0]["kind"] == "info"


def test_sd_watermark_png(tmp_path: Path) -> None:
    from reclaim.detectors.provenance import SD_PAYLOADS

    marked = sd_watermarked(np.asarray(photo_like(3, (512, 512))), SD_PAYLOADS[0].bits)
    rec = check_file(write(tmp_path / "sd.png", png_bytes(Image.fromarray(marked))))
    assert rec["verdict"] == VERDICT_GENERATED
    assert [s["name"] for s in rec["signals"]] == ["sd_watermark"]


def test_small_image_says_watermark_not_checked(tmp_path: Path) -> None:
    rec = check_file(write(tmp_path / "s.png", png_bytes(photo_like(4, (200, 150)))))
    assert rec["checks"]["watermark"].startswith("not checked")


def test_nudity_is_separate_from_the_score(tmp_path: Path) -> None:
    p = write(tmp_path / "n.png", png_bytes(photo_like(5, (400, 300))))
    rec = check_file(p)
    assert rec["nudity"]["score"] == 0.0 and rec["nudity"]["model"] == "NudeNet 320n"
    assert rec["nudity"]["width"] == 400
    assert check_file(p, nudity=False)["nudity"] is None


def test_video_with_c2pa_and_sampled_nudity(chain: Any) -> None:
    from .test_video import make_video

    data = sign(
        make_video(size=(96, 64), seconds=3.0),
        "video/mp4",
        manifest(created("trainedAlgorithmicMedia")),
        chain,
    )
    rec = check_bytes(data)
    assert rec["kind"] == "video" and rec["verdict"] == VERDICT_GENERATED
    assert [f["t"] for f in rec["nudity"]["frames"]] == [0.0, 1.0, 2.0]
    assert rec["checks"]["watermark"] == "not checked: videos"


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        check_file(tmp_path / "missing.jpg")
    with pytest.raises(InputError, match="is a folder"):
        check_file(tmp_path)
    with pytest.raises(UnsupportedMedia):
        check_file(write(tmp_path / "t.txt", b"hello, not an image"))
    full = jpeg_bytes(photo_like(6))
    with pytest.raises(DecodeError):
        check_file(write(tmp_path / "trunc.jpg", full[: len(full) // 2]))


def test_corrupt_pixels_keep_metadata_evidence(tmp_path: Path) -> None:
    full = exif_jpeg({0x0131: "FaceApp"})
    rec = check_file(write(tmp_path / "t.jpg", full[: len(full) * 2 // 3]))
    assert rec["verdict"] == VERDICT_EDITED
    assert "error" in rec and rec["checks"]["watermark"].startswith("not checked")
    assert rec["nudity"] is None


def test_twenty_megapixels_within_time_and_memory(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (456, 684, 3), dtype=np.uint8)
    im = Image.fromarray(small).resize((5472, 3648), Image.Resampling.BILINEAR)  # 20 MP
    b = io.BytesIO()
    im.save(b, "JPEG", quality=85)
    p = write(tmp_path / "big.jpg", b.getvalue())
    del im
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.monotonic()
    rec = check_file(p)
    took = time.monotonic() - t
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert rec["verdict"] == VERDICT_NONE and rec["checks"]["watermark"] == "checked"
    assert rec["nudity"]["width"] == 5472
    assert took < 20, took
    assert grown_mb < 1500, grown_mb


# --- the command ------------------------------------------------------------------------------

app = typer.Typer(pretty_exceptions_enable=False)
app.command("check")(check_cmd)


@app.command("other")
def _other() -> None:  # a second command so that "check" stays a subcommand
    pass


runner = CliRunner()


def test_cli_json_and_languages(tmp_path: Path, chain: Any) -> None:
    g = write(tmp_path / "g.jpg", signed_generated_jpeg(chain))
    p = write(tmp_path / "p.jpg", jpeg_bytes(photo_like(7)))
    r = runner.invoke(app, ["check", str(g), str(p), "--json", "--no-nudity", "--provenance-only"])
    assert r.exit_code == 0, r.output
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["path"] for x in recs] == [str(g), str(p)]
    assert [x["verdict"] for x in recs] == [VERDICT_GENERATED, VERDICT_NONE]
    r = runner.invoke(app, ["check", str(g), str(p), "--lang", "fr", "--provenance-only"])
    assert r.exit_code == 0, r.output
    assert "GÉNÉRÉE" in r.stdout and "aucun élément de provenance" in r.stdout
    assert "ne prouve rien" in r.stdout and "nudité" in r.stdout
    r = runner.invoke(app, ["check", str(g)])
    assert "GENERATED" in r.stdout and "untrusted certificate" in r.stdout


def test_cli_bad_files_one_line_each(tmp_path: Path) -> None:
    good = write(tmp_path / "p.jpg", jpeg_bytes(photo_like(8)))
    bad = write(tmp_path / "t.txt", b"hello")
    r = runner.invoke(app, ["check", str(tmp_path / "nope.jpg"), str(bad), str(good), "--json"])
    assert r.exit_code == 1
    assert len(r.stdout.splitlines()) == 1 and json.loads(r.stdout)["path"] == str(good)
    errs = r.stderr.strip().splitlines()
    assert len(errs) == 2 and all(e.startswith("error:") for e in errs)
    assert "Traceback" not in r.output
    r = runner.invoke(app, ["check", str(good), "--lang", "de"])
    assert r.exit_code == 2


def test_check_cli_error_lines_name_the_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "cut.jpg"
    data = jpeg_bytes(photo_like(2))
    bad.write_bytes(data[: len(data) // 2])
    p = subprocess.run(
        [sys.executable, "-m", "reclaim.cli", "check", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert f"{bad}:" in p.stderr and "truncated" in p.stderr
