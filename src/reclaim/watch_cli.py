"""``reclaim watch``: keep watch over a case's sources and alert her (issue 22). Registered in
cli.py with ``app.add_typer(watch_app)``; the watch itself is ``reclaim.watch``.

- ``reclaim watch --case DIR [--once | --every 6h]``: run the watch (once, or on a schedule
  while the command runs); ``--print-cron`` / ``--print-systemd`` print what runs it on a
  schedule she installs herself;
- ``reclaim watch add | remove | list``: the sources to watch;
- ``reclaim watch hashes``: her ``reclaim protect`` hashes, to recognise her private photos;
- ``reclaim watch alert-add | alert-remove | alert-test``: where alerts go (none by default).

Thin: each command calls one operation of ``reclaim.watch`` or ``reclaim.alerts``, which take
the case lock and write the custody entries.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reclaim.store import CaseStore
from reclaim.store.templatelock import TemplateKey

if TYPE_CHECKING:  # the watch (scan, hashes, network) loads on use: `reclaim` starts faster
    from reclaim.watch.run import WatchReport

out = Console()
err = Console(stderr=True)

watch_app = typer.Typer(
    name="watch",
    help="Keep watch: scan the sources you registered again, check the URLs you listed or "
    "asked to have removed, and alert you (never with an image or a link).",
    add_completion=False,
    pretty_exceptions_enable=False,
)

CaseOpt = Annotated[Path, typer.Option("--case", "-c", help="Case directory.")]


class Lang(StrEnum):
    fr = "fr"
    en = "en"


def _say(text: str, *, error: bool = False) -> None:
    (err if error else out).print(text, highlight=False, markup=False, soft_wrap=True)


@watch_app.callback(invoke_without_command=True)
def watch_cmd(
    ctx: typer.Context,
    case: Annotated[
        Path | None, typer.Option("--case", "-c", help="Case directory to watch.")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Run the watch once and stop.")] = False,
    every: Annotated[
        str,
        typer.Option(
            "--every",
            help="How often to run while this command runs (30m, 6h, 1d), or in the printed "
            "cron line or systemd timer.",
        ),
    ] = "6h",
    print_cron: Annotated[
        bool,
        typer.Option("--print-cron", help="Print the crontab line that runs the watch; run none."),
    ] = False,
    print_systemd: Annotated[
        bool,
        typer.Option("--print-systemd", help="Print a systemd user service and timer; run none."),
    ] = False,
    workers: Annotated[
        int | None, typer.Option("--workers", "-j", help="Worker processes (default: cores).")
    ] = None,
    max_mb: Annotated[int, typer.Option(help="Largest download accepted, in MB.")] = 64,
    timeout: Annotated[float, typer.Option(help="Seconds allowed per URL.")] = 30.0,
    passphrase_file: Annotated[
        Path | None,
        typer.Option(
            "--passphrase-file",
            help="When the case's face templates are locked: read their passphrase from this "
            "file's first line. Without it new faces wait for `reclaim faces`.",
        ),
    ] = None,
) -> None:
    """Run the watch: scan the registered sources for new material, check the watched URLs
    (listed, or with a removal request), match new items with your enrollment and protected
    hashes, record what changed and send your alerts.

    Runs every --every (6h) until Ctrl-C; --once runs it once (for cron or systemd)."""
    if ctx.invoked_subcommand is not None:
        return
    from reclaim.cli import fail, user_errors
    from reclaim.sources import SourceLimits
    from reclaim.watch.requested import CaseRequests
    from reclaim.watch.schedule import (
        ScheduledRun,
        WatchScheduler,
        cron_line,
        parse_every,
        systemd_units,
    )

    if case is None:
        fail("give the case to watch: reclaim watch --case DIR (see reclaim watch --help)")
    with user_errors():
        every_s = parse_every(every)
        with CaseStore.open(case) as store:
            locked = store.templates_locked() and store.has_enrollments()
            if print_cron or print_systemd:
                show = cron_line if print_cron else systemd_units
                print(show(case, every_s, passphrase_file=passphrase_file, locked=locked))
                return
            key = _key(store, passphrase_file) if locked else None
            if not store.watch_sources() and not CaseRequests().requested_urls(store):
                _say(
                    "nothing to watch yet: add a folder or a URL list with "
                    f"`reclaim watch add --case {case} SOURCE` (removal requests with a URL are "
                    "checked too)",
                    error=True,
                )
                raise typer.Exit(2)
        limits = SourceLimits(url_max_bytes=max_mb * 1024 * 1024, url_timeout_s=timeout)

        def one() -> WatchReport:
            from reclaim.watch.run import watch_once

            with CaseStore.open(case) as store:
                return watch_once(store, passphrase=key, workers=workers, source_limits=limits)

        if once:
            _print_report(one(), case)
            return

        def shown(r: ScheduledRun) -> None:
            if r.report is not None:
                _print_report(r.report, case)
            else:
                _say(f"watch run failed: {r.failure}", error=True)
            if sched.next_run_at:
                _say(f"next run at {sched.next_run_at} (Ctrl-C to stop)")

        sched = WatchScheduler(one, every_s)
        sched.on_run = shown
        _say(f"watching the case {case} every {every}; Ctrl-C to stop")
        try:
            sched.run_forever()
        except KeyboardInterrupt:
            _say("watch stopped")


def _key(store: CaseStore, passphrase_file: Path | None) -> TemplateKey | None:
    """The key of the locked templates, asked once for every run (None: face search waits)."""
    from reclaim.cli import _read_passphrase

    passphrase = _read_passphrase(
        passphrase_file,
        "Passphrase of the face templates (Enter: watch without face search for now)",
        optional=True,
    )
    return store.template_key(passphrase) if passphrase else None


def _print_report(r: WatchReport, case: Path) -> None:
    from reclaim.watch.run import REASONS

    s = r.summary()
    _say(
        f"watch run #{r.run_id} of {r.case}: {_n(s['places_seen'], 'place')} looked at, "
        f"{_n(s['new_items'], 'new item')}, {_n(s['urls_checked'], 'URL')} checked"
    )
    for problem in r.source_problems:
        _say(f"  cannot read a watched source now: {problem}", error=True)
    if r.attention:
        n = r.attention
        _say(f"{n} new place{'s' * (n != 1)} need{'s' * (n == 1)} your attention:")
        with CaseStore.open(case) as store:
            for e in r.new_places:
                where = _place_of(store, e.sighting_id) or e.item_sha256 or "?"
                _say(f"  - {where} ({REASONS.get(e.reason or '', e.reason)})")
        for e in r.reappeared:
            asked = f" (request #{e.request_id} marked reappeared)" if e.request_id else ""
            _say(f"  - back online: {e.url}{asked}")
    for e in r.replaced:
        _say(f"  a different picture is now at {e.url}")
    for e in r.removed:
        _say(f"  no longer online: {e.url} ({e.detail})")
    if s["still_removed"]:
        _say(f"  {_n(s['still_removed'], 'removed place')} still removed")
    for u in r.urls:
        if u.outcome == "unreachable":
            _say(f"  could not check {u.url}: {u.detail}")
    if r.face_search == "deferred":
        _say(
            "face search waits: the face templates of this case are locked and no passphrase "
            f"was given ({r.faces_waiting} face(s) wait). Run `reclaim faces --case {case}` "
            "with the passphrase; the next watch then reports what it finds.",
            error=True,
        )
    for d in r.alerts:
        state = "sent" if d.delivered else f"NOT sent: {d.detail}"
        _say(f"  alert to target #{d.target_id} ({d.kind}): {state}", error=not d.delivered)
    if not r.attention and not r.removed and not r.replaced:
        _say("nothing new needs your attention")


def _n(n: int, what: str) -> str:
    return f"{n} {what}{'s' * (n != 1)}"


def _place_of(store: CaseStore, sighting_id: int | None) -> str | None:
    if sighting_id is None:
        return None
    loc = store.sighting_locator(sighting_id)
    return None if loc is None else loc.display()


@watch_app.command("add")
def add_cmd(
    sources: Annotated[
        list[Path],
        typer.Argument(
            help="Folders (where you drop Telegram exports or files), exports, archives or "
            "URL lists to watch."
        ),
    ],
    case: CaseOpt,
) -> None:
    """Watch sources from now on: each watch run scans them again for anything new."""
    from reclaim.cli import user_errors
    from reclaim.watch.case import add_source

    with user_errors(), CaseStore.open(case, create=True) as store:
        for spec in sources:
            s = add_source(store, spec)
            _say(f"watching {s.spec} ({s.kind})")
    _say(f"run it: reclaim watch --case {case} --once (or --print-cron to schedule it)")


@watch_app.command("remove")
def remove_cmd(
    source: Annotated[Path, typer.Argument(help="A watched source, as `watch list` shows it.")],
    case: CaseOpt,
) -> None:
    """Stop watching a source (what was found in it stays in the case)."""
    from reclaim.cli import user_errors
    from reclaim.watch.case import remove_source

    with user_errors(), CaseStore.open(case) as store:
        remove_source(store, source)
    _say(f"no longer watching {source}")


@watch_app.command("list")
def list_cmd(
    case: CaseOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """What is watched, where alerts go, and what each watched URL answered last."""
    from reclaim.alerts import shown
    from reclaim.cli import user_errors

    with user_errors(), CaseStore.open(case) as store:
        sources = store.watch_sources()
        targets = store.alert_targets()
        urls = store.url_states()
        hashes = len(store.protected_hashes())
    if as_json:
        print(
            json.dumps(
                {
                    "sources": [{"spec": s.spec, "kind": s.kind, "added_at": s.added_at}
                                for s in sources],
                    "alert_targets": [{"id": t.id, "target": shown(t.target), "lang": t.lang}
                                      for t in targets],
                    "protected_hashes": hashes,
                    "urls": [{"url": u.url, "state": u.state, "detail": u.detail,
                              "checked_at": u.checked_at, "changed_at": u.changed_at}
                             for u in urls.values()],
                },
                ensure_ascii=False,
            )
        )  # fmt: skip
        return
    if not sources:
        _say("no source is watched in this case (reclaim watch add)")
    else:
        t = Table("watched source", "kind", "since")
        for s in sources:
            t.add_row(escape(s.spec), s.kind, s.added_at)
        out.print(t)
    _say(
        "alerts: "
        + (", ".join(f"#{t.id} {shown(t.target)} ({t.lang})" for t in targets) or "none")
        + f"; protected hashes: {hashes}"
    )
    if urls:
        u = Table("URL", "state", "since", "last answer")
        for st in urls.values():
            u.add_row(escape(st.url), st.state, st.changed_at, escape(st.detail or ""))
        out.print(u)


@watch_app.command("hashes")
def hashes_cmd(
    files: Annotated[list[Path], typer.Argument(help="CSV files written by reclaim protect.")],
    case: CaseOpt,
) -> None:
    """Keep the hashes of your private photos (from reclaim protect) in the case, so that the
    watch recognises them wherever they turn up. Numbers only: no image is needed."""
    from reclaim.cli import user_errors
    from reclaim.watch.case import import_protected_hashes, read_hash_file

    with user_errors(), CaseStore.open(case, create=True) as store:
        for f in files:
            new, had = import_protected_hashes(store, read_hash_file(f))
            _say(f"{f}: {new} new hashes kept ({had} were there already)")


@watch_app.command("alert-add")
def alert_add_cmd(
    target: Annotated[
        str,
        typer.Argument(
            help="file:/path/alerts.jsonl, an https:// webhook, or an Apprise URL (e-mail "
            "mailtos://, Signal signal://, Matrix matrix://, ntfy://… with reclaim[alerts])."
        ),
    ],
    case: CaseOpt,
    lang: Annotated[Lang, typer.Option(help="Language of the alerts: fr or en.")] = Lang.fr,
) -> None:
    """Send alerts there too. An alert says how many places need your attention, in which
    case; never an image, a face or a link."""
    from reclaim.alerts import add_target, shown
    from reclaim.cli import user_errors

    with user_errors(), CaseStore.open(case) as store:
        t = add_target(store, target, lang.value)
    _say(f"alerts also go to #{t.id} {shown(t.target)}; try it: reclaim watch alert-test")


@watch_app.command("alert-remove")
def alert_remove_cmd(
    target_id: Annotated[int, typer.Argument(help="The target's number (reclaim watch list).")],
    case: CaseOpt,
) -> None:
    """Stop sending alerts to a target."""
    from reclaim.cli import fail, user_errors

    with user_errors(), CaseStore.open(case) as store, store.writing(wait_s=5.0):
        gone = store.remove_alert_target(target_id)
    if not gone:
        fail(f"no alert target #{target_id} in this case (reclaim watch list)")
    _say(f"alerts no longer go to #{target_id}")


@watch_app.command("alert-test")
def alert_test_cmd(case: CaseOpt) -> None:
    """Send a test alert to every target, to check they work."""
    from reclaim.alerts import Alert, case_label, send_alert
    from reclaim.cli import fail, user_errors

    with user_errors(), CaseStore.open(case) as store:
        done = send_alert(store, Alert(case_label(store.root), 0, test=True))
    if not done:
        fail("no alert target in this case: add one with reclaim watch alert-add")
    for d in done:
        state = "sent" if d.delivered else f"NOT sent: {d.detail}"
        _say(f"target #{d.target_id} ({d.kind}): {state}", error=not d.delivered)
    if not all(d.delivered for d in done):
        raise typer.Exit(1)
