"""Bounded work for every decode: per-frame declared sizes, a budget across frames, and decoding
in a child process with a memory ceiling and a time limit (issue 18, item 2).

The hostile files come from reclaim_fixtures.hostile_media. Decodes that would allocate gigabytes
before the fix run in a child under RLIMIT_AS, so a regression fails the test instead of
eating the machine's memory.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from reclaim import cli
from reclaim.errors import DecodeError, ItemTimeout, MediaTooLarge
from reclaim.media import MediaLimits
from reclaim.media.image import iter_frames
from reclaim.media.sandbox import Sandbox
from reclaim_fixtures import hostile_media as hm

# Address-space ceiling of the child: Python + reclaim.scan map ~300 MB; every bomb below asks
# for at least 1.6 GB.
_CHILD_AS = 1200 << 20

_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
    from reclaim.analysis import analyze_bytes
    from reclaim.media import MediaLimits
    samples = json.loads(sys.stdin.read())
    out = {{}}
    for name, hexdata in samples.items():
        item = analyze_bytes(bytes.fromhex(hexdata), MediaLimits())
        out[name] = item.error
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, from the forking parent (pytest).
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    out["rss_mb"] = int(hwm.split()[1]) // 1024
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def analyzed() -> dict[str, Any]:
    """Each bomb analysed (as a scan, ``hash`` or ``protect`` would) in one capped child."""
    samples = {
        "gif_frame_bomb": hm.gif_frame_bomb(40000),
        "gif_offset_bomb": hm.gif((1, 1), [(0, 0, 1, 1), (65535, 65535, 65535, 65535)]),
        "gif_dispose_bomb": hm.gif_first_frame_dispose_bomb(40000),
        "webp_canvas": hm.webp((16384, 16384), 2),
        "tiff_page_bomb": hm.tiff_pages([(1, 1), (60000, 60000)]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD.format(limit=_CHILD_AS)],
        input=json.dumps({k: v.hex() for k, v in samples.items()}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("gif_frame_bomb", "GIF frame 1"),
        ("gif_offset_bomb", "GIF frame 1"),
        ("gif_dispose_bomb", "GIF frame 0"),
        ("webp_canvas", "WebP canvas"),
        ("tiff_page_bomb", "frame 1"),
    ],
)
def test_declared_frame_size_refused_before_decode(
    analyzed: dict[str, Any], name: str, says: str
) -> None:
    error = analyzed[name]
    assert error is not None and error.startswith("MediaTooLarge: "), error
    assert says in error and "cap" in error
    assert "\n" not in error


def test_bombs_stay_small(analyzed: dict[str, Any]) -> None:
    # Nothing above allocated its canvas: the child's peak is its imports plus a few MB.
    assert analyzed["rss_mb"] < 400


def _tiff(side: int, n: int) -> bytes:
    pages = [Image.new("L", (side, side), i) for i in range(n)]
    buf = io.BytesIO()
    pages[0].save(buf, "TIFF", save_all=True, append_images=pages[1:], compression="tiff_deflate")
    return buf.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(hm.gif_screen_bomb(2000, 10), id="gif"),
        pytest.param(hm.apng((2000, 2000), 10), id="apng"),
        pytest.param(hm.webp((2000, 2000), 10), id="webp"),
        pytest.param(_tiff(2000, 10), id="tiff"),
    ],
)
def test_budget_across_frames_stops_decoding(data: bytes) -> None:
    # 4 MP per frame, a 10 MP budget: the third frame is never decoded.
    limits = MediaLimits(max_total_pixels=10_000_000, video_fps=100.0)
    assert len(list(iter_frames(data, MediaLimits(video_fps=100.0)))) == 10
    assert [i for i, _t, _im in iter_frames(data, limits)] == [0, 1]


def test_frame_count_cap_stops_reading_descriptors() -> None:
    from reclaim.media.bounds import gif_frames

    many = hm.gif((4, 4), [(0, 0, 1, 1)] * 500)
    frames = gif_frames(many, 20)
    assert len(frames.canvases) == 20 and frames.more
    assert len(list(iter_frames(many, MediaLimits(max_frames=20, video_fps=100.0)))) <= 20


# -- decoding in a worker process: memory ceiling, time limit ----------------------------------


def _allocate(n: int) -> int:
    return len(bytearray(n))


def _crash() -> None:
    os.abort()


def test_sandbox_memory_ceiling_then_recovers() -> None:
    box = Sandbox(300 << 20)
    try:
        with pytest.raises(MediaTooLarge, match="memory ceiling"):
            box.call(_allocate, (1 << 30,), 30)
        assert box.call(_allocate, (1 << 20,), 30) == 1 << 20
        with pytest.raises(ItemTimeout, match="2 s limit"):
            box.call(time.sleep, (60,), 2)
        with pytest.raises(DecodeError, match="died"):
            box.call(_crash, (), 30)
        assert box.call(_allocate, (10,), 30) == 10
        assert box.starts == 4  # the first, then one after the MemoryError, timeout and crash
    finally:
        box.close()


def _limits(**kw: Any) -> Callable[[], MediaLimits]:
    return lambda: MediaLimits(**kw)


def test_hash_cli_has_a_time_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: `reclaim hash` decoded this 135-byte GIF (8000² screen, 5 frames) for ~33 s, with
    # no limit at all. Now the worker is stopped at the per-item limit (1 s here).
    bomb = tmp_path / "screen.gif"
    bomb.write_bytes(hm.gif_screen_bomb(8000, 5))
    monkeypatch.setattr(cli, "MediaLimits", _limits(timeout_s=1.0))
    t0 = time.monotonic()
    res = CliRunner().invoke(cli.app, ["hash", str(bomb)])
    assert time.monotonic() - t0 < 15
    assert res.exit_code == 1
    line = " ".join(res.output.split())
    assert f"{bomb}: ItemTimeout: took longer than the 1 s limit" in line, res.output


def test_hash_cli_memory_ceiling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = tmp_path / "screen.gif"
    bomb.write_bytes(hm.gif_screen_bomb(8000, 2))
    monkeypatch.setattr(cli, "MediaLimits", _limits(max_memory_bytes=400 << 20))
    res = CliRunner().invoke(cli.app, ["hash", str(bomb)])
    assert res.exit_code == 1
    line = " ".join(res.output.split())
    assert f"{bomb}: MediaTooLarge" in line, res.output
