"""Benchmark: provenance signals — found on every fixture, never on real photos.

1. Fixtures: real photos of ``../shared/data/faces/real-color`` given one provenance marker
   each, written with the libraries that write them in the wild (c2pa-python with a
   certificate made here, Pillow for XMP / PNG text / EXIF, the real ``invisible-watermark``
   dwtDct encoder for Stable Diffusion's watermark). Metadata fixtures must all be found with
   the expected verdict.
2. Stable Diffusion watermark: detection on watermarked copies (the photos upscaled to 512 px,
   the reference encoder, PNG), also after JPEG q90; compared with the package's own decoder
   (exact payload).
3. False positives on the 2,616 real photos: the ``reclaim check`` verdict (provenance), plus
   the watermark decoder forced on every photo (even below its 256×256 minimum) and on 512-px
   upscaled copies.
4. Milliseconds per image.

Prints a table and writes bench/results/provenance.json.

    python bench/provenance.py [--n-wm 2616] [--n-wm-other 400]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import pickle
import platform
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from reclaim.detectors import provenance as P
from reclaim.detectors.check import (
    VERDICT_EDITED,
    VERDICT_GENERATED,
    VERDICT_NONE,
    check_bytes,
    verdict,
)
from reclaim_fixtures.provenance import make_chain, sign

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


# --- fixture writers ------------------------------------------------------------------------


class Writers:
    def __init__(self) -> None:
        self.chain = make_chain(org="reclaim bench")

    def c2pa_sign(self, data: bytes, mime: str, actions: list[dict[str, Any]]) -> bytes:
        man = {
            "claim_generator_info": [{"name": "bench", "version": "1"}],
            "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}],
        }
        return sign(data, mime, man, self.chain)


def jpeg(im: Image.Image, **kw: Any) -> bytes:
    b = io.BytesIO()
    im.save(b, "JPEG", quality=90, **kw)
    return b.getvalue()


def png(im: Image.Image, **kw: Any) -> bytes:
    b = io.BytesIO()
    im.save(b, "PNG", **kw)
    return b.getvalue()


def webp(im: Image.Image, **kw: Any) -> bytes:
    b = io.BytesIO()
    im.save(b, "WEBP", quality=90, **kw)
    return b.getvalue()


def xmp_dst(code: str) -> bytes:
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        f'Iptc4xmpExt:DigitalSourceType="{IPTC}{code}"/></rdf:RDF></x:xmpmeta>'
    ).encode()


def text_png(im: Image.Image, text: dict[str, str]) -> bytes:
    info = PngImagePlugin.PngInfo()
    for k, v in text.items():
        info.add_text(k, v)
    return png(im, pnginfo=info)


def exif_jpeg(im: Image.Image, tags: dict[int, str], uc: bytes | None = None) -> bytes:
    ex = Image.Exif()
    for k, v in tags.items():
        ex[k] = v
    if uc is not None:
        ex.get_ifd(0x8769)[0x9286] = uc
    return jpeg(im, exif=ex.tobytes())


A1111 = (
    "portrait photo\nNegative prompt: blurry\nSteps: 30, Sampler: Euler a, CFG scale: 7, "
    "Seed: 42, Size: 512x512, Model: sd_xl_base_1.0"
)
COMFY = json.dumps({"3": {"class_type": "KSampler", "inputs": {"seed": 1}}})


def dfl_jpeg(im: Image.Image) -> bytes:
    payload = pickle.dumps({"face_type": "whole_face", "landmarks": [[0.0, 0.0]] * 68})
    data = jpeg(im)
    return data[:2] + b"\xff\xef" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


def fixture_kinds(w: Writers) -> list[tuple[str, str, Callable[[Image.Image], bytes]]]:
    """(name, expected verdict, writer)."""
    return [
        (
            "c2pa jpeg trainedAlgorithmicMedia",
            VERDICT_GENERATED,
            lambda im: w.c2pa_sign(
                jpeg(im),
                "image/jpeg",
                [{"action": "c2pa.created", "digitalSourceType": IPTC + "trainedAlgorithmicMedia"}],
            ),
        ),
        (
            "c2pa png composite with AI",
            VERDICT_EDITED,
            lambda im: w.c2pa_sign(
                png(im),
                "image/png",
                [
                    {"action": "c2pa.created", "digitalSourceType": IPTC + "digitalCapture"},
                    {
                        "action": "c2pa.edited",
                        "digitalSourceType": IPTC + "compositeWithTrainedAlgorithmicMedia",
                    },
                ],
            ),
        ),
        (
            "xmp jpeg trainedAlgorithmicMedia",
            VERDICT_GENERATED,
            lambda im: jpeg(im, xmp=xmp_dst("trainedAlgorithmicMedia")),
        ),
        (
            "xmp webp compositeWithTrained",
            VERDICT_EDITED,
            lambda im: webp(im, xmp=xmp_dst("compositeWithTrainedAlgorithmicMedia")),
        ),
        (
            "png text A1111 parameters",
            VERDICT_GENERATED,
            lambda im: text_png(im, {"parameters": A1111}),
        ),
        ("png text ComfyUI prompt", VERDICT_GENERATED, lambda im: text_png(im, {"prompt": COMFY})),
        (
            "png text NovelAI",
            VERDICT_GENERATED,
            lambda im: text_png(im, {"Software": "NovelAI", "Title": "AI generated image"}),
        ),
        (
            "png text InvokeAI",
            VERDICT_GENERATED,
            lambda im: text_png(im, {"invokeai_metadata": json.dumps({"seed": 1})}),
        ),
        (
            "exif UserComment A1111",
            VERDICT_GENERATED,
            lambda im: exif_jpeg(im, {}, b"UNICODE\0" + A1111.encode("utf-16-be")),
        ),
        (
            "exif Software Midjourney",
            VERDICT_GENERATED,
            lambda im: exif_jpeg(im, {0x0131: "Midjourney"}),
        ),
        ("exif Software FaceApp", VERDICT_EDITED, lambda im: exif_jpeg(im, {0x0131: "FaceApp"})),
        ("DeepFaceLab APP15", VERDICT_EDITED, dfl_jpeg),
    ]


# --- watermark ----------------------------------------------------------------------------


def maxdct() -> ModuleType:
    spec = importlib.util.find_spec("imwatermark")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("pip install --no-deps invisible-watermark==0.2.0 (needed to make fixtures)")
    path = Path(next(iter(spec.submodule_search_locations))) / "maxDct.py"
    mspec = importlib.util.spec_from_file_location("_imwatermark_maxdct", path)
    assert mspec is not None and mspec.loader is not None
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    return mod


def upscale(im: Image.Image, side: int = 512) -> Image.Image:
    s = side / max(im.size)
    if s <= 1:
        return im
    return im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS)


def reread(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def reading(rgb: np.ndarray, key: str) -> P.WatermarkReading:
    scores = P.wm_block_scores(np.ascontiguousarray(rgb[:, :, ::-1]))
    payload = next(p for p in P.SD_PAYLOADS if p.key == key)
    return P.read_watermark(scores, payload)


# --- main ---------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-wm", type=int, default=2616, help="photos watermarked with SD v1")
    ap.add_argument("--n-wm-other", type=int, default=400, help="… with SD v2 and SDXL")
    ap.add_argument("--n-fixtures", type=int, default=100, help="photos per metadata fixture")
    ap.add_argument("--n-timing", type=int, default=200, help="photos for full-check timing")
    args = ap.parse_args()
    root = SHARED / "faces" / "real-color"
    if not root.is_dir():
        sys.exit(f"shared data not found at {root}")
    files = sorted(root.iterdir())
    t_start = time.perf_counter()
    res: dict[str, Any] = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "decision_rule": {"z_min": P.WM_Z_MIN, "min_contrast": P.WM_MIN_CONTRAST},
    }

    # 1. metadata fixtures
    w = Writers()
    fx_rows = []
    for name, expected, write in fixture_kinds(w):
        ok = 0
        n = min(args.n_fixtures, len(files))
        t = time.perf_counter()
        for f in files[:n]:
            data = write(Image.open(f).convert("RGB"))
            got = verdict(P.metadata_findings(data))[0]
            ok += got == expected
        fx_rows.append(
            {
                "fixture": name,
                "expected": expected,
                "n": n,
                "found": ok,
                "rate": ok / n,
                "ms_write_and_read": 1000 * (time.perf_counter() - t) / n,
            }
        )
    res["fixtures"] = fx_rows

    # 2. watermark on watermarked copies
    md = maxdct()
    wm_rows = []
    for payload in P.SD_PAYLOADS:
        n = args.n_wm if payload.key == "sd-v1" else args.n_wm_other
        sel = files[:: max(1, len(files) // n)][:n] if n < len(files) else files
        found = found_j = exact = found_given_exact = 0
        zs: list[float] = []
        for f in sel:
            im = upscale(Image.open(f).convert("RGB"))
            bgr = np.ascontiguousarray(np.asarray(im)[:, :, ::-1])
            enc = md.EmbedMaxDct(list(payload.bits), wmLen=len(payload.bits)).encode(bgr)
            marked = Image.fromarray(np.ascontiguousarray(enc[:, :, ::-1]))
            rgb = reread(png(marked))
            r = reading(rgb, payload.key)
            ref = np.asarray(md.EmbedMaxDct([], wmLen=len(payload.bits)).decode(rgb[:, :, ::-1]))
            is_exact = bool(np.array_equal(ref, payload.bits.astype(bool)))
            exact += is_exact
            found += r.detected
            found_given_exact += r.detected and is_exact
            zs.append(r.z)
            found_j += reading(reread(jpeg(marked)), payload.key).detected
        n = len(sel)
        wm_rows.append(
            {
                "payload": payload.label,
                "n": n,
                "detected_png": found / n,
                "reference_decoder_exact_png": exact / n,
                "detected_when_reference_exact": found_given_exact / max(exact, 1),
                "z_min": float(np.min(zs)),
                "z_median": float(np.median(zs)),
                "detected_after_jpeg_q90": found_j / n,
            }
        )
    res["watermark"] = wm_rows

    # 3. false positives on real photos
    fp_verdict = []
    max_z_forced = 0.0
    max_z_up = 0.0
    fp_forced = fp_up = 0
    t_meta = t_wm = 0.0
    n_wm_native = 0
    for f in files:
        data = f.read_bytes()
        t = time.perf_counter()
        rec = check_bytes(data, nudity=False).to_json()
        t_meta += time.perf_counter() - t
        if rec["verdict"] != VERDICT_NONE or rec["signals"]:
            fp_verdict.append(
                {"file": f.name, "verdict": rec["verdict"], "signals": rec["signals"]}
            )
        rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        n_wm_native += rgb.shape[0] * rgb.shape[1] >= P.WM_MIN_PIXELS
        scores = P.wm_block_scores(np.ascontiguousarray(rgb[:, :, ::-1]))
        rs = [P.read_watermark(scores, p) for p in P.SD_PAYLOADS]
        fp_forced += any(r.detected for r in rs)
        max_z_forced = max(max_z_forced, *(r.z for r in rs))
        up = np.asarray(upscale(Image.fromarray(rgb)))
        t = time.perf_counter()
        rs = P.sd_watermark(up)
        t_wm += time.perf_counter() - t
        fp_up += any(r.detected for r in rs)
        max_z_up = max(max_z_up, *(r.z for r in rs))
    n = len(files)
    res["false_positives"] = {
        "photos": n,
        "check_verdict_not_none_or_any_signal": len(fp_verdict),
        "examples": fp_verdict[:5],
        "photos_at_least_256x256": n_wm_native,
        "watermark_forced_on_native_size": fp_forced,
        "watermark_max_z_native": max_z_forced,
        "watermark_on_512px_upscaled": fp_up,
        "watermark_max_z_512px": max_z_up,
    }

    # 4. timing
    t = time.perf_counter()
    sub = files[: args.n_timing]
    for f in sub:
        check_bytes(f.read_bytes(), nudity=True)
    res["ms_per_image"] = {
        "check_provenance_only_native": 1000 * t_meta / n,
        "watermark_512px": 1000 * t_wm / n,
        "check_with_nudity_native": 1000 * (time.perf_counter() - t) / len(sub),
    }
    res["seconds_total"] = time.perf_counter() - t_start

    print(f"\nprovenance fixtures (each on {args.n_fixtures} real photos)")
    print(f"{'fixture':38s} {'expected':10s} {'found':>7s}")
    for r in fx_rows:
        print(f"{r['fixture']:38s} {r['expected']:10s} {r['found']:>3d}/{r['n']:<3d}")
    print("\nStable Diffusion watermark on watermarked copies (photos upscaled to 512 px)")
    print(
        f"{'payload':18s} {'n':>5s} {'PNG':>7s} {'ref.exact':>9s} {'|exact':>7s} {'z min':>6s} "
        f"{'JPEG q90':>8s}"
    )
    for r in wm_rows:
        print(
            f"{r['payload']:18s} {r['n']:5d} {r['detected_png']:7.1%} "
            f"{r['reference_decoder_exact_png']:9.1%} {r['detected_when_reference_exact']:7.1%} "
            f"{r['z_min']:6.1f} {r['detected_after_jpeg_q90']:8.1%}"
        )
    fp = res["false_positives"]
    print(f"\nfalse positives on {n} real photos")
    print(f"  reclaim check verdict or any signal: {fp['check_verdict_not_none_or_any_signal']}")
    print(
        f"  watermark forced on native size (only {fp['photos_at_least_256x256']} are ≥256×256): "
        f"{fp['watermark_forced_on_native_size']} (max z {fp['watermark_max_z_native']:.2f})"
    )
    print(
        f"  watermark on 512-px upscaled copies: {fp['watermark_on_512px_upscaled']} "
        f"(max z {fp['watermark_max_z_512px']:.2f}; threshold {P.WM_Z_MIN})"
    )
    ms = res["ms_per_image"]
    print(
        f"\nms/image: check (provenance, native ≤320 px) {ms['check_provenance_only_native']:.1f}, "
        f"watermark 512 px {ms['watermark_512px']:.1f}, check with nudity "
        f"{ms['check_with_nudity_native']:.1f}   total {res['seconds_total']:.0f} s"
    )
    out = HERE / "results" / "provenance.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
