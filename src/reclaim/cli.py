"""Command line: ``reclaim scan | status | hash | protect | fetch | enroll | enrollments |
unenroll | lock-templates | unlock-templates | faces | findings | decide | pack | verify-pack |
serve``.

Thin: each command calls one domain operation (``reclaim.enroll``, ``reclaim.decisions``,
``reclaim.scan``, ``reclaim.report.pack``), which writes the custody entry and takes the case
lock itself, exactly as for the web app.

Every bad input ends with a non-zero exit and one line saying what went wrong, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

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
from reclaim.media import MediaLimits, read_user_file
from reclaim.store import CaseStore
from reclaim.store.decisions import DecisionKind

if TYPE_CHECKING:  # scanning and its sources load on use: `enroll` and others start faster
    from reclaim.scan import Runner, ScanStats
    from reclaim.sources import Source

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
PassphraseFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help="When the case's face templates are locked (reclaim lock-templates): read their "
        "passphrase from this file's first line ('-': standard input). Or set "
        "RECLAIM_TEMPLATE_PASSPHRASE; otherwise it is asked for when a terminal is there.",
    ),
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
    case: Path,
    sources: list[Source],
    workers: int | None,
    limits: MediaLimits,
    command: str,
    faces: bool | None = None,
    check: str = "auto",
    passphrase_file: Path | None = None,
    runner: Runner | None = None,
) -> ScanStats:
    from reclaim.scan import scan

    with (
        CaseStore.open(case, create=True) as store,
        _search_passphrase(store, passphrase_file, faces is not False) as passphrase,
        _progress() as progress,
    ):
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
            faces=faces,
            check=check,
            passphrase=passphrase,
            runner=runner,
        )
    return stats


# -- the passphrase of locked face templates (reclaim lock-templates) -------------------------


def _read_passphrase(
    passphrase_file: Path | None, prompt: str, *, confirm: bool = False, optional: bool = False
) -> str | None:
    """The passphrase from --passphrase-file, else RECLAIM_TEMPLATE_PASSPHRASE, else asked
    (hidden; twice with ``confirm``) when a terminal is there; None when none was given. Never
    printed, logged or stored."""
    from reclaim.store.templatelock import PASSPHRASE_ENV

    if passphrase_file is not None:
        if str(passphrase_file) == "-":
            line = sys.stdin.readline(4096)
        else:
            with passphrase_file.open("rb") as f:
                line = f.read(4096).decode("utf-8", "replace").split("\n", 1)[0]
        return line.rstrip("\r\n") or None
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    if not sys.stdin.isatty():
        return None
    value: str = typer.prompt(
        prompt,
        hide_input=True,
        confirmation_prompt=confirm,
        default="" if optional else None,
        show_default=False,
        err=True,
    )
    return value or None


@contextmanager
def _search_passphrase(
    store: CaseStore, passphrase_file: Path | None, searching: bool
) -> Iterator[str | None]:
    """The passphrase face search needs in a case whose templates are locked (None otherwise,
    or when none is given: the search then waits, nothing else does)."""
    if not searching or not store.has_enrollments() or not store.templates_locked():
        yield None
        return
    yield _read_passphrase(
        passphrase_file,
        "Passphrase of the face templates (Enter: go on without face search for now)",
        optional=True,
    )


def _print_deferred(faces: int, case: Path) -> None:
    if faces:
        err.print(
            f"[bold yellow]face search skipped:[/] the face templates of this case are locked "
            f"and no passphrase was given, so {faces} face(s) were not compared with the enrolled "
            "people yet. Nothing is lost: they wait for the next search. Run "
            f"`reclaim faces --case {case}` and give the passphrase to search them.",
            highlight=False,
            soft_wrap=True,
        )


def _print_stats(stats: ScanStats, case: Path) -> None:
    d = stats.as_dict()
    out.print(
        f"scanned {d['seen']} places in {d['seconds']:.1f} s: {d['new_items']} new items, "
        f"{d['skipped']} already done, {d['errors']} with errors  →  reclaim status --case {case}"
    )
    if d.get("faces") or d.get("findings"):
        out.print(
            f"{d['faces']} faces found, {d['findings']} new findings  →  "
            f"reclaim findings --case {case}"
        )
    _print_deferred(stats.face_search_deferred, case)


def _ray_runner(address: str, workers: int | None) -> Runner:
    """The runner of ``scan --ray``; Ray is imported only here."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise InputError("--ray needs Ray: pip install 'reclaim[ray]', then try again")
    from reclaim.scan_ray import RayRunner, cli_options

    return RayRunner(cli_options(address, workers))


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
    faces: Annotated[
        bool | None,
        typer.Option(
            "--faces/--no-faces",
            help="Look for faces and match enrolled people (default: when someone is enrolled).",
            show_default=False,
        ),
    ] = None,
    check: Annotated[
        str,
        typer.Option(
            "--check",
            help="Is it manipulated or generated: 'metadata' (provenance, every item), "
            "'faces' (plus pixel detectors on items with a face found by face search), 'full' "
            "(everything reclaim check runs, on every item: slow), 'off'. "
            "Default 'auto': 'faces' when faces are searched, else 'metadata'.",
        ),
    ] = "auto",
    passphrase_file: PassphraseFileOpt = None,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Analyse on a Ray cluster (pip install 'reclaim[ray]'): one started on this "
            "machine for this scan, or the one --ray-address names (or Ray's RAY_ADDRESS). "
            "The case is written here, as in a local scan (docs/scale.md).",
        ),
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            metavar="ADDRESS",
            help="The Ray cluster of --ray (implies it): 'auto' (the one `ray start` runs "
            "here), HOST:PORT of its head, or ray://HOST:10001.",
        ),
    ] = None,
) -> None:
    """Scan sources into a case: hashes of every image and video, and where each was seen.

    Rerunning the same command resumes an interrupted scan; nothing is counted twice.
    """
    from reclaim.sources import open_source

    with user_errors():
        opened = [open_source(s) for s in sources]
        limits = MediaLimits(video_max_seconds=max_video_seconds)
        runner: Runner | None = None
        if ray or ray_address:
            runner = _ray_runner(ray_address or os.environ.get("RAY_ADDRESS") or "", workers)
        stats = _run_scan(
            case,
            opened,
            workers,
            limits,
            "scan",
            faces,
            check,
            passphrase_file=passphrase_file,
            runner=runner,
        )
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
    from reclaim.sources import SourceLimits, urllist

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
        counts = {**store.counts(), **store.face_counts()}
        runs = store.runs()
        errs = store.errors(limit=max(errors, 0))
        search = {
            "templates_locked": store.templates_locked(),
            "faces_awaiting_search": store.faces_awaiting_search(),
        }
    if as_json:
        print(
            json.dumps(
                {"counts": counts, "runs": runs, "errors": errs, "face_search": search},
                ensure_ascii=False,
            )
        )
        return
    t = Table(title=f"case {case}", show_header=False)
    for k, v in counts.items():
        t.add_row(k.replace("_", " "), str(v))
    out.print(t)
    if search["templates_locked"]:
        out.print(
            "face templates: locked with a passphrase (face search and enrolling ask for it)"
            + (
                f"; {search['faces_awaiting_search']} face(s) wait for face search  →  "
                f"reclaim faces --case {case}"
                if search["faces_awaiting_search"]
                else ""
            ),
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
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


def _hash_file(
    path: Path, limits: MediaLimits, pdq_flavour: str = "reference"
) -> tuple[dict[str, Any], list[str]]:
    """The JSON record of one file: its identity, then every signal the registry computed
    (``NAME`` and, where it has one, ``NAME_quality``; a photo's PDQ in ``pdq_flavour``, named
    in ``pdq_flavour``); and the table summary of each decoded signal (the byte digests are in
    the record's own columns)."""
    from reclaim.hashes import BytesSignalType, PDQSignal, signal_type
    from reclaim.protect import analyze_for_protect

    # In a worker process within limits.max_memory_bytes and the per-item time limit.
    item, pdq = analyze_for_protect(
        read_user_file(path, limits, f"use `reclaim scan {path} --case DIR`"), limits, pdq_flavour
    )
    rec: dict[str, Any] = {
        "path": str(path),
        "sha256": item.sha256,
        "md5": item.md5,
        "size": item.size,
        "kind": item.kind,
        "format": item.format,
    }
    shown: list[str] = []
    for name, value, quality in item.signals:
        sig = signal_type(name)
        flavour = ""
        if name == PDQSignal.name and pdq_flavour in pdq:
            value, quality = pdq[pdq_flavour]
            flavour = pdq_flavour
        rec[name] = sig.as_json(value)
        if quality is not None:
            rec[f"{name}_quality"] = quality
        if flavour:
            rec[f"{name}_flavour"] = flavour
        if not isinstance(sig, BytesSignalType):
            notes = [f"q {quality}"] if quality is not None else []
            notes += [flavour] if flavour else []
            shown.append(sig.summary(value) + (f" ({', '.join(notes)})" if notes else ""))
    if item.error:
        rec["error"] = item.error
    return rec, shown


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


class HashPdqFlavour(StrEnum):
    """``reclaim hash --pdq-flavour`` (reclaim.hashes.pdq)."""

    PYTX = "pytx"
    REFERENCE = "reference"


class ProtectPdqFlavour(StrEnum):
    """``reclaim protect --pdq-flavour`` (reclaim.protect: ``both`` writes a row for each)."""

    BOTH = "both"
    PYTX = "pytx"
    REFERENCE = "reference"


@app.command("hash")
def hash_cmd(
    files: Annotated[list[Path], typer.Argument(help="Image or video files.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    pdq_flavour: Annotated[
        HashPdqFlavour,
        typer.Option(
            "--pdq-flavour",
            help="How a photo is prepared for PDQ: pytx = the full image, as python-threatexchange "
            "and HMA hash it (bit for bit); reference = Meta's reference hasher (EXIF orientation "
            "applied, 512 px thumbnail), what reclaim scan stores.",
        ),
    ] = HashPdqFlavour.PYTX,
) -> None:
    """Hashes of files: every signal reclaim computes (SHA-256, MD5, PDQ with its quality and
    flavour for images, vPDQ frames for videos and animated images)."""
    limits = MediaLimits()
    table = Table("file", "sha256", "perceptual hashes")

    def one(f: Path) -> None:
        rec, shown = _hash_file(f, limits, pdq_flavour.value)
        if rec.get("error"):
            raise InputError(f"{f}: {rec['error']}")
        if as_json:
            print(json.dumps(rec, ensure_ascii=False), flush=True)
        else:
            table.add_row(str(f), rec["sha256"], "\n".join(shown))

    failures = _each_file(files, one)
    if not as_json and table.row_count:
        out.print(table)
    if failures:
        raise typer.Exit(1)


@app.command("protect")
def protect_cmd(
    files: Annotated[list[Path], typer.Argument(help="Private photos or videos to protect.")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="CSV file to write.")],
    pdq_flavour: Annotated[
        ProtectPdqFlavour,
        typer.Option(
            "--pdq-flavour",
            help="PDQ rows to write for a photo: both = one as python-threatexchange and HMA "
            "hash it (pytx) and one as Meta's reference hasher does (reference), when they "
            "differ; or only one of them.",
        ),
    ] = ProtectPdqFlavour.BOTH,
) -> None:
    """StopNCII-style protection: write only the hashes of private photos/videos to a CSV.

    The images never leave this machine and the file holds no names or paths: only numbers a
    platform can match against (ThreatExchange/HMA signal types pdq, md5, video_md5, vpdq).
    """
    from reclaim.protect import analyze_for_protect, now_stamp, protect_rows, rows_to_csv

    limits = MediaLimits()
    rows: list[dict[str, Any]] = []
    created = now_stamp()

    def one(f: Path) -> None:
        item, pdq = analyze_for_protect(
            read_user_file(f, limits, f"use `reclaim scan {f} --case DIR`"),
            limits,
            pdq_flavour.value,
        )
        if item.error:
            raise InputError(f"{f}: {item.error}")
        rows.extend(protect_rows(item, created, pdq))

    failures = _each_file(files, one)
    if not rows:
        fail("no file could be hashed; nothing written", 1)
    with user_errors():
        tmp = out_path.with_name(out_path.name + ".part")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            f.write(rows_to_csv(rows))
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
    workers: Annotated[
        int | None, typer.Option("--workers", "-j", help="Worker processes (default: cores).")
    ] = None,
) -> None:
    """The whole journey on sample data: enroll a public-domain face, scan a collection where
    copies of it hide among abstract patterns, list the findings, draft a removal request, build
    and verify an evidence pack, and print the command that opens the web app on the case."""
    import shlex
    import time

    from reclaim.demo import (
        DEMO_ACTOR,
        DEMO_EMAIL,
        DEMO_NOTIFIER,
        confirm_findings,
        draft_request,
        enroll_sample,
        place_words,
        request_target,
        sample_place,
    )
    from reclaim.report.notices import Notifier
    from reclaim.report.pack import PackOptions, export_case
    from reclaim.report.verify import verify_pack
    from reclaim.sample import FACE_NAME, FACE_SOURCE, VARIANT_WORDS, make_sample_collection
    from reclaim.sources import open_source

    started = time.monotonic()
    steps = 7

    def step(n: int, text: str) -> None:
        out.print(
            f"\n[bold cyan]{n}/{steps}[/] [bold]{text}[/]  "
            f"[dim]({time.monotonic() - started:.0f} s)[/]",
            highlight=False,
            soft_wrap=True,
        )

    def say(text: str) -> None:
        out.print(text, highlight=False, markup=False, soft_wrap=True)

    case = where / "case"
    q = shlex.quote
    with user_errors():
        step(1, "Sample collection")
        sample = make_sample_collection(where / "sample")
        root = (where / "sample").resolve()  # as the sources record their places
        say(
            f"written to {where / 'sample'}: "
            + ", ".join(p.name for p in sample.sources)
            + f". Among abstract test patterns hide {len(sample.face_places)} copies of one "
            f"face — {FACE_SOURCE} — "
            + ", ".join(dict.fromkeys(VARIANT_WORDS[k] for k in sample.face_places.values()))
            + "."
        )

        step(2, f"Enroll the sample face as {FACE_NAME!r}")
        with CaseStore.open(case, create=True) as store:
            templates = enroll_sample(store, FACE_NAME, sample.reference)
        if templates is None:
            say(f"{FACE_NAME!r} is already enrolled in {case} (a demo run again): kept.")
        else:
            say(
                f"enrolled from {sample.reference[0]}: {templates} face template (numbers), the "
                "photo itself not kept. Consent is recorded as the demo's own: it is a "
                "public-domain photo, not someone using reclaim. For yourself: "
                "reclaim enroll --case DIR --name NAME --consent photo.jpg"
            )

        step(3, "Scan with face search and manipulation checks on")
        stats = _run_scan(
            case,
            [open_source(str(p)) for p in sample.sources],
            workers,
            MediaLimits(),
            "demo",
            faces=True,
            check="faces",
        )
    _print_stats(stats, case)
    with user_errors(), CaseStore.open(case) as store:
        errs = store.errors(limit=10)
    if errs:
        say(
            f"{len(errs)} place(s) could not be read, each recorded with its reason and the scan "
            "went on (reclaim status):"
        )
        for where_, why in errs:
            say(f"  · {where_.removeprefix(str(root) + os.sep)}: {why}")

    step(4, "Findings: where the face was found, best match first")
    from reclaim.findings import list_findings

    with user_errors(), CaseStore.open(case) as store:
        found = list_findings(store, FACE_NAME)
    if not found:
        fail(f"the demo found no copy of the sample face; see reclaim status --case {case}", 1)
    for f in found:
        chk = f"check: {f.check['verdict']}" if f.check else "not checked"
        say(f"  {f.score:.2f}  {place_words(f.locator, root)}  [{f.item_sha256[:8]}, {chk}]")
    copies = {sample_place(f.locator, root) for f in found} & set(sample.face_places)
    others = [f for f in found if sample_place(f.locator, root) not in copies]
    say(
        f"{len(copies)} of the {len(sample.face_places)} copies of the face found, "
        + (f"and {len(others)} other finding(s)" if others else "none of the patterns")
        + "."
    )
    with user_errors(), CaseStore.open(case) as store:
        newly = confirm_findings(
            store, FACE_NAME, lambda f: sample_place(f.locator, root) in sample.face_places
        )
    say(
        f"The demo marks the copies as hers ({len(newly)} newly confirmed), as she would after "
        f"looking at each one: reclaim decide ITEM confirmed --case {q(str(case))}"
    )

    step(5, "Draft a removal request")
    target = request_target(found)
    drafted = None
    if target is not None:
        with user_errors(), CaseStore.open(case) as store:
            drafted = draft_request(store, target)
    if target is None or drafted is None:
        fail("the demo could not draft a removal request for any of its findings", 1)
    say(
        f"request #{drafted.request_id} ({drafted.status}"
        + ("" if drafted.created else ", drafted by an earlier run")
        + f") to {drafted.destination}, about {drafted.place}: a letter of "
        f"{drafted.letter_lines} lines, no image in it. Nothing is sent: she sends it herself at "
        f"{drafted.link}, then marks it sent and its clock starts."
    )
    say(f"  read it: reclaim request show --case {q(str(case))} {drafted.request_id}")
    say(f"  once sent: reclaim request mark --case {q(str(case))} {drafted.request_id} sent")

    step(6, "Build the evidence pack, then verify it as a recipient would")
    pack_path = where / "evidence.zip"
    with user_errors(), CaseStore.open(case) as store:
        res = export_case(
            store,
            pack_path,
            PackOptions(notifier=Notifier(DEMO_NOTIFIER, DEMO_EMAIL), lang="en", actor=DEMO_ACTOR),
        )
    say(
        f"wrote {res.path}: {res.items} items with their places, the request, the custody log "
        "and a report"
        + (f", {res.notices} DSA notices" if res.notices else "")
        + f"; signed with the case's key {res.key_fingerprint}"
    )
    with user_errors():
        check = verify_pack(pack_path, expected_key=res.key_fingerprint)
    if not check.ok:
        for p in check.problems:
            err.print(f"[bold red]problem:[/] {p}", highlight=False, soft_wrap=True)
        fail("the demo's evidence pack does not verify", 1)
    say(
        f"verified: {check.items} items, {check.files_checked} files and "
        f"{check.custody_entries} custody entries, signed by the expected key  →  "
        f"reclaim verify-pack {q(str(pack_path))} --key {check.signer}"
    )

    step(7, "Open the web app on this case")
    out.print(
        f"done in {time.monotonic() - started:.0f} s. Open the case in your browser "
        "(http://127.0.0.1:8765, French and English) with:",
        highlight=False,
        soft_wrap=True,
    )
    out.print(f"\n    reclaim serve --case {q(str(case))}\n", highlight=False, markup=False)


