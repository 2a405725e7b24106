"""Signal exchanges for the platform service: python-threatexchange's own exchange clients
fetching into each tenant's banks, off the event loop.

Exchange types (``exchange_types``), each pytx's ``SignalExchangeAPI`` class:

- ``sample``: pytx's static sample signals (no network);
- ``local_file``: a file of ``signal_type value`` lines, only under the operator's
  ``exchange_files_dir``, in the tenant's own folder ``DIR/<tenant>/`` (offered only when set);
- ``fb_threatexchange``, ``ncmec``, ``stop_ncii``: Meta's ThreatExchange, NCMEC's hash sharing
  and StopNCII.org, with the tenant's credentials (``POST /c/exchanges/api/NAME``); the
  server's own environment (pytx reads ``TX_ACCESS_TOKEN``, ``~/.txtoken``...) is never used;
- ``reclaim``: another reclaim service's bank feed (``reclaim.pytx``), through the SSRF guard.

Base URLs are the APIs' own; an operator may point one elsewhere (a proxy, a test server) with
``exchange_endpoints`` (``{"ncmec": "http://…"}``); a tenant cannot (StopNCII's
``base_url_override`` credential field is refused).

A fetch (``ExchangeFetcher``) claims the exchange in the database (one fetch per exchange across
processes), runs in a thread, and commits each batch the API yields as one transaction
(``store.apply_exchange_records``) with the checkpoint after it, so an interrupted fetch resumes
where it stopped; the status shows the records stored so far. It stops after
``fetch_max_s`` (then resumes at the next fetch) or when the service stops. Exchanges that
always send everything (``sample``, ``local_file``) and those whose checkpoint went stale fetch
from scratch: the records not sent again are removed when the fetch completes.

Two of pytx 1.2.17's clients are corrected here: StopNCII's never removes a withdrawn or deleted
case (it compares the hash value, not the case status, with ``Withdrawn``), and ThreatExchange's
fails on a page without updates (what a fetch with nothing new gets).

Fetched signals keep pytx's HMA names (``pdq``, ``video_md5``), except ``video_sha256`` which is
reclaim's ``sha256``; signal types reclaim does not bank (URLs, text) are left out; each value is
validated as any banked value (``reclaim.platform.signals.canonical``).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import re
import threading
import time
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reclaim.errors import ReclaimError
from reclaim.platform.signals import SignalRejected, canonical
from reclaim.platform.store import ExchangeRecord, ExchangeRow, NotFound, PlatformStore

__all__ = [
    "ExchangeFetcher",
    "ExchangeRefused",
    "ExchangeType",
    "ExchangesUnavailable",
    "config_from_json",
    "config_to_json",
    "credentials_from_json",
    "exchange_types",
    "schema",
]

log = logging.getLogger("reclaim.exchanges")

#: The fields every exchange configuration has (HMA sets them itself).
COMMON_FIELDS = frozenset({"name", "api", "enabled"})
#: The largest local file an exchange reads.
MAX_LOCAL_FILE_BYTES = 64 * 1024 * 1024
#: pytx signal type names reclaim banks under another name.
RENAMED = {"video_sha256": "sha256"}
SAFE_DIR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
BANK_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,99}")


class ExchangesUnavailable(ReclaimError):
    """python-threatexchange is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "signal exchanges need python-threatexchange on the server: "
            "pip install 'reclaim[exchange]'"
        )


class ExchangeRefused(ReclaimError):
    """An exchange configuration or credentials the service will not use; says why."""


@dataclass(frozen=True)
class ExchangeType:
    name: str
    api_cls: Any
    #: Every fetch sends everything: fetched from scratch, the records not sent again removed.
    snapshot: bool

    @property
    def supports_auth(self) -> bool:
        from threatexchange.exchanges.auth import SignalExchangeWithAuth

        return issubclass(self.api_cls, SignalExchangeWithAuth)

    def credential_cls(self) -> Any:
        return self.api_cls.get_credential_cls() if self.supports_auth else None


