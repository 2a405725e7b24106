"""Safe decoding: what an item is and its pixels, within caps. Signals ask ``Media`` for views."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from reclaim.errors import InputError, MediaTooLarge
from reclaim.media.image import is_animated, iter_frames, load_rgb
from reclaim.media.limits import MediaLimits
from reclaim.media.sniff import MediaKind, sniff
from reclaim.media.video import VideoFrame, VideoInfo, iter_video_frames, probe_video

__all__ = ["ANIMATED_FRAME_SIDE", "Media", "MediaKind", "MediaLimits", "read_user_file", "sniff"]

#: Longer side of the frames ``Media.frames`` gives for animated images (GIF, WebP, APNG, TIFF).
ANIMATED_FRAME_SIDE = 512


def read_user_file(path: Path, limits: MediaLimits, folder_hint: str) -> bytes:
    """The bytes of a file a person named on the command line, within the size cap.

    Raises InputError (missing, a folder — ``folder_hint`` says what to do instead — or over
    ``limits.max_bytes``); OSError from reading is left to the caller's error handling.
    """
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; {folder_hint}")
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise InputError(f"{path}: {size} bytes exceeds the {limits.max_bytes} byte cap")
    return path.read_bytes()


@dataclass
class Media:
    """One item's bytes plus lazily decoded views, each decoded at most once.

    ``kind``/``format`` come from magic bytes. Decoding errors surface as MediaError subclasses
    from the view methods; ``info`` collects what decoding learnt (size, orientation, duration).
    """

    data: bytes
    limits: MediaLimits = field(default_factory=MediaLimits)
    kind: MediaKind = "other"
    format: str = "unknown"
    info: dict[str, Any] = field(default_factory=dict)
    _views: dict[Any, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if len(self.data) > self.limits.max_bytes:
            raise MediaTooLarge(
                f"file of {len(self.data)} bytes exceeds the {self.limits.max_bytes} byte cap"
            )
        self.kind, self.format = sniff(self.data[:64])
        if self.kind == "other":
            # Formats without a reliable magic number (e.g. some TGA/ICO) still go to Pillow.
            self.kind = "photo"

    def image(self, max_side: int | None = None) -> Image.Image:
        """The still image as RGB, EXIF orientation applied, longer side ≤ ``max_side``."""
        key = ("image", max_side)
        if key not in self._views:
            whole = self._views.get(("image", "whole"))
            if whole is not None and (max_side is None or max(whole.size) <= max_side):
                # Decoded before at its own size, and not larger than asked: the same pixels.
                self._views[key] = whole
            else:
                im, (w, h), orient = load_rgb(self.data, self.limits, max_side)
                self.info.update(width=w, height=h, orientation=orient)
                self._views[key] = im
                if im.size == (w, h):
                    self._views[("image", "whole")] = im
        img: Image.Image = self._views[key]
        return img

    def video_info(self) -> VideoInfo:
        """Container facts of a video (cached); also recorded in ``info``.

        Raises UnsupportedMedia / DecodeError / MediaTooLarge like ``probe_video``.
        """
        key = ("video_info",)
        if key not in self._views:
            vi = probe_video(self.data, self.limits)
            self.info.update(
                width=vi.width,
                height=vi.height,
                duration_s=vi.duration_s,
                fps=vi.fps,
                codec=vi.codec,
                rotation=vi.rotation,
            )
            self._views[key] = vi
        info: VideoInfo = self._views[key]
        return info

    def spread_frames(self, fps: float, max_frames: int) -> tuple[float, Iterator[VideoFrame]]:
        """A video's frames at about ``fps`` per second, at most ``max_frames``, slowed down to
        spread over its whole length when it is long; returns (the rate used, the frames)."""
        duration = max(self.video_info().duration_s or 0.0, 1e-3)
        rate = min(fps, max_frames / duration)
        sampler = Media(self.data, replace(self.limits, video_fps=rate))
        return rate, islice(sampler.frames(), max_frames)

    def frames(self, every_frame: bool = False, rotate: bool = True) -> Iterator[VideoFrame]:
        """Sampled frames (``limits.video_fps`` per second) of a video or animated image.

        A still photo yields nothing. Not cached: frames are large, each call decodes again.
        ``rotate=False`` keeps video frames as coded (what Meta's vPDQ hasher sees).
        """
        if self.kind == "video":
            yield from iter_video_frames(
                self.data, self.limits, every_frame=every_frame, rotate=rotate
            )
        elif self.kind == "photo" and is_animated(self.data, self.limits):
            # Shrunk to 512 px like a still before PDQ (Meta's reference hasher): fuzzing found
            # 1-2 KB GIFs of 60-100 MP frames (within the per-frame cap) whose full-size frames
            # took 6-16 s and 2-3 GB to hash.
            for i, t, im in iter_frames(self.data, self.limits, max_side=ANIMATED_FRAME_SIDE):
                yield VideoFrame(i, t, np.asarray(im, dtype=np.uint8))
