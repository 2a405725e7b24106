"""Benchmark: does reclaim's PDQ agree with python-threatexchange's (what HMA computes)?

reclaim's ``reference`` flavour hashes what Meta's reference hasher hashes (EXIF orientation
applied, RGB, 512 px thumbnail); its ``pytx`` flavour, like pytx's ``PdqSignal``, hashes the
full image as Pillow decodes it (no EXIF orientation). On real photos (Meta's PDQ test images,
deepface-pairs, diffusion-dev/real) and on edited variants (Meta's bridge-mods and Pillow modes;
crops, JPEG q50–95, resizes, small rotations, a mirror and phone-style EXIF orientation made
here), this measures:

1. the distance between reclaim (each flavour) and pytx on the same file;
2. whether reclaim's ``pytx`` flavour equals pytx's hash bit for bit (every file hashed);
3. the match rate at d <= 31 when the bank hash comes from an original and the query hash from
   an edited variant, for each (bank implementation → query implementation): reference and pytx
   on the same side, and across;
4. from those, the cross-system recall of each possible default: reclaim banks in flavour F and
   HMA (pytx) looks up (``reclaim protect``), and HMA banks while reclaim looks up in flavour F
   (``reclaim hash``).

A pair counts when the original's hash has quality >= 50 under both implementations (pytx
banks nothing below 50); a query under quality 50 is a miss (pytx gives no hash below 50, and
reclaim's matcher does not look such hashes up). Prints tables; writes
bench/results/pdq_flavours.json.

    python bench/pdq_flavours.py [--limit N] [--out PATH]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from reclaim.hashes.pdq import PDQ_MATCH_DISTANCE, PDQ_MIN_QUALITY, PdqHash, pdq_for
from reclaim.media import Media

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
TX = SHARED / "threatexchange" / "pdq" / "data"
IMPLS = ("reference", "pytx")
COMBOS = tuple(f"{b}->{q}" for b in IMPLS for q in IMPLS)
#: Buckets of the reclaim-vs-pytx distance on the same file (bits).
BUCKETS = ((0, 0), (1, 4), (5, 8), (9, 16), (17, 31), (32, 256))
#: Random near-threshold edits per original larger than 512 px (where the flavours differ).
BORDERLINE_PER_PHOTO = 6

# Variant categories (the decision table aggregates by these).
PIXEL = "pixel edits"
META_MODS = "meta bridge-mods"
MODES = "pillow modes"
EXIF_TAGGED_QUERY = "EXIF: upright bank, phone-tagged query"
EXIF_SAME_FILE = "EXIF: phone-tagged file on both sides"
EXIF_UPRIGHT_COPY = "EXIF: phone-tagged bank, re-encoded upright query"


def pytx_hash(data: bytes) -> tuple[str, int] | None:
    """python-threatexchange's PDQ of these bytes (hex, quality), or None where pytx raises."""
    from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_bytes

    try:
        h, q = pdq_from_bytes(data)
    except Exception:
        return None
    return h, int(q)


@dataclass
class Hashes:
    """One file's hashes: reclaim reference, reclaim pytx flavour, pytx itself."""

    reference: tuple[str, int]
    flavour_pytx: tuple[str, int]
    pytx: tuple[str, int] | None
    size: tuple[int, int]

    def impl(self, name: str) -> tuple[str, int]:
        if name == "reference":
            return self.reference
        # pytx's own hash where it gives one; reclaim's pytx flavour where pytx raises.
        return self.pytx or self.flavour_pytx


def hash_all(data: bytes) -> Hashes:
    ref, rq = pdq_for(Media(data), "reference")
    fl, fq = pdq_for(Media(data), "pytx")
    with Image.open(io.BytesIO(data)) as im:
        size = im.size
    return Hashes((str(ref), rq), (str(fl), fq), pytx_hash(data), size)


def dist(a: str, b: str) -> int:
    return PdqHash.from_hex(a) - PdqHash.from_hex(b)


# -- the corpus: originals and their variants ------------------------------------------------


