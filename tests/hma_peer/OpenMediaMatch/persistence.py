"""HMA's ``get_storage()``: here the HTTP-backed stand-in of the running test's service."""

from __future__ import annotations

from OpenMediaMatch.harness import HttpStorage, current


def get_storage() -> HttpStorage:
    return current().storage
