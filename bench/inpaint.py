"""Inpainting: where, not only whether — how well ``inpaint_region`` localises and scores.

    python bench/inpaint.py [--wheel comfyui_workflow_templates_media_image-*.whl] [--no-maps]

Every image is first re-encoded the way Telegram does (longer side ≤ 1280 px, JPEG q87, no
metadata). Prints and writes ``bench/results/inpaint.json``:

* **CocoGlide** (25 GLIDE-inpainted COCO photos of ``diffusion-dev``), per image: the region
  found (box, share of the picture, smoother/grainier), its raw strength and calibrated score.
  Their masks and originals are not in the shared data (the 25 real COCO crops there are the
  originals of *other* CocoGlide fakes), so these are judged per image only: AUC of the raw
  region strength, inpainted vs real (the COCO crops, the ImageNet photos), the share of real
  photos of the test split (not used by the calibration) at score ≥ 0.99, and the same AUCs
  after other degradations (JPEG q75 / q95 instead of q87, a 0.5× resize before the
  re-encoding).
* **FLUX Fill pairs** (with ``--wheel``: ComfyUI's workflow-template media, PyPI package
  ``comfyui-workflow-templates-media-image``, MIT; ``pip download --no-deps
  comfyui-workflow-templates-media-image==0.3.160 -d /tmp/cwt``): the inpaint example (before /
  after), the OneReward fill example and the outpaint example. The regenerated region is derived
  by comparing the two images where they align (blurred absolute difference over Otsu's
  threshold, closed, small parts dropped; for the outpaint, the padding of the input). Per pair:
  pixel AUC of the map against that region, IoU of the map's hot area (heat ≥ 0.5) and of the
  region's box with it, as shipped (WebP) and after the re-encoding; beside them the same pixel
  AUC for two existing maps (noise level, ELA) as baselines.
* ``bench/results/inpaint/``: small maps (≤ 192 px, blurred, 64 colours) of a few examples.

The images are data to measure on: nothing is generated or edited here.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reclaim.detectors import maps as M  # noqa: E402
from reclaim.detectors.inpaint import load_calibration, region_map, render_map  # noqa: E402
from training.inpaint.data import DEV, DevImage, dev_images, telegram  # noqa: E402

OUT = ROOT / "bench" / "results" / "inpaint.json"
MAPS = ROOT / "bench" / "results" / "inpaint"
TEMPLATES = "comfyui_workflow_templates_media_image/templates/"
#: (name, regenerated image, its reference: the image before, or the padded outpaint input)
PAIRS = (
    ("flux_fill_inpaint", "flux_fill_inpaint_example-2.webp", "flux_fill_inpaint_example-1.webp"),
    (
        "flux_fill_onereward",
        "image_flux.1_fill_dev_OneReward-2.webp",
        "image_flux.1_fill_dev_OneReward-1.webp",
    ),
    (
        "flux_fill_outpaint",
        "flux_fill_outpaint_example-1.webp",
        "flux_fill_outpaint_example-2.webp",
    ),
)
#: CocoGlide examples drawn: the first two of the set and the two whose region is strongest.
MAP_EXAMPLES = ("100582", "101762", "125952", "104669")


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve (ties count half)."""
    p = np.asarray(pos, np.float64)
    n = np.asarray(neg, np.float64)
    if p.size == 0 or n.size == 0:
        return float("nan")
    allv = np.concatenate([p, n])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(allv.size, np.float64)
    sv = allv[order]
    i = 0
    while i < sv.size:  # average ranks of ties
        j = i
        while j + 1 < sv.size and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[: p.size].sum() - p.size * (p.size + 1) / 2) / (p.size * n.size))


def pixel_auc(heat: np.ndarray, mask: np.ndarray) -> float:
    h = cv2.resize(heat.astype(np.float32), (mask.shape[1], mask.shape[0]))
    sub = (slice(None, None, 3), slice(None, None, 3))
    return auc(h[sub][mask[sub]], h[sub][~mask[sub]])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    u = float((a | b).sum())
    return float((a & b).sum()) / u if u else 0.0


def box_mask(box: tuple[int, int, int, int] | None, shape: tuple[int, int]) -> np.ndarray:
    m = np.zeros(shape, bool)
    if box is not None:
        x0, y0, x1, y1 = box
        m[y0:y1, x0:x1] = True
    return m


def small_png(img: np.ndarray, path: Path, side: int = 192) -> None:
    """Downscaled to ``side`` px, blurred, 64 colours: the map reads, the photo barely does."""
    im = Image.fromarray(img)
    im.thumbnail((side, side), Image.Resampling.LANCZOS)
    a = cv2.GaussianBlur(np.asarray(im), (0, 0), 1.2)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).quantize(64).save(path, format="PNG", optimize=True)


