"""Names the tests import from HMA's matching blueprint: its response types (plain aliases),
and its in-process index cache, which only exists inside HMA."""

from __future__ import annotations

from typing import Any, TypedDict

from OpenMediaMatch.harness import HmaInternal


class MatchWithDistancePayload(TypedDict):
    bank_content_id: int
    distance: str


TMatchByBank = dict[str, list[MatchWithDistancePayload]]
IndexCache = dict[str, Any]


class _SignalIndexInMemoryCache:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise HmaInternal("blueprints.matching._SignalIndexInMemoryCache (HMA's in-process cache)")


def _get_index_cache() -> IndexCache:
    raise HmaInternal("blueprints.matching._get_index_cache (HMA's in-process cache)")
