"""Signal values the platform accepts, in ThreatExchange/HMA vocabulary, and bulk formats.

Signal types are the HMA names of the registry (``reclaim.hashes.exchange_names()``: ``sha256``,
``md5`` (photo bytes), ``video_md5``, ``pdq``, ``vpdq``). Every value is validated and put in
canonical form by its type's ``validate`` before it is stored or looked up; a malformed one
raises ``SignalRejected`` with the reason (the API answers 400 with it).

Bulk formats:

- the CSV ``reclaim protect`` writes (``signal_type, signal, quality, media_kind, created_at,
  tool``) — and any CSV with ``signal_type`` and ``signal`` columns: one content item per row,
  other columns kept as metadata;
- JSON in HMA vocabulary: ``{"items": [{"signals": {"pdq": "…"}, "metadata": {…}}]}``.

Hostile input is refused with a reason, never a crash: JSON nested deeper than
``MAX_JSON_DEPTH`` (Python's parser would otherwise hit its recursion limit; a value nested a
few hundred levels could also be stored and then fail every later read), CSV fields over the
``csv`` module's 128 KiB field limit, and metadata over ``MAX_METADATA_BYTES`` however it is
given (a metadata column, extra CSV columns, or both).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from reclaim.errors import ReclaimError
from reclaim.hashes import by_exchange_name, exchange_names

__all__ = [
    "ContentRecord",
    "SignalRejected",
    "canonical",
    "export_csv",
    "load_json",
    "parse_bulk",
]

#: Metadata keys HMA accepts on banked content (plus anything under "json").
HMA_METADATA_KEYS = frozenset({"content_id", "content_uri", "json"})
MAX_METADATA_BYTES = 16 * 1024
#: Deepest nesting of arrays/objects accepted in any JSON the platform reads from a caller.
MAX_JSON_DEPTH = 32

ContentRecord = tuple[list[tuple[str, str, int | None]], dict[str, Any]]


class SignalRejected(ReclaimError):
    """A signal type or value the platform cannot use; the message says why."""


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed JSON value (a scalar: 0). Iterative."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, list):
            deepest = max(deepest, d + 1)
            stack.extend((x, d + 1) for x in v if isinstance(x, (dict, list)))
    return deepest


def load_json(text: str | bytes, what: str = "JSON", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` for text a caller sent: SignalRejected (with the reason) when it is not
    JSON or nests deeper than ``max_depth``."""
    try:
        value = json.loads(text)
    except RecursionError as e:
        raise SignalRejected(f"{what} is nested deeper than {max_depth} levels") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        msg = f"{e.msg} at {e.pos}" if isinstance(e, json.JSONDecodeError) else "not UTF-8"
        raise SignalRejected(f"{what} is not valid JSON: {msg}") from e
    if json_depth(value) > max_depth:
        raise SignalRejected(f"{what} is nested deeper than {max_depth} levels")
    return value


def canonical(signal_type: str, value: str) -> str:
    """The canonical text of a signal value; raises SignalRejected with the reason."""
    sig = by_exchange_name(signal_type)
    if sig is None:
        raise SignalRejected(
            f"unknown signal type {signal_type[:40]!r}; use one of {', '.join(exchange_names())}"
        )
    if not isinstance(value, str) or not value.strip():
        raise SignalRejected(f"{signal_type} value is empty")
    if len(value) > 4_000_000:
        raise SignalRejected(f"{signal_type} value is too long")
    try:
        return sig.validate(value)
    except ValueError as e:
        raise SignalRejected(f"invalid {signal_type}: {e}") from e


def check_metadata(metadata: Any) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise SignalRejected("metadata should be a JSON object")
    if json_depth(metadata) > MAX_JSON_DEPTH:
        raise SignalRejected(f"metadata is nested deeper than {MAX_JSON_DEPTH} levels")
    if len(json.dumps(metadata)) > MAX_METADATA_BYTES:
        raise SignalRejected(f"metadata is larger than {MAX_METADATA_BYTES} bytes")
    return metadata