def exchange_types(files_dir: str | None) -> dict[str, ExchangeType]:
    """The exchange types this service offers (``local_file`` only with a files folder)."""
    try:
        from threatexchange.exchanges.impl.fb_threatexchange_api import (
            FBThreatExchangeSignalExchangeAPI,
        )
        from threatexchange.exchanges.impl.file_api import LocalFileSignalExchangeAPI
        from threatexchange.exchanges.impl.ncmec_api import NCMECSignalExchangeAPI
        from threatexchange.exchanges.impl.static_sample import StaticSampleSignalExchangeAPI
        from threatexchange.exchanges.impl.stop_ncii_api import StopNCIISignalExchangeAPI

        from reclaim.pytx import ReclaimSignalExchangeAPI
    except ImportError as e:
        raise ExchangesUnavailable() from e
    types = [
        ExchangeType("sample", StaticSampleSignalExchangeAPI, snapshot=True),
        ExchangeType("fb_threatexchange", FBThreatExchangeSignalExchangeAPI, snapshot=False),
        ExchangeType("ncmec", NCMECSignalExchangeAPI, snapshot=False),
        ExchangeType("stop_ncii", StopNCIISignalExchangeAPI, snapshot=False),
        ExchangeType("reclaim", ReclaimSignalExchangeAPI, snapshot=False),
    ]
    if files_dir:
        types.insert(1, ExchangeType("local_file", LocalFileSignalExchangeAPI, snapshot=True))
    out = {t.name: t for t in types}
    assert all(t.api_cls.get_name() == n for n, t in out.items())
    return out


# -- configurations, credentials, schemas -------------------------------------------------------


def _jsonable(obj: Any) -> dict[str, Any]:
    from threatexchange.utils import dataclass_json

    value: dict[str, Any] = json.loads(dataclass_json.dataclass_dumps(obj))
    return value


def config_from_json(xtype: ExchangeType, name: str, api_json: Mapping[str, Any]) -> Any:
    """The exchange's pytx configuration from HMA's ``api_json`` (``name``/``api`` are set
    here). ExchangeRefused with the reason when it does not fit the API's configuration."""
    from threatexchange.utils import dataclass_json

    data = {**api_json, "name": name, "api": xtype.name}
    data.setdefault("enabled", True)
    try:
        cfg = dataclass_json.dataclass_load_dict(data, xtype.api_cls.get_config_cls())
    except Exception as e:
        raise ExchangeRefused(
            f"api_json does not fit a {xtype.name} exchange ({_short(e)}); see "
            f"GET /c/exchanges/api/{xtype.name}/schema for its fields"
        ) from e
    if xtype.name == "reclaim":
        url = str(cfg.url).strip()
        if not re.match(r"https?://[^/\s]+", url):
            raise ExchangeRefused(
                "url must be the http:// or https:// address of a reclaim service"
            )
        if not BANK_NAME.fullmatch(str(cfg.bank)):
            raise ExchangeRefused("bank must be a bank name (UPPER_WITH_UNDERSCORE)")
    return cfg


def config_to_json(cfg: Any) -> dict[str, Any]:
    """The configuration as HMA shows it (``dataclass_json``: enums as values, sets as lists)."""
    return _jsonable(cfg)


def credentials_from_json(xtype: ExchangeType, data: Mapping[str, Any]) -> dict[str, Any]:
    """The credentials to store for the tenant (as JSON); ExchangeRefused with the reason."""
    from threatexchange.utils import dataclass_json

    cred_cls = xtype.credential_cls()
    if cred_cls is None:
        raise ExchangeRefused(f"the {xtype.name} exchange takes no credentials")
    if data.get("base_url_override"):
        raise ExchangeRefused(
            "base_url_override is not accepted: the service's operator sets where an exchange "
            "API is reached"
        )
    try:
        creds = dataclass_json.dataclass_load_dict(dict(data), cred_cls)
    except Exception as e:
        raise ExchangeRefused(
            f"credential_json does not fit {xtype.name}'s credentials ({_short(e)}); see "
            f"GET /c/exchanges/api/{xtype.name}/schema"
        ) from e
    return _jsonable(creds)


def _field_type(tp: Any) -> tuple[str, bool, list[Any] | None]:
    """(schema type, optional, choices) of a dataclass field's type."""
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = args[0] if len(args) == 1 else str
        origin = typing.get_origin(tp)
    if origin in (set, list, tuple, frozenset):
        return "array", optional, None
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "enum", optional, [m.value for m in tp]
    if tp is bool:
        return "boolean", optional, None
    if tp in (int, float):
        return "number", optional, None
    return "string", optional, None


