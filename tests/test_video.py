"""Video decoding (PyAV) and the vPDQ signal on videos synthesised by the tests themselves."""

from __future__ import annotations

import io
import json
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from reclaim.errors import DecodeError, MediaTooLarge, UnsupportedMedia
from reclaim.hashes import VPDQSignal
from reclaim.hashes.pdq import PdqHash
from reclaim.hashes.vpdq import (
    VpdqFrame,
    frames_from_json,
    frames_to_json,
    match_videos,
    parse_meta_lines,
    to_meta_lines,
    vpdq_frames,
)
from reclaim.media import Media
from reclaim.media.limits import MediaLimits
from reclaim.media.video import iter_video_frames, probe_video

from .conftest import photo_like

# --- fixtures: synthetic videos -------------------------------------------------------------


def texture(seed: int, w: int, h: int) -> np.ndarray:
    """A photo-like texture twice the frame size (PDQ needs features to reach quality)."""
    return np.asarray(photo_like(seed, (2 * w, 2 * h)))


def pattern_frame(tex: np.ndarray, i: int, w: int, h: int) -> np.ndarray:
    """Frame ``i``: a window moving over the texture, plus a moving gradient bar."""
    ox, oy = (3 * i) % w, (2 * i) % h
    a = tex[oy : oy + h, ox : ox + w].astype(np.int16)
    x = np.arange(w)
    bar = np.abs(((x + 4 * i) % w) - w // 2) < w // 10
    a[:, bar] = a[:, bar] // 3 + 160
    return np.clip(a, 0, 255).astype(np.uint8)


def make_video(
    fmt: str = "mp4",
    codec: str = "libx264",
    size: tuple[int, int] = (64, 48),
    fps: int | Fraction = 10,
    seconds: float = 5.5,
    seed: int = 1,
    *,
    rotation: int = 0,
    faststart: bool = False,
    source: list[np.ndarray] | None = None,
) -> bytes:
    """Encode a small video in memory; ``source`` gives the frames, else the moving pattern."""
    w, h = size
    n = round(seconds * fps)
    tex = texture(seed, w, h)
    frames = source if source is not None else [pattern_frame(tex, i, w, h) for i in range(n)]
    if not faststart:
        buf = io.BytesIO()
        _encode(buf, fmt, codec, fps, frames, rotation, {})
        return buf.getvalue()
    # faststart (index before the data, as phones and Telegram write) needs a seekable file.
    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / f"v.{fmt}"
        _encode(str(target), fmt, codec, fps, frames, rotation, {"movflags": "faststart"})
        return target.read_bytes()


def _encode(
    target: Any,
    fmt: str,
    codec: str,
    fps: int | Fraction,
    frames: list[np.ndarray],
    rotation: int,
    opts: dict[str, str],
) -> None:
    out = av.open(target, "w", format=fmt, options=opts)
    st = out.add_stream(codec, rate=fps)
    st.width, st.height = frames[0].shape[1], frames[0].shape[0]
    st.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"  # mjpeg: full-range yuv
    if codec in ("libx264", "libvpx-vp9"):
        st.options = {"crf": "18"} if codec == "libx264" else {"crf": "20", "b": "0"}
    if codec in ("mpeg4", "libvpx", "mjpeg"):
        st.bit_rate = 2_000_000
    if rotation:
        st.set_display_rotation(rotation)
    for i, a in enumerate(frames):
        f = av.VideoFrame.from_ndarray(a, format="rgb24")
        f.pts = i
        f.time_base = Fraction(1, fps)
        for p in st.encode(f):
            out.mux(p)
    for p in st.encode(None):
        out.mux(p)
    out.close()


@pytest.fixture(scope="module")
def mp4() -> bytes:
    return make_video()


def source_frames(seed: int, size: tuple[int, int], n: int) -> list[np.ndarray]:
    tex = texture(seed, *size)
    return [pattern_frame(tex, i, *size) for i in range(n)]


# --- probing and sampling -------------------------------------------------------------------


def test_probe_reads_container_facts(mp4: bytes) -> None:
    info = probe_video(mp4, MediaLimits())
    assert (info.width, info.height) == (64, 48)
    assert info.codec == "h264"
    assert info.fps == pytest.approx(10)
    assert info.duration_s == pytest.approx(5.5, abs=0.15)
    assert info.n_frames == 55
    assert info.rotation == 0
    assert "mp4" in info.container


def test_one_frame_per_second_with_timestamps(mp4: bytes) -> None:
    frames = list(iter_video_frames(mp4, MediaLimits()))
    assert [f.frame_number for f in frames] == [0, 10, 20, 30, 40, 50]
    assert [f.timestamp_s for f in frames] == pytest.approx([0, 1, 2, 3, 4, 5], abs=1e-6)
    for f in frames:
        assert f.rgb.shape == (48, 64, 3) and f.rgb.dtype == np.uint8


def test_every_frame_and_custom_rate(mp4: bytes) -> None:
    every = list(iter_video_frames(mp4, MediaLimits(), every_frame=True))
    assert [f.frame_number for f in every] == list(range(55))
    assert np.diff([f.timestamp_s for f in every]) == pytest.approx(np.full(54, 0.1))
    two_per_s = list(iter_video_frames(mp4, MediaLimits(video_fps=2.0)))
    assert [f.frame_number for f in two_per_s] == list(range(0, 55, 5))


def test_path_input_gives_same_frames(mp4: bytes, tmp_path: Path) -> None:
    p = tmp_path / "clip.mp4"
    p.write_bytes(mp4)
    a = list(iter_video_frames(mp4, MediaLimits()))
    b = list(iter_video_frames(p, MediaLimits()))
    assert [f.frame_number for f in a] == [f.frame_number for f in b]
    assert all(np.array_equal(x.rgb, y.rgb) for x, y in zip(a, b, strict=True))
    assert probe_video(p).n_frames == 55


CONTAINERS = [
    ("mp4", "libx264", "h264"),
    ("mp4", "mpeg4", "mpeg4"),
    ("webm", "libvpx", "vp8"),
    ("webm", "libvpx-vp9", "vp9"),
    ("matroska", "libx264", "h264"),
    ("mov", "libx264", "h264"),
    ("mov", "mjpeg", "mjpeg"),
]


@pytest.mark.parametrize(("fmt", "codec", "name"), CONTAINERS)
def test_containers_decode_to_the_source_frames(fmt: str, codec: str, name: str) -> None:
    size = (96, 64)
    src = source_frames(3, size, 40)  # 4 s at 10 fps
    data = make_video(fmt, codec, size=size, fps=10, source=src)
    assert probe_video(data).codec == name
    frames = list(iter_video_frames(data, MediaLimits()))
    assert [f.frame_number for f in frames] == [0, 10, 20, 30]
    assert [f.timestamp_s for f in frames] == pytest.approx([0, 1, 2, 3], abs=1e-3)
    for f in frames:
        # The decoded frame is the source frame of that number (colours survive yuv↔rgb), and
        # clearly not its neighbour 5 frames on (the pattern moves 15 px by then).
        err = np.abs(f.rgb.astype(int) - src[f.frame_number]).mean()
        other = np.abs(f.rgb.astype(int) - src[(f.frame_number + 5) % 40]).mean()
        assert err < 8, (name, f.frame_number, err)
        assert other > 2 * err


def test_duration_cap_stops_decoding_early() -> None:
    # A 5 s mkv whose data is cut off after ~3.5 s: decoding it through raises, so a capped
    # decode that ends cleanly proves decoding stopped at the cap instead of reading on.
    data = make_video("matroska", "libx264", seconds=5.0)
    cut = data[: int(len(data) * 0.7)]
    with pytest.raises(DecodeError):
        list(iter_video_frames(cut, MediaLimits(), every_frame=True))
    frames = list(iter_video_frames(cut, MediaLimits(video_max_seconds=2)))
    assert [f.timestamp_s for f in frames] == pytest.approx([0.0, 1.0])
    every = list(iter_video_frames(cut, MediaLimits(video_max_seconds=2), every_frame=True))
    assert len(every) == 20 and every[-1].timestamp_s < 2


def test_ten_hour_video_is_sampled_only_up_to_the_cap() -> None:
    # 10 hours at one frame a minute (600 frames), cut in half: decoding stays in the first
    # 10 minutes (the default cap), never reaching the damage, and takes no time.
    tex = texture(4, 64, 48)
    src = [pattern_frame(tex, i, 64, 48) for i in range(600)]
    long = make_video("matroska", "libx264", fps=Fraction(1, 60), source=src)
    info = probe_video(long)
    assert info.duration_s == pytest.approx(36_000, rel=0.01)
    frames = list(iter_video_frames(long[: len(long) // 2], MediaLimits()))
    assert [f.timestamp_s for f in frames] == pytest.approx([60.0 * i for i in range(10)])
    assert [f.frame_number for f in frames] == list(range(10))


def test_sparse_video_is_not_mistaken_for_a_truncated_one() -> None:
    # A slideshow-like video: 3 frames, 100 s each. Ends where it declares: no error.
    frame = pattern_frame(texture(2, 64, 48), 0, 64, 48)
    for fmt in ("mp4", "matroska"):
        data = make_video(fmt, "libx264", fps=Fraction(1, 100), source=[frame] * 3)
        frames = list(iter_video_frames(data, MediaLimits()))
        assert [f.timestamp_s for f in frames] == pytest.approx([0, 100, 200])


def test_max_frames_caps_frames_yielded(mp4: bytes) -> None:
    frames = list(iter_video_frames(mp4, MediaLimits(max_frames=5), every_frame=True))
    assert [f.frame_number for f in frames] == [0, 1, 2, 3, 4]


def test_pixel_cap_refuses_large_frames(mp4: bytes) -> None:
    limits = MediaLimits(max_pixels=64 * 48 - 1)
    with pytest.raises(MediaTooLarge, match="64x48"):
        probe_video(mp4, limits)
    with pytest.raises(MediaTooLarge):
        list(iter_video_frames(mp4, limits))


# --- damaged and foreign input --------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["mp4", "matroska"])
def test_truncated_video_yields_what_it_can_then_decode_error(fmt: str) -> None:
    data = make_video(fmt, "libx264", seconds=5.0, faststart=True)
    cut = data[: int(len(data) * 0.6)]
    got = []
    with pytest.raises(DecodeError, match="truncated") as ei:
        for f in iter_video_frames(cut, MediaLimits(), every_frame=True):
            got.append(f.frame_number)
    assert "\n" not in str(ei.value)
    assert 10 <= len(got) < 50 and got == list(range(len(got)))
    # vPDQ: strict by default, the frames before the damage on request.
    with pytest.raises(DecodeError):
        vpdq_frames(cut, MediaLimits())
    partial = vpdq_frames(cut, MediaLimits(), partial_ok=True)
    assert [f.frame for f in partial] == list(range(0, 10 * len(partial), 10))
    assert 1 <= len(partial) < 5


def test_mp4_without_index_is_a_decode_error() -> None:
    data = make_video("mp4", "libx264", seconds=3.0)  # moov written last: cut loses the index
    with pytest.raises(DecodeError, match="mp4"):
        list(iter_video_frames(data[: len(data) // 2], MediaLimits()))
    with pytest.raises(DecodeError):
        probe_video(data[: len(data) // 2])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00" * 100,
        bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)),
        b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
        b"ffconcat version 1.0\nfile /etc/passwd\n",
    ],
    ids=["empty", "zeros", "random", "hls-playlist", "concat-list"],
)
def test_foreign_bytes_are_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedMedia):
        probe_video(data)
    with pytest.raises(UnsupportedMedia):
        list(iter_video_frames(data, MediaLimits()))


def test_garbage_with_a_video_header_is_a_decode_error() -> None:
    head = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    rng = np.random.default_rng(1)
    data = head + bytes(rng.integers(0, 256, 4000, dtype=np.uint8))
    with pytest.raises(DecodeError, match="corrupt"):
        list(iter_video_frames(data, MediaLimits()))


def test_audio_only_file_has_no_video_stream() -> None:
    buf = io.BytesIO()
    out = av.open(buf, "w", format="mp4")
    st = out.add_stream("aac", rate=16000)
    samples = np.zeros((1, 1024 * 10), dtype=np.float32)
    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
    frame.sample_rate = 16000
    for p in st.encode(frame):
        out.mux(p)
    for p in st.encode(None):
        out.mux(p)
    out.close()
    with pytest.raises(UnsupportedMedia, match="no video stream"):
        probe_video(buf.getvalue())


# --- rotation, round videos, Media ----------------------------------------------------------


def test_display_rotation_is_applied_only_on_request() -> None:
    w, h = 64, 32
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 4] = 255  # white band on the coded frame's left edge
    data = make_video(source=[a] * 10, size=(w, h), rotation=90)
    assert probe_video(data).rotation == 90
    coded = next(iter_video_frames(data, MediaLimits(), rotate=False)).rgb
    upright = next(iter_video_frames(data, MediaLimits())).rgb
    assert coded.shape == (h, w, 3)
    assert upright.shape == (w, h, 3)
    # 90° counterclockwise: the left edge becomes the bottom edge.
    assert upright[-w // 8 :].mean() > 200 and upright[: w // 2].mean() < 30


def test_round_video_message_square_mp4() -> None:
    # Telegram "video messages" are square H.264 mp4s (e.g. 240x240 or 384x384).
    data = make_video(size=(240, 240), fps=30, seconds=2.0, faststart=True)
    media = Media(data)
    assert media.kind == "video"
    v = VPDQSignal().compute(media)
    assert v is not None
    recs = json.loads(v.value)
    assert [r["frame"] for r in recs] == [0, 30]
    assert media.info["width"] == media.info["height"] == 240
    assert media.info["duration_s"] == pytest.approx(2.0, abs=0.1)
    assert all(f.rgb.shape == (240, 240, 3) for f in media.frames())


def test_media_frames_for_still_and_animated_images() -> None:
    still = io.BytesIO()
    Image.fromarray(texture(5, 64, 64)).save(still, "PNG")
    assert list(Media(still.getvalue()).frames()) == []
    assert VPDQSignal().compute(Media(still.getvalue())) is None


def test_animated_gif_gives_vpdq_records() -> None:
    size = (96, 64)
    src = source_frames(7, size, 30)
    buf = io.BytesIO()
    ims = [Image.fromarray(a) for a in src]
    ims[0].save(buf, "GIF", save_all=True, append_images=ims[1:], duration=200, loop=0)
    media = Media(buf.getvalue())
    assert media.kind == "photo"
    v = VPDQSignal().compute(media)
    assert v is not None
    frames = frames_from_json(v.value)
    # 30 frames of 0.2 s = 6 s of animation, one frame per second.
    assert [f.frame for f in frames] == [0, 5, 10, 15, 20, 25]
    assert [f.timestamp for f in frames] == pytest.approx([0, 1, 2, 3, 4, 5])
    assert v.quality == round(sum(f.quality for f in frames) / len(frames))
    # Each record hashes its own frame: the frame-10 record is closer to source frame 10's
    # hash than to frame 0's.
    from reclaim.hashes.pdq import pdq_from_rgb

    h10 = pdq_from_rgb(np.asarray(ims[10].convert("RGB")))[0]
    h0 = pdq_from_rgb(np.asarray(ims[0].convert("RGB")))[0]
    assert frames[2].hash - h10 < frames[2].hash - h0


# --- vPDQ matching --------------------------------------------------------------------------


def test_reencoded_copy_matches_and_unrelated_video_does_not() -> None:
    size = (160, 120)
    original = make_video("mp4", "libx264", size=size, fps=10, seconds=8, seed=11)
    # The copy: decoded, downscaled, re-encoded with another codec at another frame rate.
    frames = [
        np.asarray(Image.fromarray(f.rgb).resize((112, 84), Image.Resampling.BILINEAR))
        for f in iter_video_frames(original, MediaLimits(), every_frame=True)
    ][::2]
    copy = make_video("webm", "libvpx", size=(112, 84), fps=5, source=frames)
    unrelated = make_video("mp4", "libx264", size=size, fps=10, seconds=8, seed=12)

    a = vpdq_frames(original, MediaLimits())
    b = vpdq_frames(copy, MediaLimits())
    c = vpdq_frames(unrelated, MediaLimits())
    assert len(a) == len(b) == len(c) == 8
    assert min(f.quality for f in a + b + c) >= 50  # the fixture really is hashable
    m = match_videos(b, a)
    assert m.is_match() and m.query_match_percent == m.compared_match_percent == 100
    n = match_videos(c, a)
    assert not n.is_match() and n.query_match_percent < 20

    sig = VPDQSignal()
    va, vb, vc = (frames_to_json(x) for x in (a, b, c))
    assert sig.compare(vb, va).match and sig.compare(vb, va).distance == 0
    assert not sig.compare(vc, va).match and sig.compare(vc, va).distance > 80


def _h(bits: list[int]) -> PdqHash:
    """A hash with the given bit positions set (bit 0 = most significant)."""
    v = np.zeros(256, np.uint8)
    v[bits] = 1
    return PdqHash.from_bit_vector(v)


def test_match_rules_quality_filter_distance_and_dedupe() -> None:
    base = list(range(0, 256, 2))  # 128 bits set
    q = [
        VpdqFrame(0, 90, _h(base), 0.0),
        VpdqFrame(1, 90, _h(base), 1.0),  # duplicate hash: counted once
        VpdqFrame(2, 90, _h(list(range(1, 256, 2))), 2.0),  # far from everything
        VpdqFrame(3, 10, _h([]), 3.0),  # low quality: ignored
    ]
    t = [
        VpdqFrame(0, 80, _h(base[31:]), 0.0),  # exactly 31 bits from q0: matches (≤)
        VpdqFrame(1, 80, _h(base[32:]), 1.0),  # 32 bits: does not
        VpdqFrame(2, 49, _h(base), 2.0),  # quality 49 < 50: ignored
    ]
    m = match_videos(q, t)
    assert m.query_match_percent == pytest.approx(50.0)  # 1 of 2 unique good query hashes
    assert m.compared_match_percent == pytest.approx(50.0)  # 1 of 2 good target frames
    assert match_videos(q, t, distance=32).compared_match_percent == 100
    # Without the quality filter the empty hash and t2 count: t2 equals q0.
    m0 = match_videos(q, t, quality=0)
    assert m0.query_match_percent == pytest.approx(100 / 3)
    assert m0.compared_match_percent == pytest.approx(200 / 3)
    assert match_videos([], t) == match_videos(q[3:], t)
    assert match_videos([], t).query_match_percent == 0


def test_meta_text_format_round_trip() -> None:
    line = "12,87,e271017837246aaccddea259648fb7d62f435c89d9e99b2497763e216c8d055c,0.400\n"
    frames = parse_meta_lines(line + "\n")
    assert frames == [
        VpdqFrame(
            12,
            87,
            PdqHash.from_hex("e271017837246aaccddea259648fb7d62f435c89d9e99b2497763e216c8d055c"),
            0.4,
        )
    ]
    assert to_meta_lines(frames) == line
    assert to_meta_lines([VpdqFrame(0, 100, frames[0].hash, 1 / 3)]).endswith(",0.333\n")
    for bad in ["1,2,3", "x,50,00,0.0", "1,101," + "0" * 64 + ",0.0", "1,50," + "g" * 64 + ",1"]:
        with pytest.raises(ValueError):
            parse_meta_lines(bad)


def test_signal_json_value_and_validation() -> None:
    h = PdqHash.from_hex("ff" * 32)
    frames = [VpdqFrame(0, 100, h, 0.0), VpdqFrame(30, 77, h, 1.0001)]
    text = frames_to_json(frames)
    assert json.loads(text) == [
        {"frame": 0, "quality": 100, "hash": "ff" * 32, "timestamp": 0.0},
        {"frame": 30, "quality": 77, "hash": "ff" * 32, "timestamp": 1.0},
    ]
    assert VPDQSignal.validate(json.dumps(json.loads(text), indent=2)) == text
    for bad in [
        "",
        "{}",
        "[1]",
        '[{"frame": 0}]',
        '[{"frame":0,"quality":1,"hash":"zz","timestamp":0}]',
    ]:
        with pytest.raises(ValueError):
            VPDQSignal.validate(bad)
