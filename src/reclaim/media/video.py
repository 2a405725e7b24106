"""Safe video decoding with PyAV (FFmpeg): probe, then sample frames as RGB within caps.

Choices made to reproduce Meta's reference vPDQ hasher (vpdq/cpp), each measured against its
sample hashes (numbers: docs/pdq-and-vpdq.md):

* Colour: ``yuv → rgb24`` through swscale with ``ACCURATE_RND | BITEXACT`` and the BT.601
  matrix (limited range unless the pixel format says full range), the same result on every CPU.
* No resizing: Meta hashes the frame at its native size.
* Rotation: ``iter_video_frames(..., rotate=False)`` hashes the coded frame, as Meta does;
  ``rotate=True`` (default) turns frames upright as a player shows them.
* One decoder thread: reclaim already runs items in parallel processes.
* Untrusted input: only container demuxers in ``VIDEO_FORMATS`` may open the bytes; decoding
  stops after ``video_max_seconds``; frame size is checked against ``max_pixels``, wall time
  against ``video_timeout_s``.
* Damage: frames decoded before a corrupt or truncated spot are yielded, then ``DecodeError``
  names where decoding stopped. Callers that want those partial frames catch it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import Colorspace, Interpolation

from reclaim.errors import DecodeError, ItemTimeout, MediaTooLarge, UnsupportedMedia
from reclaim.media.limits import MediaLimits
from reclaim.media.sniff import sniff

__all__ = [
    "VIDEO_FORMATS",
    "VideoFrame",
    "VideoInfo",
    "frame_to_rgb",
    "iter_video_frames",
    "probe_video",
]

#: FFmpeg demuxers allowed to open untrusted bytes (container formats only).
VIDEO_FORMATS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,ogg,asf"

_RGB_FLAGS = Interpolation.AREA | Interpolation.ACCURATE_RND | Interpolation.BITEXACT
# Timestamps closer than this to a sample time count as reaching it (pts rounding).
_EPS = 1e-6
# Frames decoded at most per second of allowed video: a guard against broken timestamps.
_MAX_DECODE_FPS = 480


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream (+ the first frame's rotation)."""

    duration_s: float | None
    width: int
    height: int
    fps: float | None
    codec: str
    n_frames: int | None  # declared frame count, else duration × fps rounded, else None
    rotation: int = 0  # degrees counterclockwise to show frames upright (first frame's matrix)
    container: str = ""


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame. ``frame_number`` counts decoded frames from 0 (Meta's numbering)."""

    frame_number: int
    timestamp_s: float
    rgb: np.ndarray  # H x W x 3 uint8


def _one_line(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return " ".join(str(text).split())[:200]


def _head(data: bytes | Path) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data[:64])
    try:
        with open(data, "rb") as f:
            return f.read(64)
    except OSError as e:
        raise DecodeError(f"cannot read video file {Path(data).name}: {_one_line(e)}") from e


def _open(data: bytes | Path) -> Any:
    """Open a container (whitelisted demuxers only). Raises UnsupportedMedia / DecodeError."""
    head = _head(data)
    kind, fmt = sniff(head)
    src: Any = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else str(data)
    try:
        return av.open(src, mode="r", options={"format_whitelist": VIDEO_FORMATS})
    except (av.FFmpegError, OSError, ValueError, EOFError) as e:
        if kind == "video":
            raise DecodeError(f"corrupt or truncated {fmt} video: {_one_line(e)}") from e
        if not head:
            raise UnsupportedMedia("empty file, not a video") from e
        raise UnsupportedMedia("not a video format reclaim can read") from e
    except MemoryError as e:
        raise MediaTooLarge("video too large to open in memory") from e


def _video_stream(container: Any) -> Any:
    """The first video stream that is not cover art (an audio file's attached picture)."""
    cover = av.stream.Disposition.attached_pic
    streams = [s for s in container.streams.video if not (s.disposition & cover)]
    if not streams:
        raise UnsupportedMedia("file has no video stream")
    if streams[0].codec_context is None:
        raise UnsupportedMedia("no decoder for this file's video codec")
    return streams[0]


def _float(x: Fraction | float | int | None) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (ZeroDivisionError, ValueError, TypeError, OverflowError):
        return None
    return v if v > 0 and math.isfinite(v) else None


def _stream_fps(stream: Any) -> float | None:
    for attr in ("average_rate", "guessed_rate", "base_rate"):
        try:
            v = _float(getattr(stream, attr, None))
        except (ZeroDivisionError, ValueError):
            v = None
        if v is not None and v < 10_000:
            return v
    return None


def _norm_rotation(deg: float) -> int:
    """Nearest multiple of 90 in 0..270 (counterclockwise)."""
    return (round(deg / 90.0) * 90) % 360


def _video_duration(container: Any, stream: Any) -> float | None:
    """Duration of the video stream itself, when the file says it (not audio's length)."""
    if stream.duration is not None and stream.time_base is not None:
        d = _float(stream.duration * stream.time_base)
        if d is not None:
            return d
    tag = (stream.metadata or {}).get("DURATION")  # Matroska per-track tag "HH:MM:SS.nnn"
    if tag:
        try:
            h, m, sec = str(tag).split(":")
            return _float(int(h) * 3600 + int(m) * 60 + float(sec))
        except ValueError:
            pass
    if len(container.streams) == 1 and container.duration is not None:
        return _float(Fraction(container.duration, av.time_base))
    return None


def _info(container: Any, stream: Any) -> VideoInfo:
    cc = stream.codec_context
    width, height = int(cc.width or 0), int(cc.height or 0)
    fps = _stream_fps(stream)
    duration = _video_duration(container, stream)
    if duration is None and container.duration is not None:
        duration = _float(Fraction(container.duration, av.time_base))
    n_frames: int | None = int(stream.frames) if stream.frames and stream.frames > 0 else None
    if n_frames is None and duration is not None and fps is not None:
        n_frames = max(1, round(duration * fps))
    return VideoInfo(
        duration_s=duration,
        width=width,
        height=height,
        fps=fps,
        codec=str(cc.name or "unknown"),
        n_frames=n_frames,
        container=str(container.format.name or ""),
    )


def _frame_cap(limits: MediaLimits) -> int:
    return min(limits.max_pixels, limits.video_max_pixels)


def _check_pixels(width: int, height: int, limits: MediaLimits) -> None:
    cap = _frame_cap(limits)
    if width * height > cap:
        raise MediaTooLarge(
            f"video frame of {width}x{height} = {width * height / 1e6:.0f} MP exceeds the "
            f"{cap / 1e6:.1f} MP cap for video frames"
        )


def _cap_decoder(cc: Any, limits: MediaLimits) -> None:
    """libavcodec refuses (EINVAL) any frame over the video frame cap before allocating it,
    including frames that are decoded and never sampled (the per-frame check below sees only
    the sampled ones)."""
    cc.options = {**dict(cc.options or {}), "max_pixels": str(_frame_cap(limits))}


def probe_video(data: bytes | Path, limits: MediaLimits | None = None) -> VideoInfo:
    """Container facts about the first video stream; decodes only the first frame (rotation).

    Raises UnsupportedMedia (not a video / no video stream / unknown codec), DecodeError
    (a damaged video container), MediaTooLarge (frame size above ``max_pixels``).
    """
    limits = limits or MediaLimits()
    container = _open(data)
    try:
        stream = _video_stream(container)
        info = _info(container, stream)
        if info.width <= 0 or info.height <= 0:
            raise DecodeError(f"video stream has invalid size {info.width}x{info.height}")
        _check_pixels(info.width, info.height, limits)
        # The display matrix is frame side data in PyAV: decode the first frame to read it.
        cc = stream.codec_context
        cc.thread_count = 1
        _cap_decoder(cc, limits)
        try:
            for frame in container.decode(stream):
                rotation = _norm_rotation(getattr(frame, "rotation", 0) or 0)
                return dataclasses.replace(info, rotation=rotation)
        except (av.FFmpegError, OSError, ValueError, EOFError) as e:
            raise DecodeError(f"corrupt video, first frame undecodable: {_one_line(e)}") from e
        raise DecodeError("video stream holds no decodable frame")
    finally:
        container.close()


def frame_to_rgb(frame: Any, max_pixels: int | None = None) -> np.ndarray:
    """An ``av.VideoFrame`` as H x W x 3 uint8 RGB, converted the way Meta's vPDQ hasher does.

    ``max_pixels``: a frame larger than this is scaled down (aspect kept) to fit it as it is
    converted, so what the signals work on never exceeds it.
    """
    size: dict[str, int] = {}
    w, h = int(frame.width), int(frame.height)
    if max_pixels is not None and w * h > max_pixels > 0:
        s = math.sqrt(max_pixels / (w * h))
        size = {"width": max(2, int(w * s)), "height": max(2, int(h * s))}
    rgb = frame.reformat(
        **size,
        format="rgb24",
        src_colorspace=Colorspace.ITU601,
        dst_colorspace=Colorspace.ITU601,
        interpolation=_RGB_FLAGS,
        threads=1,
    ).to_ndarray()
    arr: np.ndarray = np.ascontiguousarray(rgb, dtype=np.uint8)
    return arr


def _frame_duration(frame: Any, tb: Fraction | None) -> float | None:
    dur = getattr(frame, "duration", None)
    if not dur or tb is None:
        return None
    return _float(dur * tb)


def _upright(rgb: np.ndarray, rotation: float | None) -> np.ndarray:
    if not rotation:
        return rgb
    k = _norm_rotation(rotation) // 90
    return np.ascontiguousarray(np.rot90(rgb, k=k)) if k else rgb


def iter_video_frames(
    data: bytes | Path,
    limits: MediaLimits | None = None,
    *,
    every_frame: bool = False,
    rotate: bool = True,
) -> Iterator[VideoFrame]:
    """Decode the first video stream and yield sampled frames as RGB.

    Sampling: about ``limits.video_fps`` frames per second — the first frame, then the first
    frame whose timestamp reaches each next multiple of ``1 / video_fps`` — or every decoded
    frame with ``every_frame=True`` (or ``video_fps <= 0``). Timestamps come from the frame's
    pts relative to the stream start. Only frames before ``limits.video_max_seconds`` are
    decoded (decoding stops at the first frame past it), at most ``limits.max_frames`` frames
    are yielded. ``rotate`` turns frames upright per the display matrix (vPDQ passes False,
    as Meta's hasher does).

    Raises UnsupportedMedia, MediaTooLarge, ItemTimeout, and DecodeError — the latter possibly
    after yielding the frames decoded before a corrupt or truncated spot.
    """
    limits = limits or MediaLimits()
    started = time.monotonic()
    container = _open(data)
    try:
        stream = _video_stream(container)
        info = _info(container, stream)
        _check_pixels(info.width, info.height, limits)
        cc = stream.codec_context
        cc.thread_count = 1
        cc.thread_type = "SLICE"
        _cap_decoder(cc, limits)
        yield from _decode(container, stream, info, limits, every_frame, rotate, started)
    finally:
        container.close()


def _decode(
    container: Any,
    stream: Any,
    info: VideoInfo,
    limits: MediaLimits,
    every_frame: bool,
    rotate: bool,
    started: float,
) -> Iterator[VideoFrame]:
    tb = stream.time_base
    origin = stream.start_time
    fps_guess = info.fps or 30.0
    step = 0.0 if every_frame or limits.video_fps <= 0 else 1.0 / limits.video_fps
    cap_s = limits.video_max_seconds
    max_decoded = int(cap_s * _MAX_DECODE_FPS) + 1_000
    next_t = 0.0
    n_decoded = 0
    n_yielded = 0
    last_t = 0.0
    last_dur: float | None = None
    failure: BaseException | None = None

    def frames() -> Iterator[Any]:
        nonlocal failure
        try:
            for packet in container.demux(stream):
                yield from packet.decode()
        except (av.FFmpegError, OSError, ValueError, EOFError) as e:
            failure = e
        except MemoryError as e:
            raise MediaTooLarge("video frame too large to decode in memory") from e
        if failure is not None:
            # Drain what the decoder still holds before reporting the damage.
            with contextlib.suppress(av.FFmpegError, OSError, ValueError, EOFError):
                yield from stream.codec_context.decode(None)

    for frame in frames():
        if time.monotonic() - started > limits.video_timeout_s:
            raise ItemTimeout(
                f"decoding took longer than {limits.video_timeout_s:.0f} s "
                f"(at {last_t:.1f} s of video)"
            )
        n_decoded += 1
        if n_decoded > max_decoded:
            break
        pts = frame.pts
        if pts is not None and tb is not None:
            if origin is None:
                origin = pts
            t = max(0.0, float((pts - origin) * tb))
        else:
            t = (n_decoded - 1) / fps_guess
        last_t = t
        last_dur = _frame_duration(frame, tb)
        if t >= cap_s and n_yielded:  # the first frame is always taken, whatever its pts
            break
        if step and t + _EPS < next_t:
            continue
        _check_pixels(frame.width, frame.height, limits)
        try:
            # A frame may declare a size of its own, larger than the stream's (which was checked
            # and is what a player shows): fuzzing found a 504-byte VP8 WebM declaring 32x32
            # whose frame decodes at 14336x3131, 10 s and 3.2 GB of hashing. Such a frame is
            # scaled down to the stream's area; frames of the declared size are untouched.
            rgb = frame_to_rgb(frame, max(info.width * info.height, 1))
        except (av.FFmpegError, ValueError) as e:
            raise DecodeError(
                f"cannot convert video frame {n_decoded - 1} to RGB: {_one_line(e)}"
            ) from e
        if rotate:
            rgb = _upright(rgb, getattr(frame, "rotation", 0))
        yield VideoFrame(n_decoded - 1, t, rgb)
        n_yielded += 1
        if n_yielded >= limits.max_frames:
            break
        if step:
            next_t = (math.floor(t / step + _EPS) + 1) * step
    else:
        if failure is not None:
            if n_decoded == 0:
                raise DecodeError(
                    f"corrupt or truncated video, no frame decodable: {_one_line(failure)}"
                ) from failure
            raise DecodeError(
                f"corrupt or truncated video: decoding stopped at {last_t:.1f} s "
                f"(frame {n_decoded - 1}): {_one_line(failure)}"
            ) from failure
        if n_decoded == 0:
            raise DecodeError("video stream holds no decodable frame")
        # Streaming containers (Matroska/WebM, MPEG-TS) cut short end without an error: compare
        # with the duration the file declares for its video.
        declared = _video_duration(container, stream)
        end = last_t + (last_dur if last_dur is not None else 1.0 / fps_guess)
        if declared is not None and end < min(cap_s, declared) - max(1.0, 0.1 * declared):
            raise DecodeError(
                f"corrupt or truncated video: frames end at {end:.1f} s of the "
                f"{declared:.1f} s it declares"
            )