def _fields_schema(cls: Any, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name in skip:
            continue
        kind, optional, choices = _field_type(hints.get(f.name, str))
        has_default = (
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        )
        entry: dict[str, Any] = {
            "name": f.name,
            "type": kind,
            "required": not has_default and not optional,
            "help": str(f.metadata.get("help", "")),
        }
        if choices is not None:
            entry["choices"] = choices
        if f.default is not dataclasses.MISSING and isinstance(
            f.default, (str, int, float, bool, type(None))
        ):
            entry["default"] = f.default
        out.append(entry)
    return {"fields": out}


def schema(xtype: ExchangeType) -> dict[str, Any]:
    """The fields of the exchange's ``api_json`` and of its ``credential_json`` (None: it
    takes none)."""
    creds = xtype.credential_cls()
    return {
        "config_schema": _fields_schema(xtype.api_cls.get_config_cls(), COMMON_FIELDS),
        "credentials_schema": None
        if creds is None
        else _fields_schema(creds, frozenset({"base_url_override"})),
    }


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())[:160]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# -- signal types ---------------------------------------------------------------------------------


def pytx_signal_types() -> list[Any]:
    """pytx's signal types that reclaim banks, and ``reclaim.pytx``'s."""
    from threatexchange.signal_type.md5 import VideoMD5Signal
    from threatexchange.signal_type.pdq.signal import PdqSignal
    from threatexchange.signal_type.sha256 import VideoSHA256Signal

    from reclaim.pytx import SIGNAL_TYPES

    return [PdqSignal, VideoMD5Signal, VideoSHA256Signal, *SIGNAL_TYPES]


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, int):
        return str(key)
    return json.dumps(list(key) if isinstance(key, tuple) else key, default=str)


def convert(
    xtype: ExchangeType, collab: Any, exchange_name: str, updates: Mapping[Any, Any]
) -> tuple[list[ExchangeRecord], int]:
    """A batch of the API's updates as records of the bank; and how many values were refused
    (malformed for reclaim)."""
    types = pytx_signal_types()
    api = xtype.api_cls
    records: list[ExchangeRecord] = []
    refused = 0
    for key, value in updates.items():
        k = _key_text(key)
        merged = None if value is None else api.fetch_value_merge(None, value)
        if merged is None:
            records.append((k, None, {}))
            continue
        by_type = api.naive_convert_to_signal_type(types, collab, {key: merged})
        signals: list[tuple[str, str, int | None]] = []
        opinions: set[str] = set()
        for st, values in by_type.items():
            name = RENAMED.get(st.get_name(), st.get_name())
            for v, meta in values.items():
                try:
                    signals.append((name, canonical(name, v), None))
                except SignalRejected:
                    refused += 1
                    continue
                opinions.add(str(meta)[:200])
        if not signals:
            records.append((k, None, {}))
            continue
        metadata = {
            "content_id": f"{xtype.name}:{k}"[:500],
            "json": {"exchange": exchange_name, "opinions": sorted(opinions)[:20]},
        }
        records.append((k, signals, metadata))
    return records, refused


# -- clients --------------------------------------------------------------------------------------


def tenant_dir(files_dir: str, tenant_id: int, tenant_name: str) -> Path:
    """The tenant's folder of local exchange files: ``DIR/<tenant name>`` (or ``DIR/tenant-ID``
    when the name is not a plain file name)."""
    own = tenant_name if SAFE_DIR.fullmatch(tenant_name) else f"tenant-{tenant_id}"
    return Path(files_dir) / own


def local_file(files_dir: str | None, tenant_id: int, tenant_name: str, filename: str) -> Path:
    """The file a local_file exchange may read: inside the tenant's folder, a regular file of at
    most ``MAX_LOCAL_FILE_BYTES``. ExchangeRefused otherwise."""
    if not files_dir:
        raise ExchangeRefused("local_file exchanges are off on this service (no files folder)")
    own = tenant_dir(files_dir, tenant_id, tenant_name).resolve()
    p = Path(filename)
    path = (p if p.is_absolute() else own / p).resolve()
    if not path.is_relative_to(own):
        raise ExchangeRefused(
            f"filename must be a file in this tenant's folder of exchange files ({own.name}/)"
        )
    if not path.is_file():
        raise ExchangeRefused(f"no such file in this tenant's folder: {path.relative_to(own)}")
    if path.stat().st_size > MAX_LOCAL_FILE_BYTES:
        raise ExchangeRefused(f"the file is larger than {MAX_LOCAL_FILE_BYTES} bytes")
    return path


@dataclass
class ClientSettings:
    files_dir: str | None = None
    endpoints: Mapping[str, str] = dataclasses.field(default_factory=dict)
    allow_private: bool = False
    timeout_s: float = 60.0


