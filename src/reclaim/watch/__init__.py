"""Keep watch: scan the sources she registered again, check the URLs she listed or asked to
have removed, tell her what changed, and alert her where she chose (issue 22).

- ``case``: what she sets up (``add_source``, ``remove_source``, ``import_protected_hashes``)
  and the watch at a glance (``overview``); where alerts go is ``reclaim.alerts.add_target``;
- ``sources``: what a run reads (drop folders, exports, URL lists, requested URLs);
- ``run``: one run (``watch_once``) and what it found (``WatchReport``);
- ``requested``: the removal requests it checks (``RequestBook``);
- ``schedule``: running it every so often (``WatchScheduler``), or printing a cron line or
  systemd units;
- ``reclaim.watch_cli``: ``reclaim watch``.

For a front end that holds no store: ``watch_case(case_dir)`` opens the case, runs once and
closes it (what ``WatchScheduler`` runs in the web app).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from reclaim.store import CaseStore
from reclaim.store.templatelock import Passphrase
from reclaim.watch.case import (
    WatchOverview,
    add_source,
    import_protected_hashes,
    overview,
    remove_source,
)
from reclaim.watch.requested import CaseRequests, RequestBook, RequestedUrl
from reclaim.watch.run import REASONS, UrlCheck, WatchReport, watch_once
from reclaim.watch.schedule import (
    WatchScheduler,
    cron_line,
    every_text,
    parse_every,
    systemd_units,
)

__all__ = [
    "REASONS",
    "CaseRequests",
    "RequestBook",
    "RequestedUrl",
    "UrlCheck",
    "WatchOverview",
    "WatchReport",
    "WatchScheduler",
    "add_source",
    "cron_line",
    "every_text",
    "import_protected_hashes",
    "overview",
    "parse_every",
    "remove_source",
    "systemd_units",
    "watch_case",
    "watch_once",
]


def watch_case(
    case: Path,
    *,
    passphrase: Passphrase = None,
    workers: int | None = None,
    now: datetime | None = None,
) -> WatchReport:
    """Open the case at ``case``, run the watch once, close it. ``passphrase`` (or the
    ``TemplateKey`` the web app derived from it) opens locked face templates; ``now``: the
    instant the run's records are stored at (the web app's clock; default the current time)."""
    with CaseStore.open(case) as store:
        return watch_once(store, passphrase=passphrase, workers=workers, now=now)
