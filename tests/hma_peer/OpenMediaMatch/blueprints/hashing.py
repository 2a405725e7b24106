"""Names the tests import from HMA's hashing blueprint: a Python function and a config default
of HMA's process, not API behaviour."""

from __future__ import annotations

from typing import Any

from OpenMediaMatch.harness import HmaInternal

#: Not HMA's setting: reclaim's own upload cap (``serve-platform --max-upload-mb``, 32 MiB); only
#: the deselected tests read it.
DEFAULT_MAX_REMOTE_FILE_SIZE = 32 * 1024 * 1024


def is_valid_url(*args: Any, **kwargs: Any) -> bool:
    raise HmaInternal("blueprints.hashing.is_valid_url (a function inside HMA's process)")