def make_client(
    xtype: ExchangeType,
    collab: Any,
    credentials: Mapping[str, Any] | None,
    *,
    tenant_id: int,
    tenant_name: str,
    settings: ClientSettings,
) -> Any:
    """An instance of the exchange's API client, with the tenant's credentials only."""
    from threatexchange.utils import dataclass_json

    endpoint = settings.endpoints.get(xtype.name)
    creds: Any = None
    if xtype.supports_auth:
        if not credentials:
            raise ExchangeRefused(
                f"no credentials for {xtype.name}: set them with POST /c/exchanges/api/"
                f'{xtype.name} {{"credential_json": {{…}}}}'
            )
        creds = dataclass_json.dataclass_load_dict(dict(credentials), xtype.credential_cls())
        if not creds._are_valid():
            raise ExchangeRefused(
                f"the {xtype.name} credentials are not valid: set them again with "
                f"POST /c/exchanges/api/{xtype.name}"
            )
    if xtype.name == "sample":
        return xtype.api_cls.for_collab(collab)
    if xtype.name == "local_file":
        path = local_file(settings.files_dir, tenant_id, tenant_name, str(collab.filename))
        return xtype.api_cls.for_collab(dataclasses.replace(collab, filename=str(path)))
    if xtype.name == "fb_threatexchange":
        from threatexchange.exchanges.clients.fb_threatexchange.api import ThreatExchangeAPI

        graph = ThreatExchangeAPI(creds.api_token, endpoint_override=endpoint)
        return _threatexchange_client(xtype.api_cls)(graph, collab)
    if xtype.name == "ncmec":
        return _ncmec_client(xtype.api_cls, collab, creds, endpoint)
    if xtype.name == "stop_ncii":
        from threatexchange.exchanges.clients.stopncii.api import StopNCIIAPI

        client = StopNCIIAPI(
            creds.subscription_key, creds.fetch_function_key, base_url_override=endpoint
        )
        return _stopncii_client(xtype.api_cls)(collab, client)
    if xtype.name == "reclaim":
        import httpx

        from reclaim.netguard import GuardedTransport

        http = httpx.Client(
            transport=GuardedTransport(allow_private=settings.allow_private),
            trust_env=False,
            timeout=settings.timeout_s,
            follow_redirects=False,
        )
        return xtype.api_cls(collab, creds.api_token, client=http)
    raise ExchangeRefused(f"no such exchange type {xtype.name!r}")


def _threatexchange_client(api_cls: Any) -> Any:
    """pytx's ThreatExchange client, that takes a page without updates (what the Graph API
    answers when nothing changed since the checkpoint) for "up to date": pytx 1.2.17 asserts
    every page has one, so a fetch with nothing new would fail."""
    from threatexchange.exchanges import fetch_state
    from threatexchange.exchanges.clients.fb_threatexchange.threat_updates import (
        ThreatUpdateJSON,
    )
    from threatexchange.exchanges.impl import fb_threatexchange_api as impl

    class _EmptyPagesAllowed(api_cls):  # type: ignore[misc]
        def fetch_iter(self, _types: Any, checkpoint: Any) -> Any:
            start_time = None if checkpoint is None else checkpoint.update_time
            cursor = self.client.get_threat_updates(
                self.collab.privacy_group,
                start_time=start_time,
                page_size=100,
                fields=ThreatUpdateJSON.te_threat_updates_fields(),
                decode_fn=ThreatUpdateJSON,
            )
            highest = start_time or 0
            for batch in cursor:
                if not batch:
                    continue
                highest = max(highest, *(u.time for u in batch))
                updates = {
                    (
                        u.threat_type,
                        u.indicator,
                    ): impl.FBThreatExchangeIndicatorRecord.from_threatexchange_json(
                        self.client.app_id, u
                    )
                    for u in batch
                }
                yield fetch_state.FetchDelta(updates, impl.FBThreatExchangeCheckpoint(highest))

    return _EmptyPagesAllowed


