"""When the watch runs: a scheduler that runs it every so often while reclaim runs (``reclaim
watch --every 6h``, the web app), or a cron line / systemd timer she installs herself.

The scheduler runs the watch, then waits until ``every`` after that run *began* (a run longer
than ``every`` is followed at once by the next); a run that fails (the case busy with a scan,
a source unplugged) is reported and the schedule goes on. ``stop`` ends the wait at once.
"""

from __future__ import annotations

import re
import shlex
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reclaim.errors import InputError, ReclaimError
from reclaim.watch.run import WatchReport

__all__ = [
    "DEFAULT_EVERY",
    "WatchScheduler",
    "cron_line",
    "every_text",
    "parse_every",
    "systemd_units",
    "watch_command",
]

DEFAULT_EVERY = "6h"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EVERY = re.compile(r"^\s*(\d+)\s*([smhd])\s*$", re.IGNORECASE)


def parse_every(text: str) -> float:
    """Seconds in ``30m``, ``6h``, ``1d`` (or ``90s``). InputError for anything else."""
    m = _EVERY.match(text)
    if m is None or int(m.group(1)) <= 0:
        raise InputError(
            f"{text!r} is not an interval: write a whole number and a unit, e.g. 30m, 6h or 1d"
        )
    return float(int(m.group(1)) * _UNITS[m.group(2).lower()])


def every_text(seconds: float) -> str:
    """The shortest exact form of an interval (``21600`` → ``6h``)."""
    s = int(seconds)
    for unit in ("d", "h", "m"):
        if s % _UNITS[unit] == 0:
            return f"{s // _UNITS[unit]}{unit}"
    return f"{s}s"


def _cron_schedule(seconds: float) -> str:
    """The five cron fields for ``every``. InputError for an interval cron cannot keep."""
    s = int(seconds)
    if s % 60 or s < 60:
        raise InputError("cron runs at most once a minute, on whole minutes: use e.g. 30m or 6h")
    minutes = s // 60
    if minutes < 60 and 60 % minutes == 0:
        return f"*/{minutes} * * * *" if minutes > 1 else "* * * * *"
    if minutes % 60 == 0 and minutes < 24 * 60 and (24 * 60) % minutes == 0:
        hours = minutes // 60
        return f"0 */{hours} * * *" if hours > 1 else "0 * * * *"
    if minutes % (24 * 60) == 0:
        days = minutes // (24 * 60)
        return f"0 3 */{days} * *" if days > 1 else "0 3 * * *"
    raise InputError(
        f"cron cannot run every {every_text(seconds)} evenly: use a number of minutes that "
        "divides an hour (5m, 10m, 15m, 20m, 30m), of hours that divides a day (1h, 2h, 3h, "
        "4h, 6h, 8h, 12h), or of days (1d, 2d), or use --print-systemd"
    )


def watch_command(case: Path, passphrase_file: Path | None = None) -> list[str]:
    """The command that runs one watch of ``case`` with this reclaim (absolute paths)."""
    script = Path(sys.executable).with_name("reclaim")
    base = [str(script)] if script.is_file() else [sys.executable, "-m", "reclaim.cli"]
    cmd = [*base, "watch", "--case", str(case.expanduser().resolve()), "--once"]
    if passphrase_file is not None:
        cmd += ["--passphrase-file", str(passphrase_file.expanduser().resolve())]
    return cmd


def _locked_note(locked: bool, passphrase_file: Path | None) -> list[str]:
    if not locked or passphrase_file is not None:
        return []
    return [
        "# The face templates of this case are locked: unattended runs cannot ask for the",
        "# passphrase, so new faces wait until you run `reclaim faces` (or add",
        "# --passphrase-file FILE, a file only you can read).",
    ]


def cron_line(
    case: Path, every_s: float, *, passphrase_file: Path | None = None, locked: bool = False
) -> str:
    """What to paste in ``crontab -e``: comment lines and the line running the watch."""
    case = case.expanduser().resolve()
    cmd = " ".join(shlex.quote(a) for a in watch_command(case, passphrase_file))
    log = shlex.quote(str(case / "watch.log"))
    line = f"{_cron_schedule(every_s)} {cmd} >> {log} 2>&1".replace("%", r"\%")
    return "\n".join(
        [
            f"# reclaim: watch the case {case.name} every {every_text(every_s)}.",
            "# Add it with `crontab -e` (paste this line at the end); remove the line to stop.",
            *_locked_note(locked, passphrase_file),
            line,
        ]
    )


