"""The data protocol behind ``clip_diffusion``'s numbers (``training/diffusion/data.py``): the
Telegram-like re-encoding, the families, and folds that keep a prompt in one fold."""

from __future__ import annotations

import io
from collections import defaultdict

import numpy as np
from PIL import Image

from training.diffusion import data as D

from .conftest import photo_like, shared_data


def test_telegram_caps_the_size_drops_metadata_and_sets_the_quality() -> None:
    from reclaim.detectors.diffusion import jpeg_quality

    im = photo_like(2, (2000, 900))
    exif = Image.Exif()
    exif[0x0131] = "Some Generator 1.0"  # Software
    b = io.BytesIO()
    im.save(b, "PNG", exif=exif)
    rgb = np.asarray(Image.open(io.BytesIO(b.getvalue())).convert("RGB"))
    out = D.telegram(rgb)
    back = Image.open(io.BytesIO(out))
    assert back.format == "JPEG" and max(back.size) == D.TELEGRAM_MAX_SIDE
    assert not back.getexif() and "exif" not in back.info
    assert jpeg_quality(out) == D.TELEGRAM_QUALITY
    small = np.asarray(photo_like(3, (256, 256)))
    assert Image.open(io.BytesIO(D.telegram(small, 75))).size == (256, 256)


def test_screenshot_scales_and_frames_the_image() -> None:
    rgb = np.asarray(photo_like(4, (200, 100)))
    s = D.screenshot(rgb)
    assert s.shape == (150 + 56, 300 + 32, 3)
    assert (s[:40] == (236, 236, 238)).all()  # the app bar


def test_family_names() -> None:
    assert D.family_of("LDM text2im (CompVis latent-diffusion), 256px", "full") == "LDM"
    assert D.family_of("GLID-3 XL (afiaka87/glid-3-xl), 256px", "full") == "GLID-3"
    assert D.family_of("Stable Diffusion 2.1 (AEROBLADE example image)", "full") == "SD"
    assert D.family_of("SD1.x finetunes AbyssOrangeMix2_hard", "full") == "SD"
    assert D.family_of("GLIDE inpainting (CocoGlide), 256px", "inpaint") == "GLIDE-inpaint"
    assert D.family_of("MS-COCO val2017 crop", "real") == "COCO"


def test_every_prompt_lies_in_one_fold_and_families_are_complete() -> None:
    shared_data("detect", "diffusion-dev", "manifest.csv")
    dev = D.dev_items()
    assert len(dev) == 541
    folds: dict[str, set[int]] = defaultdict(set)
    for i in dev:
        folds[i.group].add(i.fold)
    prompts = [g for g in folds if g.startswith("prompt:")]
    assert len(prompts) == 14 and all(len(folds[g]) == 1 for g in prompts)
    fams = {f: sum(1 for i in dev if i.family == f) for f in (*D.DIFFUSION_FAMILIES, *D.DEV_REALS)}
    assert fams == {"LDM": 121, "GLID-3": 106, "Disco": 20, "SD": 43, "GLIDE-inpaint": 25,
                    "ImageNet": 200, "COCO": 25, "other-real": 1}  # fmt: skip
    # every family has images in several folds: each is measured by 5 cross-fitted models
    for f in D.DIFFUSION_FAMILIES:
        assert len({i.fold for i in dev if i.family == f}) >= 4