def _stopncii_client(api_cls: Any) -> Any:
    """pytx's StopNCII client, with withdrawn and deleted cases removed: pytx 1.2.17 compares a
    record's hash value (not its status) with ``Withdrawn``/``Deleted``, so it never removes
    one. A person who withdraws her case at StopNCII.org must see her hash leave the bank."""
    from threatexchange.exchanges import fetch_state
    from threatexchange.exchanges.clients.stopncii import api as stopncii
    from threatexchange.exchanges.impl import stop_ncii_api as impl

    gone = (stopncii.StopNCIICaseStatus.Withdrawn, stopncii.StopNCIICaseStatus.Deleted)

    class _WithWithdrawals(api_cls):  # type: ignore[misc]
        def fetch_iter(self, _types: Any, checkpoint: Any) -> Any:
            start = stopncii.StopNCIIAPI.DEFAULT_START_TIME
            if checkpoint is not None:
                start = checkpoint.update_time
            for result in self.api.fetch_hashes_iter(start_timestamp=start):
                updates: dict[tuple[str, str], Any] = {}
                for r in result.hashRecords:
                    type_str = impl._type_mapping().get(r.signalType)
                    if not type_str:
                        continue
                    withdrawn = r.hashStatus in gone
                    meta = None if withdrawn else impl.StopNCIISignalMetadata(r.CSPFeedbacks)
                    updates[type_str, r.hashValue] = meta
                yield fetch_state.FetchDelta(
                    updates, impl.StopNCIICheckpoint.from_stopncii_fetch(result)
                )

    return _WithWithdrawals


def _ncmec_client(api_cls: Any, collab: Any, creds: Any, endpoint: str | None) -> Any:
    """NCMEC's client, its environment's base URL replaced by the operator's ``endpoint``."""
    if endpoint is None:
        return api_cls(collab, creds.user, creds.password)

    class _Redirected(api_cls):  # type: ignore[misc]
        def get_client(self, environment: Any) -> Any:
            client = super().get_client(environment)
            client._base_url = endpoint
            return client

    return _Redirected(collab, creds.user, creds.password)


def describe_error(e: BaseException, secrets: list[str]) -> str:
    """One sentence about a failed fetch, without a credential or a URL's query string (pytx's
    HTTP errors quote the URL, and ThreatExchange puts the token in it)."""
    from threatexchange.exchanges.auth import (
        SignalExchangeAPIInvalidAuthException,
        SignalExchangeAPIMissingAuthException,
    )

    from reclaim.netguard import refusal

    status = getattr(getattr(e, "response", None), "status_code", None)
    refused = refusal(e)
    if refused is not None:
        text = f"the exchange's address is refused ({refused}): public addresses only"
    elif isinstance(e, ExchangeRefused):
        text = str(e)
    elif isinstance(e, SignalExchangeAPIInvalidAuthException):
        text = f"the exchange refused the credentials: {e.message}"
    elif isinstance(e, SignalExchangeAPIMissingAuthException):
        text = "no credentials: set them with POST /c/exchanges/api/NAME"
    elif isinstance(status, int):
        text = f"the exchange answered HTTP {status}"
        if status in (401, 403):
            text += ": check the credentials (POST /c/exchanges/api/NAME)"
    elif type(e).__name__ in ("ConnectionError", "ConnectError", "ConnectTimeout", "Timeout"):
        text = "could not reach the exchange: try again later"
    else:
        text = _short(e)
    text = re.sub(r"\?\S*", "?…", text)
    for s in secrets:
        if len(s) >= 4:
            text = text.replace(s, "***")
    return text[:300]


def _secret_values(credentials: Mapping[str, Any] | None) -> list[str]:
    if not credentials:
        return []
    return [str(v) for v in credentials.values() if isinstance(v, str) and v]


# -- the fetcher ----------------------------------------------------------------------------------