# -- CocoGlide and the real photos ----------------------------------------------------------


def _variant(item: DevImage, how: str) -> np.ndarray:
    with Image.open(DEV / item.file) as im0:
        im = im0.convert("RGB")
    if how == "tg":
        return telegram(im)
    if how == "q75":
        return telegram(im, quality=75)
    if how == "q95":
        return telegram(im, quality=95)
    if how == "half":
        w, h = im.size
        return telegram(im.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.LANCZOS))
    raise ValueError(how)


def cocoglide(draw_maps: bool) -> dict[str, Any]:
    items = dev_images()
    fakes = [i for i in items if i.group == "cocoglide"]
    coco = [i for i in items if i.group == "coco"]
    imnet = [i for i in items if i.group == "imagenet"]
    test_reals = [i for i in items if i.label == "real" and i.split == "test"]
    cal = load_calibration()
    per_image = []
    raw: dict[str, float] = {}
    t0 = time.perf_counter()
    for it in fakes + coco + imnet:
        rgb = _variant(it, "tg")
        rm = region_map(rgb)
        raw[it.file] = rm.strength
        if it.group == "cocoglide":
            per_image.append(
                {
                    "file": Path(it.file).name.split("__")[-1],
                    "size": [rgb.shape[1], rgb.shape[0]],
                    "region": list(rm.box) if rm.box else None,
                    "area": round(rm.area, 4),
                    "direction": rm.direction,
                    "raw": round(rm.strength, 3),
                    "score": None if cal is None else round(cal.score(rm.strength), 3),
                }
            )
            coco_id = Path(it.file).stem.split("_")[-2]
            if draw_maps and coco_id in MAP_EXAMPLES:
                small_png(render_map(rgb, rm), MAPS / f"cocoglide-{coco_id}.png")
    ms = 1000 * (time.perf_counter() - t0) / max(1, len(raw))

    def r(group: list[DevImage]) -> np.ndarray:
        return np.array([raw[i.file] for i in group])

    out: dict[str, Any] = {
        "per_image": per_image,
        "ms_per_image": round(ms, 1),
        "auc_vs_coco": round(auc(r(fakes), r(coco)), 3),
        "auc_vs_imagenet": round(auc(r(fakes), r(imnet)), 3),
        "share_with_region": {
            "cocoglide": round(float(np.mean(r(fakes) > 0)), 3),
            "coco": round(float(np.mean(r(coco) > 0)), 3),
            "imagenet": round(float(np.mean(r(imnet) > 0)), 3),
        },
    }
    if cal is not None:
        test_raw = np.array(
            [raw.get(i.file, region_map(_variant(i, "tg")).strength) for i in test_reals]
        )
        scores = np.array([cal.score(v) for v in test_raw])
        out["test_reals"] = len(test_reals)
        out["test_real_share_score_ge_0.99"] = round(float(np.mean(scores >= 0.99)), 3)
        out["cocoglide_share_score_ge_0.99"] = round(
            float(np.mean([cal.score(v) >= 0.99 for v in r(fakes)])), 3
        )
    robust = {}
    for how in ("q75", "q95", "half"):
        vals = {i.file: region_map(_variant(i, how)).strength for i in fakes + coco + imnet}

        def rv(group: list[DevImage], vals: dict[str, float] = vals) -> np.ndarray:
            return np.array([vals[i.file] for i in group])

        robust[how] = {
            "auc_vs_coco": round(auc(rv(fakes), rv(coco)), 3),
            "auc_vs_imagenet": round(auc(rv(fakes), rv(imnet)), 3),
        }
    out["robustness"] = robust
    return out


# -- FLUX Fill pairs ------------------------------------------------------------------------------


