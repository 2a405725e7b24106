"""The person's decisions on findings: "it's me" / "not me" / "unsure", with notes.

Every decision is kept (append-only; the latest one counts) and ``decide`` writes its custody
entry, whichever front end calls it, so an evidence pack shows who decided what and when.

A decision does not take the case lock. It appends one row that no other writer touches (a scan
writes items, faces and findings; an enrollment its templates and findings; a deletion removes
templates and findings, never decisions), and SQLite serialises the write itself. So the person
can go through her findings, and decide, while a scan of more material runs: the scan holds the
lock for its whole run, and waiting for it would lose her decision.
"""

from __future__ import annotations

from reclaim.errors import InputError
from reclaim.report.custody import CustodyLog, default_actor
from reclaim.store import CaseStore
from reclaim.store.case import now_iso
from reclaim.store.decisions import Decision, DecisionKind

__all__ = [
    "Decision",
    "DecisionKind",
    "confirmed_items",
    "current",
    "decide",
    "item_named",
    "kind_named",
    "selected_for_export",
]

#: Shortest SHA-256 prefix accepted for an item (``reclaim decide``).
MIN_PREFIX = 8


def kind_named(text: str) -> DecisionKind:
    """The decision a front end was given (``reclaim decide``, the item page's form).
    Raises InputError for anything else."""
    try:
        return DecisionKind(text)
    except ValueError:
        raise InputError(f"decision must be one of {', '.join(DecisionKind)}") from None


def decide(
    store: CaseStore,
    item_sha256: str,
    decision: str,
    note: str = "",
    *,
    actor: str | None = None,
    enrollment: str | None = None,
) -> Decision:
    """Record a decision (committed before returning) and its custody entry.

    ``actor``: who decided (default: this computer's user name). Raises InputError for an
    unknown item or decision.
    """
    kind = kind_named(decision)
    if not store.known_item(item_sha256):
        raise InputError(f"item {item_sha256[:16]}… is not in this case")
    actor = actor or default_actor()
    d = Decision(item_sha256, kind, note.strip()[:2000], actor, now_iso(), enrollment)
    store.add_decision(d)
    CustodyLog(store.root).append(
        "decision",
        {"item": item_sha256, "decision": kind.value, "note": d.note, "enrollment": enrollment},
        actor=actor,
    )
    return d


def current(store: CaseStore) -> dict[str, Decision]:
    """The latest decision per item, by item SHA-256."""
    return {d.item_sha256: d for d in store.latest_decisions()}


def confirmed_items(store: CaseStore) -> list[str]:
    """Items whose latest decision is "it's me"."""
    return [sha for sha, d in current(store).items() if d.decision is DecisionKind.CONFIRMED]


def selected_for_export(store: CaseStore) -> list[str]:
    """Items the person confirmed as showing her. Raises InputError when there is none."""
    items = confirmed_items(store)
    if not items:
        raise InputError(
            "no confirmed finding yet: mark a finding as you first, or name the items to export"
        )
    return items


def item_named(store: CaseStore, text: str) -> str:
    """The item a person names by its SHA-256 or its first ``MIN_PREFIX``+ characters.
    Raises InputError when none or several items match."""
    t = text.strip().lower()
    if len(t) < MIN_PREFIX:
        raise InputError(f"give the item's SHA-256 (at least its first {MIN_PREFIX} characters)")
    found = store.items_with_prefix(t)
    if not found:
        raise InputError(f"item {t[:16]}… is not in this case")
    if len(found) > 1:
        raise InputError(f"{t!r} names more than one item: give more of its SHA-256")
    return found[0]
