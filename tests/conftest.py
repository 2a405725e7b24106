from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    """The model cache (signals/modelcache) in a fresh folder for this run, shared by the CLI
    processes the tests start, never the user's own."""
    os.environ["RECLAIM_CACHE_DIR"] = tempfile.mkdtemp(prefix="reclaim-test-cache-")


def pytest_unconfigure(config: pytest.Config) -> None:
    d = os.environ.get("RECLAIM_CACHE_DIR", "")
    if Path(d).name.startswith("reclaim-test-cache-"):
        shutil.rmtree(d, ignore_errors=True)


def shared_data(*parts: str) -> Path:
    """Path inside ../shared/data, or skip the test with a clear reason when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available at {p} (only present beside the repo in CI/dev)")
    return p


def photo_like(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A deterministic, photo-like RGB image (gradients, shapes, noise) for fixtures."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    chans = [
        (x * rng.uniform(0.1, 0.5) + y * rng.uniform(0.05, 0.4) + rng.uniform(0, 255)) % 256
        for _ in range(3)
    ]
    a = np.stack(chans, -1)
    for _ in range(12):
        cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(10, max(11, w // 4))
        mask = (x - cx) ** 2 + (y - cy) ** 2 < r**2
        a[mask] = rng.integers(0, 256, 3)
    a = a + rng.normal(0, 4, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def jpeg_bytes(im: Image.Image, quality: int = 90, **kw: object) -> bytes:
    b = io.BytesIO()
    im.save(b, "JPEG", quality=quality, **kw)
    return b.getvalue()


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    for i in range(6):
        target = d / ("sub" if i % 2 else "") / f"p{i}.jpg"
        target.write_bytes(jpeg_bytes(photo_like(i)))
    return d