def _systemd_quote(arg: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", arg):
        return arg.replace("%", "%%")
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


def _unit_name(case: Path) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", case.name).strip("-.") or "case"
    return f"reclaim-watch-{safe}"


def systemd_units(
    case: Path, every_s: float, *, passphrase_file: Path | None = None, locked: bool = False
) -> str:
    """A systemd user service and timer running the watch, with how to install them."""
    case = case.expanduser().resolve()
    name = _unit_name(case)
    cmd = " ".join(_systemd_quote(a) for a in watch_command(case, passphrase_file))
    every = every_text(every_s)
    return "\n".join(
        [
            f"# reclaim: watch the case {case.name} every {every}, as a systemd user timer.",
            f"# Save the two units below as ~/.config/systemd/user/{name}.service and",
            f"# ~/.config/systemd/user/{name}.timer, then run:",
            f"#   systemctl --user daemon-reload && systemctl --user enable --now {name}.timer",
            f"# Stop with: systemctl --user disable --now {name}.timer",
            *_locked_note(locked, passphrase_file),
            "",
            f"# --- {name}.service",
            "[Unit]",
            f"Description=reclaim watch of the case {case.name}",
            "",
            "[Service]",
            "Type=oneshot",
            f"ExecStart={cmd}",
            "Nice=10",
            "",
            f"# --- {name}.timer",
            "[Unit]",
            f"Description=reclaim watch of the case {case.name}, every {every}",
            "",
            "[Timer]",
            "OnBootSec=5min",
            f"OnUnitActiveSec={every}",
            "Persistent=true",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )


@dataclass
class ScheduledRun:
    """One run of the scheduler: when it began, and its report or why it failed."""

    started_at: str
    report: WatchReport | None = None
    failure: str | None = None


class WatchScheduler:
    """Runs ``run`` (one watch) every ``every_s`` seconds until stopped.

    For the web app: ``start()`` runs it in a daemon thread, ``stop()`` ends it, and
    ``last``/``next_run_at`` say what happened and when the next run is. ``run`` is, e.g.,
    ``lambda: watch_case(case)``. A ReclaimError of one run (the case busy) is kept in
    ``last.failure`` and the schedule goes on; any other error too, with its type.
    """

    def __init__(
        self,
        run: Callable[[], WatchReport],
        every_s: float,
        *,
        on_run: Callable[[ScheduledRun], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if every_s <= 0:
            raise InputError("the interval between watch runs must be positive")
        self.run = run
        self.every_s = every_s
        self.on_run = on_run
        self.clock = clock
        self.runs = 0
        self.last: ScheduledRun | None = None
        self.next_run_at: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_forever(self, max_runs: int | None = None) -> int:
        """Run now, then every ``every_s`` seconds, until ``stop()`` (or ``max_runs`` runs).
        Returns how many runs were made."""
        while not self._stop.is_set():
            began = self.clock()
            rec = self._one()
            last = max_runs is not None and self.runs >= max_runs
            wait = max(0.0, self.every_s - (self.clock() - began))
            self.next_run_at = None if last else _iso_in(wait)
            if self.on_run is not None:
                self.on_run(rec)
            if last or self._stop.wait(wait):
                break
        self.next_run_at = None
        return self.runs

    def _one(self) -> ScheduledRun:
        rec = ScheduledRun(_iso_in(0))
        try:
            rec.report = self.run()
        except ReclaimError as e:
            rec.failure = str(e)
        except Exception as e:  # a schedule must survive one bad run; the failure is shown
            rec.failure = f"unexpected error: {type(e).__name__}: {e}"
        self.runs += 1
        self.last = rec
        return rec

    def start(self) -> threading.Thread:
        """Run the schedule in a daemon thread (the web app's)."""
        if self._thread is not None and self._thread.is_alive():
            raise ReclaimError("the watch schedule is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_forever, name="reclaim-watch", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = None) -> None:
        """End the schedule: the wait ends at once; a run in progress finishes first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def _iso_in(seconds: float) -> str:
    at = datetime.now(UTC) + timedelta(seconds=seconds)
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")
