"""pytest plugin (``-p hma_harness``) for running Meta's HMA API tests against reclaim: it
deselects the tests that can only run inside HMA's own process, each with its reason, and writes
what it deselected to ``$RECLAIM_HMA_REPORT`` (JSON) for ``tests/test_hma_peer.py``.

Every other test of the suite drives the HTTP API and must pass.
"""

from __future__ import annotations

import json
import os

import pytest
from OpenMediaMatch.harness import MIRROR

_STORAGE = "HMA's storage object (get_storage(): {})"
_CONFIG = "HMA's Flask app config ({}): a setting of HMA's own process"

#: Test (file::name) → why it cannot run against another service over HTTP.
INTERNAL_ONLY: dict[str, str] = {
    # HMA's in-process index cache, replaced by monkeypatching a function of HMA's process
    "test_api.py::test_status_response": (
        "monkeypatches HMA's in-process index cache (blueprints.matching._get_index_cache) "
        "to make /status answer 503"
    ),
    "test_api.py::test_status_live_always_alive": (
        "monkeypatches HMA's in-process index cache (blueprints.matching._get_index_cache)"
    ),
    "test_api.py::test_lookup_success": _STORAGE.format(
        "asserts HMA's storage holds no built PDQ index, get_signal_type_index"
    ),
    "test_api.py::test_lookup_without_role": _CONFIG.format("ROLE_HASHER = False"),
    "test_api.py::test_exchange_api_set_auth": _STORAGE.format(
        "replaces storage.exchange_types, the exchange APIs HMA's process has installed"
    ),
    "test_api.py::test_exchange_api_schema": _STORAGE.format(
        "replaces storage.exchange_types, the exchange APIs HMA's process has installed"
    ),
    "test_api_banks.py::test_banks_add_hash_index": _STORAGE.format(
        "asserts HMA's storage holds no built PDQ index, get_signal_type_index"
    ),
    "test_match_api.py::test_raw_lookups": _STORAGE.format(
        "exchange_api_config_update, exchange_update, fetcher.fetch_all and "
        "get_signal_type_configs set up and read HMA's exchange and signal-type storage"
    ),
    "test_match_api.py::test_lookups": _STORAGE.format(
        "exchange_api_config_update, exchange_update, fetcher.fetch_all and "
        "get_signal_type_configs set up and read HMA's exchange and signal-type storage"
    ),
    # test_hashing.py calls a Python function of HMA's hashing blueprint, sets HMA's app config
    # and patches requests.get inside the test process (the service fetches in its own)
    "test_hashing.py::test_valid_urls": "calls HMA's Python function is_valid_url",
    "test_hashing.py::test_invalid_schemes": "calls HMA's Python function is_valid_url",
    "test_hashing.py::test_missing_scheme_or_netloc": "calls HMA's Python function is_valid_url",
    "test_hashing.py::test_malformed_urls": "calls HMA's Python function is_valid_url",
    "test_hashing.py::test_allowed_hostnames": (
        "calls HMA's Python function is_valid_url under " + _CONFIG.format("ALLOWED_HOSTNAMES")
    ),
    "test_hashing.py::test_empty_allowed_hostnames": (
        "calls HMA's Python function is_valid_url under " + _CONFIG.format("ALLOWED_HOSTNAMES")
    ),
    "test_hashing.py::test_content_length_validation": (
        "patches requests.get in the test process to fake a remote file's headers; the "
        "service downloads in its own process"
    ),
    "test_hashing.py::test_content_length_validation_default": (
        "patches requests.get in the test process; " + _CONFIG.format("MAX_REMOTE_FILE_SIZE")
    ),
    "test_hashing.py::test_content_length_validation_misconfiguration": (
        "patches requests.get in the test process; " + _CONFIG.format("MAX_REMOTE_FILE_SIZE")
    ),
}

#: Tests that bank a file of facebook/ThreatExchange by its GitHub URL: run offline from
#: ../shared/data/threatexchange (OpenMediaMatch.harness.GITHUB_RAW), deselected without it.
NEEDS_MIRROR = (
    "test_api_banks.py::test_bank_get_content_returns_stored_metadata",
    "test_api_banks.py::test_bank_get_content_include_metadata_false",
    "test_api_banks.py::test_bank_get_content_without_metadata_omitted",
)


def _key(item: pytest.Item) -> str:
    return f"{item.path.name}::{item.name}"


def reasons() -> dict[str, str]:
    out = dict(INTERNAL_ONLY)
    if not MIRROR.is_dir():
        for k in NEEDS_MIRROR:
            out[k] = f"banks a GitHub URL and the offline copy {MIRROR} is absent"
    return out


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    why = reasons()
    kept, dropped = [], []
    for item in items:
        (dropped if _key(item) in why else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    report = os.environ.get("RECLAIM_HMA_REPORT")
    if report:
        collected = {_key(i) for i in kept + dropped}
        with open(report, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "deselected": {_key(i): why[_key(i)] for i in dropped},
                    "listed_but_absent": sorted(set(why) - collected),
                    "collected": sorted(collected),
                    "internal_only": sorted(INTERNAL_ONLY),
                    "needs_mirror": list(NEEDS_MIRROR),
                },
                f,
                indent=1,
            )