def signals_from_mapping(
    mapping: dict[str, Any], quality: dict[str, int | None] | None = None
) -> list[tuple[str, str, int | None]]:
    if not mapping:
        raise SignalRejected("no signals given")
    out = []
    for st, value in mapping.items():
        if not isinstance(value, str):
            raise SignalRejected(f"{st} value must be a string")
        out.append((st, canonical(st, value), (quality or {}).get(st)))
    return out


def _quality(text: str | None, row: int) -> int | None:
    if text is None or not str(text).strip():
        return None
    try:
        q = int(str(text).strip())
    except ValueError as e:
        raise SignalRejected(f"row {row}: quality {str(text)[:20]!r} is not a number") from e
    if not 0 <= q <= 100:
        raise SignalRejected(f"row {row}: quality {q} outside 0..100")
    return q


def _csv_records(text: str) -> Iterator[ContentRecord]:
    reader = csv.DictReader(io.StringIO(text))
    n = 1
    try:
        fields = reader.fieldnames or []
        if "signal_type" not in fields or "signal" not in fields:
            raise SignalRejected(
                "CSV needs 'signal_type' and 'signal' columns (as reclaim protect)"
            )
        for n, row in enumerate(reader, start=2):
            yield _csv_record(row, n)
    except csv.Error as e:  # e.g. a field over the csv module's 128 KiB limit
        raise SignalRejected(f"row {n + 1}: {e}") from e


def _csv_record(row: dict[str | Any, Any], n: int) -> ContentRecord:
    st = (row.get("signal_type") or "").strip()
    try:
        value = canonical(st, row.get("signal") or "")
    except SignalRejected as e:
        raise SignalRejected(f"row {n}: {e}") from e
    skip = ("signal_type", "signal", "quality", "content_id", "metadata")
    extra = {k: v for k, v in row.items() if k and k not in skip and v is not None}
    meta: dict[str, Any] = {}
    try:
        if (row.get("metadata") or "").strip():  # our own export: metadata as JSON
            meta = check_metadata(load_json(row["metadata"], "metadata"))
        if extra:  # e.g. protect's media_kind, created_at, tool
            kept = meta.get("json", {})
            if not isinstance(kept, dict):
                raise SignalRejected("metadata 'json' must be an object to take extra columns")
            meta = check_metadata({**meta, "json": {**kept, **extra}})
    except SignalRejected as e:
        raise SignalRejected(f"row {n}: {e}") from e
    return [(st, value, _quality(row.get("quality"), n))], meta


def _json_records(data: Any) -> Iterator[ContentRecord]:
    items = data.get("items") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise SignalRejected('JSON import needs {"items": [{"signals": {...}}, ...]}')
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("signals"), dict):
            raise SignalRejected(f"item {n}: needs a 'signals' object")
        try:
            quality = item.get("quality") or {}
            if not isinstance(quality, dict):
                raise SignalRejected("'quality' must map signal types to numbers")
            sigs = signals_from_mapping(
                item["signals"], {k: _quality(v, n) for k, v in quality.items()}
            )
            meta = check_metadata(item.get("metadata"))
        except SignalRejected as e:
            raise SignalRejected(f"item {n}: {e}") from e
        yield sigs, meta


def parse_bulk(body: bytes, content_type: str) -> list[ContentRecord]:
    """Content items from an import body (CSV or JSON). All-or-nothing: raises on any bad row."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SignalRejected("import must be UTF-8 text") from e
    looks_json = "json" in content_type or text.lstrip().startswith(("{", "["))
    if looks_json:
        return list(_json_records(load_json(text, "import")))
    return list(_csv_records(text))


EXPORT_FIELDS = ["content_id", "signal_type", "signal", "quality", "metadata"]


def export_csv(rows: list[tuple[int, str, str, int | None, dict[str, Any]]]) -> str:
    """CSV that ``parse_bulk`` reads back (signal_type/signal/quality + metadata JSON)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(EXPORT_FIELDS)
    for cid, st, value, q, meta in rows:
        w.writerow([cid, st, value, "" if q is None else q, json.dumps(meta, sort_keys=True)])
    return buf.getvalue()