class ExchangeFetcher:
    """Runs fetches in threads (at most ``workers`` at a time), and optionally every
    ``interval_s`` for every enabled exchange. ``on_change`` is called after each batch written
    (the matcher's refresh)."""

    def __init__(
        self,
        store: PlatformStore,
        settings: ClientSettings,
        *,
        fetch_max_s: float = 240.0,
        workers: int = 2,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.fetch_max_s = fetch_max_s
        self.on_change = on_change
        self._slots = threading.BoundedSemaphore(max(1, workers))
        self._stop = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._periodic: threading.Thread | None = None

    @property
    def stale_after_s(self) -> float:
        """A claim this old is from a process that died (a fetch stops after ``fetch_max_s``
        and the batch it is in: each HTTP request has its own time limit)."""
        return max(900.0, 3 * self.fetch_max_s)

    def types(self) -> dict[str, ExchangeType]:
        return exchange_types(self.settings.files_dir)

    def start(self, tenant_id: int, exchange_id: int) -> bool:
        """Start a fetch of the tenant's exchange in the background; False when one is
        already running (here or in another process)."""
        if self._stop.is_set():
            return False
        if not self.store.claim_exchange_fetch(tenant_id, exchange_id, self.stale_after_s):
            return False
        th = threading.Thread(
            target=self._background,
            args=(tenant_id, exchange_id),
            name=f"reclaim-exchange-{exchange_id}",
            daemon=True,
        )
        with self._lock:
            self._threads = {t for t in self._threads if t.is_alive()}
            self._threads.add(th)
        th.start()
        return True

    def fetch_due(self) -> int:
        """Start a fetch of every enabled exchange not fetching now; how many started."""
        return sum(self.start(t, x) for t, x in self.store.enabled_exchanges())

    def start_periodic(self, interval_s: float) -> None:
        if interval_s <= 0 or self._periodic is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.fetch_due()
                except Exception:
                    log.exception("periodic exchange fetch failed to start")

        self._periodic = threading.Thread(target=loop, name="reclaim-exchanges", daemon=True)
        self._periodic.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop: running fetches end after their current batch (each keeps its checkpoint)."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        with self._lock:
            threads = list(self._threads)
        if self._periodic is not None:
            threads.append(self._periodic)
        for th in threads:
            th.join(max(0.0, deadline - time.monotonic()))

    def wait(self, timeout_s: float = 30.0) -> None:
        """Tests: wait for the fetches started so far."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            threads = list(self._threads)
        for th in threads:
            th.join(max(0.0, deadline - time.monotonic()))

    def _background(self, tenant_id: int, exchange_id: int) -> None:
        with self._slots:
            self._run(tenant_id, exchange_id)

    def _run(self, tenant_id: int, exchange_id: int) -> None:
        """One claimed fetch, to completion, a time limit, a stop or an error; always released."""
        secrets: list[str] = []
        up_to_date = False
        try:
            ex = self.store.get_exchange_by_id(tenant_id, exchange_id)
            if ex is None:
                return
            credentials = self.store.get_exchange_credentials(tenant_id, ex.api)
            secrets = _secret_values(credentials)
            up_to_date = self._fetch(ex, credentials)
        except NotFound:
            return  # deleted during the fetch
        except Exception as e:
            text = describe_error(e, secrets)
            log.warning("exchange %s of tenant %s: fetch failed: %s", exchange_id, tenant_id, text)
            self.store.finish_exchange_fetch(
                tenant_id, exchange_id, succeeded=False, up_to_date=False, error=text
            )
            return
        self.store.finish_exchange_fetch(
            tenant_id, exchange_id, succeeded=True, up_to_date=up_to_date
        )

    def _fetch(self, ex: ExchangeRow, credentials: Mapping[str, Any] | None) -> bool:
        from threatexchange.utils import dataclass_json

        types = self.types()
        xtype = types.get(ex.api)
        if xtype is None:
            raise ExchangeRefused(f"exchange type {ex.api!r} is not offered by this service")
        collab = config_from_json(xtype, ex.name, {**ex.config, "enabled": ex.enabled})
        client = make_client(
            xtype,
            collab,
            credentials,
            tenant_id=ex.tenant_id,
            tenant_name=self.store.tenant_name(ex.tenant_id) or "",
            settings=self.settings,
        )
        checkpoint = None
        if ex.checkpoint is not None and not xtype.snapshot:
            checkpoint = dataclass_json.dataclass_load_dict(
                json.loads(ex.checkpoint), xtype.api_cls.get_checkpoint_cls()
            )
            if checkpoint.is_stale():
                checkpoint = None
        scratch = checkpoint is None
        generation = (
            self.store.start_exchange_generation(ex.tenant_id, ex.id) if scratch else ex.generation
        )
        started = time.monotonic()
        progress = 0
        for delta in client.fetch_iter(pytx_signal_types(), checkpoint):
            records, refused = convert(xtype, collab, ex.name, delta.updates)
            if refused:
                log.info("exchange %s: %d values reclaim cannot read were skipped", ex.id, refused)
            self.store.apply_exchange_records(ex.tenant_id, ex.id, generation, records)
            progress += len(records)
            ts = delta.checkpoint.get_progress_timestamp()
            self.store.save_exchange_checkpoint(
                ex.tenant_id,
                ex.id,
                json.dumps(_jsonable(delta.checkpoint)),
                None if ts is None else int(ts),
                progress,
            )
            if self.on_change is not None:
                self.on_change()
            if self._stop.is_set() or time.monotonic() - started > self.fetch_max_s:
                return False
        swept = self.store.sweep_exchange(ex.tenant_id, ex.id, generation) if scratch else 0
        if swept and self.on_change is not None:
            self.on_change()
        return True
