"""The service under test and the flask-test-client-like client the HMA tests drive it with.

``ReclaimService`` starts ``reclaim serve-platform`` on a fresh database (SQLite in a temporary
folder, or a fresh PostgreSQL schema when ``RECLAIM_HMA_BACKEND=postgres``), with URL fetching
allowed to this machine (the tests' image server), and a token of one tenant holding every scope.
``HarnessClient`` speaks to it over HTTP with that token on every request, taking the arguments
Flask's test client takes (``json=``, ``data=`` with file tuples, ``query_string=``) and returning
responses with Flask's attributes (``status_code``, ``data``, ``json``, ``get_json()``,
``is_json``, ``get_data(as_text=)``).

The HMA tests run offline: a URL of a file of facebook/ThreatExchange on GitHub (three tests
bank ``pdq/data/bridge-mods/aaa-orig.jpg?raw=true``) is served from the same file in
``../shared/data/threatexchange`` by a local file server (``GITHUB_RAW``, ``mirror_base``);
nothing else in a request is changed.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

#: The GitHub prefix the tests' remote URLs start with, and where its files are kept here.
GITHUB_RAW = "https://github.com/facebook/ThreatExchange/blob/main/"
REPO = Path(__file__).resolve().parents[3]
MIRROR = Path(
    os.environ.get("RECLAIM_HMA_MIRROR", str(REPO.parent / "shared" / "data" / "threatexchange"))
)
TENANT = "hma-peer"


class HmaInternal(RuntimeError):
    """A part of HMA that only exists inside HMA's own process (its storage object, its Flask
    app, its Python functions): not API behaviour, so not offered over HTTP."""

    def __init__(self, what: str) -> None:
        super().__init__(f"HMA internal, not reachable over the HTTP API: {what}")


_MIRROR_SERVER: list[str] = []


def mirror_base() -> str:
    """Base URL of a local file server of ``MIRROR`` (started on first use, for the session)."""
    if not _MIRROR_SERVER:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(MIRROR))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        _MIRROR_SERVER.append(f"http://127.0.0.1:{server.server_address[1]}")
    return _MIRROR_SERVER[0]


# -- responses and the client ------------------------------------------------------------------


class HarnessResponse:
    """What Flask's test client returns, for the attributes the HMA tests read."""

    def __init__(self, r: httpx.Response) -> None:
        self.status_code = r.status_code
        self.data = r.content
        self.headers = r.headers
        self.mimetype = r.headers.get("content-type", "").split(";")[0].strip()

    @property
    def is_json(self) -> bool:
        return self.mimetype == "application/json" or self.mimetype.endswith("+json")

    def get_json(self) -> Any:
        return json.loads(self.data) if self.is_json else None

    @property
    def json(self) -> Any:
        return self.get_json()

    def get_data(self, as_text: bool = False) -> bytes | str:
        return self.data.decode("utf-8", "replace") if as_text else self.data

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def _file_part(name: str, value: tuple[Any, ...]) -> tuple[str, bytes, str]:
    """A werkzeug file tuple ``(file, filename[, content_type])`` as a multipart part; ``file``
    is a path (werkzeug opens it), bytes or a file object."""
    src, filename = value[0], value[1]
    ctype = value[2] if len(value) > 2 else "application/octet-stream"
    if isinstance(src, (str, os.PathLike)):
        data = Path(src).read_bytes()
    elif isinstance(src, (bytes, bytearray)):
        data = bytes(src)
    else:
        data = src.read()
    return (os.path.basename(str(filename)), data, ctype)


