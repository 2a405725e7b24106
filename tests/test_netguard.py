"""The SSRF guard (``reclaim.netguard``): which addresses count as public, and that a connection
goes to the very address that was checked (one DNS resolution per hop, no rebinding window).

Nothing here touches the real network. Name lookups go through a fake resolver (an autouse
fixture replaces ``socket.getaddrinfo``: numeric hosts are parsed by the real resolver with
``AI_NUMERICHOST``, so no query leaves the machine; the test names are answered from a table;
any other name fails). The "public" server of the rebinding tests is a local server on
127.0.0.2, which these tests declare public (``netguard._kind`` is wrapped); 127.0.0.1 stays
loopback and plays the internal service an attacker would like to reach.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from reclaim import netguard
from reclaim.netguard import address_problem, host_problem
from reclaim.platform.store import SqlitePlatformStore
from reclaim.platform.webhooks import WebhookSender
from reclaim.sources.base import SourceLimits
from reclaim.sources.urllist import UrlListSource

PUBLIC_STAND_IN = "127.0.0.2"  # declared public by the `policy` fixture
INTERNAL = "127.0.0.1"
JPEG = b"\xff\xd8\xff\xe0" + b"public" * 20
SECRET = b"\xff\xd8\xff\xe0" + b"internal-only" * 20


# --- a resolver that never leaves the machine ---------------------------------------------


class FakeDns:
    """``socket.getaddrinfo`` stand-in: each name answers from a list of answers, one per
    lookup (the last one repeats), and every lookup of a name is counted."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: Counter[str] = Counter()
        self._real = socket.getaddrinfo

    def __call__(
        self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in self.answers:
            self.lookups[name] += 1
            seq = self.answers[name]
            ips = seq[min(self.lookups[name], len(seq)) - 1]
            out: list[Any] = []
            for ip in ips:
                out += self._real(ip, port, family, type, proto, flags | socket.AI_NUMERICHOST)
            return out
        # Numeric hosts only (the real parser, no DNS query); any other name fails.
        return self._real(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    fake = FakeDns()
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@pytest.fixture
def policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Count 127.0.0.2 as a public address (it stands in for a server on the internet)."""
    real = netguard._kind

    def kind(address: str) -> tuple[str, str | None]:
        return (address, None) if address == PUBLIC_STAND_IN else real(address)

    monkeypatch.setattr(netguard, "_kind", kind)


# --- address classes ----------------------------------------------------------------------

# Teredo: 2001:0:<server>:<flags>:<port ^ 0xffff>:<client ^ 0xffffffff>
TEREDO_PUBLIC_CLIENT_DOC = "2001:0:4136:e378:8000:63bf:3fff:fdd2"  # client 192.0.2.45
TEREDO_CLIENT_LOOPBACK = "2001:0:4136:e378:8000:63bf:80ff:fffe"  # client 127.0.0.1


@pytest.mark.parametrize(
    ("address", "carried"),
    [
        ("64:ff9b::7f00:1", "127.0.0.1"),  # NAT64 well-known prefix
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # ... of the cloud metadata endpoint
        ("64:ff9b::10.1.2.3", "10.1.2.3"),
        ("64:ff9b:1::a00:1", "local-use"),  # RFC 8215 local-use NAT64: never public
        ("2002:7f00:1::1", "127.0.0.1"),  # 6to4
        ("2002:a9fe:a9fe:1::1", "169.254.169.254"),
        ("2002:c0a8:101::1", "192.168.1.1"),
        ("::127.0.0.1", "127.0.0.1"),  # IPv4-compatible (deprecated)
        ("::10.0.0.1", "10.0.0.1"),
        ("::ffff:127.0.0.1", "127.0.0.1"),  # IPv4-mapped
        ("::ffff:0:a00:1", "10.0.0.1"),  # IPv4-translated (SIIT)
        (TEREDO_CLIENT_LOOPBACK, "127.0.0.1"),  # Teredo, client obfuscated
        (TEREDO_PUBLIC_CLIENT_DOC, "192.0.2.45"),
        ("2001:4860:1::200:5efe:a00:1", "10.0.0.1"),  # ISATAP interface id
        ("2001:4860:1::5efe:7f00:1", "127.0.0.1"),
        ("fec0::1", "site-local"),  # deprecated site-local
        ("100::1", ""),  # discard-only
        ("::", ""),
        ("::1", "loopback"),
    ],
)
def test_ipv6_forms_are_checked_as_the_ipv4_they_carry(address: str, carried: str) -> None:
    problem = address_problem(address)
    assert problem is not None and carried in problem, (address, problem)
    refused = host_problem(address)
    assert refused is not None and "only public addresses are allowed" in refused, refused


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "2606:2800:220:1:248:1893:25c8:1946",  # a plain global IPv6 address
        "64:ff9b::808:808",  # NAT64 of 8.8.8.8: reached through the gateway, public
        "2002:808:808::1",  # 6to4 of 8.8.8.8
        "::ffff:8.8.8.8",
    ],
)
def test_public_addresses_accepted(address: str) -> None:
    assert address_problem(address) is None
    assert host_problem(address) is None


@pytest.mark.parametrize(
    "host", ["2130706433", "0x7f.1", "127.1", "0177.0.0.1", "017700000001", "0x7f000001"]
)
def test_odd_ipv4_spellings_are_read_as_the_connection_reads_them(host: str) -> None:
    """inet_aton spellings (decimal, octal, hex, short forms) are all 127.0.0.1 to the socket
    layer; the guard reads them through the same resolver, so they are refused as loopback."""
    assert host_problem(host) == (
        f"{host} resolves to 127.0.0.1, a loopback address; only public addresses are allowed"
    )


# --- local servers --------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    routes: ClassVar[dict[str, str]] = {}

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.log.append((self.command, self.path, self.headers.get("Host", "")))
        if self.path.startswith("/hop/"):
            target = self.path.removeprefix("/hop/")
            self.send_response(302)
            self.send_header("Location", f"http://{target}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.server.body
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    body: bytes
    log: list[tuple[str, str, str]]


@contextlib.contextmanager
def _serve(srv: _Server, body: bytes) -> Iterator[_Server]:
    srv.body = body
    srv.log = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[_Server, _Server, int]]:
    """(the 'public' server on 127.0.0.2, the internal one on 127.0.0.1, their common port)."""
    internal = _Server((INTERNAL, 0), _Handler)
    port = int(internal.server_address[1])
    try:
        public = _Server((PUBLIC_STAND_IN, port), _Handler)
    except OSError:
        internal.server_close()
        pytest.skip("cannot listen on 127.0.0.2 with the port of 127.0.0.1")
    with _serve(internal, SECRET), _serve(public, JPEG):
        yield public, internal, port


def _fetch(tmp_path: Path, url: str) -> tuple[bytes | None, str | None]:
    f = tmp_path / "urls.txt"
    f.write_text(url + "\n", encoding="utf-8")
    limits = SourceLimits(url_timeout_s=3.0, url_public_only=True)
    (entry,) = list(UrlListSource(str(f), limits).entries())
    return entry.data, entry.error


# --- one resolution, and the connection goes to the checked address ----------------------


@pytest.mark.usefixtures("policy")
def test_url_fetch_connects_to_the_address_it_checked(
    servers: tuple[_Server, _Server, int], dns: FakeDns, tmp_path: Path
) -> None:
    """DNS rebinding: the name answers a public address to the first lookup and loopback to
    any later one. The fetch must resolve once and connect to the checked address."""
    public, internal, port = servers
    dns.answers["rebind.test"] = [[PUBLIC_STAND_IN], [INTERNAL]]
    data, error = _fetch(tmp_path, f"http://rebind.test:{port}/img.jpg")
    assert internal.log == []  # the internal service was never reached
    assert (data, error) == (JPEG, None)
    assert dns.lookups["rebind.test"] == 1
    # the request still names the host it was meant for
    assert public.log == [("GET", "/img.jpg", f"rebind.test:{port}")]


@pytest.mark.usefixtures("policy")
def test_each_redirect_hop_resolved_once_and_checked(
    servers: tuple[_Server, _Server, int], dns: FakeDns, tmp_path: Path
) -> None:
    public, internal, port = servers
    dns.answers["one.test"] = [[PUBLIC_STAND_IN], [INTERNAL]]
    dns.answers["two.test"] = [[PUBLIC_STAND_IN], [INTERNAL]]
    data, error = _fetch(tmp_path, f"http://one.test:{port}/hop/two.test:{port}/img.jpg")
    assert (data, error) == (JPEG, None)
    assert internal.log == []
    assert dns.lookups == Counter({"one.test": 1, "two.test": 1})
    assert [host for _m, _p, host in public.log] == [f"one.test:{port}", f"two.test:{port}"]
    # a hop to a name that answers loopback is refused at that hop
    dns.answers["inside.test"] = [[INTERNAL]]
    dns.lookups.clear()  # one.test answers public again to a first lookup
    public.log.clear()
    data, error = _fetch(tmp_path, f"http://one.test:{port}/hop/inside.test:{port}/img.jpg")
    assert data is None and error == (
        "refused: inside.test resolves to 127.0.0.1, a loopback address; "
        "only public addresses are allowed"
    )
    assert internal.log == [] and len(public.log) == 1


@pytest.mark.usefixtures("policy")
def test_every_address_of_an_answer_is_checked(
    servers: tuple[_Server, _Server, int], dns: FakeDns, tmp_path: Path
) -> None:
    public, internal, port = servers
    dns.answers["mixed.test"] = [[PUBLIC_STAND_IN, INTERNAL]]
    data, error = _fetch(tmp_path, f"http://mixed.test:{port}/img.jpg")
    assert data is None and error is not None
    assert error.startswith("refused: mixed.test resolves to 127.0.0.1, a loopback address")
    assert public.log == [] and internal.log == []


@pytest.mark.usefixtures("policy")
def test_odd_spelling_fetch_refused(servers: tuple[_Server, _Server, int], tmp_path: Path) -> None:
    _public, internal, port = servers
    data, error = _fetch(tmp_path, f"http://2130706433:{port}/img.jpg")
    assert data is None and error is not None and error.startswith("refused: ")
    assert "127.0.0.1, a loopback address" in error
    assert internal.log == []


@pytest.mark.usefixtures("policy")
def test_webhook_delivery_connects_to_the_address_it_checked(
    servers: tuple[_Server, _Server, int], dns: FakeDns, tmp_path: Path
) -> None:
    public, internal, port = servers
    dns.answers["hooks.test"] = [[PUBLIC_STAND_IN], [INTERNAL]]
    store = SqlitePlatformStore(tmp_path / "platform.db")
    store.migrate()
    sender = WebhookSender(store, allow_private=False, timeout_s=3.0)
    try:
        tid = store.ensure_tenant("a")
        store.create_webhook(tid, f"http://hooks.test:{port}/hook", "whsec_x")
        assert sender.emit(tid, "review.decision", {"x": 1})
        assert sender.run_once() == 1
        assert internal.log == []
        assert public.log == [("POST", "/hook", f"hooks.test:{port}")]
        assert dns.lookups["hooks.test"] == 1
        # a receiver whose name now answers loopback: refused with the reason, nothing sent
        dns.answers["hooks.test"] = [[INTERNAL]]
        dns.lookups.clear()
        sender.client.close()  # no kept-alive connection to reuse
        sender.client = httpx.Client(transport=netguard.GuardedTransport(), trust_env=False)
        sender.emit(tid, "review.decision", {"x": 2})
        sender.run_once()
        assert internal.log == [] and len(public.log) == 1
        last = store.list_deliveries(tid)[0]
        assert str(last["last_error"]).startswith(
            "refused: hooks.test resolves to 127.0.0.1, a loopback address"
        )
        assert dns.lookups["hooks.test"] == 1
    finally:
        sender.client.close()
        store.close()


# --- TLS: the pinned connection still verifies the certificate for the name --------------


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.mark.usefixtures("policy")
@pytest.mark.parametrize("cert_name", ["tls.test", "someone-else.test"])
def test_tls_verifies_the_name_not_the_pinned_address(
    dns: FakeDns, tmp_path: Path, cert_name: str
) -> None:
    cert_file, key_file = _self_signed(tmp_path, cert_name)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_file, key_file)
    sni: list[str | None] = []

    def record_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        sni.append(name)

    server_ctx.sni_callback = record_sni
    srv = _Server((PUBLIC_STAND_IN, 0), _Handler)
    srv.socket = server_ctx.wrap_socket(srv.socket, server_side=True)
    port = int(srv.server_address[1])
    dns.answers["tls.test"] = [[PUBLIC_STAND_IN], [INTERNAL]]
    client_ctx = ssl.create_default_context(cafile=str(cert_file))
    with (
        _serve(srv, JPEG),
        httpx.Client(
            transport=netguard.GuardedTransport(verify=client_ctx), trust_env=False
        ) as client,
    ):
        if cert_name == "tls.test":
            r = client.get(f"https://tls.test:{port}/img.jpg")
            assert r.status_code == 200 and r.content == JPEG
            assert srv.log == [("GET", "/img.jpg", f"tls.test:{port}")]
        else:
            with pytest.raises(httpx.ConnectError, match="certificate verify failed"):
                client.get(f"https://tls.test:{port}/img.jpg")
            assert srv.log == []
    assert sni == ["tls.test"]
    assert dns.lookups["tls.test"] == 1