def _jpeg(im: Image.Image, quality: int = 90, exif: bytes | None = None) -> bytes:
    b = io.BytesIO()
    if exif is None:
        im.convert("RGB").save(b, "JPEG", quality=quality)
    else:
        im.convert("RGB").save(b, "JPEG", quality=quality, exif=exif)
    return b.getvalue()


def _upright(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return ImageOps.exif_transpose(im).convert("RGB")


def _crop(im: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    w, h = im.size
    box = (round(w * left), round(h * top), round(w * (1 - right)), round(h * (1 - bottom)))
    return im.crop(box)


def _scale(im: Image.Image, s: float) -> Image.Image:
    w, h = im.size
    return im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)


def _fit(im: Image.Image, side: int) -> Image.Image:
    s = side / max(im.size)
    return _scale(im, s) if s < 1 else im


def _phone_tagged(im: Image.Image) -> bytes:
    """What a phone camera writes for a portrait shot: the pixels stored turned 90°
    counter-clockwise, with EXIF orientation 6 ("turn 90° clockwise to show"), so that every
    viewer shows the photo upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _jpeg(im.transpose(Image.Transpose.ROTATE_90), 90, exif.tobytes())


#: Edits made here: name → upright pixels → bytes (geometric edits re-encoded as JPEG q90, the
#: way a platform re-encodes an upload).
EDITS: dict[str, Callable[[Image.Image], bytes]] = {
    "jpeg q95": lambda im: _jpeg(im, 95),
    "jpeg q75": lambda im: _jpeg(im, 75),
    "jpeg q50": lambda im: _jpeg(im, 50),
    "resize 0.5x": lambda im: _jpeg(_scale(im, 0.5)),
    "resize 2x": lambda im: _jpeg(_scale(im, 2.0)),
    "fit 1080 px": lambda im: _jpeg(_fit(im, 1080)),
    "crop 2% each side": lambda im: _jpeg(_crop(im, 0.02, 0.02, 0.02, 0.02)),
    "crop 5% each side": lambda im: _jpeg(_crop(im, 0.05, 0.05, 0.05, 0.05)),
    "crop 10% one side": lambda im: _jpeg(_crop(im, 0.0, 0.0, 0.10, 0.0)),
    "rotate 1°": lambda im: _jpeg(im.rotate(1, Image.Resampling.BICUBIC)),
    "rotate 2°": lambda im: _jpeg(im.rotate(2, Image.Resampling.BICUBIC)),
    "rotate 5°": lambda im: _jpeg(im.rotate(5, Image.Resampling.BICUBIC)),
    "mirror": lambda im: _jpeg(ImageOps.mirror(im)),
}


def _borderline(im: Image.Image, rng: random.Random) -> list[tuple[str, str, bytes]]:
    """Random edits near PDQ's threshold (where a few bits decide a match): crops of 1–3% per
    side and rotations of 0.5–1.5°, each re-encoded at a random JPEG quality 70–95."""
    out = []
    for i in range(BORDERLINE_PER_PHOTO):
        c = [rng.uniform(0.01, 0.03) for _ in range(4)]
        out.append(("crop 1-3% (random)", f"crop {i}", _jpeg(_crop(im, *c), rng.randint(70, 95))))
        a = rng.uniform(0.5, 1.5) * rng.choice((-1, 1))
        rot = im.rotate(a, Image.Resampling.BICUBIC)
        out.append(("rotate 0.5-1.5° (random)", f"rotate {i}", _jpeg(rot, rng.randint(70, 95))))
    return out


@dataclass
class Original:
    source: str
    name: str
    data: bytes
    #: (category, group, variant name, bytes): edits of this original.
    variants: list[tuple[str, str, str, bytes]] = field(default_factory=list)


def _photo_files(folder: Path) -> list[Path]:
    exts = {".jpg", ".jpeg", ".png", ".webp"}
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in exts)


def corpus(limit: int | None) -> Iterator[Original]:
    """Originals with their variants: Meta's own variant sets first, then real photos with the
    edits made here, then phone-style EXIF-tagged copies of the photos larger than 512 px."""
    mods = TX / "bridge-mods"
    o = Original("threatexchange", "bridge-mods/aaa-orig.jpg", (mods / "aaa-orig.jpg").read_bytes())
    o.variants = [
        (META_MODS, META_MODS, p.name, p.read_bytes())
        for p in _photo_files(mods)
        if p.name != "aaa-orig.jpg"
    ]
    yield o
    modes = TX / "misc-images" / "modes"
    o = Original("threatexchange", "modes/original.jpg", (modes / "original.jpg").read_bytes())
    o.variants = [
        (MODES, MODES, p.name, p.read_bytes()) for p in _photo_files(modes) if p.stem != "original"
    ]
    yield o
    # Meta's EXIF orientation photos are four shots (not one photo tagged four ways): hashed
    # for the same-file comparison only, without variants.
    rotn = TX / "reg-test-input" / "exif-rotn"
    for t in (1, 3, 6, 8):
        yield Original(
            "threatexchange", f"exif-rotn-{t}.jpg", (rotn / f"exif-rotn-{t}.jpg").read_bytes()
        )
    files: list[tuple[str, Path]] = []
    for rel in (
        "misc-images/c.png",
        "misc-images/small.jpg",
        "misc-images/wee.jpg",
        "reg-test-input/pen-and-coaster.png",
    ):
        files.append(("threatexchange", TX / rel))
    files += [("threatexchange", p) for p in _photo_files(TX / "reg-test-input" / "labelme-subset")]
    files += [("deepface-pairs", p) for p in _photo_files(SHARED / "faces" / "deepface-pairs")]
    files += [
        ("diffusion-dev/real", p)
        for p in _photo_files(SHARED / "detect" / "diffusion-dev" / "real")
    ]
    if limit is not None:
        files = files[:limit]
    rng = random.Random(23)
    large: list[tuple[str, str, Image.Image]] = []
    for source, p in files:
        data = p.read_bytes()
        o = Original(source, p.name, data)
        im = _upright(data)
        o.variants = [(PIXEL, name, name, fn(im)) for name, fn in EDITS.items()]
        o.variants.append((EXIF_TAGGED_QUERY, EXIF_TAGGED_QUERY, "tagged", _phone_tagged(im)))
        if max(im.size) > 512:
            o.variants += [(PIXEL, g, n, b) for g, n, b in _borderline(im, rng)]
            large.append((source, p.name, im))
        yield o
    for source, name, im in large:
        tagged = _phone_tagged(im)
        o = Original("phone-tagged " + source, name, tagged)
        o.variants = [
            (EXIF_SAME_FILE, EXIF_SAME_FILE, "same bytes", tagged),
            (EXIF_UPRIGHT_COPY, EXIF_UPRIGHT_COPY, "upright q85", _jpeg(im, 85)),
            (
                EXIF_UPRIGHT_COPY,
                EXIF_UPRIGHT_COPY,
                "upright fit 1080 q80",
                _jpeg(_fit(im, 1080), 80),
            ),
        ]
        yield o


# -- the measurements -------------------------------------------------------------------------


def _dist_summary(ds: list[int]) -> dict[str, Any]:
    if not ds:
        return {"n": 0}
    s = sorted(ds)
    return {
        "n": len(s),
        "exact": sum(d == 0 for d in s),
        "median": statistics.median(s),
        "mean": round(statistics.fmean(s), 2),
        "p90": s[min(len(s) - 1, int(0.9 * len(s)))],
        "max": s[-1],
        "buckets": {
            f"{lo}-{hi}" if lo != hi else str(lo): sum(lo <= d <= hi for d in s)
            for lo, hi in BUCKETS
        },
    }


@dataclass
class Pair:
    """One (original, variant) pair: its category, group, whether the original is larger than
    512 px, and per combination the distance (None: the query's quality is under 50)."""

    category: str
    group: str
    large: bool
    d: dict[str, int | None]


def _rates(pairs: list[Pair]) -> dict[str, Any]:
    out: dict[str, Any] = {"pairs": len(pairs)}
    for c in COMBOS:
        ds = [p.d[c] for p in pairs]
        got = [d for d in ds if d is not None]
        hit = [d for d in got if d <= PDQ_MATCH_DISTANCE]
        out[c] = {
            "match_rate": round(len(hit) / len(ds), 4) if ds else None,
            "mean_distance": round(statistics.fmean(got), 2) if got else None,
            "query_under_q50": len(ds) - len(got),
        }
    return out


#: Thresholds the default is judged at: Meta's 31, and stricter ones a bank may set.
THRESHOLDS = (31, 24, 16)
#: What each possible default sends to the other system: reclaim's hash in one flavour, or
#: both hashes (a bank row / a lookup in each flavour; a match on either counts).
DEFAULTS = {"reference": ("reference",), "pytx": ("pytx",), "both": ("reference", "pytx")}


def _defaults(pairs: list[Pair]) -> dict[str, Any]:
    """Cross-system recall of each default F: ``protect`` (reclaim banks in F, pytx looks up)
    and ``hash`` (pytx banks, reclaim looks up in F), at each of THRESHOLDS."""

    def best(p: Pair, combos: list[str]) -> int | None:
        ds = [d for c in combos if (d := p.d[c]) is not None]
        return min(ds) if ds else None

    out: dict[str, Any] = {"pairs": len(pairs)}
    for role, combo in (
        ("protect (reclaim bank -> pytx query)", "{f}->pytx"),
        ("hash (pytx bank -> reclaim query)", "pytx->{f}"),
    ):
        out[role] = {}
        for name, flavours in DEFAULTS.items():
            ds = [best(p, [combo.format(f=f) for f in flavours]) for p in pairs]
            out[role][name] = {
                f"d<={t}": round(sum(d is not None and d <= t for d in ds) / len(ds), 4)
                for t in THRESHOLDS
            }
    return out


def _grouped(pairs: list[Pair], key: Callable[[Pair], str]) -> dict[str, Any]:
    keys = sorted({key(p) for p in pairs})
    return {k: _rates([p for p in pairs if key(p) == k]) for k in keys}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="At most N real photos (quick run).")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "pdq_flavours.json")
    args = ap.parse_args()

    t0 = time.perf_counter()
    same_file: dict[str, list[int]] = {}
    not_equal: list[str] = []
    pytx_raises: list[str] = []
    n_files = 0
    pairs: list[Pair] = []
    skipped_low_quality = 0

    def record_same_file(kind: str, name: str, h: Hashes) -> None:
        nonlocal n_files
        n_files += 1
        size = "larger than 512 px" if max(h.size) > 512 else "512 px or smaller"
        if h.pytx is None:
            pytx_raises.append(name)
            return
        if h.flavour_pytx != h.pytx:
            not_equal.append(name)
        for flavour, mine in (("reference", h.reference), ("pytx flavour", h.flavour_pytx)):
            for which in ("all", size):
                key = f"{kind}, {which}: {flavour} vs pytx"
                same_file.setdefault(key, []).append(dist(mine[0], h.pytx[0]))

    for o in corpus(args.limit):
        ho = hash_all(o.data)
        kind = "phone-tagged copies" if o.source.startswith("phone-tagged") else "originals"
        record_same_file(kind, f"{o.source}/{o.name}", ho)
        bank_ok = all(ho.impl(i)[1] >= PDQ_MIN_QUALITY for i in IMPLS)
        for category, group, vname, vdata in o.variants:
            try:
                hv = hash_all(vdata)
            except Exception as e:  # a variant reclaim cannot decode: say so, go on
                print(f"  {o.name} / {vname}: {type(e).__name__}: {e}", file=sys.stderr)
                continue
            if vdata is not o.data:
                record_same_file("variants", f"{o.source}/{o.name} / {vname}", hv)
            if not bank_ok:
                skipped_low_quality += 1
                continue
            d: dict[str, int | None] = {}
            for b in IMPLS:
                for q in IMPLS:
                    qh, qq = hv.impl(q)
                    d[f"{b}->{q}"] = dist(ho.impl(b)[0], qh) if qq >= PDQ_MIN_QUALITY else None
            pairs.append(Pair(category, group, max(ho.size) > 512, d))
        print(f"\r{n_files} files hashed", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    large = [p for p in pairs if p.large]
    decision: dict[str, Any] = {}
    for cat in (PIXEL, META_MODS, MODES, EXIF_TAGGED_QUERY, EXIF_SAME_FILE, EXIF_UPRIGHT_COPY):
        for subset, ps in (("all originals", pairs), ("originals larger than 512 px", large)):
            mine = [p for p in ps if p.category == cat]
            if mine:
                decision.setdefault(cat, {})[subset] = _defaults(mine)
    result = {
        "what": "reclaim PDQ flavours vs python-threatexchange PdqSignal (bench/pdq_flavours.py)",
        "threatexchange": _pkg_version("threatexchange"),
        "pdqhash": _pkg_version("pdqhash"),
        "pillow": _pkg_version("pillow"),
        "python": platform.python_version(),
        "files_hashed": n_files,
        "pytx_flavour_bit_exact": {
            "files": n_files - len(pytx_raises),
            "not_equal": not_equal,
            "pytx_raises": pytx_raises,
        },
        "same_file_distance": {k: _dist_summary(v) for k, v in same_file.items()},
        "match_at_31_by_group": _grouped(pairs, lambda p: p.group),
        "match_at_31_by_group_originals_larger_than_512px": _grouped(large, lambda p: p.group),
        "cross_system_recall_by_default": decision,
        "pairs_skipped_bank_quality_under_50": skipped_low_quality,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print_tables(result)
    print(f"\nwrote {args.out}")


def _pkg_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def print_tables(r: dict[str, Any]) -> None:
    ex = r["pytx_flavour_bit_exact"]
    print(
        f"\npytx flavour vs pytx PdqSignal: {ex['files'] - len(ex['not_equal'])}/{ex['files']} "
        f"files bit-exact ({len(ex['pytx_raises'])} files pytx cannot hash)"
    )
    print("\nSame file, reclaim vs pytx (bits)")
    head = ("n", "exact", "med", "p90", "max")
    print(f"{'':62s} " + " ".join(f"{h:>5s}" for h in head) + "  0|1-4|5-8|9-16|17-31|32+")
    for name, s in r["same_file_distance"].items():
        if s["n"]:
            cells = " ".join(f"{s[h]:5g}" for h in ("n", "exact", "median", "p90", "max"))
            print(f"{name:62s} {cells}  " + "|".join(str(v) for v in s["buckets"].values()))
    for title, key in (
        ("all originals", "match_at_31_by_group"),
        ("originals larger than 512 px", "match_at_31_by_group_originals_larger_than_512px"),
    ):
        print(
            f"\nMatch rate at d <= 31 (mean distance), bank (original) -> query (variant), {title}"
        )
        print(f"{'variant group':50s} {'pairs':>5s} " + " ".join(f"{c:>20s}" for c in COMBOS))
        for group, row in r[key].items():
            rates = []
            for c in COMBOS:
                md = row[c]["mean_distance"]
                rates.append(f"{row[c]['match_rate'] * 100:6.1f}% ({'-' if md is None else md:>6})")
            print(f"{group:50s} {row['pairs']:5d} " + " ".join(f"{x:>20s}" for x in rates))
    print(
        "\nCross-system recall of each default F (the other system is pytx), at d <= 31 / 24 / 16"
    )
    print(
        f"{'variants':50s} {'originals':>9s} {'pairs':>5s}  role     "
        + "  ".join(f"{f:^20s}" for f in DEFAULTS)
    )
    for cat, by in r["cross_system_recall_by_default"].items():
        for subset, row in by.items():
            sub = "all" if subset == "all originals" else "> 512 px"
            for role, short in (
                ("protect (reclaim bank -> pytx query)", "protect"),
                ("hash (pytx bank -> reclaim query)", "hash"),
            ):
                by_default = "  ".join(
                    "/".join(f"{v * 100:5.1f}" for v in row[role][f].values()) for f in DEFAULTS
                )
                print(f"{cat:50s} {sub:>9s} {row['pairs']:5d}  {short:7s}  {by_default}")


if __name__ == "__main__":
    main()
