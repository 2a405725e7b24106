"""Command line: ``reclaim scan | status | hash | protect | fetch``.

Every bad input ends with a non-zero exit and one line saying what went wrong, never a traceback.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from reclaim import __version__
from reclaim.errors import InputError, ReclaimError
from reclaim.media import MediaLimits
from reclaim.scan import ScanStats, analyze_bytes, scan
from reclaim.signals import te_signal_type
from reclaim.sources import Source, SourceLimits, open_source
from reclaim.store import CaseStore

app = typer.Typer(
    name="reclaim",
    help="Find, document and stop the spread of non-consensual synthetic intimate imagery.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

CaseOpt = Annotated[
    Path, typer.Option("--case", "-c", help="Case directory (created on first scan).")
]


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn reclaim's named errors (and a few OS errors) into one line and exit code 2."""
    try:
        yield
    except ReclaimError as e:
        fail(str(e))
    except PermissionError as e:
        fail(f"permission denied: {e.filename}")
    except OSError as e:
        fail(f"{e.filename or ''}: {e.strerror or e}")


def version_callback(value: bool) -> None:
    if value:
        out.print(f"reclaim {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True)
    ] = False,
) -> None:
    """reclaim never generates, edits or sends images; nothing leaves this machine unless you
    export it."""


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} items/s · {task.fields[errors]} errors"),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[current]}", justify="left"),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    )


def _run_scan(
    case: Path, sources: list[Source], workers: int | None, limits: MediaLimits, command: str
) -> ScanStats:
    with CaseStore.open(case, create=True) as store, _progress() as progress:
        task = progress.add_task("scanning", total=None, rate="0", errors=0, current="")

        def on_progress(s: ScanStats) -> None:
            import time

            el = max(time.monotonic() - s.started, 1e-6)
            progress.update(
                task,
                completed=s.analysed + s.skipped,
                rate=f"{s.analysed / el:.0f}",
                errors=s.errors,
                current=s.current[-60:],
            )

        stats = scan(
            store,
            sources,
            limits=limits,
            workers=workers,
            command=command,
            on_progress=on_progress,
        )
    return stats


def _print_stats(stats: ScanStats, case: Path) -> None:
    d = stats.as_dict()
    out.print(
        f"scanned {d['seen']} places in {d['seconds']:.1f} s: {d['new_items']} new items, "
        f"{d['skipped']} already done, {d['errors']} with errors  →  reclaim status --case {case}"
    )


@app.command("scan")
def scan_cmd(
    sources: Annotated[
        list[str],
        typer.Argument(help="Folders, zip/tar archives, Telegram Desktop export folders."),
    ],
    case: CaseOpt,
    workers: Annotated[
        int | None, typer.Option("--workers", "-j", help="Worker processes (default: cores).")
    ] = None,
    max_video_seconds: Annotated[
        float, typer.Option(help="Only the first N seconds of each video are sampled.")
    ] = MediaLimits.video_max_seconds,
) -> None:
    """Scan sources into a case: hashes of every image and video, and where each was seen.

    Rerunning the same command resumes an interrupted scan; nothing is counted twice.
    """
    with user_errors():
        opened = [open_source(s) for s in sources]
        limits = MediaLimits(video_max_seconds=max_video_seconds)
        stats = _run_scan(case, opened, workers, limits, "scan")
    _print_stats(stats, case)


@app.command("fetch")
def fetch_cmd(
    url_list: Annotated[Path, typer.Argument(help="Text file with one http(s) URL per line.")],
    case: CaseOpt,
    max_mb: Annotated[int, typer.Option(help="Largest download accepted, in MB.")] = 64,
    timeout: Annotated[float, typer.Option(help="Seconds allowed per URL.")] = 30.0,
) -> None:
    """Download the URLs of a list (the only command that uses the network) and scan them.

    Each download is kept byte-for-byte in the case with its URL, final URL, status and time.
    """
    from reclaim.sources import urllist

    with user_errors():
        limits = SourceLimits(url_max_bytes=max_mb * 1024 * 1024, url_timeout_s=timeout)
        src = urllist.open_url_list(str(url_list), limits)
        # Downloads happen in this process, one URL at a time; analysis in the workers.
        stats = _run_scan(case, [src], None, MediaLimits(), "fetch")
    _print_stats(stats, case)