class HarnessClient:
    """Flask's test client, over HTTP to a reclaim service, with its bearer token."""

    def __init__(self, app: HarnessApp) -> None:
        self.application = app
        self._http = httpx.Client(
            base_url=app.service.base,
            headers={"Authorization": f"Bearer {app.service.token}"},
            timeout=120,
        )

    def open(
        self,
        path: str,
        method: str = "GET",
        *,
        json: Any = None,
        data: Any = None,
        query_string: Mapping[str, Any] | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HarnessResponse:
        url = path.replace(GITHUB_RAW, f"{mirror_base()}/") if GITHUB_RAW in path else path
        if query_string:
            qs = (
                query_string
                if isinstance(query_string, str)
                else urllib.parse.urlencode({k: str(v) for k, v in query_string.items()})
            )
            url += ("&" if "?" in url else "?") + qs
        kw: dict[str, Any] = {"headers": dict(headers or {})}
        if json is not None:
            kw["json"] = json
        elif isinstance(data, Mapping):
            files = {k: _file_part(k, v) for k, v in data.items() if isinstance(v, tuple)}
            fields = {k: str(v) for k, v in data.items() if not isinstance(v, tuple)}
            if files:
                kw["files"] = files
            if fields:
                kw["data"] = fields
        elif data is not None:
            kw["content"] = data
        return HarnessResponse(self._http.request(method, url, **kw))

    def get(self, path: str, **kw: Any) -> HarnessResponse:
        return self.open(path, "GET", **kw)

    def post(self, path: str, **kw: Any) -> HarnessResponse:
        return self.open(path, "POST", **kw)

    def put(self, path: str, **kw: Any) -> HarnessResponse:
        return self.open(path, "PUT", **kw)

    def delete(self, path: str, **kw: Any) -> HarnessResponse:
        return self.open(path, "DELETE", **kw)

    def close(self) -> None:
        self._http.close()


# -- HMA's storage object, as far as the HTTP API reaches --------------------------------------


class HttpStorage:
    """The few calls of HMA's storage object that some tests use to set up data, each made
    through reclaim's HTTP API (so the data is set up as any client would); any other part of
    HMA's storage raises ``HmaInternal``."""

    def __init__(self, app: HarnessApp) -> None:
        self._app = app

    def bank_update(self, bank: Any, create: bool = False, rename_from: str | None = None) -> None:
        c = self._app.test_client()
        body = {"name": bank.name, "enabled_ratio": bank.matching_enabled_ratio}
        if create:
            r = c.post("/c/banks", json=body)
            assert r.status_code == 201, r.data
        else:
            r = c.put(f"/c/bank/{rename_from or bank.name}", json=body)
            assert r.status_code == 200, r.data

    def bank_add_content(self, bank_name: str, signals: Mapping[Any, str], *_: Any) -> int:
        body = {st.get_name(): value for st, value in signals.items()}
        r = self._app.test_client().post(f"/c/bank/{bank_name}/signal", json=body)
        assert r.status_code == 200, r.data
        return int(r.json["id"])

    def __getattr__(self, name: str) -> Any:
        raise HmaInternal(f"storage.{name} (HMA's storage object)")


# -- the service -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ReclaimService:
    """``reclaim serve-platform`` on a fresh database, until ``stop``."""

    def __init__(self) -> None:
        from reclaim.platform.store import SCOPES, open_store

        self.dir = Path(tempfile.mkdtemp(prefix="reclaim-hma-peer-"))
        self.schema: str | None = None
        backend = os.environ.get("RECLAIM_HMA_BACKEND", "sqlite")
        if backend == "postgres":
            dsn = os.environ["RECLAIM_TEST_POSTGRES_DSN"]
            self.schema = f"hma_{uuid.uuid4().hex[:12]}"
            self._pg(dsn, f'CREATE SCHEMA "{self.schema}"')
            sep = "&" if "?" in dsn else "?"
            self.db = f"{dsn}{sep}options=-csearch_path%3D{self.schema}"
            self.dsn = dsn
        else:
            self.db = str(self.dir / "platform.db")
        store = open_store(self.db)
        try:
            tid = store.ensure_tenant(TENANT)
            self.token = store.create_token(tid, "hma-api-tests", list(SCOPES))
        finally:
            store.close()
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.log = self.dir / "server.log"
        exe = Path(sys.executable).with_name("reclaim")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "reclaim.cli"]
        cmd += [
            "serve-platform",
            "--db",
            self.db,
            "--port",
            str(port),
            "--allow-url-fetch",
            "--allow-private-addresses",  # the image server listens on 127.0.0.1
            "--hash-workers",
            "1",
        ]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        self._wait()

    @staticmethod
    def _pg(dsn: str, sql: str) -> None:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql)

    def _wait(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve-platform exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{self.base}/status", timeout=2)
                return  # it answers (whatever it says: /status is one of the things tested)
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"serve-platform did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.schema is not None:
            self._pg(self.dsn, f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        shutil.rmtree(self.dir, ignore_errors=True)


class _Config(dict[str, Any]):
    """HMA's ``app.config``: reading is harmless, but a test that sets a value expects HMA's
    process to change its behaviour, which a separate service cannot."""

    def __setitem__(self, key: str, value: Any) -> None:
        raise HmaInternal(f"app.config[{key!r}] (HMA's Flask app configuration)")


class HarnessApp:
    """What the tests get as ``app``: ``test_client()`` and HMA's storage, over HTTP."""

    def __init__(self, service: ReclaimService) -> None:
        self.service = service
        self.storage = HttpStorage(self)
        self.config = _Config()
        self._clients: list[HarnessClient] = []

    def test_client(self) -> HarnessClient:
        c = HarnessClient(self)
        self._clients.append(c)
        return c

    def app_context(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    def close(self) -> None:
        for c in self._clients:
            c.close()


_CURRENT: list[HarnessApp] = []


def current() -> HarnessApp:
    """The running test's app (HMA's ``get_storage()`` finds its storage the same way, through
    the Flask app in context)."""
    if not _CURRENT:
        raise RuntimeError("no reclaim service is running (the 'app' fixture starts one)")
    return _CURRENT[-1]


@contextlib.contextmanager
def running() -> Iterator[HarnessApp]:
    service = ReclaimService()
    app = HarnessApp(service)
    _CURRENT.append(app)
    try:
        yield app
    finally:
        _CURRENT.remove(app)
        app.close()
        service.stop()


__all__ = [
    "GITHUB_RAW",
    "MIRROR",
    "HarnessApp",
    "HarnessClient",
    "HarnessResponse",
    "HmaInternal",
    "HttpStorage",
    "ReclaimService",
    "current",
    "mirror_base",
    "running",
]