def derived_region(regen: np.ndarray, ref: np.ndarray, outpaint: bool) -> np.ndarray:
    """The regenerated region, from the two images where they align."""
    if outpaint:
        return np.asarray(ref.max(axis=2) < 8)
    d = np.abs(regen.astype(np.float32) - ref.astype(np.float32)).max(axis=2)
    s = max(1.0, 0.004 * max(d.shape))
    db = cv2.GaussianBlur(d, (0, 0), s)
    t, _ = cv2.threshold(
        np.clip(db, 0, 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU
    )
    m = (db > t).astype(np.uint8)
    k = int(4 * s) | 1
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    n, lab, st, _ = cv2.connectedComponentsWithStats(m)
    keep = np.zeros(m.shape, bool)
    for i in range(1, n):
        if st[i, cv2.CC_STAT_AREA] >= 0.01 * m.size:
            keep |= lab == i
    return keep


def flux_pairs(wheel: Path, draw_maps: bool) -> list[dict[str, Any]]:
    out = []
    with zipfile.ZipFile(wheel) as z:
        for name, regen_name, ref_name in PAIRS:
            regen = np.asarray(
                Image.open(io.BytesIO(z.read(TEMPLATES + regen_name))).convert("RGB")
            )
            ref = np.asarray(Image.open(io.BytesIO(z.read(TEMPLATES + ref_name))).convert("RGB"))
            mask = derived_region(regen, ref, outpaint="outpaint" in name)
            row: dict[str, Any] = {"pair": name, "size": [regen.shape[1], regen.shape[0]]}
            row["region_share"] = round(float(mask.mean()), 3)
            for tag, rgb in (("as_shipped", regen), ("telegram", telegram(Image.fromarray(regen)))):
                m = mask
                if rgb.shape[:2] != mask.shape:
                    m = cv2.resize(mask.astype(np.uint8), (rgb.shape[1], rgb.shape[0])) > 0
                rm = region_map(rgb)
                heat = cv2.resize(rm.heat, (rgb.shape[1], rgb.shape[0]))
                row[tag] = {
                    "pixel_auc": round(pixel_auc(np.abs(rm.z), m), 3),
                    "iou_hot": round(iou(heat >= 0.5, m), 3),
                    "iou_box": round(iou(box_mask(rm.box, m.shape), m), 3),
                    "region": list(rm.box) if rm.box else None,
                    "direction": rm.direction,
                    "raw": round(rm.strength, 3),
                    "baseline_noise_map_auc": round(pixel_auc(M.noise_heat(rgb), m), 3),
                    "baseline_ela_map_auc": round(pixel_auc(M.ela_heat(rgb), m), 3),
                }
                if draw_maps and tag == "telegram":
                    small_png(render_map(rgb, rm), MAPS / f"{name}.png")
                    ref_vis = M.blend_overlay(rgb, m.astype(np.float32))
                    small_png(ref_vis, MAPS / f"{name}-derived-region.png")
            out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--wheel", type=Path, help="comfyui-workflow-templates-media-image wheel")
    ap.add_argument("--no-maps", action="store_true", help="do not write the example maps")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if not DEV.exists():
        sys.exit(f"shared data not found at {DEV}: run from a checkout beside ../shared")
    res: dict[str, Any] = {"reencoding": "longer side <= 1280 px, JPEG q87 (Telegram-like)"}
    res["cocoglide"] = cg = cocoglide(not args.no_maps)
    print("CocoGlide (GLIDE-inpainted COCO photos), after the Telegram-like re-encoding")
    print(f"{'file':48} {'region (x0,y0,x1,y1)':24} {'area':>5} {'dir':9} {'raw':>5} {'score':>5}")
    for p in cg["per_image"]:
        box = "-" if p["region"] is None else ",".join(str(v) for v in p["region"])
        sc = "-" if p["score"] is None else f"{p['score']:.2f}"
        print(
            f"{p['file'][:48]:48} {box:24} {p['area']:5.3f} {p['direction'] or '-':9} "
            f"{p['raw']:5.2f} {sc:>5}"
        )
    print(
        f"region strength AUC, inpainted vs real: vs COCO crops {cg['auc_vs_coco']:.3f}, "
        f"vs ImageNet {cg['auc_vs_imagenet']:.3f}; with a region: {cg['share_with_region']}"
    )
    if "test_reals" in cg:
        print(
            f"score >= 0.99: {cg['test_real_share_score_ge_0.99']:.1%} of {cg['test_reals']} "
            f"test-split real photos, {cg['cocoglide_share_score_ge_0.99']:.1%} of CocoGlide"
        )
    for how, v in cg["robustness"].items():
        print(
            f"  {how}: AUC vs COCO {v['auc_vs_coco']:.3f}, vs ImageNet {v['auc_vs_imagenet']:.3f}"
        )
    print(f"{cg['ms_per_image']:.0f} ms per image")
    if args.wheel:
        res["flux_pairs"] = rows = flux_pairs(args.wheel, not args.no_maps)
        print("\nFLUX Fill pairs: map vs the region derived from the two images")
        for row in rows:
            for tag in ("as_shipped", "telegram"):
                v = row[tag]
                print(
                    f"{row['pair']:22} {tag:10} pixel AUC {v['pixel_auc']:.3f}  IoU hot "
                    f"{v['iou_hot']:.3f}  IoU box {v['iou_box']:.3f}  (noise map "
                    f"{v['baseline_noise_map_auc']:.3f}, ELA {v['baseline_ela_map_auc']:.3f}); "
                    f"region share {row['region_share']:.3f}"
                )
    else:
        print("\nFLUX Fill pairs skipped: give --wheel (see the module's docstring)")
    args.out.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