@app.command("status")
def status_cmd(
    case: CaseOpt,
    errors: Annotated[int, typer.Option(help="How many error lines to show.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Counts, runs and errors of a case."""
    with user_errors(), CaseStore.open(case) as store:
        counts = store.counts()
        runs = store.runs()
        errs = store.errors(limit=max(errors, 0))
    if as_json:
        print(json.dumps({"counts": counts, "runs": runs, "errors": errs}, ensure_ascii=False))
        return
    t = Table(title=f"case {case}", show_header=False)
    for k, v in counts.items():
        t.add_row(k.replace("_", " "), str(v))
    out.print(t)
    if runs:
        last = runs[-1]
        out.print(
            f"last run #{last['id']} ({last['command']}): [bold]{last['status']}[/] "
            f"started {last['started_at']}"
            + (" — rerun the same command to resume" if last["status"] == "interrupted" else "")
        )
    if errs:
        et = Table(title="errors (newest first)")
        et.add_column("where", overflow="fold")
        et.add_column("why", overflow="fold")
        for where, why in errs:
            et.add_row(where, why)
        out.print(et)


def _hash_file(path: Path, limits: MediaLimits) -> dict[str, Any]:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; use `reclaim scan {path} --case DIR`")
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise InputError(f"{path}: {size} bytes exceeds the {limits.max_bytes} byte cap")
    item = analyze_bytes(path.read_bytes(), limits)
    sig = {name: (value, q) for name, value, q in item.signals}
    rec: dict[str, Any] = {
        "path": str(path),
        "sha256": item.sha256,
        "md5": item.md5,
        "size": item.size,
        "kind": item.kind,
        "format": item.format,
    }
    if "pdq" in sig:
        rec["pdq"], rec["pdq_quality"] = sig["pdq"]
    if "vpdq" in sig:
        rec["vpdq"] = json.loads(sig["vpdq"][0])
    if item.error:
        rec["error"] = item.error
    return rec


def _each_file(files: list[Path], fn: Callable[[Path], None]) -> int:
    """Apply fn to each file; bad ones get a one-line error and the others go on."""
    failures = 0
    for f in files:
        try:
            fn(f)
        except ReclaimError as e:
            err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            failures += 1
        except OSError as e:
            err.print(f"[bold red]error:[/] {f}: {e.strerror or e}", highlight=False)
            failures += 1
    return failures


@app.command("hash")
def hash_cmd(
    files: Annotated[list[Path], typer.Argument(help="Image or video files.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Hashes of files: SHA-256, MD5, PDQ (+quality) for images, vPDQ frames for videos."""
    limits = MediaLimits()
    table = Table("file", "sha256", "pdq", "quality")

    def one(f: Path) -> None:
        rec = _hash_file(f, limits)
        if rec.get("error"):
            raise InputError(f"{f}: {rec['error']}")
        if as_json:
            print(json.dumps(rec, ensure_ascii=False), flush=True)
        else:
            pdq = rec.get("pdq") or (f"vPDQ, {len(rec['vpdq'])} frames" if "vpdq" in rec else "")
            table.add_row(str(f), rec["sha256"], pdq, str(rec.get("pdq_quality", "")))

    failures = _each_file(files, one)
    if not as_json and table.row_count:
        out.print(table)
    if failures:
        raise typer.Exit(1)


PROTECT_FIELDS = ["signal_type", "signal", "quality", "media_kind", "created_at", "tool"]


@app.command("protect")
def protect_cmd(
    files: Annotated[list[Path], typer.Argument(help="Private photos or videos to protect.")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="CSV file to write.")],
) -> None:
    """StopNCII-style protection: write only the hashes of private photos/videos to a CSV.

    The images never leave this machine and the file holds no names or paths: only numbers a
    platform can match against (ThreatExchange/HMA signal types pdq, md5, video_md5, vpdq).
    """
    limits = MediaLimits()
    rows: list[dict[str, Any]] = []
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def one(f: Path) -> None:
        rec = _hash_file(f, limits)
        if rec.get("error"):
            raise InputError(f"{f}: {rec['error']}")
        kind = rec["kind"]
        base = {"media_kind": kind, "created_at": created, "tool": f"reclaim {__version__}"}
        if "pdq" in rec:
            rows.append(
                {**base, "signal_type": "pdq", "signal": rec["pdq"], "quality": rec["pdq_quality"]}
            )
        if "vpdq" in rec:
            compact = [f"{fr['hash']},{fr['quality']},{fr['timestamp']:.3f}" for fr in rec["vpdq"]]
            rows.append(
                {**base, "signal_type": "vpdq", "signal": json.dumps(compact), "quality": ""}
            )
        rows.append(
            {
                **base,
                "signal_type": te_signal_type("md5", kind),
                "signal": rec["md5"],
                "quality": "",
            }
        )

    failures = _each_file(files, one)
    if not rows:
        fail("no file could be hashed; nothing written", 1)
    with user_errors():
        tmp = out_path.with_name(out_path.name + ".part")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=PROTECT_FIELDS)
            w.writeheader()
            w.writerows(rows)
        tmp.replace(out_path)
    out.print(
        f"wrote {len(rows)} hashes of {len(files) - failures} files to {out_path}. "
        "It holds numbers only: no image, no file name."
    )
    if failures:
        raise typer.Exit(1)


@app.command("demo")
def demo_cmd(
    where: Annotated[
        Path, typer.Option("--dir", help="Folder for the sample collection and its case.")
    ] = Path("reclaim-demo"),
) -> None:
    """Make a sample collection (abstract test patterns) and scan it: the whole spine at work."""
    from reclaim.sample import make_sample

    with user_errors():
        sources = make_sample(where / "sample")
        out.print(
            f"sample collection written to {where / 'sample'}: "
            + ", ".join(p.name for p in sources)
        )
        case = where / "case"
        stats = _run_scan(case, [open_source(str(p)) for p in sources], None, MediaLimits(), "demo")
    _print_stats(stats, case)
    status_cmd(case=case, errors=10, as_json=False)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted — rerun the same command to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
