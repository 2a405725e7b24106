"""Safety caps for decoding untrusted media."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaLimits:
    max_bytes: int = 512 * 1024 * 1024  # one file
    max_pixels: int = 120_000_000  # per frame; Pillow's bomb check raised to a modern camera's size
    max_frames: int = 2_000  # animated images: frames decoded at most
    # Animated images: pixels decoded across frames (each frame is composed onto the whole
    # canvas, so this is frames x canvas); decoding stops there, like ``video_max_seconds``.
    # 500 MP: 1,600 frames of 640x480; a 8000x8000 screen with one-pixel frames gets 7 frames.
    max_total_pixels: int = 500_000_000
    # Video frames: 8K UHD (7680x4320), the largest format cameras and players use. A frame
    # costs PDQ ~25 ms per MP; fuzzing found 0.5-4 KB WebMs declaring 30-70 MP frames that took
    # 2.5-8.6 s for a 3 s clip.
    video_max_pixels: int = 7680 * 4320
    video_max_seconds: float = 600.0  # only the first N seconds of a video are sampled
    video_fps: float = 1.0  # frames sampled per second (vPDQ: one per second)
    # Work run in a worker process (``reclaim.media.sandbox``): RLIMIT_DATA of the worker.
    # A 120 MP photo needs ~1.3 GB to hash; ``reclaim check``'s models ~0.8 GB.
    max_memory_bytes: int = 3 << 30
    timeout_s: float = 60.0  # per still image, decode + signals
    # Videos: 1080p decodes at ~300 frames/s on one core, so 10 min of 30 fps needs about a minute.
    video_timeout_s: float = 600.0
