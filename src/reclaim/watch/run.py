"""One watch run: scan her registered sources again, check the URLs she listed or asked to
have removed, find what changed, record it, and alert her where she chose.

What changed, in her words:

- a *new place* needs her attention: a place recorded since the watch began showing an item
  where her enrolled face was found, an item she had confirmed is her (seen again, somewhere
  new), one of her protected photos (the hashes ``reclaim protect`` wrote), or a near copy
  (PDQ) of an item she confirmed. An item she said is not her never is; a place is reported
  once.
- a URL she had removed is *back* (``reappeared``): a URL that answered "gone" at an earlier
  check, or whose request she marked removed, serves the same picture again (the same bytes,
  or a near copy by PDQ); its request is marked "reappeared". A URL serving a *different*
  picture is ``replaced`` (and is a new place if that picture is her).
- a URL went offline since the last check (``removed``; her request can be marked removed),
  or is *still removed*; a URL that gave no answer telling either (timeout, server error) is
  *unreachable* and keeps its last state.

A run is the scan's run in the case (command ``watch``); its events, the URLs' answers and how
far it compared hashes are written in one transaction after the scan. A run killed at any
moment is resumed by the next: the scan skips what it recorded, and places are judged from
where the last finished run stopped (``store.watch``), never twice. Alerts count what no alert
counted yet, so one that could not be sent is sent with the next run's.

Its clock: the times a run stores (when it finished, each URL's answer, each event, when an
alert counted them, a request marked "reappeared") are one instant, ``now`` (as in
``reclaim.requests``: a front end or a test passes its own clock's time; default, the
current time). The scan's own records (when each place was seen, when the run started) stay on
the computer's clock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from reclaim.alerts import Alert, Delivery, case_label, send_alert
from reclaim.hashes import PdqHash, by_exchange_name, signal_type
from reclaim.hashes.pdq import PDQ_MATCH_DISTANCE, PDQ_MIN_QUALITY
from reclaim.media import MediaLimits
from reclaim.report.custody import CustodyLog
from reclaim.scan import ScanStats, scan
from reclaim.sources import Source, SourceLimits
from reclaim.store import CaseStore
from reclaim.store.templatelock import Passphrase
from reclaim.store.watch import UrlState, WatchEvent
from reclaim.watch.requested import CaseRequests, RequestBook, RequestedUrl
from reclaim.watch.sources import UrlAnswer, WatchedUrls, open_watched

__all__ = ["REASONS", "UrlCheck", "WatchReport", "watch_once"]

COMMAND = "watch"

#: Why a new place needs her attention, in the order a place is given one reason.
REASONS = {
    "confirmed": "an item you confirmed is you, seen somewhere new",
    "face": "your enrolled face was found",
    "protected": "one of your protected photos",
    "similar": "a near copy of an item you confirmed",
}


@dataclass(frozen=True)
class UrlCheck:
    """What one URL answered at this run and what that means: ``online``, ``reappeared``,
    ``replaced``, ``removed`` (gone since the last check), ``still_removed``, ``offline`` (gone,
    never seen online) or ``unreachable``."""

    url: str
    outcome: str
    detail: str
    requests: tuple[int, ...] = ()


@dataclass
class WatchReport:
    """What a watch run did. Lists of places hold what the case records (paths, URLs): for
    her screen, never for an alert."""

    run_id: int
    case: str
    sources: list[str] = field(default_factory=list)
    source_problems: list[str] = field(default_factory=list)
    scan: ScanStats | None = None
    urls: list[UrlCheck] = field(default_factory=list)
    new_places: list[WatchEvent] = field(default_factory=list)
    reappeared: list[WatchEvent] = field(default_factory=list)
    removed: list[WatchEvent] = field(default_factory=list)
    replaced: list[WatchEvent] = field(default_factory=list)
    requests_marked: list[int] = field(default_factory=list)
    #: "on", "off" (nobody enrolled), or "deferred" (templates locked, no passphrase)
    face_search: str = "off"
    faces_waiting: int = 0
    alerts: list[Delivery] = field(default_factory=list)
    alert: Alert | None = None
    status: str = "done"

    @property
    def attention(self) -> int:
        return len(self.new_places) + len(self.reappeared)

    def count(self, outcome: str) -> int:
        return sum(1 for u in self.urls if u.outcome == outcome)

    def summary(self) -> dict[str, Any]:
        """Counts only (the run's record and its custody entry carry them)."""
        s = self.scan.as_dict() if self.scan is not None else {}
        return {
            "new_items": s.get("new_items", 0),
            "places_seen": s.get("seen", 0),
            "scan_errors": s.get("errors", 0),
            "new_places": len(self.new_places),
            "reappeared": len(self.reappeared),
            "removed": len(self.removed),
            "replaced": len(self.replaced),
            "still_removed": self.count("still_removed"),
            "urls_checked": len(self.urls),
            "urls_online": self.count("online"),
            "urls_unreachable": self.count("unreachable"),
            "requests_marked_reappeared": len(self.requests_marked),
            "face_search": self.face_search,
            "faces_waiting": self.faces_waiting,
            "source_problems": len(self.source_problems),
        }


def watch_once(
    store: CaseStore,
    *,
    requests: RequestBook | None = None,
    passphrase: Passphrase = None,
    workers: int | None = None,
    media_limits: MediaLimits | None = None,
    source_limits: SourceLimits | None = None,
    client: httpx.Client | None = None,
    on_progress: Callable[[ScanStats], None] | None = None,
    alerts: bool = True,
    now: datetime | None = None,
) -> WatchReport:
    """One watch run of the case (see the module docstring). Returns what it found.

    ``passphrase``: of the case's locked face templates; without it new faces wait (the report
    says ``face_search == "deferred"``). ``source_limits``: the URL caps (those of ``reclaim
    fetch`` by default). ``client``: an httpx client for the URLs (tests; default: fetch's own).
    ``alerts=False`` sends none (they are counted by the next run that sends). ``now``: the
    instant the run's records are stored at (see the module docstring; default: the current
    time). Raises StoreError (CaseBusy) when another writer holds the case, WrongPassphrase for
    a wrong passphrase.
    """
    book = requests if requests is not None else CaseRequests()
    t = clock(now)
    limits = source_limits or SourceLimits()
    with store.writing(wait_s=5.0):
        registered = store.watch_sources()
        baseline, _ = store.watch_marks()
        requested = book.requested_urls(store)
    local, listed, problems = open_watched([(s.spec, s.kind) for s in registered], limits)
    urls = WatchedUrls([*listed, *(r.url for r in requested)], limits, client=client)
    sources: list[Source] = [*local, *([urls] if urls.urls else [])]
    report = WatchReport(0, case_label(store.root), [s.describe() for s in sources], problems)
    before = store.last_run_id()
    stats = scan(
        store,
        sources,
        limits=media_limits,
        workers=workers,
        command=COMMAND,
        on_progress=on_progress,
        passphrase=passphrase,
    )
    report.scan = stats
    with store.writing(wait_s=30.0):
        report.run_id = store.run_of(COMMAND, after=before)
        try:
            _judge(store, report, urls.answers, requested, book, baseline, t)
        except BaseException:
            store.finish_run(report.run_id, "failed", {**stats.as_dict(), "watch": None}, at=iso(t))
            raise
        report.face_search, report.faces_waiting = _face_search_state(store, passphrase)
        store.finish_run(
            report.run_id, "done", {**stats.as_dict(), "watch": report.summary()}, at=iso(t)
        )
        _custody(store, report, urls.answers, t)
    if alerts:
        report.alert, report.alerts = _alert(store, t)
    return report


def clock(now: datetime | None) -> datetime:
    """``now`` (aware, UTC), or the current time (as ``reclaim.requests.steps.clock``)."""
    if now is None:
        return datetime.now(UTC)
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def iso(dt: datetime) -> str:
    """``dt`` as the case stores times (UTC, milliseconds, ``Z``)."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _face_search_state(store: CaseStore, passphrase: Passphrase) -> tuple[str, int]:
    """Whether new faces were matched with the enrolled people, and how many wait."""
    if not store.has_enrollments():
        return "off", 0
    if store.templates_locked() and not passphrase:
        return "deferred", store.faces_awaiting_search()
    return "on", 0


# -- judging what changed -----------------------------------------------------------------------


def _judge(
    store: CaseStore,
    report: WatchReport,
    answers: dict[str, UrlAnswer],
    requested: list[RequestedUrl],
    book: RequestBook,
    baseline: int,
    at: datetime,
) -> None:
    now = iso(at)
    run = report.run_id
    by_url: dict[str, list[RequestedUrl]] = {}
    for r in requested:
        by_url.setdefault(r.url, []).append(r)
    states = store.url_states()
    updates: list[UrlState] = []
    events: list[WatchEvent] = []
    to_mark: list[int] = []
    for url, answer in answers.items():
        check, state, event, marks = _judge_url(
            store, answer, states.get(url), by_url.get(url, []), run, now
        )
        report.urls.append(check)
        updates.append(state)
        if event is not None:
            events.append(event)
        to_mark.extend(marks)
    _, hashes_upto = store.watch_marks()
    upto = store.max_sighting_id()
    flagged: set[int] = set()
    for place in store.new_place_candidates(baseline):
        reason = "confirmed" if place.confirmed else "face"
        events.append(_place_event(run, now, place.sighting_id, place.item_sha256, reason))
        flagged.add(place.sighting_id)
    for sid, (sha, reason) in _hash_matches(store, hashes_upto, upto).items():
        if sid not in flagged:
            events.append(_place_event(run, now, sid, sha, reason))
    written = store.record_watch(updates, events, upto)
    for e in written:
        {
            "new_place": report.new_places,
            "reappeared": report.reappeared,
            "removed": report.removed,
            "replaced": report.replaced,
        }[e.kind].append(e)
    note = "seen online again by reclaim watch"
    for rid in dict.fromkeys(to_mark):
        if book.mark_reappeared(store, rid, note, now=at):
            report.requests_marked.append(rid)


def _place_event(run: int, at: str, sighting: int, sha: str, reason: str) -> WatchEvent:
    return WatchEvent(run, "new_place", at, reason=reason, sighting_id=sighting, item_sha256=sha)


def _judge_url(
    store: CaseStore,
    answer: UrlAnswer,
    prev: UrlState | None,
    reqs: list[RequestedUrl],
    run: int,
    now: str,
) -> tuple[UrlCheck, UrlState, WatchEvent | None, list[int]]:
    """What one URL's answer means, given its last answer and her requests about it:
    (the check, its new state, the event to record, requests to mark reappeared)."""
    url = answer.url
    removed = [r for r in reqs if r.status == "removed"]
    ids = tuple(r.request_id for r in reqs)
    last = prev.state if prev is not None else None
    known = prev.item_sha256 if prev is not None else None

    def state(s: str, sha: str | None) -> UrlState:
        changed = now if last != s else prev.changed_at if prev is not None else now
        return UrlState(url, s, sha, answer.detail, now, changed, run)

    if answer.state == "unreachable":  # tells nothing: the last state stands
        kept = UrlState(
            url, last or "unreachable", known, answer.detail, now,
            prev.changed_at if prev is not None else now, run,
        )  # fmt: skip
        return UrlCheck(url, "unreachable", answer.detail, ids), kept, None, []
    if answer.state == "gone":
        new = state("gone", known)
        if removed or last == "gone":
            return UrlCheck(url, "still_removed", answer.detail, ids), new, None, []
        if last == "online" or reqs:
            event = WatchEvent(
                run, "removed", now, url=url, item_sha256=known, request_id=ids[0] if ids else None,
                detail=answer.detail,
            )  # fmt: skip
            return UrlCheck(url, "removed", answer.detail, ids), new, event, []
        return UrlCheck(url, "offline", answer.detail, ids), new, None, []
    sha = answer.sha256
    assert sha is not None
    new = state("online", sha)
    since = max((r.updated_at for r in removed), default="")
    back = (last == "gone" and (known is not None or bool(removed))) or (
        bool(removed) and not _reported_back(store, url, since)
    )
    reference = removed[0].item_sha256 if removed else known
    if reference is not None and not _same_picture(store, reference, sha):
        if back or (last == "online" and known != sha):
            event = WatchEvent(run, "replaced", now, url=url, item_sha256=sha, detail=answer.detail)
            return UrlCheck(url, "replaced", answer.detail, ids), new, event, []
        return UrlCheck(url, "online", answer.detail, ids), new, None, []
    marks = [r.request_id for r in removed]
    if back:
        event = WatchEvent(
            run, "reappeared", now, url=url, item_sha256=sha,
            request_id=marks[0] if marks else None, detail=answer.detail,
        )  # fmt: skip
        return UrlCheck(url, "reappeared", answer.detail, ids), new, event, marks
    # Her picture, online, its request still "removed": reported back by an earlier run whose
    # marking did not happen (killed in between). Marked now, not reported twice.
    return UrlCheck(url, "online", answer.detail, ids), new, None, marks


def _reported_back(store: CaseStore, url: str, since: str) -> bool:
    """Whether a run already reported ``url`` back after ``since`` (when she marked it
    removed): a request marked removed is reported back once, not at every run."""
    return any(
        e.kind in ("reappeared", "replaced") and e.at >= since for e in store.watch_events(url=url)
    )


def _same_picture(store: CaseStore, a: str, b: str) -> bool:
    """The same bytes, or near copies by PDQ (Meta's match distance)."""
    if a == b:
        return True
    pa, pb = store.item_signals(a).get("pdq"), store.item_signals(b).get("pdq")
    if pa is None or pb is None:
        return False
    if any(q is not None and q < PDQ_MIN_QUALITY for _, q in (pa, pb)):
        return False
    return PdqHash.from_hex(pa[0]) - PdqHash.from_hex(pb[0]) <= PDQ_MATCH_DISTANCE


def _hash_matches(store: CaseStore, after: int, upto: int) -> dict[int, tuple[str, str]]:
    """Places ``after`` < id <= ``upto`` whose item matches one of her protected hashes
    (``protected``) or is a near copy of an item she confirmed (``similar``): {place: (item,
    reason)}."""
    protected: dict[str, list[tuple[str, int | None]]] = {}
    for h in store.protected_hashes():
        sig = by_exchange_name(h.signal_type)
        if sig is not None:
            protected.setdefault(sig.name, []).append((h.signal, h.quality))
    confirmed = [
        (sha, PdqHash.from_hex(v))
        for sha, v, q in store.confirmed_signals("pdq")
        if q is None or q >= PDQ_MIN_QUALITY
    ]
    names = set(protected) | ({"pdq"} if confirmed else set())
    out: dict[int, tuple[str, str]] = {}
    for row in store.place_signals(after, upto, tuple(sorted(names))):
        if row.sighting_id in out:
            continue
        low = row.signal == "pdq" and row.quality is not None and row.quality < PDQ_MIN_QUALITY
        if not low and _matches_any(row.signal, row.value, protected.get(row.signal, [])):
            out[row.sighting_id] = (row.item_sha256, "protected")
        elif not low and row.signal == "pdq" and confirmed:
            mine = PdqHash.from_hex(row.value)
            if any(
                sha != row.item_sha256 and mine - h <= PDQ_MATCH_DISTANCE for sha, h in confirmed
            ):
                out[row.sighting_id] = (row.item_sha256, "similar")
    return out


def _matches_any(signal: str, value: str, hashes: Iterable[tuple[str, int | None]]) -> bool:
    sig = signal_type(signal)
    for h, quality in hashes:
        if signal == "pdq" and quality is not None and quality < PDQ_MIN_QUALITY:
            continue
        with contextlib.suppress(ValueError):
            if sig.compare(h, value).match:
                return True
    return False


# -- custody and alerts -------------------------------------------------------------------------


def _custody(
    store: CaseStore, report: WatchReport, answers: dict[str, UrlAnswer], at: datetime
) -> None:
    """One custody entry per run: what was watched, what each URL answered, what changed (and
    the run's instant, ``at``; the entry's own time is the computer's, as every entry's)."""
    details: dict[str, Any] = {
        "run": report.run_id,
        "at": iso(at),
        **report.summary(),
        "sources": report.sources,
        "urls": {url: a.state for url, a in answers.items()},
        "events": [
            {
                "kind": e.kind,
                **({"reason": e.reason} if e.reason else {}),
                **({"url": e.url} if e.url else {}),
                **({"item": e.item_sha256} if e.item_sha256 else {}),
                **({"request": e.request_id} if e.request_id is not None else {}),
            }
            for e in (*report.new_places, *report.reappeared, *report.removed, *report.replaced)
        ],
    }
    with contextlib.suppress(OSError):
        CustodyLog(store.root).append("watch.run", details)


def _alert(store: CaseStore, at: datetime) -> tuple[Alert | None, list[Delivery]]:
    """Alert about what no alert counted yet (sent, and counted, at ``at``). Without a target
    nothing is sent and the events count as told (they are in the case); when no target got
    it, they wait for the next."""
    pending = store.watch_events(unalerted=True)
    if not pending:
        return None, []
    ids = [e.id for e in pending]
    if not store.alert_targets():
        store.mark_alerted(ids, iso(at))
        return None, []
    alert = Alert(
        case_label(store.root),
        new_places=sum(1 for e in pending if e.kind == "new_place"),
        reappeared=sum(1 for e in pending if e.kind == "reappeared"),
    )
    done = send_alert(store, alert, at=iso(at))
    if any(d.delivered for d in done):
        store.mark_alerted(ids, iso(at))
    return alert, done
