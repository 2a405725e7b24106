"""A reclaim platform service as a python-threatexchange exchange (``reclaim``): pull one of its
banks over HTTP with an API token, incrementally.

The service answers ``GET /c/bank/NAME/feed?after=SEQ`` (token scope ``fetch``): the bank's
content items added, changed or removed since ``SEQ``, each with its current signals (never its
metadata: a content URI or a platform's own ids stay with the bank's owner). The checkpoint is
the last ``SEQ`` seen, so each fetch brings only what changed, removals included.

Configure it like any pytx exchange:

- CLI: ``threatexchange config extensions add reclaim.pytx``, then ``threatexchange config collab
  edit reclaim NAME --create --url https://reclaim.example.org --bank NCII_HASHES``; the token
  in ``RECLAIM_API_TOKEN`` or ``~/.reclaim_token``.
- HMA: add ``reclaim.pytx``'s ``ReclaimSignalExchangeAPI`` to its exchange types, create the
  exchange with ``api_json`` ``{"url": …, "bank": …}`` and set the credentials with
  ``POST /c/exchanges/api/reclaim`` ``{"credential_json": {"api_token": …}}``.
"""

# No ``from __future__ import annotations`` here: pytx's CLI reads the configuration's field
# types (``dataclasses.fields(...).type``) as classes, to build its ``--url``/``--bank`` options.

import json
import typing as t
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import httpx
from threatexchange.exchanges import auth
from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.collab_config import CollaborationConfigWithDefaults
from threatexchange.exchanges.signal_exchange_api import SignalExchangeAPI
from threatexchange.signal_type.signal_base import SignalType

__all__ = [
    "ReclaimCheckpoint",
    "ReclaimCollabConfig",
    "ReclaimCredentials",
    "ReclaimRecord",
    "ReclaimSignalExchangeAPI",
    "ReclaimSignalMetadata",
]

API_NAME = "reclaim"
#: Feed entries asked for per request.
PAGE_SIZE = 1000
#: The largest feed page read (vPDQ values make entries large); a larger answer is an error.
MAX_PAGE_BYTES = 64 * 1024 * 1024


@dataclass
class _ReclaimCollabConfigRequiredFields:
    url: str = field(
        metadata={
            "help": "base URL of the reclaim platform service (https://reclaim.example.org)",
            "metavar": "URL",
        }
    )
    bank: str = field(
        metadata={"help": "the bank to pull (its UPPER_WITH_UNDERSCORE name)", "metavar": "BANK"}
    )


@dataclass
class ReclaimCollabConfig(CollaborationConfigWithDefaults, _ReclaimCollabConfigRequiredFields):
    api: str = field(init=False, default=API_NAME)


@dataclass
class ReclaimCredentials(auth.CredentialHelper):
    ENV_VARIABLE: t.ClassVar[str] = "RECLAIM_API_TOKEN"
    FILE_NAME: t.ClassVar[str] = "~/.reclaim_token"

    api_token: str = field(
        metadata={
            "help": "a reclaim API token with the 'fetch' scope "
            "(reclaim platform-token TENANT --scopes fetch)"
        }
    )

    @classmethod
    def _from_str(cls, s: str) -> "ReclaimCredentials":
        return cls(s.strip())

    def _are_valid(self) -> bool:
        return bool(self.api_token.strip())


@dataclass
class ReclaimCheckpoint(state.FetchCheckpointBase):
    """The last feed entry seen, and the service's time of it."""

    seq: int = 0
    at: int = 0

    def get_progress_timestamp(self) -> int:
        return self.at


@dataclass
class ReclaimSignalMetadata(state.FetchedSignalMetadata):
    """Where a signal came from: a content item of a reclaim bank (a positive: banked)."""

    bank: str
    content_id: int

    def get_as_opinions(self) -> t.Sequence[state.SignalOpinion]:
        return [state.SignalOpinion(False, state.SignalOpinionCategory.POSITIVE_CLASS, {self.bank})]


@dataclass
class ReclaimRecord:
    """A content item of the bank as the feed gives it: its signals by HMA type name."""

    bank: str
    content_id: int
    signals: dict[str, str]