# -- face search: enroll, enrollments, unenroll, faces, findings ------------------------------


@app.command("enroll")
def enroll_cmd(
    photos: Annotated[
        list[Path],
        typer.Argument(help="A few reference photos of the person, each with only her face."),
    ],
    case: CaseOpt,
    name: Annotated[str, typer.Option("--name", "-n", help="Name for the enrolled person.")],
    consent: Annotated[
        bool,
        typer.Option("--consent", help="The person has read the consent text and agrees."),
    ] = False,
    consented_by: Annotated[
        str | None,
        typer.Option("--consented-by", help="Who gives consent, if not NAME herself."),
    ] = None,
    passphrase_file: PassphraseFileOpt = None,
) -> None:
    """Enroll a person's face (with her consent) to find her in everything scanned.

    Only face templates (numbers) are stored, never the photos. `reclaim unenroll` deletes them.
    In a case whose templates are locked, the new ones are encrypted under its passphrase.
    """
    from reclaim.enroll import consent_text, enroll

    out.print(consent_text(name, consented_by), highlight=False, markup=False, soft_wrap=True)
    if not consent:
        fail(
            "enrollment needs consent: read the text above, then run the same command "
            "with --consent"
        )
    with user_errors(), CaseStore.open(case, create=True) as store:
        passphrase = None
        if store.templates_locked():
            passphrase = _read_passphrase(passphrase_file, "Passphrase of the face templates")
        res = enroll(
            store, name, photos, consent=True, consented_by=consented_by, passphrase=passphrase
        )
    out.print(
        f"enrolled {res.name!r} from {res.templates} reference photo(s): templates stored, photos "
        f"not kept. {res.findings} finding(s) so far  →  reclaim findings --case {case}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    if res.items_not_searched:
        out.print(
            f"{res.items_not_searched} scanned item(s) were never searched for faces: "
            f"run reclaim faces --case {case}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


@app.command("enrollments")
def enrollments_cmd(
    case: CaseOpt,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """People enrolled in a case: when, who consented, templates and findings."""
    with user_errors(), CaseStore.open(case) as store:
        rows = store.enrollments()
        locked = store.templates_locked()
    if as_json:
        for r in rows:
            r.pop("id", None)
            print(json.dumps(r, ensure_ascii=False))
        return
    if not rows:
        out.print("nobody is enrolled in this case")
        return
    from rich.markup import escape

    t = Table("name", "enrolled at", "consented by", "templates", "findings")
    for r in rows:
        t.add_row(
            escape(r["name"]),
            r["created_at"],
            escape(r["consented_by"] or ""),
            str(r["templates"]),
            str(r["findings"]),
        )
    out.print(t)
    if locked:
        out.print("the templates are locked with a passphrase (reclaim unlock-templates)")


@app.command("unenroll")
def unenroll_cmd(
    case: CaseOpt,
    name: Annotated[str, typer.Option("--name", "-n", help="The enrolled person's name.")],
) -> None:
    """Delete an enrollment for good: templates, consent record and findings."""
    from reclaim.enroll import unenroll

    with user_errors(), CaseStore.open(case) as store:
        unenroll(store, name)
    out.print(
        f"{name!r} unenrolled: templates, consent record and findings deleted for good",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@app.command("lock-templates")
def lock_templates_cmd(case: CaseOpt, passphrase_file: PassphraseFileOpt = None) -> None:
    """Encrypt the face templates of everyone enrolled under a passphrase.

    The clear copies are wiped from the case for good. Face search and enrolling then ask for
    the passphrase; everything else (scans, status, findings, packs, checks) works without it.
    """
    from reclaim.enroll import lock_templates

    with user_errors(), CaseStore.open(case) as store:
        again = store.templates_locked()
        passphrase = _read_passphrase(
            passphrase_file,
            "Passphrase of the face templates"
            if again
            else "New passphrase for the face templates",
            confirm=not again,
        )
        if passphrase is None:
            fail(
                "give the passphrase: type it when asked, or use --passphrase-file or the "
                "RECLAIM_TEMPLATE_PASSPHRASE environment variable"
            )
        n = lock_templates(store, passphrase)
        people = len(store.enrollments())
    if again:
        msg = "the face templates were already locked; old clear copies were wiped again"
    else:
        msg = (
            f"face templates locked: {n} template(s) of {people} enrolled person(s) encrypted "
            "under your passphrase, and their clear copies wiped from the case. Face search and "
            "enrolling will ask for it. Keep it safe: it cannot be recovered (without it: "
            "unenroll everyone, run reclaim unlock-templates, and enroll again)."
        )
    out.print(msg, highlight=False, markup=False, soft_wrap=True)


@app.command("unlock-templates")
def unlock_templates_cmd(case: CaseOpt, passphrase_file: PassphraseFileOpt = None) -> None:
    """Decrypt the face templates locked by `reclaim lock-templates` and keep them in the clear."""
    from reclaim.enroll import unlock_templates

    with user_errors(), CaseStore.open(case) as store:
        if not store.templates_locked():
            fail("the face templates of this case are not locked")
        passphrase = None
        if store.enrollments() or store.sealed_shield_count(active_only=True):
            passphrase = _read_passphrase(passphrase_file, "Passphrase of the face templates")
        n = unlock_templates(store, passphrase)
    out.print(
        f"face templates unlocked: {n} template(s) are stored in the clear again; face search "
        "no longer asks for a passphrase",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@app.command("faces")
def faces_cmd(
    case: CaseOpt,
    workers: Annotated[
        int | None, typer.Option("--workers", "-j", help="Worker processes (default: cores).")
    ] = None,
    check: Annotated[
        str,
        typer.Option(
            "--check",
            help="'faces' (default): also run the pixel manipulation detectors on the items "
            "where faces are found now; 'off': faces only.",
        ),
    ] = "faces",
    passphrase_file: PassphraseFileOpt = None,
) -> None:
    """Look for faces in items scanned before face search was on, then match enrolled people
    (also against the faces a scan left waiting while the templates were locked)."""
    from reclaim.scan import FaceBackfillStats, find_faces_in_case

    with (
        user_errors(),
        CaseStore.open(case) as store,
        _search_passphrase(store, passphrase_file, True) as passphrase,
        _progress() as progress,
    ):
        task = progress.add_task("faces", total=None, rate="0", errors=0, current="")

        def on_progress(s: FaceBackfillStats) -> None:
            import time

            el = max(time.monotonic() - s.started, 1e-6)
            progress.update(
                task,
                total=s.pending,
                completed=s.done + s.unavailable,
                rate=f"{s.done / el:.1f}",
                errors=s.errors,
                current=s.current[-60:],
            )

        stats = find_faces_in_case(
            store, workers=workers, on_progress=on_progress, check=check, passphrase=passphrase
        )
    d = stats.as_dict()
    out.print(
        f"searched {d['done']} of {d['pending']} items for faces in {d['seconds']:.1f} s: "
        f"{d['faces']} faces, {d['errors']} items with errors, {d['findings']} new findings, "
        f"{d['checked']} items checked for manipulation"
        + (
            f"; {d['unavailable']} items are no longer where they were scanned"
            if d["unavailable"]
            else ""
        )
        + f"  →  reclaim findings --case {case}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    _print_deferred(stats.face_search_deferred, case)


@app.command("findings")
def findings_cmd(
    case: CaseOpt,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Only this enrolled person.")
    ] = None,
) -> None:
    """Items where an enrolled person's face was found, best match first."""
    from reclaim.findings import list_findings

    with user_errors(), CaseStore.open(case) as store:
        found = list_findings(store, name)
    if as_json:
        for f in found:
            print(json.dumps(f.as_record(), ensure_ascii=False))
        return
    if not found:
        out.print("no findings")
        return
    from rich.markup import escape

    t = Table("score", "person", "where", "face box", "frame", "manipulation check")
    for f in found:
        where = f.locator.display() if f.locator else f.item_sha256
        chk = f"{f.check['verdict']} ({f.check['score']:.2f})" if f.check else "not checked"
        t.add_row(
            f"{f.score:.3f}", escape(f.enrollment), escape(where), ",".join(map(str, f.box)),
            "" if f.frame is None else f"{f.frame} ({f.timestamp_s or 0:.1f} s)", escape(chk),
        )  # fmt: skip
    out.print(t)


@app.command("decide")
def decide_cmd(
    item: Annotated[
        str,
        typer.Argument(
            help="The item's SHA-256, as `reclaim findings --json` gives it (or its first 8+ "
            "characters)."
        ),
    ],
    decision: Annotated[
        str,
        typer.Argument(
            help=f"{DecisionKind.CONFIRMED} (it's me), {DecisionKind.NOT_ME} or "
            f"{DecisionKind.UNSURE}.",
            show_default=False,
        ),
    ],
    case: CaseOpt,
    note: Annotated[str, typer.Option("--note", help="A note kept with the decision.")] = "",
) -> None:
    """Record your decision on a finding: it's me (confirmed), not me (not_me), or unsure.

    Every decision is kept (the latest counts) and written to the custody log; `reclaim pack`
    exports the confirmed items."""
    from reclaim.decisions import decide, item_named, kind_named

    with user_errors():
        kind = kind_named(decision)  # before the case is opened: a typo changes nothing
        with CaseStore.open(case) as store:
            d = decide(store, item_named(store, item), kind, note)
    out.print(f"{d.item_sha256[:16]}…: {d.decision}", highlight=False, markup=False)


@app.command("serve")
def serve_cmd(
    case: CaseOpt,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8765,
) -> None:
    """The local web app for a case, on http://127.0.0.1:PORT (French and English)."""
    from reclaim.web.app import serve

    with user_errors():
        out.print(f"reclaim: open http://127.0.0.1:{port}/ in your browser (Ctrl-C to stop)")
        serve(case, port=port)


@app.command("pack")
def pack_cmd(
    case: CaseOpt,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Evidence pack ZIP to write.")],
    name: Annotated[str, typer.Option(help="Your name, for the notices.")],
    email: Annotated[str, typer.Option(help="Your email address, for the notices.")],
    item: Annotated[
        list[str] | None, typer.Option(help="Item SHA-256 (default: confirmed findings).")
    ] = None,
    lang: Annotated[str, typer.Option(help="fr or en.")] = "fr",
    reveal: Annotated[bool, typer.Option(help="Unblurred thumbnails in the report.")] = False,
    timestamp: Annotated[
        str | None,
        typer.Option(
            "--timestamp",
            metavar="URL",
            help="Have the seal time-stamped by this RFC 3161 authority (goes online: sends "
            "the seal's SHA-256 only).",
        ),
    ] = None,
) -> None:
    """Build an evidence pack: originals, manifest, custody log, report, DSA notices, PHAROS.

    The seal is signed with the case's key (created on the first pack, in CASE/keys/)."""
    from reclaim.report.notices import Notifier
    from reclaim.report.pack import PackOptions, export_case

    with user_errors(), CaseStore.open(case) as store:
        if "@" not in email:
            raise InputError(f"{email!r} is not an email address")
        options = PackOptions(
            notifier=Notifier(name, email), lang=lang, reveal=reveal, timestamp_url=timestamp
        )
        res = export_case(store, out_path, options, list(item or []))
    out.print(
        f"wrote {res.path}: {res.items} items, {res.notices} DSA notices"
        + (f", {len(res.unreadable)} no longer readable" if res.unreadable else ""),
        highlight=False,
    )
    out.print(f"signed with the case's key {res.key_fingerprint}", highlight=False, soft_wrap=True)
    if res.timestamp is not None:
        out.print(
            f"time-stamped {res.timestamp.time.isoformat()} by {res.timestamp.tsa}",
            highlight=False,
            soft_wrap=True,
        )
    if res.timestamp_error:
        err.print(
            f"[bold red]error:[/] the pack is written but not time-stamped: {res.timestamp_error}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)


@app.command("verify-pack")
def verify_pack_cmd(
    pack: Annotated[Path, typer.Argument(help="Evidence pack ZIP.")],
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            metavar="FINGERPRINT_OR_FILE",
            help="The signing key you expect: its fingerprint, its PEM public key, or the case.",
        ),
    ] = None,
    tsa_cert: Annotated[
        Path | None,
        typer.Option(
            "--tsa-cert", help="The time-stamping authority you trust: certificate (PEM or DER)."
        ),
    ] = None,
) -> None:
    """Check a pack offline: its ZIP read strictly, every hash, the custody chain, the seal's
    signature (and whose key made it) and its time-stamp; name anything altered."""
    from reclaim.report.seal import resolve_pin
    from reclaim.report.timestamp import load_certificates
    from reclaim.report.verify import verify_pack

    with user_errors():
        pin = resolve_pin(key) if key else None
        certs = None
        if tsa_cert is not None:
            try:
                certs = load_certificates(tsa_cert.read_bytes())
            except (OSError, ValueError) as e:
                raise InputError(f"{tsa_cert}: not a readable certificate ({e})") from e
        check = verify_pack(pack, expected_key=pin, tsa_certs=certs)
    if check.ok:
        out.print(
            f"OK: {check.items} items, {check.files_checked} files and "
            f"{check.custody_entries} custody entries verified",
            highlight=False,
        )
        out.print(
            f"signed by key {check.signer}"
            + (
                " (the expected key)"
                if check.key_pinned
                else " (not pinned: compare it with the fingerprint the sender gave you, "
                "or pass --key)"
            ),
            highlight=False,
            soft_wrap=True,
        )
        ts = check.timestamp
        if ts is not None:
            out.print(
                f"time-stamped {ts.time.isoformat()} by {ts.tsa}; authority certificate "
                f"{ts.cert_subject} {ts.cert_fingerprint}"
                + (" (the trusted authority)" if ts.pinned else " (not pinned: --tsa-cert)"),
                highlight=False,
                soft_wrap=True,
            )
        else:
            out.print("not time-stamped")
        return
    for p in check.problems:
        err.print(f"[bold red]problem:[/] {p}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _register_more() -> None:
    from reclaim.api.cli import platform_token_cmd, serve_platform_cmd, shield_keys_app
    from reclaim.check_cli import check_cmd

    app.command("check")(check_cmd)
    app.command("serve-platform")(serve_platform_cmd)
    app.command("platform-token")(platform_token_cmd)
    app.add_typer(shield_keys_app, name="platform-shield-keys")
    from reclaim.shield.cli import shield_app

    app.add_typer(shield_app, name="shield")
    from reclaim.requests.cli import request_app, requests_cmd

    app.command("requests")(requests_cmd)
    app.add_typer(request_app, name="request")
    from reclaim.watch_cli import watch_app

    app.add_typer(watch_app, name="watch")


_register_more()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted — rerun the same command to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
