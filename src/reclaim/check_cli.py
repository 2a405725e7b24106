"""``reclaim check FILE... [--json] [--maps DIR] [--lang fr|en]`` — registered in cli.py with
``app.command("check")(check_cmd)``.

Heavy libraries (c2pa, OpenCV, onnxruntime) are imported only when the command runs.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from reclaim.errors import ReclaimError
from reclaim.verdicts import Verdict, verdict_label

if TYPE_CHECKING:
    from reclaim.detectors.check import DetectorOptions
    from reclaim.detectors.record import CheckResult

out = Console()
err = Console(stderr=True)


class Lang(StrEnum):
    fr = "fr"
    en = "en"


_WORDS = {
    "score": {"en": "score", "fr": "score"},
    "nudity": {"en": "nudity (triage, not part of the score)", "fr": "nudité (tri, hors score)"},
    "none": {"en": "no exposed region", "fr": "aucune zone exposée"},
    "partial": {"en": "only partly checked", "fr": "vérifié en partie seulement"},
    "maps": {"en": "explanation images", "fr": "images d'explication"},
}


def _print_human(rec: CheckResult, lang: str) -> None:
    v = rec.verdict
    colour = {
        Verdict.GENERATED: "red",
        Verdict.EDITED: "yellow",
        Verdict.LIKELY_GENERATED: "red",
        Verdict.LIKELY_MANIPULATED: "yellow",
    }.get(v, "cyan")
    path = rec.path or rec.sha256
    out.print(
        f"[bold]{escape(path)}[/]: [bold {colour}]{verdict_label(v, lang)}[/] "
        f"({_WORDS['score'][lang]} {rec.score:.2f})",
        highlight=False,
        soft_wrap=True,
    )
    if v not in (Verdict.GENERATED, Verdict.EDITED):  # else the summary repeats the 1st signal
        out.print(f"  {escape(rec.summary[lang])}", highlight=False, soft_wrap=True)
    for s in rec.signals:
        out.print(
            f"  • [{s.score:.2f}] {escape(s.name)}: {escape(s.evidence[lang])}",
            highlight=False,
            soft_wrap=True,
        )
    nud = rec.nudity
    if nud is not None:
        exposed = ", ".join(nud.get("exposed", [])) or _WORDS["none"][lang]
        out.print(
            f"  {_WORDS['nudity'][lang]}: {nud['score']:.2f} — {exposed}",
            highlight=False,
            soft_wrap=True,
        )
    if rec.maps:
        out.print(f"  {_WORDS['maps'][lang]}:", highlight=False)
        for m in rec.maps:
            out.print(f"    {escape(m)}", highlight=False, soft_wrap=True)
    if rec.error:
        err.print(
            f"[bold yellow]warning:[/] {escape(path)}: {_WORDS['partial'][lang]}: "
            f"{escape(rec.error)}",
            highlight=False,
            soft_wrap=True,
        )


#: Seconds allowed to check one photo, models' first load included (a video gets
#: ``MediaLimits.video_timeout_s``).
CHECK_PHOTO_TIMEOUT_S = 120.0


def check_time_limit(path: Path, limits: Any) -> float:
    """The wall-clock limit for checking ``path``: by its kind, read from its first bytes."""
    from reclaim.media.sniff import sniff

    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError:
        head = b""  # check_file reports the problem
    if sniff(head)[0] == "video":
        return max(CHECK_PHOTO_TIMEOUT_S, float(limits.video_timeout_s))
    return CHECK_PHOTO_TIMEOUT_S


def _check_one(
    path: Path, nudity: bool, detectors: DetectorOptions | None, maps: Path | None
) -> CheckResult:
    """Worker side of ``check_cmd``: one file's check (run in a ``Sandbox``)."""
    from reclaim.detectors.check import check_file

    return check_file(path, nudity=nudity, detectors=detectors, maps_dir=maps)


def check_cmd(
    files: Annotated[list[Path], typer.Argument(help="Image or video files to check.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per file and line (fr + en).")
    ] = False,
    lang: Annotated[Lang, typer.Option("--lang", help="Language of the sentences.")] = Lang.en,
    nudity: Annotated[
        bool, typer.Option("--nudity/--no-nudity", help="Nudity triage (NudeNet).")
    ] = True,
    pixels: Annotated[
        bool,
        typer.Option(
            "--pixels/--provenance-only",
            help="Run the pixel detectors (faces, blending, AI image) besides provenance.",
        ),
    ] = True,
    maps: Annotated[
        Path | None,
        typer.Option(
            "--maps",
            help="Write explanation images (error levels, noise, JPEG ghost and grid, face "
            "seams and blend) as PNG into this folder.",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Is it generated or manipulated, and why: evidence in plain words, offline.

    Provenance (C2PA Content Credentials, IPTC/XMP digital source type, generator metadata,
    Stable Diffusion's invisible watermark) decides when present. Pixel signals (face-region
    consistency, a face-blend model, an AI-image model) are fused into a score calibrated so
    that at most 2% of real photos are called manipulated. Evidence, never proof.
    """
    from reclaim.detectors.check import DetectorOptions
    from reclaim.media import MediaLimits
    from reclaim.media.sandbox import Sandbox

    detectors = DetectorOptions() if pixels else None
    failures = 0
    limits = MediaLimits()
    # One worker for the whole command (its models load once), within the memory ceiling; it is
    # killed and replaced when a file overruns its time.
    sandbox = Sandbox(limits.max_memory_bytes)
    for f in files:
        try:
            rec = sandbox.call(
                _check_one, (f, nudity, detectors, maps), check_time_limit(f, limits)
            )
        except ReclaimError as e:
            msg = str(e) if str(e).startswith(str(f)) else f"{f}: {e}"  # which file, always
            err.print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)
            failures += 1
            continue
        except OSError as e:
            err.print(
                f"[bold red]error:[/] {escape(str(f))}: {escape(str(e.strerror or e))}",
                highlight=False,
                soft_wrap=True,
            )
            failures += 1
            continue
        if rec.error:
            failures += 1
        if as_json:
            print(json.dumps(rec.to_json(), ensure_ascii=False), flush=True)
        else:
            _print_human(rec, lang.value)
    if failures:
        raise typer.Exit(1)