class ReclaimSignalExchangeAPI(
    auth.SignalExchangeWithAuth[ReclaimCollabConfig, ReclaimCredentials],
    SignalExchangeAPI[
        ReclaimCollabConfig, ReclaimCheckpoint, ReclaimSignalMetadata, int, ReclaimRecord
    ],
):
    """Pull a reclaim bank (records keyed by content id; a removed item is a deletion)."""

    def __init__(
        self,
        collab: ReclaimCollabConfig,
        api_token: str,
        *,
        client: httpx.Client | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.collab = collab
        self._token = api_token
        self._client = client
        self._timeout_s = timeout_s

    @classmethod
    def get_name(cls) -> str:
        return API_NAME

    @staticmethod
    def get_config_cls() -> type[ReclaimCollabConfig]:
        return ReclaimCollabConfig

    @staticmethod
    def get_checkpoint_cls() -> type[ReclaimCheckpoint]:
        return ReclaimCheckpoint

    @staticmethod
    def get_record_cls() -> type[ReclaimSignalMetadata]:
        return ReclaimSignalMetadata

    @staticmethod
    def get_credential_cls() -> type[ReclaimCredentials]:
        return ReclaimCredentials

    @classmethod
    def for_collab(
        cls, collab: ReclaimCollabConfig, credentials: ReclaimCredentials | None = None
    ) -> "ReclaimSignalExchangeAPI":
        credentials = credentials or ReclaimCredentials.get(cls)
        return cls(collab, credentials.api_token)

    def feed_url(self) -> str:
        base = self.collab.url.strip().rstrip("/")
        if urllib.parse.urlsplit(base).scheme not in ("http", "https"):
            raise ValueError(f"the reclaim URL must be http:// or https://, got {base[:80]!r}")
        return f"{base}/c/bank/{urllib.parse.quote(self.collab.bank, safe='')}/feed"

    def fetch_iter(
        self,
        _supported_signal_types: t.Sequence[type[SignalType]],
        checkpoint: ReclaimCheckpoint | None,
    ) -> Iterator[state.FetchDelta[int, ReclaimRecord, ReclaimCheckpoint]]:
        url = self.feed_url()
        after = 0 if checkpoint is None else checkpoint.seq
        at = 0 if checkpoint is None else checkpoint.at
        client = self._client or httpx.Client(timeout=self._timeout_s)
        try:
            while True:
                page = self._get(client, url, after)
                updates: dict[int, ReclaimRecord | None] = {}
                for entry in page.get("updates", []):
                    cid = int(entry["content_id"])
                    signals = entry.get("signals")
                    if entry.get("op") == "del" or not isinstance(signals, dict):
                        updates[cid] = None
                    else:
                        sig = {str(k): str(v) for k, v in signals.items()}
                        updates[cid] = ReclaimRecord(self.collab.bank, cid, sig)
                after = max(after, int(page["next"]))
                at = max(at, int(page.get("at") or 0))
                yield state.FetchDelta(updates, ReclaimCheckpoint(after, at))
                if not page.get("has_more"):
                    return
        finally:
            if self._client is None:
                client.close()

    def _get(self, client: httpx.Client, url: str, after: int) -> dict[str, t.Any]:
        params = {"after": after, "limit": PAGE_SIZE}
        headers = {"Authorization": f"Bearer {self._token}"}
        with client.stream("GET", url, params=params, headers=headers) as r:
            body = bytearray()
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) > MAX_PAGE_BYTES:
                    raise ValueError(f"the reclaim service sent a page over {MAX_PAGE_BYTES} bytes")
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if r.status_code in (401, 403):
            raise auth.SignalExchangeAPIInvalidAuthException(
                self.__class__, f"the reclaim service refused the token: {_message(r, data)}"
            )
        if r.status_code == 404:
            raise ValueError(f"the reclaim service has no bank {self.collab.bank!r} for this token")
        r.raise_for_status()
        if not isinstance(data, dict) or "next" not in data:
            raise ValueError("the reclaim service answered something other than a bank feed")
        return data

    @classmethod
    def naive_convert_to_signal_type(
        cls,
        signal_types: Sequence[type[SignalType]],
        collab: ReclaimCollabConfig,
        fetched: Mapping[int, ReclaimRecord],
    ) -> dict[type[SignalType], dict[str, ReclaimSignalMetadata]]:
        by_name = {st.get_name(): st for st in signal_types}
        ret: dict[type[SignalType], dict[str, ReclaimSignalMetadata]] = {}
        for record in fetched.values():
            if record is None:
                continue
            for name, value in record.signals.items():
                st = by_name.get(name)
                if st is None:
                    continue
                try:
                    canonical = st.validate_signal_str(value)
                except Exception:  # a value this side cannot read: skipped, like pytx does
                    continue
                ret.setdefault(st, {})[canonical] = ReclaimSignalMetadata(
                    record.bank, record.content_id
                )
        return ret


def _message(r: httpx.Response, data: t.Any) -> str:
    msg = data.get("message") if isinstance(data, dict) else None
    return str(msg)[:200] if msg else f"HTTP {r.status_code}"
