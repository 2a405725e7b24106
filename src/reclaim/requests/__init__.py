"""Removal requests with their clocks (issue 22): from a confirmed finding to a request sent,
followed up and escalated until the content is gone, and kept gone.

- ``catalog``: the destinations (hosting platforms under the DSA, TAKE IT DOWN Act requests,
  Telegram, search engines, hash submission, helplines, trusted flaggers, PHAROS, a complaint,
  regulators), read from the data files ``destinations/*.toml`` in French and English;
- ``places``: the places a confirmed item was seen, as a letter may name them;
- ``proposals``: which destinations suit an item, place by place (``propose``);
- ``letters``: the drafted letter (``templates/*.txt.j2``): never an image;
- ``steps``: a request's clock and what comes next (the escalation chain);
- ``case``: draft, mark, escalate, list and overview, with their custody entries;
- ``pack``: the requests and letters an evidence pack carries.

A web handler calls the same functions as the CLI: ``propose(store, finding)``,
``draft(store, item, destination)``, ``mark(store, id, "sent")``, ``overview(store)``;
``reclaim watch`` reads ``requested_urls(store)`` and marks ``"reappeared"``.
"""

from reclaim.requests.case import (
    TRANSITIONS,
    Drafted,
    Overview,
    RequestedUrl,
    RequestView,
    contact,
    draft,
    escalate,
    get_request,
    list_requests,
    mark,
    overview,
    request_view,
    requested_urls,
    set_contact,
    status_named,
)
from reclaim.requests.catalog import (
    Catalog,
    CatalogError,
    Destination,
    check_catalog,
    current_catalog,
    load_catalog,
)
from reclaim.requests.places import Place, places_of
from reclaim.requests.proposals import Proposal, propose
from reclaim.requests.steps import NextStep, next_step
from reclaim.store.requests import RequestEvent, RequestRecord, RequestStatus

__all__ = [
    "TRANSITIONS",
    "Catalog",
    "CatalogError",
    "Destination",
    "Drafted",
    "NextStep",
    "Overview",
    "Place",
    "Proposal",
    "RequestEvent",
    "RequestRecord",
    "RequestStatus",
    "RequestView",
    "RequestedUrl",
    "check_catalog",
    "contact",
    "current_catalog",
    "draft",
    "escalate",
    "get_request",
    "list_requests",
    "load_catalog",
    "mark",
    "next_step",
    "overview",
    "places_of",
    "propose",
    "request_view",
    "requested_urls",
    "set_contact",
    "status_named",
]
