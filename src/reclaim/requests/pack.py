"""Requests in the evidence pack: ``requests.json`` (every request about the pack's items, with
its place, status, dates, next step and history) and each letter as drafted
(``requests/request-<id>-<destination>.txt``). ``reclaim.report.pack.build_pack`` adds these
files before its export custody entry, which lists them by hash, so ``verify-pack`` checks them
like every other file."""

from __future__ import annotations

import json
from datetime import datetime

from reclaim.requests.case import list_requests
from reclaim.requests.catalog import Catalog, CatalogError, current_catalog
from reclaim.store import CaseStore

#: ``format`` of ``requests.json``.
PACK_FORMAT = "reclaim-requests/1"


def pack_files(
    store: CaseStore,
    items: list[str],
    *,
    now: datetime | None = None,
    cat: Catalog | None = None,
) -> dict[str, bytes]:
    """The pack's request files for ``items`` (empty when none has a request)."""
    wanted = set(items)
    if cat is None:
        try:
            cat = current_catalog()
        except CatalogError:  # broken data files must not stop an export: ids stand in
            cat = Catalog({})
    views = [v for v in list_requests(store, now=now, cat=cat) if v.request.item_sha256 in wanted]
    if not views:
        return {}
    files: dict[str, bytes] = {}
    records = []
    for v in views:
        name = f"requests/request-{v.id}-{v.destination.id}.txt"
        files[name] = v.request.letter.encode()
        rec = v.as_record()
        rec["letter_file"] = name
        records.append(rec)
    doc = {"format": PACK_FORMAT, "requests": records}
    files["requests.json"] = json.dumps(doc, indent=2, ensure_ascii=False).encode()
    return files
