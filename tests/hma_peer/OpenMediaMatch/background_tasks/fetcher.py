"""HMA's fetcher task: runs inside HMA's process over its storage object."""

from __future__ import annotations

from typing import Any

from OpenMediaMatch.harness import HmaInternal


def fetch_all(*args: Any, **kwargs: Any) -> None:
    raise HmaInternal("background_tasks.fetcher.fetch_all (HMA's fetch task over its storage)")
