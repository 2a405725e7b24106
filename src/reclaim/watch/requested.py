"""The removal requests a watch run checks: which URLs she asked to have removed, and marking a
request "reappeared" when its URL is back.

The watch only needs these two things from the requests (``reclaim.requests``), so it asks for
them through ``RequestBook``; ``CaseRequests`` is the case's own book (``store.requests()`` and
``reclaim.requests.case.mark``). A test or another front end may hand ``watch_once`` a book of
its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from reclaim.store import CaseStore

__all__ = ["ACTOR", "CaseRequests", "RequestBook", "RequestedUrl"]

#: Who marks a request "reappeared" in its history and the custody log.
ACTOR = "reclaim watch"


@dataclass(frozen=True)
class RequestedUrl:
    """A request about a place with an http(s) URL."""

    request_id: int
    url: str
    item_sha256: str
    status: str  # draft | sent | acknowledged | removed | refused | reappeared
    updated_at: str  # when its status last changed (ISO 8601 UTC)


class RequestBook(Protocol):
    def requested_urls(self, store: CaseStore) -> list[RequestedUrl]:
        """Every request whose place is an http(s) URL."""
        ...

    def mark_reappeared(
        self, store: CaseStore, request_id: int, note: str, *, now: datetime | None = None
    ) -> bool:
        """Mark a request "reappeared" at ``now`` (the run's instant; default the current
        time), with its history and custody entry; False when it is no longer "removed" (she
        changed it meanwhile)."""
        ...


class CaseRequests:
    """The case's removal requests (``reclaim.requests``)."""

    def requested_urls(self, store: CaseStore) -> list[RequestedUrl]:
        out = []
        for r in store.requests():
            place = r.place
            if place is None or place.kind != "url":
                continue
            if not place.path.lower().startswith(("http://", "https://")):
                continue
            out.append(RequestedUrl(r.id, place.path, r.item_sha256, r.status.value, r.updated_at))
        return out

    def mark_reappeared(
        self, store: CaseStore, request_id: int, note: str, *, now: datetime | None = None
    ) -> bool:
        from reclaim.errors import InputError
        from reclaim.requests.case import mark
        from reclaim.store.requests import RequestStatus

        try:
            mark(store, request_id, RequestStatus.REAPPEARED, note=note, actor=ACTOR, now=now)
        except InputError:  # she changed it meanwhile (or it is gone): hers stands
            return False
        return True
